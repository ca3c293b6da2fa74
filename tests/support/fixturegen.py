"""Seeded generator of demo Waze partner-feed snapshots placed on a real small OSM extract.

The output is a series of consecutive ``format=1`` (JSON) snapshots, two minutes apart, plus the
GeoRSS (``format=2``) rendering of the first one. Every record is synthetic: alert and jam ids come
from the seeded RNG, streets are the names of the OSM ways the records are placed on, and no uuid,
street, coordinate or text of any real Waze payload is used. Field names, value types and the
quirks of real payloads follow ``shared/reference/formats.md`` sections 1.2 to 1.8.

The map data is OpenStreetMap (ODbL 1.0), so the generated files are offered under ODbL as well
(see ``fixtures/osm/LICENSE.md``).

The generator is fully deterministic: one ``random.Random(seed)``, a fixed base epoch, no wall
clock and a fixed key order, so a test can regenerate the files and compare them byte for byte::

    python -m tests.support.fixturegen [--out fixtures/waze] [--osm fixtures/osm/west-oakland.osm.bz2]
                                       [--seed 2026] [--polls 12]

Run it from the checkout: it is a test kit, not part of the installed packages, and the default
paths are relative to the current directory.

Only the standard library and lxml are used, so the module imports nothing else of the project.
"""

from __future__ import annotations

import argparse
import bz2
import itertools
import json
import math
import random
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from lxml import etree

__all__ = [
    "BASE_EPOCH_MILLIS",
    "OsmExtract",
    "Way",
    "city_closures_csv",
    "generate",
    "load_osm",
    "main",
    "write",
]

#: First snapshot's ``startTimeMillis``: 2026-03-02T15:00:00Z (a Monday).
BASE_EPOCH_MILLIS = int(datetime(2026, 3, 2, 15, 0, 0, tzinfo=UTC).timestamp()) * 1000
POLL_INTERVAL_MILLIS = 120_000
WINDOW_MILLIS = 60_000
CITY = "Oakland, CA"
COUNTRY = "US"
DEFAULT_OUT = Path("fixtures/waze")
DEFAULT_OSM = Path("fixtures/osm/west-oakland.osm.bz2")
DEFAULT_SEED = 2026
DEFAULT_POLLS = 12
GEORSS_NAME = "poll-georss-sample.xml"
GEORSS_NS = "http://www.georss.org/georss"
LINQMAP_NS = "http://www.linqmap.com"
DEMO_NOTE_KEY = "x_demo_note"
DEMO_NOTE = "synthetic record (traffic-exchange fixturegen); unknown keys must be ignored"

ALERTS_MIN, ALERTS_MAX = 40, 80
JAMS_MIN, JAMS_MAX = 20, 40
IRREGULARITIES_MIN, IRREGULARITIES_MAX = 2, 4

_EARTH_RADIUS_M = 6_371_008.8
_DRIVABLE = frozenset(
    {
        "motorway",
        "motorway_link",
        "trunk",
        "trunk_link",
        "primary",
        "primary_link",
        "secondary",
        "secondary_link",
        "tertiary",
        "tertiary_link",
        "unclassified",
        "residential",
        "living_street",
        "service",
    }
)
# OSM highway -> Waze roadType (formats.md section 1.7).
_ROAD_TYPE = {
    "motorway": 3,
    "motorway_link": 4,
    "trunk": 6,
    "trunk_link": 4,
    "primary": 6,
    "primary_link": 4,
    "secondary": 2,
    "secondary_link": 4,
    "tertiary": 2,
    "tertiary_link": 4,
    "unclassified": 1,
    "residential": 1,
    "living_street": 1,
    "service": 21,
}
_HIGHWAY_CLASSES = frozenset({"motorway", "trunk", "primary", "secondary"})
# Free-flow speed (km/h) used to derive a jam's delay from its speed.
_FREE_FLOW_KMH = {"secondary": 40.0, "tertiary": 40.0, "primary": 50.0, "service": 20.0}
_DEFAULT_FREE_FLOW_KMH = 35.0
# Jam level -> speed range in km/h (level 5 is a blocked road: speed 0, delay -1).
_LEVEL_SPEED_KMH = {1: (20.0, 30.0), 2: (12.0, 20.0), 3: (6.0, 12.0), 4: (1.5, 6.0)}

# (type, subtypes, weight). "" is NO_SUBTYPE as real payloads send it (formats.md section 1.3/1.6).
_ALERT_KINDS: tuple[tuple[str, tuple[str, ...], float], ...] = (
    (
        "JAM",
        (
            "JAM_MODERATE_TRAFFIC",
            "JAM_HEAVY_TRAFFIC",
            "JAM_STAND_STILL_TRAFFIC",
            "JAM_LIGHT_TRAFFIC",
            "JAM_HEAVY_TRAFFIC",
            "",
        ),
        0.34,
    ),
    (
        "WEATHERHAZARD",
        (
            "HAZARD_ON_ROAD_POT_HOLE",
            "HAZARD_ON_ROAD_OBJECT",
            "HAZARD_ON_ROAD_CAR_STOPPED",
            "HAZARD_ON_SHOULDER_CAR_STOPPED",
            "HAZARD_ON_ROAD_TRAFFIC_LIGHT_FAULT",
            "HAZARD_ON_ROAD_CONSTRUCTION",
            "HAZARD_ON_ROAD_LANE_CLOSED",
            "HAZARD_ON_ROAD",
            "HAZARD_WEATHER_FOG",
            "HAZARD_WEATHER_HEAVY_RAIN",
        ),
        0.25,
    ),
    ("ACCIDENT", ("ACCIDENT_MINOR", "ACCIDENT_MAJOR", "ACCIDENT_MINOR", ""), 0.11),
    ("POLICE", ("POLICE_VISIBLE", "POLICE_HIDING", ""), 0.12),
    ("ROAD_CLOSED", ("ROAD_CLOSED_EVENT", "ROAD_CLOSED_HAZARD", "ROAD_CLOSED_CONSTRUCTION"), 0.05),
    ("CONSTRUCTION", ("",), 0.07),
    ("MISC", ("",), 0.06),
)
_DESCRIPTIONS = {
    "JAM": ("Synthetic demo: queue back from the signal", "Synthetic demo: slow behind a delivery truck"),
    "WEATHERHAZARD": ("Synthetic demo: debris in the right lane", "Synthetic demo: signal flashing red"),
    "ACCIDENT": ("Synthetic demo: two cars, no injuries", "Synthetic demo: fender bender at the corner"),
    "POLICE": ("Synthetic demo: patrol car parked at the curb",),
    "ROAD_CLOSED": ("Synthetic demo: street closed for an event",),
    "CONSTRUCTION": ("Synthetic demo: crew working at the curb",),
    "MISC": ("Synthetic demo: something on the sidewalk",),
}
_CLOSURE_DESCRIPTION = "Synthetic demo: street closed for utility work"
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

