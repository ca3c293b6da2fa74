"""Waze CIFS v2 (Closure and Incident Feed Specification): render, read, and the rules the XSD leaves out.

* :func:`render_cifs_xml` / :func:`render_cifs_json` write the broker's events as a cifsv2 feed
  (formats.md §2): one ``<incident id=...>`` per event, the polyline ``"lat lon lat lon"`` with
  6 decimals, every time in the city's offset (``2024-07-12T08:00:00-05:00``, never naive).
* :func:`parse_cifs` reads another agency's feed, tolerantly: cifsv2 XML, the legacy ``<location>``
  form, iCone's comma-separated polylines and vendor children, ``Z`` times, and the JSON shapes
  (wrapped ``{"incidents": [{"incident": {...}}]}``, flat ``{"incidents": [{...}]}`` and ODOT's
  ``{"incident": [...]}``). :func:`cifs_item_to_event` converts one incident through
  :func:`feeds.city.city_event`, so a bad incident is an ``ItemRejected`` with its reason.
* :func:`check_cifs_rules` checks what cifsv2.xsd does not (formats.md §2.9, §5): polyline syntax
  and ranges, at least 2 distinct points, a time zone on every time, type/subtype pairs, unique ids,
  schedule order and windows. :func:`feeds.city.city_event` refuses at entry whatever of this
  one event can break, with the same schedule rules (:func:`feeds.city.schedule_problems`).

Creation and update times are not fields of :class:`~exchange.model.Event`; they travel in
``event.attributes`` as epoch milliseconds: the source's own under :data:`CREATED_KEY`
(``"_created_ms"``) and :data:`UPDATED_KEY` (``"_updated_ms"``), set by the readers here and in
:mod:`feeds.wzdx`; the store's first and last revision under :data:`FIRST_REVISION_KEY` and
:data:`LAST_REVISION_KEY`, set by :func:`with_revision_times` when publishing reads the events.
``<creationtime>`` is the source's creation time, else the first revision; ``<updatetime>`` the
last revision, else the source's update time (an event rendered without the store).

Faithful attribution: an incident's ``<source>`` is the one its source gave (a CIFS import keeps
the upstream block, a WZDx import its data source), else the one :class:`Attribution` names for
its id namespace (the city's own ``publish.reference``/``publisher``/``source_url`` for operator
closures, a city source's name and publisher for its imports): never the city's for an import.

What CIFS cannot carry validly (:func:`problems_for`) and what it loses or approximates
(:func:`losses_for`) are stated per event, for the per-target compile report.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Any, Literal

import orjson
from lxml import etree

from exchange.errors import ItemRejected, MalformedPayload
from exchange.model import (
    CIFS_SUBTYPES,
    SCHEDULE_DAYS,
    Category,
    Event,
    ItemError,
    Kind,
    LineString,
    Point,
    SourceRef,
    first_problem,
    from_millis,
    to_millis,
)
from feeds.city import (
    ANTARCTIC,
    DIRECTIONS,
    PUBLISHED_DECIMALS,
    city_event,
    parse_polyline,
    parse_time,
    published_points,
    schedule_problems,
    text_problem,
)
from feeds.items import FeedItem, Snapshot, digest, load_json
from feeds.problems import Problem
from feeds.xmlsafe import looks_like_xml, parse_untrusted

__all__ = [
    "CREATED_KEY",
    "FIRST_REVISION_KEY",
    "LAST_REVISION_KEY",
    "NO_STREET",
    "SCHEMA_LOCATION",
    "STREET_FROM_KEY",
    "UPDATED_KEY",
    "Attribution",
    "check_cifs_rules",
    "cifs_item_to_event",
    "cifs_type",
    "format_time",
    "incident_fields",
    "losses_for",
    "parse_cifs",
    "problems_for",
    "render_cifs_json",
    "render_cifs_xml",
    "with_revision_times",
]

SCHEMA_LOCATION = "http://www.gstatic.com/road-incidents/cifsv2.xsd"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
#: ``event.attributes`` key of the incident's creation time, epoch milliseconds
CREATED_KEY = "_created_ms"
#: ``event.attributes`` key of the incident's last update time, epoch milliseconds
UPDATED_KEY = "_updated_ms"
#: ``event.attributes`` key of the store's first revision of the event (its first_seen), epoch ms
FIRST_REVISION_KEY = "_first_revision_ms"
#: ``event.attributes`` key of the store's last revision of the event (its updated), epoch ms
LAST_REVISION_KEY = "_last_revision_ms"
#: why an incident without a street is refused: cifsv2 requires ``<street>`` (at least 2 characters)
NO_STREET = "no street: CIFS requires one"
#: ``event.attributes`` key saying where a street the source did not give came from (``"road network"``)
STREET_FROM_KEY = "street_from"
#: subtypes some publishers write where they have none: ODOT TripCheck's schema lists ``Item`` (a
#: code generator's placeholder) first among its subtypes; read as no subtype
_PLACEHOLDER_SUBTYPES = frozenset({"ITEM"})

_ALL_SUBTYPES = frozenset().union(*CIFS_SUBTYPES.values())
_CATEGORY_TYPE: dict[Category, str] = {
    Category.ACCIDENT: "ACCIDENT",
    Category.JAM: "JAM",
    Category.HAZARD: "HAZARD",
    Category.ROAD_CLOSED: "ROAD_CLOSED",
    Category.CONSTRUCTION: "CONSTRUCTION",
    Category.POLICE: "POLICE",
    Category.MISC: "CHIT_CHAT",
    Category.IRREGULARITY: "JAM",
}
_TIME_FIELDS = ("starttime", "endtime", "creationtime", "updatetime")
_NESTED = frozenset({"source", "schedule", "lane_impact", "location"})
_KNOWN = frozenset({
    "id", "parent_event", "creationtime", "updatetime", "source", "type", "subtype", "description", "street",
    "polyline", "direction", "location", "location_description", "lane_impact", "lanes", "starttime", "endtime",
    "schedule",
})
_LOCATION_FIELDS = ("street", "polyline", "direction", "location_description")
_SCHEDULE = re.compile(r"^(\d{1,2}:\d{2}-\d{1,2}:\d{2},?)+$")
#: characters XML 1.0 cannot carry at all (lxml refuses them): dropped from every text we write
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

Record = dict[str, Any]


# --------------------------------------------------------------------------- rendering


def format_time(when: datetime, zone: tzinfo) -> str:
    """ISO 8601 to the second with the city's offset; a naive time is taken as local time in ``zone``.

    >>> from zoneinfo import ZoneInfo
    >>> format_time(datetime(2024, 7, 12, 13, 0, tzinfo=UTC), ZoneInfo("America/Chicago"))
    '2024-07-12T08:00:00-05:00'
    """
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    return _format_aware(when, zone)


@lru_cache(maxsize=8192)
def _format_aware(when: datetime, zone: tzinfo) -> str:
    # equal instants give equal strings in one zone, so the cache may key on the instant
    return when.astimezone(zone).isoformat(timespec="seconds")


def cifs_type(event: Event) -> str:
    """The CIFS ``type`` of an event: its own type when CIFS knows it, else one from its category.

    City events carry a CIFS type already; a crowd event's Waze type maps through its category
    (``WEATHERHAZARD`` -> ``HAZARD``, ``MISC`` -> ``CHIT_CHAT``, irregularities -> ``JAM``).
    """
    own = event.type.upper()
    if own in CIFS_SUBTYPES:
        return own
    if own == "WEATHERHAZARD":
        return "HAZARD"
    return _CATEGORY_TYPE.get(event.category, "HAZARD")


def _clean(text: str) -> str:
    return _NOT_XML.sub("", text)


def _humanize(kind: str) -> str:
    return kind.replace("_", " ").capitalize()


def _attribute_time(value: Any) -> datetime | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float) and math.isfinite(value):
        return from_millis(value)
    if isinstance(value, datetime):
        return value
    return None


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who an incident's ``<source>`` names when the event carries no source of its own.

    ``own`` is the city's (``publish.reference``, ``publisher``, ``source_url``): it names the
    events typed by an operator, which have no source record (an empty ``digest``; every import
    has its record's). ``by_namespace`` maps the id namespace of each city source (``Event.source``)
    to that source, for its imports that name no publisher of their own (CSV, GeoJSON, ArcGIS, a
    WZDx feed without data sources). An import whose namespace is not listed goes out without a
    ``<source>`` rather than under the city's name.
    """

    own: SourceRef | None = None
    by_namespace: Mapping[str, SourceRef] = dataclasses.field(default_factory=dict)

    def source_of(self, event: Event) -> SourceRef | None:
        """The event's own source (an import keeps its publisher's), else the city's for an
        operator's closure, else its city source's."""
        if event.details is not None and event.details.reference is not None:
            return event.details.reference
        if not event.digest:
            return self.own
        return self.by_namespace.get(event.source)


