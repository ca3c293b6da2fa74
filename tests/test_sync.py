"""The sync pipeline on both stores: reconcile, lifecycle, guards, atomicity, overlapping sources."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from adapters.waze import WazeFeedAdapter
from exchange.config import LifecycleConfig
from exchange.db import open_store
from exchange.errors import MalformedPayload
from exchange.runtime import InjectedFault
from exchange.schema import events, revisions, sightings, sources, sync_runs
from exchange.sync import ingest_payload
from tests.support.helpers import BASE_MS, POLL_MS, alert, feed, jam

LIFECYCLE = LifecycleConfig()


def waze(name: str = "waze") -> WazeFeedAdapter:
    return WazeFeedAdapter(name, {"url": ""})


def ingest(engine: Engine, data: bytes, source: WazeFeedAdapter | None = None) -> Any:
    return ingest_payload(engine, source or waze(), data, LIFECYCLE)


def status_of(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(select(events.c.id, events.c.status)).all())


def dump(engine: Engine) -> dict[str, list[Any]]:
    """Everything stored except the run log, to compare a store before and after."""
    with engine.connect() as conn:
        return {
            table.name: sorted(tuple(map(str, row)) for row in conn.execute(select(table)))
            for table in (events, sightings, revisions, sources)
        }


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_first_poll_inserts_everything(engine: Engine) -> None:
    result = ingest(engine, feed(0, alerts=[alert("a1"), alert("a2")], jams=[jam(101)], irregularities=[]))
    assert (result.status, result.new, result.fetched, result.rejected) == ("ok", 3, 3, 0)
    assert status_of(engine) == {"waze:alert:a1": "active", "waze:alert:a2": "active", "waze:jam:101": "active"}
    assert count(engine, revisions) == 3


def test_replaying_the_newest_snapshot_is_a_no_op(engine: Engine) -> None:
    data = feed(0, alerts=[alert("a1")], jams=[jam(101)])
    ingest(engine, data)
    before = dump(engine)
    result = ingest(engine, data)
    assert result.status == "duplicate" and result.new == result.updated == result.ended == 0
    assert dump(engine) == before


def test_unchanged_items_are_not_rewritten(engine: Engine) -> None:
    ingest(engine, feed(0, alerts=[alert("a1"), alert("a2")]))
    with engine.connect() as conn:
        before = dict(conn.execute(select(events.c.id, events.c.updated_ms)).all())
    result = ingest(engine, feed(1, alerts=[alert("a1"), alert("a2", nThumbsUp=4)]))
    assert (result.new, result.updated, result.unchanged) == (0, 1, 1)
    with engine.connect() as conn:
        after = dict(conn.execute(select(events.c.id, events.c.updated_ms)).all())
        thumbs = conn.execute(select(events.c.thumbs_up).where(events.c.id == "waze:alert:a2")).scalar_one()
        updates = conn.execute(select(func.count()).select_from(revisions)
                               .where(revisions.c.action == "updated")).scalar_one()
    assert after["waze:alert:a1"] == before["waze:alert:a1"]
    assert after["waze:alert:a2"] > before["waze:alert:a2"] and thumbs == 4
    assert updates == 0, "a thumbs-up is a measure: the row takes it, no revision records it"


def test_events_missing_three_good_polls_end(engine: Engine) -> None:
    ingest(engine, feed(0, alerts=[alert("a1"), alert("gone")], jams=[jam(1)]))
    for poll in (1, 2):
        result = ingest(engine, feed(poll, alerts=[alert("a1")], jams=[jam(1)]))
        assert result.ended == 0
    assert status_of(engine)["waze:alert:gone"] == "active"
    result = ingest(engine, feed(3, alerts=[alert("a1")], jams=[jam(1)]))
    assert result.ended == 1
    assert status_of(engine)["waze:alert:gone"] == "ended"
    with engine.connect() as conn:
        end_ms = conn.execute(select(events.c.end_ms).where(events.c.id == "waze:alert:gone")).scalar_one()
    assert end_ms == BASE_MS + 60_000, "ended at the last snapshot that still had it"


def test_a_flicker_shorter_than_the_limit_ends_nothing(engine: Engine) -> None:
    ingest(engine, feed(0, alerts=[alert("a1"), alert("flicker")]))
    ingest(engine, feed(1, alerts=[alert("a1")]))
    ingest(engine, feed(2, alerts=[alert("a1")]))
    ingest(engine, feed(3, alerts=[alert("a1"), alert("flicker")]))
    ingest(engine, feed(4, alerts=[alert("a1")]))
    ingest(engine, feed(5, alerts=[alert("a1")]))
    assert status_of(engine)["waze:alert:flicker"] == "active"


def test_an_ended_event_that_returns_is_reopened(engine: Engine) -> None:
    ingest(engine, feed(0, alerts=[alert("a1"), alert("back")]))
    for poll in (1, 2, 3):
        ingest(engine, feed(poll, alerts=[alert("a1")]))
    assert status_of(engine)["waze:alert:back"] == "ended"
    result = ingest(engine, feed(4, alerts=[alert("a1"), alert("back")]))
    assert result.updated == 1 and status_of(engine)["waze:alert:back"] == "active"
    with engine.connect() as conn:
        actions = conn.execute(
            select(revisions.c.action).where(revisions.c.event_id == "waze:alert:back").order_by(revisions.c.id)
        ).scalars().all()
    assert actions == ["created", "ended", "reopened"]


def test_an_absent_array_is_not_a_missing_kind(engine: Engine) -> None:
    ingest(engine, feed(0, alerts=[alert("a1")], jams=[jam(1)]))
    for poll in (1, 2, 3, 4):
        ingest(engine, feed(poll, jams=[jam(1)]))  # a jams-only feed: no "alerts" key at all
    assert status_of(engine) == {"waze:alert:a1": "active", "waze:jam:1": "active"}


def test_a_suspect_feed_does_not_mass_end(engine: Engine) -> None:
    many = [alert(f"a{i}") for i in range(50)]
    for poll in range(3):
        ingest(engine, feed(poll, alerts=many))
    for poll in (3, 4, 5):
        result = ingest(engine, feed(poll, alerts=many[:3]))
        assert result.ended == 0
        assert result.message and "suspect" in result.message
    empty = ingest(engine, feed(6, alerts=[]))
    assert empty.ended == 0 and "suspect" in (empty.message or "")
    assert set(status_of(engine).values()) == {"active"}


def test_an_older_snapshot_is_history_only(engine: Engine) -> None:
    ingest(engine, feed(5, alerts=[alert("a1", nThumbsUp=9)]))
    result = ingest(engine, feed(2, alerts=[alert("a1", nThumbsUp=1), alert("old")]))
    assert result.status == "history" and result.ended == 0
    statuses = status_of(engine)
    assert statuses == {"waze:alert:a1": "active", "waze:alert:old": "ended"}
    with engine.connect() as conn:
        thumbs = conn.execute(select(events.c.thumbs_up).where(events.c.id == "waze:alert:a1")).scalar_one()
        newest = conn.execute(select(sources.c.newest_snapshot_ms)).scalar_one()
    assert thumbs == 9, "an older snapshot does not roll an event back"
    assert newest == BASE_MS + 5 * POLL_MS + 60_000
    # and an older snapshot missing a1 does not count as a missed poll
    for poll in (1, 2, 3):
        ingest(engine, feed(poll, alerts=[]))
    assert status_of(engine)["waze:alert:a1"] == "active"


def test_history_never_ends_an_event_before_it_starts(engine: Engine) -> None:
    """Found in a cold trial: Waze's snapshot time is its minute, and an item published seconds into it
    starts after it; replayed as history it was stored ending before its start (229 of the Jakarta feed)."""
    ingest(engine, feed(5, alerts=[alert("a1")]))
    snapshot_end = BASE_MS + 2 * POLL_MS + 60_000
    ingest(engine, feed(2, alerts=[alert("late", pubMillis=snapshot_end + 18_985)]))
    with engine.connect() as conn:
        start, end, status = conn.execute(select(events.c.start_ms, events.c.end_ms, events.c.status)
                                          .where(events.c.id == "waze:alert:late")).one()
    assert (status, end) == ("ended", start), (start, end)
    # listed, then gone: ended where it went missing, or at its start when that came later
    ingest(engine, feed(6, alerts=[alert("a1"), alert("fresh", pubMillis=BASE_MS + 6 * POLL_MS + 60_000 + 5_000)]))
    for poll in (7, 8, 9):
        ingest(engine, feed(poll, alerts=[alert("a1")]))
    with engine.connect() as conn:
        start, end, status = conn.execute(select(events.c.start_ms, events.c.end_ms, events.c.status)
                                          .where(events.c.id == "waze:alert:fresh")).one()
    assert status == "ended" and end >= start, (status, start, end)


def test_ids_listed_twice_in_one_feed_are_counted_and_the_last_kept(engine: Engine) -> None:
    data = feed(0, alerts=[alert("a1", nThumbsUp=1), alert("a2"), alert("a1", nThumbsUp=2), alert("a1", nThumbsUp=3)],
                jams=[jam(7, level=1), jam(7, level=4), jam(8)])
    result = ingest(engine, data)
    assert (result.status, result.fetched, result.new, result.rejected) == ("ok", 7, 4, 0)
    assert result.message == (
        "3 duplicate items folded: 2 ids listed more than once, the last occurrence kept (waze:alert:a1, waze:jam:7)"
    )
    with engine.connect() as conn:
        stored = dict(conn.execute(select(events.c.id, events.c.thumbs_up)).all())
        level = conn.execute(select(events.c.level).where(events.c.id == "waze:jam:7")).scalar_one()
        message = conn.execute(select(sync_runs.c.message).where(sync_runs.c.id == result.run_id)).scalar_one()
    assert stored["waze:alert:a1"] == 3 and level == 4 and message == result.message
    again = ingest(engine, feed(1, alerts=[alert("a1", nThumbsUp=3), alert("a2")], jams=[jam(7, level=4), jam(8)]))
    assert (again.unchanged, again.updated, again.message) == (4, 0, None)


def test_many_ids_listed_twice_name_the_first_and_join_other_notes(engine: Engine) -> None:
    many = [alert(f"a{i}") for i in range(50)]
    for poll in range(3):
        ingest(engine, feed(poll, alerts=many))
    twice = [alert(f"a{i}") for i in range(7)] * 2
    result = ingest(engine, feed(3, alerts=twice))
    assert result.message is not None
    folded, suspect = result.message.split("; ")
    assert folded == (
        "7 duplicate items folded: 7 ids listed more than once, the last occurrence kept "
        "(waze:alert:a0, waze:alert:a1, waze:alert:a2, waze:alert:a3, waze:alert:a4 and 2 more)"
    )
    assert suspect.startswith("suspect feed") and "alert: 7 vs recent median 50" in suspect, "an id counts once"


def test_overlapping_sources_share_one_event(engine: Engine) -> None:
    north, south = waze("waze-north"), waze("waze-south")
    ingest(engine, feed(0, alerts=[alert("shared"), alert("north-only")]), north)
    result = ingest(engine, feed(0, alerts=[alert("shared"), alert("south-only")]), south)
    assert (result.new, result.unchanged) == (1, 1)
    assert set(status_of(engine)) == {"waze:alert:shared", "waze:alert:north-only", "waze:alert:south-only"}
    for poll in (1, 2, 3):  # the north area loses it, the south still sees it
        ingest(engine, feed(poll, alerts=[alert("north-only")]), north)
        ingest(engine, feed(poll, alerts=[alert("shared"), alert("south-only")]), south)
    assert status_of(engine)["waze:alert:shared"] == "active"
    for poll in (4, 5, 6):
        ingest(engine, feed(poll, alerts=[alert("south-only")]), south)
        ingest(engine, feed(poll, alerts=[alert("north-only")]), north)
    assert status_of(engine)["waze:alert:shared"] == "ended"


def test_bad_items_are_rejected_and_good_ones_stored(engine: Engine) -> None:
    data = (
        b'{"startTimeMillis": 1772463600000, "alerts": ['
        b'{"uuid": "ok", "type": "ACCIDENT", "location": {"x": -122.28, "y": 37.8}},'
        b'{"uuid": "nan", "type": "ACCIDENT", "location": {"x": NaN, "y": 37.8}},'
        b'{"uuid": "nul", "type": "ACCIDENT", "street": "a\\u0000b", "location": {"x": -122.28, "y": 37.8}},'
        b'{"uuid": "far", "type": "ACCIDENT", "location": {"x": -122.28, "y": 97.8}},'
        b'{"uuid": "typed", "type": ["ACCIDENT"], "location": {"x": -122.28, "y": 37.8}}]}'
    )
    result = ingest(engine, data)
    assert (result.new, result.rejected) == (1, 4)
    assert sorted(e.source_id for e in result.item_errors) == ["far", "nan", "nul", "typed"]
    assert list(status_of(engine)) == ["waze:alert:ok"]
    with engine.connect() as conn:
        stored = conn.execute(select(sync_runs.c.item_errors).where(sync_runs.c.id == result.run_id)).scalar_one()
    assert len(stored) == 4 and all(error["reason"] for error in stored)


def test_a_rejected_new_version_keeps_the_event_alive(engine: Engine) -> None:
    ingest(engine, feed(0, alerts=[alert("a1")]))
    for poll in (1, 2, 3, 4):
        result = ingest(engine, feed(poll, alerts=[alert("a1", street=["not", "text"])]))
        assert result.rejected == 1
    assert status_of(engine) == {"waze:alert:a1": "active"}


def test_an_unreadable_payload_records_a_failed_run_and_changes_nothing(engine: Engine) -> None:
    ingest(engine, feed(0, alerts=[alert("a1")]))
    before = dump(engine)
    with pytest.raises(MalformedPayload):
        ingest(engine, b'{"alerts": [{"uuid": ')
    assert dump(engine) == before
    with engine.connect() as conn:
        last = conn.execute(select(sync_runs).order_by(sync_runs.c.id.desc())).first()
    assert last is not None and last.status == "failed" and "malformed JSON" in last.message


@pytest.mark.parametrize("point", ["after-fetch", "mid-reconcile", "before-commit"])
def test_a_fault_mid_sync_leaves_the_store_as_it_was(
    engine: Engine, point: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest(engine, feed(0, alerts=[alert("a1"), alert("a2"), alert("gone")]))
    for poll in (1, 2):
        ingest(engine, feed(poll, alerts=[alert("a1"), alert("a2")]))
    before = dump(engine)
    monkeypatch.setenv("EXCHANGE_INJECT_FAULT", point)
    with pytest.raises(InjectedFault):
        ingest(engine, feed(3, alerts=[alert("a1", nThumbsUp=3), alert("new")]))
    assert dump(engine) == before
    with engine.connect() as conn:
        last = conn.execute(select(sync_runs).order_by(sync_runs.c.id.desc())).first()
    assert last is not None and last.status == "failed" and point in last.message
    monkeypatch.delenv("EXCHANGE_INJECT_FAULT")
    result = ingest(engine, feed(3, alerts=[alert("a1", nThumbsUp=3), alert("new")]))
    assert (result.new, result.updated, result.ended) == (1, 1, 1)


def test_a_killed_sync_leaves_the_store_as_it_was(store_url: str, tmp_path: Path) -> None:
    engine = open_store(store_url, auto_upgrade=True)
    ingest(engine, feed(0, alerts=[alert("a1"), alert("a2")]))
    before = dump(engine)
    snapshot = tmp_path / "poll.json"
    snapshot.write_bytes(feed(1, alerts=[alert("a1", nThumbsUp=5), alert("new")]))
    env = {**os.environ, "EXCHANGE_DATABASE_URL": store_url, "EXCHANGE_INJECT_FAULT": "before-commit:hang",
           "EXCHANGE_DATA_DIR": str(tmp_path)}
    with subprocess.Popen(
        [sys.executable, "-c", "from exchange.cli import main; main()", "replay", str(snapshot)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        line = process.stdout.readline()
        if b"fault point before-commit: hanging" not in line:
            process.kill()
            pytest.fail(f"the sync did not reach the fault point: {process.stderr.read()!r}")
        process.kill()
        process.wait(timeout=10)
    time.sleep(0.2)
    assert dump(engine) == before
    result = ingest(engine, snapshot.read_bytes())  # and the store is usable: no lock left behind
    assert (result.new, result.updated) == (1, 1)
    engine.dispose()


@pytest.mark.postgres
def test_a_large_batch_of_changes_takes_the_bulk_update_path(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """200+ changed events: on PostgreSQL one COPY into a scratch table and one UPDATE ... FROM."""
    from exchange.bulk import Bulk

    copied: list[tuple[str, int]] = []
    original_copy = Bulk._copy

    def spy(self: Bulk, table: str, columns: Any, rows: Any) -> None:
        copied.append((table, len(rows)))
        original_copy(self, table, columns, rows)

    monkeypatch.setattr(Bulk, "_copy", spy)
    engine = open_store(pg_url, auto_upgrade=True)
    try:
        n = 250
        ingest(engine, feed(0, alerts=[alert(f"a{i}") for i in range(n)]))
        copied.clear()
        result = ingest(engine, feed(1, alerts=[alert(f"a{i}", street=f"Street {i}", reliability=9) for i in range(n)]))
        assert (result.updated, result.new, result.unchanged) == (n, 0, 0)
        assert any(table.startswith("bulk_events_") and size == n for table, size in copied), copied
        with engine.connect() as conn:
            stored = {row.id: (row.street, row.reliability) for row in conn.execute(select(events))}
            changed = conn.execute(select(revisions.c.changes).where(revisions.c.action == "updated")).scalars().all()
        assert stored == {f"waze:alert:a{i}": (f"Street {i}", 9) for i in range(n)}
        assert len(changed) == n and all(change["street"][0] == "7th Street" for change in changed)
    finally:
        engine.dispose()
