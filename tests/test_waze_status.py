"""Is my closure live in Waze? Generated Waze polls over a city closure on the West Oakland network
(issue 11): confirmations overlap the closure in time, "seen since" is the report's own time,
traffic through a closure that was seen shows, a Waze closure that persists after the city's
ended is surfaced, and a closure never seen is warned of after the delay. Time is pinned with
``EXCHANGE_NOW`` at the polls' own time (2026-03-02, 07:00 in Oakland).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.helpers import BASE_MS, POLL_MS, Cli, alert, feed, jam
from tests.support.paths import DEMO

#: 9th Street between Wood and Campbell (two-way), as "lat lon" from west... to east
NINTH = "37.809578 -122.300788 37.810233 -122.302087"
ON_NINTH = {"x": -122.30144, "y": 37.80991}
NINTH_LINE = [{"x": -122.300788, "y": 37.809578}, {"x": -122.30144, "y": 37.80991}, {"x": -122.302087, "y": 37.810233}]
ELSEWHERE = {"x": -122.2965, "y": 37.8085}  # not on 9th Street
MINUTE = 60_000


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def at(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Set the clock of the commands that follow (milliseconds)."""
    def set_clock(ms: int) -> None:
        monkeypatch.setenv("EXCHANGE_NOW", _iso(ms))
    set_clock(BASE_MS)
    return set_clock


def _closure(cli: Cli, start_ms: int, end_ms: int | None = None, street: str = "9th Street",
             polyline: str = NINTH) -> str:
    args = ["--config", str(DEMO), "closure", "add", "--street", street, "--polyline", polyline,
            "--type", "ROAD_CLOSED", "--subtype", "ROAD_CLOSED_CONSTRUCTION", "--direction", "BOTH_DIRECTIONS",
            "--start", _iso(start_ms), "--description", "Water main"]
    if end_ms is not None:
        args += ["--end", _iso(end_ms)]
    run = cli(*args)
    assert run.code == 0, run
    return run.out.strip()


def _night_closure(cli: Cli) -> str:
    """A closure of 9th Street on Monday nights (22:00-23:59 in Oakland), from an hour before the polls."""
    added = cli("--config", str(DEMO), "closure", "add", "--street", "9th Street", "--polyline", NINTH,
                "--type", "ROAD_CLOSED", "--subtype", "ROAD_CLOSED_CONSTRUCTION", "--direction", "BOTH_DIRECTIONS",
                "--start", _iso(BASE_MS - 60 * MINUTE), "--schedule", "monday=22:00-23:59", "--description", "Nights")
    assert added.code == 0, added
    return added.out.strip()


def _poll(cli: Cli, tmp_path: Path, number: int, **arrays: Any) -> None:
    path = tmp_path / f"poll-{number:03d}.json"
    path.write_bytes(feed(number, alerts=arrays.get("alerts", []), jams=arrays.get("jams", [])))
    run = cli("--config", str(DEMO), "replay", str(path))
    assert run.code == 0, run


def _closed(uuid: str, pub_ms: int, location: dict[str, float] = ON_NINTH,
            street: str = "9th Street") -> dict[str, Any]:
    return alert(uuid, type="ROAD_CLOSED", subtype="ROAD_CLOSED_CONSTRUCTION", location=location, street=street,
                 pubMillis=pub_ms, magvar=0)


def _event(cli: Cli, event_id: str) -> dict[str, Any]:
    run = cli("--config", str(DEMO), "inspect", "event", event_id, "--format", "json")
    assert run.code == 0, run
    record: dict[str, Any] = json.loads(run.out)[0]
    return record


def test_a_future_closure_is_not_confirmed_by_an_earlier_waze_closure(cli: Cli, tmp_path: Path, at: Any) -> None:
    closure = _closure(cli, BASE_MS + 8 * 24 * 60 * MINUTE)  # starts in 8 days
    _poll(cli, tmp_path, 0, alerts=[_closed("old-closure", BASE_MS - 30 * MINUTE)])
    record = _event(cli, closure)
    assert record["confirmations"] == [] and record["visible_in_waze_since"] is None
    assert record["waze"]["state"] == "not started"
    unconfirmed = json.loads(cli("--config", str(DEMO), "inspect", "events", "--unconfirmed-closures",
                                 "--format", "json").out)
    assert "waze:alert:old-closure" in {e["id"] for e in unconfirmed}  # not hidden by the future closure


