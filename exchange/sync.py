"""The sync pipeline: fetch -> read -> reconcile in one transaction -> record the run.

``sync_source`` (``exchange sync``, the daemon) and ``ingest_payload`` (``exchange replay``) share
everything after the fetch. A fetch or read failure, or any error while reconciling, leaves the
store exactly as it was and records a failed run; a killed process leaves it as it was too,
since nothing is committed before the end.

One bad item never aborts a poll: the codecs reject what the store could not keep (``feeds/``),
and an item whose conversion fails in a way nothing foresaw is rejected too, with
``cannot be converted: <ExceptionType>: <message>``. Any other unforeseen exception in a run is
recorded as a failed run with a one-line message and raised as ``InternalError``; the traceback
goes to the log at DEBUG level.

After each poll of a city source, in the same transaction, the events that are one closure
reported by two sources are linked again (:mod:`exchange.same_closure`): each item's value under
the source's ``match_key`` is kept with its event, and the source's ``priority`` with the source.
"""

from __future__ import annotations

import itertools
import logging
import statistics
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import Connection, Engine, insert, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from adapters.base import Source, Watermark
from exchange.bulk import Bulk, loads
from exchange.config import LifecycleConfig
from exchange.confirm import link_confirmations, observe_waze
from exchange.db import db_error_message, take_turns, writing
from exchange.errors import (
    ExchangeError,
    FetchError,
    FetchStopped,
    InternalError,
    ItemOutOfScope,
    ItemRejected,
    StoreError,
)
from exchange.model import Event, ItemError, Kind, Origin, Status, event_id, from_millis, shown_text, to_millis
from exchange.overrides import details_of, keep_overrides, row_of
from exchange.runtime import collector_paused, fault_point, now_ms, stop_requested
from exchange.same_closure import CITY_EVENTS_LOCK, relink
from exchange.schema import events, sightings, sources, sync_runs
from exchange.store import (
    EVENT_COLUMNS,
    UPDATE_COLUMNS,
    crowd_revision,
    diff_rows,
    event_to_row,
    event_values,
    insert_revisions,
)
from feeds.items import FeedItem, Snapshot

if TYPE_CHECKING:  # the geometry stack (numpy, shapely, pyproj) loads only when a network is configured
    from exchange.placement import Placement

__all__ = ["SUSPECT_NOTE", "SyncResult", "convert_item", "ingest_payload", "sync_source"]

log = logging.getLogger("exchange.sync")

#: how a run's message says the poll held far fewer items than usual (the source's health reads it)
SUSPECT_NOTE = "suspect feed"
#: a poll placing at least this many events, none in the network's area, is warned of
_OFF_THE_NETWORK_AT_LEAST = 10

#: how many of the ids listed twice in one snapshot the run's message names
DUPLICATES_SHOWN = 5

@dataclass
class SyncResult:
    source: str
    status: str
    run_id: int | None = None
    snapshot_ms: int | None = None
    fetched: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    ended: int = 0
    rejected: int = 0
    item_errors: list[ItemError] = field(default_factory=list)
    message: str | None = None
    #: city events linked to, or unlinked from, the same closure another source reports (not a column of the run)
    relinked: int = 0
    #: new city events whose end had passed when they were read: stored, never published (not a column)
    already_over: int = 0
    #: of ``ended``, city events gone from their source before their start: cancelled (not a column)
    cancelled: int = 0

    @property
    def changed(self) -> bool:
        """Whether the poll changed what the feeds carry (events new, updated, ended or linked anew)."""
        return bool(self.new or self.updated or self.ended or self.relinked)

    def counts(self) -> dict[str, int]:
        return {
            "fetched": self.fetched, "new": self.new, "updated": self.updated,
            "unchanged": self.unchanged, "ended": self.ended, "rejected": self.rejected,
        }

    def summary(self) -> str:
        parts = ", ".join(f"{value} {name}" + (f" ({self.cancelled} of them gone before their start: cancelled)"
                                                if name == "ended" and self.cancelled else "")
                          for name, value in self.counts().items())
        skipped = sum(1 for error in self.item_errors if error.out_of_scope)
        if skipped:
            parts += f" ({skipped} of them of a kind this source does not read)"
        if self.already_over:
            parts += f"; {self.already_over} of the new already over when read: stored, never published"
        note = f" ({self.message})" if self.message else ""
        return f"{self.source}: {self.status}: {parts}{note}"


# --------------------------------------------------------------------------- entry points


