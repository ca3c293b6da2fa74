"""Another agency's DATEX II v3 read as city events (source ``kind = "datex2"``): situations, and
DiaLog's traffic regulation orders.

:func:`parse_datex2` reads a ``d2:payload`` or a ``con:messageContainer`` into a snapshot: one
item per ``situationRecord`` of a ``SituationPublication``, or per place and period of an order of
a ``TrafficRegulationPublication``, its fields as a plain dict; :func:`datex2_item_to_event` turns
one item into a city event through :func:`feeds.city.city_event`, mirroring :mod:`feeds.cifs`.

Real publishers ship defects (``../shared/testdata/datex2/samples``): a payload without
``modelBaseVersion``, an ``xsi:type`` or ``targetClass`` whose prefix the document never
declares, geometry in a national grid (Norway's EPSG 25833). Elements are therefore matched by
their local name and an ``xsi:type`` by the part after its prefix, and a ``gmlLineString`` in a
projected CRS is converted to WGS84. What cannot be read is named: a document of another kind (a
travel-time ``PredefinedLocationsPublication``, a delivery break without a payload) is refused
with a one-line reason, and a record this reader has no Waze type for (``TransitInformation``,
``PublicEvent``, weather, a parking or vehicle-class regulation) or no coordinates for (AlertC
location codes only) is rejected with its own.

The Waze type of a record (the inverse of :data:`feeds.datex2.RECORD_TYPES`):

* ``RoadOrCarriagewayOrLaneManagement``: a road or carriageway closure is ``ROAD_CLOSED``
  (subtype from its ``causeType``: construction work or road maintenance, public event,
  obstruction); a lane closure, narrowed lanes or alternate-line traffic is
  ``HAZARD``/``HAZARD_ON_ROAD_LANE_CLOSED``; other managements are not read.
* ``ConstructionWorks`` and ``MaintenanceWorks`` are ``CONSTRUCTION``.
* ``Accident`` is ``ACCIDENT``, ``ACCIDENT_MAJOR`` when its severity is high or highest, or its
  type a serious or fatal accident, ``ACCIDENT_MINOR`` when low or lowest.
* A traffic regulation (DiaLog) is ``ROAD_CLOSED`` when it is a ``noEntry`` access restriction
  with no vehicle condition: one event per place and period, both directions, the street its road
  name, number or (as DiaLog's own CIFS export names it) location description, the parts of its
  GeoJSON line joined into one; it then reads as DiaLog's CIFS export of the same orders.

The direction is the record's ``applicableForTrafficDirection`` (``bothWays``, ``allDirections``:
both; ``opposite``: one, against the line), else an AlertC ``alertCAffectedDirection``, else an
``impactOnOppositeDirection`` (both); else a location is one direction of travel, as DATEX II
reads it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import tzinfo
from typing import Any

import orjson
from lxml import etree

from exchange.errors import ItemOutOfScope, ItemRejected, MalformedPayload
from exchange.model import SCHEDULE_DAYS, Event, ItemError, Kind, first_problem, to_millis
from feeds.cifs import CREATED_KEY, UPDATED_KEY
from feeds.city import ROAD_NUMBER_KEY, city_event, parse_time, text_problem
from feeds.datex2 import (
    DESCRIPTION_LANGUAGE_KEY,
    child,
    child_text,
    children,
    local_name,
    publications,
    roadside_of,
    text_and_language,
    text_value,
    xsi_type,
)
from feeds.items import FeedItem, Snapshot, digest
from feeds.xmlsafe import parse_untrusted
from geo.crs import transformer

__all__ = ["datex2_item_to_event", "parse_datex2"]

Record = dict[str, Any]

#: managements that close the road or a carriageway: ``ROAD_CLOSED``
_CLOSURES = frozenset({
    "roadClosed", "carriagewayClosures", "closedPermanentlyForTheWinter", "overnightClosures",
    "intermittentShortTermClosures",
})
#: managements that close or narrow lanes: ``HAZARD_ON_ROAD_LANE_CLOSED``
_LANE_CLOSURES = frozenset({"laneClosures", "narrowLanes", "singleAlternateLineTraffic", "lanesDeviated"})
_CAUSE_SUBTYPES = {
    "constructionWork": "ROAD_CLOSED_CONSTRUCTION", "roadMaintenance": "ROAD_CLOSED_CONSTRUCTION",
    "publicEvent": "ROAD_CLOSED_EVENT", "obstruction": "ROAD_CLOSED_HAZARD",
    "vehicleObstruction": "ROAD_CLOSED_HAZARD", "environmentalObstruction": "ROAD_CLOSED_HAZARD",
    "infrastructureDamageObstruction": "ROAD_CLOSED_HAZARD", "accident": "ROAD_CLOSED_HAZARD",
}
_BOTH = frozenset({"bothWays", "allDirections", "both"})
_ONE = frozenset({"aligned", "positive", "negative", "opposite"})
#: the publications read: situations, and traffic regulation orders (DiaLog's)
_READ_PUBLICATIONS = frozenset({"SituationPublication", "TrafficRegulationPublication"})
_REFUSED_PUBLICATIONS = {
    "PredefinedLocationsPublication": " (predefined locations, e.g. of travel-time data)",
    "MeasuredDataPublication": " (traffic measurements)",
    "ElaboratedDataPublication": " (travel times and traffic status)",
}
#: ``srsName`` values meaning WGS84 (or ETRS89, within a metre of it) with latitude first
_LAT_LON_CRS = frozenset({"4326", "4258", "ETRS89-LATLONH", "ETRS89"})


# --------------------------------------------------------------------------- reading the document


def _srs_code(srs: str | None) -> str:
    """The EPSG code or name at the end of an ``srsName`` (``EPSG:4326``, ``urn:ogc:def:crs:EPSG::25833``,
    ``http://www.opengis.net/def/crs/EPSG/0/4326``, ``25833``); empty for none."""
    text = (srs or "").strip().upper()
    for separator in ("::", "/", ":"):
        text = text.rpartition(separator)[2] if separator in text else text
    return text


def _location_record(location: etree._Element) -> Record:
    """The parts of a ``locationReference`` this reader uses; a group's first located member wins."""
    members = children(location, "locationContainedInGroup") or [location]
    located = [
        member for member in members
        if child(member, "gmlLineString") is not None or child(member, "pointByCoordinates") is not None
    ]
    chosen = located[0] if located else members[0]
    found: Record = {"type": xsi_type(chosen)}
    line = child(chosen, "gmlLineString")
    if line is not None:
        found["pos_list"] = child_text(line, "posList")
        found["srs"] = line.get("srsName")
        found["dimension"] = line.get("srsDimension")
    coordinates = child(chosen, "pointByCoordinates", "pointCoordinates")
    if coordinates is not None:
        found["point"] = [child_text(coordinates, "latitude"), child_text(coordinates, "longitude")]
    display = child(chosen, "coordinatesForDisplay")
    if display is not None:
        found["display_point"] = [child_text(display, "latitude"), child_text(display, "longitude")]
    if any(local_name(element).startswith("alertC") for element in location.iter()):
        found["alert_c"] = True
    affected = [element.text.strip() for element in location.iter()
                if local_name(element) == "alertCAffectedDirection" and element.text and element.text.strip()]
    if affected:
        found["alert_c_direction"] = affected[0]
    descriptions = [child(member, "supplementaryPositionalDescription") for member in [chosen, *members]]
    for description in descriptions:
        if description is None:
            continue
        for key, value in (
            ("road_name", child_text(description, "roadInformation", "roadName")),
            ("road_number", child_text(description, "roadInformation", "roadNumber")),
            ("location_description", text_value(child(description, "locationDescription"))),
            ("position_on_carriageway", child_text(description, "positionOnCarriageway")),
            ("original_lanes", child_text(description, "carriageway", "originalNumberOfLanes")),
        ):
            if value and key not in found:
                found[key] = value
        carriageway = child(description, "carriageway")
        if carriageway is not None and "closed_lanes" not in found:
            numbers = [child_text(lane, "laneNumber") for lane in children(carriageway, "lane")]
            if any(numbers):
                found["closed_lanes"] = [number for number in numbers if number]
    return found


def _validity_record(validity: etree._Element | None) -> Record:
    period = child(validity, "validityTimeSpecification")
    found: Record = {
        "status": child_text(validity, "validityStatus"),
        "start": child_text(period, "overallStartTime"),
        "end": child_text(period, "overallEndTime"),
    }
    periods = []
    for valid in children(period, "validPeriod") if period is not None else []:
        periods.append({
            "days": [day.text.strip() for day in valid.iter() if local_name(day) == "applicableDay" and day.text],
            "windows": [
                [child_text(window, "startTimeOfPeriod"), child_text(window, "endTimeOfPeriod")]
                for window in children(valid, "recurringTimePeriodOfDay")
            ],
            "bounded": child(valid, "startOfPeriod") is not None or child(valid, "endOfPeriod") is not None,
        })
    if periods:
        found["periods"] = periods
    if period is not None and children(period, "exceptionPeriod"):
        found["exceptions"] = True
    return found


def _record(element: etree._Element, situation_id: str, language: str | None) -> Record:
    """One ``situationRecord`` as a plain dict (what the converter and the digest see)."""
    description, description_lang = text_and_language(child(element, "generalPublicComment", "comment"), language)
    record: Record = {
        "id": (element.get("id") or "").strip(),
        "situation": situation_id,
        "version": element.get("version"),
        "type": xsi_type(element),
        "created": child_text(element, "situationRecordCreationTime"),
        "updated": child_text(element, "situationRecordVersionTime"),
        "severity": child_text(element, "severity"),
        "validity": _validity_record(child(element, "validity")),
        "cause": child_text(element, "cause", "causeType"),
        "description": description,
        "description_lang": description_lang or language if description else None,
        "management": child_text(element, "roadOrCarriagewayOrLaneManagementType"),
        "directions": [item.text.strip() for item in children(element, "applicableForTrafficDirection") if item.text],
        "accident_types": [item.text.strip() for item in children(element, "accidentType") if item.text],
        "lanes_restricted": child_text(element, "impact", "numberOfLanesRestricted"),
        "opposite_impact": child(element, "impactOnOppositeDirection") is not None,
    }
    source = child(element, "source")
    if source is not None:
        record["source"] = {
            "reference": child_text(source, "sourceIdentification"),
            "name": text_value(child(source, "sourceName"), language),
        }
    url = child_text(element, "urlLink", "urlLinkAddress")
    if url:
        record["url"] = url
    location = child(element, "locationReference")
    if location is not None:
        record["location"] = _location_record(location)
    return {key: value for key, value in record.items() if value not in (None, [], "")}


def _add_item(snapshot: Snapshot, seen: dict[str, str], record: Record, where: str) -> None:
    """One record into the snapshot, or an item error when its id is unusable or already read."""
    ident = record.get("id", "")
    if not ident or text_problem(ident, controls=False):
        snapshot.errors.append(ItemError(kind=Kind.CITY.value, step="parse", reason=f"{where}: a record without "
                                         "a usable id"))
        return
    if ident in seen:
        reason = f"{where}: duplicate record id {ident!r} (first at {seen[ident]}); the first is kept"
        snapshot.errors.append(ItemError(kind=Kind.CITY.value, source_id=ident, step="parse", reason=reason))
        return
    seen[ident] = where
    snapshot.items.append(FeedItem(Kind.CITY, ident, digest(record), record))


def _situation_records(payload: etree._Element) -> list[tuple[Record | str, str]]:
    """(record or the reason it cannot be read, where) for each ``situationRecord`` of a publication."""
    found: list[tuple[Record | str, str]] = []
    language = payload.get("lang")
    for situation in children(payload, "situation"):
        for element in children(situation, "situationRecord"):
            where = f"line {element.sourceline}"
            try:
                found.append((_record(element, (situation.get("id") or "").strip(), language), where))
            except (ValueError, TypeError) as exc:  # nothing foreseen; this record alone is refused
                found.append((f"cannot be read: {type(exc).__name__}: {exc}", where))
    return found


def parse_datex2(data: bytes, *, zone: tzinfo) -> Snapshot:
    """Read a DATEX II v3 document into a snapshot of city items: one per ``situationRecord`` of a
    ``SituationPublication``, or one per place and period of a ``TrafficRegulationPublication``'s
    orders (:func:`_regulation_records`).

    A record without an id, or repeating one already read, is an item error; the rest goes on.

    Raises
    ------
    MalformedPayload
        Not XML, DOCTYPE/ENTITY declarations, another root, a container without a payload, or a
        payload of another kind (named, e.g. a ``PredefinedLocationsPublication``).
    """
    if not data.strip():
        raise MalformedPayload("the payload is empty")
    payloads = publications(parse_untrusted(data))
    kinds = {xsi_type(payload) or "(no xsi:type)" for payload in payloads}
    if not kinds & _READ_PUBLICATIONS:
        first = sorted(kinds)[0]
        raise MalformedPayload(f"not a DATEX II SituationPublication or TrafficRegulationPublication: the payload "
                               f"is a {first}{_REFUSED_PUBLICATIONS.get(first, '')}")
    snapshot = Snapshot(start_ms=None, end_ms=None, kinds_present=frozenset({Kind.CITY}))
    seen: dict[str, str] = {}
    for payload in payloads:
        kind = xsi_type(payload)
        if kind not in _READ_PUBLICATIONS:
            continue
        try:
            when = parse_time(child_text(payload, "publicationTime"), "publicationTime", zone)
        except ItemRejected:
            when = None
        if when is not None:
            snapshot.end_ms = max(snapshot.end_ms or 0, to_millis(when))
        listed = _situation_records(payload) if kind == "SituationPublication" else _regulation_records(payload)
        for record, where in listed:
            if isinstance(record, str):
                snapshot.errors.append(ItemError(kind=Kind.CITY.value, step="parse", reason=f"{where}: {record}"))
            else:
                _add_item(snapshot, seen, record, where)
    return snapshot


# --------------------------------------------------------------------------- DiaLog's traffic regulations


def _geojson_lines(text: str | None) -> list[list[list[Any]]]:
    """The lines of DiaLog's ``dx:geoJsonGeometry`` (LineString, MultiLineString, GeometryCollection)."""
    try:
        geometry = orjson.loads(text or "null")
    except orjson.JSONDecodeError:
        return []
    lines: list[list[list[Any]]] = []
    stack = [geometry]
    while stack:
        item = stack.pop(0)
        if not isinstance(item, Mapping):
            continue
        kind, coordinates = item.get("type"), item.get("coordinates")
        if kind == "LineString" and isinstance(coordinates, list):
            lines.append(coordinates)
        elif kind == "MultiLineString" and isinstance(coordinates, list):
            lines.extend(line for line in coordinates if isinstance(line, list))
        elif kind == "GeometryCollection" and isinstance(item.get("geometries"), list):
            stack.extend(item["geometries"])
    return lines


def _gap(a: Sequence[Any], b: Sequence[Any]) -> float:
    """The squared distance of two lon/lat positions in degrees: enough to tell the nearest end."""
    return float((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2)


def _chained(lines: list[list[list[Any]]]) -> list[list[Any]]:
    """The parts of one place joined into one line: each step attaches the remaining part whose
    end lies nearest either end of the line so far (turned round when needed)."""
    parts = [[point for point in line if isinstance(point, list) and len(point) >= 2
              and all(isinstance(value, int | float) and not isinstance(value, bool) for value in point[:2])]
             for line in lines]
    parts = [part for part in parts if part]
    if not parts:
        return []
    line = parts.pop(0)
    while parts:
        # (gap, part index, attach at the end?, turn the part round?)
        options = [
            (_gap(line[-1] if at_end else line[0], part[0] if (at_end != turned) else part[-1]), index, at_end, turned)
            for index, part in enumerate(parts) for at_end in (True, False) for turned in (False, True)
        ]
        _, index, at_end, turned = min(options)
        part = parts.pop(index)
        if turned:
            part.reverse()
        line = line + part if at_end else part + line
    # parts that meet share their meeting point: kept once
    return [point for index, point in enumerate(line) if index == 0 or point[:2] != line[index - 1][:2]]


def _regulated_place(location: etree._Element) -> Record:
    """A regulation's location as a location record; DiaLog's GeoJSON geometry (a street drawn as
    several lines) becomes one latitude-first ``posList`` of its parts joined (:func:`_chained`),
    the way DiaLog's own CIFS export draws it."""
    place = _location_record(location)
    extended = next((element for element in location.iter() if local_name(element) == "geoJsonGeometry"), None)
    if place.get("pos_list") or extended is None:
        return place
    line = _chained(_geojson_lines(extended.text))
    if not line:
        return {**place, "unreadable_geometry": (extended.text or "").strip()[:60]}
    pos_list = " ".join(f"{point[1]} {point[0]}" for point in line)
    return {**place, "pos_list": pos_list, "srs": "EPSG:4326", "dimension": "2"}


def _regulation_records(payload: etree._Element) -> list[tuple[Record | str, str]]:
    """Each ``trafficRegulationOrder`` as one record per (line of a place, validity period).

    DiaLog writes an order's ``trafficRegulation`` with a ``ConditionSet``: the periods
    (``ValidityCondition``, "or"), the places (``LocationCondition``, "or") and the vehicles it
    applies to (``VehicleCondition``); its own CIFS export makes one incident per place and period,
    and so does this reader (ids ``order:place:period``).
    """
    found: list[tuple[Record | str, str]] = []
    language = payload.get("lang")
    orders = [element for element in payload.iter() if local_name(element) == "trafficRegulationOrder"]
    for order in orders:
        where = f"line {order.sourceline}"
        ident = (order.get("id") or "").strip()
        regulation = child(order, "trafficRegulation")
        conditions = [element for element in (regulation.iter() if regulation is not None else [])
                      if local_name(element) == "conditions"]
        by_type: dict[str, list[etree._Element]] = {}
        for condition in conditions:
            by_type.setdefault(xsi_type(condition) or "", []).append(condition)
        validities = [child(condition, "validityByOrder") for condition in by_type.get("ValidityCondition", [])]
        # the order's own validity when the regulation names no period of its own
        periods: list[etree._Element | None] = [period for period in validities if period is not None] or [
            child(order, "validityByOrder")
        ]
        locations = [child(condition, "locationByOrder") for condition in by_type.get("LocationCondition", [])]
        locations += [child(condition, "implementedLocation") for condition in by_type.get("LocationCondition", [])]
        places = [_regulated_place(location) for location in locations if location is not None]
        vehicles = [condition for condition in by_type.get("VehicleCondition", [])
                    if child_text(condition, "negate") != "true"]
        common: Record = {
            "order": ident,
            "regulation": xsi_type(kind) if (kind := child(regulation, "typeOfRegulation")) is not None else None,
            "restriction": child_text(regulation, "typeOfRegulation", "accessRestrictionType"),
            "vehicle_conditions": len(vehicles),
            "description": text_value(child(order, "description"), language),
            "authority": text_value(child(order, "issuingAuthority"), language),
            "url": next((element.text.strip() for element in order.iter()
                         if local_name(element) == "publicUrl" and element.text), None),
        }
        if not places:
            found.append(("a traffic regulation order without a location", where))
        for place_number, place in enumerate(places):
            for period_number, period in enumerate(periods):
                record = {**common, "id": f"{ident}:{place_number}:{period_number}", "kind": "regulation",
                          "validity": _validity_record(period), "location": place}
                found.append(({key: value for key, value in record.items() if value not in (None, "")}, where))
    return found


# --------------------------------------------------------------------------- one record to an event


def _regulation_type(record: Mapping[str, Any]) -> tuple[str, str | None]:
    """A traffic regulation is read when it closes the road to all traffic: a ``noEntry`` access
    restriction without vehicle conditions (a weight, height or emission limit is no closure)."""
    regulation, restriction = record.get("regulation") or "(untyped)", record.get("restriction")
    if regulation != "AccessRestriction" or restriction != "noEntry":
        shown = f"{regulation} ({restriction})" if restriction else regulation
        raise ItemOutOfScope(f"a {shown} regulation is not a road closure (not read)")
    if record.get("vehicle_conditions"):
        raise ItemOutOfScope(f"a no-entry regulation for some vehicles only ({record['vehicle_conditions']} vehicle "
                             "condition(s)) is not a closure to all traffic (not read)")
    return "ROAD_CLOSED", None


def _waze_type(record: Mapping[str, Any]) -> tuple[str, str | None]:
    if record.get("kind") == "regulation":
        return _regulation_type(record)
    kind = record.get("type") or "(no xsi:type)"
    if kind == "RoadOrCarriagewayOrLaneManagement":
        management = record.get("management")
        if management in _CLOSURES:
            return "ROAD_CLOSED", _CAUSE_SUBTYPES.get(record.get("cause") or "")
        if management in _LANE_CLOSURES:
            return "HAZARD", "HAZARD_ON_ROAD_LANE_CLOSED"
        raise ItemOutOfScope(f"a {management} management is not a closure (not read)")
    if kind in ("ConstructionWorks", "MaintenanceWorks"):
        return "CONSTRUCTION", None
    if kind == "Accident":
        severity = record.get("severity")
        if severity in ("high", "highest") or "seriousInjuryOrFatalAccident" in record.get("accident_types", []):
            return "ACCIDENT", "ACCIDENT_MAJOR"
        return "ACCIDENT", "ACCIDENT_MINOR" if severity in ("low", "lowest") else None
    raise ItemOutOfScope(f"a {kind} record is not read (only closures, road works and accidents)")


def _numbers(text: str, field: str) -> list[float]:
    try:
        return [float(token) for token in text.split()]
    except ValueError:
        raise ItemRejected(f"{field}: {text[:60]!r} is not a list of numbers") from None


def _line(location: Mapping[str, Any]) -> list[tuple[float, float]]:
    """The ``gmlLineString`` as (lon, lat) pairs in WGS84."""
    dimension_text = location.get("dimension") or "2"
    dimension = int(dimension_text) if str(dimension_text).isdigit() else 0
    if dimension not in (2, 3):
        raise ItemRejected(f"gmlLineString: srsDimension {dimension_text!r} is not 2 or 3")
    numbers = _numbers(location.get("pos_list") or "", "posList")
    if len(numbers) % dimension:
        raise ItemRejected(f"posList: {len(numbers)} numbers, not a whole number of {dimension}-tuples")
    pairs = [(numbers[i], numbers[i + 1]) for i in range(0, len(numbers), dimension)]
    code = _srs_code(location.get("srs"))
    if not code or code in _LAT_LON_CRS:
        return [(lon, lat) for lat, lon in pairs]
    if code == "CRS84":
        return pairs
    if not code.isdigit():
        raise ItemRejected(f"gmlLineString: srsName {location.get('srs')!r} is not a coordinate system this reader "
                           "knows (EPSG codes, CRS84)")
    try:
        convert = transformer(f"EPSG:{code}", "EPSG:4326")
    except Exception as exc:  # pyproj's CRSError: an EPSG code it does not know
        raise ItemRejected(f"gmlLineString: srsName {location.get('srs')!r}: {exc}") from None
    # geo.crs transformers are always_xy: (easting, northing) in, (lon, lat) out
    return [convert.transform(x, y) for x, y in pairs]


def _point(values: Any, field: str) -> list[tuple[float, float]]:
    numbers = _numbers(" ".join(str(value) for value in values or []), field)
    if len(numbers) != 2:
        raise ItemRejected(f"{field}: expected a latitude and a longitude")
    lat, lon = numbers
    return [(lon, lat)]


def _coordinates(location: Mapping[str, Any] | None) -> list[tuple[float, float]]:
    if not location:
        raise ItemRejected("locationReference: missing")
    if location.get("pos_list"):
        return _line(location)
    if location.get("point"):
        return _point(location["point"], "pointCoordinates")
    if location.get("display_point"):
        return _point(location["display_point"], "coordinatesForDisplay")
    if location.get("unreadable_geometry"):
        raise ItemRejected(f"location: geoJsonGeometry {location['unreadable_geometry']!r} holds no line")
    if location.get("alert_c"):
        raise ItemRejected("location: AlertC location codes only, no coordinates (no location table is read)")
    raise ItemRejected(f"location: a {location.get('type') or 'location'} without coordinates")


def _direction(record: Mapping[str, Any], location: Mapping[str, Any]) -> tuple[str, bool]:
    """The CIFS direction and whether the line runs against it (``opposite``)."""
    for value in record.get("directions", []):
        if value in _BOTH:
            return "BOTH_DIRECTIONS", False
        if value in _ONE:
            return "ONE_DIRECTION", value == "opposite"
    affected = location.get("alert_c_direction")
    if affected in _BOTH:
        return "BOTH_DIRECTIONS", False
    if record.get("opposite_impact"):
        return "BOTH_DIRECTIONS", False
    return "ONE_DIRECTION", False


def _hhmm(value: str | None) -> str:
    """An ``xs:time`` as ``HH:MM`` (23:59:59 -> 23:59).

    An offset on a time of day is ignored: schedule hours are the city's local hours, and DiaLog
    writes ``08:00:00+00:00`` for the 08:00 its own CIFS feed gives as local.
    """
    if not value or len(value) < 5 or value[2] != ":":
        raise ItemRejected(f"recurringTimePeriodOfDay: {value!r} is not a time of day")
    return value[:5]


def _schedule(validity: Mapping[str, Any]) -> dict[str, str] | None:
    if validity.get("exceptions"):
        raise ItemRejected("validity: exception periods cannot be carried (a weekly schedule has none)")
    windows: dict[str, list[str]] = {}
    for period in validity.get("periods", []):
        hours = [f"{_hhmm(start)}-{_hhmm(end)}" for start, end in period.get("windows", [])]
        if period.get("bounded"):
            raise ItemRejected("validity: a validPeriod with its own start or end cannot be carried (a weekly "
                               "schedule has none)")
        if not hours:
            continue
        days = [str(day).lower() for day in period.get("days", [])] or ["everyday"]
        for day in days:
            if day not in SCHEDULE_DAYS:
                raise ItemRejected(f"validity: applicableDay {day!r} is not a day of the week")
            windows.setdefault(day, []).extend(hours)
    week = SCHEDULE_DAYS[1:]
    if "everyday" not in windows and all(windows.get(day) == windows.get(week[0]) for day in week) and windows:
        return {"everyday": ",".join(windows[week[0]])}  # the seven days listed one by one, as DiaLog does
    return {day: ",".join(windows[day]) for day in SCHEDULE_DAYS if day in windows} or None


def _lanes(location: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    count_text, closed = location.get("original_lanes"), location.get("closed_lanes")
    if not closed or not count_text or not str(count_text).isdigit():
        return None
    count = int(count_text)
    numbers = {int(number) for number in closed if str(number).isdigit()}
    # the inverse of feeds.datex2: DATEX II lane n of count (from the verge) is CIFS lane count - n (from the left)
    return [{"order": order, "status": "CLOSED" if count - order in numbers else "OPEN"} for order in range(count)]


def datex2_item_to_event(item: FeedItem, namespace: str, zone: tzinfo) -> Event:
    """Convert one ``situationRecord`` into a city event through :func:`feeds.city.city_event`.

    Raises
    ------
    ItemRejected
        With the reason: a record type with no Waze type, no coordinates (AlertC only), no road
        name or number, a validity that is not a weekly schedule, what ``city_event`` refuses.
    """
    record = item.record
    try:
        kind, subtype = _waze_type(record)
        location = record.get("location") or {}
        coordinates = _coordinates(location)
        # a regulation applies to the road, both ways (as DiaLog's own CIFS export says)
        regulation = record.get("kind") == "regulation"
        direction, reversed_line = ("BOTH_DIRECTIONS", False) if regulation else _direction(record, location)
        if reversed_line:
            coordinates.reverse()
        street = location.get("road_name") or location.get("road_number")
        if regulation and not street:  # DiaLog's own CIFS names such a place by its description
            street = location.get("location_description")
        if not street:
            raise ItemRejected("location: no roadName or roadNumber (a city event needs the street)")
        validity = record.get("validity") or {}
        attributes: dict[str, Any] = (
            {"datex2_regulation_order": record.get("order")} if regulation
            else {"datex2_record_type": record.get("type")}
        )
        for field, key in (("created", CREATED_KEY), ("updated", UPDATED_KEY)):
            when = parse_time(record.get(field), f"situationRecord {field}", zone)
            if when is not None:
                attributes[key] = to_millis(when)
        if record.get("version"):
            attributes["datex2_version"] = record["version"]
        if location.get("road_number") and location["road_number"] != street:
            attributes[ROAD_NUMBER_KEY] = location["road_number"]
        if location.get("location_description"):
            attributes["location_description"] = location["location_description"]
        if record.get("description_lang"):  # republished in it, not in the city's language
            attributes[DESCRIPTION_LANGUAGE_KEY] = record["description_lang"]
        source = record.get("source") or {}
        reference = None
        if regulation and record.get("authority"):
            reference = {"reference": record["authority"], "url": record.get("url")}
        elif source.get("reference"):
            reference = {"reference": source["reference"], "name": source.get("name"), "url": record.get("url")}
        roadside = roadside_of(location.get("position_on_carriageway"))
        restricted = record.get("lanes_restricted")
        lane_impact = (
            {"total_closed_lanes": int(restricted), "roadside": roadside}
            if roadside and restricted and str(restricted).isdigit() else None
        )
        return city_event(
            namespace,
            item.source_id,
            type=kind,
            subtype=subtype,
            street=street,
            coordinates=coordinates,
            point_device=True,  # a point location of road works is one on purpose; a closure still needs a line
            zone=zone,
            direction=direction,
            start=validity.get("start"),
            end=validity.get("end"),
            description=record.get("description"),
            schedule=_schedule(validity),
            lanes=_lanes(location),
            lane_impact=lane_impact,
            reference={key: value for key, value in reference.items() if value} if reference else None,
            attributes=attributes,
            digest=item.digest,
        )
    except ItemRejected as exc:
        exc.source_id, exc.kind = item.source_id, item.kind.value
        raise
    except (TypeError, ValueError) as exc:
        reason = first_problem(exc) if isinstance(exc, ValueError) else str(exc)
        raise ItemRejected(reason, source_id=item.source_id, kind=item.kind.value) from exc