#: no namespace named: only the events' own sources are written
_NO_ATTRIBUTION = Attribution()


def with_revision_times(event: Event, first_ms: int, last_ms: int) -> Event:
    """A copy of ``event`` that carries the store's first and last revision times (epoch ms), which
    ``<creationtime>`` (when the source gave none) and ``<updatetime>`` are written from."""
    attributes = {**event.attributes, FIRST_REVISION_KEY: first_ms, LAST_REVISION_KEY: last_ms}
    return event.model_copy(update={"attributes": attributes})


def _first_time(event: Event, *keys: str) -> datetime | None:
    """The first of ``keys`` in the event's attributes that holds a time."""
    for key in keys:
        when = _attribute_time(event.attributes.get(key))
        if when is not None:
            return when
    return None


def _polyline_text(event: Event) -> str:
    points = [event.geometry.coordinates] if isinstance(event.geometry, Point) else event.geometry.coordinates
    return " ".join(f"{lat} {lon}" for lon, lat in published_points(points))


def incident_fields(event: Event, zone: tzinfo, attribution: Attribution | None = None) -> Record:
    """The CIFS fields of one event as a plain dict (the JSON form; the XML is built from it).

    Keys in the order they are written: ``id``, ``creationtime``, ``updatetime``, ``source``,
    ``type``, ``subtype``, ``description``, ``street``, ``polyline``, ``direction``, ``starttime``,
    ``endtime``, ``schedule``, ``parent_event``, ``lane_impact``, ``lanes``; absent values are left out.
    ``source`` is the event's own, else the one ``attribution`` names for its namespace.
    """
    details = event.details
    kind = cifs_type(event)
    fields: Record = {"id": _clean(event.id)}
    created = _first_time(event, CREATED_KEY, FIRST_REVISION_KEY)
    updated = _first_time(event, LAST_REVISION_KEY, UPDATED_KEY)
    if created is not None and updated is not None and updated < created:
        updated = created  # a source created in the future of our clock (EXCHANGE_NOW, replays): never before it
    if created is not None:
        fields["creationtime"] = format_time(created, zone)
    if updated is not None:
        fields["updatetime"] = format_time(updated, zone)
    reference = (attribution or _NO_ATTRIBUTION).source_of(event)
    if reference is not None:
        source = {"reference": _clean(reference.reference)}
        if reference.name:
            source["name"] = _clean(reference.name)
        if reference.url:
            source["url"] = _clean(reference.url)
        fields["source"] = source
    fields["type"] = kind
    if event.subtype and event.subtype.upper() in _ALL_SUBTYPES:
        fields["subtype"] = event.subtype.upper()
    description = details.description if details is not None else None
    fields["description"] = (_clean(description) if description else "") or _humanize(kind)
    if event.street:
        fields["street"] = _clean(event.street)
    fields["polyline"] = _polyline_text(event)
    if event.direction in DIRECTIONS:
        fields["direction"] = event.direction
    if event.start_time is not None:
        fields["starttime"] = format_time(event.start_time, zone)
    if event.end_time is not None:
        fields["endtime"] = format_time(event.end_time, zone)
    if details is not None:
        if details.schedule:
            fields["schedule"] = {day: details.schedule[day] for day in SCHEDULE_DAYS if day in details.schedule}
        if details.parent_event:
            fields["parent_event"] = {"id": _clean(details.parent_event)}
        if details.lane_impact is not None:
            fields["lane_impact"] = {
                "total_closed_lanes": details.lane_impact.total_closed_lanes,
                "roadside": details.lane_impact.roadside,
            }
        if details.lanes:
            fields["lanes"] = [
                {"order": lane.order, "type": _clean(lane.type), "status": lane.status} for lane in details.lanes
            ]
    return fields


