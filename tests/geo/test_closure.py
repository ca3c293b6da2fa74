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
