"""Placing a city's imported line on the road network the way a closure must go out.

An operator's closure is routed from the points given (:mod:`geo.closure`); a line imported from
a city source (CSV, GeoJSON, WZDx, ArcGIS) arrives drawn by someone else's tool. This places it:

* **Its direction, when the network proves it.** The point order of a ``ONE_DIRECTION`` line is
  the closed travel direction (and on a one-way road a ``BOTH_DIRECTIONS`` line closes its one
  direction only, so the same holds). The line is matched both ways; it is reversed only when the network
  shows it was drawn backwards: the reversed line follows one-way edges that the line as drawn
  cannot follow (it is drawn against a one-way street), or it lies on a one-way carriageway while
  its order matches only the opposite carriageway, clearly farther away. A two-way street, or a
  line between two carriageways, proves nothing and is left as drawn. A bearing alone never
  reverses a line (see :mod:`feeds.lint` for what happens without a network).
* **Two-point chords.** Two points are no road geometry (CDOT's span up to 14 km straight across
  the map): they are routed along the named street like an operator's from/to closure.
* **Whole segments.** A full closure (Waze closes whole segments, junction to junction) goes out
  as the polyline of the directed edges it covers when they form one connected path; other
  events (a mid-block lane closure is legitimate) keep their drawn geometry.

Every change is said in ``note``, so the operator sees why the published line differs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from geo.closure import drawn_backwards, route_closure
from geo.linematch import LineMatch, match_lines
from geo.network import RoadNetwork

__all__ = ["NOT_ON_A_ROAD", "NO_LONGER_ROUTABLE", "LinePlacement", "LineToPlace", "place_lines"]

#: the reason of a line that lies along no road of the network (an unplaced closure cannot be placed by Waze either)
NOT_ON_A_ROAD = "does not follow a road of the network"
#: the reason of a closure a new road network can no longer place (``exchange.reroute``)
NO_LONGER_ROUTABLE = "no longer routable on the road network"

FloatArray = npt.NDArray[np.float64]

_DIVIDED = ("{street} is a divided road there: a line of both directions on one carriageway closes that one only "
            "(published ONE_DIRECTION); the other carriageway needs its own event")
#: a line placed on the network follows its roads for at least this share of its length
_PLACED_COVERAGE = 0.5
@dataclass(frozen=True)
class LineToPlace:
    """One imported line: ``points`` (n, 2) lon/lat in the source's order."""

    points: FloatArray
    street: str | None
    one_direction: bool
    whole_segments: bool


@dataclass
class LinePlacement:
    """Where a line lies: ``edges`` in travel order (empty when unplaced, with ``reason``), the
    polyline to publish when it differs from the one given (``polyline``), and what changed."""

    edges: list[int]
    polyline: FloatArray | None = None
    reversed: bool = False
    note: str | None = None
    reason: str | None = None
    distance_m: float = math.nan
    confidence: float = 0.0
    covered_fraction: float = 0.0
    start_offset_m: float = 0.0
    #: a BOTH_DIRECTIONS line placed on one-way edges: it closes one direction, and goes out so
    one_way: bool = False


def place_lines(network: RoadNetwork, lines: Sequence[LineToPlace], *, radius_m: float = 35.0) -> list[LinePlacement]:
    """Place each line (see the module's rules); lines of three points or more are matched in one batch."""
    results: list[LinePlacement | None] = [None] * len(lines)
    batch: list[FloatArray] = []
    owners: list[tuple[int, bool]] = []  # (line index, reversed)
    for i, line in enumerate(lines):
        points = _distinct(np.asarray(line.points, dtype=np.float64).reshape(-1, 2))
        if len(points) == 2:
            chord = _route_chord(network, line, points)
            if chord.edges:
                results[i] = chord
                continue
            # not along its named street: matched like any line (a straight block, or a name the
            # lint will question), and placed only when the road follows it
        # both ways: on a one-way road even a BOTH_DIRECTIONS line closes its one direction only
        batch.extend((points, points[::-1].copy()))
        owners.extend(((i, False), (i, True)))
    matched = match_lines(network, batch, radius_m=radius_m) if batch else []
    as_drawn: dict[int, LineMatch] = {}
    backwards: dict[int, LineMatch] = {}
    for (i, flipped), match in zip(owners, matched, strict=True):
        (backwards if flipped else as_drawn)[i] = match
    for i, match in as_drawn.items():
        results[i] = _placed(network, lines[i], match, backwards.get(i))
    return [result if result is not None else LinePlacement([], reason="empty line") for result in results]


