"""One closure that two city sources report is published once.

Two active city events (planned ones included) reported by different sources are the same
closure when

* (a) both sources configure a ``match_key`` and the events' values under it are equal (trimmed,
  case-sensitive: ``feeds.city_fields.match_id_of``). A shared id is trusted as the closure's
  identity, whatever the type, road and times say; or
* (b) they have the same ``type``, their times overlap, the one published is closed (nearly) as
  soon as the other from now on, and they close the same directed road edges (``road_match``, with a road
  network configured): the edges both close are at least :data:`MIN_EDGE_OVERLAP` of the edges
  either closes (the Jaccard index of the two sets). A BOTH_DIRECTIONS closure closes its edges in
  both directions, and covers a closure of one direction there: that one is measured against the
  published one's edges in its own direction. Closures that one other source gives together for
  a closure of both directions (a WZDx feed's pair, one road event per direction) are measured
  together; the one folded is linked to the first of them in rank.

Why the edges either closes, and not those of the smaller closure: the event folded away leaves
the feeds, and only the road the published one closes stays closed. Measured against the smaller,
a one-block closure would be "the same" as a ten-block one around it, and folding the long one
into the short one would drop nine blocks from the feeds; measured against both, at most a fifth
of the road the two close is closed by one of them alone. Times likewise at the start
(:func:`starts_in_time`): the published one starts no later than the other, from now on (no start,
or one already past: now), give or take a fifth of the other's remaining time; an operator's
closure tonight from 22:00 to 05:00 on a road an imported street fair closes all day is two
closures, and folding the fair into it would take the road's daytime closure out of every feed.
At the end nothing is lost: once the published one is over, the other goes out again (``publish``).

Of the events that are one closure, the first in rank is published; each other one is linked to
it (``events.same_as``) and left out of the feeds, keeping its own status. The rank: closures typed
by an operator first (an operator's explicit act is never folded away; an imported event may be
folded into one when (b) holds), then the source of the higher ``priority``, then the source name,
then the event id (alphabetical order), so the choice never depends on the order of the polls.
Events of one source are never folded into each other (a source that lists two closures says they
are two, e.g. two blocks of one permit), and an event is folded only into a published event it is
itself the same closure as, never along a chain.

An event's source is the first in rank of the sources that list it now (its sightings); for an
event no source lists any more, the source whose poll created it. An event of neither was typed by
an operator.

The links are recomputed after every poll of a city source, in its transaction (:func:`relink`):
an event that no longer matches the one published in its place (times moved, re-routed, that one
ended) is published again, or folded into another. An event that ends or is cancelled while folded
keeps its link: it was never in the feeds as itself, and does not enter them as an ended closure.
A change an operator makes to a closure (``exchange closure``) is linked in its own transaction.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection

from exchange.bulk import Bulk, loads
from exchange.schema import events
from exchange.store import insert_revisions

__all__ = [
    "CITY_EVENTS_LOCK",
    "MIN_EDGE_OVERLAP",
    "Candidate",
    "Reporter",
    "SameClosure",
    "closed_edges",
    "edge_overlap",
    "links_of",
    "relink",
    "reporters",
    "same_closure",
    "same_closures",
    "starts_in_time",
    "times_overlap",
]

#: the lock every writer that relinks takes first (PostgreSQL): relinking one closure reported by two
#: sources writes the other source's events too, and two writers doing so at once would wait for
#: each other's rows (the polls of city sources, an operator's closure commands)
CITY_EVENTS_LOCK = "city-events"

#: two events close the same road when the edges both close are at least this share of the edges either closes
MIN_EDGE_OVERLAP = 0.8

Edge = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Reporter:
    """The configured source an event comes from, and that source's priority."""

    source: str
    priority: int

    @property
    def rank(self) -> tuple[int, str]:
        return -self.priority, self.source


@dataclass(frozen=True, slots=True)
class Candidate:
    """What of an active city event decides whether it is the same closure as another."""

    id: str
    reporter: Reporter | None  # None: a closure typed by an operator
    type: str
    match_id: str | None
    edges: frozenset[Edge]  # the directed edges it closes
    start_ms: int | None
    end_ms: int | None

    @property
    def rank(self) -> tuple[bool, int, str, str]:
        if self.reporter is None:
            return False, 0, "", self.id
        return True, *self.reporter.rank, self.id


# --------------------------------------------------------------------------- which events are one closure


