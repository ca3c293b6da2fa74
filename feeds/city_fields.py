"""What the fields of a city's closure records mean: the mapping shared by the CSV, GeoJSON and ArcGIS sources.

A city names its own columns (``closure_id``, ``STREET_NAME``, ``begin``); :class:`CityFieldMapping`
says which input field holds which event field, and :func:`event_from_fields` reads one record
through it into :func:`feeds.city.city_event`, the one validated constructor of city events. An
error names the input field as the city spells it and the event field it feeds, e.g.
``begin (start): 'soon' is not an ISO 8601 time``. :class:`CityFormat` is what every city codec
needs to read a file (the mapping; the CSV codec adds its own keys); a source's settings add where
the file is and how to fetch it (``adapters/``). No I/O here.

Values are read tolerantly, as city exports come: an empty cell is an absent value; numbers are
accepted where text is expected; a time is ISO 8601 text (local time in the city's zone when it has
no offset) or a number of epoch milliseconds (Esri date fields); a schedule is JSON
(``{"monday": "08:00-17:00"}``) or ``day=HH:MM-HH:MM[,HH:MM-HH:MM];...`` text; lanes and lane
impact are JSON text or, in GeoJSON, JSON values.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from exchange.errors import ItemRejected
from exchange.model import CIFS_SUBTYPES, Event, ItemError, Kind, first_problem, from_millis, to_millis
from feeds.city import city_event
from feeds.city_values import EARLIEST, JSON_INT, LATEST, TIME_RANGE, integer_problem, text_problem
from feeds.items import loads_lenient

__all__ = [
    "CityFieldMapping",
    "CityFormat",
    "claim_id",
    "event_from_fields",
    "join_parts",
    "match_id_of",
    "parse_error",
    "parse_schedule",
    "source_id_of",
]

Position = tuple[float, float]

#: the event fields a mapping can name, in the order errors are most useful
MAPPED_FIELDS = (
    "type", "subtype", "street", "direction", "start", "end", "description", "schedule", "lanes", "lane_impact",
)
#: epoch milliseconds are taken in the range city_event accepts (the years 2000 to 2099, UTC)
_MIN_MS, _MAX_MS = to_millis(EARLIEST), to_millis(LATEST)
#: consecutive MultiLineString parts closer than this (degrees, about 1 cm) are one line
_JOIN_TOLERANCE = 1e-7


class CityFieldMapping(BaseModel):
    """Which input field (CSV column, GeoJSON or ArcGIS property) holds each field of a city event.

    Only ``id`` is required. An input field that is absent from a record, or empty, leaves the event
    field unset; ``default_type``, ``default_subtype`` and ``default_direction`` then apply. An
    empty string (``lanes = ""`` in TOML) maps nothing.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(
        min_length=1,
        description="Field holding the closure's id; it must stay the same across exports (not a row number).",
    )
    type: str | None = Field(default="type", description="Field holding the CIFS type (ROAD_CLOSED, HAZARD, ...).")
    subtype: str | None = Field(default="subtype", description="Field holding the CIFS subtype.")
    street: str | None = Field(default="street", description="Field holding the street name (at least 2 characters).")
    direction: str | None = Field(
        default="direction", description="Field holding ONE_DIRECTION or BOTH_DIRECTIONS (case-insensitive)."
    )
    start: str | None = Field(
        default="start", description="Field holding the start: ISO 8601 (local time without offset) or epoch ms."
    )
    end: str | None = Field(default="end", description="Field holding the end, like start.")
    description: str | None = Field(default="description", description="Field holding the free-text description.")
    schedule: str | None = Field(
        default="schedule",
        description="Field holding the weekly schedule: JSON {\"monday\": \"08:00-17:00\"} or "
        "'monday=08:00-17:00;friday=09:00-12:00,13:00-17:00' ('everyday' for all days).",
    )
    lanes: str | None = Field(
        default=None, description='Field holding the lanes as JSON: [{"order": 0, "status": "CLOSED"}, ...].'
    )
    lane_impact: str | None = Field(
        default=None,
        description='Field holding the lane impact as JSON: {"total_closed_lanes": 1, "roadside": "RIGHT"}.',
    )
    default_type: str | None = Field(
        default="ROAD_CLOSED",
        description="Type of records whose type field is absent or empty; empty: every record must name one.",
    )
    default_subtype: str | None = Field(
        default=None, description="Subtype of records of the default type whose subtype is absent or empty."
    )
    default_direction: Literal["ONE_DIRECTION", "BOTH_DIRECTIONS"] | None = Field(
        default=None,
        description="Direction of records whose direction field is absent or empty; a point event needs one.",
    )

    @field_validator(
        "type", "subtype", "street", "direction", "start", "end", "description", "schedule", "lanes", "lane_impact",
        "default_type", "default_subtype", "default_direction", mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _known_defaults(self) -> CityFieldMapping:
        if self.default_type is not None:
            self.default_type = self.default_type.strip().upper()
            if self.default_type not in CIFS_SUBTYPES:
                raise ValueError(
                    f"default_type {self.default_type!r} is not one of {', '.join(sorted(CIFS_SUBTYPES))}"
                )
        if self.default_subtype is not None:
            self.default_subtype = self.default_subtype.strip().upper()
            allowed = CIFS_SUBTYPES.get(self.default_type or "", frozenset())
            if self.default_subtype not in allowed:
                raise ValueError(
                    f"default_subtype {self.default_subtype!r} does not belong to default_type {self.default_type}"
                )
        return self

    def required_fields(self) -> list[str]:
        """Input fields a file must have (as columns): the id, the street, and the type without a default."""
        required = [self.id]
        if self.street is not None:
            required.append(self.street)
        if self.type is not None and self.default_type is None:
            required.append(self.type)
        return required


class CityFormat(BaseModel):
    """What a city codec needs to read a file: the field mapping (the CSV codec adds its own keys).

    A source's settings combine it with where the file is and how to fetch it (``adapters/``).
    """

    model_config = ConfigDict(extra="forbid")

    mapping: CityFieldMapping = Field(description="Which input field holds which event field; 'id' is required.")


# --------------------------------------------------------------------------- one record into an event


def event_from_fields(
    namespace: str,
    source_id: str,
    fields: Mapping[str, Any],
    mapping: CityFieldMapping,
    *,
    coordinates: Sequence[Position],
    zone: tzinfo,
    digest: str = "",
    attributes: Mapping[str, Any] | None = None,
) -> Event:
    """A city event from one record's ``fields`` read through ``mapping``; ``coordinates`` are (lon, lat).

    Raises
    ------
    ItemRejected
        Naming the field, as the input spells it when it differs: ``begin (start): ...``.
    """

    def value(name: str) -> Any:
        column = getattr(mapping, name)
        if column is None:
            return None
        found = fields.get(column)
        return None if isinstance(found, str) and not found.strip() else found

    try:
        kind_type = _text(value("type"), "type") or mapping.default_type or ""
        subtype = _text(value("subtype"), "subtype")
        if subtype is None and mapping.default_subtype and kind_type.strip().upper() == mapping.default_type:
            subtype = mapping.default_subtype
        direction = _direction(value("direction")) or mapping.default_direction
        return city_event(
            namespace,
            source_id,
            type=kind_type,
            street=_text(value("street"), "street") or "",
            coordinates=coordinates,
            zone=zone,
            subtype=subtype,
            direction=direction,
            start=_time(value("start"), "start"),
            end=_time(value("end"), "end"),
            description=_text(value("description"), "description"),
            schedule=parse_schedule(value("schedule")),
            lanes=_json_list(value("lanes"), "lanes"),
            lane_impact=_json_object(value("lane_impact"), "lane_impact"),
            attributes=attributes,
            digest=digest,
        )
    except ItemRejected as exc:
        raise ItemRejected(_column_named(exc.message, mapping, fields), source_id=source_id,
                           kind=Kind.CITY.value) from exc
    except ValueError as exc:  # pydantic's ValidationError, should the model refuse what city_event let pass
        raise ItemRejected(first_problem(exc), source_id=source_id, kind=Kind.CITY.value) from exc


def _column_named(message: str, mapping: CityFieldMapping, fields: Mapping[str, Any]) -> str:
    """``start: ...`` -> ``begin (start): ...`` when the mapping reads start from ``begin``; a field the
    record does not have at all is said so, with those it has (a layer whose fields were renamed).

    >>> mapping = CityFieldMapping(id="OBJECTID", street="STREET")
    >>> _column_named("street: '' is too short", mapping, {"ST_NAME": "Main", "ID": 1})
    "no field 'STREET' (street) in the record; it has: ID, ST_NAME"
    """
    head, sep, rest = message.partition(":")
    canonical = head.split(".", 1)[0].split("[", 1)[0]
    if sep and canonical in MAPPED_FIELDS:
        column = getattr(mapping, canonical)
        if column is not None and column not in fields:
            names = sorted(map(str, fields))
            listed = ", ".join(names[:15]) + (f", ... ({len(names)} fields)" if len(names) > 15 else "")
            return f"no field {column!r} ({canonical}) in the record; it has: {listed or 'none'}"
        if column is not None and column != canonical:
            return f"{column} ({head}){sep}{rest}"
    return message


def source_id_of(value: Any, field: str) -> str | None:
    """An id as text: a string stripped, an integer (or integral float) in decimal; ``None`` when empty.

    >>> source_id_of(" C-17 ", "id"), source_id_of(42.0, "id"), source_id_of("", "id")
    ('C-17', '42', None)
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ItemRejected(f"{field}: an id cannot be a boolean")
    if isinstance(value, int):
        problem = integer_problem(value, JSON_INT)
        if problem is not None:
            raise ItemRejected(f"{field}: {problem}")
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ItemRejected(f"{field}: {value} is not a usable id")
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        problem = text_problem(value, controls=False)  # an id no store keeps is not an id of an item error either
        if problem is not None:
            raise ItemRejected(f"{field}: {problem}")
        return value.strip() or None
    raise ItemRejected(f"{field}: an id must be text or a number, got {type(value).__name__}")


#: a match id longer than an event's source id is no id: the item has no match key
MAX_MATCH_ID = 200


def match_id_of(value: Any) -> str | None:
    """A source's ``match_key`` value as two sources compare it: text trimmed (case kept), a whole
    number in decimal; ``None`` (no match key, never a rejection) when empty, longer than
    :data:`MAX_MATCH_ID`, or not text or a number.

    >>> match_id_of(" P-2026-17 "), match_id_of(4711.0), match_id_of(""), match_id_of(True)
    ('P-2026-17', '4711', None, None)
    """
    try:
        text = source_id_of(value, "match_key")
    except ItemRejected:
        return None
    return text if text is not None and len(text) <= MAX_MATCH_ID else None


def parse_error(reason: str, source_id: str | None = None) -> ItemError:
    """An item refused while a city file is read (before conversion)."""
    return ItemError(kind=Kind.CITY.value, source_id=source_id, step="parse", reason=reason)


def claim_id(raw: Any, field: str, seen: dict[str, int], position: int, *, unit: str, absent: str) -> str:
    """The id of the item at ``position``, remembered in ``seen``; an empty or repeated id is refused.

    ``unit`` names the items in messages ("row", "feature"), ``absent`` what an empty id is called.
    """
    source_id = source_id_of(raw, field)
    if source_id is None:
        raise ItemRejected(f"{field}: {absent}; every {unit} needs an id")
    if source_id in seen:
        raise ItemRejected(f"{field}: {source_id!r} repeats {unit} {seen[source_id]}", source_id=source_id)
    seen[source_id] = position
    return source_id


def join_parts(parts: Sequence[Sequence[Position]], field: str) -> list[Position]:
    """The parts of a multi-line as one line, when each part starts where the previous one ends.

    Parts that do not touch are refused rather than bridged: a straight jump between them would
    close a road that is not closed. Publish one closure per part instead.

    >>> join_parts([[(0.0, 0.0), (1.0, 0.0)], [(1.0, 0.0), (1.0, 1.0)]], "geometry")
    [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)]
    """
    nonempty = [list(part) for part in parts if part]
    if not nonempty:
        raise ItemRejected(f"{field}: no coordinates")
    line = nonempty[0]
    for number, part in enumerate(nonempty[1:], start=2):
        (end_lon, end_lat), (start_lon, start_lat) = line[-1], part[0]
        if abs(end_lon - start_lon) > _JOIN_TOLERANCE or abs(end_lat - start_lat) > _JOIN_TOLERANCE:
            raise ItemRejected(
                f"{field}: part {number} does not start where part {number - 1} ends; "
                "a closure is one line (publish one closure per part)"
            )
        line.extend(part[1:])
    return line


def parse_schedule(value: Any) -> dict[str, str] | None:
    """A weekly schedule from JSON text, a mapping, or ``day=HH:MM-HH:MM;...`` text (days are checked later).

    >>> parse_schedule("monday=08:00-12:00; monday=13:00-17:00;friday=09:00-12:00")
    {'monday': '08:00-12:00,13:00-17:00', 'friday': '09:00-12:00'}
    """
    if value is None:
        return None
    if isinstance(value, Mapping):
        given: dict[str, str] = {}
        for day, hours in value.items():
            if not isinstance(hours, str):  # never str() an arbitrary value: it may nest 1000 levels deep
                raise ItemRejected(f"schedule: {str(day)[:40]} hours must be text 'HH:MM-HH:MM[,HH:MM-HH:MM]', "
                                   f"got {type(hours).__name__}")
            given[str(day)] = hours
        return given or None
    if not isinstance(value, str):
        raise ItemRejected(f"schedule: expected text or an object, got {type(value).__name__}")
    text = value.strip()
    if not text:
        return None
    if text.startswith("{"):
        document = _json_value(text, "schedule")
        if not isinstance(document, dict):
            raise ItemRejected("schedule: JSON must be an object of day -> hours")
        return parse_schedule(document)
    schedule: dict[str, str] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        day, sep, hours = part.partition("=")
        if not sep or not day.strip() or not hours.strip():
            raise ItemRejected(f"schedule: {part.strip()!r} is not 'day=HH:MM-HH:MM'")
        key = day.strip()
        schedule[key] = f"{schedule[key]},{hours.strip()}" if key in schedule else hours.strip()
    return schedule or None


def _text(value: Any, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ItemRejected(f"{field}: expected text, got {type(value).__name__}")


def _direction(value: Any) -> str | None:
    text = _text(value, "direction")
    if text is None or not text.strip():
        return None
    return text.strip().upper().replace(" ", "_").replace("-", "_")


def _time(value: Any, field: str) -> str | datetime | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise ItemRejected(f"{field}: expected a time, got a boolean")
    if isinstance(value, int | float):
        if not _MIN_MS <= value < _MAX_MS:  # NaN compares false, a whole number of any size compares
            raise ItemRejected(f"{field}: {value} is not a time in epoch milliseconds within {TIME_RANGE}")
        return from_millis(value)
    raise ItemRejected(f"{field}: expected an ISO 8601 time or epoch milliseconds, got {type(value).__name__}")


def _json_value(value: Any, field: str) -> Any:
    """JSON text read as a payload's fallback reader reads it (huge numbers as floats, deep nesting); else ``value``."""
    if isinstance(value, str):
        try:
            return loads_lenient(value)
        except json.JSONDecodeError as exc:
            raise ItemRejected(f"{field}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        except RecursionError:
            raise ItemRejected(f"{field}: JSON nested too deeply") from None
    return value


def _json_list(value: Any, field: str) -> list[Mapping[str, Any]] | None:
    document = _json_value(value, field)
    if document is None:
        return None
    if not isinstance(document, list) or not all(isinstance(entry, Mapping) for entry in document):
        raise ItemRejected(f"{field}: expected a JSON list of objects")
    return document


def _json_object(value: Any, field: str) -> Mapping[str, Any] | None:
    document = _json_value(value, field)
    if document is None:
        return None
    if not isinstance(document, Mapping):
        raise ItemRejected(f"{field}: expected a JSON object")
    return document
