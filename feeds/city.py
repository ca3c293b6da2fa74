"""City events: one validated constructor shared by every city source and the operator CLI.

Whatever a city event comes from (a CSV row, a GeoJSON feature, a WZDx road event, another
agency's CIFS incident, ``exchange closure add``), it passes through :func:`city_event`, which
applies the rules Waze, the CIFS schema and the WZDx schema impose and names the field that
breaks one, so that an event it accepts always publishes. Times without an offset are read in
the city's time zone.

What entry refuses, beyond the types of the values (text, times and schedules are read by
:mod:`feeds.city_values`):

* text that is not Unicode text (a lone surrogate, as non-UTF-8 bytes arrive on a command line),
  or holds a control character (NUL and the other C0/C1 controls; a description may hold tab,
  newline and carriage return);
* a schedule window that is not ``HH:MM-HH:MM`` within 00:00-23:59, is empty, crosses midnight
  or overlaps another window of its day (:func:`~feeds.city_values.schedule_problems`; the CIFS
  rules of :func:`feeds.cifs.check_cifs_rules` use the same function);
* a local time that does not exist (in a DST gap) or happens twice (in a DST fold) in the city's
  zone; a time outside the years 2000 to 2099 (UTC);
* what the published feeds would refuse: an unknown type, a subtype of another type, a street of
  fewer than 2 characters, a polyline of fewer than 2 distinct points at the published precision
  (6 decimals) for a closure, a coordinate out of range or south of 60°S (a lon-first polyline),
  an end not after the start to the second, a ROAD_CLOSED without a start, lanes or a lane
  impact out of the CIFS ranges, a parent event id of fewer than 3 characters;
* what the store cannot keep (:func:`~feeds.city_values.check_storable`): an id longer than its
  column, NUL characters, lone surrogates, non-finite numbers or whole numbers beyond 64 bits
  anywhere in the attributes, attributes nested more than 64 levels deep.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any

from exchange.errors import ItemRejected
from exchange.model import (
    CIFS_SUBTYPES,
    Category,
    CityDetails,
    Event,
    Kind,
    Lane,
    LaneImpact,
    LineString,
    Origin,
    Point,
    SourceRef,
    event_id,
    first_problem,
    to_millis,
)
from feeds.city_values import (
    EARLIEST,
    LATEST,
    MAX_OPERATOR,
    TIME_RANGE,
    check_storable,
    check_text,
    id_problem,
    optional_text,
    parse_time,
    plain_text,
    schedule_problems,
    text_problem,
    weekly_schedule,
)

__all__ = [
    "ANTARCTIC",
    "DIRECTIONS",
    "EARLIEST",
    "LATEST",
    "PUBLISHED_DECIMALS",
    "ROAD_NUMBER_KEY",
    "TIME_RANGE",
    "check_text",
    "city_event",
    "parse_polyline",
    "parse_time",
    "published_points",
    "schedule_problems",
    "text_problem",
]

DIRECTIONS = ("ONE_DIRECTION", "BOTH_DIRECTIONS")
#: a CIFS parent event id is at least this long (cifsv2.xsd)
MIN_PARENT_EVENT = 3
#: the decimals of a published coordinate (CIFS polyline, WZDx geometry)
PUBLISHED_DECIMALS = 6
#: ``event.attributes`` key of the road's number beside its name (DATEX II ``roadNumber``, NPRA's ``E16``)
ROAD_NUMBER_KEY = "road_number"
#: no road closure lies south of this latitude: the CIFS rules take it for a lon-first polyline
ANTARCTIC = -60.0
_CATEGORY = {
    "ACCIDENT": Category.ACCIDENT, "HAZARD": Category.HAZARD, "ROAD_CLOSED": Category.ROAD_CLOSED,
    "CONSTRUCTION": Category.CONSTRUCTION, "POLICE": Category.POLICE, "JAM": Category.JAM,
    "CHIT_CHAT": Category.MISC,
}
#: attribute keys of creation and update times in epoch ms (feeds.cifs.CREATED_KEY, UPDATED_KEY)
_TIME_ATTRIBUTES = ("_created_ms", "_updated_ms")
_EARLIEST_MS, _LATEST_MS = to_millis(EARLIEST), to_millis(LATEST)


def parse_polyline(text: str, field: str = "polyline") -> list[tuple[float, float]]:
    """``"lat lon lat lon ..."`` (CIFS order; commas allowed, as some producers write) into lon/lat pairs.

    >>> parse_polyline("39.414714 -84.091134 39.423646 -84.091072")
    [(-84.091134, 39.414714), (-84.091072, 39.423646)]
    """
    parts = text.replace(",", " ").split()
    try:
        numbers = [float(part) for part in parts]
    except ValueError:
        raise ItemRejected(f"{field}: {text[:60]!r} is not a list of numbers 'lat lon lat lon ...'") from None
    if len(numbers) % 2:
        raise ItemRejected(f"{field}: an odd count of numbers ({len(numbers)}); expected lat lon pairs")
    return [(numbers[i + 1], numbers[i]) for i in range(0, len(numbers), 2)]


# --------------------------------------------------------------------------- geometry


def _check_point(lon: float, lat: float, field: str) -> None:
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise ItemRejected(f"{field}: coordinates must be finite numbers")
    if not -90.0 <= lat <= 90.0:
        raise ItemRejected(f"{field}: latitude {lat} out of range [-90, 90]")
    if not -180.0 <= lon <= 180.0:
        raise ItemRejected(f"{field}: longitude {lon} out of range [-180, 180]")


def _published(value: float) -> float:
    """A coordinate as the feeds write it (6 decimals), read back."""
    return float(f"{value:.{PUBLISHED_DECIMALS}f}")


def published_points(points: Iterable[Sequence[float]]) -> list[tuple[str, str]]:
    """A line's ``(lon, lat)`` as the feeds write them, to 6 decimals, a point repeated at once left out:
    vertices a hair apart (DiaLog writes 9 decimals) are one point as published, and a zero-length
    segment in a feed is what readers stumble on."""
    written: list[tuple[str, str]] = []
    for lon, lat in points:
        place = (f"{lon:.{PUBLISHED_DECIMALS}f}", f"{lat:.{PUBLISHED_DECIMALS}f}")
        if not written or place != written[-1]:
            written.append(place)
    return written


# --------------------------------------------------------------------------- lanes, source


def _model_problem(exc: ValueError, prefix: str) -> str:
    problem = first_problem(exc)
    return f"{prefix}.{problem}" if ":" in problem else f"{prefix}: {problem}"


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def _no_bool(value: Any, field: str) -> None:
    if isinstance(value, bool):
        raise ItemRejected(f"{field}: expected a whole number, got a boolean")


def _lanes(lanes: Sequence[Mapping[str, Any]] | None) -> list[Lane] | None:
    if not lanes:
        return None
    result: list[Lane] = []
    orders: set[int] = set()
    for position, lane in enumerate(lanes):
        where = f"lanes[{position}]"
        if not isinstance(lane, Mapping):
            raise ItemRejected(f"{where}: expected an object {{order, type, status}}")
        values = dict(lane)
        _no_bool(values.get("order"), f"{where}.order")
        if "type" in values:
            kind = values["type"]
            if not isinstance(kind, str) or not check_text(kind, f"{where}.type").strip():
                raise ItemRejected(f"{where}.type: {reprlib.repr(kind)} is not a lane type (e.g. LANE)")
            values["type"] = kind.strip()
        values["status"] = _upper(values.get("status"))
        try:
            parsed = Lane.model_validate(values)
        except ValueError as exc:
            raise ItemRejected(_model_problem(exc, where)) from exc
        if parsed.order in orders:
            raise ItemRejected(f"{where}.order: lane {parsed.order} is listed twice")
        orders.add(parsed.order)
        result.append(parsed)
    return result


def _lane_impact(value: Mapping[str, Any] | None) -> LaneImpact | None:
    if not value:
        return None
    if not isinstance(value, Mapping):
        raise ItemRejected("lane_impact: expected an object {total_closed_lanes, roadside}")
    values = dict(value)
    _no_bool(values.get("total_closed_lanes"), "lane_impact.total_closed_lanes")
    values["roadside"] = _upper(values.get("roadside"))
    try:
        return LaneImpact.model_validate(values)
    except ValueError as exc:
        raise ItemRejected(_model_problem(exc, "lane_impact")) from exc


def _reference(value: Mapping[str, Any] | None) -> SourceRef | None:
    if not value:
        return None
    if not isinstance(value, Mapping):
        raise ItemRejected("source: expected an object {reference, name, url}")
    values = {key: optional_text(item, f"source.{key}") if isinstance(item, str) else item
              for key, item in value.items()}
    try:
        return SourceRef.model_validate(values)
    except ValueError as exc:
        raise ItemRejected(_model_problem(exc, "source")) from exc


def city_event(
    namespace: str,
    source_id: str,
    *,
    type: str,
    street: str,
    coordinates: Sequence[tuple[float, float]],
    zone: tzinfo,
    subtype: str | None = None,
    direction: str | None = None,
    start: str | datetime | None = None,
    end: str | datetime | None = None,
    description: str | None = None,
    schedule: Mapping[str, str] | None = None,
    lanes: Sequence[Mapping[str, Any]] | None = None,
    lane_impact: Mapping[str, Any] | None = None,
    parent_event: str | None = None,
    reference: Mapping[str, Any] | None = None,
    operator: str | None = None,
    city: str | None = None,
    end_date_verified: bool = False,
    attributes: Mapping[str, Any] | None = None,
    digest: str = "",
    point_device: bool = False,
) -> Event:
    """A validated city event; ``coordinates`` are (lon, lat) in travel order.

    An event this accepts renders, alone, into a CIFS XML feed valid against cifsv2.xsd and
    :func:`feeds.cifs.check_cifs_rules`, a CIFS JSON feed, and a WZDx 4.2 feed valid against its
    schema and business rules; and the store keeps it. Decisions beyond what the formats say:

    * **Schedules**: windows within 00:00-23:59 (no 24:00), start before end, no overlap in a
      day; a window over midnight is refused with the advice to split it in two, the second on
      the next day (:func:`schedule_problems`). Days are case-insensitive; the stored hours are
      ``HH:MM-HH:MM`` sorted.
    * **Local times** (no offset) are read in ``zone``: a time the clocks skip (DST gap) and a
      time they show twice (DST fold) are both refused with the advice to give an offset, never
      shifted or resolved silently.
    * **Time range**: start and end lie in :data:`TIME_RANGE` once converted to UTC.
    * **Verified end**: ``end_date_verified`` (WZDx/CWZ ``is_end_date_verified``) is false unless
      the caller has the source's evidence (an imported WZDx event that says so, an operator's
      ``--verified-end``): a CIFS, CSV or GeoJSON import is not verified.
    * **Text**: no lone surrogates (bytes that were not UTF-8) and no control characters in any
      text field; the description alone may hold tab, newline and carriage return. The
      attributes (the source's other fields, not published) may hold any character but NUL and
      lone surrogates, no non-finite number, no whole number beyond 64 bits, and nest at most 64
      levels. No length limit beyond the formats' minimums (street 2, parent event 3) and the
      store's id and operator columns.
    * **Geometry**: a ROAD_CLOSED or CONSTRUCTION needs 2 points distinct at the published
      precision (6 decimals); another type may have one point with a direction, and so may road
      works a source gives at one position on purpose (``point_device``: an iCone arrow board, a
      WZDx work zone at one position, a DATEX II point location).
    * **Description**: HTML left in it becomes plain text (:func:`~feeds.city_values.plain_text`:
      ``<br/>`` a line break, ``&amp;`` "&").

    Raises
    ------
    ItemRejected
        Naming the field: unknown type or subtype, a one-point polyline, a coordinate out of range,
        a street of one character, an end not after the start, a ROAD_CLOSED without a start, a
        bad schedule window, a local time in a DST gap or fold, a time outside 2000..2099, text
        that is not UTF-8 or holds control characters, ...
    """
    ident = optional_text(source_id, "id")
    if ident is None or ident != source_id:
        raise ItemRejected(f"id: {source_id!r} is empty or has spaces around it")
    the_id = event_id(namespace, Kind.CITY, ident)
    problem = id_problem(ident, the_id)
    if problem is not None:
        raise ItemRejected(f"id: {problem}")
    kind_type = (optional_text(type, "type") or "").upper()
    if kind_type not in CIFS_SUBTYPES:
        raise ItemRejected(f"type: {type!r} is not one of {', '.join(sorted(CIFS_SUBTYPES))}")
    sub = (optional_text(subtype, "subtype") or "").upper() or None
    if sub is not None and sub not in CIFS_SUBTYPES[kind_type]:
        allowed = ", ".join(sorted(CIFS_SUBTYPES[kind_type])) or "none"
        raise ItemRejected(f"subtype: {subtype!r} does not belong to type {kind_type} (allowed: {allowed})")
    name = optional_text(street, "street") or ""
    if len(name) < 2:
        raise ItemRejected(f"street: {street!r} is too short (at least 2 characters)")
    if direction is not None and direction not in DIRECTIONS:
        raise ItemRejected(f"direction: {direction!r} is not ONE_DIRECTION or BOTH_DIRECTIONS")
    # HTML a publisher left in its text (CDOT's "<br/>") is read as plain text, line breaks kept
    text = optional_text(plain_text(description) if isinstance(description, str) else description,
                         "description", multiline=True)
    place = optional_text(city, "city")
    who = optional_text(operator, "operator")
    if who is not None and len(who) > MAX_OPERATOR:
        raise ItemRejected(f"operator: {len(who)} characters, more than {MAX_OPERATOR}")
    parent = optional_text(parent_event, "parent_event")
    if parent is not None and len(parent) < MIN_PARENT_EVENT:
        raise ItemRejected(f"parent_event: {parent!r} is too short (at least {MIN_PARENT_EVENT} characters)")

    try:
        points = [(float(lon), float(lat)) for lon, lat in coordinates]
    except OverflowError:  # a whole number beyond the float range
        raise ItemRejected("polyline: coordinates must be finite numbers") from None
    for position, (lon, lat) in enumerate(points):
        _check_point(lon, lat, f"polyline point {position + 1}")
        if _published(lat) < ANTARCTIC:
            raise ItemRejected(f"polyline point {position + 1}: latitude {lat} is south of {ANTARCTIC:g}° "
                               "(Antarctica); is the polyline lon-first? CIFS is 'lat lon'")
    distinct = len({(_published(lon), _published(lat)) for lon, lat in points})
    if distinct < 2:
        # CIFS accepts one point with a direction for an incident, but Waze closes roads by their
        # extent: a closure needs a line (formats.md §2.2 and §5, item 6), and road works drawn as
        # a line that collapsed are a drawing error (a CSV row, an operator's). Road works a source
        # gives at one position (``point_device``: an iCone arrow board, a WZDx point work zone, a
        # DATEX II point location) are a point on purpose.
        # Points are told apart as the feeds write them, to 6 decimals (about 0.1 m).
        if kind_type == "ROAD_CLOSED" or (kind_type == "CONSTRUCTION" and not point_device) or not points:
            raise ItemRejected(f"polyline: {len(points)} point(s), {distinct} distinct; a {kind_type} needs at least "
                               f"2 distinct points (to {PUBLISHED_DECIMALS} decimals, as published)")
        if direction is None:
            raise ItemRejected("polyline: one point needs a direction (ONE_DIRECTION or BOTH_DIRECTIONS)")
        points = points[:1]
    else:  # a point repeated at once (iCone doubles vertices) is a zero-length segment
        points = [point for before, point in zip([None, *points], points, strict=False) if point != before]

    starts = parse_time(start, "start", zone)
    ends = parse_time(end, "end", zone)
    if kind_type == "ROAD_CLOSED" and starts is None:
        raise ItemRejected("start: a ROAD_CLOSED event needs a start time")
    # the feeds write times to the second: an end within the start's second would equal it there
    if starts is not None and ends is not None and ends.replace(microsecond=0) <= starts.replace(microsecond=0):
        # both in the city's zone, whatever offsets they were given with
        raise ItemRejected(f"end: {ends.astimezone(zone).isoformat()} is not after the start "
                           f"{starts.astimezone(zone).isoformat()} (to the second)")

    extra = dict(attributes or {})
    check_storable(extra, "attributes")
    for key in _TIME_ATTRIBUTES:
        stamp = extra.get(key)
        if isinstance(stamp, int | float) and not isinstance(stamp, bool) and not _EARLIEST_MS <= stamp < _LATEST_MS:
            raise ItemRejected(f"attributes.{key}: {stamp} is outside {TIME_RANGE}")

    try:
        details = CityDetails(
            description=text,
            schedule=weekly_schedule(schedule),
            lanes=_lanes(lanes),
            lane_impact=_lane_impact(lane_impact),
            parent_event=parent,
            reference=_reference(reference),
            operator=who,
            end_date_verified=end_date_verified,
        )
    except ValueError as exc:
        if isinstance(exc, ItemRejected):
            raise
        raise ItemRejected(first_problem(exc)) from exc
    geometry = Point(coordinates=points[0]) if len(points) == 1 else LineString(coordinates=points)
    return Event(
        id=the_id,
        source=namespace,
        kind=Kind.CITY,
        source_id=ident,
        origin=Origin.CITY,
        category=_CATEGORY[kind_type],
        type=kind_type,
        subtype=sub,
        geometry=geometry,
        street=name,
        city=place,
        direction=direction,
        start_time=starts,
        end_time=ends,
        details=details,
        attributes=extra,
        digest=digest,
    )
