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
from datetime import tzinfo
from typing import Any

import numpy as np
from sqlalchemy import Engine, select

from exchange.bulk import Bulk
from exchange.confirm import link_confirmations
from exchange.db import writing
from exchange.errors import ItemRejected, NotFound, UsageError
from exchange.model import Event, LineString, RoadMatch, Status, from_millis, to_millis
from exchange.placement import Placement
from exchange.runtime import now_ms
from exchange.schema import events
from exchange.store import (
    EVENT_COLUMNS,
    UPDATE_COLUMNS,
    diff_rows,
    event_to_row,
    event_values,
    insert_revisions,
    row_to_event,
)
from feeds.city import city_event
from geo.closure import route_closure

__all__ = ["OPERATOR_NAMESPACE", "ClosureInput", "add_closure", "end_closure", "update_closure"]

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
    start: str | None = None
    end: str | None = None
    description: str | None = None
    schedule: Mapping[str, str] | None = None
    lane_impact: Mapping[str, Any] | None = None
    operator: str | None = None


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


def _build(spec: ClosureInput, source_id: str, zone: tzinfo, placement: Placement | None) -> Event:
    """Validate, then route along the street when a network is there."""
    event = _event(spec, source_id, zone, spec.points, spec.direction or "BOTH_DIRECTIONS")
    if placement is None or len(spec.points) < 2:
        return event
    route = route_closure(placement.network, spec.street, np.asarray(spec.points, dtype=np.float64),
                          direction=event.direction or "BOTH_DIRECTIONS")
    if not route.edges:
        raise UsageError(f"polyline: {route.reason}")
    routed = [(round(float(lon), 6), round(float(lat), 6)) for lon, lat in route.polyline]
    event = _event(spec, source_id, zone, routed, route.direction)
    event.road_match = RoadMatch(edges=route.keys, distance_m=0.0, confidence=1.0, offset_m=0.0,
                                 covered_fraction=1.0)
    return event


def add_closure(engine: Engine, spec: ClosureInput, *, zone: tzinfo, placement: Placement | None) -> Event:
    """Store a new closure; returns it (its id is what ``closure end`` takes)."""
    event = _build(spec, secrets.token_hex(6), zone, placement)
    at = now_ms()
    row = event_to_row(event, now_ms=at)
    with writing(engine) as conn:
        db = Bulk(conn)
        db.insert(events, EVENT_COLUMNS, [event_values(row, EVENT_COLUMNS)])
        insert_revisions(db, [event.id], "created", at_ms=at, operator=spec.operator)
        link_confirmations(conn, at)
    return event


def _load(engine: Engine, closure_id: str) -> tuple[Event, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(events).where(events.c.id == closure_id)).first()
    if row is None or row.origin != "city":
        raise NotFound(f"no city closure with id {closure_id!r}")
    return row_to_event(row), row


def update_closure(
    engine: Engine, closure_id: str, changes: Mapping[str, Any], *, zone: tzinfo, placement: Placement | None,
    operator: str | None,
) -> Event:
    """Change some fields of a closure (street, points, type, subtype, direction, start, end, description)."""
    current, row = _load(engine, closure_id)
    details = current.details
    spec = ClosureInput(
        street=changes.get("street") or current.street or "",
        points=changes.get("points") or _points(current),
        type=changes.get("type") or current.type,
        subtype=changes.get("subtype", current.subtype),
        direction=changes.get("direction") or current.direction,
        start=changes.get("start") or (current.start_time.isoformat() if current.start_time else None),
        end=changes.get("end") or (current.end_time.isoformat() if current.end_time else None),
        description=changes.get("description") or (details.description if details else None),
        schedule=changes.get("schedule") or (details.schedule if details else None),
        operator=operator,
    )
    routed = _build(spec, current.source_id, zone, placement if "points" in changes or "street" in changes else None)
    if "points" not in changes and "street" not in changes:
        routed.road_match = current.road_match
    return _replace(engine, row, routed, operator, "updated")


def end_closure(engine: Engine, closure_id: str, *, operator: str | None, cancel: bool = False) -> Event:
    """End a closure now (it stays in the feed with its end time for a while), or cancel it (gone at once)."""
    current, row = _load(engine, closure_id)
    if current.status is not Status.ACTIVE:
        raise UsageError(f"closure {closure_id} is already {current.status.value}")
    at = now_ms()
    ended = current.model_copy(deep=True)
    ended.status = Status.CANCELLED if cancel else Status.ENDED
    if not cancel and (current.end_time is None or to_millis(current.end_time) > at):
        ended.end_time = from_millis(at)
    return _replace(engine, row, ended, operator, "cancelled" if cancel else "ended")


def _replace(engine: Engine, row: Any, event: Event, operator: str | None, action: str) -> Event:
    at = now_ms()
    new_row = event_to_row(event, now_ms=at)
    changes = diff_rows(tuple(row._mapping[c] for c in EVENT_COLUMNS), new_row)
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
