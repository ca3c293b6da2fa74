"""DATEX II v3 (3.5) ``SituationPublication``: render the city's events, and check a document.

* :func:`render_datex2` writes city events (operator closures and city sources; crowd data is
  never published) as one ``d2:payload`` of type ``sit:SituationPublication``: one
  ``sit:situation`` per event holding one ``sit:situationRecord`` (:data:`RECORD_TYPES` says which
  record type each Waze type and subtype becomes), with the validity (overall period and the
  weekly schedule as ``validPeriod``), the location (``loc:LinearLocation`` with a
  ``loc:gmlLineString`` in travel order, or ``loc:PointLocation``), the road name and the lanes.
* :func:`problems_for` says why an event cannot be carried validly (it is then held back from
  this target only), :func:`losses_for` what is lost or approximated when it is carried.
* :func:`check_datex2` checks a document with the project's own structural rules, and against
  the official XSDs when the caller passes them in as an ``etree.XMLSchema`` (this module does
  no I/O; the DATEX II schemas are not shipped, see README).

Reading another agency's DATEX II is :mod:`feeds.datex2_read`.

Ids and versions are stable across publications without a store of their own: the situation and
its record take the event's id; the record's ``version`` is the event's last update time in epoch
milliseconds (the store's last revision, which publishing puts in ``attributes`` with
:func:`feeds.cifs.with_revision_times`; else the source's update time, else its creation time),
so it grows with every change and stays put while nothing changes. An event with none of these
(rendered without the store) gets a fingerprint of what is published of it (it changes when the
content does, without an order). Creation and version times are chosen as CIFS chooses them. An ended event stays in
the feed, as long as publishing keeps it, with its ``overallEndTime``: a record ends, it does not
vanish.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, tzinfo
from typing import Any, Protocol

import orjson
from lxml import etree

from exchange.errors import MalformedPayload
from exchange.model import SCHEDULE_DAYS, Event, LineString, Origin, from_millis
from feeds.cifs import CREATED_KEY, FIRST_REVISION_KEY, LAST_REVISION_KEY, UPDATED_KEY, Attribution, format_time
from feeds.city import PUBLISHED_DECIMALS, ROAD_NUMBER_KEY, published_points
from feeds.lint import is_full_closure
from feeds.problems import Problem
from feeds.wzdx import WZDX_KEY, restrictions_of
from feeds.xmlsafe import parse_untrusted

__all__ = [
    "MAX_TEXT",
    "MODEL_BASE_VERSION",
    "NS",
    "RECORD_TYPES",
    "Datex2Identity",
    "RecordType",
    "check_datex2",
    "losses_for",
    "problems_for",
    "record_type",
    "record_version",
    "render_datex2",
]

#: the namespaces of DATEX II v3 this module writes and reads
NS = {
    "d2": "http://datex2.eu/schema/3/d2Payload",
    "com": "http://datex2.eu/schema/3/common",
    "loc": "http://datex2.eu/schema/3/locationReferencing",
    "sit": "http://datex2.eu/schema/3/situation",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
}
XSI_TYPE = f"{{{NS['xsi']}}}type"
#: ``modelBaseVersion`` of a DATEX II v3 payload (required by the schema; some publishers omit it)
MODEL_BASE_VERSION = "3"
#: the longest ``com:String`` / multilingual value DATEX II allows; longer text is cut
MAX_TEXT = 1024
#: the coordinate reference system of every written ``gmlLineString``: EPSG 4326 is latitude first,
#: the order DATEX II documents for ``posList``
WGS84 = "EPSG:4326"
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class Datex2Identity(Protocol):
    """What a publication says of its publisher: ``publish.datex2`` (``exchange.config.Datex2Settings``)."""

    @property
    def country(self) -> str: ...
    @property
    def national_identifier(self) -> str | None: ...
    @property
    def language(self) -> str: ...


@dataclass(frozen=True, slots=True)
class RecordType:
    """The ``situationRecord`` one kind of event becomes.

    ``xsi_type`` is the record's type; ``detail`` its one required type value (the closure's
    ``roadOrCarriagewayOrLaneManagementType``, the works' ``constructionWorkType`` or
    ``roadMaintenanceType``, the ``accidentType``); ``cause`` the ``causeType`` that carries a Waze
    closure's reason; ``severity`` the record's ``severity``.
    """

    xsi_type: str
    detail: str
    cause: str | None = None
    severity: str | None = None
    #: when the record is only an approximation of the Waze type: the sentence saying so
    approximation: str | None = None


_CLOSURE = "RoadOrCarriagewayOrLaneManagement"
#: (Waze type, subtype or None) -> the record it becomes; a ROAD_CLOSED in one direction is a
#: ``carriagewayClosures`` instead of ``roadClosed`` (:func:`record_type`)
RECORD_TYPES: dict[tuple[str, str | None], RecordType] = {
    ("ROAD_CLOSED", None): RecordType(_CLOSURE, "roadClosed"),  # with a lane impact: laneClosures
    ("ROAD_CLOSED", "ROAD_CLOSED_CONSTRUCTION"): RecordType(_CLOSURE, "roadClosed", cause="constructionWork"),
    ("ROAD_CLOSED", "ROAD_CLOSED_EVENT"): RecordType(_CLOSURE, "roadClosed", cause="publicEvent"),
    ("ROAD_CLOSED", "ROAD_CLOSED_HAZARD"): RecordType(_CLOSURE, "roadClosed", cause="obstruction"),
    ("HAZARD", "HAZARD_ON_ROAD_LANE_CLOSED"): RecordType(_CLOSURE, "laneClosures"),
    ("CONSTRUCTION", None): RecordType("ConstructionWorks", "constructionWork"),
    ("HAZARD", "HAZARD_ON_ROAD_CONSTRUCTION"): RecordType(
        "MaintenanceWorks", "roadworks",
        approximation="Waze HAZARD_ON_ROAD_CONSTRUCTION is published as road works (MaintenanceWorks): "
        "DATEX II has no hazard of that name, and it reads back as CONSTRUCTION",
    ),
    ("ACCIDENT", None): RecordType("Accident", "accident"),
    ("ACCIDENT", "ACCIDENT_MAJOR"): RecordType("Accident", "accident", severity="high"),
    ("ACCIDENT", "ACCIDENT_MINOR"): RecordType("Accident", "accident", severity="low"),
}
#: Waze lane statuses DATEX II carries as they are (the others are spellings of open and closed)
_PLAIN_STATUSES = frozenset({"OPEN", "CLOSED"})
_ROADSIDE = {"LEFT": "onTheLeft", "MIDDLE": "inTheCentre", "RIGHT": "onTheRight"}
_CLOSED = frozenset({"CLOSED_LANE", "CLOSE", "CLOSED"})


def record_type(event: Event) -> RecordType | None:
    """The record an event becomes, or None when DATEX II (here) has none for its type."""
    kind = event.type.upper()
    subtype = event.subtype.upper() if event.subtype else None
    # a subtype with no record of its own is carried by its type's (ROAD_CLOSED), or not at all (HAZARD)
    found = RECORD_TYPES.get((kind, subtype)) or (RECORD_TYPES.get((kind, None)) if kind != "HAZARD" else None)
    if found is not None and found.detail == "roadClosed" and not is_full_closure(event):
        # a ROAD_CLOSED with a lane impact closes those lanes (as CIFS and WZDx say), not the road
        return RecordType(found.xsi_type, "laneClosures", found.cause, found.severity,
                          "a ROAD_CLOSED with a lane impact closes those lanes: published as laneClosures, it reads "
                          "back as a lane closure, not ROAD_CLOSED")
    if found is not None and found.detail == "roadClosed" and event.direction == "ONE_DIRECTION":
        return RecordType(found.xsi_type, "carriagewayClosures", found.cause, found.severity, found.approximation)
    return found


# --------------------------------------------------------------------------- what the target cannot carry


def _created(event: Event) -> datetime | None:
    """When the event was created: its source's creation time, else the store's first revision."""
    return _stamp(event, CREATED_KEY) or _stamp(event, FIRST_REVISION_KEY)


def _updated(event: Event) -> datetime | None:
    """When the event last changed: the store's last revision, else its source's update time."""
    return _stamp(event, LAST_REVISION_KEY) or _stamp(event, UPDATED_KEY)


def _start_of(event: Event) -> datetime | None:
    """The ``overallStartTime``: the event's start, else its creation time."""
    return event.start_time if event.start_time is not None else _created(event)


