"""What the events API and ``exchange inspect`` show of stored events: plain dicts read on a Connection.

The events API (:mod:`exchange.api`) lists events as GeoJSON features with, per event, the facts an
operator looks at on the map: its Waze status (for a city closure), whether and why it is held back
from the feeds, whether it is published, and how many Waze acceptance lint findings it has. Those
facts come from the same functions the CLI uses (:func:`exchange.confirm.waze_status`, the last
publish run's held-back list, :func:`feeds.lint.lint_event`); what the CLI and the API both print
of one event (revisions, confirmations, same-closure links, the Waze status as an object) is built
here once.

Paging is keyset paging on (``updated_ms`` descending, ``id``): a cursor names the last event of a
page, so a page never repeats or skips an event because others were inserted before it. An event
that changes while a client pages moves to the front (its ``updated_ms`` is new), ahead of the walk:
every page carries the walk's ``as_of`` (when its first page was read, kept in the cursor), and what
changed meanwhile is what ``since=as_of`` lists after the last page.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection, Select, and_, func, or_, select

from exchange.confirm import WazeStatus, confirmations_of, first_published, observed_share, waze_status
from exchange.output import iso
from exchange.publish import held_back_in
from exchange.schema import confirmations, events
from exchange.store import (
    EventFilter,
    StoredEvent,
    Unreadable,
    load_event,
    read_event,
    read_rows,
    revisions_of,
    seen_by,
    select_events,
    shown_status,
)

if TYPE_CHECKING:
    from exchange.same_closure import Reporter
    from feeds.problems import Problem
    from geo.network import RoadNetwork

__all__ = [
    "HOUR_MS",
    "MAX_STATS_WINDOW_MS",
    "BadCursor",
    "Cursor",
    "EventQuery",
    "Facts",
    "city_links",
    "decode_cursor",
    "encode_cursor",
    "event_detail",
    "event_feature",
    "event_page",
    "event_stats",
    "lint_record",
    "revision_record",
    "waze_record",
]

log = logging.getLogger("exchange.event_views")

HOUR_MS = 3_600_000
#: the longest window ``/api/stats`` counts hour by hour (a month: 744 hourly buckets at most)
MAX_STATS_WINDOW_MS = 31 * 24 * HOUR_MS


class BadCursor(ValueError):
    """A paging cursor this server did not make (or made for nothing it can read)."""


def encode_cursor(updated_ms: int, event_id: str, as_of_ms: int) -> str:
    """The opaque cursor after an event: where the next page starts, and when the walk began.

    >>> decode_cursor(encode_cursor(1772463600000, "waze:alert:a1", 1772467200000))
    Cursor(updated_ms=1772463600000, event_id='waze:alert:a1', as_of_ms=1772467200000)
    """
    return base64.urlsafe_b64encode(orjson.dumps([updated_ms, event_id, as_of_ms])).decode("ascii").rstrip("=")


@dataclass(frozen=True, slots=True)
class Cursor:
    """The last event of a page (``updated_ms``, ``event_id``) and the walk's ``as_of``."""

    updated_ms: int
    event_id: str
    as_of_ms: int | None  # None: a cursor of a server before as_of


