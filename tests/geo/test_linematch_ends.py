"""The path-level rules of ``geo.linematch``: parts rejoined, a source's share of mid-block ends, the
share of its paths' vertices a source keeps, and the end edges judged by them."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np

from geo.linematch import (
    _alignment,
    _end_edge_kept,
    _mid_block_odds,
    _nearest_vertex,
    _Piece,
    _rejoin,
    _source_share,
    _State,
    _switch_end,
    _vertex_share,
)
from tests.support.synthetic import city_and_network


def _state(edge: int, offset: float, distance: float = 2.0) -> _State:
    return _State(edge, offset, 0.0, distance, 0.0, 0.0)


def _chain_of(edges: list[int]) -> list[_State]:
    return [_state(edge, 5.0) for edge in edges]


# a chain of junctions 0 -> 1 -> ... -> 6, edge k from junction k to k + 1, and a spur 7: 2 -> 9
TRANSITIONS: Any = SimpleNamespace(u_list=[0, 1, 2, 3, 4, 5, 6, 2], edge_v=[1, 2, 3, 4, 5, 6, 7, 9],
                                   edge_len=[100.0] * 8, twin=[-1] * 8)
# the same chain two-way: edge 8 + k runs edge k's road back, from junction k + 1 to k
TWO_WAY: Any = SimpleNamespace(u_list=[0, 1, 2, 3, 4, 5, 6, 2, 1, 2, 3, 4, 5, 6, 7, 9],
                               edge_v=[1, 2, 3, 4, 5, 6, 7, 9, 0, 1, 2, 3, 4, 5, 6, 2],
                               edge_len=[100.0] * 16, twin=[8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7])


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


def test_a_first_point_or_two_running_back_are_the_road_the_other_way() -> None:
    # two points matched on edge 0's twin (the line's first two, out of order), then the line runs
    # on from junction 0 along edges 0, 1, 2: one path, the two points put on edge 0 where they lie
    before = _Piece([8], [_state(8, 60.0), _state(8, 72.0)], 0, 1)
    after = _Piece([0, 1, 2], _chain_of([0, 1, 2]), 2, 4)
    assert _rejoin(TWO_WAY, before, after)
    assert before.edges == [0, 1, 2] and before.last == 4
    assert [(state.edge, state.offset) for state in before.chain[:2]] == [(0, 40.0), (0, 28.0)]
    # the same at the line's end; three points the other way are no such noise (the knot rule joins
    # them, dropping what both ran beyond junction 1)
    before = _Piece([0, 1, 2], _chain_of([0, 1, 2]), 0, 2)
    assert _rejoin(TWO_WAY, before, _Piece([10], [_state(10, 10.0)], 3, 3)) and before.edges == [0, 1, 2]
    before = _Piece([8], [_state(8, 50.0), _state(8, 60.0), _state(8, 72.0)], 0, 2)
    assert _rejoin(TWO_WAY, before, _Piece([0, 1, 2], _chain_of([0, 1, 2]), 3, 5)) and before.edges == [1, 2]


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


# a straight road along x, junctions every 100 m (edge k from x = 100 k to 100 k + 100), two vertices an edge
STRAIGHT: Any = SimpleNamespace(vertex_count=[2] * 4)


def test_the_vertex_nearest_a_place_on_an_edge() -> None:
    network = city_and_network()[1]
    edge = next(e for e in range(network.edge_count) if len(network.edge_coords(e)) >= 3)
    coords = network.edge_coords(edge)
    along = np.concatenate(([0.0], np.cumsum(np.hypot(*np.diff(coords, axis=0).T))))
    # just before and just after each vertex, and a metre short of half way to the next
    offsets = np.concatenate((np.maximum(along - 0.2, 0.0), np.minimum(along + 0.2, along[-1]),
                              along[:-1] + 0.5 * np.diff(along) - 1.0))
    expected = np.concatenate((np.arange(len(along)), np.arange(len(along)), np.arange(len(along) - 1)))
    twin = network.twin(edge)
    assert _nearest_vertex(network, np.full(len(offsets), edge), offsets).tolist() == expected.tolist()
    if twin >= 0:  # the same places from the other direction
        flipped = _nearest_vertex(network, np.full(len(offsets), twin), along[-1] - offsets)
        assert flipped.tolist() == (len(along) - 1 - expected).tolist()


def test_a_line_that_keeps_every_vertex_keeps_them_all_though_its_path_runs_on() -> None:
    # four points, copies of the junctions at x = 0, 100, 200, 300; the path runs on along edge 3, the
    # last point matched 4 m into it: the vertex at x = 400 is none the line dropped
    # (the vertex nearest the last point's place is edge 3's first)
    running_on = _Piece([0, 1, 2, 3], [_state(0, 2.0), _state(1, 1.0), _state(2, 1.0), _state(3, 4.0)], 0, 3)
    assert _vertex_share(STRAIGHT, running_on, 0, 0) == 1.0
    # a line that dropped the junction at x = 200 and ends at x = 400
    thinned = _Piece([0, 1, 2, 3], [_state(0, 2.0), _state(1, 1.0), _state(3, 97.0)], 0, 2)
    assert _vertex_share(STRAIGHT, thinned, 0, 1) == 3.0 / 5.0
    # more points than vertices: a trace, no copy of them
    trace = _Piece([0, 1], [_state(0, 5.0 * k) for k in range(20)] + [_state(1, 5.0 * k) for k in range(20)], 0, 39)
    assert _vertex_share(STRAIGHT, trace, 0, 1) == 0.0
    # two points on one edge, the second a few metres behind the first across its middle vertex (noise
    # along the road): no copy of its vertices in order (this divided by zero)
    stepped_back = _Piece([1], [_state(1, 53.0), _state(1, 47.0)], 0, 1)
    assert _vertex_share(SimpleNamespace(vertex_count=[2, 3]), stepped_back, 1, 0) == 0.0
    # the source's share is its lines': a few paths running on along a spurious end edge do not lower it
    assert _source_share([1.0, 1.0, 0.8, 1.0, 5.0 / 6.0]) == 1.0
    assert _source_share([0.3, 0.25, 0.4]) == 0.3


def test_a_point_well_inside_a_long_end_edge_is_weighed_not_taken_for_coverage() -> None:
    # noise 6 m: the noise radius is 21 m; the extreme point lies 25 m into a 100 m end edge
    never_mid_block, often_mid_block = 9.0, 0.0
    # a source that ends its lines at junctions, and the next points copy the path's vertices before
    # the near junction: the point is that junction's copy, far out in the noise's tail
    assert not _end_edge_kept([25.0], [1.0], 100.0, 6.0, -5.0, never_mid_block)
    # a source that often ends its lines mid-block: a mid-block end
    assert _end_edge_kept([25.0], [1.0], 100.0, 6.0, 0.0, often_mid_block)
    # the far junction's copy is coverage whatever the next points say
    assert _end_edge_kept([97.0], [1.0], 100.0, 6.0, -5.0, never_mid_block)


# a road from the south (edges 0, 1: junctions 0 -> 1 -> 2), then from junction 2 at (0, 0) a 60 m
# way on north (edge 2) and a 10 m way on east (edge 3)
_SHAPES = [[[0.0, -200.0], [0.0, -100.0]], [[0.0, -100.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 60.0]],
           [[0.0, 0.0], [10.0, 0.0]]]
_U, _V = [0, 1, 2, 2], [1, 2, 3, 4]
FORK: Any = SimpleNamespace(
    u_list=_U, edge_v=_V, twin=[-1] * 4, edge_len=[100.0, 100.0, 60.0, 10.0], vertex_count=[2] * 4,
    shape=lambda edge: _SHAPES[edge],
    neighbours=lambda node, incoming: [e for e in range(4) if (_V[e] if incoming else _U[e]) == node])


def _switched(points: list[tuple[float, float]]) -> tuple[list[int], bool]:
    """The path 0, 1, 2 (north) with its end judged against the ways on from junction 2 (a line that keeps
    every vertex, noise 4 m, a source that ends its lines at junctions)."""
    x = np.array([p[0] for p in points])
    y = np.array([p[1] for p in points])
    candidates = [_State(2, 1.0, 0.0, 5.0, 0.0, 1.0), _State(3, 5.0, 0.0, 3.0, 5.0, 0.0)]
    return _switch_end(FORK, [0, 1, 2], x, y, len(points) - 1, candidates, 4.0, 9.0, 1.0, at_start=False)


def test_the_way_on_that_explains_the_end_takes_the_end_edges_place() -> None:
    # the last point lies 7 m from junction 2 and 4 m from the far end of the short way east; the one
    # before it copies junction 2: the line ends at the far end of the short way, not on the long one
    assert _switched([(0.5, -200.0), (-0.5, -100.0), (1.0, 1.0), (7.0, 2.5)]) == ([0, 1, 3], True)
    # the point before the last lies 100 m back (no copy of junction 2): the last one copies junction 2
    # and the end edge is no better replaced by the short way (trimming it is ``_trim_end``'s)
    assert _switched([(0.5, -200.0), (-0.5, -100.0), (1.0, 1.0)]) == ([0, 1, 2], False)
    # a last point well along the long way is beyond junction 2's noise: the end edge stands
    assert _switched([(0.5, -200.0), (-0.5, -100.0), (1.0, 1.0), (0.5, 40.0)]) == ([0, 1, 2], False)
