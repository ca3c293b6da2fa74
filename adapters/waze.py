"""The Waze partner data feed source (``kind = "waze-feed"``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field

from adapters.http_source import NAMESPACE_PATTERN, HttpSource, HttpSourceSettings
from exchange.model import Event
from feeds.items import FeedItem, Snapshot
from feeds.waze import read_waze_snapshot, to_event

__all__ = ["WazeFeedAdapter", "WazeFeedSettings"]


class WazeFeedSettings(HttpSourceSettings):
    url: str = Field(
        default="",
        description="Feed URL (Partner Hub URL with ?format=1 for JSON or format=2 for GeoRSS), a file:// "
        "URL or a local path. '{token}' is replaced by the value of the variable named by token_env.",
    )
    namespace: str = Field(
        default="waze", pattern=NAMESPACE_PATTERN,
        description="Id namespace; overlapping Waze sources share 'waze' so one uuid is one event.",
    )


class WazeFeedAdapter(HttpSource):
    kind: ClassVar[str] = "waze-feed"
    settings_model: ClassVar[type[BaseModel]] = WazeFeedSettings
    time_identifies_snapshot: ClassVar[bool] = True
    settings: WazeFeedSettings

    def read(self, body: bytes) -> Snapshot:
        return read_waze_snapshot(body)

    def convert(self, item: FeedItem, *, values_checked: bool = False) -> Event:
        return to_event(item, self.namespace, values_checked=values_checked)