LatLon = tuple[float, float]
Record = dict[str, object]


# --------------------------------------------------------------------------------------------- OSM


@dataclass(frozen=True)
class Way:
    """A drivable OSM way with the coordinates of its nodes, in way order, as (lat, lon)."""

    osm_id: int
    highway: str
    name: str | None
    oneway: bool
    node_ids: tuple[int, ...]
    points: tuple[LatLon, ...]

    def length_m(self) -> float:
        return sum(_distance_m(a, b) for a, b in itertools.pairwise(self.points))


@dataclass(frozen=True)
class OsmExtract:
    """Nodes and drivable ways of an OSM XML extract, and the bbox of all its nodes."""

    nodes: dict[int, LatLon]
    ways: tuple[Way, ...]
    bbox: tuple[float, float, float, float]  # min_lat, min_lon, max_lat, max_lon

    def names_at(self, node_id: int) -> list[str]:
        return sorted({w.name for w in self.ways if w.name and node_id in w.node_ids})


def load_osm(osm_path: Path) -> OsmExtract:
    """Read nodes and highway ways from an OSM XML file (``.osm`` or ``.osm.bz2``) with iterparse."""
    nodes: dict[int, LatLon] = {}
    raw_ways: list[tuple[int, dict[str, str], list[int]]] = []
    opener = bz2.open if osm_path.suffix == ".bz2" else open
    with opener(osm_path, "rb") as stream:
        for _event, element in etree.iterparse(
            stream, events=("end",), tag=("node", "way"), resolve_entities=False, no_network=True
        ):
            if element.tag == "node":
                lat, lon = element.get("lat"), element.get("lon")
                if lat is not None and lon is not None:
                    nodes[int(element.get("id", "0"))] = (float(lat), float(lon))
            else:
                tags = {t.get("k", ""): t.get("v", "") for t in element.iterfind("tag")}
                refs = [int(nd.get("ref", "0")) for nd in element.iterfind("nd")]
                if tags.get("highway") in _DRIVABLE:
                    raw_ways.append((int(element.get("id", "0")), tags, refs))
            element.clear()
    ways: list[Way] = []
    for osm_id, tags, refs in raw_ways:
        present = [r for r in refs if r in nodes]
        if len(present) < 2:
            continue
        ways.append(
            Way(
                osm_id=osm_id,
                highway=tags["highway"],
                name=tags.get("name") or None,
                oneway=tags.get("oneway") in {"yes", "true", "1"},
                node_ids=tuple(present),
                points=tuple(nodes[r] for r in present),
            )
        )
    if not ways:
        raise ValueError(f"{osm_path}: no drivable highway ways with at least two nodes")
    lats = [p[0] for p in nodes.values()]
    lons = [p[1] for p in nodes.values()]
    return OsmExtract(nodes=nodes, ways=tuple(ways), bbox=(min(lats), min(lons), max(lats), max(lons)))


# ---------------------------------------------------------------------------------------- geometry


def _distance_m(a: LatLon, b: LatLon) -> float:
    mean_lat = math.radians((a[0] + b[0]) / 2)
    dx = math.radians(b[1] - a[1]) * math.cos(mean_lat)
    dy = math.radians(b[0] - a[0])
    return math.hypot(dx, dy) * _EARTH_RADIUS_M


def _bearing_deg(a: LatLon, b: LatLon) -> float:
    mean_lat = math.radians((a[0] + b[0]) / 2)
    dx = math.radians(b[1] - a[1]) * math.cos(mean_lat)
    dy = math.radians(b[0] - a[0])
    return math.degrees(math.atan2(dx, dy)) % 360.0


def _line_length_m(points: Sequence[LatLon]) -> int:
    return round(sum(_distance_m(a, b) for a, b in itertools.pairwise(points)))


def _xy(point: LatLon) -> Record:
    return {"x": round(point[1], 6), "y": round(point[0], 6)}


# --------------------------------------------------------------------------------------- time text


def _millis_dt(millis: int) -> datetime:
    return datetime.fromtimestamp(millis // 1000, tz=UTC).replace(microsecond=(millis % 1000) * 1000)


def _feed_time(millis: int) -> str:
    """``YYYY-MM-DD HH:MM:SS:mmm`` (colon before the milliseconds), UTC."""
    return _millis_dt(millis).strftime("%Y-%m-%d %H:%M:%S") + f":{millis % 1000:03d}"


def _java_date(millis: int) -> str:
    """``Mon Mar 02 15:01:19 +0000 2026`` (locale independent)."""
    dt = _millis_dt(millis)
    return (
        f"{_WEEKDAYS[dt.weekday()]} {_MONTHS[dt.month - 1]} {dt.day:02d} "
        f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d} +0000 {dt.year}"
    )


def _rfc822(millis: int) -> str:
    return format_datetime(_millis_dt(millis).replace(microsecond=0), usegmt=True)


