"""Every read path survives a stored row it cannot render: it names the row and why on stderr, in
one line, and goes on with the others; a command about that row alone fails in one line (exit 1),
except `closure end` and `closure cancel`, which only change the stored status (and end).

The rows are written straight into the store, as a hand edit, a bug or an older release would
leave them: a time past the year 9999, text that is not UTF-8 (SQLite keeps any bytes), JSON
that no JSON reader takes (a lone surrogate escape, which PostgreSQL's json keeps), a geometry
that is not a GeoJSON point or line, and details the model refuses.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from exchange.bulk import Bulk
from exchange.closures import ClosureInput, add_closure
from exchange.config import Config
from exchange.model import Category, Event, Kind, Origin, Point
from exchange.schema import events, publish_runs
from exchange.store import EVENT_COLUMNS, event_to_row, event_values
from tests.support.closures import LINE
from tests.support.helpers import Run

NOW_MS = 1_772_463_600_000  # 2026-03-02T15:00:00Z
#: 9999-12-31T23:59:59-12:00: no date in the year 9999 for UTC
YEAR_10000_MS = 253_402_300_799_000 + 12 * 3_600_000

#: what is planted -> (column, value for the store, what the warning says)
BAD: dict[str, tuple[str, Any, str]] = {
    "time": ("end_ms", YEAR_10000_MS, f"end_ms {YEAR_10000_MS} is out of range"),
    "text": ("street", b"9th \xed\xb3\xbf Street", "street is not valid UTF-8 text (byte 0xed at position 4)"),
    "surrogate": ("attributes", '{"note": "\\ud800"}', "attributes is not valid JSON: "),
    "geometry": ("geometry", '{"type": "LineString", "coordinates": [[-122.3, 37.8]]}',
                 "geometry.LineString.coordinates: List should have at least 2 items"),
    "details": ("details", '{"lanes": "all of them"}', "details.lanes: Input should be a valid list"),
}


def plant(engine: Engine, event_id: str, column: str, value: Any) -> None:
    """Write ``value`` into one column as it is, past every check (bytes as TEXT on SQLite)."""
    postgres = engine.dialect.name == "postgresql"
    if isinstance(value, bytes):
        assert not postgres, "PostgreSQL keeps UTF-8 text only"
        target = "CAST(:value AS TEXT)"
    elif isinstance(value, str) and postgres:
        target = "CAST(:value AS JSON)"
    else:
        target = ":value"
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE events SET {column} = {target} WHERE id = :id"), {"value": value, "id": event_id})


def closure(engine: Engine, street: str) -> str:
    spec = ClosureInput(street=street, points=LINE, start="2026-03-02T06:00:00-08:00",
                        end="2026-03-09T08:00:00-08:00", description=f"Works on {street}")
    return add_closure(engine, spec, zone=Config().zone, placement=None).id


def crowd_alert(engine: Engine, uuid: str) -> str:
    event = Event(id=f"waze:alert:{uuid}", source="waze", kind=Kind.ALERT, source_id=uuid, origin=Origin.CROWD,
                  category=Category.ACCIDENT, type="ACCIDENT", geometry=Point(coordinates=LINE[0]), street="9th Street")
    with engine.begin() as conn:
        Bulk(conn).insert(events, EVENT_COLUMNS, [event_values(event_to_row(event, now_ms=NOW_MS), EVENT_COLUMNS)])
    return event.id


@pytest.fixture
def exchange(store_cli: Callable[..., Run], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Run]:
    """The CLI on the test's store, the city in Los Angeles, now pinned, no publication after a change."""
    monkeypatch.setenv("EXCHANGE_NOW", str(NOW_MS))
    config = tmp_path / "exchange.toml"
    config.write_text('timezone = "America/Los_Angeles"\n\n[publish]\non_change = false\n')

    def run(*args: str) -> Run:
        done = store_cli("--config", str(config), *args)
        assert "Traceback" not in done.err, done
        return done

    return run


