from __future__ import annotations

import json
from pathlib import Path

import pytest

from exchange.errors import MalformedPayload
from exchange.model import Category, Kind
from feeds.waze import parse_waze_feed, read_waze_snapshot
from tests.support.helpers import alert, feed, jam

REAL_FEEDS = {
    "nyc_full_feed_20190322.json": {"alert": 1364, "jam": 2117, "irregularity": 55},
    "jakarta_full_feed_20170503.json": {"alert": 285, "jam": 965, "irregularity": 37},
    "louisville_jams_20190220.json": {"jam": 50},
}


@pytest.mark.parametrize("name", sorted(REAL_FEEDS))
def test_real_feeds_parse_without_rejections(testdata: Path, name: str) -> None:
    parsed = parse_waze_feed((testdata / "waze_feed" / name).read_bytes())
    assert parsed.errors == []
    counts: dict[str, int] = {}
    for event in parsed.events:
        counts[event.kind.value] = counts.get(event.kind.value, 0) + 1
    assert counts == REAL_FEEDS[name]
    assert len({event.id for event in parsed.events}) == len(parsed.events)


def test_nyc_feed_keeps_the_fields_of_each_kind(testdata: Path) -> None:
    raw = json.loads((testdata / "waze_feed" / "nyc_full_feed_20190322.json").read_bytes())
    parsed = parse_waze_feed((testdata / "waze_feed" / "nyc_full_feed_20190322.json").read_bytes())
    by_id = {event.id: event for event in parsed.events}

    first_alert = raw["alerts"][0]
    event = by_id[f"waze:alert:{first_alert['uuid']}"]
    assert event.category is Category.HAZARD and event.type == "WEATHERHAZARD"
    assert event.geometry.coordinates == (first_alert["location"]["x"], first_alert["location"]["y"])
    typed = (event.reliability, event.confidence, event.thumbs_up, event.report_rating, event.magvar, event.road_type)
    assert typed == (
        first_alert["reliability"], first_alert["confidence"], first_alert["nThumbsUp"],
        first_alert["reportRating"], first_alert["magvar"], first_alert["roadType"],
    )

    blocked = next(j for j in raw["jams"] if "blockingAlertUuid" in j)
    event = by_id[f"waze:jam:{blocked['uuid']}"]
    assert event.source_id == str(blocked["uuid"]) and event.level == 5 and event.delay_s == -1
    assert event.blocking_alert_uuid == blocked["blockingAlertUuid"]
    assert event.speed_kmh == blocked["speedKMH"] and event.length_m == blocked["length"]
    assert event.attributes["segments"] == blocked["segments"]
    assert len(event.geometry.coordinates) == len(blocked["line"])

    irregularity = raw["irregularities"][0]
    event = by_id[f"waze:irregularity:{irregularity['id']}"]
    assert event.kind is Kind.IRREGULARITY and event.attributes["alerts"] == irregularity["alerts"]
    assert event.attributes["regularSpeed"] == irregularity["regularSpeed"]

    empty_subtype = next(a for a in raw["alerts"] if a.get("subtype") == "")
    assert by_id[f"waze:alert:{empty_subtype['uuid']}"].subtype is None
    no_street = next(a for a in raw["alerts"] if "street" not in a)
    assert by_id[f"waze:alert:{no_street['uuid']}"].street is None


def test_jakarta_old_schema_without_jam_id_or_speedkmh(testdata: Path) -> None:
    parsed = parse_waze_feed((testdata / "waze_feed" / "jakarta_full_feed_20170503.json").read_bytes())
    jams = [e for e in parsed.events if e.kind is Kind.JAM]
    assert all(e.source_id.isdigit() for e in jams)
    assert all(e.speed_kmh is not None for e in jams if e.attributes.get("speed") is not None)
    assert any("imageUrl" in e.attributes for e in parsed.events)


def test_louisville_envelope_lists_only_jams(testdata: Path) -> None:
    snapshot = read_waze_snapshot((testdata / "waze_feed" / "louisville_jams_20190220.json").read_bytes())
    assert snapshot.kinds_present == {Kind.JAM}


def test_cambridge_sparse_sample_derives_alert_ids_and_rejects_jams(testdata: Path) -> None:
    data = (testdata / "waze_feed" / "boston_cambridge_minimal_2018-10-16.json").read_bytes()
    first, second = parse_waze_feed(data), parse_waze_feed(data)
    ids = [e.id for e in first.events]
    assert len(ids) == 2 and len(set(ids)) == 2
    assert ids == [e.id for e in second.events], "derived ids must be stable between reads"
    assert all(e.source_id.startswith("h-") for e in first.events)
    none_type = next(e for e in first.events if e.type == "NONE")
    assert none_type.category is Category.MISC and none_type.subtype is None
    assert [(err.kind, err.reason) for err in first.errors] == [("jam", "no geometry: 'line' is missing")] * 2


def test_derived_alert_id_follows_location_to_six_decimals() -> None:
    base = {"type": "HAZARD", "pubMillis": 1_700_000_000_000}
    near = parse_waze_feed(feed(alerts=[{**base, "location": {"x": -71.1143001, "y": 42.371072}}]))
    same = parse_waze_feed(feed(alerts=[{**base, "location": {"x": -71.1143, "y": 42.371072}}]))
    moved = parse_waze_feed(feed(alerts=[{**base, "location": {"x": -71.1144, "y": 42.371072}}]))
    assert near.events[0].id == same.events[0].id != moved.events[0].id