def sync_source(
    engine: Engine, source: Source, lifecycle: LifecycleConfig, placement: Placement | None = None
) -> SyncResult:
    """Poll one source and reconcile what it returned."""
    started = now_ms()
    watermark = _load_watermark(engine, source)
    try:
        fetched = source.fetch(watermark)
    except FetchError as exc:
        # a fetch cut short by the daemon's stop says nothing of the upstream
        if not (isinstance(exc, FetchStopped) or stop_requested()):
            _record_failure(engine, source, started, str(exc.message), "fetch")
        raise
    except ExchangeError:
        raise
    except Exception as exc:
        raise _unexpected_failure(engine, source, started, "fetching", exc, "fetch") from exc
    if fetched.body is None:
        # 304 Not Modified: the same payload as the last one read. Everything it listed is still
        # listed (nothing is reset); what it no longer listed is missed once more, as a 200 with the
        # same bytes would be, so a removal behind a caching server still ends on time
        result = SyncResult(source=source.name, status="not-modified")
        with writing(engine, lock=f"source:{source.name}") as conn:
            reranked = _ensure_source(conn, source, started)
            result.run_id = _insert_run(conn, source.name, started, result)
            if not source.time_identifies_snapshot:
                reconciler = Reconciler(conn, source, lifecycle, started, placement)
                reconciler.result = result
                reconciler.miss_again(relink=reranked)
                conn.execute(update(sync_runs).where(sync_runs.c.id == result.run_id)
                             .values(**_run_values(result, started)))
        return result
    return ingest_payload(
        engine, source, fetched.body, lifecycle, started_ms=started,
        watermark=Watermark(fetched.etag, fetched.last_modified), placement=placement,
    )


def ingest_payload(
    engine: Engine,
    source: Source,
    body: bytes,
    lifecycle: LifecycleConfig,
    *,
    started_ms: int | None = None,
    watermark: Watermark | None = None,
    placement: Placement | None = None,
) -> SyncResult:
    """Read ``body`` with the source's codec and reconcile it in one transaction."""
    with collector_paused():
        return _ingest(engine, source, body, lifecycle, started_ms, watermark, placement)


def _ingest(
    engine: Engine,
    source: Source,
    body: bytes,
    lifecycle: LifecycleConfig,
    started_ms: int | None,
    watermark: Watermark | None,
    placement: Placement | None,
) -> SyncResult:
    started = started_ms if started_ms is not None else now_ms()
    try:
        fault_point("after-fetch")
        snapshot = source.read(body)
    except ExchangeError as exc:
        _record_failure(engine, source, started, exc.message, "payload")
        raise
    except Exception as exc:
        raise _unexpected_failure(engine, source, started, "reading the payload", exc, "payload") from exc
    try:
        with writing(engine, lock=f"source:{source.name}") as conn:
            _ensure_source(conn, source, started)
            result = Reconciler(conn, source, lifecycle, started, placement).run(snapshot)
            fault_point("before-commit")
            if watermark is not None and result.status != "history":
                conn.execute(
                    update(sources).where(sources.c.name == source.name)
                    .values(etag=watermark.etag, last_modified=watermark.last_modified)
                )
    except (SQLAlchemyError, ExchangeError) as exc:
        reason = db_error_message(exc)
        _record_failure(engine, source, started, reason, "store")
        if isinstance(exc, ExchangeError):
            raise
        raise StoreError(f"sync of {source.name} failed, nothing was changed: {reason}") from exc
    except Exception as exc:
        raise _unexpected_failure(engine, source, started, "reconciling", exc, "internal") from exc
    return result


# --------------------------------------------------------------------------- reconciliation


#: the stored statuses of an event called off: ended or cancelled (by an operator, or by its source leaving it)
_CALLED_OFF = frozenset({Status.ENDED.value, Status.CANCELLED.value})


def _hold_called_off(new_row: dict[str, Any], old_row: Mapping[str, Any]) -> None:
    """The source's new version of an event an operator called off, with the operator's decision kept:
    cancelled stays cancelled; ended stays ended at the operator's end, unless the source now starts
    it at or after that end (then it never started: cancelled, as ``closure end`` does before a start)."""
    status, ended_at = old_row["status"], old_row["end_ms"]
    if status == Status.ENDED.value and not (new_row["start_ms"] is not None and ended_at is not None
                                             and new_row["start_ms"] >= ended_at):
        new_row["status"], new_row["end_ms"] = status, ended_at
        if new_row["details"] is not None:  # the operator's end is as verified as the operator said
            new_row["details"]["end_date_verified"] = bool(details_of(old_row).get("end_date_verified"))
    else:
        new_row["status"] = Status.CANCELLED.value


class _Stored(NamedTuple):
    """What the reconciliation reads of a stored event."""

    digest: str
    status: str
    match_id: str | None