def problems_for(event: Event) -> list[str]:
    r"""Why ``event`` cannot be carried validly in DATEX II; empty when it can.

    >>> from exchange.model import Category, Kind, Point
    >>> jam = Event(id="waze:jam:1", source="waze", kind=Kind.JAM, source_id="1", origin="crowd",
    ...             category=Category.JAM, type="JAM", geometry=Point(coordinates=(2.35, 48.85)))
    >>> print(*problems_for(jam), sep="\n")
    crowd data is never published in DATEX II (city events only)
    Waze type JAM has no DATEX II record here (closures, road works and accidents only)
    no start time: DATEX II validity needs an overallStartTime
    """
    found: list[str] = []
    if event.origin != Origin.CITY:
        found.append("crowd data is never published in DATEX II (city events only)")
    if record_type(event) is None:
        shown = f"{event.type}/{event.subtype}" if event.subtype else event.type
        found.append(f"Waze type {shown} has no DATEX II record here (closures, road works and accidents only)")
    if _start_of(event) is None:
        found.append("no start time: DATEX II validity needs an overallStartTime")
    return found


def losses_for(event: Event) -> list[str]:
    """What is lost or approximated when ``event`` is carried in DATEX II, one short sentence each."""
    found: list[str] = []
    kind = record_type(event)
    if kind is not None and kind.approximation:
        found.append(kind.approximation)
    if event.direction not in ("ONE_DIRECTION", "BOTH_DIRECTIONS"):
        found.append("no direction given: DATEX II reads the location as one direction of travel")
    if event.start_time is None and _start_of(event) is not None:
        found.append("no start time: the creation time is published as the start")
    details = event.details
    if details is not None:
        if details.lanes:
            found.append("lanes are numbered from the verge as DATEX II counts them, assuming right-hand traffic")
            if any(lane.type.upper() not in ("LANE", *_NOT_TRAFFIC_LANES) for lane in details.lanes):
                found.append("lane types other than shoulders, cycle lanes and medians are not carried (DATEX II "
                             "lists the closed traffic lanes by number)")
            if any(lane.type.upper() in ("SIDEWALK", "PARKING") and lane.status in _CLOSED for lane in details.lanes):
                found.append("a closed sidewalk or parking lane is not carried (no DATEX II lane use for it)")
            if any(lane.status not in _PLAIN_STATUSES for lane in details.lanes):
                found.append("lane statuses are carried as open or closed only (CIFS spellings are not kept)")
        if details.parent_event:
            found.append("the parent event is not carried (DATEX II has no parent id)")
        if details.description and len(details.description) > MAX_TEXT:
            found.append(f"the description is cut to {MAX_TEXT} characters")
    kept = event.attributes.get(WZDX_KEY)
    if isinstance(kept, Mapping):
        lanes = [lane for lane in kept.get("lanes") or () if isinstance(lane, Mapping)]
        restrictions = [*restrictions_of(kept.get("restrictions")),
                        *(each for lane in lanes for each in restrictions_of(lane.get("restrictions")))]
        named = dict.fromkeys(" ".join(str(part) for part in (each["type"], each.get("value"), each.get("unit"))
                                       if part is not None) for each in restrictions)
        if named:
            found.append(f"its WZDx restrictions are not carried: {', '.join(named)}")
    if event.street and len(event.street) > MAX_TEXT:
        found.append(f"the street name is cut to {MAX_TEXT} characters")
    return found


