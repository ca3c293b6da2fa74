from __future__ import annotations

import copy
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from exchange.errors import ItemRejected, MalformedPayload, UsageError
from exchange.model import Category, Event, Kind
from exchange.validation import validate_cifs_xml, validate_wzdx
from feeds.cifs import CREATED_KEY, UPDATED_KEY, parse_cifs, render_cifs_xml
from feeds.city import city_event
from feeds.items import FeedItem, Snapshot, digest
from feeds.wzdx import (
    CC0_LICENSE,
    REVERSE_SUFFIX,
    WZDX_KEY,
    line_direction,
    parse_wzdx,
    render_wzdx,
    wzdx_item_to_event,
)

DENVER = ZoneInfo("America/Denver")
CHICAGO = ZoneInfo("America/Chicago")
GENERATED = datetime(2026, 7, 12, 13, 0, tzinfo=UTC)
FEED_INFO = {"publisher": "City of Springfield"}
SCENARIOS = {
    "scenario1_simple_linestring_example.geojson": (5, 0),
    "scenario1_simple_multipoint_example.geojson": (5, 0),
    "scenario2_laneshift_linestring_example.geojson": (1, 0),
    "scenario3_shoulder_bidirectional_linestring_example.geojson": (2, 0),
    "scenario4_detour_linestring_example.geojson": (1, 3),
    "scenario5_recurring_linestring_example.geojson": (4, 0),
    "scenario6_multi_lane_closure_linestring_example.geojson": (1, 0),
    "scenario7_mobileoperation_linestring_example.geojson": (2, 0),
    "scenario8_local_access_only_bidirectional_linestring_example.geojson": (2, 0),
}


def convert_all(snapshot: Snapshot, zone: ZoneInfo = DENVER) -> tuple[list[Event], dict[str, str]]:
    events: list[Event] = []
    rejected: dict[str, str] = {}
    for item in snapshot.items:
        try:
            events.append(wzdx_item_to_event(item, "wzdx", zone))
        except ItemRejected as exc:
            rejected[item.source_id] = exc.message
    return events, rejected


def street_event(source_id: str = "S-1", **overrides: Any) -> Event:
    fields: dict[str, Any] = {
        "type": "ROAD_CLOSED",
        "subtype": "ROAD_CLOSED_CONSTRUCTION",
        "street": "Main Street",
        "coordinates": [(-89.65, 39.78), (-89.65, 39.781), (-89.6505, 39.782)],  # northward
        "zone": CHICAGO,
        "direction": "ONE_DIRECTION",
        "start": "2026-07-12T08:00:00",
        "end": "2026-07-14T17:00:00",
        "description": "Water main",
    }
    fields.update(overrides)
    return city_event("city", source_id, **fields)


def features(data: bytes) -> list[dict[str, Any]]:
    return list(orjson.loads(data)["features"])


# --------------------------------------------------------------------------- real feeds


#: CDOT's point work zones: LineStrings of one place written twice (city events need 2 distinct points)
CDOT_ZERO_LENGTH = {"43fec744-5c0f-57de-80e0-2d109edb2c64", "5fdf5308-6145-5774-b2c3-6afdefadcd6f",
                    "593179df-aa61-554f-81ff-b0e3549a64f4", "3c5e50ea-f4ac-511b-a18c-0d53bce016c9"}


