"""Rows <-> events: the columns of an event row, their diffs and revisions, and the read queries
behind ``exchange inspect``."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import JSON, ColumnElement, Connection, Select, String, Text, and_, cast, func, or_, select

from exchange.bulk import Bulk, dumps, loads
from exchange.errors import NotFound, UnreadableEvent
from exchange.model import Event, Status, first_problem, from_millis, to_millis
from exchange.runtime import now_ms
from exchange.schema import events, revisions, sightings, sources, sync_runs

__all__ = [
    "CROWD_GEOMETRY_NOISE_M",
    "CROWD_MEASURES",
    "EVENT_COLUMNS",
    "PLANNED",
    "STATUSES",
    "UPDATE_COLUMNS",
    "WAZE_KEYS_NOT_REVISED",
    "WAZE_STATUS_COLUMNS",
    "EventFilter",
    "StoredEvent",
    "Unreadable",
    "count_events",
    "crowd_revision",
    "diff_rows",
    "event_status",
    "event_to_row",
    "event_values",
    "get_event",
    "insert_revisions",
    "iter_events",
    "list_runs",
    "list_sources",
    "load_event",
    "moved_m",
    "read_event",
    "read_rows",
    "readable",
    "revisions_of",
    "row_to_event",
    "seen_by",
    "select_events",
    "shown_status",
]

_TYPED_FIELDS = (
    "reliability", "confidence", "thumbs_up", "report_rating", "magvar", "road_type",
    "speed_kmh", "delay_s", "level", "length_m", "blocking_alert_uuid",
)


# plain str: SQLAlchemy's quoted_name subclass is not a dict key orjson accepts
EVENT_COLUMNS = tuple(str.__str__(column.name) for column in events.columns)
#: what the inbound Waze feed says of a city closure (``exchange.confirm``), kept by its own updates
WAZE_STATUS_COLUMNS = ("visible_in_waze_since_ms", "waze_last_seen_ms", "waze_flowing_since_ms", "waze_evidence")
#: what an event's own update leaves alone: the cluster and the same-closure link are recomputed over
#: all events after each poll, the match id is kept by the sync from the source's record
_KEPT_ON_UPDATE = ("cluster_id", "match_id", "same_as", *WAZE_STATUS_COLUMNS)
UPDATE_COLUMNS = tuple(name for name in EVENT_COLUMNS if name not in ("id", "first_seen_ms", *_KEPT_ON_UPDATE))
_JSON_COLUMNS = frozenset({"geometry", "attributes", "road_match", "details", "waze_evidence"})
_REVISION_COLUMNS = ("event_id", "run_id", "at_ms", "action", "changes", "operator")
#: the bounding box follows the geometry: a change of the geometry says it
_BOUNDS = ("min_lon", "min_lat", "max_lon", "max_lat")
_NOT_DIFFED = frozenset({"updated_ms", "digest", "first_seen_ms", *_BOUNDS, *_KEPT_ON_UPDATE})

#: a crowd report's measures: they change on nearly every poll (a jam's speed, delay, level and
#: length, an alert's thumbs-up, reliability and confidence, the road match its position gives),
#: so the event row keeps their latest values and a revision never records them
CROWD_MEASURES = frozenset({
    "speed_kmh", "delay_s", "level", "length_m", "thumbs_up", "reliability", "confidence", "report_rating",
    "magvar", "road_match",
})
#: keys of a Waze record (an event's ``attributes``) a crowd revision leaves out: those a typed column
#: mirrors (its own change says it) and the measures that have no column of their own
WAZE_KEYS_NOT_REVISED = frozenset({
    # mirrored by a column
    "uuid", "id", "type", "subtype", "street", "city", "country", "roadType", "pubMillis", "nThumbsUp",
    "reliability", "confidence", "reportRating", "magvar", "speedKMH", "speed", "delay", "level", "length",
    "blockingAlertUuid", "causeType", "detectionDateMillis", "detectionDate", "delaySeconds", "jamLevel",
    # measures of a jam or an irregularity, and their times
    "segments", "startNode", "endNode", "seconds", "regularSpeed", "driversCount", "alertsCount", "alerts",
    "trend", "severity", "nComments", "nImages", "updateDate", "updateDateMillis",
})
#: a crowd report's geometry that moved less than this (a point, or both ends of a line) is GPS
#: noise or a jam breathing, not a change of where it is: the row takes it, no revision records it
CROWD_GEOMETRY_NOISE_M = 100.0


def _bounds(coordinates: Any) -> tuple[float, float, float, float]:
    if coordinates and isinstance(coordinates[0], (list, tuple)):
        lons = [c[0] for c in coordinates]
        lats = [c[1] for c in coordinates]
        return min(lons), min(lats), max(lons), max(lats)
    lon, lat = coordinates
    return lon, lat, lon, lat


def event_to_row(event: Event, *, now_ms: int) -> dict[str, Any]:
    """The columns of ``events`` for an event (``first_seen_ms`` set to now; callers keep the old one).

    ``match_id`` and ``same_as`` are not the event's own: empty here, the sync sets them.
    """
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
        **dict.fromkeys(WAZE_STATUS_COLUMNS),
        "match_id": None,
        "same_as": None,
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


# --------------------------------------------------------------------------- reading: every row, or why not


#: the columns that hold text as they are read (JSON as its text too): SQLite keeps any bytes there
_TEXT_COLUMNS = tuple(
    str.__str__(column.name) for column in events.columns if isinstance(column.type, String | JSON)
)
#: the times of an event row, in epoch milliseconds
_TIME_COLUMNS = ("start_ms", "end_ms", "first_seen_ms", "updated_ms", "visible_in_waze_since_ms", "waze_last_seen_ms",
                 "waze_flowing_since_ms")
#: the instants whose date every time zone can write (Python's years 1 to 9999, less a day at each end)
_FIRST_MS = to_millis(datetime(1, 1, 2, tzinfo=UTC))
_LAST_MS = to_millis(datetime(9999, 12, 31, tzinfo=UTC))
#: the columns as the read paths select them: JSON as its text, decoded by :func:`read_event`, so a
#: value the JSON reader refuses is one row's problem, not the query's
_READ_COLUMNS = tuple(
    cast(column, Text).label(str.__str__(column.name)) if column.name in _JSON_COLUMNS else column
    for column in events.columns
)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A stored event that reads: its columns (JSON decoded; what ``output.event_record`` takes) and its model."""

    row: dict[str, Any]
    event: Event


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A stored event that does not read, and why. ``id`` and ``reason`` are printable (a byte that was
    not UTF-8 shows as ``\\udcxx``); ``row`` holds the columns as stored (JSON as text)."""

    id: str
    reason: str
    row: dict[str, Any]

    def warning(self, outcome: str = "skipped") -> str:
        """The line a read path prints on stderr when it goes on without the event."""
        return f"warning: event {self.id} cannot be read: {self.reason}; {outcome}"


_NUMBERS = (int, float)


class _Refused(ValueError):
    pass


def _printable(value: Any) -> str:
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


def _lenient(data: bytes) -> str:
    return str(data, "utf-8", "surrogateescape")


def _text_problem(name: str, text: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: a byte that was not UTF-8
            return f"{name} is not valid UTF-8 text (byte 0x{code - 0xDC00:02x} at position {exc.start})"
        return f"{name} is not valid Unicode text (a lone surrogate U+{code:04X} at position {exc.start})"
    return None


def _decoded(raw: dict[str, Any]) -> dict[str, Any]:
    """The columns with JSON decoded; ``_Refused`` names the first column that cannot be read."""
    columns = dict(raw)
    for name in _TEXT_COLUMNS:
        value = raw[name]
        if type(value) is str and not value.isascii() and (problem := _text_problem(name, value)) is not None:
            raise _Refused(problem)
    for name in _JSON_COLUMNS:
        try:
            columns[name] = loads(raw[name])
        except orjson.JSONDecodeError as exc:
            raise _Refused(f"{name} is not valid JSON: {exc}") from None
    for name in _TIME_COLUMNS:
        value = raw[name]
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, _NUMBERS):
            raise _Refused(f"{name} {value!r} is not a time in epoch milliseconds")
        if not _FIRST_MS <= value < _LAST_MS:
            raise _Refused(f"{name} {value} is out of range")
    return columns


def read_event(row: Any) -> StoredEvent | Unreadable:
    """The one conversion of every read path: a stored row as its columns and its model, or why not.

    A row does not read when a time cannot be written as a date in every time zone (out of the
    years 1 to 9999), a text is not UTF-8 (SQLite keeps any bytes), a JSON column is not JSON, or
    the model refuses a value (a geometry that is not a GeoJSON point or line, details it does not
    know). Lists report such a row and go on with the others; nothing here raises for a row.
    """
    raw = dict(zip(row._fields, row, strict=True)) if hasattr(row, "_fields") else dict(row)
    try:
        columns = _decoded(raw)
        return StoredEvent(columns, row_to_event(columns))
    except _Refused as exc:
        reason = str(exc)
    except ValueError as exc:  # the model's ValidationError
        reason = first_problem(exc)
    return Unreadable(_printable(raw.get("id")), _printable(reason), raw)


def readable(rows: Iterable[Any], report: Callable[[Unreadable], None]) -> Iterator[StoredEvent]:
    """The rows that read, in order; each one that does not goes to ``report`` instead."""
    for row in rows:
        item = read_event(row)
        if isinstance(item, Unreadable):
            report(item)
        else:
            yield item


def select_events() -> Select[Any]:
    """``SELECT`` of the events table as :func:`read_event` takes it; add conditions and order."""
    return select(*_READ_COLUMNS)


@contextmanager
def _lenient_text(conn: Connection) -> Iterator[None]:
    """On SQLite, text that is not UTF-8 reads as ``surrogateescape`` (and :func:`read_event` says so)
    instead of failing the whole query. PostgreSQL keeps UTF-8 text only. The default decoder is
    back afterwards: the sync's reads stay on the fast one."""
    driver = conn.connection.driver_connection if conn.dialect.name == "sqlite" else None
    if driver is None:
        yield
        return
    before = driver.text_factory
    driver.text_factory = _lenient
    try:
        yield
    finally:
        driver.text_factory = before