# ----------------------------------------------------------------------------------------- records


@dataclass
class _Alert:
    uuid: str
    type: str
    subtype: str | None  # None: key absent
    street: str | None  # None: key absent
    city: str | None
    road_type: int | None
    magvar: int
    reliability: int
    confidence: int
    report_rating: int
    n_thumbs_up: int
    report_description: str | None
    by_municipality: str | None  # the string "false"/"False" as real payloads send it
    point: LatLon
    pub_millis: int
    demo_note: bool = False

    def to_json(self) -> Record:
        record: Record = {"uuid": self.uuid, "type": self.type}
        if self.subtype is not None:
            record["subtype"] = self.subtype
        if self.street is not None:
            record["street"] = self.street
        if self.city is not None:
            record["city"] = self.city
        record["country"] = COUNTRY
        if self.road_type is not None:
            record["roadType"] = self.road_type
        record["magvar"] = self.magvar
        record["reliability"] = self.reliability
        record["confidence"] = self.confidence
        record["reportRating"] = self.report_rating
        record["nThumbsUp"] = self.n_thumbs_up
        if self.by_municipality is not None:
            record["reportByMunicipalityUser"] = self.by_municipality
        if self.report_description is not None:
            record["reportDescription"] = self.report_description
        record["location"] = _xy(self.point)
        record["pubMillis"] = self.pub_millis
        if self.demo_note:
            record[DEMO_NOTE_KEY] = DEMO_NOTE
        return record


@dataclass
class _Jam:
    ident: int
    way: Way
    start: int  # index of the first way node covered
    end: int  # index of the last way node covered (> start)
    reverse: bool
    level: int
    speed_kmh: float
    jam_type: str
    street: str | None  # None: key absent
    end_node: str | None
    pub_millis: int
    blocking_alert_uuid: str | None = None
    demo_note: bool = False

    def points(self) -> list[LatLon]:
        pts = list(self.way.points[self.start : self.end + 1])
        return pts[::-1] if self.reverse else pts

    def last_node_id(self) -> int:
        return self.way.node_ids[self.start if self.reverse else self.end]

    def length_m(self) -> int:
        return _line_length_m(self.points())

    def delay_s(self) -> int:
        if self.level == 5:
            return -1
        length = self.length_m()
        free_flow = _FREE_FLOW_KMH.get(self.way.highway, _DEFAULT_FREE_FLOW_KMH)
        return max(1, round(length / (self.speed_kmh / 3.6) - length / (free_flow / 3.6)))

    def to_json(self) -> Record:
        line = self.points()
        record: Record = {"uuid": self.ident, "id": self.ident, "type": self.jam_type, "level": self.level}
        if self.level == 5:
            record["speed"] = 0
            record["speedKMH"] = 0
        else:
            record["speed"] = self.speed_kmh / 3.6
            record["speedKMH"] = self.speed_kmh
        record["length"] = self.length_m()
        record["delay"] = self.delay_s()
        if self.street is not None:
            record["street"] = self.street
        record["city"] = CITY
        record["country"] = COUNTRY
        record["roadType"] = _ROAD_TYPE.get(self.way.highway, 1)
        record["turnType"] = "NONE"
        if self.end_node is not None:
            record["endNode"] = self.end_node
        if self.blocking_alert_uuid is not None:
            record["blockingAlertUuid"] = self.blocking_alert_uuid
        record["segments"] = [{} for _ in range(len(line) - 1)]
        record["line"] = [_xy(p) for p in line]
        record["pubMillis"] = self.pub_millis
        if self.demo_note:
            record[DEMO_NOTE_KEY] = DEMO_NOTE
        return record


@dataclass
class _Irregularity:
    ident: int
    way: Way
    reverse: bool
    irregularity_type: str
    speed_kmh: float
    regular_speed_kmh: float
    trend: int
    severity: int
    drivers_count: int
    alerts_count: int
    n_thumbs_up: int
    detection_millis: int
    update_millis: int
    end_node: str | None
    demo_note: bool = False

    def points(self) -> list[LatLon]:
        pts = list(self.way.points)
        return pts[::-1] if self.reverse else pts

    def to_json(self) -> Record:
        line = self.points()
        length = _line_length_m(line)
        seconds = max(1, round(length / (self.speed_kmh / 3.6)))
        regular_seconds = round(length / (self.regular_speed_kmh / 3.6))
        ratio = self.speed_kmh / self.regular_speed_kmh
        jam_level = 4 if ratio < 0.25 else 3 if ratio < 0.45 else 2 if ratio < 0.65 else 1
        record: Record = {
            "id": self.ident,
            "detectionDate": _java_date(self.detection_millis),
            "detectionDateMillis": self.detection_millis,
            "updateDate": _java_date(self.update_millis),
            "updateDateMillis": self.update_millis,
            "type": self.irregularity_type,
            "speed": round(length / seconds * 3.6, 2),
            "regularSpeed": round(self.regular_speed_kmh, 2),
            "delaySeconds": max(0, seconds - regular_seconds),
            "seconds": seconds,
            "length": length,
            "trend": self.trend,
            "severity": self.severity,
            "jamLevel": jam_level,
            "driversCount": self.drivers_count,
            "alertsCount": self.alerts_count,
            "highway": self.way.highway in _HIGHWAY_CLASSES,
        }
        if self.way.name:
            record["street"] = self.way.name
        record["city"] = CITY
        record["country"] = COUNTRY
        if self.end_node is not None:
            record["endNode"] = self.end_node
        record["nThumbsUp"] = self.n_thumbs_up
        record["nComments"] = 0
        record["nImages"] = 0
        record["alerts"] = []
        record["line"] = [_xy(p) for p in line]
        if self.demo_note:
            record[DEMO_NOTE_KEY] = DEMO_NOTE
        return record


# --------------------------------------------------------------------------------------- simulator


