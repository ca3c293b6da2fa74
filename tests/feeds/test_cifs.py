from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from lxml import etree

from exchange.errors import ItemRejected, MalformedPayload
from exchange.model import Event, Kind, Point
from exchange.validation import validate_cifs_xml, validate_feed
from feeds.cifs import (
    CREATED_KEY,
    UPDATED_KEY,
    check_cifs_rules,
    cifs_item_to_event,
    parse_cifs,
    render_cifs_json,
    render_cifs_xml,
)
from feeds.city import city_event
from feeds.items import Snapshot
from feeds.problems import Problem, errors_only

NEW_YORK = ZoneInfo("America/New_York")
TORONTO = ZoneInfo("America/Toronto")
GENERATED = datetime(2026, 7, 12, 13, 0, tzinfo=UTC)
LINE = [(-84.091134, 39.414714), (-84.091072, 39.423646), (-84.123952, 39.423669)]


def closure(source_id: str = "C-100", **overrides: Any) -> Event:
    fields: dict[str, Any] = {
        "type": "ROAD_CLOSED",
        "subtype": "ROAD_CLOSED_CONSTRUCTION",
        "street": "I-71",
        "coordinates": LINE,
        "zone": NEW_YORK,
        "direction": "BOTH_DIRECTIONS",
        "start": "2026-07-12T00:00:00",
        "end": "2026-08-30T23:59:00",
        "description": "Bridge replacement",
    }
    fields.update(overrides)
    return city_event("city", source_id, **fields)


def convert_all(snapshot: Snapshot, zone: ZoneInfo = NEW_YORK) -> tuple[list[Event], dict[str, str]]:
    events: list[Event] = []
    rejected: dict[str, str] = {}
    for item in snapshot.items:
        try:
            events.append(cifs_item_to_event(item, "other", zone))
        except ItemRejected as exc:
            assert exc.source_id == item.source_id
            rejected[item.source_id] = exc.message
    return events, rejected


def errors(problems: list[Problem]) -> list[str]:
    return [str(problem) for problem in errors_only(problems)]


# --------------------------------------------------------------------------- rendering


def test_xml_has_the_cifsv2_shape_and_validates() -> None:
    event = closure(
        schedule={"friday": "08:00-12:00", "monday": "08:00-17:00"},
        reference={"reference": "city-dot", "name": "City DOT", "url": "https://example.org"},
        parent_event="FESTIVAL-1",
        attributes={CREATED_KEY: 1783828800000, UPDATED_KEY: 1783857300000},
    )
    data = render_cifs_xml([event], zone=NEW_YORK, generated=GENERATED)
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<incidents')
    root = etree.fromstring(data)
    assert root.get("timestamp") == "2026-07-12T09:00:00-04:00"
    incident = root.find("incident")
    assert incident is not None and incident.get("id") == "city:city:C-100"
    assert incident.findtext("polyline") == "39.414714 -84.091134 39.423646 -84.091072 39.423669 -84.123952"
    assert incident.findtext("starttime") == "2026-07-12T00:00:00-04:00"
    assert incident.findtext("endtime") == "2026-08-30T23:59:00-04:00"
    assert incident.findtext("creationtime") == "2026-07-12T00:00:00-04:00"
    assert incident.findtext("updatetime") == "2026-07-12T07:55:00-04:00"
    assert [child.tag for child in incident.find("schedule")] == ["monday", "friday"]
    assert incident.find("parent_event").get("id") == "FESTIVAL-1"
    assert [child.tag for child in incident.find("source")] == ["reference", "name", "url"]
    assert incident.find("location") is None
    assert validate_cifs_xml(data) == []