def planted(engine: Engine) -> dict[str, tuple[str, str]]:
    """One closure per kind of bad value the backend can keep: id -> (kind, the reason's start)."""
    kinds = [kind for kind in BAD if not (kind == "text" and engine.dialect.name == "postgresql")]
    found: dict[str, tuple[str, str]] = {}
    for number, kind in enumerate(kinds, 10):
        column, value, reason = BAD[kind]
        event_id = closure(engine, f"{number}th Street")
        plant(engine, event_id, column, value)
        found[event_id] = (kind, reason)
    return found


def warned(run: Run, bad: dict[str, tuple[str, str]], outcome: str = "skipped") -> None:
    """Each bad row is named once on stderr with its reason, in one line; the run did not fail."""
    assert run.code == 0, run
    lines = run.err.splitlines()
    for event_id, (kind, reason) in bad.items():
        mine = [line for line in lines if line.startswith(f"warning: event {event_id} cannot be read: ")]
        assert len(mine) == 1, (kind, run)
        assert mine[0].startswith(f"warning: event {event_id} cannot be read: {reason}"), (kind, mine)
        assert mine[0].endswith(f"; {outcome}"), (kind, mine)


def test_every_read_path_reports_an_unreadable_row_and_goes_on(
    engine: Engine, exchange: Callable[..., Run], tmp_path: Path,
) -> None:
    good = closure(engine, "9th Street")
    bad = planted(engine)
    crowd_good, crowd_bad = crowd_alert(engine, "good-1"), crowd_alert(engine, "bad-1")
    plant(engine, crowd_bad, "updated_ms", -YEAR_10000_MS)
    everything = {**bad, crowd_bad: ("updated", f"updated_ms {-YEAR_10000_MS} is out of range")}

    for fmt in ("json", "jsonl", "geojson", "csv"):
        listed = exchange("inspect", "events", "--format", fmt)
        warned(listed, everything)
        if fmt == "json":
            assert sorted(record["id"] for record in json.loads(listed.out)) == sorted([good, crowd_good])
        elif fmt == "jsonl":
            assert sorted(json.loads(line)["id"] for line in listed.out.splitlines()) == sorted([good, crowd_good])
        elif fmt == "geojson":
            assert sorted(f["id"] for f in json.loads(listed.out)["features"]) == sorted([good, crowd_good])
        else:
            assert sorted(line.split(",")[0] for line in listed.out.splitlines()[1:]) == sorted([good, crowd_good])
    table = exchange("inspect", "events")
    warned(table, everything)
    assert good in table.out and crowd_good in table.out

    closures = exchange("closure", "list", "--format", "json")
    warned(closures, bad)
    assert [record["id"] for record in json.loads(closures.out)] == [good]
    warned(exchange("closure", "list"), bad)

    for event_id, (kind, reason) in everything.items():
        shown = exchange("inspect", "event", event_id)
        assert shown.code == 1 and shown.out == "", (kind, shown)
        assert shown.err.startswith(f"error: event {event_id} cannot be read: {reason}"), (kind, shown)
        assert len(shown.err.splitlines()) == 1, (kind, shown)
    assert exchange("inspect", "event", good, "--format", "json").code == 0

    feed = exchange("inspect", "feed", "--format", "json")
    warned(feed, bad)
    assert [record["id"] for record in json.loads(feed.out)] == [good]

    published = exchange("publish", "--out", str(tmp_path / "feeds"))
    warned(published, bad, "held back")
    assert f"publish: published: 1 event(s), {len(bad)} held back" in published.err
    assert good in (tmp_path / "feeds" / "cifs.xml").read_text()
    with engine.connect() as conn:
        problems = conn.execute(select(publish_runs.c.problems).order_by(publish_runs.c.id.desc())).scalars().first()
    for event_id, (kind, reason) in bad.items():
        assert problems["held_back"][event_id].startswith(f"held back: cannot be read: {reason}"), kind
    listed = json.loads(exchange("closure", "list", "--format", "json").out)
    assert listed[0]["held_back"] is None


