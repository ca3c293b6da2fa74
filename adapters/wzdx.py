"""A WZDx work zone feed as a source (``kind = "wzdx"``): another agency's road works become city events."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field

from adapters.http_source import NAMESPACE_PATTERN, HttpSource, HttpSourceSettings
from exchange.model import Event
from feeds.items import FeedItem, Snapshot
from feeds.wzdx import parse_wzdx, road_event_field, wzdx_item_to_event

__all__ = ["WzdxAdapter", "WzdxSettings"]


class WzdxSettings(HttpSourceSettings):
    namespace: str = Field(default="wzdx", pattern=NAMESPACE_PATTERN, description="Id namespace of its events.")


class WzdxAdapter(HttpSource):
    """Reads a WZDx 4.0/4.1/4.2 feed; detours are skipped with a reason, other road events converted."""

    kind: ClassVar[str] = "wzdx"
    settings_model: ClassVar[type[BaseModel]] = WzdxSettings
    settings: WzdxSettings

    def read(self, body: bytes) -> Snapshot:
        return parse_wzdx(body)

    def convert(self, item: FeedItem, *, values_checked: bool = False) -> Event:
        return wzdx_item_to_event(item, self.namespace, self.zone)

    def field_value(self, item: FeedItem, name: str) -> Any:
        return road_event_field(item, name)
