"""Another agency's DATEX II v3 feed as a source (``kind = "datex2"``): its closures, road works and
accidents, or the road closures among DiaLog's traffic regulation orders, become city events
(:mod:`feeds.datex2_read` says what is read and what is refused)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field

from adapters.http_source import NAMESPACE_PATTERN, HttpSource, HttpSourceSettings
from exchange.model import Event
from feeds.datex2_read import datex2_item_to_event, parse_datex2
from feeds.items import FeedItem, Snapshot

__all__ = ["Datex2Adapter", "Datex2SourceSettings"]


class Datex2SourceSettings(HttpSourceSettings):
    namespace: str = Field(default="datex2", pattern=NAMESPACE_PATTERN, description="Id namespace of its events.")


class Datex2Adapter(HttpSource):
    """Reads a ``d2:payload`` or ``con:messageContainer`` SituationPublication or
    TrafficRegulationPublication; times without an offset are in the city's zone."""

    kind: ClassVar[str] = "datex2"
    settings_model: ClassVar[type[BaseModel]] = Datex2SourceSettings
    settings: Datex2SourceSettings

    def read(self, body: bytes) -> Snapshot:
        return parse_datex2(body, zone=self.zone)

    def convert(self, item: FeedItem, *, values_checked: bool = False) -> Event:
        return datex2_item_to_event(item, self.namespace, self.zone)