def test_seen_since_is_the_time_of_the_waze_report_and_a_waze_closure_persisting_after_the_end_shows(
    cli: Cli, tmp_path: Path, at: Any,
) -> None:
    closure = _closure(cli, BASE_MS - 60 * MINUTE)
    _poll(cli, tmp_path, 0, alerts=[_closed("closure-back", BASE_MS - 20 * MINUTE)])
    record = _event(cli, closure)
    assert {c["crowd_event_id"] for c in record["confirmations"]} == {"waze:alert:closure-back"}
    assert record["visible_in_waze_since"] == _iso(BASE_MS - 20 * MINUTE).replace("Z", ".000Z")  # not the sync's time
    assert record["waze"]["state"] == "seen in Waze"
    assert record["waze"]["evidence"]["seen"][0]["id"] == "waze:alert:closure-back"
    listed = cli("--config", str(DEMO), "inspect", "events", "--unconfirmed-closures", "--format", "json")
    assert "waze:alert:closure-back" not in {e["id"] for e in json.loads(listed.out)}

    at(BASE_MS + 5 * MINUTE)
    assert cli("--config", str(DEMO), "closure", "end", closure).code == 0
    at(BASE_MS + 10 * MINUTE)
    _poll(cli, tmp_path, 5, alerts=[_closed("closure-back", BASE_MS - 20 * MINUTE)])
    listed = cli("--config", str(DEMO), "inspect", "events", "--unconfirmed-closures", "--format", "json")
    assert "waze:alert:closure-back" in {e["id"] for e in json.loads(listed.out)}  # Waze still shows it closed
    assert _event(cli, closure)["waze"]["state"] == "ended"


def test_a_blocked_jam_shows_it_then_traffic_flowing_through_it(cli: Cli, tmp_path: Path, at: Any) -> None:
    closure = _closure(cli, BASE_MS - 60 * MINUTE)
    # the closure report lies elsewhere; the level-5 jam it blocks lies on 9th Street
    blocked = jam(501, line=NINTH_LINE, street="9th Street", level=5, speedKMH=0.0, speed=0.0,
                  blockingAlertUuid="far-closure", pubMillis=BASE_MS - 10 * MINUTE)
    _poll(cli, tmp_path, 0, alerts=[_closed("far-closure", BASE_MS - 15 * MINUTE, ELSEWHERE, "Campbell Street")],
          jams=[blocked])
    record = _event(cli, closure)
    assert [(c["crowd_event_id"], c["how"]) for c in record["confirmations"]] == [("waze:jam:501", "blocked-jam")]
    assert record["waze"]["state"] == "seen in Waze"
    assert record["waze"]["since"] == _iso(BASE_MS - 10 * MINUTE).replace("Z", ".000Z")
    table = cli("--config", str(DEMO), "inspect", "event", closure)
    assert "seen in Waze since 2026-03-02 06:50:00" in table.out  # the jam's time, in Oakland

    at(BASE_MS + 2 * POLL_MS)
    moving = jam(502, line=NINTH_LINE, street="9th Street", level=2, speedKMH=24.0, speed=6.7,
                 pubMillis=BASE_MS + 3 * MINUTE)
    _poll(cli, tmp_path, 2, jams=[moving])
    record = _event(cli, closure)
    assert record["waze"]["state"] == "traffic flowing"
    assert record["waze"]["evidence"]["flowing"][0]["id"] == "waze:jam:502"
    listed = cli("--config", str(DEMO), "closure", "list", "--format", "json")
    assert {c["id"]: c["waze"]["state"] for c in json.loads(listed.out)}[closure] == "traffic flowing"


