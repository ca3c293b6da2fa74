"""Closing both directions of a divided road on the synthetic city: its dual carriageways are two
one-way ways 12-18 m apart, so a closure of both directions is two routes, each along its own
carriageway in that carriageway's travel direction."""

from __future__ import annotations

import itertools

import numpy as np

from geo.closure import route_closure
from geo.network import heading_difference
from tests.support.synthetic import DirectedEdge, SyntheticCity, city_and_network


def _carriageway_run(city: SyntheticCity, length: int = 3) -> tuple[list[DirectedEdge], tuple[str, int, int]]:
    """Consecutive directed edges along one carriageway of a dual carriageway, and which one it is."""
    for (axis, street, side), ways in sorted(city.carriageways.items()):
        edges = [e for e in city.directed_edges if e.way_id in ways and e.length_m > 40]
        for edge in edges:
            path = [edge]
            while len(path) < length:
                following = [e for e in city.out_edges(path[-1].to_node) if e.way_id in ways]
                if not following:
                    break
                path.append(following[0])
            if len(path) == length and path[-1].length_m > 40:
                return path, (axis, street, side)
    raise AssertionError("no carriageway long enough")


def _at(city: SyntheticCity, edge: DirectedEdge, fraction: float) -> tuple[float, float]:
    return city.to_lonlat(*edge.coords_m[0] + (edge.coords_m[-1] - edge.coords_m[0]) * fraction)


def test_both_directions_of_a_dual_carriageway_route_both_carriageways() -> None:
    city, network = city_and_network()
    path, (axis, street, side) = _carriageway_run(city)
    name = path[0].name or ""
    points = np.array([_at(city, path[0], 0.5), _at(city, path[-1], 0.5)])
    route = route_closure(network, name, points, direction="BOTH_DIRECTIONS")
    assert route.keys == [edge.key for edge in path] and route.direction == "ONE_DIRECTION"
    opposite = route.opposite
    assert opposite is not None and opposite.direction == "ONE_DIRECTION" and opposite.opposite is None
    other_side = set(city.carriageways[(axis, street, 1 - side)])
    assert all(city.has_edge(key) and key[0] in other_side for key in opposite.keys), opposite.keys
    assert all(network.edge_v[a] == network.edge_u[b] for a, b in itertools.pairwise(opposite.edges))
    assert route.bearing_deg is not None and opposite.bearing_deg is not None
    assert heading_difference(np.array([route.bearing_deg]), np.array([opposite.bearing_deg]))[0] > 135
    # the other carriageway is closed where the points are, from the end back to the start
    for edge in (path[0], path[-1]):
        twin = city.opposite_at(edge.key, edge.length_m / 2)
        assert twin is not None and twin[0] in opposite.keys
    assert route.note is None and opposite.note is None


def test_points_drawn_against_the_carriageway_they_lie_on_close_the_other_one_first() -> None:
    city, network = city_and_network()
    path, _carriageway = _carriageway_run(city)
    name = path[0].name or ""
    points = np.array([_at(city, path[-1], 0.5), _at(city, path[0], 0.5)])  # against ``path``
    both = route_closure(network, name, points, direction="BOTH_DIRECTIONS")
    assert both.opposite is not None and both.opposite.keys == [edge.key for edge in path]
    assert both.note is None  # nothing was reversed: the first closure runs as drawn
    one = route_closure(network, name, points, direction="ONE_DIRECTION")
    assert one.keys == both.keys and one.opposite is None
    assert one.note is not None and "divided road" in one.note


def test_a_one_way_street_of_both_directions_says_only_its_direction_is_closed() -> None:
    city, network = city_and_network()
    dual = {way for ways in city.carriageways.values() for way in ways}
    edge = next(e for e in city.directed_edges if e.oneway and e.name and e.length_m > 60 and e.way_id not in dual)
    route = route_closure(network, edge.name or "", np.array([_at(city, edge, 0.3), _at(city, edge, 0.7)]))
    assert route.keys == [edge.key] and route.direction == "ONE_DIRECTION" and route.opposite is None
    assert route.note is not None and "only its direction of travel is closed" in route.note
    assert route_closure(network, edge.name or "", np.array([_at(city, edge, 0.3), _at(city, edge, 0.7)]),
                         direction="ONE_DIRECTION").note is None