@dataclass
class _Scenario:
    """Ids a consumer test may want to look for (also listed in the generated README)."""

    closure_alert_uuid: str = ""
    blocking_jam_id: int = 0
    flicker_alert_uuid: str = ""
    flicker_poll: int | None = None
    counts: list[tuple[int, int, int]] = field(default_factory=list)
    alerts_gone: list[tuple[str, int]] = field(default_factory=list)  # (uuid, last poll seen)
    jams_gone: list[tuple[int, int]] = field(default_factory=list)


class _Simulator:
    def __init__(self, osm: OsmExtract, rng: random.Random) -> None:
        self.osm = osm
        self.rng = rng
        self.ways = list(osm.ways)
        self.way_weights = [max(w.length_m(), 1.0) for w in self.ways]
        self.used_ids: set[int] = set()
        self.used_uuids: set[str] = set()
        self.alerts: list[_Alert] = []
        self.jams: list[_Jam] = []
        self.irregularities: list[_Irregularity] = []
        self.protected_alerts: set[str] = set()
        self.protected_jams: set[int] = set()

    # ids --------------------------------------------------------------------------------------
    def new_uuid(self) -> str:
        while True:
            value = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            if value not in self.used_uuids:
                self.used_uuids.add(value)
                return value

    def new_int_id(self, digits: int) -> int:
        while True:
            value = self.rng.randint(10 ** (digits - 1), 10**digits - 1)
            if value not in self.used_ids:
                self.used_ids.add(value)
                return value

    # alerts -----------------------------------------------------------------------------------
    def _point_on(self, points: Sequence[LatLon]) -> tuple[LatLon, float]:
        """A point interpolated inside a random segment of a line, and the line's bearing there."""
        rng = self.rng
        segments = list(itertools.pairwise(points))
        weights = [max(_distance_m(a, b), 0.5) for a, b in segments]
        a, b = rng.choices(segments, weights=weights)[0]
        t = rng.uniform(0.15, 0.85)
        point = (a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]))
        return point, _bearing_deg(a, b)

    def _magvar(self, bearing: float) -> int:
        if self.rng.random() < 0.1:
            return 0
        return round(bearing + self.rng.gauss(0.0, 6.0)) % 360

    def make_alert(self, pub_millis: int, kind: str | None = None) -> _Alert:
        rng = self.rng
        if kind is None:
            kind = rng.choices([k[0] for k in _ALERT_KINDS], weights=[k[2] for k in _ALERT_KINDS])[0]
        subtypes = next(k[1] for k in _ALERT_KINDS if k[0] == kind)
        subtype: str | None = rng.choice(subtypes)
        if kind == "MISC" and rng.random() < 0.3:
            subtype = None  # subtype key absent, as in some real payloads
        free_jams = [j for j in self.jams if j.blocking_alert_uuid is None]
        if kind == "JAM" and free_jams and rng.random() < 0.6:
            jam = rng.choice(free_jams)
            way = jam.way
            point, bearing = self._point_on(jam.points())
        else:
            way = rng.choices(self.ways, weights=self.way_weights)[0]
            pts = list(way.points)
            if not way.oneway and rng.random() < 0.5:
                pts.reverse()
            point, bearing = self._point_on(pts)
        street: str | None = way.name
        city: str | None = CITY
        roll = rng.random()
        if roll < 0.05:
            street = None
        elif roll < 0.08:
            street, city = None, None
        road_type: int | None = _ROAD_TYPE.get(way.highway, 1) if rng.random() > 0.05 else None
        rating = rng.choices([0, 1, 2, 3, 4, 5], weights=[20, 11, 26, 26, 11, 6])[0]
        municipality_roll = rng.random()
        by_municipality: str | None = None
        if municipality_roll < 0.22:
            by_municipality = "false"
        elif municipality_roll < 0.24:
            by_municipality = "False"
        description = rng.choice(_DESCRIPTIONS[kind]) if rng.random() < 0.08 else None
        return _Alert(
            uuid=self.new_uuid(),
            type=kind,
            subtype=subtype,
            street=street,
            city=city,
            road_type=road_type,
            magvar=self._magvar(bearing),
            reliability=rng.choices([5, 6, 7, 8, 9, 10], weights=[45, 18, 9, 6, 4, 18])[0],
            confidence=rng.choices([0, 1, 2, 3, 4, 5], weights=[60, 14, 8, 5, 3, 10])[0],
            report_rating=rating,
            n_thumbs_up=rng.choices([0, 1, 2, 3], weights=[70, 18, 8, 4])[0],
            report_description=description,
            by_municipality=by_municipality,
            point=point,
            pub_millis=pub_millis,
            demo_note=rng.random() < 0.04,
        )

    def change_alert(self, alert: _Alert) -> None:
        alert.n_thumbs_up += 1
        if self.rng.random() < 0.5:
            alert.confidence = min(10, alert.confidence + 1)
        if self.rng.random() < 0.5:
            alert.reliability = min(10, alert.reliability + 1)

    # jams -------------------------------------------------------------------------------------
    def _free_slots(self) -> list[tuple[Way, bool]]:
        taken = {(j.way.osm_id, j.reverse) for j in self.jams}
        slots: list[tuple[Way, bool]] = []
        for way in self.ways:
            for reverse in (False, True) if not way.oneway else (False,):
                if (way.osm_id, reverse) not in taken:
                    slots.append((way, reverse))
        return slots

    def _end_node(self, jam: _Jam) -> str | None:
        names = [n for n in self.osm.names_at(jam.last_node_id()) if n != jam.way.name]
        return names[0] if names else None

    def _jam_speed(self, level: int) -> float:
        low, high = _LEVEL_SPEED_KMH[level]
        return round(self.rng.uniform(low, high), 2)

    def make_jam(self, pub_millis: int) -> _Jam | None:
        rng = self.rng
        slots = self._free_slots()
        if not slots:
            return None
        way, reverse = rng.choice(slots)
        n_segments = len(way.points) - 1
        span = min(n_segments, rng.randint(1, 6))
        start = rng.randint(0, n_segments - span)
        level = rng.choices([1, 2, 3, 4], weights=[5, 25, 45, 25])[0]
        street: str | None = way.name or ""
        if way.name and rng.random() < 0.04:
            street = None
        jam = _Jam(
            ident=self.new_int_id(9),
            way=way,
            start=start,
            end=start + span,
            reverse=reverse,
            level=level,
            speed_kmh=self._jam_speed(level),
            jam_type=rng.choices(["NONE", "Small", "Medium", "Large"], weights=[80, 8, 7, 5])[0],
            street=street,
            end_node=None,
            pub_millis=pub_millis,
            demo_note=rng.random() < 0.03,
        )
        jam.end_node = self._end_node(jam)
        return jam

    def change_jam(self, jam: _Jam) -> None:
        rng = self.rng
        n_segments = len(jam.way.points) - 1
        if rng.random() < 0.35 and n_segments > 1:
            grow = (["start-"] if jam.start > 0 else []) + (["end+"] if jam.end < n_segments else [])
            shrink = ["start+", "end-"] if jam.end - jam.start > 1 else []
            options = grow + shrink
            if options:
                move = rng.choice(options)
                if move == "start-":
                    jam.start -= 1
                elif move == "end+":
                    jam.end += 1
                elif move == "start+":
                    jam.start += 1
                else:
                    jam.end -= 1
                jam.end_node = self._end_node(jam)
                return
        if rng.random() < 0.5:
            jam.level = max(1, min(4, jam.level + rng.choice((-1, 1))))
        old = jam.speed_kmh
        while jam.speed_kmh == old:
            jam.speed_kmh = self._jam_speed(jam.level)

    # irregularities ---------------------------------------------------------------------------
    def make_irregularity(self, now_millis: int, detection_millis: int) -> _Irregularity | None:
        rng = self.rng
        taken = {i.way.osm_id for i in self.irregularities}
        candidates = [w for w in self.ways if w.osm_id not in taken and len(w.points) >= 5 and w.name]
        if not candidates:
            return None
        way = rng.choice(candidates)
        regular = round(rng.uniform(22.0, 38.0), 2)
        speed = round(regular * rng.uniform(0.2, 0.6), 2)
        irregularity = _Irregularity(
            ident=self.new_int_id(8),
            way=way,
            reverse=not way.oneway and rng.random() < 0.5,
            irregularity_type=rng.choice(["Small", "Medium", "Large"]),
            speed_kmh=speed,
            regular_speed_kmh=regular,
            trend=rng.choice((-1, 0, 0, 1)),
            severity=rng.choices([0, 1, 2, 3, 4], weights=[15, 55, 15, 10, 5])[0],
            drivers_count=rng.randint(12, 160),
            alerts_count=rng.choice((0, 0, 1)),
            n_thumbs_up=rng.randint(0, 3),
            detection_millis=detection_millis,
            update_millis=now_millis - rng.randint(1_000, 50_000),
            end_node=None,
        )
        end_id = way.node_ids[0] if irregularity.reverse else way.node_ids[-1]
        names = [n for n in self.osm.names_at(end_id) if n != way.name]
        irregularity.end_node = names[0] if names else None
        return irregularity

    def change_irregularity(self, irr: _Irregularity, now_millis: int) -> None:
        rng = self.rng
        speed = irr.speed_kmh * rng.uniform(0.85, 1.15)
        irr.speed_kmh = round(max(3.0, min(irr.regular_speed_kmh * 0.7, speed)), 2)
        irr.trend = rng.choice((-1, 0, 1))
        irr.drivers_count = max(5, irr.drivers_count + rng.randint(-8, 12))
        irr.update_millis = now_millis - rng.randint(1_000, 50_000)

    # setup ------------------------------------------------------------------------------------
    def setup_closure(self, base: int, scenario: _Scenario) -> None:
        """A weeks-old ROAD_CLOSED_CONSTRUCTION alert and its level-5 echo jam on the same way."""
        rng = self.rng
        candidates = [w for w in self.ways if w.name and len(w.points) >= 4 and w.highway != "service"]
        way = rng.choice(candidates or self.ways)
        n_segments = len(way.points) - 1
        span = min(n_segments, 2)
        start = rng.randint(0, n_segments - span)
        reverse = not way.oneway and rng.random() < 0.5
        jam = _Jam(
            ident=self.new_int_id(9),
            way=way,
            start=start,
            end=start + span,
            reverse=reverse,
            level=5,
            speed_kmh=0.0,
            jam_type="NONE",
            street=way.name,
            end_node=None,
            pub_millis=base - rng.randint(3, 30) * 60_000 - rng.randint(0, 59_999),
        )
        jam.end_node = self._end_node(jam)
        line = jam.points()
        a, b = line[0], line[1]
        point = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
        alert = _Alert(
            uuid=self.new_uuid(),
            type="ROAD_CLOSED",
            subtype="ROAD_CLOSED_CONSTRUCTION",
            street=way.name,
            city=CITY,
            road_type=_ROAD_TYPE.get(way.highway, 1),
            magvar=round(_bearing_deg(a, b)) % 360,
            reliability=10,
            confidence=rng.randint(0, 2),
            report_rating=rng.randint(3, 5),
            n_thumbs_up=rng.randint(0, 2),
            report_description=_CLOSURE_DESCRIPTION,
            by_municipality="false",
            point=point,
            pub_millis=base - (23 * 86_400_000 + rng.randint(0, 86_399_999)),
        )
        jam.blocking_alert_uuid = alert.uuid
        self.alerts.append(alert)
        self.jams.append(jam)
        self.protected_alerts.add(alert.uuid)
        self.protected_jams.add(jam.ident)
        scenario.closure_alert_uuid = alert.uuid
        scenario.blocking_jam_id = jam.ident