def read_rows(conn: Connection, query: Select[Any]) -> Iterator[Any]:
    """The rows of a :func:`select_events` query, one at a time, for :func:`read_event`."""
    with _lenient_text(conn):
        yield from conn.execute(query)


def load_event(conn: Connection, event_id: str) -> StoredEvent | Unreadable | None:
    """One stored event, why it does not read, or None when there is none with this id."""
    row = next(read_rows(conn, select_events().where(events.c.id == event_id)), None)
    return None if row is None else read_event(row)


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


def moved_m(before: Any, after: Any) -> float:
    """How far a geometry moved, in metres: a point's distance, or the larger of the distances between
    the first points and between the last points of two lines (infinite when the type changed).

    >>> round(moved_m({"type": "Point", "coordinates": [0, 0]}, {"type": "Point", "coordinates": [0, 0.001]}))
    111
    """
    if not isinstance(before, dict) or not isinstance(after, dict) or before.get("type") != after.get("type"):
        return math.inf
    try:
        old, new = before["coordinates"], after["coordinates"]
        if before["type"] == "Point":
            return _distance_m(old, new)
        if not old or not new:
            return math.inf
        return max(_distance_m(old[0], new[0]), _distance_m(old[-1], new[-1]))
    except (KeyError, IndexError, TypeError, ValueError):
        return math.inf


