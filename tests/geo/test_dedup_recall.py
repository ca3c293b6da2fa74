"""Recall of ``cluster_reports`` where a report's direction is unknown (Waze heading 0)."""

from __future__ import annotations

import numpy as np

from geo.dedup import Reports, cluster_reports


def _reports_at(x: list[float], heading: list[float]) -> Reports:
    """Reports of one family at one time on an east-west line (no network: compared where reported)."""
    n = len(x)
    return Reports(x=np.asarray(x, dtype=float), y=np.zeros(n), time_s=np.zeros(n), family=["crash"] * n,
                   edge=np.full(n, -1, dtype=np.int64), offset=np.full(n, np.nan),
                   heading=np.asarray(heading, dtype=float))


def test_a_report_of_unknown_direction_joins_the_only_direction_that_can_take_it() -> None:
    """Heading 0 among an eastbound incident's reports, with a westbound report 70 m away: both
    directions are near, but only the eastbound cluster passes the merge test for it (a single
    report 70 m off is another incident), so it joins that cluster instead of staying alone."""
    labels = cluster_reports(_reports_at([0.0, 3.0, -3.0, 0.5, 70.0], [90.0, 90.0, 90.0, 0.0, 270.0]))
    assert labels.tolist() == [0, 0, 0, 0, 1]


def test_a_report_of_unknown_direction_stays_alone_where_both_directions_could_take_it() -> None:
    """The same, with the westbound incident at the same place: it could be either's, and joining
    one would fuse the two."""
    eastbound, westbound = [0.0, 3.0, -3.0], [1.0, -1.0, 2.0]
    labels = cluster_reports(_reports_at([*eastbound, *westbound, 0.5], [90.0] * 3 + [270.0] * 3 + [0.0]))
    assert len({*labels[:3].tolist()}) == 1 and len({*labels[3:6].tolist()}) == 1 and labels[0] != labels[3]
    assert labels[6] not in set(labels[:6].tolist())


def test_a_report_of_unknown_direction_joins_no_cluster_beyond_the_time_window() -> None:
    """Near only one direction, but the cluster's reports came more than the window earlier."""
    reports = _reports_at([0.0, 3.0, -3.0, 0.5, 70.0], [90.0, 90.0, 90.0, 0.0, 270.0])
    reports.time_s = np.array([0.0, 0.0, 0.0, 1500.0, 1500.0])
    labels = cluster_reports(reports, window_s=1200.0)
    assert labels[3] not in set(labels[:3].tolist())