def _distinct(points: FloatArray) -> FloatArray:
    """The points without consecutive repeats (a source writing one position twice)."""
    if len(points) < 2:
        return points
    keep = np.ones(len(points), dtype=bool)
    keep[1:] = (np.diff(points, axis=0) != 0.0).any(axis=1)
    return points[keep]


def _route_chord(network: RoadNetwork, line: LineToPlace, points: FloatArray) -> LinePlacement:
    length_m = _length_m(network, points)
    if not line.street:
        return LinePlacement([], reason=f"a two-point line ({_km(length_m)}) with no street to route it along")
    route = route_closure(network, line.street, points,
                          direction="ONE_DIRECTION" if line.one_direction else "BOTH_DIRECTIONS")
    if not route.edges:
        return LinePlacement([], reason=f"a two-point line ({_km(length_m)}) that cannot be routed: {route.reason}")
    note = f"a two-point line ({_km(length_m)}): routed along {line.street!r} on the road network"
    one_way = not line.one_direction and route.direction == "ONE_DIRECTION"
    if one_way and route.opposite is not None:
        note += "; " + _DIVIDED.format(street=repr(line.street))
    elif route.note:
        note += f"; {route.note}"
    start = route.polyline[0]
    flipped = bool(np.hypot(*(start - points[-1])) < np.hypot(*(start - points[0])))
    return LinePlacement(list(route.edges), polyline=route.polyline, reversed=flipped, note=note,
                         distance_m=0.0, confidence=1.0, covered_fraction=1.0, one_way=one_way)


def _placed(network: RoadNetwork, line: LineToPlace, as_drawn: LineMatch, backwards: LineMatch | None) -> LinePlacement:
    match, flipped, note = as_drawn, False, None
    if backwards is not None:
        proof = drawn_backwards(network, as_drawn, backwards, line.street)
        if proof is not None:
            match, flipped, note = backwards, True, proof.note
    if not match.matched:
        return LinePlacement([], reason=match.reason or "no match")
    if match.covered_fraction < _PLACED_COVERAGE:
        # a few points near a road make no placement: extending them to whole segments would
        # publish a closure of a road the line does not follow
        return LinePlacement([], reason=f"{NOT_ON_A_ROAD}: only {match.covered_fraction:.0%} of it lies along the "
                                        "roads matched")
    points = np.asarray(line.points, dtype=np.float64).reshape(-1, 2)
    polyline = points[::-1].copy() if flipped else None
    one_way = not line.one_direction and all(network.edge_oneway(edge) for edge in match.edges)
    if one_way:
        note = _one_way_note(network, line, points[::-1] if flipped else points, note)
    if line.whole_segments and len(match.parts) == 1:
        polyline = _edges_polyline(network, match.edges)
        extended = "the whole road segments it covers, junction to junction"
        note = f"{note}; published as {extended}" if note else f"published as {extended}"
    return LinePlacement(
        list(match.edges), polyline=polyline, reversed=flipped, note=note, reason=match.reason,
        distance_m=match.distance_m, confidence=match.confidence, covered_fraction=match.covered_fraction,
        start_offset_m=match.start_offset_m, one_way=one_way,
    )


def _one_way_note(network: RoadNetwork, line: LineToPlace, points: FloatArray, note: str | None) -> str:
    """A BOTH_DIRECTIONS line on one-way edges closes one direction only (Waze reads a one-way road
    so); on one carriageway of a divided road, the other one is not closed by it."""
    street = line.street or "the road"
    divided = line.street is not None and route_closure(
        network, line.street, points[[0, -1]], direction="BOTH_DIRECTIONS").opposite is not None
    said = _DIVIDED.format(street=repr(street)) if divided else (
        f"{street!r} is one-way there: only its direction of travel is closed (published ONE_DIRECTION)")
    return f"{note}; {said}" if note else said


def _edges_polyline(network: RoadNetwork, edges: Sequence[int]) -> FloatArray:
    coords = [network.edge_lonlat(edges[0])]
    coords.extend(network.edge_lonlat(edge)[1:] for edge in edges[1:])
    return np.vstack(coords)


def _length_m(network: RoadNetwork, points: FloatArray) -> float:
    x, y = network.frame.to_metric(points[:, 0], points[:, 1])
    return float(np.hypot(np.diff(x), np.diff(y)).sum())


def _km(length_m: float) -> str:
    return f"{length_m / 1000:.1f} km" if length_m >= 1000 else f"{length_m:.0f} m"
