"""The adapter interface: a ``Source`` fetches bytes and knows the codec that reads them.

Adapters are the only place (with ``exchange/``) that touches the network or the disk. Each
validates its own settings with a pydantic model, so a bad key is named at config load.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from exchange.model import Event
from feeds.city_fields import match_id_of
from feeds.items import FeedItem, Snapshot, field_at

if TYPE_CHECKING:
    from exchange.config import HttpConfig

__all__ = ["Fetched", "Source", "Watermark"]


@dataclass(frozen=True, slots=True)
class Watermark:
    """What the last committed poll of a source saw, for conditional requests."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class Fetched:
    """One fetch: the body, or ``None`` when the upstream said nothing changed (HTTP 304)."""

    body: bytes | None
    location: str
    etag: str | None = None
    last_modified: str | None = None


class Source(ABC):
    """A source of events. Subclasses set ``kind`` and ``settings_model``."""

    kind: ClassVar[str]
    settings_model: ClassVar[type[BaseModel]]
    #: True when a payload's own time identifies the snapshot it holds (the Waze feed's
    #: ``startTimeMillis`` window): a payload with the newest time already reconciled is then a
    #: duplicate, an older one history. False for city feeds, whose timestamp (WZDx
    #: ``update_date``, CIFS ``timestamp``) says when the publisher last wrote and may stay put
    #: while features are removed, or go back: every payload read from them is a poll.
    time_identifies_snapshot: ClassVar[bool] = False
    #: the ``[[sources]]`` entry's ``match_key`` and ``priority`` (:func:`adapters.build_source` sets
    #: them): which field holds an id other sources share, and whose report of one closure is published
    match_key: str | None = None
    priority: int = 0
    #: outbound HTTP (``[http]``: proxy, CA bundle) and the process's "stop now" question (SIGTERM
    #: in the daemon), set by :func:`adapters.build_source` like ``match_key``; a fetch honours both
    http: HttpConfig | None = None
    should_stop: Callable[[], bool] | None = None
    #: the configured road network's name of the road at (lon, lat), None without a network or a
    #: named road there; set by the sync, for a format that requires a street an item may lack
    street_at: Callable[[float, float], str | None] | None = None

    def __init__(self, name: str, settings: dict[str, Any], *, zone: tzinfo = UTC) -> None:
        self.name = name
        self.zone = zone  # the city's time zone: times without an offset are local times
        self.settings: Any = self.settings_model.model_validate(settings)

    @property
    @abstractmethod
    def namespace(self) -> str:
        """The id namespace of this source's events (shared by overlapping sources of one family)."""

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the source reads from, safe to log (secrets redacted)."""

    @abstractmethod
    def fetch(self, watermark: Watermark) -> Fetched:
        """Read the current payload. Raises ``FetchError`` subclasses, never foreign exceptions."""

    @abstractmethod
    def read(self, body: bytes) -> Snapshot:
        """Read a payload into a snapshot. Raises ``FeedError`` when the payload is unusable."""

    @abstractmethod
    def convert(self, item: FeedItem, *, values_checked: bool = False) -> Event:
        """Turn one item of a snapshot into an event. Raises ``ItemRejected`` with the reason."""

    def field_value(self, item: FeedItem, name: str) -> Any:
        """The value of the field ``name`` in one item (what ``match_key`` names), None when it has none.

        Here a key of the item's record, dots reaching into nested objects; a codec whose records
        keep their fields elsewhere (a CSV row's cells, a feature's properties) says where.
        """
        return field_at(item.record, name)

    def match_id(self, item: FeedItem) -> str | None:
        """The item's value under ``match_key`` as two sources compare it (``feeds.city_fields.match_id_of``)."""
        if self.match_key is None:
            return None
        return match_id_of(self.field_value(item, self.match_key))
