"""Closure routing: the polyline a closure feed needs, following one street between two points.

Waze closes whole segments and expects the polyline to follow the road from junction to
junction. Given a street name and two points (or a rough line drawn by an operator), this finds
the directed edges of that street between them, extends the ends to whole edges, and returns
the polyline in travel order with its direction: ``ONE_DIRECTION`` when the street is one-way
there, otherwise what the caller asked for.
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


def _on_street(network: RoadNetwork, edge: int, street: str) -> bool:
    names = network.link_names[int(network.edge_link[edge])]
    return any(name_similarity(street, name) >= _SAME_STREET for name in names)


def _nearest_on_street(network: RoadNetwork, x: float, y: float, street: str, radius: float) -> list[int]:
    candidates = point_candidates(network, np.array([x]), np.array([y]), radius)
    order = np.argsort(candidates.distance)
    return [int(candidates.edge[k]) for k in order if _on_street(network, int(candidates.edge[k]), street)]


def _route(network: RoadNetwork, starts: list[int], goals: set[int], street: str) -> list[int] | None:
    """Cheapest edge path from any start edge to any goal edge, other streets heavily penalized."""
    ptr, out = network.adjacency()
    length = network.link_len[network.edge_link]
    best: dict[int, float] = {}
    back: dict[int, int] = {}
    heap: list[tuple[float, int]] = []
    for edge in starts:
        best[edge] = 0.0
        heap.append((0.0, edge))
    heapq.heapify(heap)
    while heap:
        cost, edge = heapq.heappop(heap)
        if cost > best.get(edge, math.inf):
            continue
        if edge in goals:
            path = [edge]
            while path[-1] in back:
                path.append(back[path[-1]])
            return path[::-1]
        node = int(network.edge_v[edge])
        for k in range(int(ptr[node]), int(ptr[node + 1])):
            nxt = int(out[k])
            if network.edge_link[nxt] == network.edge_link[edge]:
                continue  # no U-turn onto the same segment
            step = float(length[nxt]) * (1.0 if _on_street(network, nxt, street) else _OFF_STREET_FACTOR)
            if cost + step < best.get(nxt, math.inf):
                best[nxt] = cost + step
                back[nxt] = edge
                heapq.heappush(heap, (cost + step, nxt))
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

    With two points the route runs from the first to the second along the street; with more, the
    line is map-matched first and the route covers every matched edge. The result covers whole
    edges, junction to junction.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(points) < 2 or not np.isfinite(points).all():
        return ClosureRoute(reason="a closure needs at least two valid points")
    x, y = network.frame.to_metric(points[:, 0], points[:, 1])
    if len(points) > 2:
        matched = match_lines(network, [points])[0]
        if not matched.matched:
            return ClosureRoute(reason=f"the line does not follow a road: {matched.reason}")
        path: list[int] | None = matched.edges
    else:
        starts = _nearest_on_street(network, float(x[0]), float(y[0]), street, snap_radius_m)
        ends = _nearest_on_street(network, float(x[-1]), float(y[-1]), street, snap_radius_m)
        if not starts or not ends:
            which = "start" if not starts else "end"
            return ClosureRoute(reason=f"no segment of {street!r} within {snap_radius_m:g} m of the {which} point")
        path = _route(network, starts, set(ends), street)
        if path is None:
            return ClosureRoute(reason=f"no route along {street!r} from the start point to the end point")
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
    )
