"""Closure routing: the polyline a closure feed needs, following one street between two points.

Waze closes whole segments and expects the polyline to follow the road from junction to
junction. Given a street name and two points (or a rough line drawn by an operator), this finds
the directed edges of that street between them, extends the ends to whole edges, and returns
the polyline in travel order with its direction: ``ONE_DIRECTION`` when the street is one-way
there, otherwise what the caller asked for.

Each of two points snaps to the street's segment nearest it, and the travel order of the points
decides the direction: from A to B and from B to A close opposite sides of a two-way street. A
closure drawn against a one-way street is reversed to follow it, with a ``note`` saying so. A
rough line is matched as a jam line is (``geo.linematch``); the edges its ends reach beyond the
named street (noise across a crossing, the end of a crossover) are not closed.

Divided roads. Waze, "Road closure information"
(https://developers.google.com/waze/data-feed/road-closure-information), section "2. Structure
your closure": the order of the polyline's coordinates tells which traffic direction is closed; on
a one-way road the points must follow the traffic flow and ``ONE_DIRECTION`` is given; on a
two-way road ``BOTH_DIRECTIONS`` with one polyline closes both ways. A divided road (two parallel
one-way carriageways, such as West Oakland's 7th Street) is two one-way roads in Waze's map, so a
``BOTH_DIRECTIONS`` polyline on one carriageway closes that carriageway only. So when both
directions are asked and the route is one-way, the other carriageway of the street is looked for
near the two points and routed back from the end to the start: it is returned as ``opposite``
(each route ``ONE_DIRECTION`` in its own travel direction, the one along the points first). Where
there is none (a plain one-way street), the route closes the street's one direction and ``note``
says so. Likewise, points drawn against one carriageway but along the other one mean the other one.
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from geo.linematch import LineMatch, match_lines, project_on_line
from geo.match import Candidates, point_candidates
from geo.names import SAME_STREET, name_similarity
from geo.network import EdgeKey, RoadNetwork, bearing_deg, heading_difference

__all__ = [
    "OPPOSITE_RADIUS_M", "REVERSED", "Backwards", "ClosureRoute", "as_drawn", "drawn_backwards", "route_closure",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: what the note of a line the network reversed says (``feeds.lint`` reads it)
REVERSED = "reversed to follow"
#: the reversed line must cover at least this share of itself to prove anything
_PROOF_COVERAGE = 0.8
#: the line as drawn explains less than this share of itself: it cannot follow the road that way
_FAILED_COVERAGE = 0.5
#: on the opposite carriageway: the reversed match is at least this much closer (metres) ...
_CARRIAGEWAY_GAP_M = 3.0
#: ... and at most this share of the distance of the match as drawn
_CARRIAGEWAY_RATIO = 0.5


#: cost factor for an edge of another street: the route may cross a junction's other street,
#: but never prefers it over the named one
_OFF_STREET_FACTOR = 20.0
#: metres: links this much farther from a point than the nearest are as near (a point at a junction)
_TIE_M = 1.0
#: metres: how far from the points the other carriageway of a divided road is looked for; they are
#: usually 10-40 m apart, and what lies farther is more likely another road of the same name
OPPOSITE_RADIUS_M = 60.0
#: degrees: the other carriageway runs, start to end, more than this against the first one
_ANTIPARALLEL_DEG = 135.0
#: degrees: a segment of the other carriageway where a point snaps heads more than this off the first
_AGAINST_DEG = 90.0


@dataclass
class ClosureRoute:
    """The routed closure; ``edges`` empty and ``reason`` set when no route was found."""

    edges: list[int] = field(default_factory=list)
    keys: list[EdgeKey] = field(default_factory=list)
    polyline: FloatArray = field(default_factory=lambda: np.zeros((0, 2)))
    direction: str = "BOTH_DIRECTIONS"
    length_m: float = 0.0
    streets: list[str] = field(default_factory=list)
    reason: str | None = None
    #: what the operator should be told about the route (a closure drawn against a one-way street, both
    #: directions asked of a plain one-way street, one direction drawn along a divided road's other carriageway)
    note: str | None = None
    #: heading from the first point of the polyline to its last, degrees clockwise from north
    bearing_deg: float | None = None
    #: a divided road closed in both directions: the other carriageway, in its own travel direction
    opposite: ClosureRoute | None = None


def route_closure(
    network: RoadNetwork,
    street: str,
    points: FloatArray,
    *,
    direction: str = "BOTH_DIRECTIONS",
    snap_radius_m: float = 50.0,
) -> ClosureRoute:
    """Route a closure along ``street`` through ``points`` ((n, 2) lon/lat, n >= 2, in travel order).

    With two points the route runs from the first to the second along the street, starting on the
    segment nearest the first and ending on the one nearest the second; on a one-way street drawn
    against its direction it is reversed, and ``note`` says so. With more points, the line is
    map-matched first and the route covers every matched edge. The result covers whole edges,
    junction to junction.

    A one-way route may be one carriageway of a divided road (see the module's docstring). With
    ``BOTH_DIRECTIONS`` the result is then the carriageway along the points with the other one as
    ``opposite``; on a plain one-way street, its one direction with a ``note``. Points drawn against
    one carriageway and along the other one close the other one (with a ``note``), not the first
    reversed.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(points) < 2 or not np.isfinite(points).all():
        return ClosureRoute(reason="a closure needs at least two valid points")
    x, y = network.frame.to_metric(points[:, 0], points[:, 1])
    drawn = _drawn_path(network, street, points, x, y, snap_radius_m)
    if isinstance(drawn, str):
        return ClosureRoute(reason=drawn)
    route = _closure_route(network, drawn.edges, direction, drawn.note)
    both = direction == "BOTH_DIRECTIONS"
    if route.direction != "ONE_DIRECTION" or not (both or drawn.reversed):
        return route
    # one-way: both directions asked, or drawn against it; is it one carriageway of a divided road?
    start, end = (float(x[0]), float(y[0])), (float(x[-1]), float(y[-1]))
    if drawn.reversed:
        start, end = end, start
    other = _other_carriageway(network, street, route.edges, start, end)
    if other is None:
        if both:
            alone = f"no other carriageway of it within {OPPOSITE_RADIUS_M:g} m"
            route.note = (f"{route.note}; only that direction is closed ({alone})" if drawn.reversed
                          else f"{street!r} is one-way there: only its direction of travel is closed ({alone})")
        return route
    opposite = _closure_route(network, other, "ONE_DIRECTION", None)
    if not both:  # drawn against this carriageway, along the other one: the one meant
        opposite.note = f"{street!r} is a divided road there: closed on the carriageway that runs as drawn"
        return opposite
    if drawn.reversed:  # the points follow the other carriageway: it comes first, and nothing was reversed
        return replace(opposite, opposite=replace(route, note=None))
    return replace(route, opposite=opposite)


@dataclass(frozen=True, slots=True)
class Backwards:
    """Why the road network shows a line was drawn backwards: ``kind`` is ``"one-way"`` (it runs
    against a one-way road it cannot follow as drawn) or ``"carriageway"`` (it lies on one
    carriageway of a divided road in the direction of the other, clearly farther away)."""

    kind: str
    note: str


def as_drawn(network: RoadNetwork, route: ClosureRoute, points: FloatArray) -> ClosureRoute:
    """``route`` (and its other carriageway's) cut to the stretch the drawn ``points`` ((n, 2) lon/lat)
    span along it: a lane closure, works or a hazard lies where it was drawn, along the road; only a
    full closure goes out junction to junction. The edges stay the ones it lies on."""
    def cut(part: ClosureRoute) -> ClosureRoute:
        if len(part.polyline) < 2:
            return part
        lx, ly = network.frame.to_metric(part.polyline[:, 0], part.polyline[:, 1])
        px, py = network.frame.to_metric(points[:, 0], points[:, 1])
        along = np.concatenate(([0.0], np.cumsum(np.hypot(np.diff(lx), np.diff(ly)))))
        shape = np.column_stack((lx, ly))
        placed = [project_on_line(shape, float(x), float(y))[0] for x, y in zip(px, py, strict=True)]
        low, high = min(placed), max(placed)
        if high - low < 1.0:
            return part
        inner = (along > low) & (along < high)
        at = np.concatenate(([low], along[inner], [high]))
        lon, lat = network.frame.to_lonlat(np.interp(at, along, lx), np.interp(at, along, ly))
        return replace(part, polyline=np.column_stack((lon, lat)), length_m=high - low)

    opposite = cut(route.opposite) if route.opposite is not None else None
    return replace(cut(route), opposite=opposite)


def drawn_backwards(
    network: RoadNetwork, as_drawn: LineMatch, backwards: LineMatch, street: str | None
) -> Backwards | None:
    """Whether the network proves the line (matched ``as_drawn`` and reversed, ``backwards``) was
    drawn backwards; None when it does not (a two-way road can be closed either way)."""
    if not backwards.matched or backwards.covered_fraction < _PROOF_COVERAGE:
        return None
    if not all(network.edge_oneway(edge) for edge in backwards.edges):
        return None
    road = street or network.edge_name(backwards.edges[0]) or "the road"
    if not as_drawn.matched or as_drawn.covered_fraction < _FAILED_COVERAGE:
        return Backwards("one-way",
                         f"drawn against one-way {road!r}: {REVERSED} it (the road network proves it)")
    closer = as_drawn.distance_m - backwards.distance_m
    if closer >= _CARRIAGEWAY_GAP_M and backwards.distance_m <= _CARRIAGEWAY_RATIO * as_drawn.distance_m:
        return Backwards("carriageway", (
            f"drawn on one carriageway of {road!r} in the direction of the other: {REVERSED} the carriageway "
            f"it lies on ({backwards.distance_m:.0f} m from it, {as_drawn.distance_m:.0f} m from the other)"))
    return None


@dataclass
class _Drawn:
    """The path the operator's points give, and whether it runs from the last point to the first."""

    edges: list[int]
    reversed: bool = False
    note: str | None = None


def _drawn_path(
    network: RoadNetwork, street: str, points: FloatArray, x: FloatArray, y: FloatArray, snap_radius_m: float
) -> _Drawn | str:
    """The path along ``street`` through the points, or why there is none."""
    if len(points) > 2:
        matched, backwards = match_lines(network, [points, points[::-1].copy()])
        # the closure is of the named street: an end edge the line's noise took onto a crossing street is not
        matched.edges, backwards.edges = _street_ends(network, matched.edges, street), _street_ends(
            network, backwards.edges, street)
        proof = drawn_backwards(network, matched, backwards, street)
        if proof is not None and proof.kind == "one-way":
            return _Drawn(backwards.edges, reversed=True, note=proof.note)
        if not matched.matched:
            return f"the line does not follow a road: {matched.reason}"
        if proof is not None:  # the carriageway that runs as drawn is the one meant, as with two points
            return _Drawn(matched.edges, note=(
                f"{street!r} is a divided road there: the line lies on one carriageway against its direction; "
                f"closed the carriageway that runs as drawn ({matched.distance_m:.0f} m from the line)"))
        return _Drawn(matched.edges)
    start = _snap(network, float(x[0]), float(y[0]), street, snap_radius_m)
    end = _snap(network, float(x[-1]), float(y[-1]), street, snap_radius_m)
    if not start.edges or not end.edges:
        which = "start" if not start.edges else "end"
        return f"no segment of {street!r} within {snap_radius_m:g} m of the {which} point{_house_number_hint(street)}"
    found = _route(network, start, end, street)
    if any(network.twin(edge) < 0 for edge in start.edges + end.edges):
        # one-way there: a closure drawn against the street's direction follows it, reversed
        against = _route(network, end, start, street)
        if against is not None and (found is None or against.cost < found.cost):
            note = f"{street!r} is one-way there and the closure was drawn against it: reversed to follow it"
            return _Drawn(against.edges, reversed=True, note=note)
    if found is None:
        return f"no route along {street!r} from the start point to the end point"
    return _Drawn(found.edges)


def _other_carriageway(
    network: RoadNetwork, street: str, first: list[int], start: tuple[float, float], end: tuple[float, float],
) -> list[int] | None:
    """The path along the other carriageway of ``street``, from near ``end`` back to near ``start``
    (metric points, in the travel order of the path ``first``), or None when the street is not
    divided there.

    It is made of one-way segments of the street (none of ``first``'s) within ``OPPOSITE_RADIUS_M``
    of the points, heading against ``first`` where they snap and, start to end, antiparallel to it.
    """
    used = frozenset(int(link) for link in network.edge_link[first])
    used_links = np.fromiter(used, dtype=np.int64, count=len(used))
    heading = _bearing(network, first)

    def against_first(candidates: Candidates) -> BoolArray:
        links = network.edge_link[candidates.edge]
        against = heading_difference(candidates.bearing, np.full(len(links), heading)) > _AGAINST_DEG
        keep: BoolArray = (network.link_oneway[links] != 0) & ~np.isin(links, used_links) & against
        return keep

    back_from = _snap(network, *end, street, OPPOSITE_RADIUS_M, among=against_first)
    back_to = _snap(network, *start, street, OPPOSITE_RADIUS_M, among=against_first)
    if not back_from.edges or not back_to.edges:
        return None
    found = _route(network, back_from, back_to, street, avoid_links=used, street_only=True)
    if found is None:
        return None
    apart = heading_difference(np.array([_bearing(network, found.edges)]), np.array([heading]))
    return found.edges if float(apart[0]) > _ANTIPARALLEL_DEG else None


def _bearing(network: RoadNetwork, path: list[int]) -> float:
    """Heading from the start of a path to its end, degrees clockwise from north."""
    (x0, y0), (x1, y1) = network.edge_coords(path[0])[0], network.edge_coords(path[-1])[-1]
    return float(bearing_deg(np.array([x1 - x0]), np.array([y1 - y0]))[0])


def _closure_route(network: RoadNetwork, path: list[int], direction: str, note: str | None) -> ClosureRoute:
    """The closure along a path of directed edges: ``ONE_DIRECTION`` when all of them are one-way."""
    coords = [network.edge_lonlat(path[0])]
    coords.extend(network.edge_lonlat(edge)[1:] for edge in path[1:])
    streets: list[str] = []
    for edge in path:
        name = network.edge_name(edge)
        if name and name not in streets:
            streets.append(name)
    oneway = all(network.edge_oneway(edge) for edge in path)
    return ClosureRoute(
        edges=path,
        keys=network.edge_keys(path),
        polyline=np.vstack(coords),
        direction="ONE_DIRECTION" if oneway else direction,
        length_m=float(sum(network.edge_length(edge) for edge in path)),
        streets=streets,
        note=note,
        bearing_deg=_bearing(network, path),
    )


def _street_ends(network: RoadNetwork, edges: list[int], street: str) -> list[int]:
    """``edges`` without the end edges off ``street`` (all of them where none is on it)."""
    on = [k for k, edge in enumerate(edges) if _on_street(network, edge, street)]
    return edges[on[0] : on[-1] + 1] if on else edges


def _on_street(network: RoadNetwork, edge: int, street: str) -> bool:
    names = network.link_names[int(network.edge_link[edge])]
    return any(name_similarity(street, name) >= SAME_STREET for name in names)


@dataclass
class _Snap:
    """Where one of the operator's points lies: the directed edges of its nearest link(s) of the
    street, and how far along each (in that edge's travel direction) the point projects."""

    edges: list[int]
    along: list[float]


def _snap(
    network: RoadNetwork, x: float, y: float, street: str, radius: float,
    among: Callable[[Candidates], BoolArray] | None = None,
) -> _Snap:
    """The link of ``street`` nearest the point (links as near within ``_TIE_M``: a point at a junction),
    of the directed edges ``among`` keeps when it is given."""
    candidates = point_candidates(network, np.array([x]), np.array([y]), radius)
    keep = np.fromiter((_on_street(network, int(edge), street) for edge in candidates.edge), dtype=bool,
                       count=len(candidates.edge))
    if among is not None:
        keep &= among(candidates)
    if not keep.any():
        return _Snap([], [])
    distance = candidates.distance[keep]
    near = distance <= float(distance.min()) + _TIE_M
    edges, along = candidates.edge[keep][near], candidates.offset[keep][near]
    return _Snap([int(edge) for edge in edges], [float(value) for value in along])


@dataclass
class _Path:
    edges: list[int]
    cost: float


def _route(
    network: RoadNetwork, start: _Snap, end: _Snap, street: str, *,
    avoid_links: frozenset[int] = frozenset(), street_only: bool = False,
) -> _Path | None:
    """Cheapest path from the start point to the end point, travelling along directed edges.

    The cost counts only what is travelled: the rest of the start edge after the start point, whole
    edges between, and the goal edge up to the end point; other streets are heavily penalized (with
    ``street_only``, not taken at all), and ``avoid_links`` never. So the travel order of the two
    points decides the direction on a two-way street. A start edge the point lies at the very end of
    (or a goal edge it lies at the very start of) is a junction the point was put on; it is used only
    when there is nothing else.
    """
    ptr, out = network.adjacency()
    length = network.link_len[network.edge_link]
    count = network.edge_count
    starts = [(e, float(length[e]) - s) for e, s in zip(start.edges, start.along, strict=True)]
    if any(rest >= _TIE_M for _e, rest in starts):
        starts = [(e, rest) for e, rest in starts if rest >= _TIE_M]
    goals = dict(zip(end.edges, end.along, strict=True))
    if any(t >= _TIE_M for t in goals.values()):
        goals = {e: t for e, t in goals.items() if t >= _TIE_M}
    best: dict[int, float] = {}
    back: dict[int, int] = {}
    heap: list[tuple[float, int]] = []
    for edge, rest in starts:
        best[edge] = min(rest, best.get(edge, math.inf))
        heap.append((rest, edge))
        if edge in goals:  # both points on one directed edge, the end after the start
            direct = goals[edge] - (float(length[edge]) - rest)
            if direct >= 0.0 and direct < best.get(count + edge, math.inf):
                best[count + edge] = direct
                back[count + edge] = -1
                heap.append((direct, count + edge))
    heapq.heapify(heap)
    while heap:
        cost, state = heapq.heappop(heap)
        if cost > best.get(state, math.inf):
            continue
        if state >= count:  # arrived at the end point on goal edge ``state - count``
            goal = state - count
            path = [goal]
            edge = back[state]
            while edge >= 0:
                path.append(edge)
                edge = back.get(edge, -1)
            return _Path(path[::-1], cost)
        node = int(network.edge_v[state])
        for k in range(int(ptr[node]), int(ptr[node + 1])):
            nxt = int(out[k])
            link = int(network.edge_link[nxt])
            if link == network.edge_link[state] or link in avoid_links:
                continue  # no U-turn onto the same segment, and never a link the caller rules out
            on_street = _on_street(network, nxt, street)
            if street_only and not on_street:
                continue
            factor = 1.0 if on_street else _OFF_STREET_FACTOR
            moves = [(nxt, cost + float(length[nxt]) * factor)]
            if nxt in goals:
                moves.append((count + nxt, cost + goals[nxt] * factor))
            for target, total in moves:
                if total < best.get(target, math.inf):
                    best[target] = total
                    back[target] = state
                    heapq.heappush(heap, (total, target))
    return None


_HOUSE_NUMBER = re.compile(r"(\d+[A-Za-z]?)\s+(?=\S*[^\W\d_])")


def _house_number_hint(street: str) -> str:
    """What to try when a street name starts with what reads as a house number ("1200 9th Street").

    >>> _house_number_hint("1200 9th Street"), _house_number_hint("9th Street")
    (" (is '1200' a house number? the street's name alone is matched)", '')
    """
    found = _HOUSE_NUMBER.match(street.strip())
    return f" (is {found.group(1)!r} a house number? the street's name alone is matched)" if found else ""