def test_a_closure_never_seen_is_warned_of_after_the_delay(cli: Cli, tmp_path: Path, at: Any) -> None:
    closure = _closure(cli, BASE_MS - 5 * MINUTE)
    _poll(cli, tmp_path, 0, alerts=[_closed("elsewhere", BASE_MS - MINUTE, ELSEWHERE, "Campbell Street")])
    at(BASE_MS + 30 * MINUTE)
    early = cli("--config", str(DEMO), "closure", "list", "--format", "json")
    assert early.code == 0 and "still not seen in Waze" not in early.err
    waze = json.loads(early.out)[0]["waze"]
    assert waze["state"] == "not seen yet" and waze["late_minutes"] is None
    assert waze["text"] == "published 2026-03-02T15:00:00.000Z, not seen in Waze yet"
    at(BASE_MS + 61 * MINUTE)
    late = cli("--config", str(DEMO), "closure", "list")
    assert f"warning: closure {closure} was published 61 minutes ago, still not seen in Waze" in late.err
    shown = cli("--config", str(DEMO), "inspect", "event", closure)
    assert "still not seen in Waze" in shown.err
    feed_lint = cli("--config", str(DEMO), "inspect", "feed")
    assert "Waze shows 0 of the 1 published closure(s) in effect (0% observed" in feed_lint.err


def test_the_daemons_waze_poll_warns_once_when_a_closure_is_late(cli: Cli, tmp_path: Path, at: Any) -> None:
    # Campbell Street: no Waze report of the demo's polls shows it
    closure = _closure(cli, BASE_MS - 5 * MINUTE, street="Campbell Street",
                       polyline="37.806325 -122.299297 37.807360 -122.298941")
    at(BASE_MS + 61 * MINUTE)
    first = cli("--config", str(DEMO), "sync", "waze")
    assert first.code == 0, first
    assert f"closure {closure} was published 61 minutes ago, still not seen in Waze" in first.err
    at(BASE_MS + 65 * MINUTE)  # the next polls: said once, not every two minutes
    assert "still not seen in Waze" not in cli("--config", str(DEMO), "sync", "waze").err


def test_a_night_closure_by_day_expects_nothing_of_waze(cli: Cli, tmp_path: Path, at: Any) -> None:
    """Found in a cold trial: a closure of Monday nights only was "seen in Waze" from a Waze closure at
    midday (which then hid from `--unconfirmed-closures`), read day traffic as flowing through it, and
    was "late" from its first start on through every day in between. Between the windows of its schedule
    nothing is expected: 07:00 on a Monday, its window opens at 22:00."""
    closure = _night_closure(cli)
    _poll(cli, tmp_path, 0, alerts=[_closed("by-day", BASE_MS - MINUTE)])
    record = _event(cli, closure)
    assert record["confirmations"] == [], "a Waze closure by day is not the night closure's"
    assert record["waze"]["state"] == "between its windows"
    assert record["waze"]["since"] == "2026-03-03T06:00:00.000Z"  # Monday 22:00 in Oakland
    unconfirmed = cli("--config", str(DEMO), "inspect", "events", "--unconfirmed-closures", "--format", "json")
    assert [e["id"] for e in json.loads(unconfirmed.out)] == ["waze:alert:by-day"], unconfirmed
    at(BASE_MS + 180 * MINUTE)
    quiet = cli("--config", str(DEMO), "closure", "list")
    assert quiet.code == 0 and "still not seen in Waze" not in quiet.err, quiet
    feed_lint = cli("--config", str(DEMO), "inspect", "feed")  # by day it is not a closure Waze should show
    assert "published closure(s) in effect" not in feed_lint.err, feed_lint
    # in its window, unseen for more than the delay: late, counted from the window's start
    at(BASE_MS + (15 * 60 + 70) * MINUTE)  # Monday 23:10 in Oakland
    late = cli("--config", str(DEMO), "closure", "list")
    assert f"warning: closure {closure} started 70 minutes ago (published before), still not seen" in late.err, late


