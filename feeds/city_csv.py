"""A city's closures as a CSV file: one row per closure. No I/O here.

The file is read with the standard ``csv`` module: a header row naming the columns, then one row
per closure. :class:`~feeds.city_fields.CityFieldMapping` says which column holds what; the
``geometry`` key of :class:`CsvFormat` says where the shape is:

``wkt``
    One column holding WKT in lon/lat order: ``LINESTRING (-104.99 39.74, -104.98 39.74)``,
    ``POINT (-104.99 39.74)``, a ``MULTILINESTRING`` whose parts touch end to start (joined into one
    line; parts that do not touch are refused), optionally ``SRID=4326;`` and Z/M ordinates (dropped).
    GEOS reads it (``shapely.from_wkt``, imported only when a row is), so it must be valid WKT.
``latlon_pairs``
    One column holding ``"lat lon lat lon ..."`` as in a CIFS ``<polyline>`` (commas allowed).
``street_points``
    Four columns ``from_lat``, ``from_lon``, ``to_lat``, ``to_lon``: a two-point line from the first
    point to the second (travel order), or a point when the ``to`` cells are empty. The event is
    stored as that straight line; following the street between the two points (closure routing)
    happens later, in placement, when a road network is configured.

Reading is tolerant, one row at a time: a row with the wrong number of values, a broken quote, no
id, or an id already seen is an item error naming its row; a bad value (a number, the WKT, a date,
a subtype, ...) rejects only its row when it is converted, naming the row and the column. Rows are
numbered as lines of the file, the header being row 1 (a quoted value spanning lines counts from
its first line). An empty file, or a header without the id, street or geometry columns, is refused
whole (``MalformedPayload``), so a truncated export never ends the city's closures.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import warnings
from collections.abc import Mapping
from datetime import tzinfo
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from exchange.errors import ItemRejected, MalformedPayload
from exchange.model import Event, Kind
from feeds.city import parse_polyline
from feeds.city_fields import CityFormat, claim_id, event_from_fields, join_parts, parse_error
from feeds.city_values import check_storable
from feeds.items import FeedItem, Snapshot, digest

__all__ = [
    "CsvFormat",
    "LatLonPairsGeometry",
    "StreetPointsGeometry",
    "WktGeometry",
    "geometry_columns",
    "parse_wkt",
    "read_csv_snapshot",
    "row_coordinates",
    "row_event",
    "row_field",
]

Position = tuple[float, float]


class WktGeometry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["wkt"] = Field(description="A column of WKT POINT/LINESTRING/MULTILINESTRING, lon lat order.")
    column: str = Field(default="wkt", min_length=1, description="The column holding the WKT.")


class LatLonPairsGeometry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["latlon_pairs"] = Field(description="A column of 'lat lon lat lon ...' (CIFS polyline order).")
    column: str = Field(default="polyline", min_length=1, description="The column holding the pairs.")


class StreetPointsGeometry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["street_points"] = Field(
        description="Two points on the street (from, to); routed along the street later when a network is set."
    )
    from_lat: str = Field(default="from_lat", min_length=1, description="Column of the first point's latitude.")
    from_lon: str = Field(default="from_lon", min_length=1, description="Column of the first point's longitude.")
    to_lat: str = Field(default="to_lat", min_length=1, description="Column of the second point's latitude.")
    to_lon: str = Field(default="to_lon", min_length=1, description="Column of the second point's longitude.")


CsvGeometry = Annotated[WktGeometry | LatLonPairsGeometry | StreetPointsGeometry, Field(discriminator="type")]


class CsvFormat(CityFormat):
    """How a city's CSV file is read: the field mapping, where the shape is, the separator and encoding."""

    geometry: CsvGeometry = Field(
        default_factory=lambda: WktGeometry(type="wkt"),
        description="Where the shape is: {type = 'wkt', column = ...}, {type = 'latlon_pairs', column = ...} "
        "or {type = 'street_points', from_lat = ..., from_lon = ..., to_lat = ..., to_lon = ...}.",
    )
    delimiter: str = Field(default=",", min_length=1, max_length=1, description="Field separator, e.g. ';' or '\\t'.")
    encoding: str = Field(
        default="utf-8-sig", description="Text encoding of the file; utf-8-sig also reads UTF-8 with a BOM (Excel)."
    )

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown text encoding {value!r}") from None
        return value


