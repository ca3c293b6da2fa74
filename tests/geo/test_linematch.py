"""Jam lines on the synthetic city: the shapes real feeds give (dense noisy lines, lines cut mid-block)."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from geo.linematch import _ALONG_DEG, _line_headings, _line_noise, match_lines, project_on_line
from geo.match import point_candidates
from geo.network import RoadNetwork, bearing_deg, heading_difference
from tests.support.synthetic import city_and_network, jaccard


def _bearing_at(network: RoadNetwork, edge: int, end: bool) -> float:
    coords = network.edge_coords(edge)
    a, b = (coords[-2], coords[-1]) if end else (coords[0], coords[1])
    return float(bearing_deg(np.array([b[0] - a[0]]), np.array([b[1] - a[1]]))[0])


def _straight_paths(network: RoadNetwork, edges: int, min_length_m: float, count: int) -> list[list[int]]:
    """Paths of ``edges`` two-way edges, each the straightest continuation of the one before."""
    ptr, out = network.adjacency()
    paths: list[list[int]] = []
    for first in range(network.edge_count):
        path = [first]
        while len(path) < edges:
            here = _bearing_at(network, path[-1], end=True)
            options = [int(e) for e in out[ptr[network.edge_v[path[-1]]]:ptr[network.edge_v[path[-1]] + 1]]
                       if network.edge_v[e] != network.edge_u[path[-1]]]
            turns = [abs((_bearing_at(network, e, end=False) - here + 180.0) % 360.0 - 180.0) for e in options]
            if not options or min(turns) > 20.0:
                break
            path.append(options[int(np.argmin(turns))])
        if (len(path) == edges and all(network.twin(e) >= 0 and network.edge_length(e) >= min_length_m for e in path)
                and len({network.edge_u[e] for e in path} | {network.edge_v[path[-1]]}) == edges + 1):
            paths.append(path)
            if len(paths) == count:
                break
    return paths


def _polyline(network: RoadNetwork, path: list[int]) -> np.ndarray:  # type: ignore[type-arg]
    return np.vstack([network.edge_coords(path[0])] + [network.edge_coords(e)[1:] for e in path[1:]])


def _resample(xy: np.ndarray, step_m: float, start_m: float = 0.0, end_m: float | None = None) -> np.ndarray:  # type: ignore[type-arg]
    along = np.concatenate(([0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))))
    end = along[-1] if end_m is None else end_m
    s = np.linspace(start_m, end, max(2, round((end - start_m) / step_m) + 1))
    return np.column_stack((np.interp(s, along, xy[:, 0]), np.interp(s, along, xy[:, 1])))


def _lonlat(network: RoadNetwork, xy: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    lon, lat = network.frame.to_lonlat(xy[:, 0], xy[:, 1])
    return np.column_stack((lon, lat))


def test_dense_noisy_lines_give_simple_paths_without_u_turns() -> None:
    """Points 10 m apart with 8 m noise step backwards now and then: that is noise, not a loop."""
    _city, network = city_and_network()
    rng = np.random.default_rng(3)
    paths = _straight_paths(network, 3, 60.0, 60)
    assert len(paths) == 60
    lines = [_resample(_polyline(network, path), 10.0) for path in paths]
    results = match_lines(network, [_lonlat(network, xy + rng.normal(0.0, 8.0, xy.shape)) for xy in lines])
    scores = []
    for path, result in zip(paths, results, strict=True):
        junctions = [int(network.edge_u[result.edges[0]])] + [int(network.edge_v[e]) for e in result.edges]
        assert len(junctions) == len(set(junctions)), (path, result.edges)  # no loop, no U-turn, no spur
        assert all(network.twin(a) != b for a, b in itertools.pairwise(result.edges))
        scores.append(jaccard(set(result.edges), set(path)))
    assert float(np.mean(scores)) >= 0.95, np.mean(scores)


def test_an_invalid_point_leaves_its_line_and_the_others_in_the_call_as_they_were() -> None:
    """A NaN or out-of-range point (a feed's glitch) is skipped: its neighbours' headings cannot be measured
    across it, and their candidates must still be ordered and kept per point, as must every other line's."""
    _city, network = city_and_network()
    rng = np.random.default_rng(5)
    paths = _straight_paths(network, 3, 60.0, 12)
    lines = [_lonlat(network, xy + rng.normal(0.0, 3.0, xy.shape))
             for xy in (_resample(_polyline(network, path), 25.0) for path in paths)]
    clean = match_lines(network, lines)
    broken = [line.copy() for line in lines]
    broken[3][4] = np.nan
    broken[7][2] = (500.0, 95.0)
    # a line of one good point and a NaN: the good point's heading cannot be measured (a NaN score)
    glitched = match_lines(network, [np.array([lines[0][0], [np.nan, np.nan]]), *broken])[1:]
    for i, (path, before, after) in enumerate(zip(paths, clean, glitched, strict=True)):
        assert after.edges == path, (i, after.edges, path, after.reason)
        if i not in (3, 7):
            assert (after.edges, after.start_offset_m, after.end_offset_m) == (
                before.edges, before.start_offset_m, before.end_offset_m)


def _lines_into_end_edges(network: Any, paths: list[list[int]], spacing_m: float, into_m: float) -> list[Any]:
    """Noiseless lines along ``paths`` with a point every ``spacing_m``, starting and ending ``into_m``
    into their first and last edges (measured from the junction the path crosses there)."""
    lines = []
    for path in paths:
        xy = _polyline(network, path)
        total = sum(network.edge_length(e) for e in path)
        lines.append(_lonlat(network, _resample(xy, spacing_m, start_m=network.edge_length(path[0]) - into_m,
                                                end_m=total - network.edge_length(path[-1]) + into_m)))
    return lines


def test_a_line_cut_mid_block_keeps_its_end_edges() -> None:
    """Waze cuts jams mid-block: 12 m of an edge at the line's end is coverage, not a sliver."""
    _city, network = city_and_network()
    paths = _straight_paths(network, 3, 60.0, 20)
    for path, result in zip(paths, match_lines(network, _lines_into_end_edges(network, paths, 70.0, 12.0)),
                            strict=True):
        assert result.edges == path


def test_a_line_grazing_the_next_edge_does_not_cover_it() -> None:
    """An end point a few metres past the last junction is that junction plus noise."""
    _city, network = city_and_network()
    paths = _straight_paths(network, 3, 60.0, 20)
    for path, result in zip(paths, match_lines(network, _lines_into_end_edges(network, paths, 30.0, 4.0)),
                            strict=True):
        assert result.edges == path[1:-1]


def test_junction_to_junction_lines_get_no_end_edges_from_noise() -> None:
    """A line of a few noisy junctions: its end point lies past a junction by up to 3 noise widths in
    any direction, onto whichever edge is there; a few points close to the road do not show that the
    noise is smaller than that."""
    _city, network = city_and_network()
    rng = np.random.default_rng(11)
    paths = _straight_paths(network, 3, 60.0, 80)
    assert len(paths) == 80
    paths += paths  # two noisy lines per path
    lines = []
    for path in paths:
        junctions = np.array([network.edge_coords(path[0])[0]] + [network.edge_coords(e)[-1] for e in path])
        lines.append(_lonlat(network, junctions + rng.normal(0.0, 8.0, junctions.shape)))
    results = match_lines(network, lines)
    # an end edge shorter than two noise radii is the nearer junction's call, which noise gets wrong now
    # and then; a longer one is the noise radius's
    spurious = [e for path, r in zip(paths, results, strict=True) for e in {r.edges[0], r.edges[-1]} - set(path)
                if network.edge_length(e) >= 40.0]
    assert len(spurious) <= 8, (len(spurious), spurious)  # of 320 ends; the one-axis rule on the median distance: 12


def test_a_dense_line_running_into_a_short_end_edge_keeps_it() -> None:
    """A short end edge the line runs along point after point is coverage, though no one point is past its
    middle: together they fit a path ending at the edge's far junction better than one ending at its near
    junction (one point near a short edge cannot tell the two apart; it still goes by the nearer)."""
    _city, network = city_and_network()
    paths = [path for path in _straight_paths(network, 3, 10.0, 400)
             if 12.0 <= network.edge_length(path[-1]) <= 30.0 and min(map(network.edge_length, path[:-1])) >= 40.0]
    assert len(paths) >= 10
    lines = []
    for path in paths:
        xy = _polyline(network, path)
        total = sum(network.edge_length(e) for e in path)
        dense = _resample(xy, 2.0, end_m=total - 0.55 * network.edge_length(path[-1]))
        dx, dy = xy[-1] - xy[0]
        side = np.array([-dy, dx]) / math.hypot(dx, dy)  # the straight path's left
        zigzag = np.where(np.arange(len(dense)) % 2 == 0, 4.0, -4.0)[:, None] * side  # lateral noise, none along
        lines.append(_lonlat(network, dense + zigzag))
    for path, result in zip(paths, match_lines(network, lines), strict=True):
        assert result.edges == path


def test_a_line_is_matched_with_its_own_noise_only_where_it_is_clearly_precise() -> None:
    """Waze draws its lines a few metres off OpenStreetMap, GPS-like lines carry 8 m: the first are scored with
    their own noise, the second with ``sigma_m`` (near junctions a noisy point's nearest edge is often another
    road, so the nearest distances alone would call a noisy line precise)."""
    _city, network = city_and_network()
    rng = np.random.default_rng(7)
    paths = _straight_paths(network, 3, 60.0, 40)
    for spacing, sigma, precise in ((70.0, 2.0, True), (10.0, 8.0, False)):
        lines = [_resample(_polyline(network, path), spacing) for path in paths]
        xy = np.vstack([line + rng.normal(0.0, sigma, line.shape) for line in lines])
        starts = np.concatenate(([0], np.cumsum([len(line) for line in lines])))
        candidates = point_candidates(network, xy[:, 0], xy[:, 1], 35.0)
        heading = _line_headings(xy[:, 0], xy[:, 1], starts, window_m=24.0)
        along = heading_difference(heading[candidates.point], candidates.bearing) < _ALONG_DEG
        noise = _line_noise(candidates, along, starts, 8.0)
        share = float(np.mean(noise < 8.0))
        if precise:
            assert share >= 0.95 and float(np.max(noise[noise < 8.0])) <= 4.2, noise
        else:
            assert share <= 0.05, noise


def test_projection_onto_an_edge_shape() -> None:
    shape = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 20.0]])
    assert project_on_line(shape, 4.0, 3.0) == (4.0, 3.0)
    offset, distance = project_on_line(shape, 13.0, 15.0)
    assert (round(offset, 6), round(distance, 6)) == (25.0, 3.0)
    assert project_on_line(shape, -5.0, 0.0) == (0.0, 5.0)
    offset, distance = project_on_line(shape, 10.0, 30.0)
    assert (round(offset, 6), round(distance, 6)) == (30.0, 10.0)


def test_two_first_points_out_of_order_do_not_turn_the_line_round() -> None:
    """A line's first two points a few metres apart, out of order by their noise (12 m back where the
    line's own 3 m of noise allow 9): they belong to the road the rest runs along, not to its other
    direction, and the first edge is kept."""
    _city, network = city_and_network()
    rng = np.random.default_rng(3)
    paths = _straight_paths(network, 3, 60.0, 20)
    lines = []
    for path in paths:
        shape = _polyline(network, path)
        total = float(np.sum(np.hypot(*np.diff(shape, axis=0).T)))
        at = np.concatenate(([34.0, 22.0], np.arange(50.0, total, 30.0), [total]))
        along = np.concatenate(([0.0], np.cumsum(np.hypot(*np.diff(shape, axis=0).T))))
        xy = np.column_stack((np.interp(at, along, shape[:, 0]), np.interp(at, along, shape[:, 1])))
        lines.append(_lonlat(network, xy + rng.normal(0.0, 2.0, xy.shape)))
    results = match_lines(network, lines)
    assert [r.edges for r in results] == paths