# --------------------------------------------------------------------------- rendering


def _stamp(event: Event, key: str) -> datetime | None:
    value = event.attributes.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return from_millis(value)
    return None


def _published_text(text: str) -> str:
    """Text XML can carry, within :data:`MAX_TEXT` characters."""
    text = _NOT_XML.sub("", text)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def record_version(event: Event) -> str:
    """The record's ``version``: the last update time in epoch milliseconds (the store's last revision,
    else the source's update time, else the creation time), or, without any, a fingerprint of the
    published content.

    >>> from exchange.model import Category, Kind, Point
    >>> event = Event(id="c:city:1", source="c", kind=Kind.CITY, source_id="1", origin="city",
    ...               category=Category.ACCIDENT, type="ACCIDENT", geometry=Point(coordinates=(2.35, 48.85)),
    ...               attributes={"_updated_ms": 1780000000000})
    >>> record_version(event)
    '1780000000000'
    """
    when = _updated(event) or _created(event)
    if when is not None:  # milliseconds: two revisions within one second (a sync and an edit) are two versions
        return str(round(when.timestamp() * 1000))
    content = event.model_dump(mode="json", include={
        "type", "subtype", "geometry", "street", "direction", "start_time", "end_time", "status", "details",
    })
    return str(int(hashlib.blake2b(orjson.dumps(content, option=orjson.OPT_SORT_KEYS), digest_size=6).hexdigest(), 16))