def geometry_columns(geometry: WktGeometry | LatLonPairsGeometry | StreetPointsGeometry) -> tuple[str, ...]:
    """The columns holding the shape (a file must have them; they are left out of the attributes)."""
    if isinstance(geometry, StreetPointsGeometry):
        return (geometry.from_lat, geometry.from_lon, geometry.to_lat, geometry.to_lon)
    return (geometry.column,)


# --------------------------------------------------------------------------- reading the file


def read_csv_snapshot(body: bytes, settings: CsvFormat) -> Snapshot:
    """Identify the rows of a CSV file: each becomes an item ``{"row": n, "fields": {column: text}}``.

    The digest covers the fields only, so rows moving up or down the file change nothing.

    Raises
    ------
    MalformedPayload
        The file is empty, not in ``settings.encoding``, or its header lacks a required column.
    """
    # bytes that are not text in the encoding stay in the text as lone surrogates: the rows holding
    # them are rejected one by one (an Excel export's one accented word), the rest are read
    text = body.decode(settings.encoding, errors="surrogateescape")
    if not text.strip():
        raise MalformedPayload("the CSV file is empty")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=settings.delimiter, strict=True)
    try:
        header = [name.strip() for name in next(reader)]
    except csv.Error as exc:
        raise MalformedPayload(f"the CSV header (row 1) is malformed: {exc}") from exc
    if any(_UNDECODED.search(name) for name in header):
        raise MalformedPayload(f"the CSV header (row 1) is not {settings.encoding} text: {_ENCODING_HINT}")
    mapping = settings.mapping
    required = [*mapping.required_fields(), *geometry_columns(settings.geometry)]
    missing = [name for name in dict.fromkeys(required) if name not in header]
    if missing:
        shown = ", ".join(name for name in header if name) or "nothing"
        raise MalformedPayload(f"the CSV header lacks the column(s) {', '.join(missing)} (it has: {shown})")
    index: dict[str, int] = {}
    for position, name in enumerate(header):
        index.setdefault(name, position)

    snapshot = Snapshot(
        start_ms=None, end_ms=None, kinds_present=frozenset({Kind.CITY}), values_checked="\x00" not in text
    )
    seen: dict[str, int] = {}
    line = reader.line_num
    while True:
        row_number = line + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            line = reader.line_num
            snapshot.errors.append(parse_error(f"row {row_number}: malformed CSV: {exc}"))
            continue
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        if len(row) > len(header) and not any(cell.strip() for cell in row[len(header):]):
            row = row[: len(header)]  # trailing empty cells, as spreadsheets export them
        id_cell = row[index[mapping.id]] if index[mapping.id] < len(row) else None
        if len(row) != len(header):
            snapshot.errors.append(parse_error(
                f"row {row_number}: {len(row)} values where the header has {len(header)} columns",
                (id_cell or "").strip() or None,
            ))
            continue
        undecoded = next((header[k] for k, cell in enumerate(row) if _UNDECODED.search(cell)), None)
        if undecoded is not None:
            shown_id = None if id_cell is None or _UNDECODED.search(id_cell) else id_cell.strip() or None
            snapshot.errors.append(parse_error(
                f"row {row_number}: {undecoded}: not {settings.encoding} text: {_ENCODING_HINT}", shown_id))
            continue
        try:
            source_id = claim_id(id_cell, mapping.id, seen, row_number, unit="row", absent="empty")
        except ItemRejected as exc:
            snapshot.errors.append(parse_error(f"row {row_number}: {exc.message}", exc.source_id))
            continue
        fields = {name: row[position] for name, position in index.items()}
        snapshot.items.append(FeedItem(Kind.CITY, source_id, digest(fields), {"row": row_number, "fields": fields}))
    return snapshot