def same_closures(candidates: Iterable[Candidate], *, at_ms: int = 0) -> dict[str, str]:
    """The id of each event to fold away -> the id of the event published in its place, at ``at_ms``.

    In rank order, each event is folded into the first published event it is the same closure as,
    or published. Only the published events sharing its match id or one of its edges are compared:
    no pair that shares neither is ever looked at.
    """
    ranked = sorted(candidates, key=lambda candidate: candidate.rank)
    published: list[Candidate] = []
    by_match_id: dict[str, list[int]] = defaultdict(list)
    by_edge: dict[Edge, list[int]] = defaultdict(list)
    folded: dict[str, str] = {}
    for candidate in ranked:
        if candidate.reporter is not None:  # an operator's closure is never folded away
            nearby = set(by_match_id.get(candidate.match_id, ())) if candidate.match_id is not None else set()
            for edge in candidate.edges:
                nearby.update(by_edge.get(edge, ()))
            target = next((published[i] for i in sorted(nearby) if same_closure(candidate, published[i], at_ms=at_ms)),
                          None) or _pair_closing(candidate, [published[i] for i in sorted(nearby)], at_ms=at_ms)
            if target is not None:
                folded[candidate.id] = target.id
                continue
        position = len(published)
        published.append(candidate)
        if candidate.match_id is not None:
            by_match_id[candidate.match_id].append(position)
        for edge in candidate.edges:
            by_edge[edge].append(position)
    return folded


def same_closure(folded: Candidate, published: Candidate, *, at_ms: int = 0) -> bool:
    """Whether two events of different sources are one closure, the first to be folded into the
    second: a shared match id, or the same type on the same road at overlapping times, the second
    closing it (nearly) as soon as the first from ``at_ms`` on."""
    if _source(folded) == _source(published):
        return False
    if folded.match_id is not None and folded.match_id == published.match_id:
        return True
    return (_in_step(folded, published, at_ms=at_ms)
            and edge_overlap(folded.edges, _as_closed_for(folded, published.edges)) >= MIN_EDGE_OVERLAP)


def _in_step(folded: Candidate, published: Candidate, *, at_ms: int) -> bool:
    return (folded.type == published.type and times_overlap(folded, published)
            and starts_in_time(published, folded, at_ms=at_ms))


def _as_closed_for(folded: Candidate, edges: frozenset[Edge]) -> frozenset[Edge]:
    """The edges of a published closure that a closure of one direction is measured against: without
    the other direction of the road it closes (a closure of both directions covers one of either; a
    WZDx feed gives one road event per direction)."""
    against = {(way, end, start) for way, start, end in folded.edges}
    if against & folded.edges:  # it closes both directions itself
        return edges
    return edges - against


def _pair_closing(folded: Candidate, nearby: Sequence[Candidate], *, at_ms: int) -> Candidate | None:
    """The first in rank of the closures one other source gives together for the road ``folded``
    closes (a WZDx pair, one road event per direction, for a closure of both directions), when they
    close it together as :func:`same_closure` asks of one; else None."""
    by_source: dict[str | None, list[Candidate]] = defaultdict(list)
    for candidate in nearby:
        if _source(candidate) != _source(folded) and _in_step(folded, candidate, at_ms=at_ms):
            by_source[_source(candidate)].append(candidate)
    for together in by_source.values():
        closed = frozenset().union(*(candidate.edges for candidate in together))
        if len(together) > 1 and edge_overlap(folded.edges, closed) >= MIN_EDGE_OVERLAP:
            return min(together, key=lambda candidate: candidate.rank)
    return None


def _source(candidate: Candidate) -> str | None:
    return candidate.reporter.source if candidate.reporter is not None else None


def edge_overlap(a: frozenset[Edge], b: frozenset[Edge]) -> float:
    """The edges both close over the edges either closes (Jaccard); 0 when either closes none.

    >>> edge_overlap(frozenset({(1, 1, 2), (1, 2, 3)}), frozenset({(1, 2, 3)}))
    0.5
    """
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def times_overlap(a: Candidate, b: Candidate) -> bool:
    """Whether the two run at some common moment: no start is already started, no end is open."""
    a_start = a.start_ms if a.start_ms is not None else -math.inf
    b_start = b.start_ms if b.start_ms is not None else -math.inf
    a_end = a.end_ms if a.end_ms is not None else math.inf
    b_end = b.end_ms if b.end_ms is not None else math.inf
    return a_start < b_end and b_start < a_end


def starts_in_time(published: Candidate, folded: Candidate, *, at_ms: int) -> bool:
    """Whether ``published`` closes the road (nearly) as soon as ``folded`` does, from ``at_ms`` on:
    it starts no later than :data:`TIME_SLACK` of the other's remaining time after the other's start
    (a start not given, or past: ``at_ms``; an open end leaves no slack).

    >>> night = Candidate("op", None, "ROAD_CLOSED", None, frozenset(), 22, 29)
    >>> fair = Candidate("fair", Reporter("csv", 0), "ROAD_CLOSED", None, frozenset(), None, None)
    >>> starts_in_time(night, fair, at_ms=10), starts_in_time(fair, night, at_ms=10)
    (False, True)
    """
    start = _from_now(folded.start_ms, at_ms)
    slack = TIME_SLACK * max(folded.end_ms - start, 0) if folded.end_ms is not None else 0.0
    return _from_now(published.start_ms, at_ms) <= start + slack


def _from_now(start_ms: int | None, at_ms: int) -> int:
    """When a closure starts as far as the feeds go from ``at_ms`` on: a start not given, or past, is now."""
    return at_ms if start_ms is None else max(start_ms, at_ms)