class _Writer:
    """Builds one payload; keeps the language and zone every element needs."""

    def __init__(self, language: str, zone: tzinfo) -> None:
        self.language = language
        self.zone = zone

    @staticmethod
    def sub(parent: etree._Element, prefix: str, name: str, text: str | None = None, **attrs: str) -> etree._Element:
        element = etree.SubElement(parent, f"{{{NS[prefix]}}}{name}", attrs)
        if text is not None:
            element.text = text
        return element

    def typed(self, parent: etree._Element, prefix: str, name: str, xsi_type: str) -> etree._Element:
        element = self.sub(parent, prefix, name)
        element.set(XSI_TYPE, xsi_type)
        return element

    def multilingual(self, parent: etree._Element, prefix: str, name: str, text: str,
                     language: str | None = None) -> None:
        """A text in ``language``, else in the publication's."""
        values = self.sub(self.sub(parent, prefix, name), "com", "values")
        self.sub(values, "com", "value", _published_text(text), lang=language or self.language)

    def time(self, when: datetime) -> str:
        return format_time(when, self.zone)


def _clock(text: str, *, end: bool = False) -> str:
    """``HH:MM`` as an ``xs:time``; a window's end at ``23:59`` (how a schedule writes "to midnight") is
    the day's last second, so an overnight pair of windows leaves no minute open at midnight.

    >>> _clock("22:00"), _clock("23:59", end=True), _clock("23:59")
    ('22:00:00', '23:59:59', '23:59:00')
    """
    hours, minutes = text.strip().split(":")
    second = 59 if end and (int(hours), int(minutes)) == (23, 59) else 0
    return time(int(hours), int(minutes), second).isoformat(timespec="seconds")


def _validity(writer: _Writer, record: etree._Element, event: Event, start: datetime) -> None:
    validity = writer.sub(record, "sit", "validity")
    writer.sub(validity, "com", "validityStatus", "definedByValidityTimeSpec")
    period = writer.sub(validity, "com", "validityTimeSpecification")
    writer.sub(period, "com", "overallStartTime", writer.time(start))
    if event.end_time is not None:
        writer.sub(period, "com", "overallEndTime", writer.time(event.end_time))
    schedule = event.details.schedule if event.details is not None else None
    for day in SCHEDULE_DAYS:
        hours = (schedule or {}).get(day)
        if not hours:
            continue
        # one validPeriod per day: its windows on that day (everyday: no day, so every day)
        valid = writer.sub(period, "com", "validPeriod")
        for window in hours.split(","):
            begin, _, end = window.partition("-")
            times = writer.sub(valid, "com", "recurringTimePeriodOfDay")
            times.set(XSI_TYPE, "com:TimePeriodOfDay")
            writer.sub(times, "com", "startTimeOfPeriod", _clock(begin))
            writer.sub(times, "com", "endTimeOfPeriod", _clock(end, end=True))
        if day != "everyday":
            writer.sub(writer.sub(valid, "com", "recurringDayWeekMonthPeriod"), "com", "applicableDay", day)


#: CIFS lane types (WZDx's, upper-cased) that are no traffic lane: DATEX II counts none of them in
#: ``originalNumberOfLanes`` ("hard shoulder should not be counted") and names a closed one by its use
_NOT_TRAFFIC_LANES = {"SHOULDER": "hardShoulder", "BIKE_LANE": "cycleLane", "MEDIAN": "centralReservation",
                      "SIDEWALK": None, "PARKING": None}


def _lanes(writer: _Writer, description: etree._Element, event: Event) -> None:
    details = event.details
    if details is None or not details.lanes:
        return
    # CIFS counts lanes from the left from 0; DATEX II counts the traffic lanes from the verge (the
    # right, in right-hand traffic) from 1: the rightmost traffic lane is lane 1
    ordered = sorted(details.lanes, key=lambda lane: -lane.order)  # from the verge
    traffic = [lane for lane in ordered if lane.type.upper() not in _NOT_TRAFFIC_LANES]
    carriageway = writer.sub(description, "loc", "carriageway")
    writer.sub(carriageway, "loc", "carriageway", "mainCarriageway")
    if traffic:
        writer.sub(carriageway, "loc", "originalNumberOfLanes", str(len(traffic)))
    for lane in ordered:
        if lane.status not in _CLOSED:
            continue
        if lane in traffic:
            writer.sub(writer.sub(carriageway, "loc", "lane"), "loc", "laneNumber", str(traffic.index(lane) + 1))
        elif usage := _NOT_TRAFFIC_LANES[lane.type.upper()]:
            writer.sub(writer.sub(carriageway, "loc", "lane"), "loc", "laneUsage", usage)