class Reconciler:
    """Reconciles one snapshot with the store, inside the caller's transaction.

    Reads and writes go through :class:`~exchange.bulk.Bulk`: one query for the state of the
    events this source sees, one ``executemany`` per kind of write.
    """

    def __init__(
        self,
        conn: Connection,
        source: Source,
        lifecycle: LifecycleConfig,
        started_ms: int,
        placement: Placement | None = None,
    ) -> None:
        self.conn = conn
        self.placement = placement
        self.db = Bulk(conn)
        self.source = source
        source.street_at = placement.street_at if placement is not None else None
        self.lifecycle = lifecycle
        self.now = started_ms
        self.result = SyncResult(source=source.name, status="ok")
        self.values_checked = False

    def run(self, snapshot: Snapshot) -> SyncResult:
        result = self.result
        result.snapshot_ms = snapshot.taken_ms
        result.fetched = len(snapshot.items) + len(snapshot.errors)
        result.item_errors.extend(snapshot.errors)
        self.values_checked = snapshot.values_checked
        state = self.conn.execute(
            select(sources.c.newest_snapshot_ms, sources.c.recent_counts, sources.c.last_success_ms)
            .where(sources.c.name == self.source.name)
        ).one()
        newest = state.newest_snapshot_ms
        taken = snapshot.taken_ms
        # only a feed whose time identifies its snapshot (Waze) has duplicates and history; a city
        # feed's timestamp can stay put while features are removed, so every payload read is a poll
        timed = self.source.time_identifies_snapshot and taken is not None and newest is not None
        if timed and taken == newest:
            result.status, result.unchanged = "duplicate", len(snapshot.items)
            result.message = "this snapshot was already reconciled; nothing changed"
            result.run_id = _insert_run(self.conn, self.source.name, self.now, result)
            return result
        history = timed and taken is not None and newest is not None and taken < newest
        if history:
            result.status = "history"
            self._note("older than the newest snapshot: stored as history only")
        result.run_id = _insert_run(self.conn, self.source.name, self.now, result)

        items = self._identify(snapshot.items)
        city = Kind.CITY in snapshot.kinds_present
        if city:
            take_turns(self.conn, CITY_EVENTS_LOCK)
        known, mine = self._state(items)
        self._apply_items(items, known, {} if history else mine, history=history, taken=taken)
        fault_point("mid-reconcile")
        if not history:
            listed = Counter(item.kind for item in items.values())  # an id listed twice counts once
            counts = {kind.value: listed[kind] for kind in snapshot.kinds_present}
            suspect = self._suspect_kinds(counts, state.recent_counts or {})
            # when the events now missing were last seen: the snapshot before this one for Waze,
            # the last poll that read a payload for a city source (its own timestamp may be stale)
            last_seen = newest if self.source.time_identifies_snapshot else self._last_listing(state.last_success_ms)
            self._age_missing(items, mine, snapshot.kinds_present - suspect, last_seen)
            self._update_source(counts, state.recent_counts or {}, taken, newest)
            if self.placement is not None:
                self._cluster()
                if self.source.time_identifies_snapshot and taken is not None:
                    # a Waze poll is observed at its snapshot's time (a replay of March says March)
                    observe_waze(self.conn, taken, zone=self.source.zone, linked_ms=self.now)
                else:
                    link_confirmations(self.conn, self.now, self.source.zone)
            if city:
                self._relink()
        result.rejected = len(result.item_errors)
        broken = [error for error in result.item_errors if not error.out_of_scope]
        read_kinds = result.fetched - (result.rejected - len(broken))  # items of the kinds this source reads
        every_one = every_item_rejected([error.reason for error in broken], read_kinds)
        if not history and every_one:
            message = f"{SUSPECT_NOTE}: {every_one}"
            self._note(message)
            log.warning("%s: %s", self.source.name, message)
        self.conn.execute(
            update(sync_runs).where(sync_runs.c.id == result.run_id).values(**_run_values(result, self.now))
        )
        return result

    def _note(self, message: str) -> None:
        """Add one note to the run's message (several can apply to one poll)."""
        self.result.message = f"{self.result.message}; {message}" if self.result.message else message

    def _identify(self, feed_items: list[FeedItem]) -> dict[str, FeedItem]:
        """The snapshot's items by event id; an id listed twice keeps its last occurrence, counted in the message."""
        items: dict[str, FeedItem] = {}
        repeated: dict[str, None] = {}  # ordered: the ids in the order their first repeat appears
        for item in feed_items:
            eid = event_id(self.source.namespace, item.kind, item.source_id)
            if eid in items:
                repeated[eid] = None
            items[eid] = item
        if repeated:
            folded = len(feed_items) - len(items)
            shown = list(repeated)[:DUPLICATES_SHOWN]
            more = f" and {len(repeated) - len(shown)} more" if len(repeated) > len(shown) else ""
            message = (
                f"{folded} duplicate item{'s' if folded != 1 else ''} folded: {len(repeated)} "
                f"id{'s' if len(repeated) != 1 else ''} listed more than once, the last occurrence kept "
                f"({', '.join(shown)}{more})"
            )
            self._note(message)
            log.warning("%s: %s", self.source.name, message)
        return items

    # -- reading state

    def _state(self, items: dict[str, FeedItem]) -> tuple[dict[str, _Stored], dict[str, int]]:
        """What is stored of the events among ``items``, and this source's sightings.

        The events this source already sees come with its sightings in one query; only the rest
        (new items, ended events coming back) are looked up by id.
        """
        known: dict[str, _Stored] = {}
        mine: dict[str, int] = {}
        rows = self.db.fetch(
            "SELECT s.event_id, s.missed, e.digest, e.status, e.match_id FROM sightings s "
            "JOIN events e ON e.id = s.event_id WHERE s.source_name = ?",
            (self.source.name,),
        )
        for eid, missed, digest, status, match_id in rows:
            mine[eid] = missed
            known[eid] = _Stored(digest, status, match_id)
        rest = [eid for eid in items if eid not in known]
        for eid, *stored in self.db.where_in("SELECT id, digest, status, match_id FROM events WHERE", "id", rest):
            known[eid] = _Stored(*stored)
        return known, mine

    # -- items present in the snapshot

    def _convert(self, item: FeedItem) -> Event | None:
        """The item's event, or ``None`` with an item error: one item's failure never aborts the poll."""
        converted = convert_item(self.source, item, values_checked=self.values_checked)
        if isinstance(converted, Event):
            return converted
        self.result.item_errors.append(ItemError(kind=item.kind.value, source_id=item.source_id, step="convert",
                                                 reason=converted, out_of_scope=isinstance(converted, OutOfScope)))
        return None

    def _match_id(self, item: FeedItem) -> str | None:
        """The item's value under the source's ``match_key``; None, never a rejection, when it has
        none or reading it fails (a source class of a city's own may read its records otherwise)."""
        try:
            return self.source.match_id(item)
        except Exception as exc:
            log.debug("%s: item %s: no match id: %s", self.source.name, item.source_id[:200], _one_line(exc))
            return None

    def _apply_items(
        self,
        items: dict[str, FeedItem],
        known: dict[str, _Stored],
        mine: dict[str, int],
        *,
        history: bool,
        taken: int | None,
    ) -> None:
        result = self.result
        inserts: list[Event] = []
        changed: dict[str, Event] = {}
        reopened: list[str] = []
        called_off: set[str] = set()
        new_sightings: list[str] = []
        reset_sightings: list[str] = []
        match_ids = {eid: self._match_id(item) for eid, item in items.items()}
        for eid, item in items.items():
            previous = known.get(eid)
            if previous is None:
                event = self._convert(item)
                if event is None:
                    continue
                if history:
                    event.status = Status.ENDED
                    event.end_time = from_millis(taken) if taken is not None else None
                    if event.end_time is not None and event.start_time is not None:
                        # Waze's snapshot time is its minute: an item published seconds into it is later
                        event.end_time = max(event.end_time, event.start_time)
                inserts.append(event)
                result.new += 1
                if (not history and event.end_time is not None and _kind_of(eid) == Kind.CITY.value
                        and to_millis(event.end_time) < self.now):
                    result.already_over += 1
            elif history:
                result.unchanged += 1
                continue
            elif previous.digest != item.digest:
                event = self._convert(item)
                if event is not None:  # a rejected new version still shows the event is alive
                    changed[eid] = event
                    if previous.status in _CALLED_OFF and eid in mine and _kind_of(eid) == Kind.CITY.value:
                        called_off.add(eid)  # by an operator, while its source lists it: that holds
            elif previous.status in _CALLED_OFF and eid not in mine:
                # back in a source that had lost it (ending removed its sightings); an event an
                # operator ended or cancelled while its source still lists it stays so
                reopened.append(eid)
            else:
                result.unchanged += 1
            if history:
                continue
            missed = mine.get(eid)
            if missed is None:
                new_sightings.append(eid)
            elif missed:
                reset_sightings.append(eid)

        if self.placement is not None:
            placed = [*inserts, *changed.values()]
            self.placement.match(placed)
            self._say_if_off_the_network(placed)
        if inserts:
            rows = [{**event_to_row(event, now_ms=self.now), "match_id": match_ids[event.id]} for event in inserts]
            self.db.insert(events, EVENT_COLUMNS, (event_values(row, EVENT_COLUMNS) for row in rows))
            self._revisions([event.id for event in inserts], "history" if history else "created")
        if changed:
            self._update_changed(changed, called_off=called_off)
        if reopened:
            self._reopen({eid: items[eid] for eid in reopened})
        if not history:  # a match id follows its record, and the source's match_key, which may have changed
            self.db.update(events, ("match_id",), "id", [
                (match_id, eid) for eid, match_id in match_ids.items()
                if eid in known and known[eid].match_id != match_id
            ])
        name = self.source.name
        self.db.insert(sightings, ("event_id", "source_name", "missed", "missing_since_ms"),
                       [(eid, name, 0, None) for eid in new_sightings])
        self.db.many("UPDATE sightings SET missed=0, missing_since_ms=NULL WHERE event_id=? AND source_name=?",
                     [(eid, name) for eid in reset_sightings])

    def _reopen(self, items: dict[str, FeedItem]) -> None:
        """Active again, with the end its source gives (ending had replaced it with the time it went missing)."""
        back = {eid: event for eid, item in items.items() if (event := self._convert(item)) is not None}
        if self.placement is not None and back:
            # placed again: the road network may have changed while it was gone
            self.placement.match(list(back.values()))
        for event in back.values():
            event.status = Status.ACTIVE
        self._update_changed(back, "reopened")

    def _update_changed(self, changed: dict[str, Event], action: str = "updated",
                        called_off: set[str] | frozenset[str] = frozenset()) -> None:
        """Write the new versions of stored events, each with a revision of what changed.

        An event in ``called_off`` (an operator ended or cancelled it while its source still lists
        it) takes the source's new version with the operator's decision kept (:func:`_hold_called_off`):
        the source's next edit of a description must not put a closure the city called off back into
        the feeds.

        A crowd report's revision records what an operator follows, not its measures
        (:func:`~exchange.store.crowd_revision`): an update of its speed, delay, thumbs-up or a
        position that only jittered rewrites the row and writes no revision. A city event's
        revision records every change.
        """
        old_rows = {
            row[0]: row
            for row in self.db.where_in(f"SELECT {','.join(EVENT_COLUMNS)} FROM events WHERE", "id", list(changed))
        }
        updates: list[tuple[Any, ...]] = []
        overruled: list[str] = []  # an operator's changes of an import that the source's new version replaced
        revised: list[str] = []
        diffs: list[dict[str, Any]] = []
        for eid, event in changed.items():
            new_row = event_to_row(event, now_ms=self.now)
            if event.origin is Origin.CITY:
                old_row = row_of(EVENT_COLUMNS, old_rows[eid])
                replaced = keep_overrides(new_row, old_row, called_off=eid in called_off)
                if replaced:
                    overruled.append(f"{eid} ({', '.join(replaced)})")
                if eid in called_off:
                    _hold_called_off(new_row, old_row)
            changes = diff_rows(old_rows[eid], new_row)
            if event.origin is Origin.CROWD:
                changes = crowd_revision(changes)
            if changes or action != "updated":
                revised.append(eid)
                diffs.append(changes)
            updates.append((*event_values(new_row, UPDATE_COLUMNS), eid))
        self.db.update(events, UPDATE_COLUMNS, "id", updates)
        self._revisions(revised, action, diffs)
        self.result.updated += len(changed)
        if overruled:
            message = (f"the source changed what an operator had changed of {len(overruled)} closure(s), its new "
                       f"value now stands: {'; '.join(overruled[:3])}{' ...' if len(overruled) > 3 else ''}")
            self._note(message)
            log.warning("%s: %s", self.source.name, message)

    def _say_if_off_the_network(self, placed: list[Event]) -> None:
        """Warn when none of a poll's many new or changed events lies in the road network's area: the
        network configured is most likely not this source's city (each event alone only says so)."""
        from exchange.placement import OUTSIDE_THE_NETWORK

        outside = sum(1 for event in placed if event.road_match is not None
                      and event.road_match.reason == OUTSIDE_THE_NETWORK)
        if outside >= _OFF_THE_NETWORK_AT_LEAST and outside == len(placed):
            message = (f"none of its {outside} new or changed events lies in the road network's area: is [network] "
                       "the network of this source's city?")
            self._note(message)
            log.warning("%s: %s", self.source.name, message)

    def _revisions(self, ids: list[str], action: str, changes: list[Any] | None = None) -> None:
        insert_revisions(self.db, ids, action, at_ms=self.now, run_id=self.result.run_id, changes=changes)

    # -- items missing from the snapshot

    def _last_listing(self, last_success_ms: int | None) -> int | None:
        """When a city source last read a payload that listed its events: its last good run that was not
        suspect (a header-only export lists nothing, so what goes missing after it was last listed
        before it), or a 304 after that run and before the next payload read (it repeats that payload)."""
        runs = sync_runs.c
        mine = (runs.source == self.source.name) & (runs.id != self.result.run_id)
        listing = self.conn.execute(
            select(runs.id, runs.started_ms).where(
                mine, runs.status == "ok", or_(runs.message.is_(None), ~runs.message.contains(SUSPECT_NOTE)),
            ).order_by(runs.id.desc()).limit(1)
        ).first()
        if listing is None:
            return last_success_ms
        after = self.conn.execute(
            select(runs.started_ms, runs.status)
            .where(mine, runs.id > listing.id, runs.status.in_(("ok", "not-modified"))).order_by(runs.id)
        ).all()
        repeats = list(itertools.takewhile(lambda run: run.status == "not-modified", after))
        return int(repeats[-1].started_ms if repeats else listing.started_ms)

    def _suspect_kinds(self, counts: dict[str, int], recent: dict[str, list[int]]) -> set[Kind]:
        suspect: set[Kind] = set()
        notes: list[str] = []
        for kind, count in counts.items():
            history = recent.get(kind) or []
            if not history:
                continue
            median = statistics.median(history)
            if median > 0 and (count == 0 or count < self.lifecycle.suspect_ratio * median):
                suspect.add(Kind(kind))
                notes.append(f"{kind}: {count} vs recent median {median:g}")
        if notes:
            message = f"{SUSPECT_NOTE}, nothing of that kind ended (" + "; ".join(notes) + ")"
            self._note(message)
            log.warning("%s: %s", self.source.name, message)
        return suspect

    def _age_missing(
        self, items: dict[str, FeedItem], mine: dict[str, int], kinds: frozenset[Kind] | set[Kind],
        last_seen_ms: int | None,
    ) -> None:
        """Count one more missed poll for this source's events absent from the snapshot; end the lapsed.

        Called for every poll whose payload was read (a 304 of a city source goes to
        :meth:`miss_again` instead); never for a duplicate or an older Waze snapshot.
        ``last_seen_ms`` is when the events that go missing now were last listed.
        """
        wanted = {kind.value for kind in kinds}
        limit = self.lifecycle.end_after_missed_polls
        since = last_seen_ms if last_seen_ms is not None else self.now
        missing: list[str] = []
        lapsed: list[str] = []
        for eid, missed in mine.items():
            if eid in items or _kind_of(eid) not in wanted:
                continue
            missing.append(eid)
            if missed + 1 >= limit:
                lapsed.append(eid)
        self.db.where_in(
            "UPDATE sightings SET missed = missed + 1, missing_since_ms = COALESCE(missing_since_ms, ?) "
            "WHERE source_name = ? AND", "event_id", missing, (since, self.source.name), rows=False,
        )
        if lapsed:
            self._end(lapsed, limit)

    def miss_again(self, *, relink: bool = False) -> None:
        """A 304: one more missed poll for the events the last payload already did not list; the links
        to the same closure are recomputed when something ends, or when ``relink`` (the source's
        priority changed in the config since its last poll)."""
        limit = self.lifecycle.end_after_missed_polls
        rows = self.db.fetch("SELECT event_id, missed FROM sightings WHERE source_name = ? AND missed >= 1",
                             (self.source.name,))
        still = [eid for eid, _ in rows]
        self.db.where_in("UPDATE sightings SET missed = missed + 1 WHERE source_name = ? AND", "event_id", still,
                         (self.source.name,), rows=False)
        lapsed = [eid for eid, missed in rows if missed + 1 >= limit]
        if lapsed or relink:  # only city feeds are missed again: what ends may have been published in another's place
            take_turns(self.conn, CITY_EVENTS_LOCK)
            self._end(lapsed, limit)
            self._relink()

    def _end(self, lapsed: list[str], limit: int) -> None:
        """End events that every source that saw them has missed ``limit`` times."""
        still_seen: set[str] = set()
        missing_since: dict[str, int] = {}
        rows = self.db.where_in("SELECT event_id, missed, missing_since_ms FROM sightings WHERE", "event_id", lapsed)
        for eid, missed, since in rows:
            if missed < limit:
                still_seen.add(eid)
            elif since is not None:
                missing_since[eid] = max(missing_since.get(eid, 0), since)
        ending = [eid for eid in lapsed if eid not in still_seen]
        if not ending:
            return
        stored = self.db.where_in("SELECT id, start_ms, end_ms, status FROM events WHERE", "id", ending)
        # ended or cancelled by an operator while listed: that stands, and its sightings stay, so that
        # the row coming back to its source does not reopen it
        called_off_before = {eid for eid, _start, _end, status in stored if status in _CALLED_OFF}
        ending = [eid for eid in ending if eid not in called_off_before]
        if not ending:
            return
        times = {eid: (start, end) for eid, start, end, _status in stored}
        starts = {eid: start for eid, (start, _end) in times.items()}

        def end_of(eid: str) -> int:
            """When it went missing; gone from the source after its own end, that end stands. A crowd
            report was there while listed, though Waze's snapshot time (its minute) may come seconds
            before the report's own time: it ends no earlier than it started."""
            gone, own = missing_since.get(eid, self.now), times.get(eid, (None, None))[1]
            end = gone if own is None else min(gone, own)
            start = starts.get(eid)
            return max(end, start) if start is not None and _kind_of(eid) != Kind.CITY.value else end

        ends = {eid: end_of(eid) for eid in ending}
        # a city event that goes before it starts never happened: cancelled, never an end before its start
        called_off = {eid for eid in ending if starts.get(eid) is not None and starts[eid] >= ends[eid]
                      and _kind_of(eid) == Kind.CITY.value}
        ended = [eid for eid in ending if eid not in called_off]
        self.db.update(events, ("status", "end_ms", "updated_ms"), "id",
                       [("ended", ends[eid], self.now, eid) for eid in ended])
        self.db.update(events, ("status", "updated_ms"), "id", [("cancelled", self.now, eid) for eid in called_off])
        self.db.many("DELETE FROM sightings WHERE event_id=?", [(eid,) for eid in ending])
        # a city event's revision names the end it moved, as an operator's end does; a crowd event's stays
        # compact (what an operator follows: its status), as its revisions are most of a store
        self._revisions(ended, "ended", [{"status": ["active", "ended"], **(
            {"end_ms": [times[eid][1], ends[eid]]}
            if _kind_of(eid) == Kind.CITY.value and eid in times and times[eid][1] != ends[eid] else {})}
            for eid in ended])
        self._revisions(sorted(called_off), "cancelled", [{"status": ["active", "cancelled"]}] * len(called_off))
        self.result.ended += len(ending)
        self.result.cancelled += len(called_off)

    def _relink(self) -> None:
        """Link each city event that is the same closure as one another source reports and
        publishes in its place; unlink those that no longer are (:mod:`exchange.same_closure`)."""
        linked, unlinked = relink(self.conn, at_ms=self.now, run_id=self.result.run_id)
        self.result.relinked += linked + unlinked
        if linked:
            self._note(f"{linked} event(s) left out of the feeds: the same closure as another source's, "
                       "published instead")
        if unlinked:
            self._note(f"{unlinked} event(s) published again: no longer the same closure as another source's")

    def _cluster(self) -> None:
        """Re-cluster the active alerts of this namespace; write only the cluster ids that changed."""
        from exchange.placement import AlertRow

        assert self.placement is not None
        rows = self.db.fetch(
            "SELECT id, geometry, start_ms, updated_ms, category, magvar, road_match, cluster_id FROM events "
            "WHERE source = ? AND kind = 'alert' AND status = 'active'",
            (self.source.namespace,),
        )
        alerts = []
        for eid, geometry, start, updated, category, magvar, road_match, cluster_id in rows:
            lon, lat = loads(geometry)["coordinates"]
            alerts.append(AlertRow(eid, lon, lat, start if start is not None else updated, category, magvar,
                                   loads(road_match), cluster_id))
        assigned = self.placement.cluster(alerts)
        self.db.update(events, ("cluster_id",), "id",
                       [(assigned[a.id], a.id) for a in alerts if assigned[a.id] != a.cluster_id])

    def _update_source(
        self, counts: dict[str, int], recent: dict[str, list[int]], taken: int | None, newest: int | None
    ) -> None:
        window = self.lifecycle.suspect_window
        merged = dict(recent)
        for kind, count in counts.items():
            merged[kind] = ([*merged.get(kind, []), count])[-window:]
        values: dict[str, Any] = {"recent_counts": merged, "last_success_ms": self.now}
        if taken is not None and (newest is None or taken > newest):  # a city feed's timestamp may go back
            values["newest_snapshot_ms"] = taken
        self.conn.execute(update(sources).where(sources.c.name == self.source.name).values(**values))