def render_cifs_xml(
    events: Sequence[Event], *, zone: tzinfo, generated: datetime, attribution: Attribution | None = None
) -> bytes:
    """A cifsv2 ``<incidents>`` document, UTF-8 with an XML declaration.

    Parameters
    ----------
    events
        The events to publish; each becomes one ``<incident id="{event.id}">``.
    zone
        The city's time zone: every time is written with its offset.
    generated
        The feed's creation time (root ``timestamp``).
    attribution
        The ``<source>`` of events that carry none of their own, by id namespace.

    Notes
    -----
    ``<description>`` is required by the XSD: without one the type is written humanized
    ("Road closed"). ``<street>`` is left out when the event has none, which the XSD then reports.
    Characters XML cannot carry (NUL, other C0 controls) are dropped.
    """
    root = etree.Element("incidents", nsmap={"xsi": XSI})
    root.set(f"{{{XSI}}}noNamespaceSchemaLocation", SCHEMA_LOCATION)
    root.set("timestamp", format_time(generated, zone))
    sub = etree.SubElement
    for event in events:
        fields = incident_fields(event, zone, attribution)
        incident = sub(root, "incident", id=fields.pop("id"))
        for key, value in fields.items():
            if key == "parent_event":
                sub(incident, key, id=value["id"])
            elif key == "lanes":
                lanes = sub(incident, key)
                for lane in value:
                    element = sub(lanes, "lane")
                    for name in ("order", "type", "status"):
                        sub(element, name).text = str(lane[name])
            elif isinstance(value, dict):
                parent = sub(incident, key)
                for name, text in value.items():
                    sub(parent, name).text = str(text)
            else:
                sub(incident, key).text = value
    body = etree.tostring(root, xml_declaration=False, encoding="UTF-8", pretty_print=True)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body


def render_cifs_json(
    events: Sequence[Event],
    *,
    zone: tzinfo,
    generated: datetime,
    shape: Literal["wrapped", "flat"] = "wrapped",
    attribution: Attribution | None = None,
) -> bytes:
    """The CIFS JSON flavour: ``{"timestamp": ..., "incidents": [...]}``.

    ``shape="wrapped"`` is Google's example (``[{"incident": {"id": ...}}]``), ``"flat"`` lists the
    incident objects directly. Nested elements become objects (``source``, ``schedule``,
    ``lane_impact``, ``parent_event: {"id": ...}``) and ``lanes`` a list; the polyline stays a string.
    """
    if shape not in ("wrapped", "flat"):
        raise ValueError(f"shape must be 'wrapped' or 'flat', not {shape!r}")
    incidents = [incident_fields(event, zone, attribution) for event in events]
    listed: list[Record] = [{"incident": fields} for fields in incidents] if shape == "wrapped" else incidents
    return orjson.dumps({"timestamp": format_time(generated, zone), "incidents": listed})


# --------------------------------------------------------------------------- reading


def _xml_root(data: bytes) -> etree._Element:
    root = parse_untrusted(data)
    if etree.QName(root).localname != "incidents":
        raise MalformedPayload(f"not a CIFS feed: the root is <{etree.QName(root).localname}>, expected <incidents>")
    return root


def _element_text(element: etree._Element) -> str:
    return (element.text or "").strip()


