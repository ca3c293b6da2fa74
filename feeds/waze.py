"""The Waze partner data feed: JSON (``format=1``) and GeoRSS XML (``format=2``) into events.

Reading happens in two steps so that a poll that mostly repeats the last one costs little:

1. :func:`read_waze_snapshot` checks the envelope and gives every item its kind, its source id and
   a digest of its content. A payload that cannot be read at all raises ``MalformedPayload``.
2. :func:`to_event` turns one item into an :class:`~exchange.model.Event`, or raises
   ``ItemRejected`` with the reason. The sync pipeline calls it only for items whose digest is new.

:func:`parse_waze_feed` does both for every item (tests, ``exchange match``, one-off reads).
Real payloads are loose (formats.md §5): numbers arrive as strings, booleans as ``"false"``,
subtypes as ``""``; all of that is accepted. What cannot be stored faithfully rejects only its own
item: NaN and numbers beyond the float range, NUL characters and lone surrogates (in keys too),
wrong types, out-of-range coordinates, a whole number outside its column (reliability, delay,
level, ... are 32-bit), text longer than its column (id 200 characters, type 100, country 20, ...),
attributes nested more than 64 levels deep (:mod:`feeds.city_values`).
"""

from __future__ import annotations

import hashlib
import math
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from exchange.errors import ItemRejected, MalformedPayload
from exchange.model import (
    Category,
    Event,
    ItemError,
    Kind,
    LineString,
    Origin,
    Point,
    event_id,
    first_problem,
    from_millis,
)
from feeds.city_values import (
    INT32,
    INT64,
    check_length,
    check_nesting,
    check_storable,
    id_problem,
    integer_problem,
    shown_integer,
    text_problem,
)
from feeds.items import FeedItem, Snapshot, digest, load_json
from feeds.xmlsafe import html_page

__all__ = [
    "FeedItem",
    "WazeSnapshot",
    "category_of_alert",
    "parse_waze_feed",
    "read_waze_snapshot",
    "to_event",
]

#: A Waze poll is a :class:`~feeds.items.Snapshot`; the name stays for readers of this module.
WazeSnapshot = Snapshot

#: envelope key -> kind of the items it holds
ARRAYS: dict[str, Kind] = {"alerts": Kind.ALERT, "jams": Kind.JAM, "irregularities": Kind.IRREGULARITY}

_CATEGORY_OF_TYPE: dict[str, Category] = {
    "ACCIDENT": Category.ACCIDENT,
    "JAM": Category.JAM,
    "WEATHERHAZARD": Category.HAZARD,
    "HAZARD": Category.HAZARD,
    "ROAD_CLOSED": Category.ROAD_CLOSED,
    "CONSTRUCTION": Category.CONSTRUCTION,
    "POLICE": Category.POLICE,
    "POLICEMAN": Category.POLICE,
}


def category_of_alert(waze_type: str) -> Category:
    """Map a Waze alert type onto the broker's categories (both hazard spellings, police legacy).

    >>> category_of_alert("WEATHERHAZARD")
    <Category.HAZARD: 'HAZARD'>
    """
    return _CATEGORY_OF_TYPE.get(waze_type.upper(), Category.MISC)


# --------------------------------------------------------------------------- reading the envelope


def read_waze_snapshot(data: bytes) -> WazeSnapshot:
    """Check the envelope of a Waze feed payload (JSON or GeoRSS XML) and identify its items.

    Raises
    ------
    MalformedPayload
        The payload is not a Waze feed: broken JSON or XML, refused XML constructs, a wrong envelope.
    """
    head = data.lstrip()[:1]
    checked = False
    other_items: list[ItemError] = []
    if head in (b"{", b"["):
        document, checked = _load_json(data)
    elif head == b"<":
        from feeds.georss import OTHER_ITEMS, georss_to_document

        page = html_page(data)
        if page is not None:
            raise MalformedPayload(f"{page}, not a Waze feed: a login, error or maintenance page at the feed's URL?")
        document = georss_to_document(data)
        other_items = [ItemError(step="parse", out_of_scope=True,
                                 reason=f"a GeoRSS item titled {title[:40]!r} is not an alert, jam or irregularity")
                       for title in document.pop(OTHER_ITEMS, [])]
    elif not head:
        raise MalformedPayload("the payload is empty")
    else:
        raise MalformedPayload("the payload is neither JSON nor XML")
    snapshot = _snapshot_from_document(document)
    snapshot.values_checked = checked
    snapshot.errors.extend(other_items)
    return snapshot