def _location(writer: _Writer, record: etree._Element, event: Event) -> None:
    linear = isinstance(event.geometry, LineString)
    location = writer.typed(record, "sit", "locationReference", "loc:LinearLocation" if linear else "loc:PointLocation")
    details = event.details
    description = writer.sub(location, "loc", "supplementaryPositionalDescription")
    place = event.attributes.get("location_description")
    if isinstance(place, str) and place.strip():
        writer.multilingual(description, "loc", "locationDescription", place)
    if details is not None and details.lane_impact is not None:
        writer.sub(description, "loc", "positionOnCarriageway", _ROADSIDE[details.lane_impact.roadside])
    _lanes(writer, description, event)
    if event.street:
        road = writer.sub(description, "loc", "roadInformation")
        writer.sub(road, "loc", "roadName", _published_text(event.street))
        if isinstance(number := event.attributes.get(ROAD_NUMBER_KEY), str) and number:
            writer.sub(road, "loc", "roadNumber", _published_text(number))
    if len(description) == 0:
        location.remove(description)
    if isinstance(event.geometry, LineString):
        line = writer.sub(location, "loc", "gmlLineString", srsDimension="2", srsName=WGS84)
        writer.sub(line, "loc", "posList", " ".join(
            f"{lat} {lon}" for lon, lat in published_points(event.geometry.coordinates)))
    else:
        lon, lat = event.geometry.coordinates
        coordinates = writer.sub(writer.sub(location, "loc", "pointByCoordinates"), "loc", "pointCoordinates")
        writer.sub(coordinates, "loc", "latitude", f"{lat:.{PUBLISHED_DECIMALS}f}")
        writer.sub(coordinates, "loc", "longitude", f"{lon:.{PUBLISHED_DECIMALS}f}")


def _record(writer: _Writer, situation: etree._Element, event: Event, kind: RecordType,
            attribution: Attribution | None) -> None:
    start = _start_of(event)
    assert start is not None  # problems_for holds back an event without one
    record = writer.typed(situation, "sit", "situationRecord", f"sit:{kind.xsi_type}")
    record.set("id", event.id)
    record.set("version", record_version(event))
    created = _created(event) or start
    updated = _updated(event) or created
    writer.sub(record, "sit", "situationRecordCreationTime", writer.time(created))
    writer.sub(record, "sit", "situationRecordVersionTime", writer.time(max(updated, created)))
    writer.sub(record, "sit", "probabilityOfOccurrence", "certain")
    if kind.severity:
        writer.sub(record, "sit", "severity", kind.severity)
    details = event.details
    reference = (attribution or Attribution()).source_of(event)  # without one: the event's own source only
    if reference is not None:
        source = writer.sub(record, "sit", "source")
        writer.sub(source, "com", "sourceIdentification", _published_text(reference.reference))
        if reference.name:
            writer.multilingual(source, "com", "sourceName", reference.name)
    _validity(writer, record, event, start)
    if details is not None and details.lane_impact is not None:
        impact = writer.sub(record, "sit", "impact")
        writer.sub(impact, "sit", "numberOfLanesRestricted", str(details.lane_impact.total_closed_lanes))
    if kind.cause:
        writer.sub(writer.sub(record, "sit", "cause"), "sit", "causeType", kind.cause)
    if details is not None and details.description:
        comment = writer.sub(record, "sit", "generalPublicComment")
        writer.multilingual(comment, "sit", "comment", details.description, _description_language(event))
        writer.sub(comment, "sit", "commentType", "description")
    if reference is not None and reference.url:
        writer.sub(writer.sub(record, "sit", "urlLink"), "com", "urlLinkAddress", _published_text(reference.url))
    _location(writer, record, event)
    closure = kind.xsi_type == _CLOSURE
    if event.direction == "BOTH_DIRECTIONS" and not closure:
        # a road works or accident record has no direction of its own: its impact on the opposite
        # direction says that both are affected
        writer.sub(record, "sit", "impactOnOppositeDirection")
    if kind.xsi_type == "Accident":
        writer.sub(record, "sit", "accidentType", kind.detail)
    elif kind.xsi_type == "ConstructionWorks":
        writer.sub(record, "sit", "constructionWorkType", kind.detail)
    elif kind.xsi_type == "MaintenanceWorks":
        writer.sub(record, "sit", "roadMaintenanceType", kind.detail)
    else:
        writer.sub(record, "sit", "complianceOption", "mandatory")
        both = event.direction == "BOTH_DIRECTIONS"
        writer.sub(record, "sit", "applicableForTrafficDirection", "bothWays" if both else "aligned")
        writer.sub(record, "sit", "roadOrCarriagewayOrLaneManagementType", kind.detail)