def test_cdot_feed_imports_every_line_and_re_exports_valid(testdata: Path) -> None:
    data = (testdata / "wzdx" / "cdot_prod_wzdx_v42_20230522.json").read_bytes()
    snapshot = parse_wzdx(data)
    assert len(snapshot.items) == 87 and snapshot.errors == []
    assert snapshot.end_ms == round(datetime(2023, 5, 22, 23, 40, 6, tzinfo=UTC).timestamp() * 1000)
    events, rejected = convert_all(snapshot)
    # four work zones drawn at one position (a LineString of one position twice) are point work zones,
    # as a WZDx MultiPoint or an iCone arrow board is (they were refused as lines of one place)
    assert rejected == {} and len(events) == 87
    points = {e.source_id for e in events if e.geometry.type == "Point"}
    assert points == CDOT_ZERO_LENGTH
    assert Counter(e.type for e in events) == {"CONSTRUCTION": 82, "ROAD_CLOSED": 5}
    assert all(e.direction == "ONE_DIRECTION" for e in events)

    first = next(e for e in events if e.source_id == "098bd70a-4e9e-5a78-8bb5-c62cbabd485a")
    assert first.street == "I-70" and first.category is Category.CONSTRUCTION and first.subtype is None
    assert first.start_time == datetime(2023, 5, 22, 6, 0, tzinfo=UTC)
    assert first.geometry.coordinates[0] == (-107.83899603099997, 39.52052304500006)
    assert first.details is not None and first.details.description is not None
    assert first.details.description.startswith("Between Exit 87: Rifle")
    assert [(lane.order, lane.status) for lane in first.details.lanes or []] == [(0, "OPEN"), (1, "CLOSED")]
    assert first.details.lane_impact is not None
    assert first.details.lane_impact.model_dump() == {"total_closed_lanes": 1, "roadside": "RIGHT"}
    assert first.details.reference is not None and first.details.reference.name == "CDOT"
    assert first.details.end_date_verified is False
    assert first.attributes[UPDATED_KEY] == round(datetime(2023, 5, 14, 6, 2, 5, tzinfo=UTC).timestamp() * 1000)
    assert first.attributes[WZDX_KEY]["direction"] == "eastbound"

    closed = [e for e in events if e.type == "ROAD_CLOSED"]
    assert all(e.subtype == "ROAD_CLOSED_CONSTRUCTION" and e.details and not e.details.lanes for e in closed)

    out = render_wzdx(events, feed_info={**FEED_INFO, "license": CC0_LICENSE}, generated=GENERATED)
    assert validate_wzdx(out) == []
    written = features(out)
    assert len(written) == 87
    assert {f["geometry"]["type"] for f in written if f["id"].removeprefix("wzdx:city:") in CDOT_ZERO_LENGTH} == {
        "MultiPoint"}
    by_id = {f["id"]: f for f in written}
    again = by_id["wzdx:city:098bd70a-4e9e-5a78-8bb5-c62cbabd485a"]["properties"]
    assert again["core_details"]["direction"] == "eastbound" and again["vehicle_impact"] == "some-lanes-closed"
    assert again["lanes"] == [{"order": 1, "type": "general", "status": "open"},
                              {"order": 2, "type": "general", "status": "closed"}]
    assert again["start_date"] == "2023-05-22T06:00:00Z" and again["end_date"] == "2023-05-23T05:59:00Z"
    assert again["location_method"] == "channel-device-method" and again["beginning_milepost"] == 87.0

    cifs = render_cifs_xml(events, zone=DENVER, generated=GENERATED)
    found = validate_cifs_xml(cifs)  # the point work zones: valid, one point (Waze asks for two: a warning)
    assert {p.severity for p in found} == {"warning"} and len(found) == len(CDOT_ZERO_LENGTH)
    assert all("polyline: one point" in p.message for p in found)
    assert b"2023-05-22T00:00:00-06:00" in cifs  # UTC in, the city's offset out


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_official_examples(testdata: Path, name: str) -> None:
    imported, detours = SCENARIOS[name]
    snapshot = parse_wzdx((testdata / "wzdx" / "examples" / name).read_bytes())
    assert len(snapshot.items) == imported
    assert len(snapshot.errors) == detours
    assert all("detour road event skipped" in error.reason and error.source_id for error in snapshot.errors)
    events, rejected = convert_all(snapshot, CHICAGO)
    assert rejected == {} and len(events) == imported
    out = render_wzdx(events, feed_info=FEED_INFO, generated=GENERATED)
    assert validate_wzdx(out) == []
    assert len(features(out)) == imported
    assert validate_cifs_xml(render_cifs_xml(events, zone=CHICAGO, generated=GENERATED)) == []


