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
