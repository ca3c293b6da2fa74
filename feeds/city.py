"""City events: one validated constructor shared by every city source and the operator CLI.

Whatever a city event comes from (a CSV row, a GeoJSON feature, a WZDx road event, another
agency's CIFS incident, ``exchange closure add``), it passes through :func:`city_event`, which
applies the rules Waze and the CIFS schema impose and names the field that breaks one. Times
without an offset are read in the city's time zone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any

from exchange.errors import ItemRejected
from exchange.model import (
    CIFS_SUBTYPES,
    SCHEDULE_DAYS,
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
)

__all__ = ["DIRECTIONS", "city_event", "parse_polyline", "parse_time"]

DIRECTIONS = ("ONE_DIRECTION", "BOTH_DIRECTIONS")
_SCHEDULE = re.compile(r"^(\d{1,2}:\d{2}-\d{1,2}:\d{2},?)+$")
_CATEGORY = {
    "ACCIDENT": Category.ACCIDENT, "HAZARD": Category.HAZARD, "ROAD_CLOSED": Category.ROAD_CLOSED,
    "CONSTRUCTION": Category.CONSTRUCTION, "POLICE": Category.POLICE, "JAM": Category.JAM,
    "CHIT_CHAT": Category.MISC,
}


def parse_time(value: str | datetime | None, field: str, zone: tzinfo) -> datetime | None:
    """An ISO 8601 time; without an offset it is local time in ``zone``.

    >>> from zoneinfo import ZoneInfo
    >>> parse_time("2026-12-01T08:00:00", "start", ZoneInfo("America/New_York")).isoformat()
    '2026-12-01T08:00:00-05:00'
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        when = value
    else:
        text = value.strip().replace(" ", "T", 1) if "T" not in value else value.strip()
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ItemRejected(f"{field}: {value!r} is not an ISO 8601 time (2026-12-01T08:00:00-05:00)") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=zone)


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


def _check_point(lon: float, lat: float, field: str) -> None:
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise ItemRejected(f"{field}: coordinates must be finite numbers")
    if not -90.0 <= lat <= 90.0:
        raise ItemRejected(f"{field}: latitude {lat} out of range [-90, 90]")
    if not -180.0 <= lon <= 180.0:
        raise ItemRejected(f"{field}: longitude {lon} out of range [-180, 180]")


def _schedule(value: Mapping[str, str] | None) -> dict[str, str] | None:
    if not value:
        return None
    schedule: dict[str, str] = {}
    for day, hours in value.items():
        key = day.strip().lower()
        if key not in SCHEDULE_DAYS:
            raise ItemRejected(f"schedule: unknown day {day!r} (everyday, monday ... sunday)")
        text = str(hours).replace(" ", "")
        if not _SCHEDULE.match(text):
            raise ItemRejected(f"schedule.{key}: {hours!r} is not 'HH:MM-HH:MM[,HH:MM-HH:MM]'")
        schedule[key] = text.rstrip(",")
    return {day: schedule[day] for day in SCHEDULE_DAYS if day in schedule}  # the XSD's order


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
    end_date_verified: bool = True,
    attributes: Mapping[str, Any] | None = None,
    digest: str = "",
) -> Event:
    """A validated city event; ``coordinates`` are (lon, lat) in travel order.

    Raises
    ------
    ItemRejected
        Naming the field: unknown type or subtype, a one-point polyline, a coordinate out of range,
        a street of one character, an end before the start, a ROAD_CLOSED without a start, ...
    """
    kind_type = (type or "").strip().upper()
    if kind_type not in CIFS_SUBTYPES:
        raise ItemRejected(f"type: {type!r} is not one of {', '.join(sorted(CIFS_SUBTYPES))}")
    sub = (subtype or "").strip().upper() or None
    if sub is not None and sub not in CIFS_SUBTYPES[kind_type]:
        allowed = ", ".join(sorted(CIFS_SUBTYPES[kind_type])) or "none"
        raise ItemRejected(f"subtype: {subtype!r} does not belong to type {kind_type} (allowed: {allowed})")
    name = (street or "").strip()
    if len(name) < 2:
        raise ItemRejected(f"street: {street!r} is too short (at least 2 characters)")
    if direction is not None and direction not in DIRECTIONS:
        raise ItemRejected(f"direction: {direction!r} is not ONE_DIRECTION or BOTH_DIRECTIONS")
    points = [(float(lon), float(lat)) for lon, lat in coordinates]
    for position, (lon, lat) in enumerate(points):
        _check_point(lon, lat, f"polyline point {position + 1}")
    distinct = len(set(points))
    if distinct < 2:
        # CIFS accepts one point with a direction for an incident, but Waze closes roads by their
        # extent: a closure needs a line (formats.md §2.2 and §5, item 6)
        if kind_type in ("ROAD_CLOSED", "CONSTRUCTION") or not points:
            raise ItemRejected(f"polyline: {len(points)} point(s), {distinct} distinct; a {kind_type} needs at "
                               "least 2 distinct points")
        if direction is None:
            raise ItemRejected("polyline: one point needs a direction (ONE_DIRECTION or BOTH_DIRECTIONS)")
        points = points[:1]
    starts = parse_time(start, "start", zone)
    ends = parse_time(end, "end", zone)
    if kind_type == "ROAD_CLOSED" and starts is None:
        raise ItemRejected("start: a ROAD_CLOSED event needs a start time")
    if starts is not None and ends is not None and ends <= starts:
        raise ItemRejected(f"end: {ends.isoformat()} is not after the start {starts.isoformat()}")
    text = (description or "").strip() or None
    try:
        details = CityDetails(
            description=text,
            schedule=_schedule(schedule),
            lanes=[Lane.model_validate(lane) for lane in lanes] if lanes else None,
            lane_impact=LaneImpact.model_validate(lane_impact) if lane_impact else None,
            parent_event=parent_event or None,
            reference=SourceRef.model_validate(reference) if reference else None,
            operator=operator,
            end_date_verified=end_date_verified,
        )
    except ValueError as exc:
        raise ItemRejected(first_problem(exc)) from exc
    geometry = Point(coordinates=points[0]) if len(points) == 1 else LineString(coordinates=points)
    return Event(
        id=event_id(namespace, Kind.CITY, source_id),
        source=namespace,
        kind=Kind.CITY,
        source_id=source_id,
        origin=Origin.CITY,
        category=_CATEGORY[kind_type],
        type=kind_type,
        subtype=sub,
        geometry=geometry,
        street=name,
        city=city,
        direction=direction,
        start_time=starts,
        end_time=ends,
        details=details,
        attributes=dict(attributes or {}),
        digest=digest,
    )