def test_times_always_carry_the_city_offset() -> None:
    event = closure(start=datetime(2026, 1, 5, 14, 0, tzinfo=UTC), end=datetime(2026, 1, 6, 14, 0, tzinfo=UTC))
    incident = etree.fromstring(render_cifs_xml([event], zone=NEW_YORK, generated=GENERATED)).find("incident")
    assert incident.findtext("starttime") == "2026-01-05T09:00:00-05:00"
    for name in ("starttime", "endtime"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", incident.findtext(name))


def test_description_falls_back_to_the_type_and_optional_parts_are_left_out() -> None:
    event = city_event(
        "city", "W-1", type="CONSTRUCTION", street="Main Street", coordinates=LINE, zone=NEW_YORK,
        lanes=[{"order": 0, "status": "OPEN"}, {"order": 1, "status": "CLOSED"}],
        lane_impact={"total_closed_lanes": 1, "roadside": "RIGHT"},
    )
    data = render_cifs_xml([event], zone=NEW_YORK, generated=GENERATED)
    incident = etree.fromstring(data).find("incident")
    assert incident.findtext("description") == "Construction"
    assert incident.find("subtype") is None and incident.find("direction") is None
    assert [lane.findtext("status") for lane in incident.iterfind("lanes/lane")] == ["OPEN", "CLOSED"]
    assert incident.findtext("lane_impact/roadside") == "RIGHT"
    assert validate_cifs_xml(data) == []
    bare = closure(description=None)
    assert etree.fromstring(render_cifs_xml([bare], zone=NEW_YORK, generated=GENERATED)).findtext(
        "incident/description") == "Road closed"


def test_json_shapes() -> None:
    event = closure(schedule={"everyday": "18:00-22:00"}, reference={"reference": "dot"}, parent_event="EVT-1")
    wrapped = orjson.loads(render_cifs_json([event], zone=NEW_YORK, generated=GENERATED))
    incident = wrapped["incidents"][0]["incident"]
    assert incident["id"] == "city:city:C-100" and incident["polyline"].startswith("39.414714 -84.091134 ")
    assert incident["schedule"] == {"everyday": "18:00-22:00"} and incident["source"] == {"reference": "dot"}
    assert incident["parent_event"] == {"id": "EVT-1"}
    flat = orjson.loads(render_cifs_json([event], zone=NEW_YORK, generated=GENERATED, shape="flat"))
    assert flat["incidents"][0] == incident and flat["timestamp"] == "2026-07-12T09:00:00-04:00"
    with pytest.raises(ValueError, match="shape"):
        render_cifs_json([event], zone=NEW_YORK, generated=GENERATED, shape="nested")  # type: ignore[arg-type]


TRICKY = [
    "O'Connor Street",
    'The "Strand"',
    "Rue de l'Église Saint-Jérôme",
    "Smith & Wesson Blvd",
    "A < B > C",
    "Sneaky ]]> Road",
    "Ünïcødé Straße – ñ, ø, 東京",
    "<![CDATA[x]]> &amp; &#38;",
]


#: what a description holding character references reads as: they are HTML a publisher left in its
#: text (a double-escaped "&amp;amp;"), read as the characters they name; a street is kept as written
DESCRIPTION_READ = {"<![CDATA[x]]> &amp; &#38;": "<![CDATA[x]]> & &"}


@pytest.mark.parametrize("text", TRICKY)
def test_text_survives_a_render_parse_round_trip(text: str) -> None:
    event = closure(street=text, description=f"Closed: {text}")
    for data in (
        render_cifs_xml([event], zone=NEW_YORK, generated=GENERATED),
        render_cifs_json([event], zone=NEW_YORK, generated=GENERATED),
        render_cifs_json([event], zone=NEW_YORK, generated=GENERATED, shape="flat"),
    ):
        back = cifs_item_to_event(parse_cifs(data, zone=NEW_YORK).items[0], "back", NEW_YORK)
        assert back.street == text
        assert back.details is not None and back.details.description == f"Closed: {DESCRIPTION_READ.get(text, text)}"
        assert back.geometry == event.geometry and back.start_time == event.start_time
    assert validate_cifs_xml(render_cifs_xml([event], zone=NEW_YORK, generated=GENERATED)) == []


def test_characters_xml_cannot_carry_are_dropped_not_fatal() -> None:
    # city_event refuses them at entry; an event built another way still renders
    event = closure()
    assert event.details is not None
    event = event.model_copy(update={"details": event.details.model_copy(
        update={"description": "bell\x07 and vertical\x0btab"})})
    data = render_cifs_xml([event], zone=NEW_YORK, generated=GENERATED)
    assert etree.fromstring(data).findtext("incident/description") == "bell and verticaltab"


def test_everything_a_city_event_carries_comes_back() -> None:
    event = closure(
        schedule={"tuesday": "12:00-14:00,19:00-21:00", "thursday": "08:00-10:00"},
        reference={"reference": "ref", "name": "Name", "url": "https://example.org/?a=1&b=2"},
        parent_event="PARENT-1",
        attributes={CREATED_KEY: 1783828800000, UPDATED_KEY: 1783857300000},
    )
    for data in (render_cifs_xml([event], zone=NEW_YORK, generated=GENERATED),
                 render_cifs_json([event], zone=NEW_YORK, generated=GENERATED)):
        snapshot = parse_cifs(data, zone=NEW_YORK)
        assert snapshot.end_ms == round(GENERATED.timestamp() * 1000)
        back = cifs_item_to_event(snapshot.items[0], "city", NEW_YORK)
        assert back.source_id == event.id
        keep = {"type", "subtype", "street", "direction", "start_time", "end_time", "details", "attributes"}
        assert back.model_dump(include=keep) == event.model_dump(include=keep)


# --------------------------------------------------------------------------- reading real feeds


def test_london_on_legacy_feed_imports_all_44_and_re_exports_valid(testdata: Path) -> None:
    data = (testdata / "cifs" / "london_on_traffic-incidents_20180412.xml").read_bytes()
    snapshot = parse_cifs(data, zone=TORONTO)
    assert len(snapshot.items) == 44 and snapshot.errors == []
    assert snapshot.kinds_present == frozenset({Kind.CITY})
    events, rejected = convert_all(snapshot, TORONTO)
    assert rejected == {} and len(events) == 44
    first = next(e for e in events if e.source_id == "20852")
    assert first.street == "ADELAIDE ST S" and first.type == "CONSTRUCTION" and first.direction == "BOTH_DIRECTIONS"
    assert first.details is not None and first.details.reference is not None
    assert first.details.reference.reference == "RenewLondon"
    assert first.start_time == datetime(2018, 4, 11, 5, 0, tzinfo=ZoneInfo("Etc/GMT+5"))
    created = datetime.fromisoformat("2018-04-11T16:22:28-05:00")
    assert first.attributes[CREATED_KEY] == round(created.timestamp() * 1000)
    out = render_cifs_xml(events, zone=TORONTO, generated=GENERATED)
    assert errors(validate_cifs_xml(out)) == []
    assert b"<location>" not in out
    assert len(etree.fromstring(out).findall("incident")) == 44


def test_dialog_feed_keeps_its_7_incidents_and_schedules(testdata: Path) -> None:
    data = (testdata / "cifs" / "dialog_expected_cifsv2.xml").read_bytes()
    source = etree.fromstring(data)
    expected = {
        incident.get("id"): {day.tag: day.text for day in incident.find("schedule")}
        for incident in source.iterfind("incident") if incident.find("schedule") is not None
    }
    events, rejected = convert_all(parse_cifs(data, zone=ZoneInfo("Europe/Paris")), ZoneInfo("Europe/Paris"))
    assert rejected == {} and len(events) == 7
    got = {e.source_id: e.details.schedule for e in events if e.details is not None and e.details.schedule}
    assert got == expected and any(len(days) == 2 for days in got.values())
    out = render_cifs_xml(events, zone=ZoneInfo("Europe/Paris"), generated=GENERATED)
    assert validate_cifs_xml(out) == []
    written = {i.get("id").removeprefix("other:city:"): {d.tag: d.text for d in i.find("schedule")}
               for i in etree.fromstring(out).iterfind("incident") if i.find("schedule") is not None}
    assert written == expected


def test_icone_comma_polylines_and_vendor_children(testdata: Path) -> None:
    data = (testdata / "cifs" / "icone" / "icone_incidents_extended_2020-08-21.xml").read_bytes()
    snapshot = parse_cifs(data, zone=NEW_YORK)
    assert len(snapshot.items) == 92 and snapshot.errors == []
    first = snapshot.items[0]
    assert first.source_id == "1245" and "sensor" not in first.record and first.record["street"] == "I-75 N"
    events, rejected = convert_all(snapshot)
    # 8 lines and 2 point devices with a street; 82 point devices without one
    assert len(events) + len(rejected) == 92 and len(events) == 10
    assert set(rejected.values()) == {"no street: CIFS requires one"} and len(rejected) == 82
    by_id = {e.source_id: e for e in events}
    assert by_id["1245"].geometry.coordinates[0] == (-84.112854, 37.157199)
    assert by_id["1245"].start_time == datetime(2020, 2, 14, 17, 8, 16, tzinfo=UTC)
    out = render_cifs_xml(events, zone=NEW_YORK, generated=GENERATED)
    assert errors(validate_cifs_xml(out)) == []
    assert all("," not in (p.text or "") for p in etree.fromstring(out).iter("polyline"))


def test_icone_arrow_boards_without_a_street_are_rejected_with_the_reason(testdata: Path) -> None:
    data = (testdata / "cifs" / "icone" / "icone_cdot_20230522.xml").read_bytes()
    events, rejected = convert_all(parse_cifs(data, zone=ZoneInfo("America/Denver")))
    assert events == [] and rejected == dict.fromkeys(
        ("U13632309_202305222048", "U13632530_202305221143"), "no street: CIFS requires one")


def _odot_incident_properties(testdata: Path) -> set[str]:
    """The property names of ``components/schemas/incidentsIncident`` in ODOT's OpenAPI spec."""
    text = (testdata / "cifs" / "odot_tripcheck" / "tripcheck-api-v1-0.yaml").read_text(encoding="utf-8")
    block = text.split("\n    incidentsIncident:\n", 1)[1].split("\n    incidentsIncidentParent_event:", 1)[0]
    return set(re.findall(r"^        ([a-z_]+):$", block, re.MULTILINE))


def test_odot_tripcheck_json_shape(testdata: Path) -> None:
    incident = {
        "parent_event": {"id": "EVT-2024-7"},
        "id": "ODOT-12345",
        "creationtime": "2024-07-12T00:00:00-07:00",
        "updatetime": "2024-07-12T07:55:00-07:00",
        "source": {"reference": "ODOT", "name": "Oregon DOT", "url": "https://www.tripcheck.com/"},
        "type": "ROAD_CLOSED",
        "subtype": "ROAD_CLOSED_HAZARD",
        "description": "Rock slide",
        "location": {
            "location_description": "OR-22 at MP 12",
            "street": "OR-22",
            "polyline": "44.9 -123.0 44.91 -123.01",
            "direction": "ONE_DIRECTION",
        },
        "starttime": "2024-07-12T06:00:00-07:00",
        "endtime": "2024-07-13T06:00:00-07:00",
        "schedule": {"everyday": "06:00-18:00"},
    }
    assert set(incident) == _odot_incident_properties(testdata)
    document = {"timestamp": "2024-07-12T08:00:00-07:00", "noNamespaceSchemaLocation": "x", "incident": [incident]}
    snapshot = parse_cifs(orjson.dumps(document), zone=ZoneInfo("America/Los_Angeles"))
    assert [item.source_id for item in snapshot.items] == ["ODOT-12345"]
    event = cifs_item_to_event(snapshot.items[0], "odot", ZoneInfo("America/Los_Angeles"))
    assert event.street == "OR-22" and event.subtype == "ROAD_CLOSED_HAZARD" and event.direction == "ONE_DIRECTION"
    assert event.details is not None and event.details.parent_event == "EVT-2024-7"
    assert event.details.schedule == {"everyday": "06:00-18:00"}
    assert event.attributes["location_description"] == "OR-22 at MP 12"
    assert validate_feed(orjson.dumps(document)) == ("cifs-json", [])


def test_json_shapes_are_all_read() -> None:
    incident = {"id": 101, "type": "HAZARD", "subtype": "HAZARD_ON_ROAD_POT_HOLE", "street": "Elm St",
                "polyline": "40.1 -74.1 40.2 -74.2", "description": "Pot hole"}
    for document in ({"incidents": [{"incident": incident}]}, {"incidents": [incident]}, {"incident": incident},
                     {"incidents": {"incident": [incident]}}, [incident]):
        snapshot = parse_cifs(orjson.dumps(document), zone=NEW_YORK)
        assert [item.source_id for item in snapshot.items] == ["101"], document
        assert cifs_item_to_event(snapshot.items[0], "x", NEW_YORK).subtype == "HAZARD_ON_ROAD_POT_HOLE"


def test_ids_missing_or_repeated_are_item_errors() -> None:
    xml = b"""<incidents>
      <incident><type>HAZARD</type></incident>
      <incident id="A-1"><type>HAZARD</type></incident>
      <incident id="A-1"><type>ACCIDENT</type></incident>
    </incidents>"""
    snapshot = parse_cifs(xml, zone=NEW_YORK)
    assert [item.source_id for item in snapshot.items] == ["A-1"]
    reasons = [error.reason for error in snapshot.errors]
    assert "without a usable id" in reasons[0] and "duplicate incident id 'A-1'" in reasons[1]


def test_bad_incidents_are_rejected_one_by_one() -> None:
    xml = b"""<incidents>
      <incident id="one-point"><type>ROAD_CLOSED</type><street>Main St</street>
        <polyline>40.1 -74.1</polyline><starttime>2026-01-01T00:00:00Z</starttime></incident>
      <incident id="bad-type"><type>PARADE</type><street>Main St</street><polyline>40.1 -74.1 40.2 -74.2</polyline>
      </incident>
      <incident id="mismatch"><type>ROAD_CLOSED</type><subtype>ACCIDENT_MINOR</subtype><street>Main St</street>
        <polyline>40.1 -74.1 40.2 -74.2</polyline><starttime>2026-01-01T00:00:00Z</starttime></incident>
      <incident id="letters"><type>HAZARD</type><street>Main St</street><polyline>hello</polyline></incident>
      <incident id="good"><type>HAZARD</type><street>Main St</street><polyline>40.1 -74.1 40.2 -74.2</polyline>
      </incident>
    </incidents>"""
    events, rejected = convert_all(parse_cifs(xml, zone=NEW_YORK))
    assert [e.source_id for e in events] == ["good"]
    assert "2 distinct points" in rejected["one-point"] and "type" in rejected["bad-type"]
    assert "subtype" in rejected["mismatch"] and "numbers" in rejected["letters"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><incidents>&e;</incidents>', "DOCTYPE"),
        (b"<incidents><incident>", "malformed XML"),
        (b"<rss><channel/></rss>", "expected <incidents>"),
        (b'{"alerts": []}', "not a CIFS JSON feed"),
        (b"{broken", "malformed JSON"),
        (b"   ", "empty"),
        (b"hello", "neither XML nor JSON"),
    ],
)
def test_unreadable_payloads(payload: bytes, message: str) -> None:
    with pytest.raises(MalformedPayload, match=message):
        parse_cifs(payload, zone=NEW_YORK)


