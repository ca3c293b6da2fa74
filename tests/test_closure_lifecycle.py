"""The lifecycle of an operator closure: planned, active, ended, cancelled, reopened.

Time is pinned with ``EXCHANGE_NOW`` and moved by setting it again, so every case is exact.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.helpers import Cli, Run
from tests.support.paths import DEMO

NINTH = "37.809578 -122.300788 37.810233 -122.302087"
NOW = datetime(2026, 11, 2, 17, 0, tzinfo=UTC)


@pytest.fixture
def clock(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``clock(hours)`` pins "now" at NOW + hours for every command that follows."""

    def move(hours: float = 0) -> None:
        monkeypatch.setenv("EXCHANGE_NOW", (NOW + timedelta(hours=hours)).isoformat())

    move()
    return move


def at(hours: float) -> str:
    return (NOW + timedelta(hours=hours)).isoformat(timespec="seconds")


def run(cli: Cli, *args: str) -> Run:
    return cli("--config", str(DEMO), *args)


def add(cli: Cli, *extra: str, start: float = -1, end: float = 48, description: str = "Utility work") -> str:
    added = run(cli, "closure", "add", "--street", "9th Street", "--polyline", NINTH, "--type", "ROAD_CLOSED",
                "--subtype", "ROAD_CLOSED_CONSTRUCTION", "--start", at(start), "--end", at(end),
                "--description", description, *extra)
    assert added.code == 0 and "warning" not in added.err, added
    return added.out.strip()


def event(cli: Cli, closure_id: str) -> dict[str, Any]:
    shown = run(cli, "inspect", "event", closure_id, "--format", "json")
    assert shown.code == 0, shown
    record: dict[str, Any] = json.loads(shown.out)[0]
    return record


def actions(cli: Cli, closure_id: str) -> list[str]:
    return [r["action"] for r in event(cli, closure_id)["revisions"]]


def published_cifs(cli: Cli, out: Path) -> str:
    published = run(cli, "publish", "--out", str(out))
    assert published.code == 0, published
    return (out / "cifs.xml").read_text()