def test_closure_commands_on_an_unreadable_closure(engine: Engine, exchange: Callable[..., Run]) -> None:
    bad = planted(engine)
    by_kind = {kind: event_id for event_id, (kind, _reason) in bad.items()}
    for event_id, (kind, reason) in bad.items():
        changed = exchange("closure", "update", event_id, "--description", "Mended")
        assert changed.code == 1 and changed.out == "", (kind, changed)
        assert changed.err.startswith(f"error: closure {event_id} cannot be read: {reason}"), (kind, changed)
        assert "`closure end` and `closure cancel` still work" in changed.err and len(changed.err.splitlines()) == 1

    # ending replaces the end that cannot be read: the closure reads again, ended now
    ended = exchange("closure", "end", by_kind["time"], "--operator", "alice")
    assert ended.code == 0 and ended.out.strip() == by_kind["time"], ended
    assert "ended now (only its status and end changed)" in ended.err
    record = json.loads(exchange("inspect", "event", by_kind["time"], "--format", "json").out)[0]
    assert record["status"] == "ended" and record["end_time"] == "2026-03-02T15:00:00.000Z"
    assert record["revisions"][-1]["action"] == "ended" and record["revisions"][-1]["operator"] == "alice"
    assert record["revisions"][-1]["changes"] == {"status": ["active", "ended"], "end_ms": [YEAR_10000_MS, NOW_MS]}

    # ending one whose geometry does not read: only status and end change; it still does not read
    geometry = by_kind["geometry"]
    assert exchange("closure", "end", geometry).code == 0
    assert exchange("closure", "end", geometry).err.startswith(f"closure {geometry} already ended; nothing changed")
    assert exchange("inspect", "event", geometry).code == 1

    rest = [event_id for event_id, (kind, _reason) in bad.items() if kind not in ("time", "geometry")]
    for event_id in rest:
        cancelled = exchange("closure", "cancel", event_id)
        assert cancelled.code == 0 and cancelled.out.strip() == event_id, cancelled
        assert "cancelled: only its status changed" in cancelled.err
        again = exchange("closure", "cancel", event_id)
        assert again.code == 0 and "already cancelled; nothing changed" in again.err
    with engine.connect() as conn:
        statuses = dict(conn.execute(select(events.c.id, events.c.status)).all())
    assert {statuses[event_id] for event_id in rest} == {"cancelled"}
    # cancelled ones leave the feeds: publishing no longer names them
    published = exchange("publish")
    warned(published, {geometry: bad[geometry]}, "held back")
    assert not any(event_id in published.err for event_id in rest)


def test_an_unreadable_published_closure_keeps_its_last_version_and_counts_for_the_guard(
    engine: Engine, exchange: Callable[..., Run], tmp_path: Path,
) -> None:
    ids = [closure(engine, f"{number}th Street") for number in range(10, 15)]
    assert exchange("publish").code == 0
    column, value, reason = BAD["geometry"]
    plant(engine, ids[0], column, value)
    kept = exchange("publish", "--out", str(tmp_path / "kept"))
    warned(kept, {ids[0]: ("geometry", reason)}, "held back, its last published version stays served")
    assert all(event_id in (tmp_path / "kept" / "cifs.xml").read_text() for event_id in ids)

    column, value, reason = BAD["details"]
    plant(engine, ids[1], column, value)  # 2 of 5 published ones would be held back: over the 20 %
    refused = exchange("publish")
    assert refused.code == 1 and len(refused.err.splitlines()) == 1, refused
    assert refused.err.startswith("error: 2 of 5 published events would be held back or disappear"), refused
    first = min(ids[:2])  # the guard names the first by id
    assert f"first: {first}: cannot be read: {BAD['geometry' if first == ids[0] else 'details'][2]}" in refused.err

    # an end is never held back: the last good version goes out with the stored end
    ended = exchange("closure", "end", ids[0])
    assert ended.code == 0, ended
    plant(engine, ids[1], column, "null")
    published = exchange("publish", "--out", str(tmp_path / "ended"))
    warned(published, {ids[0]: ("geometry", BAD["geometry"][2])},
           "its last published version goes out with the stored end")
    cifs = (tmp_path / "ended" / "cifs.xml").read_text()
    assert ids[0] in cifs and "2026-03-02T07:00:00-08:00" in cifs