def _children(element: etree._Element) -> list[tuple[str, etree._Element]]:
    """Child elements without a namespace (vendor extensions in a namespace are not CIFS)."""
    return [(child.tag, child) for child in element if type(child.tag) is str and child.tag[:1] != "{"]


def _xml_record(element: etree._Element) -> Record:
    record: Record = {}
    ident = element.get("id")
    if ident is not None:
        record["id"] = ident.strip()
    legacy_parent = element.get("parent_event_id")
    if legacy_parent:
        record["parent_event"] = legacy_parent.strip()
    for name, child in _children(element):
        if name not in _KNOWN or name in record:
            continue  # vendor children (iCone <sensor>, <display>) and repeats are not ours
        if name == "parent_event":
            record[name] = (child.get("id") or child.findtext("id") or _element_text(child)).strip()
        elif name == "lanes":
            record[name] = [
                {key: _element_text(value) for key, value in _children(lane)} for _, lane in _children(child)
            ]
        elif name in _NESTED:
            record[name] = {key: _element_text(value) for key, value in _children(child)}
        else:
            record[name] = _element_text(child)
    return _flatten(record)


def _flatten(record: Record) -> Record:
    """The legacy ``<location>`` wrapper's fields moved to the top (where cifsv2 wants them)."""
    location = record.pop("location", None)
    if isinstance(location, Mapping):
        for key in _LOCATION_FIELDS:
            if key not in record and location.get(key) not in (None, ""):
                record[key] = location[key]
    return record


def _xml_records(root: etree._Element) -> list[tuple[Record, str]]:
    return [
        (_xml_record(incident), f"line {incident.sourceline}")
        for name, incident in _children(root)
        if name == "incident"
    ]


def _json_entries(document: Any) -> tuple[list[Any], Any]:
    """The incident entries and the root timestamp of a CIFS JSON document, whatever its shape."""
    timestamp = None
    if isinstance(document, list):
        entries: Any = document
    elif isinstance(document, dict):
        timestamp = document.get("timestamp")
        if "incidents" in document:
            entries = document["incidents"]
            if isinstance(entries, dict) and "incident" in entries:  # an XML-to-JSON conversion
                timestamp = timestamp or entries.get("timestamp")
                entries = entries["incident"]
        elif "incident" in document:  # ODOT TripCheck: the XML root taken literally
            entries = document["incident"]
        else:
            raise MalformedPayload("not a CIFS JSON feed: expected an 'incidents' list (or ODOT's 'incident')")
    else:
        raise MalformedPayload(f"not a CIFS JSON feed: the document is a {type(document).__name__}")
    if entries is None:
        entries = []
    if isinstance(entries, dict):
        entries = [entries]
    if not isinstance(entries, list):
        raise MalformedPayload(f"not a CIFS JSON feed: 'incidents' is a {type(entries).__name__}, not a list")
    return entries, timestamp


def _json_record(entry: Mapping[str, Any]) -> Record:
    if len(entry) == 1 and isinstance(entry.get("incident"), Mapping):
        entry = entry["incident"]  # Google's wrapped shape
    record: Record = {key: value for key, value in entry.items() if key in _KNOWN}
    if isinstance(record.get("id"), int | float) and not isinstance(record["id"], bool):
        record["id"] = str(record["id"])
    parent = record.get("parent_event")
    if isinstance(parent, Mapping):
        record["parent_event"] = parent.get("id")
    polyline = record.get("polyline")
    if isinstance(polyline, list):  # [[lat, lon], ...]: an anti-pattern seen in the wild
        record["polyline"] = " ".join(
            " ".join(str(value) for value in point) if isinstance(point, list) else str(point) for point in polyline
        )
    return _flatten(record)


def _json_records(document: Any) -> tuple[list[tuple[Record | None, str]], Any]:
    entries, timestamp = _json_entries(document)
    records: list[tuple[Record | None, str]] = []
    for position, entry in enumerate(entries):
        where = f"incidents[{position}]"
        records.append((_json_record(entry) if isinstance(entry, Mapping) else None, where))
    return records, timestamp


def _timestamp_ms(value: Any, zone: tzinfo) -> int | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        when = parse_time(value, "timestamp", zone)
    except ItemRejected:
        return None
    return to_millis(when) if when is not None else None


def parse_cifs(data: bytes, *, zone: tzinfo) -> Snapshot:
    """Read a CIFS feed (XML or JSON, cifsv2 or legacy) into a snapshot of city items.

    Each incident becomes a :class:`~feeds.items.FeedItem` of kind ``CITY`` whose ``source_id`` is
    the incident id and whose ``record`` is a plain dict of its fields (the legacy ``<location>``
    fields moved to the top; vendor children dropped). An incident without an id, or repeating an
    id already seen, is an item error; the rest of the feed goes on.

    Raises
    ------
    MalformedPayload
        Neither XML nor JSON, broken, DOCTYPE/ENTITY declarations, or not an ``<incidents>`` feed.
    """
    head = data.lstrip()[:1]
    if looks_like_xml(data):
        root = _xml_root(data)
        records: list[tuple[Record | None, str]] = list(_xml_records(root))
        timestamp: Any = root.get("timestamp")
    elif head in (b"{", b"["):
        records, timestamp = _json_records(load_json(data)[0])
    elif not head:
        raise MalformedPayload("the payload is empty")
    else:
        raise MalformedPayload("the payload is neither XML nor JSON")

    snapshot = Snapshot(start_ms=None, end_ms=_timestamp_ms(timestamp, zone), kinds_present=frozenset({Kind.CITY}))
    seen: dict[str, str] = {}
    for record, where in records:
        if record is None:
            snapshot.errors.append(ItemError(kind=Kind.CITY.value, step="parse", reason=f"{where}: not an object"))
            continue
        ident = record.get("id")
        if not isinstance(ident, str) or not ident.strip() or text_problem(ident, controls=False):
            reason = f"{where}: an incident without a usable id"
            snapshot.errors.append(ItemError(kind=Kind.CITY.value, step="parse", reason=reason))
            continue
        ident = ident.strip()
        if ident in seen:
            reason = f"{where}: duplicate incident id {ident!r} (first at {seen[ident]}); the first is kept"
            snapshot.errors.append(ItemError(kind=Kind.CITY.value, source_id=ident, step="parse", reason=reason))
            continue
        seen[ident] = where
        snapshot.items.append(FeedItem(Kind.CITY, ident, digest(record), record))
    return snapshot