def _load_json(data: bytes) -> tuple[dict[str, Any], bool]:
    document, checked = load_json(data)
    if not isinstance(document, dict):
        raise MalformedPayload(f"a Waze feed is a JSON object, got {type(document).__name__}")
    return document, checked


def _snapshot_from_document(document: Mapping[str, Any]) -> WazeSnapshot:
    present = [key for key in ARRAYS if key in document]
    if not present:
        raise MalformedPayload("not a Waze feed: none of 'alerts', 'jams', 'irregularities' is present")
    snapshot = Snapshot(
        start_ms=_envelope_millis(document, "startTimeMillis"),
        end_ms=_envelope_millis(document, "endTimeMillis"),
        kinds_present=frozenset(ARRAYS[key] for key in present),
    )
    for key in present:
        records = document[key]
        if records is None:
            continue
        if not isinstance(records, list):
            raise MalformedPayload(f"'{key}' should be a list, got {type(records).__name__}")
        kind = ARRAYS[key]
        for position, record in enumerate(records):
            if not isinstance(record, dict):
                snapshot.errors.append(
                    ItemError(kind=kind.value, step="parse", reason=f"{key}[{position}] is not an object")
                )
                continue
            snapshot.items.append(FeedItem(kind, _source_id(kind, record), digest(record), record))
    _tell_derived_apart(snapshot.items)
    return snapshot


def _tell_derived_apart(items: list[FeedItem]) -> None:
    """Number the second and later of different records whose derived ids are one (``h-...-2``): two jams
    without ids on one line at one time, differing in level or speed, are two items, not one listed
    twice. A record repeated as it is keeps the id, and is folded as a duplicate."""
    seen: dict[str, list[str]] = {}
    for index, item in enumerate(items):
        if not item.source_id.startswith("h-"):
            continue
        digests = seen.setdefault(item.source_id, [])
        if item.digest not in digests:
            digests.append(item.digest)
        number = digests.index(item.digest) + 1
        if number > 1:
            items[index] = replace(item, source_id=f"{item.source_id}-{number}")


def _envelope_millis(document: Mapping[str, Any], key: str) -> int | None:
    value = document.get(key)
    try:
        millis = _as_int(value, key, INT64)
    except ItemRejected as exc:
        raise MalformedPayload(f"envelope {exc.message}") from exc
    return millis


def _source_id(kind: Kind, record: Mapping[str, Any]) -> str:
    """The upstream id as text, or a stable derived one for records that carry none.

    An alert without ``uuid`` is identified by a hash of its type, subtype, publication time and
    location to 6 decimals, so the same report in the next poll gets the same id.
    """
    keys = ("uuid",) if kind is Kind.ALERT else ("uuid", "id") if kind is Kind.JAM else ("id", "uuid")
    for key in keys:
        value = record.get(key)
        if isinstance(value, bool) or value is None or value == "":
            continue
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return str(int(value))
        if isinstance(value, str) and text_problem(value, controls=False) is None:
            return value.strip()
    return "h-" + _derived_key(kind, record)