#: a byte the encoding could not read, kept by ``surrogateescape``
_UNDECODED = re.compile("[\udc80-\udcff]")
_ENCODING_HINT = 'give the file\'s encoding in the source (encoding = "cp1252", as Excel saves in western Europe)'


# --------------------------------------------------------------------------- converting one row


def row_event(
    item: FeedItem, namespace: str, settings: CsvFormat, zone: tzinfo, *, values_checked: bool = False
) -> Event:
    """One identified row into a city event; errors name the row and the column."""
    row: int = item.record["row"]
    fields: dict[str, str] = item.record["fields"]
    geometry = settings.geometry
    try:
        if not values_checked:
            check_storable(fields)
        coordinates = row_coordinates(fields, geometry)
        dropped = set(geometry_columns(geometry))
        return event_from_fields(
            namespace,
            item.source_id,
            fields,
            settings.mapping,
            coordinates=coordinates,
            zone=zone,
            digest=item.digest,
            attributes={key: value for key, value in fields.items() if key not in dropped},
        )
    except ItemRejected as exc:
        raise ItemRejected(f"row {row}: {exc.message}", source_id=item.source_id, kind=Kind.CITY.value) from exc


def row_field(item: FeedItem, column: str) -> str | None:
    """The cell of ``column`` in one identified row (a source's ``match_key``), None when there is no such column."""
    fields: dict[str, str] = item.record["fields"]
    return fields.get(column)


# --------------------------------------------------------------------------- geometry of one row


def row_coordinates(
    fields: Mapping[str, str], geometry: WktGeometry | LatLonPairsGeometry | StreetPointsGeometry
) -> list[Position]:
    """The (lon, lat) positions of one row, in travel order.

    Raises
    ------
    ItemRejected
        Naming the column: an empty cell, a value that is not a number, WKT that cannot be read.
    """
    if isinstance(geometry, WktGeometry):
        return parse_wkt(_cell(fields, geometry.column), geometry.column)
    if isinstance(geometry, LatLonPairsGeometry):
        return parse_polyline(_cell(fields, geometry.column), geometry.column)
    start = (_number(fields, geometry.from_lon), _number(fields, geometry.from_lat))
    to_lat, to_lon = fields.get(geometry.to_lat, "").strip(), fields.get(geometry.to_lon, "").strip()
    if not to_lat and not to_lon:
        return [start]
    return [start, (_number(fields, geometry.to_lon), _number(fields, geometry.to_lat))]


def _cell(fields: Mapping[str, str], column: str) -> str:
    text = fields.get(column, "").strip()
    if not text:
        raise ItemRejected(f"{column}: empty; the row has no geometry")
    return text


def _number(fields: Mapping[str, str], column: str) -> float:
    text = _cell(fields, column)
    try:
        return float(text)
    except ValueError:
        raise ItemRejected(f"{column}: {text[:40]!r} is not a number") from None


_WKT_KINDS = ("MULTILINESTRING", "LINESTRING", "POINT")


