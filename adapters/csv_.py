"""A city's closures as a CSV file (``kind = "csv"``): one row per closure.

The file is fetched like any URL source (conditional GET when the server supports it) and read by
:mod:`feeds.city_csv`, which documents the ``geometry``, ``delimiter`` and ``encoding`` keys.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel

from adapters.http_source import CitySourceSettings, HttpSource
from exchange.model import Event
from feeds.city_csv import CsvFormat, read_csv_snapshot, row_event, row_field
from feeds.items import FeedItem, Snapshot

__all__ = ["CsvAdapter", "CsvSettings"]


class CsvSettings(CsvFormat, CitySourceSettings):
    """A CSV file of closures: where it is and how to fetch it, and how to read it."""


class CsvAdapter(HttpSource):
    """A CSV file of closures, local or over HTTP (conditional GET when the server supports it)."""

    kind: ClassVar[str] = "csv"
    settings_model: ClassVar[type[BaseModel]] = CsvSettings
    settings: CsvSettings

    def read(self, body: bytes) -> Snapshot:
        return read_csv_snapshot(body, self.settings)

    def convert(self, item: FeedItem, *, values_checked: bool = False) -> Event:
        return row_event(item, self.namespace, self.settings, self.zone, values_checked=values_checked)

    def field_value(self, item: FeedItem, name: str) -> Any:
        return row_field(item, name)
