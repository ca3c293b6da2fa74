"""Closure routing on the synthetic city: whole segments of the named street, in travel order."""

from __future__ import annotations

import itertools

import numpy as np

from geo.closure import route_closure
from tests.support.synthetic import DirectedEdge, SyntheticCity, city_and_network


def _street_path(city: SyntheticCity, length: int = 3) -> list[DirectedEdge]:
    """A run of consecutive directed edges of one named two-way street in the city."""
    for edge in city.directed_edges:
        if edge.oneway or not edge.name:
            continue
        path = [edge]
        while len(path) < length:
            following = [e for e in city.out_edges(path[-1].to_node)
                         if e.name == edge.name and e.to_node != path[-1].from_node]
            if not following:
                break
            path.append(following[0])
        if len(path) == length:
            return path
    raise AssertionError("no street long enough")


def test_two_points_route_along_the_street_to_whole_segments() -> None:
    city, network = city_and_network()
    path = _street_path(city)
    first, last = path[0], path[-1]
    # points inside the first and last segments, not at junctions: the route still covers them whole
    start = city.to_lonlat(*first.coords_m[0] + (first.coords_m[-1] - first.coords_m[0]) * 0.3)
    end = city.to_lonlat(*last.coords_m[0] + (last.coords_m[-1] - last.coords_m[0]) * 0.6)
    route = route_closure(network, first.name, np.array([start, end]))
    assert route.reason is None
    assert route.keys == [edge.key for edge in path]
    assert route.direction == "BOTH_DIRECTIONS" and route.streets == [first.name]
    assert all(network.edge_v[a] == network.edge_u[b] for a, b in itertools.pairwise(route.edges))
    assert route.length_m == sum(network.edge_length(e) for e in route.edges)
    begin = np.array(city.to_lonlat(*first.coords_m[0]))
    assert np.allclose(route.polyline[0], begin, atol=1e-6)


def test_one_way_streets_are_one_direction() -> None:
    city, network = city_and_network()
    edge = next(e for e in city.directed_edges if e.oneway and e.name and e.length_m > 60)
    start = city.to_lonlat(*edge.coords_m[1 if len(edge.coords_m) > 2 else 0])
    end = city.to_lonlat(*edge.coords_m[-1])
    route = route_closure(network, edge.name, np.array([start, end]))
    assert route.direction == "ONE_DIRECTION" and edge.key in route.keys


def test_no_route_is_a_reason_not_an_error() -> None:
    _city, network = city_and_network()
    lon, lat = network.frame.to_lonlat(network.coords[:1, 0], network.coords[:1, 1])
    route = route_closure(network, "Nonexistent Boulevard", np.array([[lon[0], lat[0]], [lon[0] + 0.001, lat[0]]]))
    assert not route.edges and "Nonexistent Boulevard" in (route.reason or "")
    assert route_closure(network, "x", np.array([[0.0, 0.0]])).reason


def _at(city: SyntheticCity, edge: DirectedEdge, fraction: float) -> tuple[float, float]:
    """(lon, lat) of the point ``fraction`` of the way along the straight chord of a directed edge."""
    return city.to_lonlat(*edge.coords_m[0] + (edge.coords_m[-1] - edge.coords_m[0]) * fraction)


def test_the_order_of_two_points_on_one_segment_decides_the_direction() -> None:
    city, network = city_and_network()
    edge = _street_path(city, 1)[0]
    forward = route_closure(network, edge.name or "", np.array([_at(city, edge, 0.3), _at(city, edge, 0.7)]),
                            direction="ONE_DIRECTION")
    backward = route_closure(network, edge.name or "", np.array([_at(city, edge, 0.7), _at(city, edge, 0.3)]),
                             direction="ONE_DIRECTION")
    assert forward.keys == [edge.key] and forward.direction == "ONE_DIRECTION"
    assert backward.keys == [(edge.way_id, edge.to_node, edge.from_node)]
    assert np.allclose(forward.polyline[::-1], backward.polyline)
    assert forward.note is None and backward.note is None


def test_the_order_of_two_points_on_two_segments_decides_the_direction() -> None:
    city, network = city_and_network()
    path = _street_path(city, 2)
    points = np.array([_at(city, path[0], 0.5), _at(city, path[1], 0.5)])
    forward = route_closure(network, path[0].name or "", points)
    backward = route_closure(network, path[0].name or "", points[::-1])
    assert forward.keys == [edge.key for edge in path]
    assert backward.keys == [(e.way_id, e.to_node, e.from_node) for e in path[::-1]]


def test_the_end_segment_is_kept_when_the_end_point_is_near_the_start_segment() -> None:
    city, network = city_and_network()
    path = _street_path(city, 2)
    # the end point is 20 % into the second segment: well within 50 m of the first one
    route = route_closure(network, path[0].name or "", np.array([_at(city, path[0], 0.5), _at(city, path[1], 0.2)]))
    assert route.keys == [edge.key for edge in path]
    # and a start point just before the junction does not take the segment behind it for the start
    route = route_closure(network, path[0].name or "", np.array([_at(city, path[0], 0.8), _at(city, path[1], 0.5)]))
    assert route.keys == [edge.key for edge in path]


def test_a_closure_drawn_against_a_one_way_street_is_reversed_with_a_note() -> None:
    city, network = city_and_network()
    edge = next(e for e in city.directed_edges if e.oneway and e.name and e.length_m > 60)
    route = route_closure(network, edge.name or "", np.array([_at(city, edge, 0.7), _at(city, edge, 0.3)]))
    assert route.keys == [edge.key] and route.direction == "ONE_DIRECTION"
    assert route.note is not None and "one-way" in route.note and "reversed" in route.note
    along = route_closure(network, edge.name or "", np.array([_at(city, edge, 0.3), _at(city, edge, 0.7)]))
    # nothing reversed; both directions were asked (the default) of a plain one-way street: said so
    assert along.keys == [edge.key] and along.note is not None and "reversed" not in along.note
    assert "only its direction" in along.note and along.opposite is None
