"""Issue 16, items 2 and 4: WZDx that keeps what its source said, and CWZ 1.0 built from it.

Recurring schedules become occurrences, open ends never lie in the past, the verified flags are the
source's, a WZDx feed passed through keeps its lanes, types of work and data source; the CWZ checks
agree with the official CWZ 1.0 schemas (run in-process from ../shared/testdata) on real documents.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from exchange.errors import ItemRejected, UsageError
from exchange.model import Event, Point
from exchange.validation import validate_wzdx
from feeds import cwz, wzdx
from feeds.cifs import cifs_item_to_event, parse_cifs
from feeds.city import city_event
from feeds.cwz import check_cwz, cwz_enabled, render_cwz
from feeds.problems import errors_only
from feeds.wzdx import CC0_LICENSE, REVERSE_SUFFIX, parse_wzdx, render_wzdx, wzdx_item_to_event

CHICAGO = ZoneInfo("America/Chicago")
DENVER = ZoneInfo("America/Denver")
SUNDAY = datetime(2026, 7, 12, 13, 0, tzinfo=UTC)  # 08:00 in Chicago
FEED_INFO = {"publisher": "City of Springfield"}
CDOT = "cdot_prod_wzdx_v42_20230522.json"


def closure(source_id: str = "S-1", **overrides: Any) -> Event:
    fields: dict[str, Any] = {
        "type": "ROAD_CLOSED", "subtype": "ROAD_CLOSED_CONSTRUCTION", "street": "Main Street",
        "coordinates": [(-89.65, 39.78), (-89.65, 39.781), (-89.6505, 39.782)],  # northward
        "zone": CHICAGO, "direction": "ONE_DIRECTION", "start": "2026-07-01T08:00:00", "description": "Night work",
    }
    fields.update(overrides)
    return city_event("city", source_id, **fields)


def features(data: bytes) -> list[dict[str, Any]]:
    return list(orjson.loads(data)["features"])


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --------------------------------------------------------------------------- schedules and ends


def test_a_weekly_night_closure_is_one_linked_road_event_per_night_in_the_horizon() -> None:
    # the overnight window written as two (city_event's rule) is one occurrence per night
    nightly = closure(schedule={"tuesday": "22:00-23:59", "wednesday": "00:00-06:00"})
    data = render_wzdx([nightly], feed_info=FEED_INFO, generated=SUNDAY, zone=CHICAGO)
    assert validate_wzdx(data) == []
    found = features(data)
    assert [f["id"] for f in found] == ["city:city:S-1#2026-07-14T22:00", "city:city:S-1#2026-07-21T22:00"]
    first, second = (f["properties"] for f in found)
    assert (first["start_date"], first["end_date"]) == ("2026-07-15T03:00:00Z", "2026-07-15T11:00:00Z")
    assert (second["start_date"], second["end_date"]) == ("2026-07-22T03:00:00Z", "2026-07-22T11:00:00Z")
    assert first["core_details"]["related_road_events"] == [{"type": "next-occurrence", "id": found[1]["id"]}]
    assert second["core_details"]["related_road_events"] == [{"type": "first-occurrence", "id": found[0]["id"]}]
    assert not first["is_end_date_verified"] and not first["is_start_date_verified"]
    with pytest.raises(UsageError, match="a schedule's hours are local times"):  # never read in UTC by mistake
        render_wzdx([nightly], feed_info=FEED_INFO, generated=SUNDAY)


def test_a_window_across_the_spring_gap_ends_when_the_clocks_pass_its_end() -> None:
    """Chicago jumps from 02:00 to 03:00 on 2027-03-14: a Sunday window 00:00-02:30 ends at the jump (08:00Z),
    not at 03:30 CDT (zoneinfo's reading of 02:30, half an hour late), one 02:30-05:00 starts at the jump,
    and one wholly in the gap does not happen. The Sunday after is an ordinary night."""
    from feeds.wzdx import schedule_occurrences

    def spans(hours: str) -> list[tuple[str, str]]:
        return [(o.start.isoformat(), o.end.isoformat()) for o in schedule_occurrences(
            {"sunday": hours}, zone=CHICAGO, start=None, end=None,
            window_start=datetime(2027, 3, 13, tzinfo=UTC), window_end=datetime(2027, 3, 22, 12, tzinfo=UTC))]

    assert spans("00:00-02:30") == [("2027-03-14T06:00:00+00:00", "2027-03-14T08:00:00+00:00"),
                                    ("2027-03-21T05:00:00+00:00", "2027-03-21T07:30:00+00:00")]
    assert spans("02:30-05:00")[0] == ("2027-03-14T08:00:00+00:00", "2027-03-14T10:00:00+00:00")
    assert spans("02:10-02:50") == [("2027-03-21T07:10:00+00:00", "2027-03-21T07:50:00+00:00")]


def test_occurrences_are_clipped_to_the_event_and_one_in_progress_is_kept() -> None:
    # everyday 07:00-09:00 local; now is 08:00 local on the 12th; the event ends on the 14th at 08:30
    daily = closure(schedule={"everyday": "07:00-09:00"}, end="2026-07-14T08:30:00")
    data = render_wzdx([daily], feed_info=FEED_INFO, generated=SUNDAY, zone=CHICAGO)
    assert validate_wzdx(data) == []
    spans = [(f["properties"]["start_date"], f["properties"]["end_date"]) for f in features(data)]
    assert spans == [("2026-07-12T12:00:00Z", "2026-07-12T14:00:00Z"), ("2026-07-13T12:00:00Z", "2026-07-13T14:00:00Z"),
                     ("2026-07-14T12:00:00Z", "2026-07-14T13:30:00Z")]
    middle = features(data)[1]["properties"]["core_details"]["related_road_events"]
    assert [link["type"] for link in middle] == ["first-occurrence", "next-occurrence"]


def test_a_night_closure_ended_during_a_night_shows_that_night_ending_then() -> None:
    """Found in a cold trial: ended at 02:00 during a 22:00-05:00 night, it left the WZDx feed at once
    (CIFS and DATEX II carried it with its end); a closure without a schedule stays with its end."""
    nightly = closure(schedule={"everyday": "22:00-23:59,00:00-05:00"}, end="2026-07-13T02:00:00")
    at_two = datetime(2026, 7, 13, 7, 0, tzinfo=UTC)  # 02:00 in Chicago, the closure's end
    for generated in (at_two, at_two + timedelta(hours=3)):
        found = features(render_wzdx([nightly], feed_info=FEED_INFO, generated=generated, zone=CHICAGO))
        spans = [(f["properties"]["start_date"], f["properties"]["end_date"]) for f in found]
        assert spans == [("2026-07-13T03:00:00Z", "2026-07-13T07:00:00Z")], generated


def test_a_night_closure_over_after_its_last_night_keeps_that_night_while_it_is_kept() -> None:
    """Found in a cold trial: a closure of Thursday nights ending Saturday 05:00 (its last night over on
    Friday 05:00) left WZDx as soon as that night ended, while CIFS and DATEX II carried it (ended, for
    keep_ended_h): a WZDx partner never saw it end. With no night left, its last night stays."""
    thursdays = closure(schedule={"thursday": "22:00-23:59", "friday": "00:00-05:00"}, start="2026-07-09T22:00:00",
                        end="2026-07-18T05:00:00")
    for generated in (datetime(2026, 7, 17, 12, 0, tzinfo=UTC), datetime(2026, 7, 18, 10, 30, tzinfo=UTC)):
        found = features(render_wzdx([thursdays], feed_info=FEED_INFO, generated=generated, zone=CHICAGO))
        spans = [(f["properties"]["start_date"], f["properties"]["end_date"]) for f in found]
        assert spans == [("2026-07-17T03:00:00Z", "2026-07-17T10:00:00Z")], (generated, spans)
    # a night closure with nights ahead shows those, not the one just over
    ongoing = closure(schedule={"thursday": "22:00-23:59", "friday": "00:00-05:00"}, start="2026-07-09T22:00:00",
                      end="2026-07-31T05:00:00")
    found = features(render_wzdx([ongoing], feed_info=FEED_INFO, generated=datetime(2026, 7, 17, 12, 0, tzinfo=UTC),
                                 zone=CHICAGO))
    assert [f["properties"]["start_date"] for f in found] == ["2026-07-24T03:00:00Z", "2026-07-31T03:00:00Z"]


def test_both_directions_of_a_recurring_closure_are_two_chains() -> None:
    weekly = closure(schedule={"saturday": "08:00-12:00"}, direction="BOTH_DIRECTIONS")
    found = features(render_wzdx([weekly], feed_info=FEED_INFO, generated=SUNDAY, zone=CHICAGO))
    reverse = [f for f in found if REVERSE_SUFFIX in f["id"]]
    assert len(found) == 4 and len(reverse) == 2
    assert reverse[1]["properties"]["core_details"]["related_road_events"] == [
        {"type": "first-occurrence", "id": reverse[0]["id"]}]
    assert {f["properties"]["core_details"]["direction"] for f in found} == {"northbound", "southbound"}


def test_no_occurrence_in_the_horizon_publishes_nothing_of_it() -> None:
    later = closure(schedule={"monday": "08:00-10:00"}, start="2026-09-01T00:00:00")
    assert features(render_wzdx([later], feed_info=FEED_INFO, generated=SUNDAY, zone=CHICAGO)) == []


def test_an_open_end_is_never_in_the_past() -> None:
    # the demo's closures started in March with no end: they went out ending in March
    started = closure(start="2026-03-02T07:00:00")
    generated = datetime(2026, 11, 27, 13, 5, tzinfo=UTC)
    properties = features(render_wzdx([started], feed_info=FEED_INFO, generated=generated))[0]["properties"]
    assert properties["end_date"] == "2026-12-11T00:00:00Z" and properties["is_end_date_verified"] is False
    assert utc(properties["end_date"]) > generated + timedelta(days=13)
    # the same all day: a later publication the same day says the same
    later = features(render_wzdx([started], feed_info=FEED_INFO, generated=generated + timedelta(hours=9)))
    assert later[0]["properties"]["end_date"] == properties["end_date"]


# --------------------------------------------------------------------------- what the source said


def cdot_document(testdata: Path) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads((testdata / "wzdx" / CDOT).read_bytes())
    return document


def imported(document: dict[str, Any]) -> list[Event]:
    events = []
    for item in parse_wzdx(orjson.dumps(document)).items:
        with contextlib.suppress(ItemRejected):  # CDOT's 4 point work zones (tests/feeds/test_wzdx.py)
            events.append(wzdx_item_to_event(item, "wzdx", DENVER))
    return events


def test_a_wzdx_feed_passed_through_keeps_what_it_said(testdata: Path) -> None:
    source = cdot_document(testdata)
    # CDOT verifies nothing; say one event's flags are verified and one lane merges, to see them kept
    feature = source["features"][0]
    feature["properties"].update(is_start_date_verified=True, is_end_position_verified=True)
    feature["properties"]["lanes"][1]["status"] = "merge-left"
    events = imported(source)
    out = render_wzdx(events, feed_info={**FEED_INFO, "license": CC0_LICENSE}, generated=SUNDAY, zone=DENVER)
    assert validate_wzdx(out) == []
    document = orjson.loads(out)
    by_id = {f["id"].removeprefix("wzdx:city:"): f for f in document["features"]}
    assert len(by_id) == len(events) == 87
    cdot_source = source["feed_info"]["data_sources"][0]
    assert {"data_source_id": cdot_source["data_source_id"], "organization_name": "CDOT"} in document[
        "feed_info"]["data_sources"]
    compared = 0
    for original in source["features"]:
        if original["id"] not in by_id:
            continue
        before, after = original["properties"], by_id[original["id"]]["properties"]
        for key in ("start_date", "end_date", "vehicle_impact", "lanes", "types_of_work", "is_start_date_verified",
                    "is_end_date_verified", "is_start_position_verified", "is_end_position_verified",
                    "beginning_milepost", "ending_milepost", "location_method", "work_zone_type"):
            assert after.get(key) == before.get(key), (original["id"], key)
        for key in ("data_source_id", "direction", "road_names", "name"):
            assert after["core_details"].get(key) == before["core_details"].get(key), (original["id"], key)
        compared += 1
    assert compared == 87


def test_a_cifs_import_is_not_verified(testdata: Path) -> None:
    data = (testdata / "cifs" / "dialog_expected_cifsv2.xml").read_bytes()
    paris = ZoneInfo("Europe/Paris")
    events = [cifs_item_to_event(item, "dialog", paris) for item in parse_cifs(data, zone=paris).items]
    assert events and all(e.details is not None and e.end_time is not None for e in events)
    written = features(render_wzdx(events, feed_info=FEED_INFO, generated=datetime(2023, 6, 1, tzinfo=UTC),
                                   zone=paris))
    flags = ("is_start_date_verified", "is_end_date_verified", "is_start_position_verified",
             "is_end_position_verified")
    assert written and not any(f["properties"][flag] for f in written for flag in flags)


# --------------------------------------------------------------------------- what each target loses


def test_problems_and_losses_name_what_wzdx_and_cwz_cannot_carry(testdata: Path) -> None:
    hazard = closure(type="HAZARD", subtype="HAZARD_ON_ROAD_OBJECT")
    assert wzdx.problems_for(hazard) == ["not a work zone: WZDx carries closures and road works only, not HAZARD"]
    assert cwz.problems_for(hazard) == ["not a work zone: CWZ carries closures and road works only, not HAZARD"]
    assert wzdx.losses_for(hazard) == []

    nightly = closure(schedule={"tuesday": "22:00-23:59"}, direction="BOTH_DIRECTIONS", parent_event="city:city:P-1")
    assert wzdx.problems_for(nightly) == []
    assert wzdx.losses_for(nightly) == [
        "recurring schedule published as one road event per occurrence in the next 14 days "
        "(WZDx has no schedule pattern)",
        "no end: published as ending 14 days after its start (or after today, once started), end not verified",
        "both directions published as two road events, each direction the quadrant of its line's bearing "
        "(WZDx has one direction per road event)",
        "Waze subtype ROAD_CLOSED_CONSTRUCTION is not carried (WZDx has a vehicle impact, no subtype)",
        "parent event city:city:P-1 is not carried",
    ]
    lanes = closure(type="CONSTRUCTION", subtype=None, end="2026-07-20T08:00:00",
                    lane_impact={"total_closed_lanes": 1, "roadside": "RIGHT"})
    assert wzdx.losses_for(lanes) == [
        "direction northbound is the quadrant of the line's bearing (first to last point); the source signs none",
        "lane impact (1 closed on the right) carried only as vehicle_impact (WZDx lists lanes, not counts)",
    ]

    from_cdot = imported(cdot_document(testdata))[0]
    assert wzdx.losses_for(from_cdot) == ["direction eastbound is the source's"]
    assert cwz.losses_for(from_cdot) == ["direction eastbound is the source's",
                                         "mileposts carried as reference posts in miles (CWZ replaced mileposts)"]


# --------------------------------------------------------------------------- CWZ


def official_cwz_validator(testdata: Path) -> Callable[[Path], bool]:
    """The offline CWZ 1.0 validator of ../shared/testdata, loaded in-process: path -> valid."""
    spec = importlib.util.spec_from_file_location("cwz_validate_offline", testdata / "cwz" / "validate_offline.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def valid(path: Path) -> bool:
        with contextlib.redirect_stdout(io.StringIO()):
            return bool(module.main(["--spec", "cwz1.0", str(path)]) == 0)

    return valid


def test_check_cwz_agrees_with_the_official_schemas_on_the_wzdx_examples(testdata: Path) -> None:
    valid = official_cwz_validator(testdata)
    examples = sorted((testdata / "cwz" / "reference-wzdx-4.2" / "examples" / "WorkZoneFeed").glob("*.geojson"))
    assert len(examples) == 9
    verdicts = {path.name: (valid(path), errors_only(check_cwz(path.read_bytes(), wzdx_check=validate_wzdx)))
                for path in examples}
    assert all(official == (found == []) for official, found in verdicts.values()), verdicts
    assert sum(official for official, _found in verdicts.values()) == 4  # 5 fail for reasons CWZ intends
    multipoint = verdicts["scenario1_simple_multipoint_example.geojson"][1]
    assert str(multipoint[0]) == ("error: $.features[0].geometry: MultiPoint was removed in CWZ 1.0 "
                                  "(LineString or Point)")


def test_check_cwz_names_what_cwz_requires(testdata: Path) -> None:
    rendered = render_cwz(imported(cdot_document(testdata))[:3], feed_info={**FEED_INFO, "license": CC0_LICENSE},
                          generated=SUNDAY, zone=DENVER)
    assert check_cwz(rendered, wzdx_check=validate_wzdx) == []
    broken = orjson.loads(rendered)
    del broken["feed_info"]["license"], broken["feed_info"]["data_sources"][0]["update_date"]
    del broken["features"][1]["properties"]["is_start_position_verified"]
    broken["features"][2]["properties"]["types_of_work"] = [{"type_name": "maintenance"}]
    assert [str(p) for p in check_cwz(orjson.dumps(broken))] == [
        f"error: $.feed_info.license: required in CWZ (the CC0 URL, {CC0_LICENSE})",
        "error: $.feed_info.data_sources[0].update_date: required in CWZ",
        "error: $.features[1].properties.is_start_position_verified: required in CWZ: true or false (the *_accuracy "
        "alternatives were removed)",
        "error: $.features[2].properties.types_of_work[0].type_name: 'maintenance' was removed in CWZ 1.0",
    ]
    assert [str(p) for p in check_cwz(b"[1]")] == ["error: $: a CWZ feed is a JSON object, not a list"]


def test_cwz_is_on_only_for_cc0_and_render_refuses_otherwise() -> None:
    assert cwz_enabled(CC0_LICENSE) == (True, f"CWZ feed on: publish.license is CC0 ({CC0_LICENSE})")
    off, reason = cwz_enabled(None)
    assert not off and reason.startswith("CWZ feed off: publish.license is not CC0 (not set); CWZ allows only CC0.")
    assert "OpenStreetMap carry ODbL-derived geometry" in reason
    with pytest.raises(UsageError, match="CWZ feed off"):
        render_cwz([], feed_info=FEED_INFO, generated=SUNDAY)



def test_a_point_work_zone_is_a_multipoint_in_wzdx_and_a_point_in_cwz(testdata: Path, tmp_path: Path) -> None:
    # road works a field device reports at its position (iCone arrow boards, read as points on h-cifs)
    device = closure(type="CONSTRUCTION", subtype=None, end="2026-07-20T08:00:00")
    device = device.model_copy(update={"geometry": Point(coordinates=(-89.65, 39.78))})
    info = {**FEED_INFO, "license": CC0_LICENSE}
    wzdx_feed = render_wzdx([device], feed_info=info, generated=SUNDAY, zone=CHICAGO)
    assert validate_wzdx(wzdx_feed) == []
    assert features(wzdx_feed)[0]["geometry"] == {"type": "MultiPoint", "coordinates": [[-89.65, 39.78]] * 2}
    assert features(wzdx_feed)[0]["properties"]["core_details"]["direction"] == "unknown"
    cwz_feed = render_cwz([device], feed_info=info, generated=SUNDAY, zone=CHICAGO)
    assert features(cwz_feed)[0]["geometry"] == {"type": "Point", "coordinates": [-89.65, 39.78]}
    assert errors_only(check_cwz(cwz_feed, wzdx_check=validate_wzdx)) == []
    (tmp_path / "cwz.geojson").write_bytes(cwz_feed)
    assert official_cwz_validator(testdata)(tmp_path / "cwz.geojson")
    assert wzdx.losses_for(device)[-2:] == [
        "direction unknown: a point has no bearing and the source signs none",
        "a point work zone published as a MultiPoint of its one position twice (WZDx 4.2 has no Point)"]
    assert cwz.losses_for(device) == ["direction unknown: a point has no bearing and the source signs none"]


def test_a_bad_value_in_a_lane_member_not_published_is_dropped_not_the_road_event(testdata: Path) -> None:
    source = cdot_document(testdata)
    properties = source["features"][0]["properties"]
    properties["lanes"][0]["restrictions"] = [{"type": "reduced-width", "value": float("nan")}]
    properties["lanes"][1]["order"] = 2**40  # a lane order no road has
    data = json.dumps(source).encode()  # NaN, as a careless publisher writes it
    items = {item.source_id: item for item in parse_wzdx(data).items}
    event = wzdx_item_to_event(items[source["features"][0]["id"]], "wzdx", DENVER)
    assert event.details is not None and [lane.status for lane in event.details.lanes or []] == ["OPEN", "CLOSED"]
    lanes = features(render_wzdx([event], feed_info=FEED_INFO, generated=SUNDAY, zone=DENVER))[0]["properties"]["lanes"]
    assert lanes == [{"order": 1, "type": "general", "status": "open"}, {"order": 2, "type": "general",
                                                                          "status": "closed"}]


def test_the_sources_related_road_events_and_worker_presence_pass_through(testdata: Path) -> None:
    """Found in a cold trial: WZDx's recurring example lost its first/next-occurrence links, and worker
    presence was dropped, with nothing in the compile report."""
    data = (testdata / "wzdx" / "examples" / "scenario5_recurring_linestring_example.geojson").read_bytes()
    events = [wzdx_item_to_event(item, "dot", DENVER) for item in parse_wzdx(data).items]
    out = render_wzdx(events, feed_info={**FEED_INFO, "license": CC0_LICENSE}, generated=SUNDAY, zone=DENVER)
    assert validate_wzdx(out) == []
    source = {f["id"]: f["properties"] for f in json.loads(data)["features"]}
    written = {f["id"].removeprefix("dot:city:"): f["properties"] for f in features(out)}
    assert set(written) == set(source)
    for ident, properties in source.items():
        expected = [{"type": r["type"], "id": "dot:city:" + r["id"]} for r in properties["core_details"].get(
            "related_road_events", [])]
        assert written[ident]["core_details"].get("related_road_events", []) == expected, ident
        assert written[ident].get("worker_presence") == properties.get("worker_presence"), ident
    assert sum("worker_presence" in properties for properties in written.values()) >= 1


def test_a_link_to_a_road_event_not_in_the_feed_is_left_out_and_said(testdata: Path) -> None:
    """Found in a cold trial: WZDx's detour example kept its work zone's link to the detour, which is not
    imported, so the link pointed at nothing in the feed."""
    data = (testdata / "wzdx" / "examples" / "scenario4_detour_linestring_example.geojson").read_bytes()
    events = []
    for item in parse_wzdx(data).items:
        with contextlib.suppress(ItemRejected):  # the detours
            events.append(wzdx_item_to_event(item, "dot", DENVER))
    linked = [e for e in events if any(link.get("type") == "related-detour"
                                       for link in e.attributes["wzdx"].get("related_road_events", []))]
    assert linked, "the example's work zone names its detour"
    out = render_wzdx(events, feed_info={**FEED_INFO, "license": CC0_LICENSE}, generated=SUNDAY, zone=DENVER)
    assert validate_wzdx(out) == []
    ids = {f["id"] for f in features(out)}
    for feature in features(out):
        assert all(link["id"] in ids for link in feature["properties"]["core_details"].get("related_road_events", []))
    assert any("related detour is not carried" in loss for loss in wzdx.losses_for(linked[0]))