def decode_cursor(cursor: str) -> Cursor:
    """What a cursor names; :class:`BadCursor` when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise BadCursor("not a cursor this server returned") from None
    match value:
        # what a stored row can hold: a BIGINT time, an id without NUL (PostgreSQL text refuses it)
        case [int() as updated_ms, str() as event_id, *rest] if (
            _is_time(updated_ms) and event_id and "\x00" not in event_id
            and (rest == [] or (len(rest) == 1 and _is_time(rest[0])))
        ):
            return Cursor(updated_ms, event_id, rest[0] if rest else None)
    raise BadCursor("not a cursor this server returned")


def _is_time(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


@dataclass(frozen=True, slots=True)
class EventQuery:
    """What ``GET /api/events`` selects; empty or None means any.

    ``since_ms`` and ``until_ms`` bound the time the event last changed (``updated_ms``): since is
    inclusive, until exclusive. ``after`` is the cursor of the previous page.
    """

    bbox: tuple[float, float, float, float] | None = None
    categories: tuple[str, ...] = ()
    origin: str | None = None
    status: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    limit: int = 500
    after: Cursor | None = None

    def statement(self, at_ms: int) -> Select[Any]:
        """The events selected, in page order, one more than ``limit`` (whether a next page exists)."""
        # the status (``planned`` is derived) and the box are the CLI's filters: one definition of each
        statement = EventFilter(status=self.status, bbox=self.bbox, at_ms=at_ms).apply(select_events())
        if self.categories:
            statement = statement.where(events.c.category.in_(self.categories))
        if self.origin:
            statement = statement.where(events.c.origin == self.origin)
        if self.since_ms is not None:
            statement = statement.where(events.c.updated_ms >= self.since_ms)
        if self.until_ms is not None:
            statement = statement.where(events.c.updated_ms < self.until_ms)
        if self.after is not None:
            updated_ms, event_id = self.after.updated_ms, self.after.event_id
            statement = statement.where(or_(events.c.updated_ms < updated_ms,
                                            and_(events.c.updated_ms == updated_ms, events.c.id > event_id)))
        return statement.order_by(events.c.updated_ms.desc(), events.c.id).limit(self.limit + 1)


@dataclass(frozen=True, slots=True)
class Facts:
    """What the features of one response are read against: the time, the last publication, the network."""

    at_ms: int
    first_published: Mapping[str, int]
    held_back: Mapping[str, str]
    network: RoadNetwork | None
    unseen_after_min: int
    zone: tzinfo | None = None  # the city's: a weekly schedule's hours

    @classmethod
    def read(cls, conn: Connection, *, at_ms: int, network: RoadNetwork | None, unseen_after_min: int,
             zone: tzinfo | None) -> Facts:
        return cls(at_ms, first_published(conn), held_back_in(conn), network, unseen_after_min, zone)

    def waze(self, row: Mapping[str, Any]) -> WazeStatus | None:
        return waze_status(row, now_ms=self.at_ms, first_published_ms=self.first_published.get(row["id"]),
                           held_back=self.held_back.get(row["id"]), unseen_after_min=self.unseen_after_min,
                           zone=self.zone)

    def lint(self, stored: StoredEvent) -> list[Problem]:
        """The Waze acceptance lint of a city event (crowd reports are never published: none)."""
        if stored.row["origin"] != "city":
            return []
        from feeds.lint import lint_event

        return lint_event(stored.event, self.network, datetime.fromtimestamp(self.at_ms / 1000, UTC))


# --------------------------------------------------------------------------- one event


def event_feature(stored: StoredEvent, facts: Facts, lint: Sequence[Problem] | None = None) -> dict[str, Any]:
    """An event as a GeoJSON Feature with the properties the operator map reads."""
    row = stored.row
    city = row["origin"] == "city"
    match = row["road_match"]
    waze = facts.waze(row) if city else None
    if lint is None:
        lint = facts.lint(stored)
    properties = {
        "id": row["id"],
        "source": row["source"],
        "kind": row["kind"],
        "origin": row["origin"],
        "category": row["category"],
        "type": row["type"],
        "subtype": row["subtype"],
        "street": row["street"],
        "city": row["city"],
        "direction": row["direction"],
        "status": shown_status(row, facts.at_ms),
        "start": iso(row["start_ms"]),
        "end": iso(row["end_ms"]),
        "updated": iso(row["updated_ms"]),
        "level": row["level"],
        "delay_s": row["delay_s"],
        "speed_kmh": row["speed_kmh"],
        "length_m": row["length_m"],
        "reliability": row["reliability"],
        "confidence": row["confidence"],
        "cluster_id": row["cluster_id"],
        # no match at all: no road network was configured when it was stored
        "matched": None if not isinstance(match, dict) else bool(match.get("edges")),
        "match_reason": match.get("reason") if isinstance(match, dict) else None,
        "waze_status": waze.state if waze is not None else None,
        "held_back": facts.held_back.get(row["id"]) if city else None,
        "published": city and row["id"] in facts.first_published,
        "same_as": row["same_as"] if city else None,
        "lint_problems": len(lint),
    }
    return {"type": "Feature", "id": row["id"], "geometry": row["geometry"], "properties": properties}


def event_detail(conn: Connection, event_id: str, facts: Facts) -> dict[str, Any] | Unreadable | None:
    """One event in full (its feature, plus revisions, lint, Waze status, match, links), why it
    cannot be read, or None when there is none with this id."""
    found = load_event(conn, event_id)
    if found is None or isinstance(found, Unreadable):
        return found
    row = found.row
    lint = facts.lint(found)
    feature = event_feature(found, facts, lint)
    waze = facts.waze(row) if row["origin"] == "city" else None
    feature["properties"].update({
        "first_seen": iso(row["first_seen_ms"]),
        "details": row["details"],
        "match": row["road_match"],
        "attributes": row["attributes"],
        "revisions": [revision_record(r) for r in revisions_of(conn, event_id)],
        "lint": [lint_record(problem) for problem in lint],
        "waze": waze_record(waze) if waze is not None else None,
        "confirmations": _confirmations(conn, row),
        "seen_by": [{"source": s.source_name, "missed_polls": s.missed} for s in seen_by(conn, event_id)],
        **(city_links(conn, event_id, row["same_as"]) if row["origin"] == "city" else
           {"same_closure_as": None, "also_reported_by": []}),
    })
    return feature


def _confirmations(conn: Connection, row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Waze reports showing a city closure; for a Waze report, the city closures it shows."""
    if row["origin"] == "city":
        links = confirmations_of(conn, row["id"])
    else:
        links = conn.execute(select(confirmations).where(confirmations.c.crowd_event_id == row["id"])
                             .order_by(confirmations.c.linked_ms, confirmations.c.city_event_id)).all()
    return [{"city_event_id": c.city_event_id, "crowd_event_id": c.crowd_event_id, "how": c.how,
             "linked": iso(c.linked_ms)} for c in links]


