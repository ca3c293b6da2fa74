"""The Lloyd rounds of ``cluster_reports``: a report the greedy merge left in the wrong cluster moves."""

from __future__ import annotations

import numpy as np

from geo.dedup import _refine, _State


def _state(x: list[float], heading: list[float]) -> _State:
    n = len(x)
    return _State(np.asarray(x, dtype=float), np.zeros(n), np.zeros(n), np.asarray(heading, dtype=float),
                  variance=100.0, window_s=1800.0, max_heading_deg=70.0)


def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.triu_indices(n, 1)
    return i.astype(np.int64), j.astype(np.int64)


def test_a_report_moves_to_the_cluster_whose_centre_takes_it_cheaper() -> None:
    """Two incidents 60 m apart; the report at 45 m sits in the first cluster (root 0) but lies
    nearer the second's centre: it moves there, the others stay."""
    state = _state([-2.0, 0.0, 2.0, 45.0, 58.0, 60.0, 62.0], [90.0] * 7)
    label = np.array([0, 0, 0, 0, 4, 4, 4])
    assert _refine(state, label, *_pairs(7), threshold=3.75).tolist() == [0, 0, 0, 4, 4, 4, 4]


def test_a_report_does_not_move_to_a_cluster_of_another_direction() -> None:
    """The same, with the second incident on the other side of the street: the report stays."""
    state = _state([-2.0, 0.0, 2.0, 45.0, 58.0, 60.0, 62.0], [90.0] * 4 + [270.0] * 3)
    label = np.array([0, 0, 0, 0, 4, 4, 4])
    assert _refine(state, label, *_pairs(7), threshold=3.75).tolist() == label.tolist()


def test_the_root_report_moves_and_its_cluster_keeps_the_label() -> None:
    """The root report (label 0 is its index) is the one that fits the other cluster: the rest of
    its cluster keeps label 0."""
    state = _state([45.0, 0.0, 2.0, -2.0, 58.0, 60.0, 62.0], [90.0] * 7)
    label = np.array([0, 0, 0, 0, 4, 4, 4])
    assert _refine(state, label, *_pairs(7), threshold=3.75).tolist() == [4, 0, 0, 0, 4, 4, 4]


def test_two_reports_do_not_join_one_cluster_at_once_beyond_its_time_window() -> None:
    """A report from 850 s before and one from 850 s after a cluster each fit it (and the window of
    1200 s) alone, not both together: one moves, the other stays where it was."""
    x = [-2.0, 0.0, 2.0, 45.0, 118.0, 120.0, 122.0, 75.0, 58.0, 60.0, 62.0]
    time_s = [0.0] * 4 + [1700.0] * 4 + [850.0] * 3
    state = _State(np.asarray(x), np.zeros(11), np.asarray(time_s), np.full(11, 90.0),
                   variance=100.0, window_s=1200.0, max_heading_deg=70.0)
    label = np.array([0] * 4 + [4] * 4 + [8] * 3)
    result = _refine(state, label, *_pairs(11), threshold=3.75)
    joined = [k for k in (3, 7) if result[k] == 8]
    assert len(joined) == 1
    members = np.flatnonzero(result == 8)
    assert np.ptp(np.asarray(time_s)[members]) <= 1200.0


def test_a_report_does_not_move_into_a_lone_report_that_leaves_in_the_same_round() -> None:
    """A cluster at 0 with one report out at 20 m, a lone report at 26 m: the lone report joins the
    cluster while the outlying report, nearer the lone one, would move to it. Moving both at once
    left the outlying report alone, split from its incident; it stays, and all end in one cluster."""
    state = _state([0.0, 0.0, 0.0, 0.0, 20.0, 26.0], [90.0] * 6)
    label = np.array([0, 0, 0, 0, 0, 5])
    assert _refine(state, label, *_pairs(6), threshold=3.75).tolist() == [0] * 6