def render_datex2(
    events: Sequence[Event], *, settings: Datex2Identity, zone: tzinfo, generated: datetime,
    attribution: Attribution | None = None,
) -> bytes:
    """A DATEX II 3.5 ``d2:payload`` (``sit:SituationPublication``), UTF-8 with an XML declaration.

    Parameters
    ----------
    events
        The events to publish; those :func:`problems_for` refuses (crowd data, a type with no
        record here, no start) are left out, so a caller that holds them back gets the same feed.
    settings
        ``publish.datex2``: ``publicationCreator`` (``country``, ``national_identifier``) and the
        ``lang`` of the payload and of every text.
    zone
        The city's time zone: every time is written with its offset.
    generated
        The ``publicationTime``. A record whose event has no creation time is created at its start.
    attribution
        Who a record's ``source`` names when the event carries no source of its own, as the CIFS
        ``<source>`` (:class:`feeds.cifs.Attribution`): the city for an operator's closure, its city
        source for an import; without it, only an event's own source is written.
    """
    writer = _Writer(settings.language, zone)
    root = etree.Element(f"{{{NS['d2']}}}payload", nsmap=NS)
    root.set(XSI_TYPE, "sit:SituationPublication")
    root.set("lang", settings.language)
    root.set("modelBaseVersion", MODEL_BASE_VERSION)
    writer.sub(root, "com", "publicationTime", writer.time(generated))
    creator = writer.sub(root, "com", "publicationCreator")
    writer.sub(creator, "com", "country", settings.country)
    writer.sub(creator, "com", "nationalIdentifier", _published_text(settings.national_identifier or "city"))
    for event in events:
        kind = record_type(event)
        if kind is None or problems_for(event):
            continue
        situation = writer.sub(root, "sit", "situation", id=event.id)
        header = writer.sub(situation, "sit", "headerInformation")
        writer.sub(header, "com", "confidentiality", "noRestriction")
        writer.sub(header, "com", "informationStatus", "real")
        _record(writer, situation, event, kind, attribution)
    body = etree.tostring(root, xml_declaration=False, encoding="UTF-8", pretty_print=True)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body


# --------------------------------------------------------------------------- checking


def local_name(element: etree._Element) -> str:
    """An element's name without its namespace (readers of foreign DATEX II match on it)."""
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def xsi_type(element: etree._Element) -> str | None:
    """The local part of an element's ``xsi:type``, whatever its prefix says (some publishers
    write a prefix their document never declares)."""
    value = element.get(XSI_TYPE)
    return value.rpartition(":")[2].strip() if value else None


def children(element: etree._Element, name: str) -> list[etree._Element]:
    """The child elements called ``name``, in any namespace."""
    return [child for child in element if local_name(child) == name]


def child(element: etree._Element | None, *path: str) -> etree._Element | None:
    """The first element down ``path`` (local names), or None."""
    for name in path:
        if element is None:
            return None
        found = children(element, name)
        element = found[0] if found else None
    return element


def child_text(element: etree._Element | None, *path: str) -> str | None:
    found = child(element, *path)
    text = (found.text or "").strip() if found is not None else ""
    return text or None


def publications(root: etree._Element) -> list[etree._Element]:
    """The payloads of a document: the root ``d2:payload``, or those of a ``con:messageContainer``.

    Raises
    ------
    MalformedPayload
        Another root, or a container without a payload (exchange information only, as a
        "delivery break" is).
    """
    name = local_name(root)
    if name == "payload":
        return [root]
    if name == "messageContainer":
        found = children(root, "payload")
        if not found:
            raise MalformedPayload("a DATEX II messageContainer without a payload (exchange information only)")
        return found
    raise MalformedPayload(f"not a DATEX II v3 document: the root is <{name}>, expected d2:payload or "
                           "con:messageContainer")


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when


def _where(element: etree._Element, what: str) -> str:
    return f"line {element.sourceline}: {what}"


