"""The domain model: one ``Event`` for every crowd report and city closure.

This module imports nothing else of the project, so ``feeds/`` and ``adapters/`` may build on it.
Coordinates inside the program are WGS84 ``[lon, lat]`` (GeoJSON order); times are UTC-aware.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "CIFS_SUBTYPES",
    "SCHEDULE_DAYS",
    "Category",
    "CityDetails",
    "Event",
    "ItemError",
    "Kind",
    "Lane",
    "LaneImpact",
    "LineString",
    "Origin",
    "Point",
    "RoadMatch",
    "SourceRef",
    "Status",
    "event_id",
    "first_problem",
    "from_millis",
    "shown_text",
    "to_millis",
]


class Kind(StrEnum):
    """What an event is in its source's terms; part of the id because jam and irregularity ids collide."""

    ALERT = "alert"
    JAM = "jam"
    IRREGULARITY = "irregularity"
    CITY = "city"


class Origin(StrEnum):
    CROWD = "crowd"
    CITY = "city"


class Status(StrEnum):
    ACTIVE = "active"
    ENDED = "ended"
    CANCELLED = "cancelled"


class Category(StrEnum):
    ACCIDENT = "ACCIDENT"
    JAM = "JAM"
    HAZARD = "HAZARD"
    ROAD_CLOSED = "ROAD_CLOSED"
    CONSTRUCTION = "CONSTRUCTION"
    POLICE = "POLICE"
    MISC = "MISC"
    IRREGULARITY = "IRREGULARITY"


Position = tuple[float, float]


def _check_position(pos: Position) -> Position:
    lon, lat = pos
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise ValueError("coordinate is not a finite number")
    if not -180.0 <= lon <= 180.0:
        raise ValueError(f"longitude {lon} out of range [-180, 180]")
    if not -90.0 <= lat <= 90.0:
        raise ValueError(f"latitude {lat} out of range [-90, 90]")
    return pos


