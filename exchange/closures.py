"""Operator closures: add, update, end and list the city's own closures.

A closure typed by an operator is a city event like any imported one (``feeds.city.city_event``
validates it). With a road network configured, its points are routed along the named street
and extended to whole segments, the way Waze closes roads; without one, the polyline given is
published as it is (and the acceptance lint says so). Every change is a revision that records
the operator.

A divided road closed in both directions is two closures (see ``geo.closure``): the one drawn, and
``<its id>-opposite`` along the other carriageway in that carriageway's travel direction, whose
``parent_event`` is the first. The pair moves together: ``end``, ``cancel`` and ``update`` given
either id change both, in one transaction. An update that would make a pair one closure or one
closure a pair (moved off or onto a divided road, or ``ONE_DIRECTION`` asked of a pair) is refused
with the advice to cancel and add instead: a pair that came apart on its own would leave one
carriageway closed, or open, without anybody having asked for it.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, tzinfo
from typing import Any

import numpy as np
import orjson
from sqlalchemy import Connection, Engine, update

from exchange.bulk import Bulk, loads
from exchange.confirm import link_confirmations, undirected
from exchange.db import writing
from exchange.errors import ItemRejected, NotFound, StoreError, UnreadableEvent, UsageError
from exchange.model import CIFS_SUBTYPES, CityDetails, Event, RoadMatch, Status, from_millis, to_millis
from exchange.overrides import overrides_after
from exchange.placement import Placement
from exchange.runtime import now_ms
from exchange.same_closure import CITY_EVENTS_LOCK, relink
from exchange.schema import events
from exchange.store import (
    EVENT_COLUMNS,
    UPDATE_COLUMNS,
    StoredEvent,
    Unreadable,
    diff_rows,
    event_status,
    event_to_row,
    event_values,
    insert_revisions,
    load_event,
    read_rows,
    readable,
    select_events,
)
from feeds.city import city_event, text_problem
from feeds.lint import is_full_closure
from geo.closure import ClosureRoute, as_drawn, route_closure
from geo.names import normalize_street, numbered_apart

__all__ = [
    "CLEARABLE",
    "OPERATOR_NAMESPACE",
    "OPPOSITE_SUFFIX",
    "ClosureInput",
    "Created",
    "Outcome",
    "add_closure",
    "added_twice",
    "cancel_closure",
    "create_closure",
    "end_closure",
    "update_closure",
]

#: namespace of closures typed by operators: ids look like ``city:city:3f9a1c2b7d10``
OPERATOR_NAMESPACE = "city"
#: the closure of a divided road's other carriageway: ``city:city:3f9a1c2b7d10-opposite``, whose
#: ``parent_event`` is ``city:city:3f9a1c2b7d10``
OPPOSITE_SUFFIX = "-opposite"


@dataclass
class ClosureInput:
    """What an operator gives; ``points`` are (lon, lat) in travel order (a polyline or from/to)."""

    street: str
    points: Sequence[tuple[float, float]]
    type: str = "ROAD_CLOSED"
    subtype: str | None = None
    direction: str | None = None
    start: str | datetime | None = None
    end: str | datetime | None = None
    description: str | None = None
    schedule: Mapping[str, str] | None = None
    lane_impact: Mapping[str, Any] | None = None
    operator: str | None = None
    #: the operator's evidence that the work has started at ``start`` / will end at ``end`` (a crew on
    #: site, a signed order): WZDx/CWZ ``is_start_date_verified``/``is_end_date_verified``, never assumed
    verified_start: bool = False
    verified_end: bool = False


#: the optional fields ``update_closure`` can clear
CLEARABLE = ("start", "end", "subtype", "description", "schedule", "lane_impact")


@dataclass(frozen=True)
class Outcome:
    """What a lifecycle command did: the closure as it is now (None when its stored row cannot be
    read), the revision it recorded (None: nothing changed, nothing to publish) and what the
    operator should be told, if anything. ``also``: the ids of the closures changed with it (a
    divided road's other carriageway)."""

    event: Event | None
    action: str | None
    note: str | None = None
    also: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether the command wrote anything (then the feeds are to be published)."""
        return self.action is not None or bool(self.also)


@dataclass(frozen=True)
class Created:
    """A closure just stored, and what the operator should be told about its route, if anything;
    on a divided road closed in both directions, ``opposite`` is the other carriageway's closure."""

    event: Event
    note: str | None = None
    opposite: Event | None = None


def _event(
    spec: ClosureInput, source_id: str, zone: tzinfo, points: Sequence[tuple[float, float]], direction: str,
    parent_event: str | None = None,
) -> Event:
    for verified, field in ((spec.verified_start, "start"), (spec.verified_end, "end")):
        if verified and getattr(spec, field) is None:
            raise UsageError(f"--verified-{field}: the closure has no {field} to verify; give --{field}")
    try:
        event = city_event(
            OPERATOR_NAMESPACE, source_id, type=spec.type, subtype=spec.subtype, street=spec.street,
            coordinates=points, zone=zone, direction=direction, start=spec.start, end=spec.end,
            description=spec.description, schedule=spec.schedule, lane_impact=spec.lane_impact,
            parent_event=parent_event, operator=spec.operator, end_date_verified=spec.verified_end,
        )
    except ItemRejected as exc:
        raise UsageError(exc.message) from exc
    if event.details is not None:
        event.details.start_date_verified = spec.verified_start
        _check_schedule_meets_dates(event, zone)
    return event


def _check_schedule_meets_dates(event: Event, zone: tzinfo) -> None:
    """A weekly schedule none of whose hours falls between the start and the end closes nothing: WZDx
    would carry no road event and CIFS a closure that never applies (a Monday window on a Friday
    night). Refused, naming the dates."""
    from feeds.wzdx import schedule_occurrences

    schedule, start, end = event.details.schedule if event.details else None, event.start_time, event.end_time
    if not schedule or start is None or end is None:
        return
    if not schedule_occurrences(schedule, zone=zone, start=start, end=end, window_start=start, window_end=end):
        raise UsageError(f"schedule: none of its hours falls between the start and the end ({_when(start, zone)} "
                         f"to {_when(end, zone)})")


@dataclass(frozen=True)
class _Built:
    """A closure made from an operator's input: the event, what the operator should be told about its
    route, and on a divided road closed in both directions the other carriageway's closure."""

    event: Event
    note: str | None = None
    opposite: Event | None = None


def _build(spec: ClosureInput, source_id: str, zone: tzinfo, placement: Placement | None) -> _Built:
    """Validate, then route along the street when a network is there (a closure drawn against a
    one-way street is reversed; one of both directions on a divided road becomes a pair)."""
    event = _event(spec, source_id, zone, spec.points, spec.direction or "BOTH_DIRECTIONS")
    if placement is None or len(spec.points) < 2:
        return _Built(event)
    route = route_closure(placement.network, spec.street, np.asarray(spec.points, dtype=np.float64),
                          direction=event.direction or "BOTH_DIRECTIONS")
    if not route.edges:
        points = np.asarray(spec.points, dtype=np.float64)
        if placement.outside(points[:, 0], points[:, 1]).all():
            raise UsageError("polyline: outside the road network's area (are the coordinates right, lat then lon?)")
        raise UsageError(f"polyline: {route.reason}")
    renamed = _renamed(spec, route)
    if not is_full_closure(event):  # Waze closes whole segments; works, a lane or a hazard lie where drawn
        route = as_drawn(placement.network, route, np.asarray(spec.points, dtype=np.float64))
    notes = [note for note in (route.note, renamed, _extended(spec, route)) if note]
    if renamed:
        spec = replace(spec, street=route.streets[0])
    event = _routed(spec, source_id, zone, route)
    if route.opposite is None:
        return _Built(event, "; ".join(notes) or None)
    opposite = _routed(spec, source_id + OPPOSITE_SUFFIX, zone, route.opposite, parent_event=event.id)
    notes.insert(0, f"{spec.street!r} is a divided road there: both carriageways closed, {event.id} "
                    f"({_bound(route)}, as drawn) and {opposite.id} ({_bound(route.opposite)}, the other carriageway)")
    return _Built(event, "; ".join(notes), opposite)


def _same_sides(current: Event, built: _Built) -> _Built:
    """A moved pair keeps each id on its side: the carriageway running as the first id ran before
    stays that id's, whichever end the new points were drawn from (a partner never sees an id turn
    round)."""
    assert built.opposite is not None
    before, after = _line_bearing(current), _line_bearing(built.event)
    if before is None or after is None or abs((after - before + 180.0) % 360.0 - 180.0) <= 90.0:
        return built
    first, other = built.event, built.opposite
    sides = ("geometry", "road_match")
    swapped_first = first.model_copy(update={name: getattr(other, name) for name in sides})
    swapped_other = other.model_copy(update={name: getattr(first, name) for name in sides})
    rest = (built.note or "").partition("; ")[2]
    note = (f"{first.street!r} is a divided road there: both carriageways closed, {first.id} "
            f"({_heading_word(_line_bearing(swapped_first))}, its side as before) and {other.id} "
            f"({_heading_word(_line_bearing(swapped_other))}, the other carriageway)")
    return replace(built, event=swapped_first, opposite=swapped_other, note=f"{note}; {rest}" if rest else note)


def _line_bearing(event: Event) -> float | None:
    from feeds.lint import line_bearing_deg

    return line_bearing_deg(event.geometry.positions)


def _renamed(spec: ClosureInput, route: ClosureRoute) -> str | None:
    """The road's own name when the one given only resembles it ("9th Stret"): Waze matches names. A
    name of another number or compass side ("8th Street" for 9th Street's points) is refused: the
    street or the points are wrong, and either way the closure would go out where it was not meant."""
    if not route.streets or any(normalize_street(name) == normalize_street(spec.street) for name in route.streets):
        return None
    if all(numbered_apart(spec.street, name) for name in route.streets):
        raise UsageError(f"street: the points run along {route.streets[0]!r}, not {spec.street!r}; check the "
                         "street or the points")
    return f"street {spec.street!r} taken as {route.streets[0]!r}, the road's name there"


#: the whole segments a closure covers may exceed the span of its points by this share (and 25 m)
#: before the operator is told
_EXTENDED_SHARE = 0.25


def _extended(spec: ClosureInput, route: ClosureRoute) -> str | None:
    """Waze closes whole segments, junction to junction: say so when that is much more than drawn."""
    from feeds.lint import polyline_length_m

    drawn = polyline_length_m(list(spec.points))
    if route.length_m <= drawn * (1 + _EXTENDED_SHARE) + 25.0:
        return None
    return (f"closed junction to junction, as Waze closes whole segments: {route.length_m:.0f} m of road "
            f"(the points span {drawn:.0f} m)")


def _routed(
    spec: ClosureInput, source_id: str, zone: tzinfo, route: ClosureRoute, parent_event: str | None = None
) -> Event:
    points = [(round(float(lon), 6), round(float(lat), 6)) for lon, lat in route.polyline]
    event = _event(spec, source_id, zone, points, route.direction, parent_event)
    event.road_match = RoadMatch(edges=route.keys, distance_m=0.0, confidence=1.0, offset_m=0.0,
                                 covered_fraction=1.0)
    return event


_BOUNDS = ("northbound", "eastbound", "southbound", "westbound")


def _bound(route: ClosureRoute) -> str:
    """Which way a route runs, for people: "eastbound" from 45 to 135 degrees."""
    return _heading_word(route.bearing_deg)


def _heading_word(bearing_deg: float | None) -> str:
    return _BOUNDS[round((bearing_deg or 0.0) / 90.0) % 4]


def add_closure(engine: Engine, spec: ClosureInput, *, zone: tzinfo, placement: Placement | None) -> Event:
    """Store a new closure; returns it (its id is what ``closure end`` takes)."""
    return create_closure(engine, spec, zone=zone, placement=placement).event


def create_closure(engine: Engine, spec: ClosureInput, *, zone: tzinfo, placement: Placement | None) -> Created:
    """``add_closure``, with what the operator should be told about the route, if anything, and the
    other carriageway's closure on a divided road closed in both directions (stored with it)."""
    built = _build(spec, secrets.token_hex(6), zone, placement)
    created = [built.event] if built.opposite is None else [built.event, built.opposite]
    _commit(engine, [_Write("created", event.id, None, event) for event in created], spec.operator, zone)
    return Created(built.event, built.note, built.opposite)


def added_twice(engine: Engine, event: Event, zone: tzinfo) -> list[str]:
    """Other live closures of the operators of the same kind (category, full or lane closure) on the same
    street that overlap ``event`` in time (their schedules' windows too, hours in ``zone``) and place (its
    edges, or its extent without a road network): what a second submission of one closure looks like,
    for a note. The other carriageway's closure of a pair is not one."""
    first = event.id.removesuffix(OPPOSITE_SUFFIX)
    query = select_events().where(
        events.c.source == event.source, events.c.origin == "city", events.c.status == Status.ACTIVE.value,
        events.c.street == event.street, events.c.category == event.category.value,
        events.c.id.not_in((event.id, first, first + OPPOSITE_SUFFIX)),
    ).order_by(events.c.id)
    start = event.start_time or from_millis(now_ms())
    found = []
    with engine.connect() as conn:
        for item in readable(read_rows(conn, query), lambda _item: None):
            other = item.event
            if (other.end_time is not None and other.end_time <= start) or (
                    event.end_time is not None and other.start_time is not None and event.end_time <= other.start_time):
                continue
            if (is_full_closure(other) == is_full_closure(event) and _same_place(event, other)
                    and _windows_meet(event, other, zone)):
                found.append(other.id)
    return found


def _windows_meet(event: Event, other: Event, zone: tzinfo) -> bool:
    """Whether two closures whose periods overlap are in effect at some same time: a closure of Monday
    nights and one of Saturday nights on one street are two closures, not one added twice. Looked for
    in the first two weeks they share (their schedules repeat weekly)."""
    from feeds.wzdx import schedule_occurrences

    schedules = [e.details.schedule if e.details else None for e in (event, other)]
    if not any(schedules):
        return True
    starts = [e.start_time for e in (event, other) if e.start_time is not None]
    low = max(starts) if starts else from_millis(now_ms())
    ends = [e.end_time for e in (event, other) if e.end_time is not None]
    high = min([*ends, low + timedelta(days=14)])
    spans = [schedule_occurrences(schedule, zone=zone, start=low, end=high, window_start=low, window_end=high)
             if schedule else None for schedule in schedules]
    mine, theirs = spans
    if mine is None or theirs is None:  # one is in effect all along: the other's windows meet it
        return bool(mine or theirs)
    return any(a.start < b.end and b.start < a.end for a in mine for b in theirs)


def _same_place(event: Event, other: Event) -> bool:
    edges = {(way, a, b) for way, a, b in event.road_match.edges} if event.road_match else set()
    theirs = {(way, a, b) for way, a, b in other.road_match.edges} if other.road_match else set()
    if edges and theirs:
        if event.direction == "BOTH_DIRECTIONS" or other.direction == "BOTH_DIRECTIONS":
            # a closure of both directions covers one of either direction there, however it was drawn
            return not undirected(edges).isdisjoint(undirected(theirs))
        return not edges.isdisjoint(theirs)
    mine, others = event.geometry.positions, other.geometry.positions
    return (max(lon for lon, _ in mine) >= min(lon for lon, _ in others)
            and min(lon for lon, _ in mine) <= max(lon for lon, _ in others)
            and max(lat for _, lat in mine) >= min(lat for _, lat in others)
            and min(lat for _, lat in mine) <= max(lat for _, lat in others))


# -- finding a closure, and its pair on a divided road

Found = StoredEvent | Unreadable


def _find(engine: Engine, closure_id: str) -> Found:
    """The closure as stored, or why its row cannot be read (``NotFound`` when there is none)."""
    problem = text_problem(closure_id, controls=False)
    if problem is not None:
        raise UsageError(f"closure id {problem}")
    with engine.connect() as conn:
        found = load_event(conn, closure_id)
    if found is None or found.row["origin"] != "city":
        raise NotFound(f"no city closure with id {closure_id!r}")
    return found


def _with_other(engine: Engine, closure_id: str) -> tuple[Found, Found | None]:
    """The closure, and the other carriageway's when it is one of a divided road's pair: the
    ``-opposite`` one whose ``parent_event`` is the first."""
    found = _find(engine, closure_id)
    first_id = closure_id.removesuffix(OPPOSITE_SUFFIX)
    other_id = first_id if first_id != closure_id else closure_id + OPPOSITE_SUFFIX
    with engine.connect() as conn:
        other = load_event(conn, other_id)
    if other is None or other.row["origin"] != "city":
        return found, None
    opposite = found if other_id == first_id else other
    return found, other if _parent_event(opposite) == first_id else None


def _parent_event(found: Found) -> str | None:
    if isinstance(found, StoredEvent):
        return found.event.details.parent_event if found.event.details else None
    try:  # a row that does not read may still have readable details
        details = loads(found.row["details"])
    except orjson.JSONDecodeError:
        return None
    parent = details.get("parent_event") if isinstance(details, dict) else None
    return parent if isinstance(parent, str) else None


def _readable(found: Found) -> StoredEvent:
    """The closure; ``UnreadableEvent`` when its stored row cannot be read."""
    if isinstance(found, Unreadable):
        raise UnreadableEvent(f"closure {found.id} cannot be read: {found.reason}; it cannot be changed until the "
                              "row is mended (`closure end` and `closure cancel` still work)")
    return found


def _paired(outcome: Outcome, other_id: str, other: Outcome) -> Outcome:
    """The outcome of one closure of a pair, saying what the command did to the other one too."""
    if other.action is None:
        return outcome
    said = f"closure {other_id}, the other carriageway of this divided road: {other.action} too"
    if other.note:
        said = f"{said} ({other.note})"
    return Outcome(outcome.event, outcome.action, f"{outcome.note}; {said}" if outcome.note else said,
                   also=(other_id,))


# -- the lifecycle


def _when(moment: datetime, zone: tzinfo | None) -> str:
    return moment.astimezone(zone).isoformat(timespec="seconds") if zone else moment.isoformat(timespec="seconds")


def update_closure(
    engine: Engine, closure_id: str, changes: Mapping[str, Any], *, zone: tzinfo, placement: Placement | None,
    operator: str | None, clear: Sequence[str] = (), reopen: bool = False,
) -> Outcome:
    """Change the fields in ``changes`` (street, points, type, subtype, direction, start, end,
    description, schedule, lane_impact, verified_start, verified_end), clear those in ``clear``, keep
    every other one. A changed or cleared start (end) is no longer verified unless ``changes`` says so again.

    An ended or cancelled closure is changed only with ``reopen``: it becomes active again, and an
    end already past is cleared unless ``changes`` gives a new one (which must be in the future).
    ``reopen`` on an active closure changes nothing by itself.

    Either closure of a divided road's pair changes both: their fields are the first's with the
    changes, each keeps its own line unless it is moved (street or points), and a move routes both
    directions again. A change that would end the pairing, or make a single closure a pair, is refused.

    A closure changed by somebody else between this reading and writing it is read again and the
    change worked out anew (``_again``): an update racing a cancel never brings the closure back.
    """
    return _again(closure_id, lambda: _update(engine, closure_id, changes, zone=zone, placement=placement,
                                              operator=operator, clear=clear, reopen=reopen))


def _update(
    engine: Engine, closure_id: str, changes: Mapping[str, Any], *, zone: tzinfo, placement: Placement | None,
    operator: str | None, clear: Sequence[str], reopen: bool,
) -> Outcome:
    unknown = sorted(set(clear) - set(CLEARABLE))
    if unknown:
        raise UsageError(f"cannot clear {', '.join(unknown)} (only {', '.join(CLEARABLE)})")
    both = sorted(set(clear) & set(changes))
    if both:
        raise UsageError(f"{both[0]}: given and cleared at once")
    named, other = _with_other(engine, closure_id)
    first, opposite = (other, named) if other is not None and closure_id.endswith(OPPOSITE_SUFFIX) else (named, other)
    stored = _readable(first)
    current = stored.event
    stored_opposite = _readable(opposite) if opposite is not None else None
    at = now_ms()
    # an active closure whose end has passed is ended as people see it, and is reopened so
    over = current.status is Status.ACTIVE and event_status(current, at) == Status.ENDED.value
    closed = current.status is not Status.ACTIVE or over
    if closed and not reopen:
        status = f"{Status.ENDED.value} (its end has passed)" if over else current.status.value
        raise UsageError(f"closure {closure_id} is {status}: changing it would not bring it back "
                         "to the feeds; give --reopen to make it active again with the change")
    if not changes and not clear and not closed:
        return Outcome(_readable(named).event, None, f"closure {closure_id} is neither ended nor cancelled; "
                       "nothing changed")
    details = current.details or CityDetails()
    fields: dict[str, Any] = {
        "street": current.street or "",
        "type": current.type,
        "subtype": current.subtype,
        "direction": current.direction,
        # in the city's zone, as the operator gives times: an error then names both the same way
        "start": current.start_time.astimezone(zone) if current.start_time else None,
        "end": current.end_time.astimezone(zone) if current.end_time else None,
        "description": details.description,
        "schedule": details.schedule,
        "lane_impact": details.lane_impact.model_dump() if details.lane_impact else None,
        # evidence for a time holds for that time only: a new or cleared one is unverified unless said again
        "verified_start": details.start_date_verified and current.start_time is not None
        and "start" not in changes and "start" not in clear,
        "verified_end": details.end_date_verified and current.end_time is not None
        and "end" not in changes and "end" not in clear,
    }
    fields.update(dict.fromkeys(clear))
    fields.update({key: value for key, value in changes.items() if key != "points"})
    _subtype_follows_type(changes, fields)
    if closed and "end" not in changes and current.end_time is not None and to_millis(current.end_time) <= at:
        # reopened: it no longer ends when it was ended; an import ends when its source says, if that is ahead
        source_end = (details.overridden or {}).get("end_ms")
        if isinstance(source_end, int) and source_end > at:
            fields["end"] = from_millis(source_end).astimezone(zone)
            fields["verified_end"] = bool((details.overridden or {}).get("details.end_date_verified"))
        else:
            fields["end"], fields["verified_end"] = None, False
    relocated = "points" in changes or "street" in changes
    # a closure turned into a full one (or a lane closure) is placed again: junction to junction (or where drawn);
    # one given other directions too: one-way streets and divided roads decide what it can close, as for `add`
    redirected = changes.get("direction", current.direction) != current.direction
    refull = not relocated and placement is not None and _full_after(fields, current, zone) != is_full_closure(current)
    refit = not relocated and placement is not None and (redirected or refull)
    moved = relocated or refit
    if stored_opposite is not None:
        pair = f"closures {current.id} and {stored_opposite.event.id} close both carriageways of a divided road"
        if changes.get("direction") == "ONE_DIRECTION":
            raise UsageError(f"{pair}; to close one direction only, cancel them and add a ONE_DIRECTION closure")
        # each is one-way along its carriageway; moved, both directions are routed again
        fields["direction"] = "BOTH_DIRECTIONS" if moved else current.direction
    spec = ClosureInput(points=changes.get("points") or current.geometry.positions, operator=operator, **fields)
    built = _build(spec, current.source_id, zone, placement if moved else None)
    if stored_opposite is not None and moved and built.opposite is None:
        raise UsageError(f"{pair}, and {spec.street} is not divided where they would move (or there is no road "
                         "network to route them); cancel them and add a new closure there")
    if stored_opposite is None and built.opposite is not None:
        if redirected and not relocated:
            raise UsageError(f"closure {closure_id} lies on one carriageway of divided {spec.street!r}: closing both "
                             "directions takes a closure of each; cancel it and add a BOTH_DIRECTIONS closure there")
        raise UsageError(f"{spec.street!r} is a divided road where closure {closure_id} would move: it would close "
                         "one carriageway only; cancel it and add a new closure there to close both")
    if stored_opposite is not None and built.opposite is not None:
        built = _same_sides(current, built)
    if refull and not is_full_closure(built.event):
        said = "its stretch stays the whole segments it closed: give --polyline to draw the lanes' own"
        built = replace(built, note=f"{built.note}; {said}" if built.note else said)
    revised = [_revised(built.event, stored, changes, moved=moved, closed=closed, at=at, zone=zone)]
    if stored_opposite is not None:
        opposite_event = built.opposite or _unmoved(spec, stored_opposite.event, zone)
        revised.append(_revised(opposite_event, stored_opposite, changes, moved=moved, closed=closed, at=at,
                                zone=zone))
    if not any(_changes_something(write) for _outcome, write in revised):
        said = "nothing changed: the closure already says so"
        return Outcome(_readable(named).event, None, f"{built.note}; {said}" if built.note else said)
    _commit(engine, [write for _outcome, write in revised], operator, zone)
    if named is not first:
        revised.reverse()
    (outcome, _write), *rest = revised
    outcome = replace(outcome, note=built.note)
    if not rest:
        return outcome
    other_outcome, other_write = rest[0]
    if moved:  # the route's note names both
        return replace(outcome, also=(other_write.event_id,))
    return _paired(outcome, other_write.event_id, other_outcome)


def _subtype_follows_type(changes: Mapping[str, Any], fields: Mapping[str, Any]) -> None:
    """A new type with the closure's old subtype, which it does not have: say how to go on."""
    kind, subtype = str(changes.get("type") or "").upper(), fields.get("subtype")
    if "subtype" in changes or not subtype or kind not in CIFS_SUBTYPES or subtype in CIFS_SUBTYPES[kind]:
        return
    allowed = ", ".join(sorted(CIFS_SUBTYPES[kind]))
    choice = f"give --subtype ({allowed}) or --clear subtype" if allowed else "give --clear subtype (it has none)"
    raise UsageError(f"the closure's subtype {subtype} does not belong to type {kind}: {choice}")


def _full_after(fields: Mapping[str, Any], current: Event, zone: tzinfo) -> bool:
    """Whether the closure the changed ``fields`` make is a full closure (its lanes, which a change never
    touches, as they are)."""
    probe = _event(ClosureInput(points=current.geometry.positions, **fields), current.source_id, zone,
                   current.geometry.positions, fields.get("direction") or current.direction or "ONE_DIRECTION")
    if probe.details is not None and current.details is not None:
        probe.details.lanes = current.details.lanes
    return is_full_closure(probe)


def _unmoved(spec: ClosureInput, current: Event, zone: tzinfo) -> Event:
    """The other carriageway's closure with the fields of ``spec``, on its own line and direction."""
    return _event(spec, current.source_id, zone, current.geometry.positions, current.direction or "ONE_DIRECTION")


def _record_overrides(current: Event, changed: Event, at: int) -> None:
    """For an import (it has its source's digest): what the operator changed of it is kept through its
    source's next versions that leave those fields as they were (``exchange.overrides``)."""
    if current.digest and changed.details is not None:
        after = event_to_row(changed, now_ms=at)
        overrides_after(event_to_row(current, now_ms=at), after)
        changed.details.overridden = after["details"].get("overridden")


def _revised(
    event: Event, stored: StoredEvent, changes: Mapping[str, Any], *, moved: bool, closed: bool, at: int,
    zone: tzinfo,
) -> tuple[Outcome, _Write]:
    """``update_closure``'s new version of a stored closure: what the command does not set stays as it was."""
    current = stored.event
    details = current.details or CityDetails()
    if not moved:
        event.road_match = current.road_match
    # an import keeps its source's namespace: it was built as an operator's closure is
    event.id, event.source = current.id, current.source
    event.city, event.country, event.attributes, event.digest = (
        current.city, current.country, current.attributes, current.digest)
    if event.details is not None:
        event.details.lanes = details.lanes
        event.details.parent_event = details.parent_event
        event.details.reference = details.reference
        _record_overrides(current, event, at)
    if not moved and "direction" not in changes:  # an import may sign none; "kept when not given"
        event.direction = current.direction
    if closed:
        if event.end_time is not None and to_millis(event.end_time) <= at:
            raise UsageError(f"end: {_when(event.end_time, zone)} is past; a reopened closure needs an end in the "
                             "future, or none")
        return Outcome(event, "reopened"), _revision(stored.row, event, "reopened")
    event.status = current.status
    return Outcome(event, "updated"), _revision(stored.row, event, "updated")


def end_closure(
    engine: Engine, closure_id: str, *, operator: str | None, zone: tzinfo, cancel: bool = False,
) -> Outcome:
    """End a closure now: it stays in the feeds with its end time for a while.

    One that has not started yet is cancelled instead (it leaves the feeds): an end before the start
    is no closure, and the feeds would be invalid. One whose end is already past keeps that end.
    Ending an ended or cancelled closure changes nothing. ``cancel`` is :func:`cancel_closure`. On a
    divided road, the other carriageway's closure is ended with it.
    """
    if cancel:
        return cancel_closure(engine, closure_id, operator=operator, zone=zone)
    at = now_ms()
    return _apply(engine, closure_id, operator, zone, lambda found: _ending(found, at, zone))


def cancel_closure(engine: Engine, closure_id: str, *, operator: str | None, zone: tzinfo) -> Outcome:
    """Withdraw a closure, whatever its state: it leaves the feeds at once. Cancelling a cancelled
    one changes nothing. A closure whose stored row cannot be read is cancelled all the same (only
    its status changes). On a divided road, the other carriageway's closure is cancelled with it.
    ``zone``: the city's, as for every change (the Waze feed is read again against closures in a window)."""
    return _apply(engine, closure_id, operator, zone, _cancelling)


def _apply(
    engine: Engine, closure_id: str, operator: str | None, zone: tzinfo,
    step: Callable[[Found], tuple[Outcome, _Write | None]],
) -> Outcome:
    """``step`` on the closure and on its pair's other one, if any: written in one transaction (read
    again and done anew when another command changed them meanwhile: ``_again``)."""
    return _again(closure_id, lambda: _step_once(engine, closure_id, operator, zone, step))


def _step_once(
    engine: Engine, closure_id: str, operator: str | None, zone: tzinfo,
    step: Callable[[Found], tuple[Outcome, _Write | None]],
) -> Outcome:
    named, other = _with_other(engine, closure_id)
    outcome, write = step(named)
    if other is None:
        _commit(engine, [write] if write is not None else [], operator, zone)
        return outcome
    other_outcome, other_write = step(other)
    _commit(engine, [change for change in (write, other_write) if change is not None], operator, zone)
    return _paired(outcome, other.id if isinstance(other, Unreadable) else other.event.id, other_outcome)


def _ending(found: Found, at: int, zone: tzinfo) -> tuple[Outcome, _Write | None]:
    if isinstance(found, Unreadable):
        return _ending_unreadable(found, at)
    current, row, closure_id = found.event, found.row, found.event.id
    if current.status is Status.ENDED:
        ended_at = f" at {_when(current.end_time, zone)}" if current.end_time else ""
        return Outcome(current, None, f"closure {closure_id} already ended{ended_at}; nothing changed"), None
    if current.status is Status.CANCELLED:
        return Outcome(current, None, f"closure {closure_id} is cancelled, not in the feeds; nothing to end"), None
    if current.start_time is not None and to_millis(current.start_time) >= at:
        cancelled = current.model_copy(deep=True)
        cancelled.status = Status.CANCELLED
        note = f"closure {closure_id} had not started: cancelled, it leaves the feeds"
        return Outcome(cancelled, "cancelled", note), _revision(row, cancelled, "cancelled")
    ended = current.model_copy(deep=True)
    ended.status = Status.ENDED
    kept: str | None = None
    if current.end_time is None or to_millis(current.end_time) > at:
        ended.end_time = from_millis(at)
        if ended.details is not None:  # the operator says it is over: evidence for the end (WZDx/CWZ)
            ended.details.end_date_verified = True
            _record_overrides(current, ended, at)  # an import: its source's end, for a reopen
    else:
        kept = f"closure {closure_id} had already ended at {_when(current.end_time, zone)}; that end is kept"
    return Outcome(ended, "ended", kept), _revision(row, ended, "ended")


def _ending_unreadable(found: Unreadable, at: int) -> tuple[Outcome, _Write | None]:
    """``end_closure`` of a closure whose stored row cannot be read: the same decisions, taken on
    the stored status, start and end alone (numbers it can compare), and only those columns change."""
    row, shown = found.row, found.id
    status, start, end = row["status"], row["start_ms"], row["end_ms"]
    if status == Status.ENDED.value:
        return Outcome(None, None, f"closure {shown} already ended; nothing changed"), None
    if status == Status.CANCELLED.value:
        return Outcome(None, None, f"closure {shown} is cancelled, not in the feeds; nothing to end"), None
    unread = f"closure {shown} cannot be read ({found.reason})"
    if _number(start) and start >= at:
        return _columns(found, {"status": Status.CANCELLED.value}, "cancelled", f"{unread}; it had not started: "
                        "cancelled (only its status changed), it leaves the feeds")
    if _number(end) and end <= at:
        return _columns(found, {"status": Status.ENDED.value}, "ended",
                        f"{unread}; ended (only its status changed; its end, already past, is kept)")
    return _columns(found, {"status": Status.ENDED.value, "end_ms": at}, "ended",
                    f"{unread}; ended now (only its status and end changed)")


def _cancelling(found: Found) -> tuple[Outcome, _Write | None]:
    if isinstance(found, Unreadable):
        if found.row["status"] == Status.CANCELLED.value:
            return Outcome(None, None, f"closure {found.id} is already cancelled; nothing changed"), None
        return _columns(found, {"status": Status.CANCELLED.value}, "cancelled",
                        f"closure {found.id} cannot be read ({found.reason}); cancelled: only its status changed")
    current = found.event
    if current.status is Status.CANCELLED:
        return Outcome(current, None, f"closure {current.id} is already cancelled; nothing changed"), None
    cancelled = current.model_copy(deep=True)
    cancelled.status = Status.CANCELLED
    return Outcome(cancelled, "cancelled"), _revision(found.row, cancelled, "cancelled")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# -- writing


@dataclass(frozen=True)
class _Write:
    """One closure's change for :func:`_commit`: its new version, or for a stored row that cannot be
    read only some of its columns; ``row`` is the closure as stored before (None: a new one)."""

    action: str
    event_id: str
    row: Mapping[str, Any] | None
    change: Event | Mapping[str, Any]


def _revision(row: Mapping[str, Any], event: Event, action: str) -> _Write:
    """The stored closure ``row`` replaced by ``event``, refused when the feeds could not carry it."""
    if (event.status is not Status.CANCELLED and event.start_time is not None and event.end_time is not None
            and event.end_time <= event.start_time):
        # the feeds would be invalid, and no publication would go out until it is mended
        raise UsageError(f"closure {event.id} would end ({event.end_time.isoformat()}) before it starts "
                         f"({event.start_time.isoformat()}); nothing changed")
    return _Write(action, event.id, row, event)


def _columns(
    found: Unreadable, values: dict[str, Any], action: str, note: str | None = None
) -> tuple[Outcome, _Write]:
    """Change only ``values`` (status, end) of a stored row that cannot be read."""
    return Outcome(None, action, note), _Write(action, found.row["id"], found.row, values)


def _commit(engine: Engine, writes: Sequence[_Write], operator: str | None, zone: tzinfo) -> None:
    """Store the changes, each with a revision naming the operator, in one transaction (so a divided
    road's pair never changes by halves), and link the city's closures again: an imported closure the
    operator's stands for leaves the feeds, or comes back once the operator's is changed or withdrawn;
    the Waze feed is read again against every closure in effect (``zone`` reads schedules' hours)."""
    if not writes:
        return
    at = now_ms()
    with writing(engine, CITY_EVENTS_LOCK) as conn:
        _unchanged_since_read(conn, writes)
        db = Bulk(conn)
        for write in writes:
            changes: dict[str, Any] | None = None
            if not isinstance(write.change, Event):  # a row that cannot be read: only these columns
                conn.execute(update(events).where(events.c.id == write.event_id).values(**write.change,
                                                                                       updated_ms=at))
                changes = {name: [write.row[name] if write.row else None, value]
                           for name, value in write.change.items()}
            elif write.row is None:
                db.insert(events, EVENT_COLUMNS, [event_values(event_to_row(write.change, now_ms=at), EVENT_COLUMNS)])
            else:
                new_row = event_to_row(write.change, now_ms=at)
                db.update(events, UPDATE_COLUMNS, "id", [(*event_values(new_row, UPDATE_COLUMNS), write.event_id)])
                changes = diff_rows(tuple(write.row[c] for c in EVENT_COLUMNS), new_row)
            insert_revisions(db, [write.event_id], write.action, at_ms=at,
                             changes=None if changes is None else [changes], operator=operator)
        link_confirmations(conn, at, zone)
        relink(conn, at_ms=at, run_id=None)


def _changes_something(write: _Write) -> bool:
    """Whether a change of a stored closure differs from it in what a revision records (a misspelt
    street that resolves to the name it has, the description it has, is no change)."""
    if write.row is None or not isinstance(write.change, Event):
        return True
    stored = tuple(write.row[name] for name in EVENT_COLUMNS)
    return bool(diff_rows(stored, event_to_row(write.change, now_ms=0)))


class _ChangedMeanwhile(Exception):
    """A closure changed (or appeared) between a command reading it and writing its change."""


def _unchanged_since_read(conn: Connection, writes: Sequence[_Write]) -> None:
    """Raise ``_ChangedMeanwhile`` when a closure's stored row is no longer the one its change was worked
    out from. Only what a change rewrites is compared: the Waze status and cluster columns the daemon
    keeps up to date are not, and a change leaves them alone."""
    for write in writes:
        # read as the command read it (text that is not UTF-8 included), so that equal means unchanged
        stored = load_event(conn, write.event_id)
        if write.row is None and stored is None:
            continue
        if (write.row is None or stored is None
                or any(stored.row[name] != write.row[name] for name in UPDATE_COLUMNS)):
            raise _ChangedMeanwhile(write.event_id)


def _again(closure_id: str, operation: Callable[[], Outcome]) -> Outcome:
    """``operation`` (read, work out the change, commit), done anew while another command changes the
    closure between its reading and its writing; the last attempt's refusal, if any, is the answer."""
    for attempt in range(_ATTEMPTS):
        try:
            return operation()
        except _ChangedMeanwhile:
            if attempt + 1 < _ATTEMPTS:  # two commands retrying in step would collide again: wait apart
                time.sleep(random.uniform(0.0, _BACK_OFF_S * 2 ** attempt))
    raise StoreError(f"closure {closure_id} kept changing while this command ran ({_ATTEMPTS} attempts); "
                     "nothing was changed: look at it (`closure list`) and try again")


#: how often a command reads a closure again that others keep changing under it
_ATTEMPTS = 5
#: the first wait before reading again, at most (seconds; doubled each attempt, drawn at random below it)
_BACK_OFF_S = 0.05
