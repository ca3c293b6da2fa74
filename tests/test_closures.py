"""Operator closures end to end: validation at entry, routing, revisions, two-way confirmation."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.helpers import Cli, Run
from tests.support.paths import DEMO, POLLS

NINTH = "37.809578 -122.300788 37.810233 -122.302087"


def _time(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).astimezone().isoformat(timespec="seconds")


def add(cli: Cli, *extra: str, polyline: str = NINTH, street: str = "9th Street") -> Run:
    return cli("--config", str(DEMO), "closure", "add", "--street", street, "--polyline", polyline,
               "--type", "ROAD_CLOSED", "--subtype", "ROAD_CLOSED_CONSTRUCTION", "--direction", "BOTH_DIRECTIONS",
               "--start", _time(-1), "--end", _time(48), "--description", "Utility work", *extra)


def test_add_prints_only_the_id_and_routes_along_the_street(cli: Cli) -> None:
    result = add(cli, "--operator", "alice")
    assert result.code == 0, result
    closure_id = result.out.strip()
    assert closure_id.startswith("city:city:") and result.out.count("\n") == 1
    record = json.loads(cli("--config", str(DEMO), "inspect", "event", closure_id, "--format", "json").out)[0]
    assert record["origin"] == "city" and record["status"] == "active"
    assert record["road_match"]["edges"] and record["geometry"]["type"] == "LineString"
    assert record["details"]["description"] == "Utility work" and record["details"]["operator"] == "alice"
    assert [r["operator"] for r in record["revisions"]] == ["alice"]


def test_confirmation_by_waze_reports(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the demo polls are of 2026-03-02 (07:00-07:30 in Oakland): a closure in effect then
    monkeypatch.setenv("EXCHANGE_NOW", "2026-03-02T15:00:00Z")
    closure_id = add(cli, "--start", "2026-03-02T05:00:00-08:00", "--end", "2026-03-09T17:00:00-08:00").out.strip()
    assert cli("--config", str(DEMO), "replay", str(POLLS[0])).code == 0
    record = json.loads(cli("--config", str(DEMO), "inspect", "event", closure_id, "--format", "json").out)[0]
    linked = {c["crowd_event_id"]: c["how"] for c in record["confirmations"]}
    assert linked == {
        "waze:alert:39292d22-e255-4ccb-9a46-6884f3f49249": "road-closed-alert",
        "waze:jam:649565454": "blocked-jam",
    }
    assert record["visible_in_waze_since"] is not None
    unconfirmed = json.loads(cli("--config", str(DEMO), "inspect", "events", "--unconfirmed-closures",
                                 "--format", "json").out)
    ids = {e["id"] for e in unconfirmed}
    assert "waze:alert:39292d22-e255-4ccb-9a46-6884f3f49249" not in ids
    assert ids and all(e["category"] == "ROAD_CLOSED" and e["origin"] == "crowd" for e in unconfirmed)
    assert any(e["street"] == "Campbell Street" for e in unconfirmed)


def test_update_end_and_list(cli: Cli) -> None:
    closure_id = add(cli).out.strip()
    changed = cli("--config", str(DEMO), "closure", "update", closure_id, "--description", "Water main",
                  "--operator", "bob")
    assert changed.code == 0, changed
    # the same again, a street misspelt to the name it has: no revision, nothing published
    same = cli("--config", str(DEMO), "closure", "update", closure_id, "--description", "Water main",
               "--street", "9th Stret", "--operator", "bob")
    assert same.code == 0 and "nothing changed" in same.err and "publish" not in same.err, same
    ended = cli("--config", str(DEMO), "closure", "end", closure_id, "--operator", "carol")
    assert ended.code == 0, ended
    record = json.loads(cli("--config", str(DEMO), "inspect", "event", closure_id, "--format", "json").out)[0]
    assert record["status"] == "ended" and record["end_time"] is not None
    assert [r["action"] for r in record["revisions"]] == ["created", "updated", "ended"]
    assert [r["operator"] for r in record["revisions"]][1:] == ["bob", "carol"]
    assert record["revisions"][1]["changes"]["details"][1]["description"] == "Water main"
    listing = json.loads(cli("--config", str(DEMO), "closure", "list", "--format", "json").out)
    assert [r["id"] for r in listing] == [closure_id]
    again = cli("--config", str(DEMO), "closure", "end", closure_id)  # idempotent: a retry is not an error
    assert again.code == 0 and again.out.strip() == closure_id and "already ended" in again.err, again
    record = json.loads(cli("--config", str(DEMO), "inspect", "event", closure_id, "--format", "json").out)[0]
    assert [r["action"] for r in record["revisions"]] == ["created", "updated", "ended"]
    assert cli("--config", str(DEMO), "closure", "end", "city:city:nope").code == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("--end", "2020-01-01T00:00:00Z"), "end:"),
        (("--subtype", "ROAD_CLOSED_PARADE"), "subtype:"),
        (("--polyline", "37.8095 -122.3007"), "polyline"),
        (("--polyline", "97.8095 -122.3007 37.81 -122.302"), "latitude 97.8095 out of range"),
        (("--street", "X"), "street:"),
        (("--schedule", "funday=08:00-17:00"), "schedule"),
        (("--lane-impact", "two:RIGHT"), "--lane-impact"),
        (("--lane-impact", "0:RIGHT"), "--lane-impact: '0:RIGHT' closes no lane"),
    ],
)
def test_bad_input_is_refused_with_the_field_named(cli: Cli, change: tuple[str, str], message: str) -> None:
    option, value = change
    args = ["--config", str(DEMO), "closure", "add", "--street", "9th Street", "--polyline", NINTH,
            "--type", "ROAD_CLOSED", "--start", _time(-1), "--end", _time(48)]
    if option in args:
        args[args.index(option) + 1] = value
    else:
        args += [option, value]
    result = cli(*args)
    assert result.code == 2, result
    assert message in result.err and "Traceback" not in result.err
    assert json.loads(cli("--config", str(DEMO), "closure", "list", "--format", "json").out) == []


def test_road_closed_needs_a_start(cli: Cli) -> None:
    result = cli("--config", str(DEMO), "closure", "add", "--street", "9th Street", "--polyline", NINTH,
                 "--type", "ROAD_CLOSED")
    assert result.code == 2 and "start" in result.err


def test_the_times_understood_are_said_and_a_past_end_is_warned_of(cli: Cli, tmp_path: Path) -> None:
    """A week's typo on a night shift: saved (a past closure may be on record), but said on stderr, and
    never published: no partner saw it to see it end."""
    day = (datetime.now(UTC) - timedelta(days=7)).strftime("%Y-%m-%d")
    result = cli("--config", str(DEMO), "closure", "add", "--street", "9th Street", "--polyline", NINTH,
                 "--start", f"{day}T01:00", "--end", f"{day}T05:00")
    assert result.code == 0 and result.out.count("\n") == 1, result
    assert f"closed from {day}T01:00-0" in result.err and "(America/Los_Angeles)" in result.err
    assert "warning: its end" in result.err and "already past" in result.err and "not published" in result.err
    ahead = add(cli)
    assert ahead.code == 0 and "closed from" in ahead.err and "warning" not in ahead.err, ahead
    # a hazard closes nothing, and a missing end is not "open" (as in "the road is open")
    hazard = cli("--config", str(DEMO), "closure", "add", "--street", "9th Street", "--polyline", NINTH,
                 "--type", "HAZARD", "--subtype", "HAZARD_ON_ROAD_POT_HOLE")
    assert hazard.code == 0 and "in effect from now with no end set (" in hazard.err, hazard
    # ended two hours ago, within the hours an ended closure stays in the feeds: not published either
    past = cli("--config", str(DEMO), "closure", "add", "--street", "9th Street", "--polyline", NINTH,
               "--start", _time(-5), "--end", _time(-2))
    assert past.code == 0 and "not published" in past.err, past
    past_id, ahead_id = past.out.strip(), ahead.out.strip()
    out = tmp_path / "feeds"
    assert cli("--config", str(DEMO), "publish", "--out", str(out)).code == 0
    for feed in ("cifs.xml", "wzdx.geojson", "datex2.xml"):
        body = (out / feed).read_text()
        assert ahead_id in body and past_id not in body, feed
    # a closure already published and changed to end in the past is ended, and said so
    changed = cli("--config", str(DEMO), "closure", "update", ahead_id, "--start", f"{day}T01:00", "--end",
                  f"{day}T05:00", "--reopen")
    assert changed.code == 0 and "already past: it is ended now" in changed.err, changed


def test_local_times_read_in_the_city_zone(cli: Cli) -> None:
    start = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT08:00:00")
    result = cli("--config", str(DEMO), "closure", "add", "--street", "9th Street", "--polyline", NINTH,
                 "--type", "CONSTRUCTION", "--start", start)
    assert result.code == 0, result
    record = json.loads(cli("--config", str(DEMO), "inspect", "event", result.out.strip(), "--format", "json").out)[0]
    started = datetime.fromisoformat(record["start_time"].replace("Z", "+00:00"))
    assert started.astimezone(__import__("zoneinfo").ZoneInfo("America/Los_Angeles")).hour == 8


def test_publish_out_validate_and_inspect_feed(cli: Cli, tmp_path: Path, testdata: Path) -> None:
    closure_id = add(cli).out.strip()
    out = tmp_path / "feeds"
    published = cli("--config", str(DEMO), "publish", "--out", str(out))
    assert published.code == 0, published
    feeds = ["cifs.json", "cifs.xml", "datex2.xml", "wzdx.geojson"]
    # each with its gzip beside it, for nginx's gzip_static (found in a cold trial: the README said so, and
    # there were none)
    assert sorted(p.name for p in out.iterdir()) == sorted([*feeds, *(f"{name}.gz" for name in feeds)])
    assert gzip.decompress((out / "cifs.xml.gz").read_bytes()) == (out / "cifs.xml").read_bytes()
    assert closure_id in (out / "cifs.json").read_text()
    for name in ("cifs.xml", "wzdx.geojson"):
        checked = cli("validate", str(out / name))
        assert checked.code == 0 and "valid" in checked.err, checked
    london = cli("validate", str(testdata / "cifs" / "london_on_traffic-incidents_20180412.xml"))
    assert london.code == 1 and "london_on_traffic-incidents_20180412.xml:" in london.out
    assert cli("validate", str(tmp_path / "missing.xml")).code == 3
    lint = json.loads(cli("--config", str(DEMO), "inspect", "feed", "--format", "json").out)
    assert [row["id"] for row in lint] == [closure_id]


def test_sync_republishes_when_a_city_source_changed(cli: Cli) -> None:
    synced = cli("--config", str(DEMO), "sync")
    assert synced.code == 0, synced
    assert "city-closures: ok: 3 fetched, 3 new" in synced.err and "publish: published: 3 event(s)" in synced.err
    again = cli("--config", str(DEMO), "sync")
    assert again.code == 0 and "publish:" not in again.err, "nothing changed: no publication"


def _routed(cli: Cli, street: str, start: str, end: str, direction: str = "ONE_DIRECTION",
            kind: str = "CONSTRUCTION") -> dict[str, Any]:
    result = cli("--config", str(DEMO), "closure", "add", "--street", street, "--from", start, "--to", end,
                 "--direction", direction, "--type", kind, "--start", _time(-1), "--description", "x")
    assert result.code == 0, result
    record: dict[str, Any] = json.loads(cli("--config", str(DEMO), "inspect", "event", result.out.strip(),
                                            "--format", "json").out)[0]
    return record


def test_the_order_of_the_points_decides_the_direction_on_a_two_way_street(cli: Cli) -> None:
    west, east = "37.806366 -122.294557", "37.806041 -122.29313"
    eastbound = _routed(cli, "8th Street", west, east)["geometry"]["coordinates"]
    westbound = _routed(cli, "8th Street", east, west)["geometry"]["coordinates"]
    assert eastbound[0][0] < eastbound[-1][0], eastbound
    assert westbound[0][0] > westbound[-1][0], westbound
    assert eastbound == westbound[::-1]


def test_the_segment_holding_the_end_point_is_routed_when_near_the_start(cli: Cli) -> None:
    closed = _routed(cli, "Wood Street", "37.807251 -122.3023", "37.807939 -122.302057", "BOTH_DIRECTIONS",
                     kind="ROAD_CLOSED")
    # Wood Street (way 202455444) past the Goss Street junction (node 53027354) up to 8th Street
    edges = [tuple(edge) for edge in closed["road_match"]["edges"]]
    assert edges == [(202455444, 53131081, 53027354), (202455444, 53027354, 667744075)], edges
    _last_lon, last_lat = closed["geometry"]["coordinates"][-1]
    assert last_lat > 37.807939, closed["geometry"]  # a full closure: junction to junction
    # road works on the same stretch lie along the road where drawn, on the same edges
    works = _routed(cli, "Wood Street", "37.807251 -122.3023", "37.807939 -122.302057", "BOTH_DIRECTIONS")
    assert [tuple(edge) for edge in works["road_match"]["edges"]] == edges
    line = works["geometry"]["coordinates"]
    assert abs(line[0][1] - 37.807251) < 0.00005 and abs(line[-1][1] - 37.807939) < 0.00005, line


def test_a_closure_drawn_against_one_way_7th_street_is_reversed_with_a_note(cli: Cli) -> None:
    west, east = "37.808020 -122.304962", "37.807505 -122.303143"  # 7th Street is one-way westbound here
    result = cli("--config", str(DEMO), "closure", "add", "--street", "7th Street", "--from", west, "--to", east,
                 "--type", "CONSTRUCTION", "--start", _time(-1), "--description", "x")
    assert result.code == 0, result
    assert "one-way" in result.err and "reversed" in result.err, result.err
    record = json.loads(cli("--config", str(DEMO), "inspect", "event", result.out.strip(), "--format", "json").out)[0]
    line = record["geometry"]["coordinates"]
    assert line[0][0] > line[-1][0] and record["direction"] == "ONE_DIRECTION", record


def test_a_misspelt_street_goes_out_under_the_roads_name_and_the_extension_is_said(cli: Cli) -> None:
    result = add(cli, street="9th Stret")
    assert result.code == 0, result
    assert "street '9th Stret' taken as '9th Street', the road's name there" in result.err
    record = json.loads(cli("--config", str(DEMO), "inspect", "event", result.out.strip(), "--format", "json").out)[0]
    assert record["street"] == "9th Street"
    short = "37.809900 -122.301400 37.810000 -122.301600"  # 20 m inside one block
    extended = add(cli, polyline=short)
    assert extended.code == 0, extended
    assert "closed junction to junction, as Waze closes whole segments" in extended.err
    assert add(cli, street="8th Street").code == 2  # another street (its number differs): no segment near


def test_points_off_the_map_and_an_end_before_the_start_read_plainly(cli: Cli) -> None:
    far = add(cli, polyline="37.700000 -122.100000 37.701000 -122.101000")
    assert far.code == 2 and "outside the road network's area" in far.err, far
    closure_id = add(cli).out.strip()
    early = cli("--config", str(DEMO), "closure", "update", closure_id, "--end", _time(-3))
    assert early.code == 2, early
    offsets = {part[-6:] for part in early.err.split() if part[:4].isdigit() and part[-6] in "+-"}
    assert len(offsets) == 1, early.err  # both times in the city's zone


def test_typos_in_inspect_and_update_options_are_one_line_usage_errors(cli: Cli) -> None:
    """Found in a cold trial: a misspelt category listed no event and exited 0; `--clear street`
    printed click's three-line usage block."""
    typo = cli("--config", str(DEMO), "inspect", "events", "--category", "ROAD_CLOSD")
    assert typo.code == 2 and typo.err.strip().count("\n") == 0 and "ROAD_CLOSED" in typo.err, typo
    assert cli("--config", str(DEMO), "inspect", "events", "--category", "road_closed").code == 0
    closure_id = add(cli).out.strip()
    clear = cli("--config", str(DEMO), "closure", "update", closure_id, "--clear", "street")
    assert clear.code == 2 and clear.err.strip().startswith("error: --clear: 'street' is not one of start"), clear
    assert clear.err.strip().count("\n") == 0
    assert cli("--config", str(DEMO), "closure", "update", closure_id, "--clear", "lane-impact").code == 0