def _derived_key(kind: Kind, record: Mapping[str, Any]) -> str:
    def rounded(value: Any) -> str:
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                return f"{value:.6f}"
            except OverflowError:  # a whole number beyond the float range
                pass
        return str(value)

    if kind is Kind.ALERT:
        location = record.get("location")
        where = (
            f"{rounded(location.get('x'))},{rounded(location.get('y'))}" if isinstance(location, dict) else ""
        )
    else:
        line = record.get("line")
        points = line if isinstance(line, list) else []
        where = ";".join(
            f"{rounded(p.get('x'))},{rounded(p.get('y'))}" for p in points if isinstance(p, dict)
        )
    parts = [str(record.get("type", "")), str(record.get("subtype", "")), str(record.get("pubMillis", "")), where]
    text = "|".join(parts).encode("utf-8", "surrogatepass")  # a lone surrogate is refused later, not here
    return hashlib.blake2b(text, digest_size=8).hexdigest()


# --------------------------------------------------------------------------- converting one item


def to_event(item: FeedItem, namespace: str = "waze", *, values_checked: bool = False) -> Event:
    """Convert one identified feed item into an :class:`Event`.

    ``values_checked`` skips the deep scan of every value (:func:`~feeds.city_values.check_storable`)
    for the nesting check alone when the reader already ruled the rest out
    (:attr:`WazeSnapshot.values_checked`).

    Raises
    ------
    ItemRejected
        With the reason: no geometry, a coordinate out of range, NaN, a NUL character or a lone
        surrogate, a wrong type, a number or a text too large for its column, too deep a nesting.
    """
    try:
        if not values_checked:
            check_storable(item.record)
        the_id = event_id(namespace, item.kind, item.source_id)
        problem = id_problem(item.source_id, the_id)
        if problem is not None:
            raise ItemRejected(f"id: {problem}")
        attributes = _attributes(item.record)
        if values_checked:
            check_nesting(attributes)
        if item.kind is Kind.ALERT:
            fields = _alert_fields(item.record)
        elif item.kind is Kind.JAM:
            fields = _jam_fields(item.record)
        else:
            fields = _irregularity_fields(item.record)
        return Event(
            id=the_id,
            source=namespace,
            kind=item.kind,
            source_id=item.source_id,
            origin=Origin.CROWD,
            street=_as_text(item.record.get("street"), "street") or None,
            city=_as_text(item.record.get("city"), "city") or None,
            country=_as_text(item.record.get("country"), "country", "country") or None,
            road_type=_as_int(item.record.get("roadType"), "roadType"),
            thumbs_up=_as_int(item.record.get("nThumbsUp"), "nThumbsUp"),
            attributes=attributes,
            digest=item.digest,
            **fields,
        )
    except ItemRejected as exc:
        exc.source_id, exc.kind = item.source_id, item.kind.value
        raise
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ItemRejected(first_problem(exc), source_id=item.source_id, kind=item.kind.value) from exc


def _alert_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    waze_type = (_as_text(record.get("type"), "type", "type") or "NONE").strip().upper()
    return {
        "category": category_of_alert(waze_type),
        "type": waze_type,
        "subtype": (_as_text(record.get("subtype"), "subtype", "subtype") or "").strip() or None,
        "geometry": Point.model_construct(coordinates=_position(record.get("location"), "location")),
        "start_time": _as_time(record.get("pubMillis"), "pubMillis"),
        "reliability": _as_int(record.get("reliability"), "reliability"),
        "confidence": _as_int(record.get("confidence"), "confidence"),
        "report_rating": _as_int(record.get("reportRating"), "reportRating"),
        "magvar": _as_int(record.get("magvar"), "magvar"),
    }


