"""Another agency's CIFS feed as a source (``kind = "cifs"``): its closures and incidents become city events."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field

from adapters.http_source import NAMESPACE_PATTERN, HttpSource, HttpSourceSettings
from exchange.model import Event
from feeds.cifs import cifs_item_to_event, parse_cifs
from feeds.items import FeedItem, Snapshot

__all__ = ["CifsAdapter", "CifsSettings"]


class CifsSettings(HttpSourceSettings):
    namespace: str = Field(default="cifs", pattern=NAMESPACE_PATTERN, description="Id namespace of its events.")


class CifsAdapter(HttpSource):
    """Reads cifsv2 or legacy CIFS, XML or JSON; times without an offset are in the city's zone. A
    point device without a street (iCone) takes the road network's name of the road it stands on."""

    kind: ClassVar[str] = "cifs"
    settings_model: ClassVar[type[BaseModel]] = CifsSettings
    settings: CifsSettings

    def read(self, body: bytes) -> Snapshot:
        return parse_cifs(body, zone=self.zone)

    def convert(self, item: FeedItem, *, values_checked: bool = False) -> Event:
        return cifs_item_to_event(item, self.namespace, self.zone, street_at=self.street_at)