# --------------------------------------------------------------------------- bookkeeping


def _kind_of(event_id: str) -> str:
    """The kind an event id names (``namespace:kind:source id``): alert, jam, irregularity, city."""
    return event_id.split(":", 2)[1]


def _ensure_source(conn: Connection, source: Source, at_ms: int) -> bool:
    """The source's row as the config says it now; whether its priority changed (the links to the same
    closure then rank anew)."""
    exists = conn.execute(select(sources.c.name, sources.c.priority, sources.c.location)
                          .where(sources.c.name == source.name)).first()
    if exists is None:
        conn.execute(
            insert(sources).values(
                name=source.name, kind=source.kind, namespace=source.namespace,
                location=source.location, created_ms=at_ms, recent_counts={}, priority=source.priority,
            )
        )
    else:
        # moved: the old location's validators go with it, whatever this poll did (a failed one too), so
        # that no later poll sends them to the new one
        moved = {"etag": None, "last_modified": None} if exists.location != source.location else {}
        conn.execute(
            update(sources).where(sources.c.name == source.name)
            .values(kind=source.kind, namespace=source.namespace, location=source.location, priority=source.priority,
                    **moved)
        )
    return exists is not None and exists.priority != source.priority


def _load_watermark(engine: Engine, source: Source) -> Watermark:
    """The validators of the source's last answer, for a conditional fetch; none when the source now
    reads another URL or file (an ETag or date of one resource says nothing of another: a 304 from the
    new URL would leave the store as it was, polled "OK", forever)."""
    try:
        with engine.connect() as conn:
            row = conn.execute(
                select(sources.c.etag, sources.c.last_modified, sources.c.location)
                .where(sources.c.name == source.name)
            ).first()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the store: {db_error_message(exc)}") from exc
    if row is None or row.location != source.location:
        return Watermark()
    return Watermark(row.etag, row.last_modified)


