"""Retention: what the store no longer needs goes (``exchange db prune``, and the daemon once a day).

The limits are :class:`~exchange.config.RetentionConfig` (``[retention]``), in days; 0 keeps that kind
of row forever. One :func:`prune` removes, in this order:

1. **city events** ended or cancelled more than ``city_events_days`` ago (only when set: by default
   closures and their whole history are kept), never one the current publication holds
   (``published_events``), with their revisions, sightings and confirmations;
2. **crowd events** (Waze) ended or cancelled more than ``ended_crowd_days`` ago, with their
   revisions and sightings, never one linked (``confirmations``) as the confirmation of a city event
   that is kept;
3. **revisions** older than ``revisions_days`` of the crowd events that stay (an active jam keeps
   its row, not a month of its history), never those of city events nor of crowd events that
   confirm a kept city event;
4. **sync runs** older than ``sync_runs_days``, never a source's newest (health reads it); the
   revisions that named a run keep their time and lose the run's id;
5. **publish runs** older than ``publish_runs_days``, never the newest (it says what is held back);
6. **notifications** older than ``notifications_days``, never the newest of a subject (the watcher
   reads it to know what it already told: nothing is told twice).

Publications (the feeds served), partners, downloads, sources and the schedule are never pruned.
"Ended ... ago" is the time the event was last written (``updated_ms``: its end, or a later change).

Rows go in batches of ``batch_rows``, each batch its own short transaction, so a first prune of a
store that grew for a year never holds the write lock (SQLite) or one huge transaction
(PostgreSQL) while polls wait; a prune stopped half-way has removed whole batches, never half of
an event. A dry run counts the same rows and changes nothing.

Space: SQLite reuses the pages freed for new rows, so a pruned store stops growing but its file
keeps its size; :func:`reclaim` (``exchange db prune --vacuum``) rewrites it (``VACUUM``, which
needs as much free disk as the store and makes writers wait while it runs). On PostgreSQL
autovacuum makes the space reusable; :func:`reclaim` runs ``VACUUM (ANALYZE)`` on the pruned tables
at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    delete,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError

from exchange.config import RetentionConfig
from exchange.db import db_error_message, writing
from exchange.errors import StoreError
from exchange.schema import (
    confirmations,
    events,
    notifications,
    publish_runs,
    published_events,
    revisions,
    sightings,
    sync_runs,
)

__all__ = ["DAY_MS", "PRUNED", "PruneResult", "prune", "reclaim"]

DAY_MS = 86_400_000
#: what a prune counts, in the order it goes
PRUNED = ("city_events", "crowd_events", "revisions", "sightings", "confirmations", "sync_runs", "publish_runs",
          "notifications")
_ENDED = ("ended", "cancelled")
#: the tables a prune deletes from (what ``reclaim`` vacuums on PostgreSQL)
_TABLES = ("events", "revisions", "sightings", "confirmations", "sync_runs", "publish_runs", "notifications")


@dataclass
class PruneResult:
    """Rows removed per kind (or, in a dry run, that would be), and the limits that applied."""

    at_ms: int
    dry_run: bool
    cutoffs: dict[str, int | None] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PRUNED, 0))
    batches: int = 0
    seconds: float = 0.0
    #: SQLite: bytes of free pages after the prune, reused by new rows (``--vacuum`` gives them back)
    reusable_bytes: int | None = None

    def counts(self) -> dict[str, int]:
        return dict(self.deleted)

    @property
    def total(self) -> int:
        return sum(self.deleted.values())

    def summary(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        parts = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in self.deleted.items() if count)
        return f"prune {verb} {parts or 'nothing'}" + ("" if self.dry_run else f" in {self.seconds:.1f} s")


def _cutoff(now_ms: int, days: int) -> int | None:
    return now_ms - days * DAY_MS if days > 0 else None


class _Plan:
    """The conditions of one prune: which event rows, revisions and runs go, at ``now_ms``."""

    def __init__(self, retention: RetentionConfig, now_ms: int) -> None:
        self.city = _cutoff(now_ms, retention.city_events_days)
        self.crowd = _cutoff(now_ms, retention.ended_crowd_days)
        self.revisions = _cutoff(now_ms, retention.revisions_days)
        self.sync_runs = _cutoff(now_ms, retention.sync_runs_days)
        self.publish_runs = _cutoff(now_ms, retention.publish_runs_days)
        self.notifications = _cutoff(now_ms, retention.notifications_days)

    def cutoffs(self) -> dict[str, int | None]:
        return {"city_events": self.city, "crowd_events": self.crowd, "revisions": self.revisions,
                "sync_runs": self.sync_runs, "publish_runs": self.publish_runs,
                "notifications": self.notifications}

    @staticmethod
    def _ended_before(table: Any, cutoff: int) -> ColumnElement[bool]:
        return and_(table.c.status.in_(_ENDED), table.c.updated_ms < cutoff,
                    or_(table.c.end_ms.is_(None), table.c.end_ms < cutoff))

    @staticmethod
    def _unpublished(table: Any) -> ColumnElement[bool]:
        return ~exists().where(published_events.c.event_id == table.c.id)

    def city_goes(self, table: Any) -> ColumnElement[bool]:
        """The city events of ``table`` (events or an alias) that go."""
        if self.city is None:
            return literal(False)
        return and_(table.c.origin == "city", self._ended_before(table, self.city), self._unpublished(table))

    def confirms_kept(self, table: Any) -> ColumnElement[bool]:
        """The events of ``table`` linked as the confirmation of a city event that stays."""
        city = events.alias("confirmed")
        return exists().where(
            confirmations.c.crowd_event_id == table.c.id,
            city.c.id == confirmations.c.city_event_id,
            not_(self.city_goes(city)),
        )

    def crowd_goes(self, table: Any) -> ColumnElement[bool]:
        if self.crowd is None:
            return literal(False)
        return and_(table.c.origin != "city", self._ended_before(table, self.crowd), self._unpublished(table),
                    not_(self.confirms_kept(table)))

    def revision_goes(self) -> ColumnElement[bool]:
        """Revisions that go by age (those of the events that go are counted with them)."""
        assert self.revisions is not None
        return and_(revisions.c.at_ms < self.revisions, events.c.origin != "city",
                    not_(self.confirms_kept(events)), not_(self.crowd_goes(events)))


def prune(engine: Engine, retention: RetentionConfig, now_ms: int, *, dry_run: bool = False,
          progress: Callable[[str], None] | None = None) -> PruneResult:
    """Remove what the retention limits say the store no longer needs (module doc); a dry run only counts.

    The daemon calls it once a day and logs ``result.summary()``; ``progress`` hears the name of each
    step as it starts. Raises ``StoreError`` when the store fails; the batches committed before stay removed.
    """
    started = time.perf_counter()
    plan = _Plan(retention, now_ms)
    result = PruneResult(at_ms=now_ms, dry_run=dry_run, cutoffs=plan.cutoffs())
    steps: list[tuple[str, Callable[[], None]]] = [
        ("city events", lambda: _events(engine, plan.city_goes(events), "city_events", result, retention, dry_run)),
        ("crowd events", lambda: _events(engine, plan.crowd_goes(events), "crowd_events", result, retention,
                                          dry_run)),
    ]
    if plan.revisions is not None:
        steps.append(("revisions", lambda: _rows(
            engine, revisions.c.id,
            lambda: select(revisions.c.id).join(events, events.c.id == revisions.c.event_id)
            .where(plan.revision_goes()),
            "revisions", result, retention, dry_run)))
    if plan.sync_runs is not None:
        cutoff = plan.sync_runs
        steps.append(("sync runs", lambda: _rows(
            engine, sync_runs.c.id,
            lambda: select(sync_runs.c.id).where(sync_runs.c.started_ms < cutoff, sync_runs.c.id.not_in(
                select(func.max(sync_runs.c.id)).group_by(sync_runs.c.source).scalar_subquery())),
            "sync_runs", result, retention, dry_run)))
    if plan.publish_runs is not None:
        cutoff_p = plan.publish_runs
        steps.append(("publish runs", lambda: _rows(
            engine, publish_runs.c.id,
            lambda: select(publish_runs.c.id).where(
                publish_runs.c.at_ms < cutoff_p,
                publish_runs.c.id < select(func.max(publish_runs.c.id)).scalar_subquery()),
            "publish_runs", result, retention, dry_run)))
    if plan.notifications is not None:
        cutoff_n = plan.notifications
        newer = notifications.alias("newer")
        steps.append(("notifications", lambda: _rows(
            engine, notifications.c.key,
            lambda: select(notifications.c.key).where(
                notifications.c.sent_ms < cutoff_n,
                exists().where(newer.c.kind == notifications.c.kind, newer.c.subject == notifications.c.subject,
                               newer.c.sent_ms > notifications.c.sent_ms)),
            "notifications", result, retention, dry_run)))
    for name, step in steps:
        if progress is not None:
            progress(name)
        try:
            step()
        except SQLAlchemyError as exc:
            done = "" if dry_run else f"; {result.total} row(s) deleted before it stopped stay deleted"
            raise StoreError(f"prune failed at the {name}: {db_error_message(exc)}{done}") from exc
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            free = conn.exec_driver_sql("PRAGMA freelist_count").scalar_one()
            page = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
        result.reusable_bytes = int(free) * int(page)
    result.seconds = time.perf_counter() - started
    return result


def _events(engine: Engine, goes: ColumnElement[bool], kind: str, result: PruneResult,
            retention: RetentionConfig, dry_run: bool) -> None:
    """Events that go, each with its revisions, sightings and confirmations, a batch per transaction."""
    chosen = select(events.c.id).where(goes)
    if dry_run:
        with engine.connect() as conn:
            ids = chosen.scalar_subquery()
            result.deleted[kind] += _count(conn, select(func.count()).select_from(events).where(goes))
            result.deleted["revisions"] += _count(conn, select(func.count()).select_from(revisions)
                                                  .where(revisions.c.event_id.in_(ids)))
            result.deleted["sightings"] += _count(conn, select(func.count()).select_from(sightings)
                                                  .where(sightings.c.event_id.in_(ids)))
            result.deleted["confirmations"] += _count(conn, select(func.count()).select_from(confirmations).where(
                or_(confirmations.c.city_event_id.in_(ids), confirmations.c.crowd_event_id.in_(ids))))
        return
    batch = retention.batch_rows
    while True:
        with writing(engine) as conn:
            found = list(conn.execute(chosen.order_by(events.c.updated_ms).limit(batch)).scalars())
            if not found:
                return
            result.deleted["revisions"] += _delete(conn, revisions.c.event_id, found)
            result.deleted["sightings"] += _delete(conn, sightings.c.event_id, found)
            result.deleted["confirmations"] += _delete(conn, confirmations.c.city_event_id, found)
            result.deleted["confirmations"] += _delete(conn, confirmations.c.crowd_event_id, found)
            result.deleted[kind] += _delete(conn, events.c.id, found)
        result.batches += 1
        if len(found) < batch:
            return


def _rows(engine: Engine, key: Any, chosen: Callable[[], Any], kind: str, result: PruneResult,
          retention: RetentionConfig, dry_run: bool) -> None:
    """Rows of one table that go, in ``key`` order, a batch per transaction (each batch goes on
    after the last key of the one before: one pass over the table, whatever stays)."""
    if dry_run:
        with engine.connect() as conn:
            result.deleted[kind] += _count(conn, select(func.count()).select_from(chosen().subquery()))
        return
    batch = retention.batch_rows
    last: Any = None
    while True:
        query = chosen()
        if last is not None:
            query = query.where(key > last)
        with writing(engine) as conn:
            found = list(conn.execute(query.order_by(key).limit(batch)).scalars())
            if not found:
                return
            result.deleted[kind] += _delete(conn, key, found)
        result.batches += 1
        last = found[-1]
        if len(found) < batch:
            return


def _count(conn: Connection, query: Any) -> int:
    return int(conn.execute(query).scalar_one())


def _delete(conn: Connection, column: Any, values: Sequence[Any]) -> int:
    deleted = conn.execute(delete(column.table).where(column.in_(values))).rowcount
    return int(deleted or 0)


def reclaim(engine: Engine) -> str:
    """Give the space of what was pruned back: SQLite ``VACUUM`` (then the WAL truncated), PostgreSQL
    ``VACUUM (ANALYZE)`` of the pruned tables. Returns what was done, for a one-line report."""
    try:
        if engine.dialect.name == "sqlite":
            raw = engine.raw_connection()  # autocommit (no BEGIN): VACUUM cannot run in a transaction
            try:
                cursor = raw.cursor()
                cursor.execute("VACUUM")
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                cursor.close()
            finally:
                raw.close()
            return "VACUUM: the file was rewritten without its free pages"
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in _TABLES:
                conn.execute(text(f'VACUUM (ANALYZE) "{table}"'))
        return "VACUUM (ANALYZE) of " + ", ".join(_TABLES)
    except SQLAlchemyError as exc:
        raise StoreError(f"vacuum failed: {db_error_message(exc)}") from exc