def _snapshot(sim: _Simulator, start_millis: int, hidden_alerts: set[str]) -> Record:
    end_millis = start_millis + WINDOW_MILLIS
    return {
        "alerts": [a.to_json() for a in sim.alerts if a.uuid not in hidden_alerts],
        "jams": [j.to_json() for j in sim.jams],
        "irregularities": [i.to_json() for i in sim.irregularities],
        "startTimeMillis": start_millis,
        "endTimeMillis": end_millis,
        "startTime": _feed_time(start_millis),
        "endTime": _feed_time(end_millis),
    }


def _simulate(osm: OsmExtract, seed: int, polls: int) -> tuple[list[Record], _Scenario]:
    if polls < 1:
        raise ValueError("polls must be at least 1")
    rng = random.Random(seed)
    sim = _Simulator(osm, rng)
    scenario = _Scenario()
    base = BASE_EPOCH_MILLIS

    # Poll 1: the closure pair, then jams (so JAM alerts can sit on them), then alerts.
    sim.setup_closure(base, scenario)
    for _ in range(rng.randint(26, 32)):
        jam = sim.make_jam(base - rng.randint(60_000, 45 * 60_000))
        if jam is not None:
            sim.jams.append(jam)
    kinds = [k[0] for k in _ALERT_KINDS]
    for kind in kinds:  # every type at least once in the first poll
        sim.alerts.append(sim.make_alert(base - rng.randint(60_000, 3 * 3_600_000), kind))
    for _ in range(rng.randint(54, 62) - len(sim.alerts)):
        sim.alerts.append(sim.make_alert(base - rng.randint(60_000, 3 * 3_600_000)))
    _force_quirks(sim)
    for _ in range(3):
        irr = sim.make_irregularity(base, base - rng.randint(10 * 60_000, 2 * 3_600_000))
        if irr is not None:
            sim.irregularities.append(irr)
    # The irregularity with an unknown key, so each record kind has one.
    if sim.irregularities:
        sim.irregularities[-1].demo_note = True

    # One alert from poll 1 vanishes for a single poll and comes back unchanged.
    if polls >= 3:
        candidates = [a for a in sim.alerts if a.uuid not in sim.protected_alerts and a.type != "ROAD_CLOSED"]
        flicker = rng.choice(candidates)
        sim.protected_alerts.add(flicker.uuid)
        scenario.flicker_alert_uuid = flicker.uuid
        scenario.flicker_poll = min(6, polls - 1)

    snapshots: list[Record] = []
    for poll in range(1, polls + 1):
        start = base + (poll - 1) * POLL_INTERVAL_MILLIS
        if poll > 1:
            _evolve(sim, scenario, poll, start)
        hidden = {scenario.flicker_alert_uuid} if poll == scenario.flicker_poll else set()
        snapshots.append(_snapshot(sim, start, hidden))
        n_alerts = sum(1 for a in sim.alerts if a.uuid not in hidden)
        scenario.counts.append((n_alerts, len(sim.jams), len(sim.irregularities)))
    return snapshots, scenario


