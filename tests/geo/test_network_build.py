"""build_network: links cleaned like clean_line, the same network from a dict or a NodeTable."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

from geo.network import NodeTable, RoadNetwork, build_network
from geo.types import WayInput
from tests.support.synthetic import make_city

CRS = "EPSG:32610"
LAT = 37.80
DEG_PER_M = 1 / 88_000  # about a metre of longitude at 37.8 degrees north


def east(metres: float) -> tuple[float, float]:
    return (-122.28 + metres * DEG_PER_M, LAT)


def same_network(a: RoadNetwork, b: RoadNetwork) -> bool:
    for spec in fields(RoadNetwork):
        if spec.name == "_cache":
            continue
        x, y = getattr(a, spec.name), getattr(b, spec.name)
        if isinstance(x, np.ndarray):
            if x.dtype != y.dtype or not np.array_equal(x, y):
                return False
        elif x != y:
            return False
    return True


def test_spikes_repeated_points_and_unknown_nodes_are_cleaned_per_link() -> None:
    nodes = {
        1: east(0), 2: east(100), 3: east(200),  # plain
        4: east(300), 5: east(450), 6: east(350), 7: east(400),  # 5 is a spike: out and straight back
        8: east(500), 9: east(500), 10: east(600),  # 9 sits on 8
        11: east(700), 12: east(800),
    }  # fmt: skip
    ways = [
        WayInput(1, (1, 2, 3), {"name": "A St"}),
        WayInput(2, (3, 4, 5, 6, 7), {"name": "B St"}),
        WayInput(3, (7, 8, 9, 99, 10), {"name": "C St"}),  # 99 is unknown: dropped
        WayInput(4, (10, 98, 97), {}),  # one known node left: no link
        WayInput(5, (10, 11, 11, 12), {"oneway": "yes"}),  # repeated, so a junction: two links, no zero one
    ]
    network = build_network(nodes, ways, crs=CRS)
    sizes = np.diff(network.link_coord_ptr).tolist()
    assert network.link_way.tolist() == [1, 2, 3, 5, 5]
    ends = list(zip(network.link_a.tolist(), network.link_b.tolist(), strict=True))
    assert ends == [(1, 3), (3, 7), (7, 10), (10, 11), (11, 12)]
    assert sizes == [3, 4, 3, 2, 2]  # B St loses its spike (5), C St the point on top of 8 (9)
    b_street = network.link_coords(1)
    assert np.allclose(b_street[:, 0] - b_street[0, 0], [0, 100, 150, 200], atol=0.5)
    assert np.allclose(network.link_len, [200, 200, 200, 100, 100], atol=0.5)
    assert network.edge_count == 8  # three two-way links and two one-way ones


def test_a_spike_only_link_has_no_length_and_is_dropped() -> None:
    nodes = {1: east(0), 2: east(0.001), 3: east(100), 4: east(200)}
    network = build_network(nodes, [WayInput(1, (1, 2), {}), WayInput(2, (2, 3, 4), {})], crs=CRS)
    assert network.link_way.tolist() == [2]


def test_a_node_table_gives_the_network_a_dict_gives() -> None:
    city = make_city(seed=3, blocks=12)
    ids = list(city.nodes)
    table = NodeTable(ids, [city.nodes[i][0] for i in ids], [city.nodes[i][1] for i in ids])
    assert same_network(build_network(city.nodes, city.ways), build_network(table, city.ways))


def test_node_table_is_a_mapping_where_the_last_coordinates_win() -> None:
    table = NodeTable([5, 2, 5], [1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert dict(table) == {2: (2.0, 5.0), 5: (3.0, 6.0)}
    assert table == {2: (2.0, 5.0), 5: (3.0, 6.0)}
    assert "5" not in table and 2**70 not in table and 7 not in table
    with pytest.raises(KeyError):
        table[7]
    assert table.subset(np.array([5, 9, 5])).ids.tolist() == [5]


def test_no_known_node_is_an_error() -> None:
    with pytest.raises(ValueError, match="no way has known nodes"):
        build_network({}, [WayInput(1, (1, 2), {})])
    with pytest.raises(ValueError, match="no way yields a road segment"):
        build_network({1: east(0), 2: east(0)}, [WayInput(1, (1, 2), {})], crs=CRS)