def ms(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_called_off_planned_closure_never_freezes_publishing(cli: Cli, clock: Any, tmp_path: Path) -> None:
    works = add(cli, start=7 * 24, end=8 * 24, description="Works next week")
    called_off = run(cli, "closure", "end", works, "--operator", "alice")
    assert called_off.code == 0 and called_off.out.strip() == works, called_off
    assert f"closure {works} had not started: cancelled, it leaves the feeds" in called_off.err
    assert "warning" not in called_off.err
    record = event(cli, works)
    assert record["status"] == "cancelled" and ms(record["end_time"]) == NOW + timedelta(days=8)
    assert [(r["action"], r["operator"]) for r in record["revisions"]][1:] == [("cancelled", "alice")]
    parade = run(cli, "closure", "add", "--street", "9th Street", "--polyline", NINTH, "--type", "ROAD_CLOSED",
                 "--subtype", "ROAD_CLOSED_EVENT", "--start", at(0), "--end", at(5), "--description", "Parade")
    assert parade.code == 0 and "warning" not in parade.err, parade
    cifs = published_cifs(cli, tmp_path / "feeds")
    assert parade.out.strip() in cifs and "Parade" in cifs
    assert works not in cifs


def test_an_update_keeps_the_lane_impact(cli: Cli, clock: Any) -> None:
    closure_id = add(cli, "--lane-impact", "1:RIGHT", "--schedule", "everyday=08:00-17:00")
    changed = run(cli, "closure", "update", closure_id, "--description", "Water main", "--operator", "bob")
    assert changed.code == 0 and changed.out.strip() == closure_id, changed
    record = event(cli, closure_id)
    details = record["details"]
    assert details["lane_impact"] == {"total_closed_lanes": 1, "roadside": "RIGHT"}
    assert details["description"] == "Water main" and details["operator"] == "bob"
    assert details["schedule"] == {"everyday": "08:00-17:00"}
    assert record["subtype"] == "ROAD_CLOSED_CONSTRUCTION" and ms(record["end_time"]) == NOW + timedelta(hours=48)
    assert record["status"] == "active" and record["road_match"]["edges"]
    changes = record["revisions"][-1]["changes"]
    assert set(changes) == {"details"}, changes  # only what was given changed
    assert run(cli, "closure", "update", closure_id, "--lane-impact", "2:left").code == 0
    assert event(cli, closure_id)["details"]["lane_impact"] == {"total_closed_lanes": 2, "roadside": "LEFT"}
    cleared = run(cli, "closure", "update", closure_id, "--clear", "lane-impact", "--clear", "end",
                  "--clear", "schedule")
    assert cleared.code == 0, cleared
    record = event(cli, closure_id)
    assert "lane_impact" not in record["details"] and "schedule" not in record["details"]
    assert record["end_time"] is None and record["details"]["description"] == "Water main"
    both = run(cli, "closure", "update", closure_id, "--end", at(10), "--clear", "end")
    assert both.code == 2 and "end: given and cleared at once" in both.err, both
    assert run(cli, "closure", "update", closure_id, "--clear", "start").code == 2  # a ROAD_CLOSED needs one


def test_cancel_withdraws_an_ended_closure(cli: Cli, clock: Any, tmp_path: Path) -> None:
    closure_id = add(cli)
    assert run(cli, "closure", "end", closure_id).code == 0
    assert ms(event(cli, closure_id)["end_time"]) == NOW
    assert closure_id in published_cifs(cli, tmp_path / "before")  # ended: in the feed with its end time
    cancelled = run(cli, "closure", "cancel", closure_id, "--operator", "carol")
    assert cancelled.code == 0 and cancelled.out.strip() == closure_id, cancelled
    record = event(cli, closure_id)
    assert record["status"] == "cancelled" and ms(record["end_time"]) == NOW
    assert [(r["action"], r["operator"]) for r in record["revisions"]][-1] == ("cancelled", "carol")
    assert closure_id not in published_cifs(cli, tmp_path / "after")
    for again in (("closure", "cancel", closure_id), ("closure", "end", "--cancel", closure_id)):
        repeated = run(cli, *again)
        assert repeated.code == 0 and repeated.out.strip() == closure_id, repeated
        assert "already cancelled" in repeated.err
    ended = run(cli, "closure", "end", closure_id)
    assert ended.code == 0 and "is cancelled" in ended.err, ended
    assert actions(cli, closure_id) == ["created", "ended", "cancelled"]
    other = add(cli)
    assert run(cli, "closure", "end", other).code == 0
    assert run(cli, "closure", "end", "--cancel", other).code == 0
    assert event(cli, other)["status"] == "cancelled"
    assert run(cli, "closure", "cancel", "city:city:nope").code == 3


def test_ending_after_the_end_keeps_that_end(cli: Cli, clock: Any) -> None:
    closure_id = add(cli, start=-2, end=1)
    clock(3)
    ended = run(cli, "closure", "end", closure_id)
    assert ended.code == 0 and "had already ended" in ended.err and "that end is kept" in ended.err, ended
    record = event(cli, closure_id)
    assert record["status"] == "ended" and ms(record["end_time"]) == NOW + timedelta(hours=1)


def test_an_ended_closure_changes_only_when_reopened(cli: Cli, clock: Any) -> None:
    closure_id = add(cli)
    clock(2)
    assert run(cli, "closure", "end", closure_id).code == 0
    refused = run(cli, "closure", "update", closure_id, "--description", "Still closed")
    assert refused.code == 2 and "is ended" in refused.err and "--reopen" in refused.err, refused
    assert event(cli, closure_id)["status"] == "ended"
    past = run(cli, "closure", "update", closure_id, "--reopen", "--end", at(1))
    assert past.code == 2 and "end:" in past.err and "past" in past.err, past
    reopened = run(cli, "closure", "update", closure_id, "--reopen", "--description", "Still closed",
                   "--operator", "dave")
    assert reopened.code == 0 and reopened.out.strip() == closure_id, reopened
    record = event(cli, closure_id)
    assert record["status"] == "active" and record["end_time"] is None  # the end of the ending is gone
    assert record["details"]["description"] == "Still closed"
    assert ms(record["start_time"]) == NOW - timedelta(hours=1)
    assert [(r["action"], r["operator"]) for r in record["revisions"]][-1] == ("reopened", "dave")
    assert run(cli, "closure", "end", closure_id).code == 0
    again = run(cli, "closure", "update", closure_id, "--reopen", "--end", at(30))
    assert again.code == 0, again
    record = event(cli, closure_id)
    assert record["status"] == "active" and ms(record["end_time"]) == NOW + timedelta(hours=30)
    assert run(cli, "closure", "cancel", closure_id).code == 0
    assert run(cli, "closure", "update", closure_id, "--reopen").code == 0  # a cancelled one comes back too
    assert event(cli, closure_id)["status"] == "active"
    noop = run(cli, "closure", "update", closure_id, "--reopen")
    assert noop.code == 0 and "nothing changed" in noop.err, noop
    assert actions(cli, closure_id) == ["created", "ended", "reopened", "ended", "reopened", "cancelled", "reopened"]


def test_planned_is_a_status_of_its_own(store_cli: Cli, clock: Any) -> None:
    cli = store_cli  # on SQLite and PostgreSQL: the filter is SQL
    planned = add(cli, start=24, end=48)
    started = add(cli, start=-1, end=48)

    def listed(*options: str) -> list[tuple[str, str]]:
        shown = run(cli, "closure", "list", "--format", "json", *options)
        assert shown.code == 0, shown
        return sorted((r["id"], r["status"]) for r in json.loads(shown.out))

    def inspected(status: str) -> list[str]:
        shown = run(cli, "inspect", "events", "--status", status, "--format", "json")
        assert shown.code == 0, shown
        return [r["id"] for r in json.loads(shown.out)]

    assert listed() == sorted([(planned, "planned"), (started, "active")])
    assert listed("--status", "planned") == [(planned, "planned")]
    assert listed("--status", "active") == [(started, "active")]
    assert inspected("planned") == [planned] and inspected("active") == [started]
    csv = run(cli, "closure", "list", "--format", "csv").out
    assert f"{planned},ROAD_CLOSED,ROAD_CLOSED_CONSTRUCTION,planned," in csv
    table = run(cli, "closure", "list", "--status", "planned").out
    assert "planned" in table and planned in table and started not in table
    assert event(cli, planned)["status"] == "planned"
    for command in (("closure", "list"), ("inspect", "events")):
        wrong = run(cli, *command, "--status", "open")
        assert wrong.code == 2 and "planned, active, ended, cancelled" in wrong.err, wrong
    clock(25)  # the planned one has started
    assert listed("--status", "planned") == []
    assert listed("--status", "active") == sorted([(planned, "active"), (started, "active")])
    assert inspected("active") == [planned, started]  # the latest start first
    clock(49)  # both have passed their end: ended to people and scripts, though no one ended them
    assert listed() == sorted([(planned, "ended"), (started, "ended")])
    assert listed("--status", "active") == [] and inspected("active") == []
    assert sorted(inspected("ended")) == sorted([planned, started])
    assert event(cli, started)["status"] == "ended"
    # and it is ended to the closure commands: a change needs --reopen, which clears the past end
    refused = run(cli, "closure", "update", started, "--description", "still here")
    assert refused.code == 2 and "ended (its end has passed)" in refused.err and "--reopen" in refused.err, refused
    reopened = run(cli, "closure", "update", started, "--reopen")
    assert reopened.code == 0, reopened
    record = event(cli, started)
    assert record["status"] == "active" and record["end_time"] is None
    assert actions(cli, started)[-1] == "reopened"


def test_a_failed_publish_after_a_change_is_a_warning(cli: Cli, clock: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import exchange.publish
    from exchange.publish import PublishFailed

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise PublishFailed("the generated feeds are invalid, nothing was published")

    monkeypatch.setattr(exchange.publish, "publish", failing)
    added = run(cli, "closure", "add", "--street", "9th Street", "--polyline", NINTH, "--type", "ROAD_CLOSED",
                "--start", at(-1), "--description", "Utility work")
    assert added.code == 0, added
    closure_id = added.out.strip()
    assert closure_id.startswith("city:city:") and added.out.count("\n") == 1
    warning = f"warning: closure {closure_id} is saved, but publishing failed: the generated feeds are invalid"
    assert warning in added.err
    for command in (("update", closure_id, "--description", "Gas leak"), ("end", closure_id),
                    ("cancel", closure_id)):
        done = run(cli, "closure", *command)
        assert done.code == 0 and done.out.strip() == closure_id and warning in done.err, (command, done)
    assert actions(cli, closure_id) == ["created", "updated", "ended", "cancelled"]
    assert len(json.loads(run(cli, "closure", "list", "--format", "json").out)) == 1


def test_a_closure_held_back_is_a_warning(cli: Cli, clock: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import exchange.publish

    closure_id = add(cli)

    class Held:
        def __init__(self) -> None:
            self.held_back = {closure_id: "polyline is 12.0 m long; Waze needs at least 30 m"}

        def summary(self) -> str:
            return "publish: published: 0 event(s), 1 held back by the lint"

    monkeypatch.setattr(exchange.publish, "publish", lambda *args, **kwargs: Held())  # the lead's dict
    changed = run(cli, "closure", "update", closure_id, "--description", "Short")
    assert changed.code == 0, changed
    assert (f"warning: closure {closure_id} is saved but held back from the feeds: polyline is 12.0 m long; "
            "Waze needs at least 30 m") in changed.err


def test_a_store_frozen_by_an_end_before_the_start_is_mended_by_cancel(cli: Cli, clock: Any, tmp_path: Path) -> None:
    """What the previous release left behind (a planned closure "ended" now) is mended by `closure cancel`."""
    from sqlalchemy import update

    from exchange.config_file import load_config
    from exchange.db import open_store
    from exchange.runtime import now_ms
    from exchange.schema import events

    closure_id = add(cli, start=7 * 24, end=8 * 24)
    engine = open_store(load_config(DEMO).database_url)
    try:
        with engine.begin() as conn:
            conn.execute(update(events).where(events.c.id == closure_id).values(status="ended", end_ms=now_ms()))
    finally:
        engine.dispose()
    assert run(cli, "publish").code == 1
    assert run(cli, "closure", "cancel", closure_id).code == 0
    assert closure_id not in published_cifs(cli, tmp_path / "feeds")


def test_a_new_type_without_the_old_subtype_says_how_to_go_on(cli: Cli, clock: Any) -> None:
    """Finding: `--type CONSTRUCTION` on a ROAD_CLOSED_CONSTRUCTION closure said only that the subtype does
    not belong to the type; the operator had to guess `--clear subtype`."""
    closure_id = add(cli)
    refused = run(cli, "closure", "update", closure_id, "--type", "CONSTRUCTION")
    assert refused.code == 2 and "give --clear subtype" in refused.err, refused
    assert "ROAD_CLOSED_CONSTRUCTION does not belong to type CONSTRUCTION" in refused.err
    hazard = run(cli, "closure", "update", closure_id, "--type", "HAZARD")
    assert hazard.code == 2 and "give --subtype (" in hazard.err and "HAZARD_ON_ROAD" in hazard.err, hazard
    changed = run(cli, "closure", "update", closure_id, "--type", "CONSTRUCTION", "--clear", "subtype")
    assert changed.code == 0, changed
    record = event(cli, closure_id)
    assert record["type"] == "CONSTRUCTION" and record["subtype"] is None
