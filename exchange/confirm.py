"""Is my closure live in Waze? The inbound Waze feed, read back against every published closure.

A Waze ``ROAD_CLOSED`` alert, or a level-5 jam whose ``blockingAlertUuid`` points at one, lying on
the road segments of a city closure *while the closure is in effect* shows it in Waze. It is
usually Waze showing the city's own CIFS back: evidence that the closure is live, and nothing
more (it does not verify that work is present). At each Waze sync (:func:`observe_waze`):

* a report confirms a closure only when they overlap in time: the closure has started at the
  time of the poll, and the report began before the closure ends (a Waze closure seen before a
  closure starts, or after it ended, confirms nothing);
* "seen in Waze since" is the time of the report that shows it (its ``pubMillis``), not before
  the closure's start: replaying March snapshots in November says "since March";
* after it was seen, Waze jams that are not blocked (traffic moving, at some speed) on its
  segments, in its direction, with no closure report left, mean "traffic flowing through it":
  Waze ends feed closures on its own when it detects traffic, so it may have ended it early;
* a Waze closure report on no live city closure (none, or only one the city has ended) is what
  operators should look at (``inspect events --unconfirmed-closures``).

The status shown (:func:`waze_status`) is derived when read, from that evidence, the closure's
own times and its publication: not started yet / not published / published, not seen in Waze
yet / seen in Waze since T / traffic flowing through it since T / ended.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta, tzinfo
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from exchange.bulk import Bulk, dumps, loads
from exchange.model import from_millis, to_millis
from exchange.schema import confirmations, events, published_events, sources

__all__ = [
    "NOT_PUBLISHED",
    "NOT_SEEN",
    "NOT_STARTED",
    "SEEN",
    "TRAFFIC_FLOWING",
    "WAZE_ENDED",
    "WazeStatus",
    "confirmations_of",
    "first_published",
    "late_closures",
    "link_confirmations",
    "observe_waze",
    "observed_share",
    "unconfirmed_closure_ids",
    "undirected",
    "waze_status",
]

NOT_STARTED, NOT_PUBLISHED, NOT_SEEN = "not started", "not published", "not seen yet"
SEEN, TRAFFIC_FLOWING, WAZE_ENDED = "seen in Waze", "traffic flowing", "ended"
#: a closure with a weekly schedule between two of its windows: Waze is expected to show nothing
BETWEEN_WINDOWS = "between its windows"


def window_at(details: Any, *, start_ms: int | None, end_ms: int | None, at_ms: int,
              zone: tzinfo | None) -> tuple[bool, int | None]:
    """Whether a closure is within a window of its weekly schedule at ``at_ms``, and when that window
    began (else when the next one begins, None when none is left). Without a schedule (or a zone to
    read its hours in) it is in effect all along: (True, None)."""
    from feeds.wzdx import schedule_occurrences

    schedule = _schedule_of(details)
    if not schedule or zone is None:
        return True, None
    start, end = (from_millis(start_ms) if start_ms is not None else None), (
        from_millis(end_ms) if end_ms is not None else None)
    at = from_millis(at_ms)
    try:
        ahead = schedule_occurrences(schedule, zone=zone, start=start, end=end, window_start=at,
                                     window_end=at + timedelta(days=8))
    except ValueError:  # a stored schedule that cannot be read: in effect, as without one
        return True, None
    if ahead and ahead[0].start <= at:
        return True, to_millis(ahead[0].start)
    return False, to_millis(ahead[0].start) if ahead else None


def _schedule_of(details: Any) -> Mapping[str, str] | None:
    """The weekly schedule of a stored ``details`` (JSON text or decoded), None when it has none or it
    cannot be read (one unreadable row never stops the others' reading)."""
    try:
        decoded = loads(details)
    except ValueError:
        return None
    schedule = decoded.get("schedule") if isinstance(decoded, Mapping) else None
    if not isinstance(schedule, Mapping) or not all(isinstance(v, str) for v in schedule.values()):
        return None
    return schedule


def seen_in_window(last_seen_ms: int | None, window_ms: int | None) -> bool:
    """Whether what Waze showed of a closure counts now: always without a schedule (``window_ms`` None),
    else only when it was last shown within the current window (each night is seen, or late, anew)."""
    return window_ms is None or (last_seen_ms is not None and last_seen_ms >= window_ms)


Segment = tuple[int, int, int]


def _edges(road_match: Any) -> list[Segment]:
    match = loads(road_match) or {}
    return [(int(way), int(a), int(b)) for way, a, b in match.get("edges") or []]


def undirected(edges: Iterable[Segment]) -> set[Segment]:
    """Road segments as (way, node, node) whatever the direction they are travelled in."""
    return {(way, min(a, b), max(a, b)) for way, a, b in edges}


@dataclass
class _Closure:
    id: str
    start_ms: int | None
    end_ms: int | None
    one_direction: bool
    edges: set[Segment]
    segments: set[Segment]
    seen_since: int | None
    last_seen: int | None
    flowing_since: int | None
    evidence: dict[str, Any]
    details: Any = None

    def in_effect(self, at_ms: int, zone: tzinfo | None) -> bool:
        """Started, not ended, and within a window of its schedule if it has one (a night closure says
        nothing of the day's traffic, and a Waze closure by day is not its). What Waze showed in an
        earlier window is forgotten: each window is seen (or late) on its own."""
        if not ((self.start_ms is None or self.start_ms <= at_ms) and (self.end_ms is None or self.end_ms > at_ms)):
            return False
        within, window_ms = window_at(self.details, start_ms=self.start_ms, end_ms=self.end_ms, at_ms=at_ms, zone=zone)
        if within and not seen_in_window(self.last_seen, window_ms):
            self.seen_since = self.last_seen = self.flowing_since = None
            self.evidence = {}
        return within

    def shown(self) -> tuple[int | None, int | None, int | None, dict[str, Any]]:
        """What Waze showed of it, as stored: seen since, last seen, flowing since, the evidence."""
        return self.seen_since, self.last_seen, self.flowing_since, self.evidence

    def lies_on(self, edges: Sequence[Segment]) -> bool:
        """The jam runs on its segments, in its direction when it closes one direction only."""
        if self.one_direction:
            return bool(self.edges & set(edges))
        return bool(self.segments & undirected(edges))


@dataclass(frozen=True, slots=True)
class _Report:
    id: str
    how: str  # road-closed-alert or blocked-jam
    at_ms: int | None  # its pubMillis
    segments: frozenset[Segment]


@dataclass(frozen=True, slots=True)
class _Jam:
    id: str
    at_ms: int | None
    level: int | None
    speed_kmh: float | None
    edges: tuple[Segment, ...]


def _closures(db: Bulk) -> list[_Closure]:
    rows = db.fetch(
        "SELECT id, start_ms, end_ms, direction, road_match, visible_in_waze_since_ms, waze_last_seen_ms, "
        "waze_flowing_since_ms, waze_evidence, details FROM events WHERE origin = 'city' AND category = 'ROAD_CLOSED' "
        "AND status = 'active' AND road_match IS NOT NULL"
    )
    found = []
    for eid, start, end, direction, match, seen, last, flowing, evidence, details in rows:
        edges = _edges(match)
        if edges:
            found.append(_Closure(eid, start, end, direction == "ONE_DIRECTION", set(edges), undirected(edges),
                                  seen, last, flowing, loads(evidence) or {}, details))
    return found


#: in the last poll of a source that lists it (an item missing from a poll stays active for a few
#: polls before it is ended, but it no longer shows anything)
_IN_THE_FEED = "EXISTS (SELECT 1 FROM sightings s WHERE s.event_id = events.id AND s.missed = 0)"


def _reports(db: Bulk) -> tuple[list[_Report], list[_Jam]]:
    """The live Waze closure reports (ROAD_CLOSED alerts, blocked jams pointing at one) and the
    jams that are not blocked (traffic moving)."""
    alerts = db.fetch(
        "SELECT id, source_id, source, start_ms, road_match FROM events WHERE origin = 'crowd' AND kind = 'alert' "
        f"AND category = 'ROAD_CLOSED' AND status = 'active' AND {_IN_THE_FEED}"
    )
    reports = [_Report(eid, "road-closed-alert", start, frozenset(undirected(_edges(match))))
               for eid, _sid, _ns, start, match in alerts]
    closed_alerts = {(namespace, sid) for _eid, sid, namespace, _start, _match in alerts}
    jams = db.fetch(
        "SELECT id, source, blocking_alert_uuid, level, speed_kmh, start_ms, road_match FROM events "
        f"WHERE origin = 'crowd' AND kind = 'jam' AND status = 'active' AND road_match IS NOT NULL AND {_IN_THE_FEED}"
    )
    moving: list[_Jam] = []
    for eid, namespace, blocking, level, speed, start, match in jams:
        if level == 5 and blocking is not None and (namespace, blocking) in closed_alerts:
            reports.append(_Report(eid, "blocked-jam", start, frozenset(undirected(_edges(match)))))
        elif level != 5:
            moving.append(_Jam(eid, start, level, speed, tuple(_edges(match))))
    return [report for report in reports if report.segments], moving


def observe_waze(conn: Connection, observed_ms: int, *, zone: tzinfo | None, linked_ms: int | None = None) -> int:
    """Read the inbound Waze feed as it is now (the poll of ``observed_ms``) back against every live
    city closure in effect (``zone``: the city's, for weekly schedules): link the reports that confirm
    one, and update what it shows (seen since, last seen, traffic flowing, the evidence). Returns how
    many links are new."""
    db = Bulk(conn)
    every = _closures(db)
    stored = {closure.id: closure.shown() for closure in every}
    closures = [closure for closure in every if closure.in_effect(observed_ms, zone)]
    if not closures:
        return 0
    reports, moving = _reports(db)
    known = {(row.city_event_id, row.crowd_event_id) for row in conn.execute(select(confirmations))}
    new: list[tuple[Any, ...]] = []
    changed: list[tuple[Any, ...]] = []
    for closure in closures:
        showing = [report for report in reports if report.segments & closure.segments
                   and (closure.end_ms is None or report.at_ms is None or report.at_ms <= closure.end_ms)]
        new.extend((closure.id, report.id, linked_ms or observed_ms, report.how) for report in showing
                   if (closure.id, report.id) not in known)
        before = stored[closure.id]
        if showing:
            _seen(closure, showing, observed_ms)
        elif closure.seen_since is not None:
            flowing = [jam for jam in moving if closure.lies_on(jam.edges)]
            if flowing:
                _flowing(closure, flowing, observed_ms)
        if closure.shown() != before:
            changed.append((closure.seen_since, closure.last_seen, closure.flowing_since, dumps(closure.evidence),
                            closure.id))
    db.insert(confirmations, ("city_event_id", "crowd_event_id", "linked_ms", "how"), new)
    db.update(events, ("visible_in_waze_since_ms", "waze_last_seen_ms", "waze_flowing_since_ms", "waze_evidence"),
              "id", changed)
    return len(new)


def _seen(closure: _Closure, showing: list[_Report], observed_ms: int) -> None:
    opens = closure.start_ms if closure.start_ms is not None else observed_ms
    shown = min(max(report.at_ms if report.at_ms is not None else observed_ms, opens) for report in showing)
    closure.seen_since = shown if closure.seen_since is None else min(closure.seen_since, shown)
    closure.last_seen = observed_ms
    closure.flowing_since = None  # shown closed again
    closure.evidence = {"seen": [{"id": report.id, "how": report.how, "at": report.at_ms} for report in showing]}


def _flowing(closure: _Closure, flowing: list[_Jam], observed_ms: int) -> None:
    if closure.flowing_since is None:
        closure.flowing_since = observed_ms
    closure.evidence = {
        **{key: value for key, value in closure.evidence.items() if key != "flowing"},
        "flowing": [{"id": jam.id, "level": jam.level, "speed_kmh": jam.speed_kmh, "at": jam.at_ms} for jam in flowing],
    }


def link_confirmations(conn: Connection, now_ms: int, zone: tzinfo | None) -> int:
    """:func:`observe_waze` after a change of city events (an operator's, a city source's poll):
    what the Waze feed already shows, as of its last poll (not later than ``now_ms``)."""
    newest = conn.execute(select(func.max(sources.c.newest_snapshot_ms)).where(sources.c.kind == "waze-feed")).scalar()
    return observe_waze(conn, min(now_ms, newest) if newest is not None else now_ms, zone=zone, linked_ms=now_ms)


def unconfirmed_closure_ids(conn: Connection, now_ms: int, zone: tzinfo | None) -> list[str]:
    """Active Waze ROAD_CLOSED alerts linked to no city closure in effect now (none at all, only
    closures the city has ended or cancelled: a Waze closure that persists after the city's ended,
    or only night closures read by day: ``zone`` reads their schedules' hours)."""
    city = events.alias("city")
    linked = select(confirmations.c.crowd_event_id, city.c.start_ms, city.c.end_ms, city.c.details).join(
        city, city.c.id == confirmations.c.city_event_id,
    ).where(
        city.c.status == "active", or_(city.c.end_ms.is_(None), city.c.end_ms > now_ms),
        or_(city.c.start_ms.is_(None), city.c.start_ms <= now_ms),
    )
    live = {row.crowd_event_id for row in conn.execute(linked)
            if window_at(row.details, start_ms=row.start_ms, end_ms=row.end_ms, at_ms=now_ms, zone=zone)[0]}
    query = select(events.c.id).where(and_(
        events.c.origin == "crowd", events.c.kind == "alert", events.c.category == "ROAD_CLOSED",
        events.c.status == "active",
    ))
    return [eid for eid in conn.execute(query).scalars() if eid not in live]


def confirmations_of(conn: Connection, city_event_id: str) -> Iterable[Any]:
    query = select(confirmations).where(confirmations.c.city_event_id == city_event_id)
    return conn.execute(query.order_by(confirmations.c.linked_ms, confirmations.c.crowd_event_id)).all()


def first_published(conn: Connection) -> dict[str, int]:
    """Event id -> when it first went out to Waze (the CIFS target), for every event of its last publications."""
    rows = conn.execute(select(published_events.c.event_id, published_events.c.first_published_ms,
                               published_events.c.published_ms).where(published_events.c.target == "cifs"))
    return {eid: first if first is not None else last for eid, first, last in rows}


def observed_share(conn: Connection, now_ms: int, zone: tzinfo | None) -> tuple[int, int]:
    """(seen, live): of the published city ROAD_CLOSED in effect now (within a window of its schedule,
    ``zone`` reading its hours), how many Waze shows (seen in Waze, no traffic flowing through since)."""
    live = select(events.c.visible_in_waze_since_ms, events.c.waze_flowing_since_ms, events.c.waze_last_seen_ms,
                  events.c.start_ms, events.c.end_ms, events.c.details).join(
        published_events, published_events.c.event_id == events.c.id,
    ).where(
        published_events.c.target == "cifs",  # what Waze was sent
        events.c.origin == "city", events.c.category == "ROAD_CLOSED", events.c.status == "active",
        or_(events.c.start_ms.is_(None), events.c.start_ms <= now_ms),
        or_(events.c.end_ms.is_(None), events.c.end_ms > now_ms),
    )
    seen = in_effect = 0
    for row in conn.execute(live):
        within, window_ms = window_at(row.details, start_ms=row.start_ms, end_ms=row.end_ms, at_ms=now_ms, zone=zone)
        if within:
            in_effect += 1
            seen += (row.visible_in_waze_since_ms is not None and row.waze_flowing_since_ms is None
                     and seen_in_window(row.waze_last_seen_ms, window_ms))
    return seen, in_effect


# --------------------------------------------------------------------------- the status shown


@dataclass(frozen=True, slots=True)
class WazeStatus:
    """What the inbound feed says of one city closure now.

    ``since_ms`` is when the state began (seen since, flowing since, published at, starts at, ended
    at); ``warning`` is set when it was published more than the configured delay ago and Waze
    still does not show it.
    """

    state: str
    since_ms: int | None = None
    last_seen_ms: int | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None  # why it is not published
    #: set when Waze should show it by now: how long it has been out and in effect, in minutes
    unseen_minutes: int | None = None
    #: it went out before it started: the minutes count from its start
    published_before_start: bool = False

    def describe(self, when: Any) -> str:
        """One line for an operator; ``when`` formats a time in milliseconds."""
        at = when(self.since_ms) if self.since_ms is not None else None
        if self.state == SEEN:
            last = f", last seen {when(self.last_seen_ms)}" if self.last_seen_ms is not None else ""
            return f"seen in Waze since {at}{last}"
        if self.state == TRAFFIC_FLOWING:
            return (f"traffic flowing through it since {at} (possibly ended early by Waze, which ends a feed closure "
                    "when it detects traffic)")
        if self.state == NOT_SEEN:
            return f"published {at}, not seen in Waze yet" if at else "published, not seen in Waze yet"
        if self.state == NOT_STARTED:
            return f"not started yet (starts {at})" if at else "not started yet"
        if self.state == BETWEEN_WINDOWS:
            return (f"between the windows of its schedule (next {at})" if at
                    else "between the windows of its schedule: none left before its end")
        if self.state == NOT_PUBLISHED:
            return f"not published: {self.reason}" if self.reason else "not published"
        return f"ended {at}" if at else "cancelled: out of the feeds"  # a cancelled one has no end to give

    def warning(self, closure_id: str) -> str | None:
        """"published N minutes ago, still not seen in Waze", when it is late; else None."""
        if self.unseen_minutes is None:
            return None
        if self.published_before_start:
            return (f"closure {closure_id} started {self.unseen_minutes} minutes ago (published before), still not "
                    "seen in Waze")
        return f"closure {closure_id} was published {self.unseen_minutes} minutes ago, still not seen in Waze"


def late_closures(conn: Connection, now_ms: int, unseen_after_min: int,
                  held: Mapping[str, str], zone: tzinfo | None) -> list[tuple[str, WazeStatus]]:
    """The published city closures in effect that Waze should show by now and does not."""
    query = select(events).where(  # seen ones too: a scheduled closure seen last night may be late tonight
        events.c.origin == "city", events.c.category == "ROAD_CLOSED", events.c.status == "active",
    )
    published = first_published(conn)
    found = []
    for row in conn.execute(query):
        status = waze_status(row, now_ms=now_ms, first_published_ms=published.get(row.id), held_back=held.get(row.id),
                             unseen_after_min=unseen_after_min, zone=zone)
        if status is not None and status.unseen_minutes is not None:
            found.append((row.id, status))
    return found


def waze_status(
    row: Any, *, now_ms: int, first_published_ms: int | None, held_back: str | None, unseen_after_min: int,
    zone: tzinfo | None,
) -> WazeStatus | None:
    """The Waze status of a city ROAD_CLOSED (None for any other event), from its stored row; ``zone``
    (the city's) reads a weekly schedule's hours: between its windows nothing is expected of Waze."""
    m = row._mapping if hasattr(row, "_mapping") else row
    if m["origin"] != "city" or m["category"] != "ROAD_CLOSED":
        return None
    start, end = m["start_ms"], m["end_ms"]
    if m["status"] != "active" or (end is not None and end <= now_ms):
        return WazeStatus(WAZE_ENDED, end if m["status"] != "cancelled" else None)
    if start is not None and start > now_ms:
        return WazeStatus(NOT_STARTED, start)
    within, window_ms = window_at(m["details"], start_ms=start, end_ms=end, at_ms=now_ms, zone=zone)
    if not within:
        return WazeStatus(BETWEEN_WINDOWS, window_ms)
    shown = seen_in_window(m["waze_last_seen_ms"], window_ms)  # an earlier night's sighting is not tonight's
    evidence = loads(m["waze_evidence"]) or {}
    if shown and m["waze_flowing_since_ms"] is not None:
        return WazeStatus(TRAFFIC_FLOWING, m["waze_flowing_since_ms"], m["waze_last_seen_ms"], evidence)
    if shown and m["visible_in_waze_since_ms"] is not None:
        return WazeStatus(SEEN, m["visible_in_waze_since_ms"], m["waze_last_seen_ms"], evidence)
    if first_published_ms is None or (held_back is not None and not held_back.startswith("newer version")):
        return WazeStatus(NOT_PUBLISHED, reason=held_back or "not in the last publication")
    # the clock of "not seen yet" starts when it went out, or when it (its window, for a scheduled one)
    # began if it went out before
    began = window_ms if window_ms is not None else start
    early = began is not None and began > first_published_ms
    minutes = int((now_ms - (began if early and began is not None else first_published_ms)) // 60_000)
    return WazeStatus(NOT_SEEN, first_published_ms, unseen_minutes=minutes if minutes >= unseen_after_min else None,
                      published_before_start=early)