def test_jams_without_ids_on_one_line_are_told_apart_and_keep_their_ids() -> None:
    """Two jams without ids on one line at one time, differing in level: two items (the first keeps the
    derived id, the second is numbered); a record listed twice as it is stays one id."""
    def unnamed(level: int) -> dict[str, object]:
        record = jam(0, level=level, pubMillis=1_700_000_000_000)
        del record["uuid"], record["id"]
        return record

    first = read_waze_snapshot(feed(jams=[unnamed(1), unnamed(3), unnamed(1)]))
    ids = [item.source_id for item in first.items]
    assert ids[0] == ids[2] and ids[1] == f"{ids[0]}-2" and ids[0].startswith("h-")
    again = read_waze_snapshot(feed(1, jams=[unnamed(1), unnamed(3)]))
    assert [item.source_id for item in again.items] == ids[:2]


def test_loose_values_are_coerced() -> None:
    parsed = parse_waze_feed(feed(
        alerts=[
            alert("a1", reportByMunicipalityUser="false", type="HAZARD", subtype="HAZARD_ON_ROAD_OBJECT"),
            alert("a2", reportByMunicipalityUser="True", magvar="270", reliability=7.0, x_vendor={"k": 1}),
            alert("a3", subtype=""),
        ],
        jams=[jam(411005085, speedKMH=None, speed=10.0), jam(7, type="Large")],
    ))
    assert parsed.errors == []
    events = {e.source_id: e for e in parsed.events}
    assert events["a1"].attributes["reportByMunicipalityUser"] is False
    assert events["a1"].category is Category.HAZARD
    assert events["a2"].attributes["reportByMunicipalityUser"] is True
    assert events["a2"].magvar == 270 and events["a2"].reliability == 7
    assert events["a2"].attributes["x_vendor"] == {"k": 1}
    assert events["a3"].subtype is None
    assert events["411005085"].speed_kmh == pytest.approx(36.0)
    assert events["7"].type == "Large"


BAD_ITEMS = {
    "nan": (b'{"uuid": "bad", "type": "ACCIDENT", "location": {"x": NaN, "y": 40.7}}', "not a finite number"),
    "infinity": (b'{"uuid": "bad", "type": "ACCIDENT", "magvar": Infinity, "location": {"x": -73.9, "y": 40.7}}',
                 "not a finite number"),
    "nul-escaped": (b'{"uuid": "bad", "type": "ACCIDENT", "street": "Main\\u0000St", '
                    b'"location": {"x": -73.9, "y": 40.7}}', "NUL character"),
    "nul-raw": (b'{"uuid": "bad", "type": "ACCIDENT", "street": "Main\x00St", "location": {"x": -73.9, "y": 40.7}}',
                "NUL character"),
    "latitude": (b'{"uuid": "bad", "type": "ACCIDENT", "location": {"x": -73.9, "y": 140.7}}',
                 "latitude 140.7 out of range"),
    "longitude": (b'{"uuid": "bad", "type": "ACCIDENT", "location": {"x": -273.9, "y": 40.7}}',
                  "longitude -273.9 out of range"),
    "wrong-type": (b'{"uuid": "bad", "type": "ACCIDENT", "street": ["x"], "location": {"x": -73.9, "y": 40.7}}',
                   "field 'street' should be text"),
    "location-type": (b'{"uuid": "bad", "type": "ACCIDENT", "location": "here"}', "should be an object"),
    "number-text": (b'{"uuid": "bad", "type": "ACCIDENT", "reliability": "high", '
                    b'"location": {"x": -73.9, "y": 40.7}}', "field 'reliability' should be a number"),
    "not-an-object": (b'"just a string"', "is not an object"),
}


@pytest.mark.parametrize("case", sorted(BAD_ITEMS))
def test_a_bad_item_rejects_only_itself(case: str) -> None:
    bad, reason = BAD_ITEMS[case]
    good = json.dumps(alert("good")).encode()
    data = b'{"startTimeMillis": 1772463600000, "alerts": [' + good + b", " + bad + b", " + good.replace(
        b'"good"', b'"good2"') + b"]}"
    parsed = parse_waze_feed(data)
    assert sorted(e.source_id for e in parsed.events) == ["good", "good2"]
    assert len(parsed.errors) == 1
    assert reason in parsed.errors[0].reason


def test_a_jam_line_with_one_point_is_rejected() -> None:
    parsed = parse_waze_feed(feed(jams=[jam(1, line=[{"x": -122.28, "y": 37.8}]), jam(2)]))
    assert [e.source_id for e in parsed.events] == ["2"]
    assert "at least 2" in parsed.errors[0].reason


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"hello", "neither JSON nor XML"),
        (b'{"alerts": [', "malformed JSON at line 1"),
        (b"[1, 2]", "JSON object"),
        (b'{"foo": 1}', "none of 'alerts'"),
        (b'{"alerts": {"uuid": 1}}', "'alerts' should be a list"),
        (b'{"alerts": [], "startTimeMillis": "soon"}', "startTimeMillis"),
        (b"\xff\xfe{}", "neither JSON nor XML"),
    ],
)
def test_unreadable_payloads_are_refused_whole(payload: bytes, message: str) -> None:
    with pytest.raises(MalformedPayload, match=message):
        read_waze_snapshot(payload)


def test_snapshot_time_is_the_window_end() -> None:
    snapshot = read_waze_snapshot(feed(3, alerts=[]))
    assert snapshot.taken_ms == snapshot.end_ms == snapshot.start_ms + 60_000  # type: ignore[operator]
