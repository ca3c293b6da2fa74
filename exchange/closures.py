"""Operator closures: add, update, end and list the city's own closures.

A closure typed by an operator is a city event like any imported one (``feeds.city.city_event``
validates it). With a road network configured, its points are routed along the named street
and extended to whole segments, the way Waze closes roads; without one, the polyline given is
published as it is (and the acceptance lint says so). Every change is a revision that records
the operator.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

import numpy as np
from sqlalchemy import Engine, update

from exchange.bulk import Bulk
from exchange.confirm import link_confirmations
from exchange.db import writing
from exchange.errors import ItemRejected, NotFound, UnreadableEvent, UsageError
from exchange.model import CityDetails, Event, LineString, RoadMatch, Status, from_millis, to_millis
from exchange.placement import Placement
from exchange.runtime import now_ms
from exchange.schema import events
from exchange.store import (
    EVENT_COLUMNS,
    UPDATE_COLUMNS,
    StoredEvent,
    Unreadable,
    diff_rows,
    event_to_row,
    event_values,
    insert_revisions,
    load_event,
)
from feeds.city import city_event, text_problem
from geo.closure import route_closure

__all__ = [
    "CLEARABLE",
    "OPERATOR_NAMESPACE",
    "ClosureInput",
    "Created",
    "Outcome",
    "add_closure",
    "cancel_closure",
    "create_closure",
    "end_closure",
    "update_closure",
]

#: namespace of closures typed by operators: ids look like ``city:city:3f9a1c2b7d10``
OPERATOR_NAMESPACE = "city"


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


#: the optional fields ``update_closure`` can clear
CLEARABLE = ("start", "end", "subtype", "description", "schedule", "lane_impact")


@dataclass(frozen=True)
class Outcome:
    """What a lifecycle command did: the closure as it is now (None when its stored row cannot be
    read), the revision it recorded (None: nothing changed, nothing to publish) and what the
    operator should be told, if anything."""

    event: Event | None
    action: str | None
    note: str | None = None


@dataclass(frozen=True)
class Created:
    """A closure just stored, and what the operator should be told about its route, if anything."""

    event: Event
    note: str | None = None


def _event(
    spec: ClosureInput, source_id: str, zone: tzinfo, points: Sequence[tuple[float, float]], direction: str
) -> Event:
    try:
        return city_event(
            OPERATOR_NAMESPACE, source_id, type=spec.type, subtype=spec.subtype, street=spec.street,
            coordinates=points, zone=zone, direction=direction, start=spec.start, end=spec.end,
            description=spec.description, schedule=spec.schedule, lane_impact=spec.lane_impact,
            operator=spec.operator,
        )
    except ItemRejected as exc:
        raise UsageError(exc.message) from exc


def _build(
    spec: ClosureInput, source_id: str, zone: tzinfo, placement: Placement | None
) -> tuple[Event, str | None]:
    """Validate, then route along the street when a network is there; with what the operator
    should be told about the route (a closure drawn against a one-way street is reversed)."""
    event = _event(spec, source_id, zone, spec.points, spec.direction or "BOTH_DIRECTIONS")
    if placement is None or len(spec.points) < 2:
        return event, None
    route = route_closure(placement.network, spec.street, np.asarray(spec.points, dtype=np.float64),
                          direction=event.direction or "BOTH_DIRECTIONS")
    if not route.edges:
        raise UsageError(f"polyline: {route.reason}")
    routed = [(round(float(lon), 6), round(float(lat), 6)) for lon, lat in route.polyline]
    event = _event(spec, source_id, zone, routed, route.direction)
    event.road_match = RoadMatch(edges=route.keys, distance_m=0.0, confidence=1.0, offset_m=0.0,
                                 covered_fraction=1.0)
    return event, route.note


def add_closure(engine: Engine, spec: ClosureInput, *, zone: tzinfo, placement: Placement | None) -> Event:
    """Store a new closure; returns it (its id is what ``closure end`` takes)."""
    return create_closure(engine, spec, zone=zone, placement=placement).event


def create_closure(engine: Engine, spec: ClosureInput, *, zone: tzinfo, placement: Placement | None) -> Created:
    """``add_closure``, with what the operator should be told about the route, if anything."""
    event, note = _build(spec, secrets.token_hex(6), zone, placement)
    at = now_ms()
    row = event_to_row(event, now_ms=at)
    with writing(engine) as conn:
        db = Bulk(conn)
        db.insert(events, EVENT_COLUMNS, [event_values(row, EVENT_COLUMNS)])
        insert_revisions(db, [event.id], "created", at_ms=at, operator=spec.operator)
        link_confirmations(conn, at)
    return Created(event, note)


def _find(engine: Engine, closure_id: str) -> StoredEvent | Unreadable:
    """The closure as stored, or why its row cannot be read (``NotFound`` when there is none)."""
    problem = text_problem(closure_id, controls=False)
    if problem is not None:
        raise UsageError(f"closure id {problem}")
    with engine.connect() as conn:
        found = load_event(conn, closure_id)
    if found is None or found.row["origin"] != "city":
        raise NotFound(f"no city closure with id {closure_id!r}")
    return found


def _load(engine: Engine, closure_id: str) -> tuple[Event, dict[str, Any]]:
    """The closure and its columns; ``UnreadableEvent`` when its stored row cannot be read."""
    found = _find(engine, closure_id)
    if isinstance(found, Unreadable):
        raise UnreadableEvent(f"closure {found.id} cannot be read: {found.reason}; it cannot be changed until the "
                              "row is mended (`closure end` and `closure cancel` still work)")
    return found.event, found.row


def _when(moment: datetime, zone: tzinfo | None) -> str:
    return moment.astimezone(zone).isoformat(timespec="seconds") if zone else moment.isoformat(timespec="seconds")


def update_closure(
    engine: Engine, closure_id: str, changes: Mapping[str, Any], *, zone: tzinfo, placement: Placement | None,
    operator: str | None, clear: Sequence[str] = (), reopen: bool = False,
) -> Outcome:
    """Change the fields in ``changes`` (street, points, type, subtype, direction, start, end,
    description, schedule, lane_impact), clear those in ``clear``, keep every other one.

    An ended or cancelled closure is changed only with ``reopen``: it becomes active again, and an
    end already past is cleared unless ``changes`` gives a new one (which must be in the future).
    ``reopen`` on an active closure changes nothing by itself.
    """
    unknown = sorted(set(clear) - set(CLEARABLE))
    if unknown:
        raise UsageError(f"cannot clear {', '.join(unknown)} (only {', '.join(CLEARABLE)})")
    both = sorted(set(clear) & set(changes))
    if both:
        raise UsageError(f"{both[0]}: given and cleared at once")
    current, row = _load(engine, closure_id)
    at = now_ms()
    closed = current.status is not Status.ACTIVE
    if closed and not reopen:
        raise UsageError(f"closure {closure_id} is {current.status.value}: changing it would not bring it back "
                         "to the feeds; give --reopen to make it active again with the change")
    if not changes and not clear and not closed:
        return Outcome(current, None, f"closure {closure_id} is neither ended nor cancelled; nothing changed")
    details = current.details or CityDetails()
    fields: dict[str, Any] = {
        "street": current.street or "",
        "type": current.type,
        "subtype": current.subtype,
        "direction": current.direction,
        "start": current.start_time,
        "end": current.end_time,
        "description": details.description,
        "schedule": details.schedule,
        "lane_impact": details.lane_impact.model_dump() if details.lane_impact else None,
    }
    fields.update(dict.fromkeys(clear))
    fields.update({key: value for key, value in changes.items() if key != "points"})
    if closed and "end" not in changes and current.end_time is not None and to_millis(current.end_time) <= at:
        fields["end"] = None  # reopened: it no longer ends when it was ended
    spec = ClosureInput(points=changes.get("points") or _points(current), operator=operator, **fields)
    rerouted = "points" in changes or "street" in changes
    event, note = _build(spec, current.source_id, zone, placement if rerouted else None)
    if not rerouted:
        event.road_match = current.road_match
    # what this command does not set stays as it was
    event.city, event.country, event.attributes, event.digest = (
        current.city, current.country, current.attributes, current.digest)
    if event.details is not None:
        event.details.lanes = details.lanes
        event.details.parent_event = details.parent_event
        event.details.reference = details.reference
        event.details.end_date_verified = True if "end" in changes else details.end_date_verified
    if closed:
        if event.end_time is not None and to_millis(event.end_time) <= at:
            raise UsageError(f"end: {_when(event.end_time, zone)} is past; a reopened closure needs an end in the "
                             "future, or none")
        return Outcome(_replace(engine, row, event, operator, "reopened"), "reopened", note)
    event.status = current.status
    return Outcome(_replace(engine, row, event, operator, "updated"), "updated", note)


def end_closure(
    engine: Engine, closure_id: str, *, operator: str | None, cancel: bool = False, zone: tzinfo | None = None,
) -> Outcome:
    """End a closure now: it stays in the feeds with its end time for a while.

    One that has not started yet is cancelled instead (it leaves the feeds): an end before the start
    is no closure, and the feeds would be invalid. One whose end is already past keeps that end.
    Ending an ended or cancelled closure changes nothing. ``cancel`` is :func:`cancel_closure`.
    """
    if cancel:
        return cancel_closure(engine, closure_id, operator=operator)
    found = _find(engine, closure_id)
    if isinstance(found, Unreadable):
        return _end_unreadable(engine, found, operator)
    current, row = found.event, found.row
    if current.status is Status.ENDED:
        ended_at = f" at {_when(current.end_time, zone)}" if current.end_time else ""
        return Outcome(current, None, f"closure {closure_id} already ended{ended_at}; nothing changed")
    if current.status is Status.CANCELLED:
        return Outcome(current, None, f"closure {closure_id} is cancelled, not in the feeds; nothing to end")
    at = now_ms()
    if current.start_time is not None and to_millis(current.start_time) >= at:
        cancelled = current.model_copy(deep=True)
        cancelled.status = Status.CANCELLED
        return Outcome(_replace(engine, row, cancelled, operator, "cancelled"), "cancelled",
                       f"closure {closure_id} had not started: cancelled, it leaves the feeds")
    ended = current.model_copy(deep=True)
    ended.status = Status.ENDED
    note = None
    if current.end_time is None or to_millis(current.end_time) > at:
        ended.end_time = from_millis(at)
    else:
        note = f"closure {closure_id} had already ended at {_when(current.end_time, zone)}; that end is kept"
    return Outcome(_replace(engine, row, ended, operator, "ended"), "ended", note)


def cancel_closure(engine: Engine, closure_id: str, *, operator: str | None) -> Outcome:
    """Withdraw a closure, whatever its state: it leaves the feeds at once. Cancelling a cancelled
    one changes nothing. A closure whose stored row cannot be read is cancelled all the same (only
    its status changes)."""
    found = _find(engine, closure_id)
    if isinstance(found, Unreadable):
        if found.row["status"] == Status.CANCELLED.value:
            return Outcome(None, None, f"closure {found.id} is already cancelled; nothing changed")
        note = f"closure {found.id} cannot be read ({found.reason}); cancelled: only its status changed"
        return _set_columns(engine, found, {"status": Status.CANCELLED.value}, operator, "cancelled", note)
    current, row = found.event, found.row
    if current.status is Status.CANCELLED:
        return Outcome(current, None, f"closure {closure_id} is already cancelled; nothing changed")
    cancelled = current.model_copy(deep=True)
    cancelled.status = Status.CANCELLED
    return Outcome(_replace(engine, row, cancelled, operator, "cancelled"), "cancelled")


def _end_unreadable(engine: Engine, found: Unreadable, operator: str | None) -> Outcome:
    """``end_closure`` of a closure whose stored row cannot be read: the same decisions, taken on
    the stored status, start and end alone (numbers it can compare), and only those columns change."""
    row, shown = found.row, found.id
    status, start, end = row["status"], row["start_ms"], row["end_ms"]
    if status == Status.ENDED.value:
        return Outcome(None, None, f"closure {shown} already ended; nothing changed")
    if status == Status.CANCELLED.value:
        return Outcome(None, None, f"closure {shown} is cancelled, not in the feeds; nothing to end")
    at = now_ms()
    unread = f"closure {shown} cannot be read ({found.reason})"
    if _number(start) and start >= at:
        return _set_columns(engine, found, {"status": Status.CANCELLED.value}, operator, "cancelled",
                            f"{unread}; it had not started: cancelled (only its status changed), it leaves the feeds")
    if _number(end) and end <= at:
        return _set_columns(engine, found, {"status": Status.ENDED.value}, operator, "ended",
                            f"{unread}; ended (only its status changed; its end, already past, is kept)")
    return _set_columns(engine, found, {"status": Status.ENDED.value, "end_ms": at}, operator, "ended",
                        f"{unread}; ended now (only its status and end changed)")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _set_columns(
    engine: Engine, found: Unreadable, values: dict[str, Any], operator: str | None, action: str,
    note: str | None = None,
) -> Outcome:
    """Change only ``values`` (status, end) of a stored row that cannot be read, with a revision."""
    at = now_ms()
    event_id = found.row["id"]
    changes = {name: [found.row[name], value] for name, value in values.items()}
    with writing(engine) as conn:
        conn.execute(update(events).where(events.c.id == event_id).values(**values, updated_ms=at))
        insert_revisions(Bulk(conn), [event_id], action, at_ms=at, changes=[changes], operator=operator)
        link_confirmations(conn, at)
    return Outcome(None, action, note)


def _replace(engine: Engine, row: Any, event: Event, operator: str | None, action: str) -> Event:
    if (event.status is not Status.CANCELLED and event.start_time is not None and event.end_time is not None
            and event.end_time <= event.start_time):
        # the feeds would be invalid, and no publication would go out until it is mended
        raise UsageError(f"closure {event.id} would end ({event.end_time.isoformat()}) before it starts "
                         f"({event.start_time.isoformat()}); nothing changed")
    at = now_ms()
    new_row = event_to_row(event, now_ms=at)
    changes = diff_rows(tuple(row[c] for c in EVENT_COLUMNS), new_row)
    with writing(engine) as conn:
        db = Bulk(conn)
        db.update(events, UPDATE_COLUMNS, "id", [(*event_values(new_row, UPDATE_COLUMNS), event.id)])
        insert_revisions(db, [event.id], action, at_ms=at, changes=[changes], operator=operator)
        link_confirmations(conn, at)
    return event


def _points(event: Event) -> list[tuple[float, float]]:
    geometry = event.geometry
    if isinstance(geometry, LineString):
        return [(float(lon), float(lat)) for lon, lat in geometry.coordinates]
    lon, lat = geometry.coordinates
    return [(float(lon), float(lat))]