def _pos_list_problems(line: etree._Element, where: str) -> list[Problem]:
    found: list[Problem] = []
    text = child_text(line, "posList") or ""
    try:
        numbers = [float(token) for token in text.split()]
    except ValueError:
        return [Problem(where, f"posList: {text[:60]!r} is not a list of numbers")]
    dimension = int(line.get("srsDimension") or 2) if (line.get("srsDimension") or "2").isdigit() else 2
    if dimension not in (2, 3):
        return [Problem(where, f"gmlLineString: srsDimension {dimension} is not 2 or 3")]
    if len(numbers) % dimension:
        found.append(Problem(where, f"posList: {len(numbers)} numbers, not a whole number of {dimension}-tuples"))
    points = [numbers[i: i + 2] for i in range(0, len(numbers) - dimension + 1, dimension)]
    if len(points) < 2:
        found.append(Problem(where, "posList: fewer than 2 positions"))
    srs = (line.get("srsName") or "").upper()
    if not srs or "4326" in srs or "4258" in srs:  # latitude first: check the ranges
        for position, (lat, lon) in enumerate(points, start=1):
            if not (math.isfinite(lat) and math.isfinite(lon)) or not -90 <= lat <= 90 or not -180 <= lon <= 180:
                found.append(Problem(where, f"posList position {position}: ({lat}, {lon}) is not a latitude "
                                            "and longitude in range (posList is latitude first)"))
                break
    if len(points) >= 2 and len({(round(a, 7), round(b, 7)) for a, b in points}) < 2:
        found.append(Problem(where, "posList: every position is the same place (zero length)"))
    return found


def _record_problems(record: etree._Element) -> list[Problem]:
    ident = record.get("id")
    where = _where(record, f"situationRecord {ident!r}")
    found: list[Problem] = []
    if not record.get("version"):
        found.append(Problem(where, "version: missing"))
    if not xsi_type(record):
        found.append(Problem(where, "xsi:type: missing (which kind of record is it?)"))
    created = _time(child_text(record, "situationRecordCreationTime"))
    versioned = _time(child_text(record, "situationRecordVersionTime"))
    for name, when in (("situationRecordCreationTime", created), ("situationRecordVersionTime", versioned)):
        if when is None:
            found.append(Problem(where, f"{name}: missing or not a date-time"))
        elif when.tzinfo is None:
            found.append(Problem(where, f"{name}: no time zone offset", "warning"))
    if created and versioned and created.tzinfo and versioned.tzinfo and versioned < created:
        # a warning: Fintraffic's records are versioned some milliseconds before they were created
        found.append(Problem(where, "situationRecordVersionTime is before situationRecordCreationTime", "warning"))
    period = child(record, "validity", "validityTimeSpecification")
    if child(record, "validity") is None or period is None:
        found.append(Problem(where, "validity: missing (validityStatus and validityTimeSpecification)"))
    else:
        start = _time(child_text(period, "overallStartTime"))
        end = _time(child_text(period, "overallEndTime"))
        if start is None:
            found.append(Problem(where, "overallStartTime: missing or not a date-time"))
        if child_text(period, "overallEndTime") and end is None:
            found.append(Problem(where, "overallEndTime: not a date-time"))
        if start and end and (start.tzinfo is None) == (end.tzinfo is None) and end <= start:
            found.append(Problem(where, f"overallEndTime {end.isoformat()} is not after overallStartTime "
                                        f"{start.isoformat()}"))
        for valid in children(period, "validPeriod"):
            for window in children(valid, "recurringTimePeriodOfDay"):
                begin, finish = child_text(window, "startTimeOfPeriod"), child_text(window, "endTimeOfPeriod")
                if not begin or not finish:
                    found.append(Problem(where, "recurringTimePeriodOfDay: start or end missing"))
                elif begin == finish:
                    found.append(Problem(where, f"recurringTimePeriodOfDay {begin}-{finish} is empty"))
    location = child(record, "locationReference")
    if location is None:
        found.append(Problem(where, "locationReference: missing"))
    else:
        for line in location.iter(f"{{{NS['loc']}}}gmlLineString"):
            found.extend(_pos_list_problems(line, where))
        for point in location.iter(f"{{{NS['loc']}}}pointCoordinates"):
            lat, lon = child_text(point, "latitude"), child_text(point, "longitude")
            try:
                inside = -90 <= float(lat or "nan") <= 90 and -180 <= float(lon or "nan") <= 180
            except ValueError:
                inside = False
            if not inside:
                message = f"pointCoordinates ({lat}, {lon}) is not a latitude and longitude in range"
                found.append(Problem(where, message))
    return found


