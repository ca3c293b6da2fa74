"""``feeds.city.city_event``: bad input is refused naming its field, and what it accepts publishes.

The first half is a table of bad inputs, each refused with a message that starts with the field.
The second half renders a varied set of valid events, each alone, as CIFS XML, CIFS JSON and
WZDx 4.2, and validates them (cifsv2.xsd, the CIFS rules, the WZDx schemas and business rules).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from exchange.errors import ItemRejected
from exchange.model import Event, Point
from exchange.validation import validate_cifs_json, validate_cifs_xml, validate_wzdx
from feeds.cifs import check_cifs_rules, parse_cifs, render_cifs_json, render_cifs_xml
from feeds.city import city_event, parse_time, schedule_problems
from feeds.problems import errors_only
from feeds.wzdx import parse_wzdx, render_wzdx
from tests.support.closures import LINE

LOS_ANGELES = ZoneInfo("America/Los_Angeles")
PARIS = ZoneInfo("Europe/Paris")
GENERATED = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


def event(source_id: str = "E-1", **overrides: Any) -> Event:
    fields: dict[str, Any] = {
        "type": "ROAD_CLOSED",
        "subtype": "ROAD_CLOSED_CONSTRUCTION",
        "street": "9th Street",
        "coordinates": LINE,
        "zone": LOS_ANGELES,
        "direction": "BOTH_DIRECTIONS",
        "start": "2026-07-12T08:00:00",
        "end": "2026-07-14T17:00:00",
        "description": "Utility work",
    }
    fields.update(overrides)
    return city_event("city", source_id, **fields)


# --------------------------------------------------------------------------- refused, naming the field

BAD: dict[str, tuple[dict[str, Any], str]] = {
    # schedules
    "hour 25": ({"schedule": {"monday": "25:00-26:00"}},
                "schedule: monday 25:00-26:00 is not a time window within 00:00-23:59"),
    "24:00": ({"schedule": {"friday": "18:00-24:00"}}, "schedule: friday 18:00-24:00 is not a time window within "
              "00:00-23:59; write 23:59 for the end of the day"),
    "minute 60": ({"schedule": {"monday": "08:60-12:00"}}, "schedule: monday 08:60-12:00 is not a time window"),
    "no minutes": ({"schedule": {"monday": "8-17"}}, "schedule: monday '8-17' is not a window HH:MM-HH:MM"),
    "no comma": ({"schedule": {"monday": "08:00-12:0013:00-14:00"}}, "schedule: monday '08:00-12:0013:00-14:00' "
                 "is not a window"),
    "empty hours": ({"schedule": {"monday": ""}}, "schedule: monday '' is not a window"),
    "overnight": ({"schedule": {"monday": "22:00-06:00"}}, "schedule: monday 22:00-06:00 crosses midnight; write an "
                  "overnight window as two: monday=22:00-23:59 and tuesday=00:00-06:00"),
    "overnight sunday": ({"schedule": {"Sunday": "23:00-01:00"}}, "schedule: sunday 23:00-01:00 crosses midnight; "
                         "write an overnight window as two: sunday=23:00-23:59 and monday=00:00-01:00"),
    "overnight everyday": ({"schedule": {"everyday": "20:00-5:00"}}, "schedule: everyday 20:00-5:00 crosses "
                           "midnight; write an overnight window as two: everyday=20:00-23:59,00:00-05:00"),
    "empty window": ({"schedule": {"monday": "08:00-08:00"}}, "schedule: monday 08:00-08:00 is empty"),
    "overlap": ({"schedule": {"monday": "11:00-13:00,08:00-12:00"}},
                "schedule: monday 08:00-12:00 and 11:00-13:00 overlap"),
    "unknown day": ({"schedule": {"funday": "08:00-12:00"}}, "schedule: unknown day 'funday'"),
    "day twice": ({"schedule": {"Monday": "08:00-12:00", "monday": "13:00-14:00"}}, "schedule: monday is given twice"),
    "hours not text": ({"schedule": {"monday": 8}}, "schedule: monday hours must be text"),
    # local times in a DST gap or fold, and the range of times
    "dst gap": ({"start": "2026-03-08T02:30", "end": None}, "start: 2026-03-08T02:30 does not exist in "
                "America/Los_Angeles: the clocks skip from 02:00 to 03:00; give an offset"),
    "dst gap, end": ({"end": "2027-03-14 02:00:00"}, "end: 2027-03-14T02:00 does not exist in America/Los_Angeles"),
    "dst fold": ({"start": "2026-11-01T01:30:00", "end": None}, "start: 2026-11-01T01:30 is ambiguous in "
                 "America/Los_Angeles: the clocks go back from 02:00 to 01:00, so it happens twice (-07:00, then "
                 "-08:00); give an offset, e.g. 2026-11-01T01:30-07:00"),
    "dst fold, paris": ({"zone": PARIS, "start": "2026-10-25T02:59:59"}, "start: 2026-10-25T02:59:59 is ambiguous in "
                        "Europe/Paris: the clocks go back from 03:00 to 02:00"),
    "dst gap of half an hour": ({"zone": ZoneInfo("Australia/Lord_Howe"), "start": "2026-10-04T02:15"},
                                "start: 2026-10-04T02:15 does not exist in Australia/Lord_Howe: the clocks skip from "
                                "02:00 to 02:30"),
    "a skipped day": ({"zone": ZoneInfo("Pacific/Apia"), "start": "2011-12-30T12:00", "end": "2012-01-02T00:00"},
                      "start: 2011-12-30T12:00 does not exist in Pacific/Apia: the clocks skip from "
                      "2011-12-30T00:00 to 2011-12-31T00:00"),
    "year 10000 in UTC": ({"end": "9999-12-31T23:59:59-12:00"},
                          "end: '9999-12-31T23:59:59-12:00' is outside the years 2000 to 2099 (UTC)"),
    "local year 9999": ({"end": "9999-12-31T23:00"}, "end: '9999-12-31T23:00' is outside the years 2000 to 2099"),
    "2100": ({"end": "2100-01-01T00:00:00Z"}, "end: '2100-01-01T00:00:00Z' is outside the years 2000 to 2099"),
    "1999 in UTC": ({"start": "1999-12-31T18:00:00-05:00"}, "start: '1999-12-31T18:00:00-05:00' is outside"),
    "datetime 1970": ({"start": datetime(1970, 1, 1, tzinfo=UTC)}, "start: 1970-01-01T00:00:00+00:00 is outside"),
    "not a time": ({"start": "soon"}, "start: 'soon' is not an ISO 8601 time"),
    "end before start": ({"end": "2026-07-12T07:00:00"}, "end: 2026-07-12T07:00:00-07:00 is not after the start"),
    "end in the start's second": ({"start": "2026-07-12T08:00:00.200-07:00", "end": "2026-07-12T08:00:00.800-07:00"},
                                  "end: 2026-07-12T08:00:00.800000-07:00 is not after the start"),
    "road closed without start": ({"start": None}, "start: a ROAD_CLOSED event needs a start time"),
    # text
    "description not utf-8": ({"description": "ab\udcffcd"}, "description: is not valid UTF-8 text (byte 0xff at "
                              "position 2)"),
    "description lone surrogate": ({"description": "x\ud800"}, "description: is not valid Unicode text (a lone "
                                   "surrogate U+D800 at position 1)"),
    "description NUL": ({"description": "a\x00b"}, "description: contains a NUL character at position 1"),
    "description bell": ({"description": "bell\x07"}, "description: contains a control character U+0007 at "
                         "position 4"),
    "description C1": ({"description": "dash\x96"}, "description: contains a control character U+0096"),
    "description U+FFFF": ({"description": "x\uffff"}, "description: contains a non-character U+FFFF"),
    "street not utf-8": ({"street": "Stra\udcdfe"}, "street: is not valid UTF-8 text (byte 0xdf at position 4)"),
    "street newline": ({"street": "Main\nStreet"}, "street: contains a control character U+000A at position 4"),
    "street tab": ({"street": "Main\tStreet"}, "street: contains a control character U+0009"),
    "city": ({"city": "Oak\x1bland"}, "city: contains a control character U+001B"),
    "operator": ({"operator": "al\udce9ce"}, "operator: is not valid UTF-8 text (byte 0xe9 at position 2)"),
    "operator too long": ({"operator": "x" * 101}, "operator: 101 characters, more than 100"),
    "parent event short": ({"parent_event": " ab "}, "parent_event: 'ab' is too short (at least 3 characters)"),
    "parent event NUL": ({"parent_event": "EVT\x00-1"}, "parent_event: contains a NUL character"),
    "source name": ({"reference": {"reference": "dot", "name": "D\x00T"}}, "source.name: contains a NUL character"),
    "source without reference": ({"reference": {"name": "DOT"}}, "source.reference: Field required"),
    "type not utf-8": ({"type": "ROAD\udcc3"}, "type: is not valid UTF-8 text"),
    # what the feeds refuse
    "type": ({"type": "ROADWORK"}, "type: 'ROADWORK' is not one of"),
    "subtype of another type": ({"subtype": "ACCIDENT_MINOR"}, "subtype: 'ACCIDENT_MINOR' does not belong to type "
                                "ROAD_CLOSED"),
    "subtype the XSD lacks": ({"type": "HAZARD", "subtype": "HAZARD_ON_ROAD_EMERGENCY_VEHICLE"},
                              "subtype: 'HAZARD_ON_ROAD_EMERGENCY_VEHICLE' does not belong to type HAZARD"),
    "street one character": ({"street": " X "}, "street: ' X ' is too short (at least 2 characters)"),
    "street empty": ({"street": ""}, "street: '' is too short"),
    "direction": ({"direction": "NORTHBOUND"}, "direction: 'NORTHBOUND' is not ONE_DIRECTION or BOTH_DIRECTIONS"),
    "closure of one point": ({"coordinates": LINE[:1]}, "polyline: 1 point(s), 1 distinct; a ROAD_CLOSED needs"),
    "closure of one place to 6 decimals": (
        {"coordinates": [(-122.3007881, 37.8095781), (-122.3007884, 37.8095784)]},
        "polyline: 2 point(s), 1 distinct; a ROAD_CLOSED needs at least 2 distinct points (to 6 decimals"),
    "construction of one point": ({"type": "CONSTRUCTION", "subtype": None, "coordinates": LINE[:1]},
                                  "polyline: 1 point(s), 1 distinct; a CONSTRUCTION needs"),
    "no points": ({"type": "HAZARD", "subtype": None, "coordinates": []}, "polyline: 0 point(s)"),
    "point without direction": ({"type": "HAZARD", "subtype": None, "coordinates": LINE[:1], "direction": None},
                                "polyline: one point needs a direction"),
    "latitude": ({"coordinates": [(-122.3, 91.0), LINE[1]]}, "polyline point 1: latitude 91.0 out of range"),
    "longitude": ({"coordinates": [LINE[0], (180.5, 37.8)]}, "polyline point 2: longitude 180.5 out of range"),
    "nan": ({"coordinates": [LINE[0], (float("nan"), 37.8)]}, "polyline point 2: coordinates must be finite"),
    "lon-first": ({"coordinates": [(37.809578, -122.300788 / 2), (37.810233, -122.302087 / 2)]},
                  "polyline point 1: latitude -61.150394 is south of -60° (Antarctica); is the polyline lon-first?"),
    "lane impact over 99": ({"lane_impact": {"total_closed_lanes": 100, "roadside": "RIGHT"}},
                            "lane_impact.total_closed_lanes: Input should be less than or equal to 99"),
    "lane impact negative": ({"lane_impact": {"total_closed_lanes": -1, "roadside": "RIGHT"}},
                             "lane_impact.total_closed_lanes: Input should be greater than or equal to 0"),
    "lane impact boolean": ({"lane_impact": {"total_closed_lanes": True, "roadside": "RIGHT"}},
                            "lane_impact.total_closed_lanes: expected a whole number, got a boolean"),
    "lane impact fraction": ({"lane_impact": {"total_closed_lanes": 1.5, "roadside": "RIGHT"}},
                             "lane_impact.total_closed_lanes: Input should be a valid integer"),
    "roadside": ({"lane_impact": {"total_closed_lanes": 1, "roadside": "TOP"}},
                 "lane_impact.roadside: Input should be"),
    "lane impact key": ({"lane_impact": {"total_closed_lanes": 1, "roadside": "LEFT", "side": "x"}},
                        "lane_impact.side: unknown key"),
    "lane order": ({"lanes": [{"order": 100, "status": "CLOSED"}]}, "lanes[0].order: Input should be less than or "
                   "equal to 99"),
    "lane status": ({"lanes": [{"order": 0, "status": "OPEN"}, {"order": 1, "status": "SHUT"}]},
                    "lanes[1].status: Input should be"),
    "lane type empty": ({"lanes": [{"order": 0, "type": " ", "status": "CLOSED"}]}, "lanes[0].type: ' ' is not a lane "
                        "type"),
    "lane type control": ({"lanes": [{"order": 0, "type": "LA\x01NE", "status": "CLOSED"}]},
                          "lanes[0].type: contains a control character U+0001"),
    "lane twice": ({"lanes": [{"order": 1, "status": "OPEN"}, {"order": 1, "status": "CLOSED"}]},
                   "lanes[1].order: lane 1 is listed twice"),
    "lane not an object": ({"lanes": ["CLOSED"]}, "lanes[0]: expected an object"),
    # what the store cannot keep
    "attribute nan": ({"attributes": {"weight": float("nan")}}, "attributes.weight: nan is not a finite number"),
    "attribute NUL": ({"attributes": {"notes": ["ok", "a\x00"]}}, "attributes.notes[1]: contains a NUL character"),
    "attribute key": ({"attributes": {"n\udcffme": 1}}, "a field name under attributes is not valid UTF-8 text"),
    "attribute time": ({"attributes": {"_created_ms": 253_402_300_800_000}}, "attributes._created_ms: "
                       "253402300800000 is outside the years 2000 to 2099"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_refused_naming_the_field(case: str) -> None:
    overrides, message = BAD[case]
    with pytest.raises(ItemRejected) as caught:
        event(**overrides)
    assert caught.value.message.startswith(message)
    assert "\n" not in caught.value.message
    caught.value.message.encode("utf-8")  # printable and storable, whatever the input held


@pytest.mark.parametrize(("source_id", "message"), [
    ("", "id: '' is empty"),
    (" C-1", "id: ' C-1' is empty or has spaces around it"),
    ("C\udcff", "id: is not valid UTF-8 text"),
    ("x" * 201, "id: 201 characters, more than the 200 an id may have"),
])
def test_bad_ids(source_id: str, message: str) -> None:
    with pytest.raises(ItemRejected, match=f"^{message}"):
        event(source_id)


def test_readers_refuse_ids_no_store_keeps() -> None:
    # an item error names the item's id, and is stored: an id that is not UTF-8 cannot be one
    cifs = parse_cifs(json.dumps({"incidents": [{"id": "AB\udcff", "type": "HAZARD"}]}).encode(), zone=UTC)
    wzdx = parse_wzdx(json.dumps({"feed_info": {"version": "4.2"}, "type": "FeatureCollection",
                                  "features": [{"id": "x\ud800", "type": "Feature", "properties": {}}]}).encode())
    for snapshot in (cifs, wzdx):
        assert snapshot.items == []
        assert [(error.source_id, "without a usable id" in error.reason) for error in snapshot.errors] == [(None, True)]


def test_an_event_id_longer_than_the_store_keeps() -> None:
    with pytest.raises(ItemRejected, match="more than 300"):
        city_event("n" * 100, "x" * 200, type="HAZARD", street="Main", coordinates=LINE, zone=UTC)


#: schedules refused at entry that reach the rendered feed (the renderer drops unknown days; a dict has no repeats)
SCHEDULES = sorted(case for case, (overrides, _) in BAD.items()
                   if set(overrides) == {"schedule"} and case not in ("day twice", "unknown day"))


@pytest.mark.parametrize("case", SCHEDULES)
def test_a_schedule_refused_at_entry_fails_the_cifs_rules(case: str) -> None:
    good = event()
    assert good.details is not None
    schedule = {day.lower(): str(hours) for day, hours in BAD[case][0]["schedule"].items()}
    published = good.model_copy(update={"details": good.details.model_copy(update={"schedule": schedule})})
    assert errors_only(check_cifs_rules([published], zone=LOS_ANGELES))


def test_schedule_windows_are_normalised_in_the_xsd_order() -> None:
    made = event(schedule={"Friday": " 9:00-12:00 , 13:00-17:00,", "monday": "13:00-14:00,8:00-12:00",
                           "everyday": "0:00-23:59"})
    assert made.details is not None
    assert made.details.schedule == {"everyday": "00:00-23:59", "monday": "08:00-12:00,13:00-14:00",
                                     "friday": "09:00-12:00,13:00-17:00"}
    assert schedule_problems("monday", "08:00-12:00,12:00-13:00") == []  # touching windows do not overlap


def test_times_beside_the_dst_changes_are_read_as_given() -> None:
    just_before = parse_time("2026-03-08T01:59:59", "start", LOS_ANGELES)
    just_after = parse_time("2026-03-08T03:00", "start", LOS_ANGELES)
    assert just_before is not None and just_after is not None
    assert just_after.astimezone(UTC) - just_before.astimezone(UTC) == timedelta(seconds=1)
    before_fold = parse_time("2026-11-01T00:59", "start", LOS_ANGELES)
    after_fold = parse_time("2026-11-01T02:00", "start", LOS_ANGELES)
    assert before_fold is not None and before_fold.isoformat() == "2026-11-01T00:59:00-07:00"
    assert after_fold is not None and after_fold.isoformat() == "2026-11-01T02:00:00-08:00"
    with_offset = parse_time("2026-11-01T01:30-08:00", "start", LOS_ANGELES)
    assert with_offset is not None and with_offset.astimezone(UTC).hour == 9
    assert parse_time(datetime(2026, 3, 8, 2, 30), "start", UTC) == datetime(2026, 3, 8, 2, 30, tzinfo=UTC)


def test_a_naive_datetime_in_the_gap_is_refused_as_text_is() -> None:
    with pytest.raises(ItemRejected, match="start: 2026-03-08T02:30 does not exist in America/Los_Angeles"):
        parse_time(datetime(2026, 3, 8, 2, 30), "start", LOS_ANGELES)


def test_the_edges_of_the_time_range() -> None:
    made = event(start="2000-01-01T00:00:00Z", end="2099-12-31T23:59:59Z")
    assert made.start_time is not None and made.end_time is not None
    assert made.start_time.year == 2000 and made.end_time.year == 2099
    assert event(start="1999-12-31T20:00:00-05:00").start_time == datetime(2000, 1, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- accepted, and published

LONG = ("Water main replacement between 7th and 8th Street.\n\tDetour via Market Street; local access only. "
        "Crews work nights, expect noise.\r\n") * 20

VALID: dict[str, dict[str, Any]] = {
    "closure with a schedule": {"schedule": {"everyday": "18:00-22:00", "monday": "0:00-6:00,22:00-23:59",
                                             "Sunday": "08:00-12:00"}},
    "closure one direction, event subtype, parent, source": {
        "direction": "ONE_DIRECTION", "subtype": "ROAD_CLOSED_EVENT", "parent_event": "MARATHON-2026",
        "reference": {"reference": "oak-dot", "name": "Oakland DOT", "url": "https://example.org/?a=1&b=<2>"},
        "attributes": {"_created_ms": 1_782_000_000_000, "_updated_ms": 1_782_100_000_000, "notes": "a\x07b"},
    },
    "closure without subtype or description": {"subtype": None, "description": None},
    "construction with a lane impact": {"type": "CONSTRUCTION", "subtype": None, "direction": "ONE_DIRECTION",
                                        "lane_impact": {"total_closed_lanes": 1, "roadside": "right"}},
    "construction with lanes, open end": {
        "type": "CONSTRUCTION", "subtype": None, "end": None,
        "lanes": [{"order": 0, "type": "LANE", "status": "OPEN"}, {"order": 1, "type": "LANE", "status": "closed"},
                  {"order": 2, "type": "SHOULDER", "status": "CLOSED_LANE"}],
    },
    "construction without start": {"type": "CONSTRUCTION", "subtype": None, "start": None, "end": None},
    "hazard of one point": {"type": "HAZARD", "subtype": "HAZARD_ON_ROAD_POT_HOLE", "coordinates": LINE[:1],
                            "direction": "ONE_DIRECTION", "start": None, "end": None},
    "hazard line that is one point to 6 decimals": {
        "type": "HAZARD", "subtype": "HAZARD_ON_ROAD_LANE_CLOSED", "direction": "BOTH_DIRECTIONS",
        "coordinates": [(-122.3007881, 37.8095781), (-122.3007884, 37.8095784)],
        "lanes": [{"order": 0, "status": "CLOSED"}], "lane_impact": {"total_closed_lanes": 1, "roadside": "LEFT"}},
    "accident of one point": {"type": "ACCIDENT", "subtype": "ACCIDENT_MAJOR", "coordinates": LINE[1:]},
    "police of one point": {"type": "POLICE", "subtype": "POLICE_VISIBLE", "coordinates": LINE[:1],
                               "direction": "ONE_DIRECTION"},
    "jam": {"type": "JAM", "subtype": "JAM_STAND_STILL_TRAFFIC"},
    "chit-chat": {"type": "chit_chat", "subtype": ""},
    "long multi-line description": {"description": LONG},
    "unicode street": {"street": "Rue de l'Église", "zone": PARIS, "coordinates": [(2.337514, 48.910599),
                                                                                    (2.339535, 48.911316)],
                       "description": "Travaux: chaussée fermée 🚧 — 道路工事", "start": "2026-10-25T01:59:59",
                       "end": "2026-10-25T03:00:00"},
    "two-character street": {"street": "A1"},
    "cjk street": {"street": "東京通り", "zone": ZoneInfo("Asia/Tokyo"), "coordinates": [(139.7671, 35.6812),
                                                                                      (139.7700, 35.6830)]},
    "spring forward, with offsets": {"start": "2026-03-08T01:59:59-08:00", "end": "2026-03-08T03:00:00-07:00"},
    "fall back, with offsets": {"start": "2026-11-01T01:30:00-07:00", "end": "2026-11-01T01:15:00-08:00"},
    "fall back, other side, local": {"start": "2026-11-01T00:59:59", "end": "2026-11-01T02:00:00"},
    "edges of the time range": {"start": "2000-01-01T00:00:00Z", "end": "2099-12-31T23:59:59Z"},
    "epoch datetimes": {"start": datetime(2026, 7, 12, 15, 0, 0, 999_999, tzinfo=UTC),
                        "end": datetime(2026, 7, 12, 15, 0, 1, tzinfo=UTC)},
    "near the antimeridian": {"coordinates": [(179.999999, -59.9), (-180.0, -59.9)], "zone": UTC},
    "near the north pole": {"coordinates": [(10.0, 89.999999), (10.0, 90.0)], "zone": UTC},
}


@pytest.fixture(scope="module", params=sorted(VALID))
def valid(request: pytest.FixtureRequest) -> Event:
    return event(request.param.replace(" ", "-")[:40], **VALID[request.param])


def test_a_valid_event_publishes_alone(valid: Event) -> None:
    zone = LOS_ANGELES
    assert errors_only(check_cifs_rules([valid], zone=zone)) == []
    xml = render_cifs_xml([valid], zone=zone, generated=GENERATED)
    assert errors_only(validate_cifs_xml(xml)) == [], xml.decode()
    for shape in ("wrapped", "flat"):
        json = render_cifs_json([valid], zone=zone, generated=GENERATED, shape=shape)
        assert errors_only(validate_cifs_json(json)) == [], json.decode()
    wzdx = render_wzdx([valid], feed_info={"publisher": "Demo City"}, generated=GENERATED, zone=zone)
    assert validate_wzdx(wzdx) == [], wzdx.decode()
    if valid.category.value in ("ROAD_CLOSED", "CONSTRUCTION"):
        assert b'"features":[{' in wzdx
    if isinstance(valid.geometry, Point):
        assert valid.direction is not None


def test_the_text_published_is_the_text_entered() -> None:
    made = event(**VALID["unicode street"])
    xml = render_cifs_xml([made], zone=PARIS, generated=GENERATED).decode()
    assert "<street>Rue de l'Église</street>" in xml and "🚧 — 道路工事" in xml
    assert "<starttime>2026-10-25T01:59:59+02:00</starttime>" in xml
    assert "<endtime>2026-10-25T03:00:00+01:00</endtime>" in xml


def test_a_point_repeated_at_once_is_dropped() -> None:
    """iCone doubles vertices (`41.424992,-81.862112,41.424992,-81.862112,...`): the repeat, a zero-length
    segment, is dropped; a point the line comes back to later stays, and so does one a hair apart (DiaLog's
    9-decimal vertices are kept as given)."""
    a, b, c = (-81.862112, 41.424992), (-81.898686, 41.414105), (-81.92174, 41.40456)
    near = (b[0] + 1e-8, b[1])
    found = event(coordinates=[a, a, b, near, c, b])
    assert list(found.geometry.coordinates) == [a, b, near, c, b]


def test_vertices_a_hair_apart_go_out_once() -> None:
    """DiaLog's 9-decimal vertices a hair apart are kept as given but are one point at the feeds' 6
    decimals: every feed writes it once (a repeated point is a zero-length segment to its readers)."""
    from lxml import etree

    from exchange.config import Datex2Settings
    from feeds.datex2 import NS, render_datex2

    a, b, c = (-122.300788, 37.809578), (-122.301448, 37.809911), (-122.302087, 37.810233)
    near = (b[0] + 1e-8, b[1] - 1e-8)
    found = event(coordinates=[a, b, near, c])
    assert list(found.geometry.coordinates) == [a, b, near, c]
    want = [(f"{lat:.6f}", f"{lon:.6f}") for lon, lat in (a, b, c)]
    cifs = render_cifs_xml([found], zone=LOS_ANGELES, generated=GENERATED).decode()
    polyline = cifs.split("<polyline>")[1].split("</polyline>")[0].split()
    assert list(zip(polyline[::2], polyline[1::2], strict=True)) == want
    forward, backward = json.loads(render_wzdx([found], feed_info={"publisher": "City"}, generated=GENERATED,
                                               zone=LOS_ANGELES))["features"]
    assert forward["geometry"]["coordinates"] == [[float(lon), float(lat)] for lat, lon in want]
    assert backward["geometry"]["coordinates"] == forward["geometry"]["coordinates"][::-1]
    datex2 = render_datex2([found], settings=Datex2Settings(country="us", national_identifier="city"),
                           zone=LOS_ANGELES, generated=GENERATED)
    pos = etree.fromstring(datex2).findtext(".//loc:posList", namespaces=NS).split()
    assert list(zip(pos[::2], pos[1::2], strict=True)) == want