def test_restrictions_go_out_as_the_source_gave_them(testdata: Path) -> None:
    """Found in a cold trial: a road event's and its lanes' restrictions (local access only, a reduced width
    or weight) were dropped from the WZDx and CWZ feeds silently; DATEX II, which cannot carry them, says so."""
    from feeds.datex2 import losses_for

    for name in ("scenario6_multi_lane_closure_linestring_example.geojson",
                 "scenario8_local_access_only_bidirectional_linestring_example.geojson"):
        source = orjson.loads((testdata / "wzdx" / "examples" / name).read_bytes())
        events, rejected = convert_all(parse_wzdx(orjson.dumps(source)), CHICAGO)
        assert rejected == {}
        out = render_wzdx(events, feed_info=FEED_INFO, generated=GENERATED)
        assert validate_wzdx(out) == []
        written = {feature["id"]: feature["properties"] for feature in features(out)}
        for original in source["features"]:
            given = original["properties"]
            ours = next(props for fid, props in written.items() if fid.endswith(original["id"]))
            assert ours.get("restrictions") == given.get("restrictions"), (name, original["id"])
            if given.get("lanes") and ours.get("lanes"):
                assert [lane.get("restrictions") for lane in ours["lanes"]] == [
                    lane.get("restrictions") for lane in given["lanes"]], (name, original["id"])
        restricted = [event for event in events if "restrictions" in str(event.attributes)]
        assert restricted and all("restrictions are not carried: " in " ".join(losses_for(event))
                                  for event in restricted)
        said = " ".join(loss for event in restricted for loss in losses_for(event))
        assert ("reduced-width 16 feet" in said) if "scenario6" in name else ("local-access-only" in said), said


def test_multipoint_geometry_is_the_polyline(testdata: Path) -> None:
    data = (testdata / "wzdx" / "examples" / "scenario1_simple_multipoint_example.geojson").read_bytes()
    raw = orjson.loads(data)["features"][0]
    event = wzdx_item_to_event(parse_wzdx(data).items[0], "wzdx", CHICAGO)
    assert [list(p) for p in event.geometry.coordinates] == raw["geometry"]["coordinates"]
    assert event.street == raw["properties"]["core_details"]["road_names"][0]
    assert event.attributes[WZDX_KEY]["road_names"] == ["I-80", "I-35"]
    # both go out again (only the first did)
    (out,) = features(render_wzdx([event], feed_info=FEED_INFO, generated=GENERATED))
    assert out["properties"]["core_details"]["road_names"] == ["I-80", "I-35"]


def test_wzdx_3_is_refused_naming_the_version() -> None:
    old = {"road_event_feed_info": {"feed_update_date": "2021-01-01T00:00:00Z", "version": "3.1"},
           "type": "FeatureCollection", "features": []}
    with pytest.raises(MalformedPayload, match=r"'3\.1'"):
        parse_wzdx(orjson.dumps(old))
    with pytest.raises(MalformedPayload, match=r"'5\.0'"):
        parse_wzdx(orjson.dumps({"feed_info": {"version": "5.0"}, "features": []}))
    four = {"road_event_feed_info": {"version": "4.0", "data_sources": []}, "type": "FeatureCollection", "features": []}
    assert parse_wzdx(orjson.dumps(four)).items == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [(b"[]", "JSON object"), (b"{", "malformed JSON"), (b'{"features": []}', "no 'feed_info'"),
     (b'{"feed_info": {"version": "4.2"}, "features": {}}', "not a list")],
)
def test_unreadable_payloads(payload: bytes, message: str) -> None:
    with pytest.raises(MalformedPayload, match=message):
        parse_wzdx(payload)


def test_a_device_feed_is_not_a_work_zone_feed(testdata: Path) -> None:
    with pytest.raises(MalformedPayload, match="device feed"):
        parse_wzdx((testdata / "wzdx" / "examples" / "arrow_board_ok_example.geojson").read_bytes())


def test_bad_road_events_are_rejected_one_by_one(testdata: Path) -> None:
    document = orjson.loads((testdata / "wzdx" / "examples" / "scenario6_multi_lane_closure_linestring_example.geojson")
                            .read_bytes())
    good = document["features"][0]
    no_geometry = copy.deepcopy(good) | {"id": "no-geometry", "geometry": {"type": "Point", "coordinates": [1, 2]}}
    no_name = copy.deepcopy(good) | {"id": "no-name"}
    no_name["properties"]["core_details"]["road_names"] = []
    bad_time = copy.deepcopy(good) | {"id": "bad-time"}
    bad_time["properties"]["start_date"] = "yesterday"
    document["features"] = [good, no_geometry, no_name, bad_time, "junk", {"type": "Feature"}, copy.deepcopy(good)]
    snapshot = parse_wzdx(orjson.dumps(document))
    assert [item.source_id for item in snapshot.items] == [good["id"], "no-geometry", "no-name", "bad-time"]
    assert len(snapshot.errors) == 3  # not an object, no id, duplicate id
    events, rejected = convert_all(snapshot)
    assert [e.source_id for e in events] == [good["id"]]
    assert "LineString or MultiPoint" in rejected["no-geometry"] and "road_names" in rejected["no-name"]
    assert "ISO 8601" in rejected["bad-time"]