def _run_values(result: SyncResult, started_ms: int) -> dict[str, Any]:
    return {
        "source": result.source,
        "started_ms": started_ms,
        "finished_ms": now_ms(),
        "status": result.status,
        "snapshot_ms": result.snapshot_ms,
        **result.counts(),
        "item_errors": [error.model_dump() for error in result.item_errors] or None,
        "message": result.message,
    }


def _insert_run(conn: Connection, source: str, started_ms: int, result: SyncResult) -> int:
    values = _run_values(result, started_ms)
    return int(conn.execute(insert(sync_runs).values(**values).returning(sync_runs.c.id)).scalar_one())


class OutOfScope(str):
    """The reason an item of a kind the reader does not take is not read (:class:`ItemOutOfScope`)."""

    __slots__ = ()


def every_item_rejected(reasons: list[str], read: int) -> str | None:
    """What to say of a poll in which every item of the kinds the source reads was rejected (``reasons``,
    of ``read`` items), or None. One bad item is rejected alone; all of them is the source's format or
    its field names changing, which the sync notes and ``config check`` fails."""
    if not reasons or len(reasons) < read:
        return None
    return (f"every one of its {read} items was rejected (the first: {reasons[0]}); "
            "has its format or its field names changed?")


def convert_item(source: Source, item: FeedItem, *, values_checked: bool) -> Event | str:
    """The item's event, or why it is rejected: its codec's reason (an :class:`OutOfScope` one for an
    item of a kind not taken), or a case no codec foresaw (that item alone is rejected; the debug log
    keeps the traceback)."""
    try:
        return source.convert(item, values_checked=values_checked)
    except ItemOutOfScope as exc:
        return OutOfScope(exc.message)
    except ItemRejected as exc:
        return exc.message
    except Exception as exc:
        reason = f"cannot be converted: {_one_line(exc)}"
        log.debug("%s: item %s: %s", source.name, item.source_id[:200], reason, exc_info=exc)
        return reason


