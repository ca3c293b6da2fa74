"""Closure routing: the polyline a closure feed needs, following one street between two points.

Waze closes whole segments and expects the polyline to follow the road from junction to
junction. Given a street name and two points (or a rough line drawn by an operator), this finds
the directed edges of that street between them, extends the ends to whole edges, and returns
the polyline in travel order with its direction: ``ONE_DIRECTION`` when the street is one-way
there, otherwise what the caller asked for.

Each of two points snaps to the street's segment nearest it, and the travel order of the points
decides the direction: from A to B and from B to A close opposite sides of a two-way street. A
closure drawn against a one-way street is reversed to follow it, with a ``note`` saying so.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from geo.linematch import match_lines
from geo.match import point_candidates
from geo.names import name_similarity
from geo.network import EdgeKey, RoadNetwork

__all__ = ["ClosureRoute", "route_closure"]

FloatArray = npt.NDArray[np.float64]

#: cost factor for an edge of another street: the route may cross a junction's other street,
#: but never prefers it over the named one
_OFF_STREET_FACTOR = 20.0
_SAME_STREET = 0.8
#: metres: links this much farther from a point than the nearest are as near (a point at a junction)
_TIE_M = 1.0


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
    #: what the operator should be told about the route (a closure drawn against a one-way street)
    note: str | None = None


def _on_street(network: RoadNetwork, edge: int, street: str) -> bool:
    names = network.link_names[int(network.edge_link[edge])]
    return any(name_similarity(street, name) >= _SAME_STREET for name in names)


@dataclass
class _Snap:
    """Where one of the operator's points lies: the directed edges of its nearest link(s) of the
    street, and how far along each (in that edge's travel direction) the point projects."""

    edges: list[int]
    along: list[float]


def _snap(network: RoadNetwork, x: float, y: float, street: str, radius: float) -> _Snap:
    """The link of ``street`` nearest the point (links as near within ``_TIE_M``: a point at a junction)."""
    candidates = point_candidates(network, np.array([x]), np.array([y]), radius)
    keep = np.fromiter((_on_street(network, int(edge), street) for edge in candidates.edge), dtype=bool,
                       count=len(candidates.edge))
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


def _route(network: RoadNetwork, start: _Snap, end: _Snap, street: str) -> _Path | None:
    """Cheapest path from the start point to the end point, travelling along directed edges.

    The cost counts only what is travelled: the rest of the start edge after the start point, whole
    edges between, and the goal edge up to the end point; other streets are heavily penalized. So
    the travel order of the two points decides the direction on a two-way street. A start edge the
    point lies at the very end of (or a goal edge it lies at the very start of) is a junction the
    point was put on; it is used only when there is nothing else.
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
            if network.edge_link[nxt] == network.edge_link[state]:
                continue  # no U-turn onto the same segment
            factor = 1.0 if _on_street(network, nxt, street) else _OFF_STREET_FACTOR
            moves = [(nxt, cost + float(length[nxt]) * factor)]
            if nxt in goals:
                moves.append((count + nxt, cost + goals[nxt] * factor))
            for target, total in moves:
                if total < best.get(target, math.inf):
                    best[target] = total
                    back[target] = state
                    heapq.heappush(heap, (total, target))
    return None


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
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(points) < 2 or not np.isfinite(points).all():
        return ClosureRoute(reason="a closure needs at least two valid points")
    x, y = network.frame.to_metric(points[:, 0], points[:, 1])
    note: str | None = None
    if len(points) > 2:
        matched = match_lines(network, [points])[0]
        if not matched.matched:
            return ClosureRoute(reason=f"the line does not follow a road: {matched.reason}")
        path: list[int] | None = matched.edges
    else:
        start = _snap(network, float(x[0]), float(y[0]), street, snap_radius_m)
        end = _snap(network, float(x[-1]), float(y[-1]), street, snap_radius_m)
        if not start.edges or not end.edges:
            which = "start" if not start.edges else "end"
            return ClosureRoute(reason=f"no segment of {street!r} within {snap_radius_m:g} m of the {which} point")
        found = _route(network, start, end, street)
        if any(network.twin(edge) < 0 for edge in start.edges + end.edges):
            # one-way there: a closure drawn against the street's direction follows it, reversed
            against = _route(network, end, start, street)
            if against is not None and (found is None or against.cost < found.cost):
                found = against
                note = f"{street!r} is one-way there and the closure was drawn against it: reversed to follow it"
        if found is None:
            return ClosureRoute(reason=f"no route along {street!r} from the start point to the end point")
        path = found.edges
    assert path is not None
    coords = [network.edge_lonlat(path[0])]
    coords.extend(network.edge_lonlat(edge)[1:] for edge in path[1:])
    polyline = np.vstack(coords)
    streets: list[str] = []
    for edge in path:
        name = network.edge_name(edge)
        if name and name not in streets:
            streets.append(name)
    oneway = all(network.edge_oneway(edge) for edge in path)
    return ClosureRoute(
        edges=path,
        keys=network.edge_keys(path),
        polyline=polyline,
        direction="ONE_DIRECTION" if oneway else direction,
        length_m=float(sum(network.edge_length(edge) for edge in path)),
        streets=streets,
        note=note,
    )