def revision_record(revision: Any) -> dict[str, Any]:
    """One revision of an event: when, what happened, by whom, what changed (field -> [old, new])."""
    return {"at": iso(revision.at_ms), "action": revision.action, "run_id": revision.run_id,
            "operator": revision.operator, "changes": revision.changes}


def lint_record(problem: Problem) -> dict[str, Any]:
    """One Waze acceptance lint finding: ``error`` is a reason Waze would reject the event."""
    return {**problem.as_dict(), "holds_back": problem.holds_back}


def waze_record(status: WazeStatus) -> dict[str, Any]:
    """The Waze status of a city closure as an object (times in ISO 8601 UTC)."""
    return {"state": status.state, "since": iso(status.since_ms), "last_seen": iso(status.last_seen_ms),
            "text": status.describe(iso), "evidence": status.evidence or None, "not_published": status.reason,
            "late_minutes": status.unseen_minutes}


def city_links(conn: Connection, event_id: str, same_as: str | None) -> dict[str, Any]:
    """A city event's links to the same closure from other sources: the event published in its place,
    and the events folded into it, each with its source and priority (None: typed by an operator)."""
    from exchange.same_closure import links_of

    links = links_of(conn, event_id, same_as)
    return {
        "same_closure_as": _linked(*links.published_instead) if links.published_instead else None,
        "also_reported_by": [_linked(*link) for link in links.also_reported_by],
    }


def _linked(event_id: str, reporter: Reporter | None) -> dict[str, Any]:
    return {"id": event_id, "source": reporter.source if reporter else None,
            "priority": reporter.priority if reporter else None}


# --------------------------------------------------------------------------- lists


@dataclass(frozen=True, slots=True)
class Page:
    features: list[dict[str, Any]]
    next_cursor: str | None
    as_of_ms: int  # when the walk's first page was read
    skipped: int  # rows that cannot be read, left out (the log names them)


def event_page(conn: Connection, query: EventQuery, facts: Facts) -> Page:
    """One page of the events ``query`` selects, the latest change first."""
    statement = query.statement(facts.at_ms)
    rows = list(read_rows(conn, statement))
    more = len(rows) > query.limit
    rows = rows[:query.limit]
    features: list[dict[str, Any]] = []
    skipped = 0
    for row in rows:
        item = read_event(row)
        if isinstance(item, Unreadable):
            log.warning(item.warning("left out of the events API"))
            skipped += 1
        else:
            features.append(event_feature(item, facts))
    last = rows[-1] if more else None
    as_of = query.after.as_of_ms if query.after is not None and query.after.as_of_ms is not None else facts.at_ms
    # the last row read, readable or not, is where the next page starts
    cursor = encode_cursor(int(last._mapping["updated_ms"]), str(last._mapping["id"]), as_of) if last else None
    return Page(features, cursor, as_of, skipped)


# --------------------------------------------------------------------------- stats


def event_stats(conn: Connection, since_ms: int, until_ms: int, facts: Facts) -> dict[str, Any]:
    """What happened in [since, until): events by category and by hour (by when each began: its start,
    or when it was first seen), confirmations linked, and, now, what is held back and how many of the
    published closures in effect Waze shows."""
    began = func.coalesce(events.c.start_ms, events.c.first_seen_ms)
    in_window = and_(began >= since_ms, began < until_ms)
    by_category: dict[str, int] = dict(conn.execute(
        select(events.c.category, func.count()).where(in_window).group_by(events.c.category)).all())
    hour = (began // HOUR_MS) * HOUR_MS
    hourly: dict[int, dict[str, int]] = {
        at: {} for at in range(since_ms // HOUR_MS * HOUR_MS, until_ms, HOUR_MS)
    }
    for at, category, count in conn.execute(
        select(hour.label("hour"), events.c.category, func.count()).where(in_window)
        .group_by(hour, events.c.category)
    ):
        hourly.setdefault(int(at), {})[category] = count
    linked: dict[str, int] = dict(conn.execute(
        select(confirmations.c.how, func.count()).where(
            confirmations.c.linked_ms >= since_ms, confirmations.c.linked_ms < until_ms,
        ).group_by(confirmations.c.how)).all())
    seen, live = observed_share(conn, facts.at_ms, facts.zone)
    return {
        "since": iso(since_ms),
        "until": iso(until_ms),
        "total": sum(by_category.values()),
        "by_category": dict(sorted(by_category.items())),
        "by_hour": [{"hour": iso(at), "counts": dict(sorted(counts.items())), "total": sum(counts.values())}
                    for at, counts in sorted(hourly.items())],
        "confirmations": {"count": sum(linked.values()), "by_how": dict(sorted(linked.items()))},
        "held_back": [{"id": event_id, "reason": reason} for event_id, reason in sorted(facts.held_back.items())],
        "closures_seen_in_waze": {"total": live, "seen": seen, "share": seen / live if live else None},
    }