def _one_line(exc: BaseException) -> str:
    """``<ExceptionType>: <first line of its message>``, storable and short."""
    lines = str(exc).strip().splitlines()
    return shown_text(f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__, 500)


def _unexpected_failure(
    engine: Engine, source: Source, started_ms: int, step: str, exc: Exception, failure: str
) -> InternalError:
    """Record an exception nothing foresaw as a failed run; the one-line error to raise in its place."""
    reason = f"{step} failed unexpectedly: {_one_line(exc)}"
    for secret in _secrets(source):
        reason = reason.replace(secret, "***")
    log.debug("%s: %s", source.name, reason, exc_info=exc)
    _record_failure(engine, source, started_ms, reason, failure)
    return InternalError(f"sync of {source.name} failed, nothing was changed: {reason}")


def _secrets(source: Source) -> list[str]:
    """The source's token, if it has one, so that no message shows it."""
    token = getattr(source, "token", None)
    if not callable(token):
        return []
    try:
        value = token()
    except Exception:  # no token configured: nothing to hide
        return []
    return [value] if isinstance(value, str) and value else []


def _record_failure(engine: Engine, source: Source, started_ms: int, reason: str, failure: str) -> None:
    """A failed run is recorded in a transaction of its own; if even that fails, the log has it.

    ``failure`` says where it failed (fetch, payload, store, internal): the source's health tells an
    upstream that is down (Offline) from one that sends what cannot be read (SchemaError)."""
    result = SyncResult(source=source.name, status="failed", message=reason)
    try:
        with writing(engine) as conn:
            _ensure_source(conn, source, started_ms)
            run_id = _insert_run(conn, source.name, started_ms, result)
            conn.execute(update(sync_runs).where(sync_runs.c.id == run_id).values(failure=failure))
    except SQLAlchemyError as exc:
        log.error("%s: could not record the failed run: %s", source.name, db_error_message(exc))