def _jam_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    speed_kmh = _as_float(record.get("speedKMH"), "speedKMH")
    if speed_kmh is None:
        speed_ms = _as_float(record.get("speed"), "speed")
        speed_kmh = None if speed_ms is None else round(speed_ms * 3.6, 3)
        if speed_kmh is not None and not math.isfinite(speed_kmh):
            raise ItemRejected(f"field 'speed' is out of range ({speed_ms})")
    return {
        "category": Category.JAM,
        "type": (_as_text(record.get("type"), "type", "type") or "NONE").strip(),
        "geometry": LineString.model_construct(coordinates=_line(record.get("line"))),
        "start_time": _as_time(record.get("pubMillis"), "pubMillis"),
        "speed_kmh": speed_kmh,
        "delay_s": _as_int(record.get("delay"), "delay"),
        "level": _as_int(record.get("level"), "level"),
        "length_m": _as_int(record.get("length"), "length"),
        "blocking_alert_uuid": _as_text(record.get("blockingAlertUuid"), "blockingAlertUuid",
                                        "blocking_alert_uuid") or None,
    }


def _irregularity_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "category": Category.IRREGULARITY,
        "type": (_as_text(record.get("type"), "type", "type") or "NONE").strip(),
        "subtype": (_as_text(record.get("causeType"), "causeType", "subtype") or "").strip() or None,
        "geometry": LineString.model_construct(coordinates=_line(record.get("line"))),
        "start_time": _as_time(record.get("detectionDateMillis"), "detectionDateMillis"),
        "speed_kmh": _as_float(record.get("speed"), "speed"),
        "delay_s": _as_int(record.get("delaySeconds"), "delaySeconds"),
        "level": _as_int(record.get("jamLevel"), "jamLevel"),
        "length_m": _as_int(record.get("length"), "length"),
    }


_GEOMETRY_KEYS = frozenset({"location", "line"})
_BOOLEAN_KEYS = frozenset({"reportByMunicipalityUser", "highway"})