def test_a_waze_closure_linked_at_night_is_unconfirmed_by_day(cli: Cli, tmp_path: Path, at: Any) -> None:
    """A Waze closure linked to a night closure in its window and still listed the next midday is on no
    city closure in effect then: `--unconfirmed-closures` lists it (it hid behind the night's link)."""
    closure = _night_closure(cli)
    night_ms = BASE_MS + (15 * 60 + 10) * MINUTE  # Monday 22:10 in Oakland
    at(night_ms)
    _poll(cli, tmp_path, (night_ms - BASE_MS) // (2 * MINUTE), alerts=[_closed("stays", night_ms - MINUTE)])
    assert [c["crowd_event_id"] for c in _event(cli, closure)["confirmations"]] == ["waze:alert:stays"]
    unconfirmed = cli("--config", str(DEMO), "inspect", "events", "--unconfirmed-closures", "--format", "json")
    assert json.loads(unconfirmed.out) == [], unconfirmed
    midday_ms = BASE_MS + 29 * 60 * MINUTE  # Tuesday 12:00 in Oakland
    at(midday_ms)
    _poll(cli, tmp_path, (midday_ms - BASE_MS) // (2 * MINUTE), alerts=[_closed("stays", night_ms - MINUTE)])
    unconfirmed = cli("--config", str(DEMO), "inspect", "events", "--unconfirmed-closures", "--format", "json")
    assert [e["id"] for e in json.loads(unconfirmed.out)] == ["waze:alert:stays"], unconfirmed


@pytest.mark.parametrize("command", ["end", "cancel"])
def test_ending_another_closure_by_day_links_nothing_to_a_night_closure(
    cli: Cli, tmp_path: Path, at: Any, command: str,
) -> None:
    """Found in review: `closure end` and `cancel` read the Waze feed again without the city's zone, as
    if every schedule ran all day: ending any closure by day linked a Waze closure by day to a night one."""
    night = _night_closure(cli)
    _poll(cli, tmp_path, 0, alerts=[_closed("by-day", BASE_MS - MINUTE)])
    other = _closure(cli, BASE_MS - 5 * MINUTE, street="Campbell Street",
                     polyline="37.806325 -122.299297 37.807360 -122.298941")
    done = cli("--config", str(DEMO), "closure", command, other)
    assert done.code == 0, done
    record = _event(cli, night)
    assert record["confirmations"] == [] and record["visible_in_waze_since"] is None, record
    assert record["waze"]["state"] == "between its windows"


def test_a_night_closure_seen_last_week_is_late_tonight_when_waze_does_not_show_it(
    cli: Cli, tmp_path: Path, at: Any,
) -> None:
    """Found in review: once Waze had shown a night closure, every later night said "seen in Waze since"
    the first one, and never late. Each window is seen, or late, on its own."""
    closure = _night_closure(cli)
    first_night = BASE_MS + (15 * 60 + 10) * MINUTE  # Monday 22:10 in Oakland
    at(first_night)
    _poll(cli, tmp_path, (first_night - BASE_MS) // (2 * MINUTE), alerts=[_closed("shown", first_night - MINUTE)])
    assert _event(cli, closure)["waze"]["state"] == "seen in Waze"
    next_night = BASE_MS + (7 * 24 * 60 + 14 * 60 + 90) * MINUTE  # next Monday 23:30 (PDT since Sunday)
    assert _iso(next_night) == "2026-03-10T06:30:00Z"
    at(next_night)
    elsewhere = _closed("elsewhere", next_night - MINUTE, location=ELSEWHERE, street="Wood Street")
    _poll(cli, tmp_path, (next_night - BASE_MS) // (2 * MINUTE), alerts=[elsewhere])
    record = _event(cli, closure)
    assert record["waze"]["state"] == "not seen yet", record["waze"]
    late = cli("--config", str(DEMO), "closure", "list")
    assert f"warning: closure {closure} started 90 minutes ago (published before), still not seen" in late.err, late
    feed_lint = cli("--config", str(DEMO), "inspect", "feed")
    assert "Waze shows 0 of the 1 published closure(s) in effect" in feed_lint.err, feed_lint
    # shown again tonight: seen since tonight's sighting, not last week's
    _poll(cli, tmp_path, (next_night - BASE_MS) // (2 * MINUTE) + 1, alerts=[elsewhere, _closed("again", next_night)])
    record = _event(cli, closure)
    assert (record["waze"]["state"], record["waze"]["since"]) == ("seen in Waze", "2026-03-10T06:30:00.000Z")


@pytest.mark.parametrize("details", ['{"schedule": ["monday"]}', "{not json", '{"schedule": {"monday": 5}}', "[1, 2]",
                                     {"schedule": "monday"}])
def test_a_stored_schedule_that_cannot_be_read_is_read_as_none(details: Any) -> None:
    """Found in review: every reader of the Waze status (a Waze sync, `closure list`, /metrics) reads
    each closure's schedule; one unreadable stored `details` raised and stopped them all."""
    from zoneinfo import ZoneInfo

    from exchange.confirm import window_at

    assert window_at(details, start_ms=0, end_ms=None, at_ms=BASE_MS, zone=ZoneInfo("America/Los_Angeles")) == (
        True, None)