#: the share of the folded closure's remaining time the published one may start after it
TIME_SLACK = 0.2


def closed_edges(edges: Iterable[Sequence[int]], direction: str | None) -> frozenset[Edge]:
    """The directed edges a closure matched to ``edges`` closes: both ways for BOTH_DIRECTIONS.

    >>> sorted(closed_edges([(7, 1, 2)], "BOTH_DIRECTIONS"))
    [(7, 1, 2), (7, 2, 1)]
    """
    closed = {(way, start, end) for way, start, end in edges}
    if direction == "BOTH_DIRECTIONS":
        closed |= {(way, end, start) for way, start, end in closed}
    return frozenset(closed)


# --------------------------------------------------------------------------- the store


def relink(conn: Connection, *, at_ms: int, run_id: int | None) -> tuple[int, int]:
    """Recompute the links among the active city events and write those that changed, each with a
    revision: ``linked`` (to the event published in its place) or ``unlinked`` (published again).
    Returns how many were linked and how many unlinked."""
    db = Bulk(conn)
    rows = db.fetch(
        "SELECT id, type, direction, start_ms, end_ms, match_id, road_match, same_as FROM events "
        "WHERE origin = 'city' AND status = 'active' ORDER BY id"  # rows written in one order: no two writers cross
    )
    sources = reporters(db, [row[0] for row in rows])
    candidates = [candidate for row in rows if (candidate := _candidate(row, sources.get(row[0]))) is not None]
    wanted = same_closures(candidates, at_ms=at_ms)
    changes = {row[0]: (row[7], wanted.get(row[0])) for row in rows if row[7] != wanted.get(row[0])}
    db.update(events, ("same_as",), "id", [(new, eid) for eid, (_old, new) in changes.items()])
    linked = [eid for eid, (_old, new) in changes.items() if new is not None]
    unlinked = [eid for eid, (_old, new) in changes.items() if new is None]
    for action, ids in (("linked", linked), ("unlinked", unlinked)):
        insert_revisions(db, ids, action, at_ms=at_ms, run_id=run_id,
                         changes=[{"same_as": list(changes[eid])} for eid in ids])
    return len(linked), len(unlinked)


def reporters(db: Bulk, ids: Sequence[str]) -> dict[str, Reporter]:
    """The source of each event among ``ids``, with its priority: the first in rank of the sources
    that list it, else the source whose poll created it. An operator's closures are absent."""
    found: dict[str, Reporter] = {}
    listed = db.where_in(
        "SELECT s.event_id, s.source_name, src.priority FROM sightings s "
        "JOIN sources src ON src.name = s.source_name WHERE", "s.event_id", list(ids),
    )
    for eid, name, priority in listed:
        reporter = Reporter(name, priority)
        if eid not in found or reporter.rank < found[eid].rank:
            found[eid] = reporter
    unlisted = [eid for eid in ids if eid not in found]
    created = db.where_in(
        "SELECT r.event_id, s.source, src.priority FROM revisions r JOIN sync_runs s ON s.id = r.run_id "
        "JOIN sources src ON src.name = s.source WHERE r.action IN ('created', 'history') AND", "r.event_id", unlisted,
    )
    found.update({eid: Reporter(name, priority) for eid, name, priority in created})
    return found


def _candidate(row: Sequence[Any], reporter: Reporter | None) -> Candidate | None:
    """The event of one row as a candidate; None when a value is not what the store writes (the
    event is then left unlinked: published as itself, or held back if it cannot be read)."""
    eid, kind_type, direction, start_ms, end_ms, match_id, road_match, _same_as = row
    if not (_is_millis(start_ms) and _is_millis(end_ms)):
        return None
    try:
        matched = loads(road_match)
        edges = closed_edges((matched or {}).get("edges") or [], direction)
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return None
    return Candidate(eid, reporter, kind_type, match_id, edges, start_ms, end_ms)


def _is_millis(value: Any) -> bool:
    """Whether ``value`` is a time as the store writes it (epoch milliseconds), or none."""
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


# --------------------------------------------------------------------------- what ``inspect event`` shows


@dataclass(frozen=True, slots=True)
class SameClosure:
    """An event's links: the event published in its place, and the events folded into it."""

    published_instead: tuple[str, Reporter | None] | None
    also_reported_by: list[tuple[str, Reporter | None]]


def links_of(conn: Connection, event_id: str, same_as: str | None) -> SameClosure:
    """The links of one event (``same_as`` is its own column), with the source of each linked event."""
    db = Bulk(conn)
    folded = [eid for (eid,) in db.fetch("SELECT id FROM events WHERE same_as = ? ORDER BY id", (event_id,))]
    sources: Mapping[str, Reporter] = reporters(db, [*folded, *([same_as] if same_as else [])])
    return SameClosure(
        published_instead=(same_as, sources.get(same_as)) if same_as else None,
        also_reported_by=[(eid, sources.get(eid)) for eid in folded],
    )