def _text(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ItemRejected(f"{field}: expected text, got a boolean")
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        raise ItemRejected(f"{field}: expected text, got {type(value).__name__}")
    if "\x00" in value:
        raise ItemRejected(f"{field}: contains a NUL character")
    return value.strip() or None


def _mapping(value: Any, field: str) -> dict[str, Any] | None:
    if value in (None, "", {}):
        return None
    if not isinstance(value, Mapping):
        raise ItemRejected(f"{field}: expected an object, got {type(value).__name__}")
    return {
        str(key): item if isinstance(item, int) and not isinstance(item, bool) else _text(item, f"{field}.{key}")
        for key, item in value.items()
    }


def cifs_item_to_event(
    item: FeedItem, namespace: str, zone: tzinfo, *, street_at: Callable[[float, float], str | None] | None = None
) -> Event:
    """Convert one CIFS incident into a city event through :func:`feeds.city.city_event`.

    Times without an offset are local times in ``zone``; ``Z`` times stay UTC (rendered in the
    city's offset on output). ``creationtime``/``updatetime`` go to ``attributes`` as
    :data:`CREATED_KEY`/:data:`UPDATED_KEY` milliseconds, ``location_description`` as is; the
    upstream ``<source>`` is kept as the event's reference (it is published as it came).

    Read faithfully rather than refused:

    * a polyline of one position written several times with a direction (iCone's point devices:
      arrow boards, radar cones) is a one-point incident; a ROAD_CLOSED still needs a line;
    * a point device without a street takes the name ``street_at(lon, lat)`` gives (the road
      network's road at its position), noted in ``attributes`` under :data:`STREET_FROM_KEY`; a
      line without a street is still refused (it may run along several roads);
    * a placeholder subtype (ODOT's ``Item``) is no subtype;
    * HTML in the description becomes plain text (:func:`feeds.city.city_event`).

    Raises
    ------
    ItemRejected
        With the reason: no street (:data:`NO_STREET`), no or a broken polyline, one point
        without a direction, a zero-length closure, an unknown type or subtype, an end before
        the start, ...
    """
    record = item.record
    try:
        street = _text(record.get("street"), "street")
        polyline = _text(record.get("polyline"), "polyline")
        coordinates = parse_polyline(polyline) if polyline is not None else []
        direction = _text(record.get("direction"), "direction")
        point_device = len(set(coordinates)) == 1
        named_by_network = None
        if street is None and point_device and street_at is not None:
            lon, lat = coordinates[0]
            street = named_by_network = street_at(lon, lat)
        missing = [] if street is not None else [NO_STREET]
        if polyline is None:
            missing.append("polyline: missing")
        elif len(coordinates) > 1 and len(set(coordinates)) < 2 and not direction:
            missing.append(f"polyline: all {len(coordinates)} points are the same place (zero length) "
                           "and no direction says which way it applies")
        if missing or street is None:
            raise ItemRejected("; ".join(missing))
        if point_device:
            coordinates = coordinates[:1]  # one position written twice: a device's position, not a line
        attributes: dict[str, Any] = {}
        for field, key in (("creationtime", CREATED_KEY), ("updatetime", UPDATED_KEY)):
            when = parse_time(_text(record.get(field), field), field, zone)
            if when is not None:
                attributes[key] = to_millis(when)
        if named_by_network is not None:
            attributes[STREET_FROM_KEY] = "road network"
        place = _text(record.get("location_description"), "location_description")
        if place:
            attributes["location_description"] = place
        source = _mapping(record.get("source"), "source")
        reference = (
            {key: source[key] for key in ("reference", "name", "url") if source.get(key)}
            if source and source.get("reference")
            else None
        )
        schedule = _mapping(record.get("schedule"), "schedule")
        lanes = record.get("lanes")
        if lanes is not None and not (isinstance(lanes, list) and all(isinstance(lane, Mapping) for lane in lanes)):
            raise ItemRejected("lanes: expected a list of lane objects")
        subtype = _text(record.get("subtype"), "subtype")
        if subtype is not None and subtype.upper() in _PLACEHOLDER_SUBTYPES:
            subtype = None
        return city_event(
            namespace,
            item.source_id,
            type=_text(record.get("type"), "type") or "",
            subtype=subtype,
            street=street,
            coordinates=coordinates,
            zone=zone,
            direction=direction.upper() if direction else None,
            start=_text(record.get("starttime"), "starttime"),
            end=_text(record.get("endtime"), "endtime"),
            description=_text(record.get("description"), "description"),
            schedule={day: str(hours) for day, hours in schedule.items() if hours} if schedule else None,
            lanes=lanes or None,
            lane_impact=_mapping(record.get("lane_impact"), "lane_impact"),
            parent_event=_text(record.get("parent_event"), "parent_event"),
            reference=reference,
            attributes=attributes,
            digest=item.digest,
            point_device=point_device,
        )
    except ItemRejected as exc:
        exc.source_id, exc.kind = item.source_id, item.kind.value
        raise
    except (TypeError, ValueError) as exc:
        reason = first_problem(exc) if isinstance(exc, ValueError) else str(exc)  # pydantic's, on one line
        raise ItemRejected(reason, source_id=item.source_id, kind=item.kind.value) from exc


# --------------------------------------------------------------------------- rules beyond the XSD


def _polyline_problems(text: str, kind: str | None, direction: str | None) -> list[tuple[str, str]]:
    """(severity, message) pairs for one polyline text."""
    found: list[tuple[str, str]] = []
    if "," in text:
        found.append(("error", "polyline: commas are not allowed; write 'lat lon lat lon' separated by spaces"))
    tokens = text.replace(",", " ").split()
    try:
        numbers = [float(token) for token in tokens]
    except ValueError:
        return [*found, ("error", f"polyline: {text[:60]!r} is not a list of numbers 'lat lon lat lon ...'")]
    if not numbers:
        return [*found, ("error", "polyline: empty")]
    if len(numbers) % 2:
        return [*found, ("error", f"polyline: an odd count of numbers ({len(numbers)}); expected lat lon pairs")]
    points = list(zip(numbers[0::2], numbers[1::2], strict=True))
    for position, (lat, lon) in enumerate(points, start=1):
        if not (math.isfinite(lat) and math.isfinite(lon)):
            found.append(("error", f"polyline point {position}: not a finite number"))
        elif not -90.0 <= lat <= 90.0:
            hint = " (is the polyline lon-first? CIFS is lat-first)" if -90.0 <= lon <= 90.0 else ""
            found.append(("error", f"polyline point {position}: latitude {lat} out of range [-90, 90]{hint}"))
        elif not -180.0 <= lon <= 180.0:
            found.append(("error", f"polyline point {position}: longitude {lon} out of range [-180, 180]"))
        elif lat < ANTARCTIC:
            found.append(("error", f"polyline point {position}: latitude {lat} is in Antarctica; "
                                   "is the polyline lon-first? CIFS is lat-first"))
    if len(points) == 1:
        if kind == "ROAD_CLOSED":
            found.append(("error", "polyline: one point; a ROAD_CLOSED needs at least 2 distinct points"))
        elif not direction:
            found.append(("error", "polyline: one point needs a direction (ONE_DIRECTION or BOTH_DIRECTIONS)"))
        else:
            found.append(("warning", "polyline: one point; Waze asks for at least 2 coordinates"))
    elif len(set(points)) < 2:
        found.append(("error", f"polyline: all {len(points)} points are the same place (zero length); "
                               "at least 2 distinct points are needed"))
    return found


def _time_value(value: Any) -> tuple[datetime | None, str | None]:
    """The parsed time, or the problem with it."""
    if not isinstance(value, str) or not value.strip():
        return None, "is not a time"
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None, f"{value!r} is not an ISO 8601 time (2024-07-12T08:00:00-05:00)"
    if when.tzinfo is None:
        return None, f"{value!r} has no time zone offset (write e.g. 2024-07-12T08:00:00-05:00)"
    return when, None


def _schedule_problems(schedule: Any, structural: bool) -> list[str]:
    if not isinstance(schedule, Mapping):
        return ["schedule: expected an object of day -> 'HH:MM-HH:MM'"] if structural else []
    found: list[str] = []
    days = [str(day) for day in schedule]
    if structural:
        unknown = [day for day in days if day not in SCHEDULE_DAYS]
        if unknown:
            found.append(f"schedule: unknown day(s) {', '.join(unknown)} (everyday, monday ... sunday)")
        known = [day for day in days if day in SCHEDULE_DAYS]
        if known != sorted(known, key=SCHEDULE_DAYS.index):
            wanted = ", ".join(sorted(known, key=SCHEDULE_DAYS.index))
            found.append(f"schedule: days out of order ({', '.join(known)}); the XSD wants {wanted}")
    for day, hours in schedule.items():
        text = " ".join(str(hours).split())  # xs:token: whitespace collapsed, as the XSD reads it
        if not _SCHEDULE.match(text.replace(" ", "")):
            if structural:  # else the XSD reports it
                found.append(f"schedule.{day}: {hours!r} is not 'HH:MM-HH:MM[,HH:MM-HH:MM]'")
            continue
        found.extend(schedule_problems(str(day), text))  # the rules city_event applies at entry
    return found


def _structural_problems(record: Mapping[str, Any]) -> list[str]:
    """What the XSD would check, for inputs it does not see (JSON, events)."""
    found: list[str] = []
    ident = record.get("id")
    if not isinstance(ident, str) or len(ident) < 3:
        found.append(f"id: {ident!r} is too short (at least 3 characters)")
    kind = record.get("type")
    if kind not in CIFS_SUBTYPES:
        found.append(f"type: {kind!r} is not one of {', '.join(sorted(CIFS_SUBTYPES))}")
    street = record.get("street")
    if not isinstance(street, str) or not street.strip():
        found.append(NO_STREET)
    elif len(street) < 2:
        found.append(f"street: {street!r} is too short (at least 2 characters)")
    description = record.get("description")
    if not isinstance(description, str) or not description:
        found.append("description: missing (required by the XSD)")
    if not record.get("polyline"):
        found.append("polyline: missing")
    direction = record.get("direction")
    if direction is not None and direction not in DIRECTIONS:
        found.append(f"direction: {direction!r} is not ONE_DIRECTION or BOTH_DIRECTIONS")
    return found


def _record_problems(record: Mapping[str, Any], where: str, structural: bool) -> list[Problem]:
    found: list[Problem] = []
    if structural:
        found.extend(Problem(where, message) for message in _structural_problems(record))
    kind = record.get("type") if isinstance(record.get("type"), str) else None
    subtype = record.get("subtype")
    if kind in CIFS_SUBTYPES and isinstance(subtype, str) and subtype and subtype not in CIFS_SUBTYPES[kind]:
        allowed = ", ".join(sorted(CIFS_SUBTYPES[kind])) or "none"
        found.append(Problem(where, f"subtype {subtype} does not belong to type {kind} (allowed: {allowed})"))
    polyline = record.get("polyline")
    if isinstance(polyline, str) and polyline.strip():
        direction = record.get("direction") if isinstance(record.get("direction"), str) else None
        for severity, message in _polyline_problems(polyline, kind, direction):
            found.append(Problem(where, message, "error" if severity == "error" else "warning"))
    times: dict[str, datetime] = {}
    for field in _TIME_FIELDS:
        if field in record and record[field] not in (None, ""):
            when, problem = _time_value(record[field])
            if problem:
                found.append(Problem(where, f"{field}: {problem}"))
            elif when is not None:
                times[field] = when
    if "starttime" in times and "endtime" in times and times["endtime"] <= times["starttime"]:
        found.append(Problem(where, f"endtime {record['endtime']} is not after starttime {record['starttime']}"))
    if kind == "ROAD_CLOSED" and not record.get("starttime"):
        found.append(Problem(where, "starttime: a ROAD_CLOSED incident needs a start time"))
    if record.get("schedule") not in (None, "", {}):
        found.extend(Problem(where, message) for message in _schedule_problems(record["schedule"], structural))
    return found


def _rules(records: Iterable[tuple[Record | None, str]], structural: bool) -> list[Problem]:
    found: list[Problem] = []
    seen: dict[str, str] = {}
    for record, base in records:
        if record is None:
            found.append(Problem(base, "an incident must be an object"))
            continue
        ident = record.get("id")
        where = f"{base}: incident {ident!r}" if ident else base
        if isinstance(ident, str) and ident:
            if ident in seen:
                found.append(Problem(where, f"duplicate id {ident!r} (first at {seen[ident]}); ids must be unique"))
            else:
                seen[ident] = base
        elif not structural:
            found.append(Problem(where, "an incident without an id"))
        found.extend(_record_problems(record, where, structural))
    return found


def check_cifs_rules(
    source: Sequence[Event] | bytes | etree._Element, *, zone: tzinfo = UTC
) -> list[Problem]:
    """The CIFS rules cifsv2.xsd does not check, as a list of problems (empty when all pass).

    Parameters
    ----------
    source
        Events (checked as :func:`render_cifs_xml` would write them), a CIFS document as bytes
        (XML or JSON), or an already parsed ``<incidents>`` element.
    zone
        For events: the zone their times are written in (only naive times depend on it).

    Notes
    -----
    Always checked: polyline syntax (spaces only, numbers in pairs, lat/lon ranges; a latitude
    south of -60° is taken for a lon-first polyline, the only swap a range check can see),
    at least 2 distinct points (one point is an error for ``ROAD_CLOSED`` or without a direction,
    a warning otherwise), a time zone on every time, end after start, a start on ``ROAD_CLOSED``,
    type/subtype consistency, unique ids, schedule windows (within 00:00-23:59, start before
    end, not overlapping: :func:`feeds.city.schedule_problems`). For JSON and events the XSD's
    own structural rules are checked too (id length, type, street, description, schedule day
    order); for XML they are left to the XSD so a problem is not reported twice.
    XML locations are ``"line N: incident 'id'"``; JSON ones ``"incidents[i]: incident 'id'"``.
    """
    if isinstance(source, etree._Element):
        problems = _rules(_xml_records(source), structural=False)
        return _timestamp_problem(source.get("timestamp"), f"line {source.sourceline}: <incidents>") + problems
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
        head = data.lstrip()[:1]
        try:
            if head == b"<":
                return check_cifs_rules(_xml_root(data))
            document = load_json(data)[0]
            records, timestamp = _json_records(document)
        except MalformedPayload as exc:
            return [Problem("document", exc.message)]
        return _timestamp_problem(timestamp, "$.timestamp") + _rules(records, structural=True)
    events = list(source)
    rendered = ((incident_fields(event, zone), f"events[{position}]") for position, event in enumerate(events))
    problems = _rules(rendered, structural=True)
    for event in events:
        for name, when in (("start_time", event.start_time), ("end_time", event.end_time)):
            if when is not None and when.tzinfo is None:
                message = f"{name} has no time zone; it is written as local time in the city's zone"
                problems.append(Problem(f"event {event.id}", message, "warning"))
    return problems


def _timestamp_problem(value: Any, where: str) -> list[Problem]:
    if value in (None, ""):
        return []
    _, problem = _time_value(value)
    return [Problem(where, f"timestamp: {problem}")] if problem else []


# --------------------------------------------------------------------------- what CIFS cannot carry

#: ``event.attributes`` key of what a WZDx import kept of its road event (``feeds.wzdx.WZDX_KEY``; not
#: imported from there, so that neither codec depends on the other)
_WZDX_KEY = "wzdx"
#: WZDx's signed directions: CIFS has only ONE_DIRECTION / BOTH_DIRECTIONS and the point order
_SIGNED_DIRECTIONS = frozenset({"northbound", "southbound", "eastbound", "westbound", "inner-loop", "outer-loop"})


def problems_for(event: Event) -> list[str]:
    """Why CIFS cannot carry ``event`` validly, one line each; empty when it can.

    These are the errors of :func:`check_cifs_rules` for the incident the event renders into
    (its XSD structure and the rules beyond it): no street (:data:`NO_STREET`), a polyline CIFS
    cannot express (one point of a ROAD_CLOSED, or without a direction), a ROAD_CLOSED without a
    start, an end not after the start, a schedule outside its rules. Warnings are not problems:
    the event still goes out, and :func:`losses_for` says what it loses.
    """
    return [problem.message for problem in check_cifs_rules([event]) if problem.severity == "error"]


def _finer_than_published(event: Event) -> bool:
    points = [event.geometry.coordinates] if isinstance(event.geometry, Point) else event.geometry.coordinates
    return any(abs(value - round(value, PUBLISHED_DECIMALS)) > 1e-9 for point in points for value in point)


def losses_for(event: Event) -> list[str]:
    """What publishing ``event`` as a CIFS incident loses or approximates, one short sentence each.

    Empty when CIFS carries all of it. Read from the event itself, so an operator's closure and an
    import are judged alike; what a WZDx import kept of its road event (``attributes["wzdx"]``)
    counts too.
    """
    lost: list[str] = []
    kind = cifs_type(event)
    if event.type.upper() != kind:
        lost.append(f"type {event.type} is published as CIFS type {kind}")
    if event.subtype and event.subtype.upper() not in _ALL_SUBTYPES:
        lost.append(f"subtype {event.subtype} has no CIFS equivalent and is left out")
    if isinstance(event.geometry, LineString) and event.direction not in DIRECTIONS:
        lost.append("no direction: CIFS reads the point order as the direction affected")
    if _finer_than_published(event):
        lost.append(f"coordinates are rounded to {PUBLISHED_DECIMALS} decimals (about 0.1 m)")
    if any(when is not None and when.microsecond for when in (event.start_time, event.end_time)):
        lost.append("times are written to the second")
    details = event.details
    if details is not None and event.end_time is not None and not details.end_date_verified:
        lost.append("the end time is not verified, which CIFS cannot say (it has no verified flag)")
    if event.attributes.get(STREET_FROM_KEY) == "road network":
        lost.append("the street is the road network's name for the road at the device (its source gave none)")
    if isinstance(event.attributes.get("location_description"), str):
        lost.append("the location description is not carried (cifsv2 has no place for it)")
    kept = event.attributes.get(_WZDX_KEY)
    if isinstance(kept, Mapping):
        lost.extend(_wzdx_losses(kept))
    return lost


def _wzdx_losses(kept: Mapping[str, Any]) -> list[str]:
    """What CIFS cannot say of the WZDx road event an import kept."""
    lost: list[str] = []
    impact = kept.get("vehicle_impact")
    if isinstance(impact, str) and impact not in ("all-lanes-closed", "all-lanes-open", "unknown"):
        lost.append(f"vehicle impact {impact} is carried only as lanes and a lane impact (CIFS has no impact field)")
    if kept.get("direction") in _SIGNED_DIRECTIONS:
        lost.append(f"the signed direction {kept['direction']} is carried only as the point order "
                    "(CIFS has ONE_DIRECTION or BOTH_DIRECTIONS)")
    lanes = [lane for lane in kept.get("lanes") or () if isinstance(lane, Mapping)]
    if kept.get("restrictions") or any(lane.get("restrictions") or lane.get("width") for lane in lanes):
        lost.append("lane widths and restrictions are not carried (CIFS has lanes only)")
    shifted = sorted({str(lane["status"]) for lane in lanes if lane.get("status") not in (None, "open", "closed")})
    if shifted:
        lost.append(f"lane statuses {', '.join(shifted)} are carried as open or closed (CIFS has no merge or shift)")
    if kept.get("types_of_work"):
        lost.append("the types of work are not carried (CIFS has one type per incident)")
    if kept.get("work_zone_type"):
        lost.append(f"the work zone type {kept['work_zone_type']} is not carried")
    if any(kept.get(key) is not None for key in ("beginning_cross_street", "ending_cross_street",
                                                 "beginning_milepost", "ending_milepost")):
        lost.append("cross streets and mileposts are not carried")
    return lost