def _attributes(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record minus its geometry (stored as GeoJSON), with string booleans coerced."""
    attributes = {key: value for key, value in record.items() if key not in _GEOMETRY_KEYS}
    for key in _BOOLEAN_KEYS & attributes.keys():
        attributes[key] = _as_bool(attributes[key], key)
    return attributes


# --------------------------------------------------------------------------- tolerant value coercion


def _as_text(value: Any, name: str, column: str | None = None) -> str | None:
    """Text as given (a number as its text); with ``column``, no longer than that column of the store."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        raise ItemRejected(f"field '{name}' should be text, got {type(value).__name__}")
    return text if column is None else check_length(text, f"field '{name}'", column)


def _as_float(value: Any, name: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ItemRejected(f"field '{name}' should be a number, got a boolean")
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # a whole number beyond the float range
            number = math.inf
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ItemRejected(f"field '{name}' should be a number, got {value[:40]!r}") from None
    else:
        raise ItemRejected(f"field '{name}' should be a number, got {type(value).__name__}")
    if not math.isfinite(number):
        shown = shown_integer(value) if isinstance(value, int) else str(value)[:40]
        raise ItemRejected(f"field '{name}' is not a finite number ({shown})")
    return number


def _as_int(value: Any, name: str, bounds: tuple[int, int] = INT32) -> int | None:
    """A whole number within ``bounds``: 32 bits for the store's Integer columns unless told otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        whole = value
    else:
        number = _as_float(value, name)
        if number is None:
            return None
        whole = round(number)
    if integer_problem(whole, bounds) is not None:
        shown = shown_integer(value) if isinstance(value, int) else f"{value[:40]!r}" if isinstance(value, str) \
            else repr(value)
        raise ItemRejected(f"field '{name}' is out of range ({shown}; the store keeps {bounds[0]} to {bounds[1]})")
    return whole


def _as_time(value: Any, name: str) -> Any:
    millis = _as_int(value, name, INT64)
    if millis is None:
        return None
    # Waze publishes milliseconds since 1970; anything outside 1990..2200 is a unit or type mistake.
    if not 631_152_000_000 <= millis <= 7_258_118_400_000:
        raise ItemRejected(f"field '{name}' is not a plausible time in milliseconds ({millis})")
    return from_millis(millis)


def _as_bool(value: Any, name: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false", "1", "0", "yes", "no", ""}:
        return value.strip().lower() in {"true", "1", "yes"}
    if isinstance(value, int):
        return bool(value)
    raise ItemRejected(f"field '{name}' should be a boolean, got {reprlib.repr(value):.40}")


def _position(value: Any, name: str) -> tuple[float, float]:
    if value is None:
        raise ItemRejected(f"no geometry: '{name}' is missing")
    if not isinstance(value, dict):
        raise ItemRejected(f"field '{name}' should be an object with x and y, got {type(value).__name__}")
    lon = _as_float(value.get("x"), f"{name}.x")
    lat = _as_float(value.get("y"), f"{name}.y")
    if lon is None or lat is None:
        axes = (("x (longitude)", lon), ("y (latitude)", lat))
        missing = " and ".join(axis for axis, number in axes if number is None)
        raise ItemRejected(f"no geometry: '{name}' lacks {missing}")
    if not -180.0 <= lon <= 180.0:
        raise ItemRejected(f"longitude {lon} out of range [-180, 180] in '{name}'")
    if not -90.0 <= lat <= 90.0:
        raise ItemRejected(f"latitude {lat} out of range [-90, 90] in '{name}'")
    return (lon, lat)


def _line(value: Any) -> list[tuple[float, float]]:
    """A validated line; the geometry models are then built without validating it a second time."""
    if value is None:
        raise ItemRejected("no geometry: 'line' is missing")
    if not isinstance(value, list):
        raise ItemRejected(f"field 'line' should be a list of points, got {type(value).__name__}")
    points = _plain_line(value)
    if points is None:  # something is off: find it point by point, for a precise reason
        points = [_position(point, f"line[{position}]") for position, point in enumerate(value)]
    if len(points) < 2:
        raise ItemRejected(f"field 'line' has {len(points)} point(s); a line needs at least 2")
    return points


_NUMBER_TYPES = frozenset({float, int})


def _plain_line(value: list[Any]) -> list[tuple[float, float]] | None:
    """The fast path for the common case: every point an {x, y} of plain numbers in range."""
    try:
        xs = [point["x"] for point in value]
        ys = [point["y"] for point in value]
    except (TypeError, KeyError):
        return None
    if not set(map(type, xs)) | set(map(type, ys)) <= _NUMBER_TYPES:
        return None
    try:
        if not (all(map(math.isfinite, xs)) and all(map(math.isfinite, ys))):
            return None
    except OverflowError:  # a whole number beyond the float range: the slow path names it
        return None
    if not (min(xs, default=0) >= -180.0 and max(xs, default=0) <= 180.0):
        return None
    if not (min(ys, default=0) >= -90.0 and max(ys, default=0) <= 90.0):
        return None
    return [(float(x), float(y)) for x, y in zip(xs, ys, strict=True)]




# --------------------------------------------------------------------------- both steps at once


@dataclass(slots=True)
class ParsedFeed:
    snapshot: WazeSnapshot
    events: list[Event]
    errors: list[ItemError]


def parse_waze_feed(data: bytes, namespace: str = "waze") -> ParsedFeed:
    """Read a whole payload: every item converted, every rejection with its reason.

    >>> feed = parse_waze_feed(b'{"alerts": [{"uuid": "a1", "type": "ACCIDENT", '
    ...                        b'"location": {"x": -73.9, "y": 40.7}}]}')
    >>> feed.events[0].id, feed.errors
    ('waze:alert:a1', [])
    """
    snapshot = read_waze_snapshot(data)
    events: list[Event] = []
    errors = list(snapshot.errors)
    for item in snapshot.items:
        try:
            events.append(to_event(item, namespace, values_checked=snapshot.values_checked))
        except ItemRejected as exc:
            errors.append(ItemError(kind=item.kind.value, source_id=item.source_id, step="convert", reason=exc.message))
    return ParsedFeed(snapshot, events, errors)