def test_a_detour_reaching_the_converter_is_rejected() -> None:
    record = {"id": "d1", "type": "Feature", "properties": {"core_details": {"event_type": "detour"}}}
    with pytest.raises(ItemRejected, match="detour"):
        wzdx_item_to_event(FeedItem(Kind.CITY, "d1", digest(record), record), "wzdx", DENVER)


# --------------------------------------------------------------------------- rendering


def test_only_closures_and_road_works_are_published() -> None:
    hazard = city_event("city", "H-1", type="HAZARD", street="Main Street", coordinates=[(-89.6, 39.7), (-89.6, 39.8)],
                        zone=CHICAGO)
    works = street_event("W-1", type="CONSTRUCTION", subtype=None)
    written = features(render_wzdx([hazard, works, street_event()], feed_info=FEED_INFO, generated=GENERATED))
    assert [f["id"] for f in written] == ["city:city:W-1", "city:city:S-1"]


def test_a_two_way_closure_is_one_road_event_per_direction() -> None:
    event = street_event(direction="BOTH_DIRECTIONS")
    data = render_wzdx([event], feed_info=FEED_INFO, generated=GENERATED)
    forward, backward = features(data)
    assert forward["id"] == "city:city:S-1" and backward["id"] == "city:city:S-1" + REVERSE_SUFFIX
    assert backward["geometry"]["coordinates"] == forward["geometry"]["coordinates"][::-1]
    assert forward["geometry"]["coordinates"][0] == [-89.65, 39.78]  # [lon, lat], upstream first
    assert forward["properties"]["core_details"]["direction"] == "northbound"
    assert backward["properties"]["core_details"]["direction"] == "southbound"
    assert validate_wzdx(data) == []


def test_feed_info_and_road_event_fields() -> None:
    info = {"publisher": "Springfield", "data_source_id": "ds-1", "organization_name": "Springfield DPW",
            "license": CC0_LICENSE, "contact_name": "Ops", "contact_email": "ops@example.org", "update_frequency": 60}
    event = street_event(attributes={CREATED_KEY: 1783800000000, UPDATED_KEY: 1783850000000})
    document = orjson.loads(render_wzdx([event], feed_info=info, generated=GENERATED))
    assert document["feed_info"] == {
        "publisher": "Springfield", "version": "4.2", "update_date": "2026-07-12T13:00:00Z",
        "data_sources": [{"data_source_id": "ds-1", "organization_name": "Springfield DPW"}],
        "license": CC0_LICENSE, "contact_name": "Ops", "contact_email": "ops@example.org", "update_frequency": 60,
    }
    properties = document["features"][0]["properties"]
    assert properties["core_details"] == {
        "event_type": "work-zone", "data_source_id": "ds-1", "road_names": ["Main Street"],
        "direction": "northbound", "description": "Water main",
        "creation_date": "2026-07-11T20:00:00Z", "update_date": "2026-07-12T09:53:20Z",
    }
    assert properties["start_date"] == "2026-07-12T13:00:00Z" and properties["end_date"] == "2026-07-14T22:00:00Z"
    assert properties["vehicle_impact"] == "all-lanes-closed" and properties["location_method"] == "unknown"
    # a city event's end is verified only on the source's evidence (issue 16): this one has none
    assert properties["is_end_date_verified"] is False and properties["is_start_date_verified"] is False
    assert properties["is_start_position_verified"] is False and properties["is_end_position_verified"] is False
    vouched = street_event(end_date_verified=True)
    assert features(render_wzdx([vouched], feed_info=info, generated=GENERATED))[0]["properties"][
        "is_end_date_verified"] is True
    bare = orjson.loads(render_wzdx([], feed_info={**FEED_INFO, "url": "https://x.org"}, generated=GENERATED))
    assert "license" not in bare["feed_info"] and "url" not in bare["feed_info"]


