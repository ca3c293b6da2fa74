"""A city's closures as a GeoJSON FeatureCollection: one feature per closure. No I/O here.

Coordinates are WGS84 lon/lat (RFC 7946); a legacy ``crs`` member naming anything else is
refused. The feature's properties are read through the
:class:`~feeds.city_fields.CityFieldMapping`; when the id property is absent, the feature's own
``id`` member is used. Geometries:

* ``LineString``: the closure, in travel order; ``Point``: a point event (it needs a direction);
* ``MultiLineString``: its parts joined into one line when each starts where the previous one ends
  (as exports split a street at intersections); parts that do not touch are refused, not bridged,
  because a straight jump between them would close a road that is not closed, and keeping only the
  first part would silently drop the rest of the closure. Publish one feature per part instead;
* anything else, or no geometry, rejects its feature.

A feature that is not an object, has no id or repeats an id is an item error naming its index
(0-based); a bad value rejects only its feature when it is converted. The GeoJSON and ArcGIS
sources (``adapters/geojson.py``, ``adapters/arcgis.py``) both read their features here.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping
from datetime import tzinfo
from typing import Any

from exchange.errors import ItemRejected, MalformedPayload
from exchange.model import Event, Kind
from feeds.city_fields import CityFieldMapping, claim_id, event_from_fields, join_parts, parse_error
from feeds.city_values import check_nesting, check_storable
from feeds.items import FeedItem, Snapshot, digest, field_at, load_json

__all__ = [
    "feature_coordinates",
    "feature_event",
    "feature_field",
    "read_feature_collection",
]

Position = tuple[float, float]


# --------------------------------------------------------------------------- reading the collection


def read_feature_collection(body: bytes, mapping: CityFieldMapping) -> Snapshot:
    """Identify the features of a FeatureCollection: each becomes ``{"index", "properties", "geometry"}``.

    The digest covers properties and geometry, not the index, so reordering changes nothing.

    Raises
    ------
    MalformedPayload
        Broken JSON, not a FeatureCollection, no features list, a non-WGS84 ``crs``.
    """
    document, checked = _load(body)
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise MalformedPayload("not a GeoJSON FeatureCollection")
    _check_crs(document.get("crs"))
    features = document.get("features")
    if not isinstance(features, list):
        raise MalformedPayload("a FeatureCollection without a 'features' list")
    snapshot = Snapshot(start_ms=None, end_ms=None, kinds_present=frozenset({Kind.CITY}), values_checked=checked)
    seen: dict[str, int] = {}
    for index, feature in enumerate(features):
        where = f"feature {index}"
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            snapshot.errors.append(parse_error(f"{where}: not a GeoJSON Feature"))
            continue
        properties = feature.get("properties") or {}
        if not isinstance(properties, dict):
            snapshot.errors.append(parse_error(f"{where}: 'properties' is not an object"))
            continue
        raw_id = properties.get(mapping.id)
        if raw_id is None or raw_id == "":
            raw_id = feature.get("id")
        try:
            source_id = claim_id(raw_id, mapping.id, seen, index, unit="feature", absent="missing")
        except ItemRejected as exc:
            snapshot.errors.append(parse_error(f"{where}: {exc.message}", exc.source_id))
            continue
        content = {"properties": properties, "geometry": feature.get("geometry")}
        snapshot.items.append(FeedItem(Kind.CITY, source_id, digest(content), {"index": index, **content}))
    return snapshot


def _load(body: bytes) -> tuple[Any, bool]:
    """The document, and whether it is known to hold no NaN, Infinity or NUL."""
    if not body.strip():
        raise MalformedPayload("the payload is empty")
    return load_json(body)


def _check_crs(crs: Any) -> None:
    if not isinstance(crs, dict):
        return
    properties = crs.get("properties")
    name = str(properties.get("name", "")) if isinstance(properties, dict) else ""
    if name and "CRS84" not in name.upper() and not name.endswith(("4326", "4326/")):
        raise MalformedPayload(f"coordinates are in {name}; a GeoJSON source must be WGS84 lon/lat")


# --------------------------------------------------------------------------- converting one feature


def feature_event(
    item: FeedItem, namespace: str, mapping: CityFieldMapping, zone: tzinfo, *, values_checked: bool = False
) -> Event:
    """One identified feature into a city event; errors name the feature index and the field."""
    index = item.record["index"]
    properties: Mapping[str, Any] = item.record["properties"]
    try:
        if not values_checked:
            check_storable(properties)
        else:  # orjson ruled out the rest; the same message as check_storable's, before any field is read
            check_nesting(properties)
        return event_from_fields(
            namespace,
            item.source_id,
            properties,
            mapping,
            coordinates=feature_coordinates(item.record["geometry"]),
            zone=zone,
            digest=item.digest,
            attributes=properties,
        )
    except ItemRejected as exc:
        raise ItemRejected(f"feature {index}: {exc.message}", source_id=item.source_id, kind=Kind.CITY.value) from exc


def feature_field(item: FeedItem, name: str) -> Any:
    """The property ``name`` of one identified feature (a source's ``match_key``; dots reach into objects)."""
    return field_at(item.record["properties"], name)


def feature_coordinates(geometry: Any) -> list[Position]:
    """The (lon, lat) positions of a GeoJSON Point, LineString or (contiguous) MultiLineString.

    >>> feature_coordinates({"type": "Point", "coordinates": [-104.99, 39.74, 1600]})
    [(-104.99, 39.74)]
    """
    if geometry is None:
        raise ItemRejected("geometry: missing")
    if not isinstance(geometry, dict):
        raise ItemRejected("geometry: not a GeoJSON geometry object")
    kind = geometry.get("type")
    coordinates = geometry.get("coordinates")
    if kind == "Point":
        return [_position(coordinates, "geometry")]
    if kind == "LineString":
        return _line(coordinates, "geometry")
    if kind == "MultiLineString":
        if not isinstance(coordinates, list):
            raise ItemRejected("geometry: MultiLineString coordinates are not a list of lines")
        parts = [_line(part, f"geometry part {number}") for number, part in enumerate(coordinates, start=1)]
        return join_parts(parts, "geometry")
    raise ItemRejected(f"geometry: {reprlib.repr(kind)} is not supported (LineString, MultiLineString or Point)")


def _line(value: Any, field: str) -> list[Position]:
    if not isinstance(value, list):
        raise ItemRejected(f"{field}: coordinates are not a list of positions")
    return [_position(point, f"{field} position {number}") for number, point in enumerate(value, start=1)]


def _position(value: Any, field: str) -> Position:
    if (
        not isinstance(value, list)
        or len(value) < 2
        or not all(isinstance(number, int | float) and not isinstance(number, bool) for number in value[:2])
    ):
        raise ItemRejected(f"{field}: {reprlib.repr(value)[:40]} is not a position [lon, lat]")
    try:
        return float(value[0]), float(value[1])
    except OverflowError:  # a whole number beyond the float range
        raise ItemRejected(f"{field}: coordinates must be finite numbers") from None