def test_a_street_of_another_number_than_the_road_drawn_is_refused(cli: Cli) -> None:
    """Found in a cold trial: "8th Street" on 9th Street's points was taken as 9th Street. A misspelling
    is still taken as the road's name ("9th Stret"); another number is a wrong street or wrong points."""
    along = "37.808933 -122.299509 37.809578 -122.300788 37.809911 -122.301448"  # three points of 9th Street
    wrong = add(cli, street="8th Street", polyline=along)
    assert wrong.code == 2 and "the points run along '9th Street', not '8th Street'" in wrong.err, wrong
    assert add(cli, street="8th Street").code == 2, "two points are routed along the street named: none there"
    typo = add(cli, street="9th Stret", polyline=along)
    assert typo.code == 0 and "taken as '9th Street'" in typo.err, typo
    moved = cli("--config", str(DEMO), "closure", "update", typo.out.strip(), "--street", "7th Street")
    assert moved.code == 2 and "not '7th Street'" in moved.err, moved


def test_a_schedule_that_never_meets_the_dates_is_refused(cli: Cli) -> None:
    """Found in a cold trial: Friday 22:00 to Saturday 05:00 with a Monday window was stored, carried
    by CIFS, and missing from WZDx while publish said it went out."""
    friday = datetime(2031, 3, 7)  # a Friday
    night = ["--start", f"{friday:%Y-%m-%d}T22:00", "--end", f"{friday + timedelta(days=1):%Y-%m-%d}T05:00"]
    base = ["--config", str(DEMO), "closure", "add", "--street", "9th Street", "--polyline", NINTH, *night]
    never = cli(*base, "--schedule", "monday=22:00-23:59")
    assert never.code == 2 and never.err.startswith("error: schedule: none of its hours falls between"), never
    fits = cli(*base, "--schedule", "friday=22:00-23:59", "--schedule", "saturday=00:00-05:00")
    assert fits.code == 0, fits


