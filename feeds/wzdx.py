"""WZDx (USDOT Work Zone Data Exchange): a 4.2 WorkZoneFeed out, 4.x work zone feeds in.

* :func:`render_wzdx` publishes the broker's closures and road works as a WZDx **4.2**
  ``FeatureCollection`` (formats.md §3.2): only events of category ``CONSTRUCTION`` or
  ``ROAD_CLOSED``; one road event per direction of travel (a ``BOTH_DIRECTIONS`` event becomes
  two features, the second with the line reversed and the id suffix :data:`REVERSE_SUFFIX`);
  ``[lon, lat]`` geometry, upstream first; all times UTC ``Z``. WZDx has no schedule pattern: a
  recurring event is one road event per occurrence within :data:`DEFAULT_HORIZON` (14 days),
  linked by ``related_road_events`` as WZDx's own recurring example links them. An event without
  an end gets one :data:`DEFAULT_HORIZON` ahead (:func:`open_end`), never in the past, unverified.
* :func:`parse_wzdx` reads a WZDx 4.0/4.1/4.2 work zone feed into a snapshot, and
  :func:`wzdx_item_to_event` converts one road event through :func:`feeds.city.city_event`
  (formats.md §3.4): ``all-lanes-closed`` is a ``ROAD_CLOSED``/``ROAD_CLOSED_CONSTRUCTION``, any
  other impact a ``CONSTRUCTION`` with its lanes. Detour road events are skipped with a reason.
* :func:`problems_for` and :func:`losses_for` say, per event, why WZDx cannot carry it and what it
  loses or approximates when it does (the compile report); ``feeds.cwz`` builds CWZ 1.0 from
  :func:`wzdx_document`.

Ids: a feature's id is the event id (``namespace:city:source_id``); the opposite direction of a
``BOTH_DIRECTIONS`` event is ``{event id}:reverse``; an occurrence of a recurring event appends
``#<its scheduled local start, YYYY-MM-DDTHH:MM>``. All are stable for the event's lifetime.

What an imported WZDx road event carries beyond the common fields is kept in
``event.attributes["wzdx"]`` (its direction, vehicle impact, location method, work zone type,
cross streets, mileposts, all road names, lanes as written, types of work, reduced speed limit,
data source id); :func:`render_wzdx` prefers those values on output, so a WZDx feed passed
through the broker keeps them. Its four verified flags become the event's (``CityDetails``), the
only way besides an operator's word that they are true. Creation and update times travel as
``attributes["_created_ms"]``/``["_updated_ms"]``, as for CIFS.
"""

from __future__ import annotations

import contextlib
import math
import re
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any
from uuid import NAMESPACE_URL, uuid5

import orjson

from exchange.errors import ItemRejected, MalformedPayload, UsageError
from exchange.model import (
    SCHEDULE_DAYS,
    Category,
    Event,
    ItemError,
    Kind,
    Lane,
    LineString,
    Point,
    Status,
    event_id,
    first_problem,
    from_millis,
    to_millis,
)
from feeds.cifs import Attribution
from feeds.city import ROAD_NUMBER_KEY, city_event, parse_time, published_points, text_problem
from feeds.city_values import schedule_windows, wall_clock_instant
from feeds.items import FeedItem, Snapshot, digest, field_at, load_json
from feeds.lint import is_full_closure

__all__ = [
    "CC0_LICENSE",
    "DEFAULT_HORIZON",
    "REVERSE_SUFFIX",
    "WORK_ZONE_CATEGORIES",
    "WZDX_KEY",
    "WZDX_VERSION",
    "Occurrence",
    "absent_now",
    "feed_version",
    "line_direction",
    "losses_for",
    "name_direction",
    "open_end",
    "parse_wzdx",
    "problems_for",
    "render_wzdx",
    "restrictions_of",
    "road_event_field",
    "schedule_occurrences",
    "work_zone_losses",
    "work_zone_problems",
    "wzdx_document",
    "wzdx_item_to_event",
]

WZDX_VERSION = "4.2"
#: the only licence WZDx 4.2 allows in ``feed_info.license``
CC0_LICENSE = "https://creativecommons.org/publicdomain/zero/1.0/"
#: how far ahead a recurring event's occurrences are published, and how long an event without an end
#: is said to last (from its start, or from the feed's day once started), with ``is_end_date_verified: false``
DEFAULT_HORIZON = timedelta(days=14)
#: an event with no occurrence left shows its last one when that began at most this long before
_LAST_OCCURRENCE_WITHIN = timedelta(days=8)
#: the categories a work zone feed carries
WORK_ZONE_CATEGORIES = frozenset({Category.CONSTRUCTION, Category.ROAD_CLOSED})
#: id suffix of the opposite-direction feature of a ``BOTH_DIRECTIONS`` event
REVERSE_SUFFIX = ":reverse"
#: ``event.attributes`` key holding what a WZDx road event carried beyond the common fields
WZDX_KEY = "wzdx"

_CREATED_KEY = "_created_ms"  # the same keys as feeds.cifs.CREATED_KEY / UPDATED_KEY
_UPDATED_KEY = "_updated_ms"
_VERSION = re.compile(r"^4\.\d+$")
_DIRECTIONS = frozenset({
    "northbound", "eastbound", "southbound", "westbound", "inner-loop", "outer-loop", "undefined", "unknown",
})
_VEHICLE_IMPACTS = frozenset({
    "all-lanes-closed", "some-lanes-closed", "all-lanes-open", "alternating-one-way", "some-lanes-closed-merge-left",
    "some-lanes-closed-merge-right", "all-lanes-open-shift-left", "all-lanes-open-shift-right",
    "some-lanes-closed-split", "flagging", "temporary-traffic-signal", "unknown",
})
_LANE_STATUSES = frozenset({
    "open", "closed", "shift-left", "shift-right", "merge-left", "merge-right", "alternating-flow",
})
_WORK_TYPES = frozenset({
    "maintenance", "minor-road-defect-repair", "roadside-work", "overhead-work", "below-road-work", "barrier-work",
    "surface-work", "painting", "roadway-relocation", "roadway-creation",
})
#: schedule windows this close are one occurrence: 23:59 to the next day's 00:00 is how an
#: overnight window is written (feeds.city_values.schedule_problems)
_TOUCHING = timedelta(minutes=1)
_LOCATION_METHODS = frozenset({"channel-device-method", "sign-method", "junction-method", "other", "unknown"})
_WORK_ZONE_TYPES = frozenset({"static", "moving", "planned-moving-area"})
_LANE_TYPES = frozenset({
    "general", "exit-lane", "exit-ramp", "entrance-lane", "entrance-ramp", "sidewalk", "bike-lane", "shoulder",
    "parking", "median", "two-way-center-turn-lane", "center-left-turn-lane",
})
#: lanes that carry no through traffic: not counted in a CIFS lane_impact
_NOT_TRAFFIC = frozenset({"sidewalk", "bike-lane", "shoulder", "parking", "median"})
_CLOSED_WZDX = frozenset({"closed", "merge-left", "merge-right"})  # merge-*: "the lane is closed, merge"
_CLOSED_CIFS = frozenset({"CLOSED_LANE", "CLOSE", "CLOSED"})
_KEPT_STRINGS = ("beginning_cross_street", "ending_cross_street")
_KEPT_NUMBERS = ("beginning_milepost", "ending_milepost")