def _force_quirks(sim: _Simulator) -> None:
    """Make sure poll 1 shows each rare quirk at least once, whatever the random draws gave."""
    pool = [a for a in sim.alerts if a.uuid not in sim.protected_alerts]
    bare, capital = sim.rng.sample(pool, 2)
    bare.street, bare.city, bare.road_type = None, None, None  # an alert with no names at all
    capital.by_municipality = "False"
    for kind, subtype in (("JAM", ""), ("ACCIDENT", ""), ("MISC", None)):
        alert = next(a for a in pool if a.type == kind)
        alert.subtype = subtype


def _evolve(sim: _Simulator, scenario: _Scenario, poll: int, start: int) -> None:
    """Advance the state from poll ``poll - 1`` to ``poll``."""
    rng = sim.rng
    flicker = scenario.flicker_alert_uuid

    # Changes: 10-20 % of the items that persist (never the protected closure pair or the flicker).
    alert_pool = [a for a in sim.alerts if a.uuid not in sim.protected_alerts]
    jam_pool = [j for j in sim.jams if j.ident not in sim.protected_jams]
    for alert in rng.sample(alert_pool, max(1, round(len(alert_pool) * rng.uniform(0.10, 0.20)))):
        sim.change_alert(alert)
    for jam in rng.sample(jam_pool, max(1, round(len(jam_pool) * rng.uniform(0.10, 0.20)))):
        sim.change_jam(jam)
    for irr in sim.irregularities:
        if rng.random() < 0.6:
            sim.change_irregularity(irr, start)

    # Disappearances (at least one alert each poll).
    drop = rng.randint(1, 3)
    if len(sim.alerts) - drop <= ALERTS_MIN + 1:
        drop = 1
    removable = [a for a in sim.alerts if a.uuid not in sim.protected_alerts and a.uuid != flicker]
    for alert in rng.sample(removable, min(drop, len(removable))):
        sim.alerts.remove(alert)
        scenario.alerts_gone.append((alert.uuid, poll - 1))
    removable_jams = [j for j in sim.jams if j.ident not in sim.protected_jams]
    jam_drop = min(rng.randint(0, 2), max(0, len(sim.jams) - JAMS_MIN - 1))
    for jam in rng.sample(removable_jams, min(jam_drop, len(removable_jams))):
        sim.jams.remove(jam)
        scenario.jams_gone.append((jam.ident, poll - 1))
    if len(sim.irregularities) > IRREGULARITIES_MIN and rng.random() < 0.15:
        sim.irregularities.pop(rng.randrange(len(sim.irregularities)))

    # Appearances (at least one alert each poll), published since the previous snapshot or a
    # little earlier (Waze reports may lag).
    jam_add = min(rng.randint(0, 2), JAMS_MAX - len(sim.jams))
    for _ in range(jam_add):
        new_jam = sim.make_jam(start - rng.randint(0, POLL_INTERVAL_MILLIS))
        if new_jam is not None:
            sim.jams.append(new_jam)
    alert_add = max(1, min(rng.randint(1, 3), ALERTS_MAX - len(sim.alerts)))
    for _ in range(alert_add):
        sim.alerts.append(sim.make_alert(start - rng.randint(5_000, 10 * 60_000)))
    if len(sim.irregularities) < IRREGULARITIES_MAX and rng.random() < 0.15:
        new_irr = sim.make_irregularity(start, start - rng.randint(60_000, 20 * 60_000))
        if new_irr is not None:
            sim.irregularities.append(new_irr)


