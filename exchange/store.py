"""Rows <-> events: the columns of an event row, their diffs and revisions, and the read queries
behind ``exchange inspect``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, func, or_, select

from exchange.bulk import Bulk, dumps, loads
from exchange.errors import NotFound
from exchange.model import Event, Status, from_millis, to_millis
from exchange.runtime import now_ms
from exchange.schema import events, revisions, sightings, sources, sync_runs

__all__ = [
    "EVENT_COLUMNS",
    "PLANNED",
    "STATUSES",
    "UPDATE_COLUMNS",
    "EventFilter",
    "count_events",
    "diff_rows",
    "event_to_row",
    "event_values",
    "get_event",
    "insert_revisions",
    "iter_events",
    "list_runs",
    "list_sources",
    "revisions_of",
    "row_to_event",
    "seen_by",
    "shown_status",
]

_TYPED_FIELDS = (
    "reliability", "confidence", "thumbs_up", "report_rating", "magvar", "road_type",
    "speed_kmh", "delay_s", "level", "length_m", "blocking_alert_uuid",
)


# plain str: SQLAlchemy's quoted_name subclass is not a dict key orjson accepts
EVENT_COLUMNS = tuple(str.__str__(column.name) for column in events.columns)
# the cluster is recomputed over all alerts after each poll, not carried by one event's update
UPDATE_COLUMNS = tuple(
    name for name in EVENT_COLUMNS if name not in ("id", "first_seen_ms", "cluster_id", "visible_in_waze_since_ms")
)
_JSON_COLUMNS = frozenset({"geometry", "attributes", "road_match", "details"})
_REVISION_COLUMNS = ("event_id", "run_id", "at_ms", "action", "changes", "operator")
_NOT_DIFFED = frozenset({"updated_ms", "digest", "first_seen_ms", "cluster_id", "visible_in_waze_since_ms"})


def _bounds(coordinates: Any) -> tuple[float, float, float, float]:
    if coordinates and isinstance(coordinates[0], (list, tuple)):
        lons = [c[0] for c in coordinates]
        lats = [c[1] for c in coordinates]
        return min(lons), min(lats), max(lons), max(lats)
    lon, lat = coordinates
    return lon, lat, lon, lat


def event_to_row(event: Event, *, now_ms: int) -> dict[str, Any]:
    """The columns of ``events`` for an event (``first_seen_ms`` set to now; callers keep the old one)."""
    geometry = event.geometry.model_dump(mode="json")
    min_lon, min_lat, max_lon, max_lat = _bounds(geometry["coordinates"])
    row: dict[str, Any] = {
        "id": event.id,
        "source": event.source,
        "kind": event.kind.value,
        "source_id": event.source_id,
        "origin": event.origin.value,
        "category": event.category.value,
        "type": event.type,
        "subtype": event.subtype,
        "street": event.street,
        "city": event.city,
        "country": event.country,
        "direction": event.direction,
        "status": event.status.value,
        "geometry": geometry,
        "min_lon": min_lon,
        "min_lat": min_lat,
        "max_lon": max_lon,
        "max_lat": max_lat,
        "start_ms": to_millis(event.start_time) if event.start_time else None,
        "end_ms": to_millis(event.end_time) if event.end_time else None,
        "first_seen_ms": now_ms,
        "updated_ms": now_ms,
        "attributes": event.attributes,
        "digest": event.digest,
        "road_match": event.road_match.model_dump(mode="json") if event.road_match else None,
        "cluster_id": event.cluster_id,
        "details": event.details.model_dump(mode="json", exclude_none=True) if event.details else None,
        "visible_in_waze_since_ms": None,
    }
    for name in _TYPED_FIELDS:
        row[name] = getattr(event, name)
    return row


def row_to_event(row: Any) -> Event:
    mapping = row._mapping if hasattr(row, "_mapping") else row
    return Event(
        id=mapping["id"],
        source=mapping["source"],
        kind=mapping["kind"],
        source_id=mapping["source_id"],
        origin=mapping["origin"],
        category=mapping["category"],
        type=mapping["type"],
        subtype=mapping["subtype"],
        geometry=mapping["geometry"],
        street=mapping["street"],
        city=mapping["city"],
        country=mapping["country"],
        direction=mapping["direction"],
        start_time=from_millis(mapping["start_ms"]) if mapping["start_ms"] is not None else None,
        end_time=from_millis(mapping["end_ms"]) if mapping["end_ms"] is not None else None,
        status=mapping["status"],
        attributes=mapping["attributes"],
        digest=mapping["digest"],
        road_match=mapping["road_match"],
        cluster_id=mapping["cluster_id"],
        details=mapping["details"],
        **{name: mapping[name] for name in _TYPED_FIELDS},
    )


def insert_revisions(
    db: Bulk,
    ids: Sequence[str],
    action: str,
    *,
    at_ms: int,
    run_id: int | None = None,
    changes: Sequence[Any] | None = None,
    operator: str | None = None,
) -> None:
    """One revision per event id; ``changes[i]`` (field -> [old, new]) belongs to ``ids[i]``."""
    db.insert(revisions, _REVISION_COLUMNS, [
        (eid, run_id, at_ms, action, dumps(changes[i]) if changes else None, operator) for i, eid in enumerate(ids)
    ])


def event_values(row: dict[str, Any], columns: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(dumps(row[name]) if name in _JSON_COLUMNS else row[name] for name in columns)


def diff_rows(old: Sequence[Any], new: dict[str, Any]) -> dict[str, Any]:
    """field -> [old, new] for what changed; attributes are compared key by key."""
    changes: dict[str, Any] = {}
    for position, key in enumerate(EVENT_COLUMNS):
        if key in _NOT_DIFFED:
            continue
        before, value = old[position], new[key]
        if key in _JSON_COLUMNS:
            before = loads(before)
        if key == "attributes":
            before = before or {}
            for name in sorted(set(before) | set(value)):
                if before.get(name) != value.get(name):
                    changes[f"attributes.{name}"] = [before.get(name), value.get(name)]
        elif before != value:
            changes[key] = [before, value]
    return changes


#: the derived status of a city event that is active but has not started yet; never stored
PLANNED = "planned"
#: what ``--status`` takes and what lists show: the stored statuses and the derived ``planned``
STATUSES = (PLANNED, Status.ACTIVE.value, Status.ENDED.value, Status.CANCELLED.value)


def shown_status(row: Any, at_ms: int) -> str:
    """The status people and scripts see: the stored one, or ``planned`` for a city event stored as
    active whose start is after ``at_ms``. Crowd reports are never planned: they report what is.

    >>> shown_status({"status": "active", "origin": "city", "start_ms": 2_000}, 1_000)
    'planned'
    >>> shown_status({"status": "active", "origin": "city", "start_ms": 1_000}, 1_000)
    'active'
    """
    m = row._mapping if hasattr(row, "_mapping") else row
    start = m["start_ms"]
    if m["status"] == Status.ACTIVE.value and m["origin"] == "city" and start is not None and start > at_ms:
        return PLANNED
    return str(m["status"])


def _status_condition(status: str, at_ms: int) -> ColumnElement[bool]:
    """The rows whose :func:`shown_status` is ``status``."""
    if status not in (PLANNED, Status.ACTIVE.value):
        return events.c.status == status
    not_started = and_(events.c.origin == "city", events.c.start_ms.is_not(None), events.c.start_ms > at_ms)
    started = or_(events.c.origin != "city", events.c.start_ms.is_(None), events.c.start_ms <= at_ms)
    return and_(events.c.status == Status.ACTIVE.value, not_started if status == PLANNED else started)


@dataclass(frozen=True, slots=True)
class EventFilter:
    """What ``inspect events`` may filter on; ``None`` means any.

    ``status`` is one of :data:`STATUSES`: ``planned`` is an active city event that starts after
    ``at_ms`` (default: now, ``EXCHANGE_NOW`` pins it), and ``active`` then means active and started.
    """

    source: str | None = None
    kind: str | None = None
    category: str | None = None
    status: str | None = None
    street: str | None = None
    bbox: tuple[float, float, float, float] | None = None  # min_lon, min_lat, max_lon, max_lat
    since: datetime | None = None
    ids: Sequence[str] | None = None
    at_ms: int | None = None

    def apply(self, query: Select[Any]) -> Select[Any]:
        conditions = []
        if self.source:
            conditions.append(events.c.source == self.source)
        if self.kind:
            conditions.append(events.c.kind == self.kind)
        if self.category:
            conditions.append(events.c.category == self.category.upper())
        if self.status:
            conditions.append(_status_condition(self.status, now_ms() if self.at_ms is None else self.at_ms))
        if self.street:
            conditions.append(func.lower(events.c.street).contains(self.street.lower(), autoescape=True))
        if self.bbox:
            min_lon, min_lat, max_lon, max_lat = self.bbox
            conditions.append(
                and_(events.c.max_lon >= min_lon, events.c.min_lon <= max_lon,
                     events.c.max_lat >= min_lat, events.c.min_lat <= max_lat)
            )
        if self.since:
            since_ms = to_millis(self.since)
            conditions.append(or_(events.c.updated_ms >= since_ms, events.c.start_ms >= since_ms))
        if self.ids is not None:
            conditions.append(events.c.id.in_(list(self.ids)))
        return query.where(*conditions) if conditions else query


def iter_events(conn: Connection, where: EventFilter, *, limit: int | None = None) -> Iterator[Any]:
    query = where.apply(select(events)).order_by(events.c.start_ms.desc().nulls_last(), events.c.id)
    if limit is not None:
        query = query.limit(limit)
    yield from conn.execute(query)


def count_events(conn: Connection, where: EventFilter) -> int:
    return int(conn.execute(where.apply(select(func.count()).select_from(events))).scalar_one())


def get_event(conn: Connection, event_id: str) -> Any:
    row = conn.execute(select(events).where(events.c.id == event_id)).first()
    if row is None:
        raise NotFound(f"no event with id {event_id!r}")
    return row


def revisions_of(conn: Connection, event_id: str) -> list[Any]:
    return list(conn.execute(select(revisions).where(revisions.c.event_id == event_id).order_by(revisions.c.id)))


def seen_by(conn: Connection, event_id: str) -> list[Any]:
    return list(conn.execute(select(sightings).where(sightings.c.event_id == event_id)))


def list_runs(conn: Connection, *, source: str | None = None, limit: int | None = None) -> list[Any]:
    query = select(sync_runs).order_by(sync_runs.c.id.desc())
    if source:
        query = query.where(sync_runs.c.source == source)
    if limit is not None:
        query = query.limit(limit)
    return list(conn.execute(query))


def list_sources(conn: Connection) -> list[Any]:
    counts = (
        select(sightings.c.source_name, func.count().label("active_events"))
        .group_by(sightings.c.source_name)
        .subquery()
    )
    query = (
        select(sources, func.coalesce(counts.c.active_events, 0).label("active_events"))
        .outerjoin(counts, counts.c.source_name == sources.c.name)
        .order_by(sources.c.name)
    )
    return list(conn.execute(query))