# --------------------------------------------------------------------------- rules beyond the XSD


def _xml(incident: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<incidents>\n{incident}\n</incidents>'.encode()


GOOD = ('<incident id="ABC-1"><type>ROAD_CLOSED</type><subtype>ROAD_CLOSED_EVENT</subtype>'
        "<description>Marathon</description><street>Main St</street>"
        "<polyline>40.100000 -74.100000 40.101000 -74.101000</polyline>"
        "<starttime>2026-05-01T08:00:00-04:00</starttime><endtime>2026-05-01T18:00:00-04:00</endtime></incident>")


def test_a_good_incident_passes_both_xsd_and_rules() -> None:
    assert validate_cifs_xml(_xml(GOOD)) == []
    assert check_cifs_rules(_xml(GOOD)) == []


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("40.100000 -74.100000 40.101000 -74.101000", "40.100000 -74.100000", "one point"),
        ("40.100000 -74.100000 40.101000 -74.101000", "40.1 -74.1 40.1 -74.1", "zero length"),
        ("40.100000 -74.100000 40.101000 -74.101000", "40.1,-74.1,40.2,-74.2", "commas"),
        ("40.100000 -74.100000 40.101000 -74.101000", "-74.1 40.1 -74.2 40.2", "lon-first"),
        ("40.100000 -74.100000 40.101000 -74.101000", "40.1 -74.1 40.2", "odd count"),
        ("40.100000 -74.100000 40.101000 -74.101000", "40.1 -194.1 40.2 -74.2", "longitude -194.1"),
        ("2026-05-01T08:00:00-04:00", "2026-05-01T08:00:00", "no time zone"),
        ("2026-05-01T18:00:00-04:00", "2026-05-01T07:00:00-04:00", "not after starttime"),
        ("<subtype>ROAD_CLOSED_EVENT</subtype>", "<subtype>ACCIDENT_MINOR</subtype>", "does not belong to type"),
        ("<starttime>2026-05-01T08:00:00-04:00</starttime>", "", "needs a start time"),
    ],
)
def test_rules_the_xsd_does_not_check(old: str, new: str, message: str) -> None:
    data = _xml(GOOD.replace(old, new))
    schema_errors = [p for p in validate_cifs_xml(data) if p.severity == "error"]
    rule_errors = errors_only(check_cifs_rules(data))
    assert any(message in p.message for p in rule_errors), rule_errors
    assert any(message in p.message for p in schema_errors)
    assert all(p.location.startswith("line 3: incident 'ABC-1'") for p in rule_errors)


