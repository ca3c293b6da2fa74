"""A city's closures as a GeoJSON FeatureCollection (``kind = "geojson"``): one feature per closure.

The file is fetched like any URL source (conditional GET when the server supports it) and read by
:mod:`feeds.city_geojson`; ``mapping`` names feature properties.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel

from adapters.http_source import CitySourceSettings, HttpSource
from exchange.model import Event
from feeds.city_geojson import feature_event, feature_field, read_feature_collection
from feeds.items import FeedItem, Snapshot

__all__ = ["GeoJsonAdapter", "GeoJsonSettings"]


class GeoJsonSettings(CitySourceSettings):
    """A GeoJSON FeatureCollection of closures; ``mapping`` names feature properties."""


class GeoJsonAdapter(HttpSource):
    """A GeoJSON file of closures, local or over HTTP (conditional GET when the server supports it)."""

    kind: ClassVar[str] = "geojson"
    settings_model: ClassVar[type[BaseModel]] = GeoJsonSettings
    settings: GeoJsonSettings

    def read(self, body: bytes) -> Snapshot:
        return read_feature_collection(body, self.settings.mapping)

    def convert(self, item: FeedItem, *, values_checked: bool = False) -> Event:
        return feature_event(item, self.namespace, self.settings.mapping, self.zone, values_checked=values_checked)

    def field_value(self, item: FeedItem, name: str) -> Any:
        return feature_field(item, name)