def check_datex2(document: bytes, schema: etree.XMLSchema | None = None) -> list[Problem]:
    """The project's structural rules for a DATEX II v3 situation document, and the XSD when given.

    Parameters
    ----------
    document
        A ``d2:payload`` or ``con:messageContainer``.
    schema
        The official DATEX II 3.5 schemas (their ``DATEXII_3_MessageContainer.xsd``), built by the
        caller from ``publish.schema_dir``; without it only the rules below run.

    Notes
    -----
    The rules: a readable document (no DOCTYPE), a payload of type ``SituationPublication`` with
    ``lang``, ``modelBaseVersion``, ``publicationTime`` and ``publicationCreator``; unique
    situation ids and record (id, version) pairs; each record with a type, creation and version
    times (a version before the creation is a warning), a validity with an ``overallStartTime`` before its
    ``overallEndTime``, non-empty daily windows, and a location whose ``posList`` holds at least
    2 distinct positions in whole tuples, latitude first and in range (for EPSG 4326/4258 or no
    ``srsName``). Locations are ``"line N: situationRecord 'id'"``.
    """
    try:
        root = parse_untrusted(document)
        payloads = publications(root)
    except MalformedPayload as exc:
        return [Problem("document", exc.message)]
    found: list[Problem] = []
    situations: dict[str, str] = {}
    records: dict[tuple[str, str], str] = {}
    for payload in payloads:
        where = _where(payload, "payload")
        kind = xsi_type(payload)
        if kind != "SituationPublication":
            found.append(Problem(where, f"xsi:type {kind!r} is not a SituationPublication"))
            continue
        for attribute in ("lang", "modelBaseVersion"):
            if not payload.get(attribute):
                found.append(Problem(where, f"{attribute}: missing (required by DATEX II v3)"))
        if _time(child_text(payload, "publicationTime")) is None:
            found.append(Problem(where, "publicationTime: missing or not a date-time"))
        if not child_text(payload, "publicationCreator", "country") or not child_text(
            payload, "publicationCreator", "nationalIdentifier"
        ):
            found.append(Problem(where, "publicationCreator: country and nationalIdentifier are required"))
        for situation in children(payload, "situation"):
            ident = situation.get("id") or ""
            here = _where(situation, f"situation {ident!r}")
            if not ident:
                found.append(Problem(here, "id: missing"))
            elif ident in situations:
                found.append(Problem(here, f"duplicate situation id (first at line {situations[ident]})"))
            else:
                situations[ident] = f"{situation.sourceline}"
            if child(situation, "headerInformation", "informationStatus") is None:
                found.append(Problem(here, "headerInformation/informationStatus: missing"))
            listed = children(situation, "situationRecord")
            if not listed:
                found.append(Problem(here, "no situationRecord (a situation needs at least one)"))
            for record in listed:
                key = (record.get("id") or "", record.get("version") or "")
                if not key[0]:
                    found.append(Problem(_where(record, "situationRecord"), "id: missing"))
                elif key in records:
                    found.append(Problem(_where(record, f"situationRecord {key[0]!r}"),
                                         f"duplicate id and version {key[1]!r} (first at line {records[key]})"))
                else:
                    records[key] = f"{record.sourceline}"
                found.extend(_record_problems(record))
    if schema is not None:
        tree = root.getroottree()
        if not schema.validate(tree):
            log: Iterable[Any] = schema.error_log  # type: ignore[assignment]  # iterable, the stubs omit it
            found.extend(Problem(f"line {error.line}", f"XSD: {error.message}") for error in log)
    return found


def roadside_of(position: str | None) -> str | None:
    """The CIFS ``roadside`` of a DATEX II ``positionOnCarriageway``."""
    for roadside, value in _ROADSIDE.items():
        if value == position:
            return roadside
    return None


#: the attribute keeping the language an imported DATEX II description was written in
DESCRIPTION_LANGUAGE_KEY = "datex2_description_lang"
_LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?")


def _description_language(event: Event) -> str | None:
    """The language a DATEX II import's description was written in, while it is the source's own (an
    operator's new description is in the city's); None: the publication's."""
    declared = event.attributes.get(DESCRIPTION_LANGUAGE_KEY)
    overridden = event.details.overridden if event.details is not None else None
    if not isinstance(declared, str) or not _LANGUAGE.fullmatch(declared) or (
            overridden and "details.description" in overridden):
        return None
    return declared


def text_value(element: etree._Element | None, language: str | None = None) -> str | None:
    """A multilingual string's value: the one in ``language`` when given and present, else the first."""
    return text_and_language(element, language)[0]


def text_and_language(element: etree._Element | None, language: str | None = None) -> tuple[str | None, str | None]:
    """:func:`text_value`, and the ``lang`` its value declares (None when it declares none)."""
    if element is None:
        return None, None
    values = list(element.iter(f"{{{NS['com']}}}value")) or [
        value for value in element.iter() if local_name(value) == "value"
    ]
    chosen = next((value for value in values if language and value.get("lang") == language), None)
    chosen = chosen if chosen is not None else (values[0] if values else None)
    text = (chosen.text or "").strip() if chosen is not None else ""
    declared = (chosen.get("lang") or "").strip() if chosen is not None else ""
    return text or None, declared or None
