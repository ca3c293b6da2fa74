from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import pytest

from exchange import validation
from exchange.validation import (
    json_path,
    validate_cifs_json,
    validate_cifs_xml,
    validate_feed,
    validate_wzdx,
)
from feeds.city import city_event
from feeds.wzdx import render_wzdx

ROOT = Path(__file__).resolve().parents[1]
XSD_SHA256 = "7cbcc65123d5339dc7ef9e0836cd9a027ec1b7759172db93c0583bcded62f724"
GOOD_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<incidents timestamp="2024-07-12T08:00:00-05:00">
  <incident id="CITY-000123">
    <type>ROAD_CLOSED</type>
    <subtype>ROAD_CLOSED_CONSTRUCTION</subtype>
    <description>Bridge replacement</description>
    <street>I-71</street>
    <polyline>39.414714 -84.091134 39.423646 -84.091072 39.423669 -84.123952</polyline>
    <direction>BOTH_DIRECTIONS</direction>
    <starttime>2024-07-12T00:00:00-05:00</starttime>
    <endtime>2024-08-30T23:59:00-05:00</endtime>
    <schedule><monday>08:00-17:00</monday><friday>08:00-12:00</friday></schedule>
  </incident>
</incidents>
"""


# --------------------------------------------------------------------------- the shipped schemas


def test_the_xsd_ships_byte_for_byte_with_its_origin(testdata: Path) -> None:
    schemas = resources.files("exchange") / "schemas"
    shipped = (schemas / "cifsv2.xsd").read_bytes()
    assert hashlib.sha256(shipped).hexdigest() == XSD_SHA256
    assert shipped == (testdata / "cifs" / "cifsv2.xsd").read_bytes()
    note = (schemas / "cifsv2.SOURCE.md").read_text(encoding="utf-8")
    assert "https://www.gstatic.com/road-incidents/cifsv2.xsd" in note and XSD_SHA256 in note and "2023-11-07" in note


def test_the_wzdx_and_geojson_schemas_ship_unchanged_with_licences(testdata: Path) -> None:
    schemas = resources.files("exchange") / "schemas"
    originals = testdata / "wzdx" / "schemas"
    for name in ("WorkZoneFeed.json", "RoadEventFeature.json", "FeedInfo.json", "Direction.json", "BoundingBox.json"):
        assert (schemas / "wzdx" / "4.2" / name).read_bytes() == (originals / "4.2" / name).read_bytes()
    for name in ("Point.json", "LineString.json", "MultiPoint.json"):
        assert (schemas / "geojson" / name).read_bytes() == (originals / "geojson" / name).read_bytes()
    assert "CC0" in (schemas / "wzdx" / "SOURCE.md").read_text(encoding="utf-8")
    licence = (schemas / "geojson" / "LICENSE.md").read_text(encoding="utf-8")
    assert "Copyright (c) 2018 Tim Schaub" in licence and "MIT" in licence


def test_every_ref_resolves_from_the_packaged_schemas() -> None:
    registry, root = validation._wzdx_schemas()
    wanted = {"https://geojson.org/schema/LineString.json", "https://geojson.org/schema/MultiPoint.json",
              "https://geojson.org/schema/Point.json", root["$id"]}
    assert wanted <= set(registry)


def test_package_data_lists_the_schemas() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["exchange"]
    assert {"schemas/*.xsd", "schemas/*.md", "schemas/**/*.json", "schemas/**/*.md"} <= set(patterns)


# --------------------------------------------------------------------------- CIFS


def test_a_valid_cifs_feed() -> None:
    assert validate_cifs_xml(GOOD_XML) == []
    assert validate_feed(GOOD_XML) == ("cifs-xml", [])


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        (b"<monday>08:00-17:00</monday><friday>08:00-12:00</friday>",
         b"<friday>08:00-12:00</friday><monday>08:00-17:00</monday>", 12,
         "Element 'monday': This element is not expected"),
        (b"<monday>08:00-17:00</monday>", b"<monday>8-17</monday>", 12, "'8-17' is not accepted by the pattern"),
        (b'id="CITY-000123"', b'id="C1"', 3, "length"),
        (b"<description>Bridge replacement</description>", b"", 3, "Missing child element"),
        (b"<street>I-71</street>", b"<street>I</street>", 7, "length"),
        (b"<type>ROAD_CLOSED</type>", b"<type>PARADE</type>", 4, "PARADE"),
    ],
)
def test_the_xsd_rejects_with_a_line(old: bytes, new: bytes, line: int, message: str) -> None:
    problems = validate_cifs_xml(GOOD_XML.replace(old, new))
    assert any(p.location == f"line {line}" and message in p.message for p in problems), problems


def test_rules_beyond_the_xsd_are_reported_by_the_validator() -> None:
    naive = GOOD_XML.replace(b"<starttime>2024-07-12T00:00:00-05:00", b"<starttime>2024-07-12T00:00:00")
    assert [p.message.split(":")[0] for p in validate_cifs_xml(naive)] == ["starttime"]
    one_point = GOOD_XML.replace(b"39.414714 -84.091134 39.423646 -84.091072 39.423669 -84.123952", b"39.41 -84.09")
    assert any("one point" in p.message for p in validate_cifs_xml(one_point))
    mismatch = GOOD_XML.replace(b"ROAD_CLOSED_CONSTRUCTION", b"ACCIDENT_MINOR")
    assert any("does not belong to type ROAD_CLOSED" in p.message for p in validate_cifs_xml(mismatch))


@pytest.mark.parametrize(
    ("payload", "message"),
    [(b"<incidents><incident>", "malformed XML"),
     (b'<!DOCTYPE x [<!ENTITY a "b">]><incidents/>', "DOCTYPE")],
)
def test_unreadable_xml(payload: bytes, message: str) -> None:
    assert message in validate_cifs_xml(payload)[0].message


def test_cifs_json() -> None:
    incident = {"id": "ABC-1", "type": "HAZARD", "subtype": "ACCIDENT_MINOR", "street": "Main St",
                "description": "x", "polyline": "40.1 -74.1 40.2 -74.2"}
    problems = validate_cifs_json(orjson.dumps({"incidents": [{"incident": incident}]}))
    assert [p.location for p in problems] == ["incidents[0]: incident 'ABC-1'"]
    assert "does not belong" in problems[0].message


# --------------------------------------------------------------------------- WZDx


def _feed(testdata: Path) -> dict[str, Any]:
    data = (testdata / "wzdx" / "examples" / "scenario1_simple_linestring_example.geojson").read_bytes()
    document: dict[str, Any] = orjson.loads(data)
    return document


def test_schema_errors_have_json_paths(testdata: Path) -> None:
    document = _feed(testdata)
    del document["features"][1]["properties"]["vehicle_impact"]
    document["features"][2]["properties"]["core_details"]["direction"] = "upward"
    document["features"][3]["geometry"]["coordinates"] = [[1.0, 2.0]]
    problems = validate_wzdx(orjson.dumps(document))
    locations = {p.location: p.message for p in problems}
    assert "'vehicle_impact' is a required property" in locations["$.features[1].properties"]
    assert "'upward' is not one of" in locations["$.features[2].properties.core_details.direction"]
    assert any(location.startswith("$.features[3].geometry") for location in locations)
    assert all(p.severity == "error" for p in problems)


def test_cached_feature_errors_follow_the_feature(testdata: Path) -> None:
    document = _feed(testdata)
    broken = copy.deepcopy(document["features"][0])
    broken["properties"]["location_method"] = "guesswork"
    document["features"] = [broken]
    first = validate_wzdx(orjson.dumps(document))
    document["features"] = [_feed(testdata)["features"][1], _feed(testdata)["features"][2], broken]
    again = validate_wzdx(orjson.dumps(document))
    assert [p.location for p in first] == ["$.features[0].properties.location_method"]
    assert [p.location for p in again] == ["$.features[2].properties.location_method"]


def test_the_inlined_feature_schema_checks_what_the_registry_does(testdata: Path) -> None:
    good = _feed(testdata)["features"]
    devices = orjson.loads((testdata / "wzdx" / "examples" / "camera_error_example.geojson").read_bytes())["features"]
    broken = copy.deepcopy(good[:4])
    del broken[0]["properties"]["start_date"]
    broken[1]["properties"]["lanes"][0]["type"] = "hovercraft"
    broken[2]["geometry"] = {"type": "Polygon", "coordinates": []}
    broken[3]["properties"]["core_details"]["event_type"] = "parade"
    feed_info = _feed(testdata)["feed_info"]
    for feature in [*good, *devices, *broken]:
        inlined = {leaf for e in validation._feature_validator().iter_errors(feature)
                   for leaf in validation._schema_errors(e)}
        document = {"type": "FeatureCollection", "features": [feature], "feed_info": feed_info}
        whole = {(path[2:], message) for e in validation.wzdx_validator().iter_errors(document)
                 for path, message in validation._schema_errors(e)}
        assert inlined == whole
        assert bool(inlined) == (feature in devices or feature in broken)


def test_business_rules(testdata: Path) -> None:
    document = _feed(testdata)
    features = document["features"]
    features[0]["properties"]["core_details"]["data_source_id"] = "nobody"
    features[1]["properties"]["start_date"] = "2026-07-12T08:00:00-05:00"
    features[2]["id"] = features[3]["id"]
    features[3]["properties"]["lanes"][0]["order"] = 7
    features[4]["properties"]["end_date"] = features[4]["properties"]["start_date"]
    features[2]["geometry"]["coordinates"][1] = [200.0, 95.0]
    problems = {p.location: p.message for p in validate_wzdx(orjson.dumps(document))}
    assert "no place on Earth" in problems["$.features[2].geometry.coordinates[1]"]
    assert "'nobody' is not a data_source_id" in problems["$.features[0].properties.core_details.data_source_id"]
    assert "not UTC" in problems["$.features[1].properties.start_date"]
    assert "duplicate id" in problems["$.features[3].id"]
    assert "not 1.." in problems["$.features[3].properties.lanes"]
    assert "not after start_date" in problems["$.features[4].properties.end_date"]


def test_other_wzdx_versions_are_named() -> None:
    old = {"road_event_feed_info": {"version": "3.1"}, "type": "FeatureCollection", "features": []}
    problems = validate_wzdx(orjson.dumps(old))
    assert len(problems) == 1 and "'3.1'" in problems[0].message
    assert "malformed JSON" in validate_wzdx(b"{")[0].message


def test_our_wzdx_output_validates() -> None:
    event = city_event("city", "V-1", type="ROAD_CLOSED", subtype="ROAD_CLOSED_EVENT", street="Main Street",
                       coordinates=[(-89.65, 39.78), (-89.64, 39.78)], zone=UTC, direction="BOTH_DIRECTIONS",
                       start="2026-07-12T08:00:00Z")
    data = render_wzdx([event], feed_info={"publisher": "Springfield"}, generated=datetime(2026, 7, 1, tzinfo=UTC))
    assert validate_feed(data) == ("wzdx", [])


def test_json_path() -> None:
    assert json_path([]) == "$"
    assert json_path(["a", 0, "b"]) == "$.a[0].b"


# --------------------------------------------------------------------------- every sample through validate_feed

SAMPLES = {
    "cifs/dialog_expected_cifsv2.xml": ("cifs-xml", 0),
    "cifs/london_on_traffic-incidents_20180412.xml": ("cifs-xml", 44),
    "cifs/london_on_cifs_example.xml": ("cifs-xml", 1),
    "cifs/icone/icone_cdot_20230522.xml": ("cifs-xml", None),
    "cifs/icone/icone_incidents_extended_2020-08-21.xml": ("cifs-xml", None),
    "wzdx/cdot_prod_wzdx_v42_20230522.json": ("wzdx", 0),
    "wzdx/examples/arrow_board_ok_example.geojson": ("wzdx-device", 0),  # field devices: the DeviceFeed schema
    "wzdx/examples/camera_error_example.geojson": ("wzdx-device", 0),
    **{f"wzdx/examples/scenario{n}.geojson": ("wzdx", 0) for n in (
        "1_simple_linestring_example", "1_simple_multipoint_example", "2_laneshift_linestring_example",
        "3_shoulder_bidirectional_linestring_example", "4_detour_linestring_example",
        "5_recurring_linestring_example", "6_multi_lane_closure_linestring_example",
        "7_mobileoperation_linestring_example", "8_local_access_only_bidirectional_linestring_example",
    )},
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_validate_feed_on_every_sample(testdata: Path, name: str) -> None:
    kind, count = SAMPLES[name]
    detected, problems = validate_feed((testdata / name).read_bytes())
    errors = [p for p in problems if p.severity == "error"]
    assert detected == kind
    if count is None:
        assert errors  # iCone's dialect and device feeds are not valid work zone / cifsv2 feeds
    else:
        assert len(errors) == count, errors[:3]


def test_the_legacy_london_feed_fails_cifsv2_for_its_location_wrapper(testdata: Path) -> None:
    _, problems = validate_feed((testdata / "cifs" / "london_on_traffic-incidents_20180412.xml").read_bytes())
    assert all("Missing child element(s)" in p.message for p in problems)


def test_unknown_payloads() -> None:
    assert validate_feed(b"hello")[0] == "unknown"
    assert validate_feed(b'{"alerts": []}')[0] == "unknown"
    assert validate_feed(b"{oops")[0] == "unknown"


def test_the_fast_validator_agrees_with_jsonschema(testdata: Path) -> None:
    """jsonschema-rs only confirms valid feeds; it must never call valid what jsonschema refuses."""


    from exchange.validation import _fast_validator, wzdx_validator

    samples = sorted((testdata / "wzdx" / "examples").glob("scenario*.geojson"))
    samples.append(testdata / "wzdx" / "cdot_prod_wzdx_v42_20230522.json")
    for path in samples:
        document = json.loads(path.read_bytes())
        assert _fast_validator().is_valid(document) == wzdx_validator().is_valid(document), path.name
        broken = json.loads(path.read_bytes())
        broken["features"][0]["properties"]["core_details"]["direction"] = "sideways"
        assert not _fast_validator().is_valid(broken) and not wzdx_validator().is_valid(broken), path.name


@pytest.mark.parametrize("name", ["arrow_board_ok_example.geojson", "camera_error_example.geojson"])
def test_a_wzdx_device_feed_is_checked_against_the_device_feed_schema(testdata: Path, name: str) -> None:
    """Field device feeds (arrow boards, cameras) are WZDx too: checked against ``DeviceFeed.json``,
    not reported as a broken work zone feed (found in a cold trial: 7 errors, exit 1)."""
    data = (testdata / "wzdx" / "examples" / name).read_bytes()
    assert validate_feed(data) == ("wzdx-device", [])
    broken = json.loads(data)
    del broken["features"][0]["properties"]["core_details"]["device_status"]
    kind, problems = validate_feed(json.dumps(broken).encode())
    assert kind == "wzdx-device" and problems and "device_status" in problems[0].message, problems


def test_xml_of_another_kind_is_named_by_its_root(testdata: Path) -> None:
    kind, problems = validate_feed((testdata / "cifs" / "cifsv2.xsd").read_bytes())
    assert kind == "unknown" and "root is <xs:schema>: not a CIFS feed" in problems[0].message