def test_an_end_given_as_a_day_is_the_end_of_that_day(cli: Cli) -> None:
    day = (datetime.now(UTC) + timedelta(days=3)).date()
    result = cli("--config", str(DEMO), "closure", "add", "--street", "9th Street", "--polyline", NINTH,
                 "--start", _time(1), "--end", day.isoformat())
    assert result.code == 0, result
    assert f"to {(day + timedelta(days=1)).isoformat()}T00:00-0" in result.err, result


def test_a_closure_added_twice_is_noted(cli: Cli) -> None:
    first = add(cli)
    assert first.code == 0 and "note:" not in first.err, first
    second = add(cli)
    assert second.code == 0, second
    assert f"note: {first.out.strip()} already closes 9th Street there at overlapping times" in second.err
    later = add(cli, "--start", _time(60), "--end", _time(70))  # the same road another week: not the same
    assert later.code == 0 and "note:" not in later.err, later
    lane = add(cli, "--lane-impact", "1:RIGHT")
    assert lane.code == 0 and "note:" not in lane.err, lane  # one lane closed: not the same closure
    # found in a cold trial: one direction of a road closed both ways there, drawn the other way round
    reversed_line = " ".join(reversed([" ".join(pair) for pair in zip(NINTH.split()[::2], NINTH.split()[1::2],
                                                                       strict=True)]))
    one_way = add(cli, "--direction", "ONE_DIRECTION", polyline=reversed_line)
    note = next((line for line in one_way.err.splitlines() if line.startswith("note: ")), "")
    assert one_way.code == 0 and first.out.strip() in note and "added twice?" in note, one_way