class Point(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    type: Literal["Point"] = "Point"
    coordinates: Position

    @field_validator("coordinates")
    @classmethod
    def _valid(cls, value: Position) -> Position:
        return _check_position(value)

    @property
    def positions(self) -> list[tuple[float, float]]:
        """(lon, lat) of each position, as plain floats: one for a point."""
        lon, lat = self.coordinates
        return [(float(lon), float(lat))]


class LineString(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    type: Literal["LineString"] = "LineString"
    coordinates: list[Position] = Field(min_length=2)

    @field_validator("coordinates")
    @classmethod
    def _valid(cls, value: list[Position]) -> list[Position]:
        for pos in value:
            _check_position(pos)
        return value

    @property
    def positions(self) -> list[tuple[float, float]]:
        """(lon, lat) of each position, as plain floats, in order."""
        return [(float(lon), float(lat)) for lon, lat in self.coordinates]


def event_id(namespace: str, kind: Kind | str, source_id: str) -> str:
    """The stable id of an event: ``namespace:kind:source_id``.

    The namespace is shared by sources that report the same upstream ids (several Waze managed
    areas all use ``waze``), so one Waze uuid seen by two overlapping sources is one event.

    >>> event_id("waze", Kind.JAM, "411005085")
    'waze:jam:411005085'
    """
    return f"{namespace}:{Kind(kind).value}:{source_id}"


def from_millis(ms: int | float) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, tz=UTC)


def to_millis(when: datetime) -> int:
    return round(when.timestamp() * 1000)


class RoadMatch(BaseModel):
    """An event's place on the road network: directed edges ``(way_id, from_node, to_node)`` in travel order."""

    model_config = ConfigDict(frozen=True)

    edges: list[tuple[int, int, int]] = Field(default_factory=list)
    distance_m: float | None = None
    confidence: float = 0.0
    offset_m: float | None = Field(default=None, description="along the first edge, for a point")
    covered_fraction: float | None = Field(default=None, description="for a line: share of it on the path")
    reason: str | None = Field(default=None, description="why it is unmatched, or only partly matched")
    note: str | None = Field(
        default=None, description="how placing it changed the line (reversed, routed, extended to whole segments)"
    )


#: CIFS schedule days in the XSD's sequence order
SCHEDULE_DAYS = ("everyday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
#: CIFS ``type`` -> the subtypes that belong to it (cifsv2.xsd enumeration, formats.md §2.4)
CIFS_SUBTYPES: dict[str, frozenset[str]] = {
    "ACCIDENT": frozenset({"ACCIDENT_MAJOR", "ACCIDENT_MINOR"}),
    "HAZARD": frozenset({
        "HAZARD_ON_ROAD", "HAZARD_ON_ROAD_CAR_STOPPED", "HAZARD_ON_ROAD_CONSTRUCTION", "HAZARD_ON_ROAD_ICE",
        "HAZARD_ON_ROAD_LANE_CLOSED", "HAZARD_ON_ROAD_OBJECT", "HAZARD_ON_ROAD_OIL", "HAZARD_ON_ROAD_POT_HOLE",
        "HAZARD_ON_ROAD_ROAD_KILL", "HAZARD_ON_ROAD_TRAFFIC_LIGHT_FAULT", "HAZARD_ON_SHOULDER",
        "HAZARD_ON_SHOULDER_ANIMALS", "HAZARD_ON_SHOULDER_CAR_STOPPED", "HAZARD_ON_SHOULDER_MISSING_SIGN",
        "HAZARD_WEATHER", "HAZARD_WEATHER_FLOOD", "HAZARD_WEATHER_FOG", "HAZARD_WEATHER_FREEZING_RAIN",
        "HAZARD_WEATHER_HAIL", "HAZARD_WEATHER_HEAT_WAVE", "HAZARD_WEATHER_HEAVY_RAIN", "HAZARD_WEATHER_HEAVY_SNOW",
        "HAZARD_WEATHER_HURRICANE", "HAZARD_WEATHER_MONSOON", "HAZARD_WEATHER_TORNADO",
    }),
    "JAM": frozenset({"JAM_HEAVY_TRAFFIC", "JAM_LIGHT_TRAFFIC", "JAM_MODERATE_TRAFFIC", "JAM_STAND_STILL_TRAFFIC"}),
    "ROAD_CLOSED": frozenset({"ROAD_CLOSED_CONSTRUCTION", "ROAD_CLOSED_EVENT", "ROAD_CLOSED_HAZARD"}),
    "POLICE": frozenset({"POLICE_VISIBLE", "POLICE_HIDING"}),
    "CONSTRUCTION": frozenset(),
    "CHIT_CHAT": frozenset(),
}


class Lane(BaseModel):
    """One lane of a CIFS ``<lanes>`` list: order from the left (0-99), type, status."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    order: int = Field(ge=0, le=99)
    type: str = "LANE"
    status: Literal["OPEN_LANE", "OPEN", "OPENED", "CLOSED_LANE", "CLOSE", "CLOSED"]


class LaneImpact(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    total_closed_lanes: int = Field(ge=0, le=99)
    roadside: Literal["LEFT", "MIDDLE", "RIGHT"]


class SourceRef(BaseModel):
    """The originating organisation, CIFS ``<source>``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    reference: str = Field(min_length=1)
    name: str | None = None
    url: str | None = None


class CityDetails(BaseModel):
    """What a city event carries beyond the common fields: what CIFS and WZDx publish."""

    model_config = ConfigDict(extra="forbid")
    description: str | None = None
    schedule: dict[str, str] | None = Field(default=None, description="day (or everyday) -> 'HH:MM-HH:MM[,...]'")
    lanes: list[Lane] | None = None
    lane_impact: LaneImpact | None = None
    parent_event: str | None = Field(default=None, min_length=3)
    reference: SourceRef | None = None
    operator: str | None = Field(default=None, description="who entered or last changed it")
    end_date_verified: bool = False
    # issue 16, items 2 and 4: the WZDx/CWZ "verified" flags beside end_date_verified, true only on
    # evidence from the source (an imported WZDx/CWZ event that says so, an operator's
    # --verified-start), never from Waze (a Waze closure on a published one is usually our own coming back)
    start_date_verified: bool = False
    start_position_verified: bool = False
    end_position_verified: bool = False
    overridden: dict[str, Any] | None = Field(
        default=None, description="an import's fields an operator changed -> the source's value then "
        "(exchange.overrides: kept through the source's versions that leave them as they were)")


class Event(BaseModel):
    """One traffic event, crowd-reported or city-reported.

    ``attributes`` keeps every field of the source record that has no typed home (and the typed ones
    as the source spelled them), so nothing a feed sent is lost.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    id: str
    source: str = Field(description="namespace of the source family, e.g. 'waze'")
    kind: Kind
    source_id: str = Field(description="the id in the source: Waze uuid or jam/irregularity id, as text")
    origin: Origin
    category: Category
    type: str = Field(description="the source's own type, e.g. WEATHERHAZARD or NONE")
    subtype: str | None = None
    geometry: Point | LineString = Field(discriminator="type")
    street: str | None = None
    city: str | None = None
    country: str | None = None
    direction: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    status: Status = Status.ACTIVE

    reliability: int | None = None
    confidence: int | None = None
    thumbs_up: int | None = None
    report_rating: int | None = None
    magvar: int | None = Field(default=None, description="reporter heading, degrees from north")
    road_type: int | None = None
    speed_kmh: float | None = None
    delay_s: int | None = Field(default=None, description="seconds of delay; -1 means blocked")
    level: int | None = Field(default=None, description="jam level 0 (free flow) to 5 (blocked)")
    length_m: int | None = None
    blocking_alert_uuid: str | None = None

    road_match: RoadMatch | None = Field(default=None, description="where the event lies on the road network")
    details: CityDetails | None = Field(default=None, description="city events: description, schedule, lanes")
    cluster_id: str | None = Field(default=None, description="the incident this report belongs to")

    attributes: dict[str, Any] = Field(default_factory=dict)
    digest: str = Field(default="", description="content hash of the source record")


#: what an item error keeps of a source id and of a reason: enough to find the item and see what is
#: wrong, whatever the item held (a 1 MB id, a lone surrogate, a line break)
_SHOWN_ID, _SHOWN_REASON = 200, 1000
_UNSAFE = re.compile("[\x00\r\n\ud800-\udfff]")
_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")


def shown_text(text: str, limit: int) -> str:
    """``text`` fit to store and to print on one line: NUL and lone surrogates as escapes, line
    breaks as spaces, at most ``limit`` characters (cut with "...").

    >>> shown_text("bad\\ud800 id\\nsecond line", 80), shown_text("u" * 50, 10)
    ('bad\\\\ud800 id second line', 'uuuuuuu...')
    """
    if _UNSAFE.search(text):
        text = _LINE_BREAKS.sub(" ", text).replace("\x00", "\\x00")
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ItemError(BaseModel):
    """Why one item of a batch was not stored. Kept on the sync run; never aborts the batch.

    The source id and the reason are made storable and one line (:func:`shown_text`), whatever the
    item they come from held.
    """

    model_config = ConfigDict(frozen=True)

    kind: str | None = None
    source_id: str | None = None
    step: str = Field(description="pipeline step that refused it: parse, convert, store")
    reason: str
    out_of_scope: bool = Field(default=False, description="of a kind the reader does not take (not a broken item)")

    @field_validator("source_id")
    @classmethod
    def _shown_id(cls, value: str | None) -> str | None:
        return None if value is None else shown_text(value, _SHOWN_ID)

    @field_validator("reason")
    @classmethod
    def _shown_reason(cls, value: str) -> str:
        return shown_text(value, _SHOWN_REASON)


def first_problem(exc: ValueError, *, default_location: str = "") -> str:
    """``location: message`` of the first problem a pydantic ``ValidationError`` reports, for a one-line error.

    Locations read as written (``sources[0].url``); a key the model forbids is an "unknown key";
    pydantic's "Value error, " prefix is dropped. Any other ``ValueError`` is its own text.

    >>> from pydantic import BaseModel, ConfigDict
    >>> class Source(BaseModel):
    ...     model_config = ConfigDict(extra="forbid")
    ...     interval_s: int = 1
    >>> class Config(BaseModel):
    ...     sources: list[Source]
    >>> try:
    ...     Config.model_validate({"sources": [{"interval_s": 2}, {"intervall_s": 3}]})
    ... except ValueError as exc:
    ...     first_problem(exc)
    'sources[1].intervall_s: unknown key'
    >>> first_problem(ValueError("bad"))
    'bad'
    """
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    first = errors()[0]
    parts: list[str] = []
    for part in first.get("loc", ()):
        if isinstance(part, int) and parts:
            parts[-1] = f"{parts[-1]}[{part}]"
        else:
            parts.append(str(part))
    where = ".".join(parts) or default_location
    if first.get("type") == "extra_forbidden":
        message = "unknown key"
    else:
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