def _distance_m(a: Sequence[float], b: Sequence[float]) -> float:
    """Equirectangular distance between two lon/lat positions: exact enough at a hundred metres."""
    lat = math.radians((a[1] + b[1]) / 2)
    dx = math.radians(b[0] - a[0]) * math.cos(lat)
    dy = math.radians(b[1] - a[1])
    return 6_371_008.8 * math.hypot(dx, dy)


def crowd_revision(changes: dict[str, Any]) -> dict[str, Any]:
    """What a revision of a crowd report records of ``changes`` (:func:`diff_rows`): no measure
    (:data:`CROWD_MEASURES`), no Waze record key a column mirrors or that measures
    (:data:`WAZE_KEYS_NOT_REVISED`), no geometry that moved less than :data:`CROWD_GEOMETRY_NOISE_M`.
    What stays is what an operator follows: category, type, street, status, times, a move, a jam
    that becomes a closure (``blocking_alert_uuid``), any other key of the record. Empty: no revision.

    >>> crowd_revision({"speed_kmh": [20.0, 12.5], "attributes.speedKMH": [20.0, 12.5], "street": ["A", "B"]})
    {'street': ['A', 'B']}
    """
    kept: dict[str, Any] = {}
    for name, change in changes.items():
        if name in CROWD_MEASURES:
            continue
        if name.startswith("attributes.") and name[len("attributes."):] in WAZE_KEYS_NOT_REVISED:
            continue
        if name == "geometry" and moved_m(*change) < CROWD_GEOMETRY_NOISE_M:
            continue
        kept[name] = change
    return kept


#: the derived status of a city event that is active but has not started yet; never stored
PLANNED = "planned"
#: what ``--status`` takes and what lists show: the stored statuses and the derived ``planned``
STATUSES = (PLANNED, Status.ACTIVE.value, Status.ENDED.value, Status.CANCELLED.value)