def test_closures_of_other_hours_on_one_street_are_not_added_twice(cli: Cli) -> None:
    """Found in a cold trial: a closure of Wednesday and Saturday nights was "added twice?" beside one of
    Monday nights: their periods overlap, their windows never meet."""
    nights = add(cli, "--schedule", "everyday=00:00-06:00")
    assert nights.code == 0, nights
    days = add(cli, "--schedule", "everyday=12:00-18:00")
    assert days.code == 0 and "note:" not in days.err, days
    dawn = add(cli, "--schedule", "everyday=05:00-07:00")
    assert dawn.code == 0 and f"note: {nights.out.strip()} already closes 9th Street" in dawn.err, dawn
    always = add(cli)  # in effect all along: it meets every window
    assert always.code == 0 and nights.out.strip() in always.err and days.out.strip() in always.err, always


def test_a_closure_made_full_by_an_update_goes_junction_to_junction(cli: Cli) -> None:
    """Found in a cold trial: works turned into a ROAD_CLOSED kept its mid-block ends (the lint then
    blocked it, and it was published all the same)."""
    mid_block = "37.809700 -122.301030 37.810050 -122.301720"
    works = cli("--config", str(DEMO), "closure", "add", "--street", "9th Street", "--polyline", mid_block,
                "--type", "CONSTRUCTION", "--start", _time(1), "--end", _time(48))
    assert works.code == 0, works
    closure_id = works.out.strip()

    def line() -> list[list[float]]:
        record = json.loads(cli("--config", str(DEMO), "inspect", "event", closure_id, "--format", "json").out)[0]
        return list(record["geometry"]["coordinates"])

    drawn = line()
    assert abs(drawn[0][1] - 37.8097) < 0.00002 and abs(drawn[-1][1] - 37.81005) < 0.00002, drawn
    full = cli("--config", str(DEMO), "closure", "update", closure_id, "--type", "ROAD_CLOSED", "--subtype",
               "ROAD_CLOSED_CONSTRUCTION")
    assert full.code == 0 and "closed junction to junction" in full.err, full
    extended = line()
    assert extended[0][1] < drawn[0][1] and extended[-1][1] > drawn[-1][1], extended
    lane = cli("--config", str(DEMO), "closure", "update", closure_id, "--lane-impact", "1:RIGHT")
    assert lane.code == 0 and "give --polyline to draw the lanes' own" in lane.err, lane
    lint = {item["id"]: item for item in json.loads(cli("--config", str(DEMO), "inspect", "feed", "--format",
                                                         "json").out)}
    assert not lint[closure_id]["blocking"], lint[closure_id]


def test_the_list_table_shows_a_long_description_in_a_few_lines(cli: Cli) -> None:
    """Found in a cold trial: 90 imported work zones with agencies' 400-character descriptions made a table of
    2,935 lines, the description squeezed to 11 characters and folded a word a line."""
    long_text = "Between Niwot Road and Lookout Road from Mile Point 311 to Mile Point 310. " * 5
    closure_id = add(cli, "--description", long_text).out.strip()
    table = cli("--config", str(DEMO), "closure", "list")
    assert table.code == 0, table
    lines = [line for line in table.out.splitlines() if closure_id in line]
    assert lines and "Mile Point 310. Between" not in table.out.replace("\n", " ")
    assert len(table.out.splitlines()) <= 12, table.out
    whole = json.loads(cli("--config", str(DEMO), "closure", "list", "--format", "json").out)
    assert next(r for r in whole if r["id"] == closure_id)["description"] == long_text.strip()