def test_one_point_with_a_direction_is_only_a_warning_for_an_incident() -> None:
    data = _xml('<incident id="HZ-1"><type>HAZARD</type><description>x</description><street>Main St</street>'
                "<polyline>40.1 -74.1</polyline><direction>ONE_DIRECTION</direction></incident>")
    assert [p.severity for p in check_cifs_rules(data)] == ["warning"]


def test_duplicate_ids_and_timestamp_without_zone() -> None:
    data = _xml(GOOD + "\n" + GOOD).replace(b"<incidents>", b'<incidents timestamp="2026-05-01T08:00:00">')
    messages = [p.message for p in check_cifs_rules(data)]
    assert any("duplicate id 'ABC-1'" in m for m in messages)
    assert any(m.startswith("timestamp:") and "no time zone" in m for m in messages)


def test_json_rules_include_what_the_xsd_would_check() -> None:
    incident = {"id": "AB", "type": "ROAD_CLOSED", "street": "M", "polyline": "40.1 -74.1 40.2 -74.2",
                "starttime": "2026-05-01T08:00:00-04:00",
                "schedule": {"friday": "08:00-12:00", "monday": "25:00-26:00"}}
    messages = [p.message for p in check_cifs_rules(orjson.dumps({"incidents": [incident]}))]
    for expected in ("id: 'AB' is too short", "street: 'M'", "description: missing", "days out of order",
                     "monday 25:00-26:00 is not a time window within 00:00-23:59"):
        assert any(expected in m for m in messages), (expected, messages)


