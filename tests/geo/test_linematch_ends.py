"""The path-level rules of ``geo.linematch``: parts rejoined, a source's share of mid-block ends."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np

from geo.linematch import _alignment, _mid_block_odds, _Piece, _rejoin, _State


def _state(edge: int, offset: float, distance: float = 2.0) -> _State:
    return _State(edge, offset, 0.0, distance, 0.0, 0.0)


def _chain_of(edges: list[int]) -> list[_State]:
    return [_state(edge, 5.0) for edge in edges]


# a chain of junctions 0 -> 1 -> ... -> 6, edge k from junction k to k + 1, and a spur 7: 2 -> 9
TRANSITIONS: Any = SimpleNamespace(u_list=[0, 1, 2, 3, 4, 5, 6, 2], edge_v=[1, 2, 3, 4, 5, 6, 7, 9],
                                   edge_len=[100.0] * 8)


def test_a_part_that_starts_again_on_the_path_joins_it() -> None:
    before = _Piece([0, 1, 2, 3], _chain_of([0, 1, 2, 3]), 0, 3)
    after = _Piece([3, 4, 5], _chain_of([3, 4, 5]), 4, 6)
    assert _rejoin(TRANSITIONS, before, after)
    assert before.edges == [0, 1, 2, 3, 4, 5]
    assert before.last == 6 and len(before.chain) == 7  # every point of both parts


def test_the_noise_that_split_the_line_is_dropped() -> None:
    # the second part ran down the spur and came back to edge 2: the path is 0, 1, 2, then on
    before = _Piece([0, 1, 2], _chain_of([0, 1, 2]), 0, 2)
    after = _Piece([7, 2, 3], _chain_of([7, 2, 3]), 3, 5)
    assert _rejoin(TRANSITIONS, before, after)
    assert before.edges == [0, 1, 2, 3]


def test_parts_that_share_no_edge_stay_apart() -> None:
    before = _Piece([0, 1], _chain_of([0, 1]), 0, 1)
    after = _Piece([4, 5], _chain_of([4, 5]), 2, 3)
    assert not _rejoin(TRANSITIONS, before, after)
    assert before.edges == [0, 1]


def _pieces(ends: list[float], noise: float) -> list[_Piece]:
    """One two-point piece per pair of ends, each end ``past`` metres into its 100 m end edge."""
    rng = np.random.default_rng(3)
    pieces = []
    for start, end in zip(ends[::2], ends[1::2], strict=True):
        chain = [_state(0, 100.0 - start, abs(float(rng.normal(0.0, noise)))),
                 _state(1, end, abs(float(rng.normal(0.0, noise))))]
        pieces.append(_Piece([0, 1], chain, 0, 1))
    return pieces


def test_the_share_of_mid_block_ends_is_the_sources() -> None:
    rng = np.random.default_rng(4)
    noise = 3.0
    at_junctions = [abs(float(rng.normal(0.0, noise))) for _ in range(400)]
    # a source that ends three lines in ten mid-block (uniform along the edge)
    mixed = [float(rng.uniform(0.0, 100.0)) if rng.random() < 0.3 else value for value in at_junctions]
    for ends, share in ((at_junctions, 0.0), (mixed, 0.3)):
        odds = _mid_block_odds(TRANSITIONS, _pieces(ends, noise), noise)
        estimated = 1.0 / (1.0 + math.exp(odds))
        assert abs(estimated - share) < 0.06, (share, estimated)


def test_a_part_that_starts_again_at_a_junction_of_the_path_joins_it() -> None:
    # the first part ran on to junction 4, the second leaves junction 2 down the spur: the first
    # part's run beyond junction 2 was noise
    before = _Piece([0, 1, 2, 3], _chain_of([0, 1, 2, 3]), 0, 3)
    after = _Piece([7], _chain_of([7, 7]), 4, 5)
    assert _rejoin(TRANSITIONS, before, after)
    assert before.edges == [0, 1, 7]


def _evidence(points: list[tuple[float, float]], kept: float) -> float:
    """The log-odds of the far end: a 10 m end edge from (0, 0) to (0, 10), the rest of the path's
    vertices 30 m apart back from (0, 0) (the near junction)."""
    far = [[0.0, 0.0]]  # the end edge's vertices before its far end (the extreme point's copy): its near junction
    near = [[0.0, -30.0 * k] for k in range(1, 6)]
    through, ending = _alignment(points, far, near, 8.0, kept)
    return math.log(through / ending)


def test_the_points_next_to_the_extreme_one_tell_a_short_end_edge() -> None:
    # a line drawn from the path's shape: the point next to the extreme one copies the near junction
    # when the path runs on along the short edge, the vertex 30 m back when it ends at that junction
    assert _evidence([(1.0, 2.0), (-2.0, -31.0), (1.0, -59.0)], 1.0) > 3.0
    assert _evidence([(1.0, -28.0), (-2.0, -61.0), (1.0, -89.0)], 1.0) < -3.0
    # a line that keeps one vertex in three may have skipped the near junction: the same points say less
    for points in ([(1.0, 2.0), (-2.0, -31.0), (1.0, -59.0)], [(1.0, -28.0), (-2.0, -61.0), (1.0, -89.0)]):
        dense, thinned = _evidence(points, 1.0), _evidence(points, 1.0 / 3.0)
        assert 0.0 < abs(thinned) < abs(dense) and thinned * dense > 0.0, (dense, thinned)
    # points far from every vertex copy none: no evidence
    assert abs(_evidence([(200.0, 0.0)], 1.0)) < 1e-9