def test_an_event_without_end_lasts_14_days_unverified() -> None:
    event = street_event(type="CONSTRUCTION", subtype=None, end=None)
    properties = features(render_wzdx([event], feed_info=FEED_INFO, generated=GENERATED))[0]["properties"]
    start = datetime.fromisoformat(properties["start_date"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(properties["end_date"].replace("Z", "+00:00"))
    assert end - start == timedelta(days=14) and properties["is_end_date_verified"] is False


def test_an_end_within_the_second_of_the_start_is_no_end() -> None:
    # without a start the road event starts when the feed is generated; an end less than a second
    # later is the same second once written, which the business rules refuse
    event = street_event(type="CONSTRUCTION", subtype=None, start=None, end=GENERATED + timedelta(milliseconds=400))
    data = render_wzdx([event], feed_info=FEED_INFO, generated=GENERATED)
    assert validate_wzdx(data) == []
    assert features(data)[0]["properties"]["is_end_date_verified"] is False


@pytest.mark.parametrize(
    ("overrides", "impact"),
    [
        ({}, "all-lanes-closed"),
        ({"type": "CONSTRUCTION", "subtype": None}, "unknown"),
        ({"type": "CONSTRUCTION", "subtype": None, "lanes": [{"order": 0, "status": "OPEN"},
                                                             {"order": 1, "status": "CLOSED"}]}, "some-lanes-closed"),
        ({"type": "CONSTRUCTION", "subtype": None, "lane_impact": {"total_closed_lanes": 2, "roadside": "LEFT"}},
         "some-lanes-closed"),
        ({"type": "CONSTRUCTION", "subtype": None, "lanes": [{"order": 0, "status": "OPEN"}]}, "all-lanes-open"),
    ],
)
def test_vehicle_impact(overrides: dict[str, Any], impact: str) -> None:
    data = render_wzdx([street_event(**overrides)], feed_info=FEED_INFO, generated=GENERATED)
    assert features(data)[0]["properties"]["vehicle_impact"] == impact
    assert validate_wzdx(data) == []


def test_bad_feed_info_is_a_usage_error() -> None:
    for info, message in (({}, "publisher"), ({"publisher": "x", "license": "MIT"}, "license"),
                          ({"publisher": "x", "data_sources": []}, "data_sources")):
        with pytest.raises(UsageError, match=message):
            render_wzdx([], feed_info=info, generated=GENERATED)


def test_ids_are_stable_and_the_data_source_id_is_derived_once() -> None:
    first = render_wzdx([street_event()], feed_info=FEED_INFO, generated=GENERATED)
    later = render_wzdx([street_event()], feed_info=FEED_INFO, generated=GENERATED + timedelta(hours=1))
    assert features(first) == features(later)


def test_line_direction_by_bearing() -> None:
    assert line_direction([(0.0, 0.0), (0.001, 0.0001)]) == "eastbound"
    assert line_direction([(0.0, 0.0), (0.0001, -0.001)]) == "southbound"
    assert line_direction([(0.0, 0.0), (-0.001, 0.0009)]) == "westbound"


def test_wzdx_to_cifs_to_wzdx(testdata: Path) -> None:
    data = (testdata / "wzdx" / "examples" / "scenario6_multi_lane_closure_linestring_example.geojson").read_bytes()
    event = wzdx_item_to_event(parse_wzdx(data).items[0], "wzdx", CHICAGO)
    cifs = render_cifs_xml([event], zone=CHICAGO, generated=GENERATED)
    from feeds.cifs import cifs_item_to_event

    back = cifs_item_to_event(parse_cifs(cifs, zone=CHICAGO).items[0], "cifs", CHICAGO)
    assert back.details is not None and event.details is not None
    assert back.details.lanes == event.details.lanes and back.details.lane_impact == event.details.lane_impact
    assert validate_wzdx(render_wzdx([back], feed_info=FEED_INFO, generated=GENERATED)) == []


def test_the_wzdx_source_adapter(testdata: Path) -> None:
    from adapters import adapter_class
    from adapters.base import Watermark

    path = testdata / "wzdx" / "cdot_prod_wzdx_v42_20230522.json"
    source = adapter_class("wzdx")("cdot", {"url": str(path)}, zone=DENVER)
    assert source.namespace == "wzdx" and source.location == str(path)
    fetched = source.fetch(Watermark())
    assert fetched.body is not None
    snapshot = source.read(fetched.body)
    event = source.convert(snapshot.items[0])
    assert event.id.startswith("wzdx:city:") and len(snapshot.items) == 87


def test_a_data_sources_member_that_is_not_a_list_names_no_source() -> None:
    """Found by bench/fuzz_readers.py: ``"data_sources": 1`` in feed_info was a TypeError traceback."""
    document = {"feed_info": {"version": "4.2", "data_sources": 1}, "type": "FeatureCollection", "features": []}
    assert parse_wzdx(orjson.dumps(document)).items == []