def shown_status(row: Any, at_ms: int) -> str:
    """The status people and scripts see: the stored one, or, for a city event stored as active,
    ``planned`` while its start is after ``at_ms`` and ``ended`` once its end has passed (no one ended
    it; the feeds carry it with its end time for ``keep_ended_h``, as one ended). Crowd reports are
    neither: they report what is.

    >>> shown_status({"status": "active", "origin": "city", "start_ms": 2_000, "end_ms": None}, 1_000)
    'planned'
    >>> shown_status({"status": "active", "origin": "city", "start_ms": 1_000, "end_ms": 3_000}, 1_000)
    'active'
    >>> shown_status({"status": "active", "origin": "city", "start_ms": 1_000, "end_ms": 3_000}, 3_000)
    'ended'
    """
    m = row._mapping if hasattr(row, "_mapping") else row
    if m["status"] != Status.ACTIVE.value or m["origin"] != "city":
        return str(m["status"])
    start, end = m["start_ms"], m["end_ms"]
    if start is not None and start > at_ms:
        return PLANNED
    if end is not None and end <= at_ms:
        return Status.ENDED.value
    return Status.ACTIVE.value


def event_status(event: Event, at_ms: int) -> str:
    """:func:`shown_status` of an event as the model holds it."""
    return shown_status({"status": event.status.value, "origin": event.origin.value,
                         "start_ms": to_millis(event.start_time) if event.start_time else None,
                         "end_ms": to_millis(event.end_time) if event.end_time else None}, at_ms)


def _status_condition(status: str, at_ms: int) -> ColumnElement[bool]:
    """The rows whose :func:`shown_status` is ``status``."""
    stored_active, city = events.c.status == Status.ACTIVE.value, events.c.origin == "city"
    not_started = and_(events.c.start_ms.is_not(None), events.c.start_ms > at_ms)
    over = and_(events.c.end_ms.is_not(None), events.c.end_ms <= at_ms)
    if status == PLANNED:
        return and_(stored_active, city, not_started)
    if status == Status.ACTIVE.value:
        return and_(stored_active, or_(~city, and_(~not_started, ~over)))
    if status == Status.ENDED.value:
        return or_(events.c.status == status, and_(stored_active, city, ~not_started, over))
    return events.c.status == status


@dataclass(frozen=True, slots=True)
class EventFilter:
    """What ``inspect events`` may filter on; ``None`` means any.

    ``status`` is one of :data:`STATUSES`, as :func:`shown_status` shows them at ``at_ms`` (default: now,
    ``EXCHANGE_NOW`` pins it): ``planned`` is an active city event that starts after it, ``ended`` also
    one whose end has passed, and ``active`` then means started and not over.
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
    """The rows ``where`` selects, the latest start first, for :func:`read_event` (or :func:`readable`)."""
    query = where.apply(select_events()).order_by(events.c.start_ms.desc().nulls_last(), events.c.id)
    if limit is not None:
        query = query.limit(limit)
    yield from read_rows(conn, query)


def count_events(conn: Connection, where: EventFilter) -> int:
    return int(conn.execute(where.apply(select(func.count()).select_from(events))).scalar_one())


def get_event(conn: Connection, event_id: str) -> StoredEvent:
    """One stored event: ``NotFound`` when there is none, ``UnreadableEvent`` (with why) when it does not read."""
    found = load_event(conn, event_id)
    if found is None:
        raise NotFound(f"no event with id {event_id!r}")
    if isinstance(found, Unreadable):
        raise UnreadableEvent(f"event {found.id} cannot be read: {found.reason}")
    return found


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


def list_sources(conn: Connection, at_ms: int) -> list[Any]:
    """The sources the store knows, each with the events it lists now that are active at ``at_ms`` as
    ``inspect events`` shows them (a listed closure whose end has passed is ended, one not started yet
    planned)."""
    counts = (
        select(sightings.c.source_name, func.count().label("active_events"))
        .join(events, events.c.id == sightings.c.event_id)
        .where(_status_condition(Status.ACTIVE.value, at_ms))
        .group_by(sightings.c.source_name)
        .subquery()
    )
    query = (
        select(sources, func.coalesce(counts.c.active_events, 0).label("active_events"))
        .outerjoin(counts, counts.c.source_name == sources.c.name)
        .order_by(sources.c.name)
    )
    return list(conn.execute(query))
