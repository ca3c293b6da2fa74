"""DATEX II v3: the city's events out as a SituationPublication that the official 3.5 schemas
accept, read back as the same events, and the real samples read or refused with one line each."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from lxml import etree

from adapters import build_source
from exchange.config import Datex2Settings, PublishConfig
from exchange.config_file import load_config
from exchange.errors import ItemRejected, MalformedPayload
from exchange.model import Category, Event, Kind, LineString, Origin, Point, Status
from feeds.cifs import CREATED_KEY, UPDATED_KEY, cifs_item_to_event, parse_cifs, with_revision_times
from feeds.city import city_event
from feeds.datex2 import MAX_TEXT, NS, check_datex2, losses_for, problems_for, record_version, render_datex2
from feeds.datex2_read import datex2_item_to_event, parse_datex2
from feeds.items import Snapshot
from feeds.wzdx import parse_wzdx, wzdx_item_to_event
from tests.support.helpers import as_published
from tests.support.paths import ROOT

OAKLAND, PARIS = ZoneInfo("America/Los_Angeles"), ZoneInfo("Europe/Paris")
GENERATED = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)
SETTINGS = Datex2Settings(country="us", national_identifier="demo-city", language="en")
LINE = [(-122.300788, 37.809578), (-122.301448, 37.809911), (-122.302087, 37.810233)]


def validate(document: bytes, tmp_path: Path, testdata: Path, name: str = "datex2.xml") -> str:
    """The offline validator's verdict (DATEX II 3.5 schemas), run as partners would run it."""
    path = tmp_path / name
    path.write_bytes(document)
    done = subprocess.run(
        [sys.executable, str(testdata / "datex2" / "validate_offline.py"), "--set", "v3.5", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def convert_all(snapshot: Snapshot, zone: ZoneInfo = OAKLAND) -> tuple[list[Event], dict[str, str]]:
    found, rejected = [], {}
    for item in snapshot.items:
        try:
            found.append(datex2_item_to_event(item, "other", zone))
        except ItemRejected as exc:
            rejected[item.source_id] = exc.message
    return found, rejected


def demo_events() -> list[Event]:
    """The demo's city closures, read by its own CSV source."""
    config = load_config(ROOT / "config" / "demo.toml")
    entry = next(source for source in config.sources if source.kind == "csv")
    source = build_source(entry, zone=config.zone)
    snapshot = source.read((ROOT / "fixtures" / "city" / "closures.csv").read_bytes())
    return [source.convert(item) for item in snapshot.items]


def rich_events() -> list[Event]:
    """What the demo lacks: one direction, schedules, lanes, a lane impact, a point, an end, a source."""
    common: dict[str, Any] = {"zone": OAKLAND, "street": "7th Street"}
    return [
        city_event("city", "nightly", type="ROAD_CLOSED", coordinates=LINE, direction="ONE_DIRECTION",
                   start="2026-03-02T08:00:00", end="2026-04-30T06:00:00", description="Night paving",
                   schedule={"everyday": "00:00-05:00", "tuesday": "21:00-23:59",
                             "thursday": "08:00-10:00,12:00-14:00"},
                   reference={"reference": "oakland-dot", "name": "Oakland DOT", "url": "https://example.org/c/1"},
                   attributes={CREATED_KEY: 1772400000000, UPDATED_KEY: 1772450000000}, **common),
        city_event("city", "lane", type="HAZARD", subtype="HAZARD_ON_ROAD_LANE_CLOSED", coordinates=LINE[::-1],
                   direction="ONE_DIRECTION", start="2026-03-02T09:00:00",
                   lanes=[{"order": 0, "status": "OPEN"}, {"order": 1, "status": "CLOSED"},
                          {"order": 2, "status": "CLOSED"}], **common),
        city_event("city", "impact", type="CONSTRUCTION", coordinates=LINE, direction="BOTH_DIRECTIONS",
                   start="2026-03-01T07:00:00", end="2026-03-03T19:00:00",
                   lane_impact={"total_closed_lanes": 1, "roadside": "RIGHT"}, **common),
        city_event("city", "crash", type="ACCIDENT", subtype="ACCIDENT_MAJOR", coordinates=LINE[:1],
                   direction="ONE_DIRECTION", start="2026-03-02T07:40:00", description="Two cars", **common),
        city_event("city", "minor", type="ACCIDENT", subtype="ACCIDENT_MINOR", coordinates=LINE[1:2],
                   direction="BOTH_DIRECTIONS", start="2026-03-02T07:45:00", **common),
    ]


def same(original: Event, read: Event) -> None:
    """The fields DATEX II carries are what they were."""
    assert (read.type, read.subtype, read.category) == (original.type, original.subtype, original.category)
    assert (read.street, read.direction) == (original.street, original.direction)
    assert (read.start_time, read.end_time) == (original.start_time, original.end_time)
    assert read.geometry.type == original.geometry.type
    got = [read.geometry.coordinates] if isinstance(read.geometry, Point) else read.geometry.coordinates
    given = [original.geometry.coordinates] if isinstance(original.geometry, Point) else original.geometry.coordinates
    want = as_published(given)
    assert len(got) == len(want)
    assert all(abs(a - b) <= 1e-6 for p, q in zip(got, want, strict=True) for a, b in zip(p, q, strict=True))
    assert original.details is not None and read.details is not None
    for field in ("description", "schedule", "lanes", "lane_impact", "reference"):
        assert getattr(read.details, field) == getattr(original.details, field), field


def test_the_demo_publishes_valid_datex2_that_reads_back_the_same(tmp_path: Path, testdata: Path) -> None:
    events = demo_events()
    assert {event.type for event in events} == {"ROAD_CLOSED", "CONSTRUCTION"}
    document = render_datex2(events, settings=SETTINGS, zone=OAKLAND, generated=GENERATED)
    assert "VALID" in validate(document, tmp_path, testdata)
    assert check_datex2(document) == []
    root = etree.fromstring(document)
    assert root.findtext("com:publicationCreator/com:nationalIdentifier", namespaces=NS) == "demo-city"
    records = root.findall(".//sit:situationRecord", NS)
    assert [record.get("id") for record in records] == [event.id for event in events]
    causes = [record.findtext("sit:cause/sit:causeType", namespaces=NS) for record in records]
    assert causes == ["constructionWork", "publicEvent", None]
    read, rejected = convert_all(parse_datex2(document, zone=OAKLAND))
    assert rejected == {}
    for original, back in zip(events, read, strict=True):
        same(original, back)


def test_closures_lanes_schedules_points_and_accidents_round_trip(tmp_path: Path, testdata: Path) -> None:
    events = rich_events()
    document = render_datex2(events, settings=SETTINGS, zone=OAKLAND, generated=GENERATED)
    validate(document, tmp_path, testdata)
    assert check_datex2(document) == []
    root = etree.fromstring(document)
    by_id = {record.get("id"): record for record in root.iterfind(".//sit:situationRecord", NS)}
    nightly = by_id["city:city:nightly"]
    assert nightly.findtext("sit:roadOrCarriagewayOrLaneManagementType", namespaces=NS) == "carriagewayClosures"
    assert nightly.findtext("sit:applicableForTrafficDirection", namespaces=NS) == "aligned"
    periods = nightly.findall(".//com:validPeriod", NS)
    assert [p.findtext(".//com:applicableDay", namespaces=NS) for p in periods] == [None, "tuesday", "thursday"]
    # "to midnight" (23:59) ends at the day's last second: no minute open before the next day's 00:00 window
    assert periods[1].findtext(".//com:endTimeOfPeriod", namespaces=NS) == "23:59:59"
    assert nightly.findtext(".//loc:posList", namespaces=NS).startswith("37.809578 -122.300788 ")  # lat lon
    assert nightly.get("version") == "1772450000000"  # the update time, in milliseconds
    lane = by_id["city:city:lane"]
    assert [n.text for n in lane.iterfind(".//loc:laneNumber", NS)] == ["1", "2"]  # from the verge
    assert by_id["city:city:crash"].get(f"{{{NS['xsi']}}}type") == "sit:Accident"
    assert by_id["city:city:crash"].findtext("sit:severity", namespaces=NS) == "high"
    assert by_id["city:city:minor"].find("sit:impactOnOppositeDirection", NS) is not None
    read, rejected = convert_all(parse_datex2(document, zone=OAKLAND))
    assert rejected == {}
    for original, back in zip(events, read, strict=True):
        same(original, back)
    assert read[0].attributes[UPDATED_KEY] == 1772450000000


def test_ids_and_versions_are_stable_and_an_ended_record_keeps_its_end() -> None:
    event = rich_events()[2]
    first = render_datex2([event], settings=SETTINGS, zone=OAKLAND, generated=GENERATED)
    later = render_datex2([event], settings=SETTINGS, zone=OAKLAND, generated=GENERATED + timedelta(minutes=5))
    ids = [(r.get("id"), r.get("version")) for r in etree.fromstring(first).iterfind(".//sit:situationRecord", NS)]
    assert ids == [(r.get("id"), r.get("version"))
                   for r in etree.fromstring(later).iterfind(".//sit:situationRecord", NS)]
    changed = event.model_copy(update={"street": "8th Street"})
    assert record_version(changed) != record_version(event)  # no update time: the content's fingerprint
    stamped = event.model_copy(update={"attributes": {UPDATED_KEY: 1772460000000}})
    assert record_version(stamped) == "1772460000000"  # the source's update time
    published = with_revision_times(stamped, 1772400000000, 1772470000000)  # as publishing reads the store
    bumped = with_revision_times(stamped, 1772400000000, 1772480000000)
    assert record_version(published) == "1772470000000" and int(record_version(bumped)) > int(record_version(published))
    record = etree.fromstring(render_datex2([published], settings=SETTINGS, zone=OAKLAND, generated=GENERATED))
    assert record.findtext(".//sit:situationRecordCreationTime", namespaces=NS) == "2026-03-01T13:20:00-08:00"
    ended = event.model_copy(update={"status": Status.ENDED})
    document = render_datex2([ended], settings=SETTINGS, zone=OAKLAND, generated=GENERATED)
    assert etree.fromstring(document).findtext(".//com:overallEndTime", namespaces=NS) == "2026-03-03T19:00:00-08:00"


def crowd_jam() -> Event:
    return Event(id="waze:jam:1", source="waze", kind=Kind.JAM, source_id="1", origin=Origin.CROWD,
                 category=Category.JAM, type="JAM", geometry=LineString(coordinates=LINE))


def test_what_datex2_cannot_carry_is_held_back_with_its_reason_and_losses_are_named() -> None:
    closure, lane, *_ = rich_events()
    assert problems_for(closure) == [] and losses_for(closure) == []
    assert problems_for(crowd_jam())[0] == "crowd data is never published in DATEX II (city events only)"
    fog = city_event("city", "fog", type="HAZARD", subtype="HAZARD_WEATHER_FOG", street="I-880",
                     coordinates=LINE[:1], direction="ONE_DIRECTION", zone=OAKLAND)
    assert problems_for(fog) == ["Waze type HAZARD/HAZARD_WEATHER_FOG has no DATEX II record here "
                                 "(closures, road works and accidents only)", "no start time: DATEX II validity needs "
                                 "an overallStartTime"]
    document = render_datex2([fog, crowd_jam(), closure], settings=SETTINGS, zone=OAKLAND, generated=GENERATED)
    assert [s.get("id") for s in etree.fromstring(document).iterfind("sit:situation", NS)] == [closure.id]
    assert any("right-hand traffic" in loss for loss in losses_for(lane))
    works = city_event("city", "works", type="HAZARD", subtype="HAZARD_ON_ROAD_CONSTRUCTION", street="7th Street",
                       coordinates=LINE, start="2026-03-02T08:00:00", zone=OAKLAND, parent_event="fair-2026",
                       lanes=[{"order": 0, "type": "BUS", "status": "CLOSED_LANE"}],
                       description="x" * (MAX_TEXT + 5))
    losses = losses_for(works)
    assert problems_for(works) == [] and len(losses) == 7
    assert losses[0].startswith("Waze HAZARD_ON_ROAD_CONSTRUCTION is published as road works")
    assert "no direction given: DATEX II reads the location as one direction of travel" in losses
    assert f"the description is cut to {MAX_TEXT} characters" in losses
    document = render_datex2([works], settings=SETTINGS, zone=OAKLAND, generated=GENERATED)
    assert check_datex2(document) == []
    comment = etree.fromstring(document).findtext(".//sit:comment/com:values/com:value", namespaces=NS)
    assert len(comment) == MAX_TEXT


def test_the_settings_default_to_the_city_reference() -> None:
    publish = PublishConfig(reference="lille-mel", datex2={"country": "fr", "language": "fr"})
    assert publish.datex2.national_identifier == "lille-mel"
    document = render_datex2(rich_events()[:1], settings=publish.datex2, zone=PARIS, generated=GENERATED)
    root = etree.fromstring(document)
    assert (root.get("lang"), root.findtext(".//com:country", namespaces=NS)) == ("fr", "fr")
    assert root.find(".//com:value", NS).get("lang") == "fr"
    with pytest.raises(ValueError, match="country"):
        Datex2Settings(country="France")


# --------------------------------------------------------------------------- real documents in


SAMPLES = Path("datex2") / "samples"


def read_or_refuse(path: Path) -> tuple[list[Event], dict[str, str], str | None]:
    try:
        snapshot = parse_datex2(path.read_bytes(), zone=PARIS)
    except MalformedPayload as exc:
        assert "\n" not in exc.message
        return [], {}, exc.message
    read, rejected = convert_all(snapshot, PARIS)
    assert all("\n" not in reason for reason in rejected.values())
    return read, rejected, None


def test_every_real_sample_is_read_or_refused_with_one_line(testdata: Path) -> None:
    paths = sorted((testdata / SAMPLES).rglob("*.xml"))
    assert len(paths) == 14
    outcome = {path.relative_to(testdata / SAMPLES).as_posix(): read_or_refuse(path) for path in paths}
    refused = {name: reason for name, (_, _, reason) in outcome.items() if reason}
    assert sorted(refused) == [
        "svv_GetSituations_Datex3_deliverybreak.xml", "svv_GetTravelTimeData_Datex3.xml",
        "svv_GetTravelTimeData_Datex3_invalid.xml",
        "svv_GetTravelTimeData_Datex3_without_modelBaseVersion_on_exchangeInformation.xml",
    ]
    assert "PredefinedLocationsPublication" in refused["svv_GetTravelTimeData_Datex3.xml"]
    # DiaLog's hand-written and API examples close a road to some vehicles only: no closure
    for name in ("dialog_docs_spec_example.xml", "dialog_public_api_sample.xml"):
        assert outcome[name][:2] == ([], {"T-SN2022-05-154:0:0": "a no-entry regulation for some vehicles only "
                                          "(1 vehicle condition(s)) is not a closure to all traffic (not read)"})
    assert "without a payload" in refused["svv_GetSituations_Datex3_deliverybreak.xml"]
    # Fintraffic ships no modelBaseVersion: read all the same, its ferry notice and public event named
    for name in ("fintraffic_GUID50456943.xml", "derived/fintraffic_GUID50456943.modelBaseVersion-added.xml"):
        assert outcome[name][1] == {"GUID5046133001": "a TransitInformation record is not read "
                                                      "(only closures, road works and accidents)"}
    # NPRA's wrong targetClass prefix changes nothing: its road works are read, in WGS84 from EPSG 25833
    for name in ("svv_GetSituations_Datex3.xml", "derived/svv_GetSituations_Datex3.targetClass-fixed.xml"):
        read, rejected, _ = outcome[name]
        assert len(rejected) == 2 and all("GeneralNetworkManagement" in reason for reason in rejected.values())
        (works,) = read
        assert (works.type, works.street, works.direction) == ("CONSTRUCTION", "Tyinvegen", "BOTH_DIRECTIONS")
        assert works.end_time == datetime(2022, 8, 20, 17, 0, tzinfo=UTC)
        lons, lats = zip(*works.geometry.coordinates, strict=True)
        # the publisher's own display point (61.145523, 8.710909) lies on the line's extent
        assert min(lats) - 0.001 < 61.145523 < max(lats) + 0.001 and min(lons) < 8.710909 < max(lons)
    weather = outcome["svv_GetSituations_Datex3_invalid_subdivisionCode.xml"][1]
    assert list(weather.values()) == ["a WeatherRelatedRoadConditions record is not read "
                                      "(only closures, road works and accidents)"]


def test_npras_road_number_goes_on_beside_the_road_name(tmp_path: Path, testdata: Path) -> None:
    """NPRA names its road works "Tyinvegen" and numbers the road E16: the number was dropped on reading
    (the name wins); it goes out again as DATEX II ``roadNumber`` and as WZDx's second road name."""
    from feeds.wzdx import render_wzdx

    snapshot = parse_datex2((testdata / SAMPLES / "svv_GetSituations_Datex3.xml").read_bytes(), zone=PARIS)
    (works,), _ = convert_all(snapshot, PARIS)
    assert (works.street, works.attributes.get("road_number")) == ("Tyinvegen", "E16")
    document = render_datex2([works], settings=SETTINGS, zone=PARIS, generated=GENERATED)
    validate(document, tmp_path, testdata)
    road = etree.fromstring(document).find(".//loc:roadInformation", NS)
    assert road is not None
    assert [(etree.QName(child).localname, child.text) for child in road] == [
        ("roadName", "Tyinvegen"), ("roadNumber", "E16")]
    (back,), _ = convert_all(parse_datex2(document, zone=PARIS), PARIS)
    assert (back.street, back.attributes.get("road_number")) == ("Tyinvegen", "E16")
    wzdx = orjson.loads(render_wzdx([works], feed_info={"publisher": "NPRA"}, generated=GENERATED, zone=PARIS))
    assert {tuple(f["properties"]["core_details"]["road_names"]) for f in wzdx["features"]} == {("Tyinvegen", "E16")}


def test_an_imported_description_goes_out_in_its_own_language(tmp_path: Path, testdata: Path) -> None:
    """Found in a cold trial: NPRA's Norwegian comment went out tagged with the city's language (here
    English); a description the city wrote instead is in the city's."""
    snapshot = parse_datex2((testdata / SAMPLES / "svv_GetSituations_Datex3.xml").read_bytes(), zone=PARIS)
    (works,), _ = convert_all(snapshot, PARIS)
    assert works.details is not None and works.details.description

    def comment_languages(event: Event) -> set[str | None]:
        document = render_datex2([event], settings=SETTINGS, zone=PARIS, generated=GENERATED)
        validate(document, tmp_path, testdata)
        return {value.get("lang") for value in etree.fromstring(document).iterfind(".//sit:comment//com:value", NS)}

    assert comment_languages(works) == {"no"}
    works.details.overridden = {"details.description": works.details.description}
    works.details.description = "Road works, one lane open"
    assert comment_languages(works) == {"en"}


def test_shoulders_are_not_counted_as_traffic_lanes(tmp_path: Path, testdata: Path) -> None:
    """Found in a cold trial: CDOT's I-25 work zone (shoulder closed, one lane open, shoulder closed) went out
    as two of three lanes closed. DATEX II counts traffic lanes only ("hard shoulder should not be counted")
    from the verge, and names a closed shoulder by its use."""
    lanes = [{"order": 0, "type": "SHOULDER", "status": "CLOSED"}, {"order": 1, "type": "LANE", "status": "OPEN"},
             {"order": 2, "type": "LANE", "status": "CLOSED"}, {"order": 3, "type": "SHOULDER", "status": "CLOSED"}]
    works = city_event("city", "i25", type="CONSTRUCTION", coordinates=LINE, direction="ONE_DIRECTION",
                       start="2026-03-02T08:00:00", street="I-25", zone=OAKLAND, lanes=lanes)
    document = render_datex2([works], settings=SETTINGS, zone=OAKLAND, generated=GENERATED)
    validate(document, tmp_path, testdata)
    carriageway = etree.fromstring(document).find(".//loc:carriageway", NS)
    assert carriageway is not None
    assert carriageway.findtext("loc:originalNumberOfLanes", namespaces=NS) == "2"
    closed = [(lane.findtext("loc:laneNumber", namespaces=NS), lane.findtext("loc:laneUsage", namespaces=NS))
              for lane in carriageway.findall("loc:lane", NS)]
    assert closed == [(None, "hardShoulder"), ("1", None), (None, "hardShoulder")]  # from the verge


def test_one_bad_record_is_rejected_and_the_rest_read() -> None:
    document = render_datex2(rich_events()[:3], settings=SETTINGS, zone=OAKLAND, generated=GENERATED)
    root = etree.fromstring(document)
    lists = root.findall(".//loc:posList", NS)
    lists[0].text = "37.8 -122.3 37.9"  # odd
    lists[1].text = "37.8 -122.3 abc -122.4"
    snapshot = parse_datex2(etree.tostring(root), zone=OAKLAND)
    read, rejected = convert_all(snapshot)
    assert [event.source_id for event in read] == ["city:city:impact"]
    assert rejected == {"city:city:nightly": "posList: 3 numbers, not a whole number of 2-tuples",
                        "city:city:lane": "posList: '37.8 -122.3 abc -122.4' is not a list of numbers"}
    problems = [problem.message for problem in check_datex2(etree.tostring(root))]
    assert problems == ["posList: 3 numbers, not a whole number of 2-tuples", "posList: fewer than 2 positions",
                        "posList: '37.8 -122.3 abc -122.4' is not a list of numbers"]


@pytest.mark.parametrize(("body", "reason"), [
    (b"", "the payload is empty"),
    (b"<d2:payload", "malformed XML"),
    (b'<!DOCTYPE x [<!ENTITY a "b">]><x/>', "DOCTYPE"),
    (b"<incidents/>", "the root is <incidents>"),
])
def test_unreadable_documents_fail_with_one_line(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedPayload, match=reason):
        parse_datex2(body, zone=PARIS)


def test_the_structural_rules_and_the_official_schema(testdata: Path) -> None:
    closure = rich_events()[0]
    document = render_datex2([closure, closure], settings=SETTINGS, zone=OAKLAND, generated=GENERATED)
    root = etree.fromstring(document)
    root.find(".//com:overallEndTime", NS).text = "2026-03-01T00:00:00-08:00"
    del root.attrib["modelBaseVersion"]
    root.find(".//loc:posList", NS).text = "137.8 -122.3 37.9 -122.4"
    messages = [problem.message for problem in check_datex2(etree.tostring(root))]
    assert messages[0] == "modelBaseVersion: missing (required by DATEX II v3)"
    assert any(message.startswith("duplicate situation id") for message in messages)
    assert any(message.startswith("duplicate id and version") for message in messages)
    assert any("is not after overallStartTime" in message for message in messages)
    assert any(message.startswith("posList position 1: (137.8, -122.3)") for message in messages)
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    xsd = testdata / "datex2" / "v3.5-full" / "DATEXII_3_MessageContainer.xsd"
    schema = etree.XMLSchema(etree.parse(str(xsd), parser))
    with_xsd = check_datex2(etree.tostring(root), schema)
    assert any(problem.message.startswith("XSD:") and "modelBaseVersion" in problem.message for problem in with_xsd)
    fintraffic = (testdata / SAMPLES / "fintraffic_GUID50456943.xml").read_bytes()
    assert [(p.severity, p.message) for p in check_datex2(fintraffic)] == [
        ("error", "modelBaseVersion: missing (required by DATEX II v3)"),
        ("warning", "situationRecordVersionTime is before situationRecordCreationTime"),  # by 29 ms
    ]
    assert check_datex2(b"<x/>")[0].message.startswith("not a DATEX II v3 document")


def test_dialogs_cifs_publishes_as_valid_datex2(tmp_path: Path, testdata: Path) -> None:
    """DiaLog (Lille's metropolis among its users) publishes CIFS; its closures go out as DATEX II."""
    data = (testdata / "cifs" / "dialog_expected_cifsv2.xml").read_bytes()
    events = [cifs_item_to_event(item, "dialog", PARIS) for item in parse_cifs(data, zone=PARIS).items]
    assert len(events) == 7 and all(problems_for(event) == [] for event in events)
    document = render_datex2(events, settings=Datex2Settings(country="fr", national_identifier="MEL", language="fr"),
                             zone=PARIS, generated=datetime(2023, 6, 5, 12, 0, tzinfo=UTC))
    validate(document, tmp_path, testdata)
    read, rejected = convert_all(parse_datex2(document, zone=PARIS), PARIS)
    assert rejected == {}
    for original, back in zip(events, read, strict=True):
        same(original, back)


def test_cdots_wzdx_publishes_as_valid_datex2_and_reads_back(tmp_path: Path, testdata: Path) -> None:
    """CDOT's real WZDx 4.2 feed (May 2023): its road works and closures out as DATEX II and back."""
    denver = ZoneInfo("America/Denver")
    snapshot = parse_wzdx((testdata / "wzdx" / "cdot_prod_wzdx_v42_20230522.json").read_bytes())
    events = []
    for item in snapshot.items:
        try:
            events.append(wzdx_item_to_event(item, "cdot", denver))
        except ItemRejected:
            continue  # what WZDx itself refuses is its own test's business
    assert len(events) == 87 and all(problems_for(event) == [] for event in events)
    assert {event.type for event in events} == {"CONSTRUCTION", "ROAD_CLOSED"}
    document = render_datex2(events, settings=Datex2Settings(country="us", national_identifier="CDOT"),
                             zone=denver, generated=datetime(2023, 5, 23, tzinfo=UTC))
    validate(document, tmp_path, testdata, "cdot.xml")
    assert check_datex2(document) == []
    read, rejected = convert_all(parse_datex2(document, zone=denver), denver)
    assert rejected == {} and len(read) == 87
    for original, back in zip(events, read, strict=True):
        assert (back.type, back.street, back.direction) == (original.type, original.street, original.direction)
        assert (back.start_time, back.end_time) == (original.start_time, original.end_time)


def test_a_document_missing_any_one_element_is_read_or_refused_never_a_traceback(testdata: Path) -> None:
    """Every element of a rich document and of NPRA's real one removed in turn: each result is a
    snapshot whose records are read or rejected with one line, or the document refused with one."""
    rich = render_datex2(rich_events(), settings=SETTINGS, zone=OAKLAND, generated=GENERATED)
    npra = etree.fromstring((testdata / SAMPLES / "svv_GetSituations_Datex3.xml").read_bytes())
    for record in npra.iterfind(".//{*}situationRecord"):
        if record.get(f"{{{NS['xsi']}}}type", "").endswith("GeneralNetworkManagement"):  # never read: left out
            record.getparent().remove(record)
    for document in (rich, etree.tostring(npra)):
        count = sum(1 for _ in etree.fromstring(document).iter())
        for position in range(1, count):
            root = etree.fromstring(document)
            element = list(root.iter())[position]
            element.getparent().remove(element)
            try:
                snapshot = parse_datex2(etree.tostring(root), zone=OAKLAND)
            except MalformedPayload as exc:
                assert "\n" not in exc.message
                continue
            _, rejected = convert_all(snapshot)
            assert all(reason and "\n" not in reason for reason in rejected.values())


def test_dialogs_regulations_read_as_dialogs_own_cifs_export_reads_them(testdata: Path) -> None:
    """DiaLog's DATEX II regulation orders and its CIFS export of the same orders (both its test
    fixtures): each closure for all traffic is read with the street, period, schedule and points
    DiaLog's own CIFS gives it; the rest is named."""
    regulations = parse_datex2((testdata / SAMPLES / "dialog_get-regulations-expected-result.xml").read_bytes(),
                               zone=PARIS)
    read, rejected = convert_all(regulations, PARIS)
    reasons = sorted(set(rejected.values()))
    assert reasons == [
        "a StandingOrParkingRestriction regulation is not a road closure (not read)",
        "a no-entry regulation for some vehicles only (5 vehicle condition(s)) is not a closure to all traffic "
        "(not read)",
        "location: no roadName or roadNumber (a city event needs the street)",
    ]
    cifs = [cifs_item_to_event(item, "dialog", PARIS) for item in parse_cifs(
        (testdata / "cifs" / "dialog_expected_cifsv2.xml").read_bytes(), zone=PARIS).items]

    def key(event: Event) -> tuple[Any, ...]:
        assert event.details is not None
        return (event.type, event.street, event.direction, event.start_time, event.end_time,
                tuple(sorted((event.details.schedule or {}).items())))

    by_key = {key(event): event for event in read}
    assert len(by_key) == len(read) == 8 and len(cifs) == 7
    for incident in cifs:
        closure = by_key[key(incident)]  # the same street, period and schedule
        # the same line, its parts joined (a closure both ways may be drawn either way round)
        assert closure.direction == "BOTH_DIRECTIONS"
        line = closure.geometry.coordinates
        assert isinstance(line, list) and line in (incident.geometry.coordinates, incident.geometry.coordinates[::-1])
        assert closure.details is not None and closure.details.reference is not None
        assert closure.details.reference.reference == "Département de Seine-Saint-Denis"


def test_a_road_closed_with_a_lane_impact_says_lanes_closed_in_every_feed(tmp_path: Path, testdata: Path) -> None:
    """Found in a cold trial: CIFS said one lane closed, WZDx all lanes closed, DATEX II the road closed."""
    from feeds.wzdx import render_wzdx

    lane = city_event("city", "lane-1", type="ROAD_CLOSED", subtype="ROAD_CLOSED_CONSTRUCTION", street="9th Street",
                      coordinates=LINE, zone=OAKLAND, start="2026-03-02T08:00:00", direction="ONE_DIRECTION",
                      lane_impact={"total_closed_lanes": 1, "roadside": "RIGHT"})
    document = render_datex2([lane], settings=SETTINGS, zone=OAKLAND, generated=GENERATED)
    root = etree.fromstring(document)
    management = [e.text for e in root.iter(f"{{{NS['sit']}}}roadOrCarriagewayOrLaneManagementType")]
    assert management == ["laneClosures"], management
    validate(document, tmp_path, testdata)
    (feature,) = orjson.loads(render_wzdx([lane], feed_info={"publisher": "City"}, generated=GENERATED,
                                          zone=OAKLAND))["features"]
    assert feature["properties"]["vehicle_impact"] == "some-lanes-closed"