Position = tuple[float, float]


# --------------------------------------------------------------------------- rendering


@lru_cache(maxsize=8192)
def _utc(when: datetime) -> str:
    """RFC 3339 UTC with ``Z``; a naive time is taken as UTC (``render_wzdx`` has no city zone).

    >>> from datetime import timezone
    >>> _utc(datetime(2024, 7, 12, 8, 0, 30, 999, tzinfo=timezone(timedelta(hours=-5))))
    '2024-07-12T13:00:30Z'
    """
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def line_direction(coordinates: Sequence[Position]) -> str:
    """The WZDx direction of travel from a ``[lon, lat]`` line's overall bearing (first to last point).

    >>> line_direction([(-84.09, 39.41), (-84.09, 39.42)]), line_direction([(-84.09, 39.41), (-84.10, 39.41)])
    ('northbound', 'westbound')
    >>> line_direction([(-84.09, 39.41), (-84.09, 39.41)])
    'unknown'
    """
    (lon0, lat0), (lon1, lat1) = coordinates[0], coordinates[-1]
    dx = (lon1 - lon0) * math.cos(math.radians((lat0 + lat1) / 2.0))
    dy = lat1 - lat0
    if dx == 0.0 and dy == 0.0:
        return "unknown"
    bearing = math.degrees(math.atan2(dx, dy)) % 360.0
    return ("northbound", "eastbound", "southbound", "westbound")[int(((bearing + 45.0) % 360.0) // 90.0)]


def name_direction(street: str | None) -> str | None:
    """The direction of travel a route's name signs ("I-75 N", "SR-37 SB", "US 160 Eastbound"), or None.

    Only a route number followed by a direction counts: "W 7th St" and "North Street" name a part of a
    street or the street itself, not a direction of travel.

    >>> name_direction("I-75 N"), name_direction("SR-37 SB"), name_direction("US 160 eastbound")
    ('northbound', 'southbound', 'eastbound')
    >>> name_direction("W 7th St"), name_direction("North Street"), name_direction("I-70"), name_direction(None)
    (None, None, None, None)
    """
    found = _ROUTE_DIRECTION.fullmatch(street.strip()) if street else None
    return _NAMED_DIRECTIONS[found.group(1)[0].upper()] if found else None


_ROUTE_DIRECTION = re.compile(
    r"[A-Za-z]{1,10}(?:[- ]?[A-Za-z]{1,10})?[- ]?\d{1,4}[A-Za-z]?\s+"
    r"(N|S|E|W|NB|SB|EB|WB|North|South|East|West|Northbound|Southbound|Eastbound|Westbound)",
    re.IGNORECASE,
)
_NAMED_DIRECTIONS = {"N": "northbound", "S": "southbound", "E": "eastbound", "W": "westbound"}


def _feed_info(feed_info: Mapping[str, Any], generated: datetime) -> tuple[dict[str, Any], str]:
    publisher = str(feed_info.get("publisher") or "").strip()
    if not publisher:
        raise UsageError("feed_info: 'publisher' is required (the organisation publishing the feed)")
    sources = feed_info.get("data_sources")
    if sources is None:
        source_id = str(feed_info.get("data_source_id") or uuid5(NAMESPACE_URL, f"traffic-exchange:{publisher}"))
        name = str(feed_info.get("organization_name") or publisher)
        sources = [{"data_source_id": source_id, "organization_name": name}]
    if not (isinstance(sources, list) and sources and all(
        isinstance(source, Mapping) and source.get("data_source_id") and source.get("organization_name")
        for source in sources
    )):
        raise UsageError("feed_info: data_sources must be a non-empty list of {data_source_id, organization_name}")
    info: dict[str, Any] = {
        "publisher": publisher,
        "version": WZDX_VERSION,
        "update_date": _utc(generated),
        "data_sources": [dict(source) for source in sources],
    }
    licence = feed_info.get("license")
    if licence is not None:
        if licence != CC0_LICENSE:
            raise UsageError(f"feed_info: license must be {CC0_LICENSE} (the only value WZDx allows), not {licence!r}")
        info["license"] = licence
    for key in ("contact_name", "contact_email", "update_frequency"):
        if feed_info.get(key) is not None:
            info[key] = feed_info[key]
    return info, str(sources[0]["data_source_id"])


def _road_names(street: str, event: Event, kept: Mapping[str, Any]) -> list[str]:
    """The street first, then the other names its source gave the road (a WZDx feed's further
    ``road_names``, a DATEX II ``roadNumber``)."""
    names = [street]
    others = kept.get("road_names")
    for name in [*(others if isinstance(others, list) else ()), event.attributes.get(ROAD_NUMBER_KEY)]:
        if isinstance(name, str) and name.strip() and name.strip() not in names:
            names.append(name.strip())
    return names


def _wzdx_attributes(event: Event) -> Mapping[str, Any]:
    kept = event.attributes.get(WZDX_KEY)
    return kept if isinstance(kept, Mapping) else {}


def _vehicle_impact(event: Event, kept: Mapping[str, Any]) -> str:
    if is_full_closure(event):  # a ROAD_CLOSED with a lane impact closes those lanes, as CIFS says
        return "all-lanes-closed"
    original = kept.get("vehicle_impact")
    if original in _VEHICLE_IMPACTS and original != "all-lanes-closed":
        return str(original)
    details = event.details
    if details is not None and details.lanes:
        closed = sum(1 for lane in details.lanes if lane.status in _CLOSED_CIFS)
        return "some-lanes-closed" if closed else "all-lanes-open"
    if details is not None and details.lane_impact is not None:
        return "some-lanes-closed" if details.lane_impact.total_closed_lanes else "all-lanes-open"
    return "unknown"


def _source_lanes(kept: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The WZDx lanes an imported road event listed (order, type, status), when WZDx 4.2 can carry them."""
    original = kept.get("lanes")
    if not isinstance(original, list) or not original or not all(
        isinstance(lane, Mapping) and isinstance(lane.get("order"), int) and not isinstance(lane.get("order"), bool)
        and lane.get("type", "general") in _LANE_TYPES and lane.get("status") in _LANE_STATUSES
        for lane in original
    ):
        return None
    lanes = []
    for lane in sorted(original, key=lambda lane: int(lane["order"])):
        written = {"order": lane["order"], "type": lane.get("type", "general"), "status": lane["status"]}
        if restrictions := restrictions_of(lane.get("restrictions")):
            written["restrictions"] = restrictions
        lanes.append(written)
    return lanes


def _read_as(lanes: list[dict[str, Any]]) -> list[Lane] | None:
    """What the WZDx reader made of ``lanes`` (CIFS lanes), None when it refuses them."""
    try:
        return [Lane.model_validate(lane) for lane in _lanes(lanes)[0] or []]
    except (ItemRejected, ValueError):
        return None


def _wzdx_lanes(event: Event, kept: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The lanes published: the source's own WZDx lanes while the event still says what they said
    (they keep what CIFS lanes cannot: merge-left, shift-right, exit-ramp ...; an operator's change
    wins), else the event's CIFS lanes; none for a closed road unless the source listed them closed."""
    details = event.details
    if details is None:
        return None
    original = _source_lanes(kept)
    if event.category is Category.ROAD_CLOSED:
        return original if original and all(lane["status"] != "open" for lane in original) else None
    if not details.lanes:
        return None
    if original is not None and _read_as(original) == sorted(details.lanes, key=lambda lane: lane.order):
        return original
    lanes = []
    for rank, lane in enumerate(sorted(details.lanes, key=lambda lane: lane.order), start=1):
        kind = "general" if lane.type.upper() == "LANE" else lane.type.lower().replace("_", "-")
        lanes.append({
            "order": rank,  # WZDx: 1 is the left-most lane, whatever base the CIFS order used
            "type": kind if kind in _LANE_TYPES else "general",
            "status": "closed" if lane.status in _CLOSED_CIFS else "open",
        })
    return lanes


def _stated_direction(event: Event, kept: Mapping[str, Any]) -> tuple[str, str] | None:
    """The direction of travel the source states, and whence (for the compile report): its signed
    ``direction``, else the one its route's name signs ("I-75 N" runs north wherever its line bends);
    None when neither says (the line's bearing decides)."""
    if kept.get("direction") in _DIRECTIONS:
        return str(kept["direction"]), "is the source's"
    named = name_direction(event.street)
    if named is not None:
        return named, f"is read from the road name {event.street!r}; the source signs none"
    return None


def _source_related(event: Event, kept: Mapping[str, Any]) -> list[dict[str, str]]:
    """The source's ``related_road_events``, their ids the events this broker made of the road events named
    (one namespace, so the same road event is the same id here)."""
    listed = kept.get("related_road_events")
    if not isinstance(listed, list):
        return []
    return [{"type": entry["type"], "id": event_id(event.source, Kind.CITY, entry["id"])} for entry in listed
            if entry.get("type") in _RELATED_TYPES and isinstance(entry.get("id"), str) and entry["id"].strip()]


def _types_of_work(kept: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The source's ``types_of_work``, the entries WZDx 4.2 can carry."""
    found = kept.get("types_of_work")
    if not isinstance(found, list):
        return None
    kinds = []
    for work in found:
        if isinstance(work, Mapping) and work.get("type_name") in _WORK_TYPES:
            kind: dict[str, Any] = {"type_name": work["type_name"]}
            if isinstance(work.get("is_architectural_change"), bool):
                kind["is_architectural_change"] = work["is_architectural_change"]
            kinds.append(kind)
    return kinds or None


def _attribute_time(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return from_millis(value)
    return None


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def open_end(start: datetime, generated: datetime, horizon: timedelta = DEFAULT_HORIZON,
             zone: tzinfo = UTC) -> datetime:
    """The end published for an event that has none: ``horizon`` after its start, or after the day
    the feed is generated (midnight in the city's ``zone``) once it has started; never in the past,
    and the same all day, so the feed does not change at every publication.

    >>> open_end(datetime(2026, 3, 2, 15, 0, tzinfo=UTC), datetime(2026, 11, 27, 13, 5, tzinfo=UTC)).isoformat()
    '2026-12-11T00:00:00+00:00'
    >>> open_end(datetime(2026, 12, 1, 8, 0, tzinfo=UTC), datetime(2026, 11, 27, 13, 5, tzinfo=UTC)).isoformat()
    '2026-12-15T08:00:00+00:00'
    >>> from zoneinfo import ZoneInfo
    >>> open_end(datetime(2026, 3, 2, 15, 0, tzinfo=UTC), datetime(2026, 11, 27, 13, 5, tzinfo=UTC),
    ...          zone=ZoneInfo("America/Los_Angeles")).astimezone(UTC).isoformat()
    '2026-12-11T08:00:00+00:00'
    """
    local = _aware(generated).astimezone(zone)
    midnight = datetime(local.year, local.month, local.day)  # the wall clock: the horizon in days, across DST too
    day_end = (midnight + horizon).replace(tzinfo=zone)
    return max(_aware(start) + horizon, day_end)


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One time a recurring event is in effect: UTC instants, and its scheduled local start as
    ``YYYY-MM-DDTHH:MM`` (the id suffix: stable when the event's start or end clips it)."""

    start: datetime
    end: datetime
    key: str


def schedule_occurrences(
    schedule: Mapping[str, str], *, zone: tzinfo, start: datetime | None, end: datetime | None,
    window_start: datetime, window_end: datetime,
) -> list[Occurrence]:
    """The occurrences of a weekly schedule (``day -> 'HH:MM-HH:MM[,...]'``, hours in ``zone``)
    overlapping ``[window_start, window_end)``, clipped to the event's ``[start, end]`` (not to the
    window: one in progress keeps its start).

    Windows that overlap or touch (``everyday`` with a day's own hours; ``22:00-23:59`` then the next
    day's ``00:00-06:00``, how an overnight window is written) are one occurrence.

    >>> weekly = {"tuesday": "22:00-23:59", "wednesday": "00:00-06:00"}
    >>> [(o.key, o.end.isoformat()) for o in schedule_occurrences(weekly, zone=UTC, start=None, end=None,
    ...     window_start=datetime(2026, 12, 1, tzinfo=UTC), window_end=datetime(2026, 12, 8, tzinfo=UTC))]
    [('2026-12-01T22:00', '2026-12-02T06:00:00+00:00')]
    """
    low = max(window_start, start) if start is not None else window_start
    high = min(window_end, end) if end is not None else window_end
    if high <= low:
        return []
    spans: list[tuple[datetime, datetime, str]] = []
    day = low.astimezone(zone).date() - timedelta(days=1)  # yesterday's window may still run
    while day <= high.astimezone(zone).date():
        for name in ("everyday", SCHEDULE_DAYS[1 + day.weekday()]):
            hours = schedule.get(name)
            for begin_min, end_min in schedule_windows(name, hours) if hours else ():
                begin = datetime(day.year, day.month, day.day, begin_min // 60, begin_min % 60)
                until = datetime(day.year, day.month, day.day, end_min // 60, end_min % 60)
                spans.append((wall_clock_instant(begin, zone), wall_clock_instant(until, zone),
                               begin.strftime("%Y-%m-%dT%H:%M")))
        day += timedelta(days=1)
    spans.sort()
    merged: list[list[Any]] = []
    for begin, until, key in spans:
        if merged and begin - merged[-1][1] <= _TOUCHING:
            merged[-1][1] = max(merged[-1][1], until)
        else:
            merged.append([begin, until, key])
    found = []
    for begin, until, key in merged:
        if until <= window_start or begin >= window_end:
            continue
        # clipped to the event only: an occurrence in progress keeps its real start
        begin = max(begin, start) if start is not None else begin
        until = min(until, end) if end is not None else until
        if until.replace(microsecond=0) > begin.replace(microsecond=0):  # the feed writes seconds
            found.append(Occurrence(begin, until, key))
    return found


@dataclass(frozen=True, slots=True)
class _Span:
    """The time of one road event an event becomes, and whether the source vouches for its ends."""

    start: datetime
    end: datetime
    start_verified: bool
    end_verified: bool
    key: str | None  # the occurrence's id suffix; None for an event without schedule


def _spans(event: Event, generated: datetime, zone: tzinfo | None, horizon: timedelta) -> list[_Span]:
    details = event.details
    created = _attribute_time(event.attributes.get(_CREATED_KEY))
    start = _aware(event.start_time or created or generated)
    start_verified = event.start_time is not None and details is not None and details.start_date_verified
    end = event.end_time
    end_verified = end is not None and details is not None and details.end_date_verified
    if end is None or end.replace(microsecond=0) <= start.replace(microsecond=0):  # written to the second
        end, end_verified = open_end(start, generated, horizon, zone or UTC), False
    if details is None or not details.schedule:
        return [_Span(start, end, start_verified, end_verified, None)]
    if zone is None:  # a wiring mistake: hours read in UTC would publish every night hours off
        raise UsageError(f"{event.id}: a schedule's hours are local times; render it with the city's zone")
    generated = _aware(generated)
    found = schedule_occurrences(details.schedule, zone=zone, start=start, end=end, window_start=generated,
                                 window_end=generated + horizon)
    if not found:
        # none in effect or ahead (its end came, or its last occurrence is over before its end): its last
        # occurrence stays while the event is in the feeds, as one without a schedule stays with its end
        until = min(_aware(end), generated)
        found = schedule_occurrences(details.schedule, zone=zone, start=start, end=end,
                                     window_start=until - _LAST_OCCURRENCE_WITHIN, window_end=until)[-1:]
    return [
        _Span(occurrence.start, occurrence.end, start_verified and occurrence.start == start,
              end_verified and occurrence.end == end, occurrence.key)
        for occurrence in found
    ]


def _event_source(event: Event) -> dict[str, str] | None:
    """The data source an imported WZDx road event named (its id and organisation), kept on output."""
    source_id = _wzdx_attributes(event).get("data_source_id")
    reference = event.details.reference if event.details is not None else None
    if isinstance(source_id, str) and source_id and reference is not None and reference.reference == source_id:
        return {"data_source_id": source_id, "organization_name": reference.name or source_id}
    return None


def _attributed_source(event: Event, attribution: Attribution | None) -> dict[str, str] | None:
    """The data source of an import that names none in WZDx terms, as the CIFS ``<source>`` names it
    (:class:`feeds.cifs.Attribution`): its publisher's, else its city source's; never the city's own
    (None: an operator's closure, which the feed's first data source names). An import of a source
    not configured any more is named by its id namespace."""
    if attribution is None:
        return None
    reference = attribution.source_of(event)
    if reference is None:
        return {"data_source_id": event.source, "organization_name": event.source} if event.digest else None
    if reference == attribution.own:
        return None
    return {"data_source_id": reference.reference, "organization_name": reference.name or reference.reference}


def _features(
    event: Event, source_id: str, generated: datetime, zone: tzinfo | None, horizon: timedelta
) -> list[dict[str, Any]]:
    if not event.street:
        return []
    spans = _spans(event, generated, zone, horizon)
    kept = _wzdx_attributes(event)
    if isinstance(event.geometry, Point):
        lon, lat = event.geometry.coordinates
        forward: list[Position] = [(round(lon, 6), round(lat, 6))]
    else:
        forward = [(float(lon), float(lat)) for lon, lat in published_points(event.geometry.coordinates)]
    created = _attribute_time(event.attributes.get(_CREATED_KEY))
    updated = _attribute_time(event.attributes.get(_UPDATED_KEY))
    details = event.details
    description = details.description if details is not None and details.description else None
    start_position = details is not None and details.start_position_verified
    end_position = details is not None and details.end_position_verified
    location_method = kept.get("location_method")
    lanes = _wzdx_lanes(event, kept)
    work = _types_of_work(kept)
    speed = kept.get("reduced_speed_limit_kph")
    both = event.direction == "BOTH_DIRECTIONS" and len(forward) > 1

    features = []
    for reverse in (False, True) if both else (False,):
        line = forward[::-1] if reverse else forward
        stated = None if both else _stated_direction(event, kept)
        direction = stated[0] if stated else line_direction(line) if len(line) > 1 else "unknown"
        base = event.id + (REVERSE_SUFFIX if reverse else "")
        ids = [base if span.key is None else f"{base}#{span.key}" for span in spans]
        if len(line) > 1:
            geometry = {"type": "LineString", "coordinates": [list(p) for p in line]}
        else:  # a point work zone: MultiPoint start and end at the same place
            geometry = {"type": "MultiPoint", "coordinates": [list(line[0]), list(line[0])]}
        for index, span in enumerate(spans):
            core: dict[str, Any] = {
                "event_type": "work-zone",
                "data_source_id": source_id,
                "road_names": _road_names(event.street, event, kept),
                "direction": direction,
                "description": description or event.type.replace("_", " ").capitalize(),
            }
            if isinstance(kept.get("name"), str) and kept["name"]:
                core["name"] = kept["name"]
            if created is not None:
                core["creation_date"] = _utc(created)
            if updated is not None:
                core["update_date"] = _utc(updated)
            if span.key is not None:  # occurrences of one schedule, as WZDx's recurring example links them
                related = [{"type": "first-occurrence", "id": ids[0]}] if index else []
                if index + 1 < len(ids):
                    related.append({"type": "next-occurrence", "id": ids[index + 1]})
                if related:
                    core["related_road_events"] = related
            elif not both and (linked := _source_related(event, kept)):
                core["related_road_events"] = linked
            properties: dict[str, Any] = {
                "core_details": core,
                "start_date": _utc(span.start),
                "end_date": _utc(span.end),
                "is_start_date_verified": span.start_verified,
                "is_end_date_verified": span.end_verified,
                # the reversed line starts where the drawn one ends
                "is_start_position_verified": end_position if reverse else start_position,
                "is_end_position_verified": start_position if reverse else end_position,
                "location_method": location_method if location_method in _LOCATION_METHODS else "unknown",
                "vehicle_impact": _vehicle_impact(event, kept),
            }
            if kept.get("work_zone_type") in _WORK_ZONE_TYPES:
                properties["work_zone_type"] = kept["work_zone_type"]
            if not both:
                for key in _KEPT_STRINGS:
                    if isinstance(kept.get(key), str) and kept[key]:
                        properties[key] = kept[key]
                for key in _KEPT_NUMBERS:
                    value = kept.get(key)
                    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                        properties[key] = value
            if isinstance(speed, int | float) and not isinstance(speed, bool) and speed >= 0:
                properties["reduced_speed_limit_kph"] = speed
            if work is not None:
                properties["types_of_work"] = work
            if lanes is not None:
                properties["lanes"] = lanes
            if restrictions := restrictions_of(kept.get("restrictions")):
                properties["restrictions"] = restrictions
            if isinstance(kept.get("worker_presence"), dict):
                properties["worker_presence"] = kept["worker_presence"]
            features.append({"id": ids[index], "type": "Feature", "properties": properties, "geometry": geometry})
    return features


def wzdx_document(
    events: Sequence[Event], *, feed_info: Mapping[str, Any], generated: datetime, zone: tzinfo | None = None,
    horizon: timedelta = DEFAULT_HORIZON, attribution: Attribution | None = None,
) -> dict[str, Any]:
    """:func:`render_wzdx`'s document before it is written (``feeds.cwz`` builds CWZ from it)."""
    info, own_source = _feed_info(feed_info, generated)
    listed = {str(source["data_source_id"]) for source in info["data_sources"]}
    features: list[dict[str, Any]] = []
    for event in events:
        if event.category not in WORK_ZONE_CATEGORIES:
            continue
        source = _event_source(event) or _attributed_source(event, attribution)
        if source is not None and source["data_source_id"] not in listed:
            info["data_sources"].append(source)  # business rule 4: every data_source_id is listed
            listed.add(source["data_source_id"])
        features.extend(_features(event, source["data_source_id"] if source else own_source, generated, zone,
                                  horizon))
    _drop_dangling_links(features)
    return {"feed_info": info, "type": "FeatureCollection", "features": features}


def _drop_dangling_links(features: list[dict[str, Any]]) -> None:
    """Leave out the related road events that are not in the document (a source's detour, which is not
    imported; a related road event refused or held back): a partner following one would find nothing."""
    present = {feature["id"] for feature in features}
    for feature in features:
        core = feature["properties"]["core_details"]
        related = core.get("related_road_events")
        if related:
            kept = [link for link in related if link["id"] in present]
            if kept:
                core["related_road_events"] = kept
            else:
                del core["related_road_events"]


def render_wzdx(
    events: Sequence[Event], *, feed_info: Mapping[str, Any], generated: datetime, zone: tzinfo | None = None,
    horizon: timedelta = DEFAULT_HORIZON, attribution: Attribution | None = None,
) -> bytes:
    """A WZDx 4.2 WorkZoneFeed (GeoJSON ``FeatureCollection``) of the closures and road works.

    Parameters
    ----------
    events
        Any events; only those of category ``CONSTRUCTION`` or ``ROAD_CLOSED`` with a street are published.
    feed_info
        ``publisher`` (required); either ``data_sources`` (a list of ``{data_source_id,
        organization_name, ...}``) or ``data_source_id``/``organization_name`` (default: a UUID
        derived from the publisher, and the publisher); optional ``license`` (only the CC0 URL),
        ``contact_name``, ``contact_email``, ``update_frequency``. An operator's closure names the
        first data source; an import its own (a WZDx feed's data source, else as ``attribution``
        names its CIFS ``<source>``: its publisher, else its city source), listed after ours.
        Other keys are ignored (the mapping may carry settings of other feeds).
    generated
        The feed's ``update_date``, and the start of the horizon.
    zone
        The city's time zone: a schedule's hours are local times (required when an event has one).
    horizon
        How far ahead a recurring event's occurrences are published, and how long after its start
        (or after the feed's day, once started) an event without an end is said to last.

    Notes
    -----
    ``ROAD_CLOSED`` is ``all-lanes-closed``; ``CONSTRUCTION`` is ``some-lanes-closed`` when its lanes
    or lane impact close a lane, ``all-lanes-open`` when they close none, else ``unknown`` (an
    imported WZDx impact, lanes, types of work, reduced speed limit and data source are kept). An
    event without a start starts at its creation time (else at ``generated``); one without an end
    ends at :func:`open_end` with ``is_end_date_verified: false``. A recurring event (a weekly
    schedule) is one road event per occurrence overlapping ``[generated, generated + horizon)``,
    id ``<event id>#<local start YYYY-MM-DDTHH:MM>``, linked by ``related_road_events``
    (``first-occurrence``, ``next-occurrence``, as WZDx's recurring example); none when no occurrence
    falls there. ``direction`` is the source's signed direction when it has one, else the quadrant of
    the line's bearing (:func:`line_direction`). ``location_method`` is ``unknown`` unless the event
    came from a WZDx feed that said otherwise. The four verified flags are the event's
    (``CityDetails``): true only on the source's evidence.

    Raises
    ------
    UsageError
        A ``feed_info`` without publisher, with a licence other than CC0, or with bad ``data_sources``;
        an event with a schedule and no ``zone``.
    """
    return orjson.dumps(wzdx_document(events, feed_info=feed_info, generated=generated, zone=zone, horizon=horizon,
                                      attribution=attribution))


# --------------------------------------------------------------------------- what WZDx carries


def work_zone_problems(event: Event, target: str, zone: tzinfo | None = None) -> list[str]:
    """Why a work zone feed (``target``: "WZDx", "CWZ") cannot carry ``event``; empty when it can.

    With the city's ``zone``, a weekly schedule none of whose hours falls between the event's start and
    end is one: it becomes no road event at all (an operator's is refused at entry; an import may
    carry one, as DiaLog's CIFS does). Not once it is ended or cancelled: an end before its schedule's
    first window takes it out of the feed, and an end is never held back (the last version would stay
    served with windows that no longer come)."""
    problems = []
    if event.category not in WORK_ZONE_CATEGORIES:
        problems.append(f"not a work zone: {target} carries closures and road works only, not {event.category.value}")
    if not event.street:
        problems.append(f"no street: {target} core_details.road_names requires one")
    schedule, start, end = event.details.schedule if event.details else None, event.start_time, event.end_time
    if zone is not None and schedule and start is not None and end is not None and event.status is Status.ACTIVE \
            and not schedule_occurrences(schedule, zone=zone, start=start, end=end, window_start=start, window_end=end):
        problems.append("schedule: none of its hours falls between the start and the end, so it never applies "
                        f"({target} would carry no road event)")
    return problems


def work_zone_losses(event: Event, target: str, *, horizon: timedelta = DEFAULT_HORIZON) -> list[str]:
    """What a work zone feed built by :func:`wzdx_document` (``target``: "WZDx", "CWZ") loses or
    approximates of ``event``, one short sentence each; what only one of them loses is theirs to add."""
    if work_zone_problems(event, target):
        return []
    details = event.details
    kept = _wzdx_attributes(event)
    days = _days(horizon)
    losses = []
    if details is not None and details.schedule:
        losses.append(f"recurring schedule published as one road event per occurrence in the next {days} "
                      f"({target} has no schedule pattern)")
    if event.end_time is None:
        losses.append(f"no end: published as ending {days} after its start (or after today, once started), "
                      "end not verified")
    if event.start_time is None:
        losses.append("no start: published as starting when it was created (or when the feed is generated)")
    line = isinstance(event.geometry, LineString)
    if event.direction == "BOTH_DIRECTIONS" and line:
        losses.append("both directions published as two road events, each direction the quadrant of its line's "
                      f"bearing ({target} has one direction per road event)")
    elif (stated := _stated_direction(event, kept)) is not None:
        losses.append(f"direction {stated[0]} {stated[1]}")
    elif isinstance(event.geometry, LineString):
        found = line_direction([(lon, lat) for lon, lat in event.geometry.coordinates])
        losses.append(f"direction {found} is the quadrant of the line's bearing (first to last point); "
                      "the source signs none")
    else:
        losses.append("direction unknown: a point has no bearing and the source signs none")
    if event.subtype:
        losses.append(f"Waze subtype {event.subtype} is not carried ({target} has a vehicle impact, no subtype)")
    related = kept.get("related_road_events") or []
    if related and ((details is not None and details.schedule) or (event.direction == "BOTH_DIRECTIONS" and line)):
        losses.append("the source's related road events are not carried: this event goes out as several road events "
                      "linked by the broker")
    elif any(isinstance(link, dict) and link.get("type") == "related-detour" for link in related):
        losses.append("the source's related detour is not carried (detours are not imported); a related road event "
                      "not published is left out too")
    if details is not None:
        if details.lane_impact is not None and not details.lanes and event.category is Category.CONSTRUCTION:
            losses.append(f"lane impact ({details.lane_impact.total_closed_lanes} closed on the "
                          f"{details.lane_impact.roadside.lower()}) carried only as vehicle_impact ({target} lists "
                          "lanes, not counts)")
        if details.lanes and event.category is Category.ROAD_CLOSED:
            losses.append("lanes are not listed: the road is closed (all-lanes-closed)")
        if details.parent_event:
            losses.append(f"parent event {details.parent_event} is not carried")
    return losses


def _days(horizon: timedelta) -> str:
    """The horizon as people say it: "14 days", "1 day"."""
    return f"{horizon.days} days" if horizon.days != 1 else "1 day"


def absent_now(event: Event, generated: datetime, zone: tzinfo, horizon: timedelta = DEFAULT_HORIZON) -> str | None:
    """Why a work zone feed generated at ``generated`` has no road event of ``event`` it carries: a weekly
    schedule with no occurrence yet within the horizon (it goes out that long before its first). None
    when the feed has it."""
    if not (event.details is not None and event.details.schedule) or _spans(event, generated, zone, horizon):
        return None
    if event.status is not Status.ACTIVE or (event.end_time is not None and event.end_time <= generated):
        return "not in the feed: it ended before its schedule's next window"
    days = _days(horizon)
    return (f"not in the feed yet: its schedule has no occurrence in the next {days} (it goes out {days} before "
            "its first)")


def problems_for(event: Event, zone: tzinfo | None = None) -> list[str]:
    """Why WZDx cannot carry ``event`` (then it is held back from WZDx only); empty when it can
    (``work_zone_problems``: the schedule is judged only with the city's ``zone``)."""
    return work_zone_problems(event, "WZDx", zone)


def losses_for(event: Event, *, horizon: timedelta = DEFAULT_HORIZON) -> list[str]:
    """What WZDx loses or approximates of ``event`` when it carries it, one short sentence each."""
    losses = work_zone_losses(event, "WZDx", horizon=horizon)
    if losses and isinstance(event.geometry, Point):
        losses.append("a point work zone published as a MultiPoint of its one position twice (WZDx 4.2 has no Point)")
    return losses


# --------------------------------------------------------------------------- reading


def feed_version(document: Mapping[str, Any]) -> str | None:
    """The ``version`` of a WZDx document's ``feed_info`` (or the older ``road_event_feed_info``)."""
    for key in ("feed_info", "road_event_feed_info"):
        info = document.get(key)
        if isinstance(info, Mapping) and info.get("version") is not None:
            return str(info["version"]).strip()
    return None


def _core(feature: Mapping[str, Any]) -> Mapping[str, Any]:
    properties = feature.get("properties")
    core = properties.get("core_details") if isinstance(properties, Mapping) else None
    return core if isinstance(core, Mapping) else {}


def parse_wzdx(data: bytes) -> Snapshot:
    """Read a WZDx 4.x work zone feed into a snapshot of city items, one per road event.

    The record of each item is the GeoJSON feature, plus ``"_data_source"``: the feed's
    ``{data_source_id, organization_name}`` the road event names, when the feed lists it.
    Detour road events, features without an id and repeated ids are item errors (``step="parse"``).

    Raises
    ------
    MalformedPayload
        Not JSON, not a WZDx feed, a device feed, or a version other than 4.x (named).
    """
    document = load_json(data)[0]
    if not isinstance(document, dict):
        raise MalformedPayload(f"a WZDx feed is a JSON object, got {type(document).__name__}")
    info = document.get("feed_info", document.get("road_event_feed_info"))
    if not isinstance(info, Mapping):
        raise MalformedPayload("not a WZDx feed: no 'feed_info' (or 'road_event_feed_info') object")
    version = feed_version(document)
    if version is None or not _VERSION.match(version):
        raise MalformedPayload(f"WZDx version {version!r} is not supported: this reader takes WZDx 4.x (4.0, 4.1, 4.2)")
    features = document.get("features")
    if not isinstance(features, list):
        raise MalformedPayload("not a WZDx feed: 'features' is not a list")
    if features and all("device_type" in _core(f) for f in features if isinstance(f, Mapping)):
        raise MalformedPayload("a WZDx device feed (field devices), not a work zone feed")

    sources: dict[str, str] = {}
    listed = info.get("data_sources")
    for source in listed if isinstance(listed, list) else []:  # a malformed list names no source
        if isinstance(source, Mapping) and source.get("data_source_id"):
            sources[str(source["data_source_id"])] = str(source.get("organization_name") or "")
    update = info.get("update_date")
    end_ms = None
    if isinstance(update, str):
        try:
            when = parse_time(update, "update_date", UTC)
            end_ms = to_millis(when) if when is not None else None
        except ItemRejected:
            end_ms = None
    snapshot = Snapshot(start_ms=None, end_ms=end_ms, kinds_present=frozenset({Kind.CITY}))
    seen: set[str] = set()
    city = Kind.CITY.value
    for position, feature in enumerate(features):
        where = f"features[{position}]"
        if not isinstance(feature, dict):
            snapshot.errors.append(ItemError(kind=city, step="parse", reason=f"{where} is not an object"))
            continue
        raw_id = feature.get("id")
        ident = str(raw_id).strip() if isinstance(raw_id, str | int) and not isinstance(raw_id, bool) else ""
        if not ident or text_problem(ident, controls=False):
            reason = f"{where}: a road event without a usable id"
            snapshot.errors.append(ItemError(kind=city, step="parse", reason=reason))
            continue
        if ident in seen:
            reason = f"{where}: duplicate road event id {ident!r}; the first is kept"
            snapshot.errors.append(ItemError(kind=city, source_id=ident, step="parse", reason=reason))
            continue
        seen.add(ident)
        core = _core(feature)
        if core.get("event_type") == "detour":
            reason = f"{where}: detour road event skipped (a detour is the route around a work zone, not a closure)"
            snapshot.errors.append(ItemError(kind=city, source_id=ident, step="parse", reason=reason,
                                             out_of_scope=True))
            continue
        if "device_type" in core:
            reason = f"{where}: a field device, not a road event"
            snapshot.errors.append(ItemError(kind=city, source_id=ident, step="parse", reason=reason,
                                             out_of_scope=True))
            continue
        record = dict(feature)
        source_id = core.get("data_source_id")
        if isinstance(source_id, str) and source_id in sources:
            record["_data_source"] = {"data_source_id": source_id, "organization_name": sources[source_id]}
        snapshot.items.append(FeedItem(Kind.CITY, ident, digest(record), record))
    return snapshot


def _positions(geometry: Any) -> list[Position]:
    if not isinstance(geometry, Mapping) or geometry.get("type") not in ("LineString", "MultiPoint"):
        kind = geometry.get("type") if isinstance(geometry, Mapping) else type(geometry).__name__
        raise ItemRejected(f"geometry: {reprlib.repr(kind)} is not a LineString or MultiPoint")
    coordinates = geometry.get("coordinates")
    if not isinstance(coordinates, list) or not coordinates:
        raise ItemRejected("geometry: no coordinates")
    positions: list[Position] = []
    for index, point in enumerate(coordinates):
        if not (
            isinstance(point, list | tuple) and len(point) >= 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in point[:2])
        ):
            raise ItemRejected(f"geometry.coordinates[{index}]: expected [lon, lat]")
        positions.append((float(point[0]), float(point[1])))
    return positions


def _lanes(raw: Any) -> tuple[list[dict[str, Any]] | None, dict[str, Any] | None]:
    """CIFS lanes (order from 0, left first) and a lane impact from WZDx lanes (order 1 = left-most)."""
    if not isinstance(raw, list) or not raw:
        return None, None
    valid = [lane for lane in raw if isinstance(lane, Mapping) and isinstance(lane.get("order"), int)]
    if len(valid) != len(raw):
        raise ItemRejected("lanes: every lane needs an integer 'order'")
    ordered = sorted(valid, key=lambda lane: int(lane["order"]))
    lanes = []
    for rank, lane in enumerate(ordered):
        kind = lane.get("type") or "general"
        if not isinstance(kind, str):
            raise ItemRejected(f"lanes: a lane type is text, got {type(kind).__name__}")
        lanes.append({
            "order": min(rank, 99),
            "type": "LANE" if kind == "general" else kind.upper().replace("-", "_"),
            "status": "CLOSED" if lane.get("status") in _CLOSED_WZDX else "OPEN",
        })
    traffic = [lane for lane in ordered if str(lane.get("type") or "general") not in _NOT_TRAFFIC]
    closed = [i for i, lane in enumerate(traffic) if lane.get("status") in _CLOSED_WZDX]
    impact = None
    if closed:
        if closed == list(range(len(closed))):
            side = "LEFT"
        elif closed == list(range(len(traffic) - len(closed), len(traffic))):
            side = "RIGHT"
        else:
            side = "MIDDLE"
        impact = {"total_closed_lanes": min(len(closed), 99), "roadside": side}
    return lanes, impact


def _string(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ItemRejected(f"{field}: expected text, got {type(value).__name__}")
    if "\x00" in value:
        raise ItemRejected(f"{field}: contains a NUL character")
    return value.strip() or None


#: the members of a road event's lanes and types of work kept to publish them again, and their types
_LANE_MEMBERS: Mapping[str, type] = {"order": int, "type": str, "status": str}
#: WZDx 4.2 RestrictionType and UnitOfMeasurement
_RESTRICTION_TYPES = frozenset({
    "no-trucks", "travel-peak-hours-only", "hov-3", "hov-2", "no-parking", "reduced-width", "reduced-height",
    "reduced-length", "reduced-weight", "axle-load-limit", "gross-weight-limit", "towing-prohibited",
    "permitted-oversize-loads-prohibited", "local-access-only", "no-passing",
})
_UNITS = frozenset({"feet", "inches", "centimeters", "pounds", "tons", "kilograms"})
_WORK_MEMBERS: Mapping[str, type] = {"type_name": str, "is_architectural_change": bool}
_RELATED_MEMBERS: Mapping[str, type] = {"type": str, "id": str}
_RELATED_TYPES = frozenset({"first-in-sequence", "next-in-sequence", "first-occurrence", "next-occurrence",
                            "related-work-zone", "related-detour", "planned-moving-operation",
                            "active-moving-operation"})
_PRESENCE_METHODS = frozenset({"camera-monitoring", "arrow-board-present", "cones-present",
                               "maintenance-vehicle-present", "wearables-present", "mobile-device-present",
                               "check-in-app", "check-in-verbal", "scheduled"})
_PRESENCE_DEFINITIONS = frozenset({"workers-in-work-zone-working", "workers-in-work-zone-not-working",
                                   "mobile-equipment-in-work-zone-moving", "mobile-equipment-in-work-zone-not-moving",
                                   "fixed-equipment-in-work-zone", "humans-behind-barrier", "humans-in-right-of-way"})
#: a kept whole number fits in 32 bits (a lane order beyond is nonsense, and the store takes 64 at most)
_KEPT_INT = 2**31


def _kept_value(value: Any, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool) and -_KEPT_INT < value < _KEPT_INT
    if isinstance(value, str):
        return kind is str and text_problem(value, controls=False) is None
    return isinstance(value, kind)


def restrictions_of(value: Any) -> list[dict[str, Any]]:
    """The WZDx 4.2 restrictions in ``value`` (a road event's or a lane's ``restrictions``) that WZDx 4.2
    can carry: a known type, and a value only with its unit.

    >>> restrictions_of([{"type": "reduced-width", "value": 16, "unit": "feet"}, {"type": "no-such"}, "x"])
    [{'type': 'reduced-width', 'value': 16, 'unit': 'feet'}]
    """
    kept = []
    for entry in value if isinstance(value, list) else ():
        if not isinstance(entry, Mapping) or entry.get("type") not in _RESTRICTION_TYPES:
            continue
        restriction: dict[str, Any] = {"type": entry["type"]}
        amount, unit = entry.get("value"), entry.get("unit")
        if isinstance(amount, int | float) and not isinstance(amount, bool) and math.isfinite(amount):
            if unit not in _UNITS:
                continue  # a value without its unit says nothing
            restriction["value"] = amount
        if unit in _UNITS:
            restriction["unit"] = unit
        kept.append(restriction)
    return kept


def _worker_presence(value: Any) -> dict[str, Any] | None:
    """What WZDx 4.2 can carry of a road event's ``worker_presence`` (None without ``are_workers_present``)."""
    if not isinstance(value, Mapping) or not isinstance(value.get("are_workers_present"), bool):
        return None
    kept: dict[str, Any] = {"are_workers_present": value["are_workers_present"]}
    if value.get("method") in _PRESENCE_METHODS:
        kept["method"] = value["method"]
    if value.get("confidence") in ("low", "medium", "high"):
        kept["confidence"] = value["confidence"]
    confirmed = value.get("worker_presence_last_confirmed_date")
    if isinstance(confirmed, str) and _kept_value(confirmed, str):
        with contextlib.suppress(ValueError):
            kept["worker_presence_last_confirmed_date"] = _utc(datetime.fromisoformat(confirmed.replace("Z", "+00:00")))
    definition = value.get("definition")
    if isinstance(definition, list):
        kept["definition"] = list(dict.fromkeys(d for d in definition if d in _PRESENCE_DEFINITIONS))
    return kept


def _kept_entries(listed: Any, members: Mapping[str, type]) -> list[dict[str, Any]] | None:
    """A list of objects with only ``members`` of their type (None when it is not a list)."""
    if not isinstance(listed, list):
        return None
    return [{name: entry[name] for name, kind in members.items() if _kept_value(entry.get(name), kind)}
            for entry in listed if isinstance(entry, Mapping)]


#: the verified flags of a WZDx 4.1+/CWZ road event -> the deprecated 4.0 accuracy field saying the same
_VERIFIED = {
    "is_start_date_verified": "start_date_accuracy",
    "is_end_date_verified": "end_date_accuracy",
    "is_start_position_verified": "beginning_accuracy",
    "is_end_position_verified": "ending_accuracy",
}


def _verified(properties: Mapping[str, Any], flag: str, accuracy: str) -> bool:
    """What the source says of one verified flag: only a boolean ``true`` (or 4.0's ``verified``) is evidence."""
    value = properties.get(flag)
    return value if isinstance(value, bool) else properties.get(accuracy) == "verified"


def road_event_field(item: FeedItem, name: str) -> Any:
    """The field ``name`` of one road event (a source's ``match_key``): a property (dots reach into
    objects: ``core_details.name``), else a member of the feature itself (``id``)."""
    found = field_at(item.record.get("properties"), name)
    return found if found is not None else field_at(item.record, name)


def wzdx_item_to_event(item: FeedItem, namespace: str, zone: tzinfo) -> Event:
    """Convert one WZDx road event into a city event through :func:`feeds.city.city_event`.

    Mapping (formats.md §3.4): ``vehicle_impact: all-lanes-closed`` → ``ROAD_CLOSED`` /
    ``ROAD_CLOSED_CONSTRUCTION``; any other impact → ``CONSTRUCTION`` without subtype, with CIFS
    ``lanes`` (order from 0, left first) and a ``lane_impact`` when lanes are listed and some are
    closed (``merge-left``/``merge-right`` lanes count as closed). The geometry's points in order
    (LineString or MultiPoint) are the polyline, ``ONE_DIRECTION`` (a work zone whose points are all
    one place, as CDOT sends for point work zones, is a point; a full closure needs a line).
    ``road_names[0]`` is the street, ``description`` (else ``name``) the description; the data
    source is the reference. What WZDx publishes again is kept under ``attributes["wzdx"]``: the
    signed direction, lanes, types of work, mileposts, cross streets, worker presence and the
    source's related road events (their ids made this broker's ids of the same road events).

    Raises
    ------
    ItemRejected
        A detour, no road name, a geometry that is not a LineString/MultiPoint, a full closure
        with fewer than 2 distinct points, bad times, ...
    """
    feature = item.record
    try:
        properties = feature.get("properties")
        if not isinstance(properties, Mapping):
            raise ItemRejected("properties: missing")
        core = properties.get("core_details")
        if not isinstance(core, Mapping):
            raise ItemRejected("properties.core_details: missing")
        if core.get("event_type") == "detour":
            raise ItemRejected("a detour road event is not a closure")
        names = core.get("road_names")
        street = next((n.strip() for n in names if isinstance(n, str) and n.strip()), None) if isinstance(
            names, list) else None
        if street is None:
            raise ItemRejected("core_details.road_names: no road name")
        coordinates = _positions(feature.get("geometry"))
        impact = properties.get("vehicle_impact")
        closed = impact == "all-lanes-closed"
        lanes, lane_impact = (None, None) if closed else _lanes(properties.get("lanes"))
        verified = {flag: _verified(properties, flag, accuracy) for flag, accuracy in _VERIFIED.items()}

        attributes: dict[str, Any] = {}
        for field, key in (("creation_date", _CREATED_KEY), ("update_date", _UPDATED_KEY)):
            when = parse_time(_string(core.get(field), f"core_details.{field}"), f"core_details.{field}", zone)
            if when is not None:
                attributes[key] = to_millis(when)
        kept: dict[str, Any] = {}
        for key in ("direction", "name", "data_source_id"):
            if isinstance(core.get(key), str):
                kept[key] = core[key]
        if isinstance(names, list) and len(names) > 1:
            kept["road_names"] = [name for name in names if isinstance(name, str)]
        for key in ("vehicle_impact", "location_method", "work_zone_type", *_KEPT_STRINGS):
            if isinstance(properties.get(key), str):
                kept[key] = properties[key]
        for key in (*_KEPT_NUMBERS, "reduced_speed_limit_kph"):
            value = properties.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                kept[key] = value
        # as the source wrote them (CIFS lanes cannot say merge-left), only the members published: a bad
        # value elsewhere in them (a lane's restrictions) is dropped, as in any field not mapped
        for key, members in (("lanes", _LANE_MEMBERS), ("types_of_work", _WORK_MEMBERS)):
            entries = _kept_entries(properties.get(key), members)
            if entries is not None:
                kept[key] = entries
        if kept.get("lanes") and isinstance(properties.get("lanes"), list):
            for entry, lane in zip(kept["lanes"], (lane for lane in properties["lanes"] if isinstance(lane, Mapping)),
                                   strict=True):
                if lane_restrictions := restrictions_of(lane.get("restrictions")):
                    entry["restrictions"] = lane_restrictions
        if restrictions := restrictions_of(properties.get("restrictions")):
            kept["restrictions"] = restrictions
        related = _kept_entries(core.get("related_road_events"), _RELATED_MEMBERS)
        if related:
            kept["related_road_events"] = related
        presence = _worker_presence(properties.get("worker_presence"))
        if presence is not None:
            kept["worker_presence"] = presence
        attributes[WZDX_KEY] = kept

        source = feature.get("_data_source")
        reference = None
        if isinstance(source, Mapping) and source.get("data_source_id"):
            reference = {"reference": str(source["data_source_id"])}
            if source.get("organization_name"):
                reference["name"] = str(source["organization_name"])
        description = _string(core.get("description"), "core_details.description") or _string(
            core.get("name"), "core_details.name")
        event = city_event(
            namespace,
            item.source_id,
            type="ROAD_CLOSED" if closed else "CONSTRUCTION",
            subtype="ROAD_CLOSED_CONSTRUCTION" if closed else None,
            street=street,
            coordinates=coordinates,
            # a work zone drawn at one position (CDOT's LineString of one position twice, the MultiPoint a
            # WZDx point work zone is written as) is a point work zone; a full closure still needs a line
            point_device=not closed,
            zone=zone,
            direction="ONE_DIRECTION",
            start=_string(properties.get("start_date"), "start_date"),
            end=_string(properties.get("end_date"), "end_date"),
            description=description,
            lanes=lanes,
            lane_impact=lane_impact,
            reference=reference,
            end_date_verified=verified["is_end_date_verified"],
            attributes=attributes,
            digest=item.digest,
        )
        if event.details is not None:
            event.details.start_date_verified = verified["is_start_date_verified"]
            event.details.start_position_verified = verified["is_start_position_verified"]
            event.details.end_position_verified = verified["is_end_position_verified"]
        return event
    except ItemRejected as exc:
        exc.source_id, exc.kind = item.source_id, item.kind.value
        raise
    except (TypeError, ValueError) as exc:
        reason = first_problem(exc) if isinstance(exc, ValueError) else str(exc)  # pydantic's, on one line
        raise ItemRejected(reason, source_id=item.source_id, kind=item.kind.value) from exc