def test_rules_on_events_before_rendering() -> None:
    good = closure()
    naive = good.model_copy(update={"start_time": datetime(2026, 7, 12, 8, 0), "id": "city:city:naive"})
    point = closure("P-1", type="HAZARD", subtype=None, direction="ONE_DIRECTION")
    point = point.model_copy(update={"geometry": Point(coordinates=(-74.1, 40.1))})  # a crowd-style point incident
    problems = check_cifs_rules([good, naive, point], zone=NEW_YORK)
    assert errors(problems) == []
    assert {p.location for p in problems} == {"event city:city:naive", "events[2]: incident 'city:city:P-1'"}
    assert check_cifs_rules([point.model_copy(update={"type": "ROAD_CLOSED"})])[0].severity == "error"
    twice = check_cifs_rules([good, good])
    assert any("duplicate id" in p.message for p in errors_only(twice))


def test_naive_event_time_is_written_in_the_city_zone() -> None:
    event = closure().model_copy(update={"start_time": datetime(2026, 7, 12, 8, 0)})
    incident = etree.fromstring(render_cifs_xml([event], zone=NEW_YORK, generated=GENERATED)).find("incident")
    assert incident.findtext("starttime") == "2026-07-12T08:00:00-04:00"


def test_an_end_of_a_closure_is_kept_as_endtime() -> None:
    ended = closure(end=datetime(2026, 7, 12, 4, 30, tzinfo=UTC) + timedelta(hours=1))
    incident = etree.fromstring(render_cifs_xml([ended], zone=NEW_YORK, generated=GENERATED)).find("incident")
    assert incident.findtext("endtime") == "2026-07-12T01:30:00-04:00"


def test_the_cifs_source_adapter(testdata: Path) -> None:
    from adapters import adapter_class
    from adapters.base import Watermark

    path = testdata / "cifs" / "london_on_traffic-incidents_20180412.xml"
    source = adapter_class("cifs")("london", {"url": path.as_uri(), "namespace": "london"}, zone=TORONTO)
    fetched = source.fetch(Watermark())
    assert fetched.body is not None
    snapshot = source.read(fetched.body)
    assert len(snapshot.items) == 44
    assert source.convert(snapshot.items[0]).id == f"london:city:{snapshot.items[0].source_id}"