# ---------------------------------------------------------------------------------------- renderers


def _json_bytes(snapshot: Record) -> bytes:
    return (json.dumps(snapshot, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def _scalar_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return str(value)


def _lat_lon_text(points: Sequence[object]) -> str:
    parts: list[str] = []
    for point in points:
        if isinstance(point, dict):
            parts.append(f"{_scalar_text(point['y'])} {_scalar_text(point['x'])}")
    return " ".join(parts)


_GEORSS_COMMENT = (
    " SYNTHETIC demo data generated by tests/support/fixturegen.py (traffic-exchange); not a real Waze payload. "
    "No real sample of the GeoRSS/RSS 2.0 variant of the partner feed (format=2) was available, so this "
    "layout was built from shared/reference/formats.md section 1.8: title = record kind, linqmap:* "
    "elements for the scalar JSON fields, georss:point / georss:line in 'lat lon' order. "
    "It renders the same records as poll-001.json (nested lists such as segments and alerts are omitted). "
    "Map data (c) OpenStreetMap contributors, ODbL 1.0. "
)


def _georss_bytes(snapshot: Record) -> bytes:
    nsmap = {"georss": GEORSS_NS, "linqmap": LINQMAP_NS}
    rss = etree.Element("rss", nsmap=nsmap)
    rss.set("version", "2.0")
    channel = etree.SubElement(rss, "channel")
    etree.SubElement(channel, "title").text = "Waze partner feed, synthetic demo (West Oakland)"
    etree.SubElement(channel, "link").text = "https://example.org/traffic-exchange/demo-feed"
    description = etree.SubElement(channel, "description")
    description.text = (
        "Synthetic Waze partner-feed snapshot (GeoRSS, format=2 layout) placed on OpenStreetMap ways"
    )
    for key in ("startTimeMillis", "endTimeMillis"):
        etree.SubElement(channel, f"{{{LINQMAP_NS}}}{key}").text = _scalar_text(snapshot[key])
    kinds = (("alerts", "alert"), ("jams", "jam"), ("irregularities", "irregularity"))
    for key, title in kinds:
        records = snapshot[key]
        assert isinstance(records, list)
        for record in records:
            assert isinstance(record, dict)
            item = etree.SubElement(channel, "item")
            etree.SubElement(item, "title").text = title
            millis = record.get("pubMillis", record.get("detectionDateMillis"))
            assert isinstance(millis, int)
            etree.SubElement(item, "pubDate").text = _rfc822(millis)
            for name, value in record.items():
                if isinstance(value, list | dict):
                    continue
                etree.SubElement(item, f"{{{LINQMAP_NS}}}{name}").text = _scalar_text(value)
            if "location" in record:
                etree.SubElement(item, f"{{{GEORSS_NS}}}point").text = _lat_lon_text([record["location"]])
            line = record.get("line")
            if isinstance(line, list):
                etree.SubElement(item, f"{{{GEORSS_NS}}}line").text = _lat_lon_text(line)
    rss.addprevious(etree.Comment(_GEORSS_COMMENT))
    return etree.tostring(rss.getroottree(), xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _readme_bytes(osm_name: str, seed: int, polls: int, scenario: _Scenario) -> bytes:
    rows = "\n".join(
        f"| poll-{i:03d}.json | {a} | {j} | {r} |" for i, (a, j, r) in enumerate(scenario.counts, start=1)
    )
    gone_early = sum(1 for _uuid, last in scenario.alerts_gone if last <= polls - 3)
    jams_gone_early = sum(1 for _ident, last in scenario.jams_gone if last <= polls - 3)
    flicker = (
        f"* alert `{scenario.flicker_alert_uuid}` is missing from poll {scenario.flicker_poll} only\n"
        "  and comes back unchanged: a rule that ends events after 3 missing polls must not end it.\n"
        if scenario.flicker_poll is not None
        else ""
    )
    text = f"""# Synthetic Waze partner-feed fixtures (West Oakland)

Generated by `tests/support/fixturegen.py` (seed {seed}, {polls} polls) from the OpenStreetMap extract
`fixtures/osm/{osm_name}`. **Everything here is synthetic.** Nothing is copied from a real Waze
payload: uuids and ids come from the seeded RNG, streets are OSM way names, coordinates lie on the
OSM ways, and the free texts are written for this project.

* `poll-001.json` ... `poll-{polls:03d}.json`: consecutive partner-feed snapshots (`format=1`), two
  minutes apart, each covering a one-minute window from 2026-03-02 15:00:00 UTC on. Most records
  persist unchanged; 10-20 % change between polls; a few appear and a few disappear.
* `poll-georss-sample.xml`: poll-001 rendered in the GeoRSS/RSS 2.0 layout (`format=2`), built
  from `shared/reference/formats.md` section 1.8 because no real sample exists ("lat lon" order).

| file | alerts | jams | irregularities |
|---|---|---|---|
{rows}

Scenario anchors:

* ROAD_CLOSED_CONSTRUCTION alert `{scenario.closure_alert_uuid}` (published more than 23 days before poll 1)
  and its level-5 echo jam `{scenario.blocking_jam_id}` (`blockingAlertUuid`, delay -1, speed 0),
  present in every poll.
{flicker}* {gone_early} alerts and {jams_gone_early} jams disappear early enough to be missing from 3 or more
  consecutive polls.

Quirks of real payloads reproduced (formats.md sections 1.3-1.6): `WEATHERHAZARD` type, `subtype`
`""` or absent, `street` absent or `""`, `city`/`roadType` absent on a few alerts,
`reportByMunicipalityUser` as the string `"false"` (and `"False"`), `reportRating` 0, jam `uuid` ==
`id` as integers, jam `type` `NONE`/`Small`/`Medium`/`Large`, `speed` in m/s with `speedKMH`,
`segments` as empty objects, `turnType` `NONE`, an unknown `{DEMO_NOTE_KEY}` key on a few records,
non-ISO `startTime`/`endTime`.

Regenerate (byte-identical for the same seed; `tests/test_fixturegen.py` checks it):

    python -m tests.support.fixturegen --out fixtures/waze \\
        --osm fixtures/osm/{osm_name} --seed {seed} --polls {polls}

Licence: the records are placed on OpenStreetMap data, so these files are a Produced Work of that
database and are offered under the Open Database License 1.0 (ODbL),
(c) OpenStreetMap contributors; see `fixtures/osm/LICENSE.md`.
"""
    return text.encode("utf-8")


# ------------------------------------------------------------------------------------------ public


def generate(osm_path: Path, *, seed: int = DEFAULT_SEED, polls: int = DEFAULT_POLLS) -> dict[str, bytes]:
    """Build the fixture files: file name -> exact bytes (same inputs, same bytes)."""
    osm = load_osm(Path(osm_path))
    snapshots, scenario = _simulate(osm, seed, polls)
    files: dict[str, bytes] = {}
    for index, snapshot in enumerate(snapshots, start=1):
        files[f"poll-{index:03d}.json"] = _json_bytes(snapshot)
    files[GEORSS_NAME] = _georss_bytes(snapshots[0])
    files["README.md"] = _readme_bytes(Path(osm_path).name, seed, polls, scenario)
    return files


#: the city closures of the demo: (street, first junction, segments, type, subtype, direction, description)
_DEMO_CLOSURES = (
    ("9th Street", 0, 2, "ROAD_CLOSED", "ROAD_CLOSED_CONSTRUCTION", "BOTH_DIRECTIONS", "Utility work & paving"),
    ("Campbell Street", 0, 1, "ROAD_CLOSED", "ROAD_CLOSED_EVENT", "BOTH_DIRECTIONS", "Street fair"),
    ("7th Street", 1, 1, "CONSTRUCTION", "", "BOTH_DIRECTIONS", "Lane closed: sewer repair"),
)


def city_closures_csv(osm_path: Path) -> bytes:
    """The demo's city closures as the CSV a city might export: WKT lines along named OSM ways,
    junction to junction (a node of two or more ways, or a way's end), as Waze closes roads.

    Open-ended (no end time) so the demo publishes them whatever day it is run; the start is the
    demo's first poll.
    """
    osm = load_osm(osm_path)
    usage: dict[int, int] = {}
    for way in osm.ways:
        for node in way.node_ids:
            usage[node] = usage.get(node, 0) + 1
    rows = ["id,type,subtype,street,direction,start,description,wkt"]
    start = _millis_dt(BASE_EPOCH_MILLIS).isoformat().replace("+00:00", "Z")
    for number, (street, first, count, kind, subtype, direction, description) in enumerate(_DEMO_CLOSURES, 1):
        way = max((w for w in osm.ways if w.name == street), key=lambda w: (len(w.points), w.osm_id))
        last = len(way.node_ids) - 1
        junctions = [i for i, node in enumerate(way.node_ids) if i in (0, last) or usage[node] >= 2]
        begin = min(first, len(junctions) - 2)
        points = way.points[junctions[begin] : junctions[min(begin + count, len(junctions) - 1)] + 1]
        wkt = "LINESTRING (" + ", ".join(f"{lon:.6f} {lat:.6f}" for lat, lon in points) + ")"
        rows.append(f'demo-{number},{kind},{subtype},{street},{direction},{start},"{description}","{wkt}"')
    return ("\n".join(rows) + "\n").encode()


def write(out_dir: Path, files: dict[str, bytes]) -> None:
    """Write the files into ``out_dir``; stale ``poll-*.json`` files not in ``files`` are removed."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in sorted(out_dir.glob("poll-*.json")):
        if stale.name not in files:
            stale.unlink()
    for name, data in files.items():
        (out_dir / name).write_bytes(data)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.fixturegen",
        description="Write seeded synthetic Waze partner-feed snapshots placed on an OSM extract.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    parser.add_argument(
        "--osm", type=Path, default=DEFAULT_OSM, help="OSM XML or .osm.bz2 (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="RNG seed (default: %(default)s)")
    parser.add_argument(
        "--polls", type=int, default=DEFAULT_POLLS, help="snapshots to write (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    if args.polls < 1:
        parser.error("--polls must be at least 1")
    files = generate(args.osm, seed=args.seed, polls=args.polls)
    write(args.out, files)
    closures = args.out.parent / "city" / "closures.csv"
    closures.parent.mkdir(parents=True, exist_ok=True)
    closures.write_bytes(city_closures_csv(args.osm))
    counts = [json.loads(data) for name, data in files.items() if name.endswith(".json")]
    alerts = [len(c["alerts"]) for c in counts]
    jams = [len(c["jams"]) for c in counts]
    irregularities = [len(c["irregularities"]) for c in counts]
    print(
        f"fixturegen: wrote {len(files)} files ({sum(len(d) for d in files.values())} bytes) to {args.out}: "
        f"{len(counts)} polls, alerts {min(alerts)}-{max(alerts)}, jams {min(jams)}-{max(jams)}, "
        f"irregularities {min(irregularities)}-{max(irregularities)}, seed {args.seed}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