def parse_wkt(text: str, field: str = "wkt") -> list[Position]:
    """WKT ``POINT``, ``LINESTRING`` or ``MULTILINESTRING`` (parts touching end to start) in lon/lat order.

    GEOS reads the text (:func:`shapely.from_wkt`); an EWKT ``SRID=4326;`` prefix is allowed and Z
    or M ordinates are dropped. What GEOS refuses is said in one line naming the column.

    >>> parse_wkt("LINESTRING (-104.99 39.74, -104.98 39.74)")
    [(-104.99, 39.74), (-104.98, 39.74)]
    >>> parse_wkt("SRID=4326;POINT Z (-104.99 39.74 1600)")
    [(-104.99, 39.74)]
    """
    import shapely  # the geometry stack loads only when a source reads WKT

    body, srid = text.strip(), None  # type: str, str | None
    prefix, semicolon, rest = body.partition(";")
    if semicolon and prefix[:5].upper() == "SRID=" and prefix[5:].rstrip().isdecimal():
        body, srid = rest.strip(), prefix[5:].rstrip()
    if "\x00" in body:  # GEOS would stop reading there
        raise ItemRejected(_not_wkt(text, field))
    try:
        with warnings.catch_warnings():  # numpy's RuntimeWarning on a text GEOS cannot read: the rejection says it
            warnings.simplefilter("ignore", RuntimeWarning)
            geometry = shapely.from_wkt(body)
    except shapely.errors.GEOSException as exc:
        raise ItemRejected(_unreadable_wkt(text, body, srid, str(exc), field)) from None
    kind = str(geometry.geom_type).upper()
    if kind not in _WKT_KINDS:
        raise ItemRejected(_not_wkt(text, field))
    if srid not in (None, "4326"):
        raise ItemRejected(_not_wgs84(srid, field))
    if kind == "MULTILINESTRING" and any(part.is_empty for part in geometry.geoms):
        raise ItemRejected(_not_parts(field))
    if geometry.is_empty:
        raise ItemRejected(f"{field}: {kind} EMPTY has no coordinates")
    if kind == "MULTILINESTRING":
        return join_parts([_lon_lat(shapely.get_coordinates(part)) for part in geometry.geoms], field)
    return _lon_lat(shapely.get_coordinates(geometry))


def _lon_lat(coordinates: Any) -> list[Position]:
    """The rows of shapely's (n, 2) coordinate array as (lon, lat) tuples."""
    return [(float(lon), float(lat)) for lon, lat in coordinates.tolist()]


def _not_wkt(text: str, field: str) -> str:
    return f"{field}: {text[:60]!r} is not WKT POINT, LINESTRING or MULTILINESTRING (lon lat)"


def _not_wgs84(srid: str | None, field: str) -> str:
    return f"{field}: SRID={srid} is not WGS84 lon/lat (SRID=4326)"


def _not_parts(field: str) -> str:
    return f"{field}: MULTILINESTRING needs ((lon lat, ...), (lon lat, ...))"


def _unreadable_wkt(text: str, body: str, srid: str | None, problem: str, field: str) -> str:
    """Why GEOS could not read ``body`` (its ``problem``), as precisely as the text allows."""
    head = body.partition("(")[0].upper()
    kind = next((name for name in _WKT_KINDS if head.startswith(name)), None)
    start, end = body.find("("), body.rfind(")")
    if kind is None or not 0 <= start < end or body.count("(") != body.count(")"):
        return _not_wkt(text, field)
    if srid not in (None, "4326"):
        return _not_wgs84(srid, field)
    inner = body[start + 1 : end].strip()
    if "single element" in problem:  # "Point coordinate list must contain a single element"
        return f"{field}: a POINT has one position, got {inner.count(',') + 1}"
    if kind == "MULTILINESTRING":
        if not inner.startswith("("):
            return _not_parts(field)
    elif "(" in inner or ")" in inner:
        return f"{field}: unbalanced parentheses in {inner[:60]!r}"
    for part in inner.split(","):
        position = part.strip().strip("()").strip()
        numbers = position.split()
        if not 2 <= len(numbers) <= 4:
            return f"{field}: {position[:40]!r} is not a position 'lon lat'"
        if not all(_is_number(number) for number in numbers):
            return f"{field}: {position[:40]!r} holds something that is not a number"
    return _not_wkt(text, field)  # e.g. mixed or missing Z/M ordinates, a LINESTRING of one position


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
