"""Another agency's CIFS feed as a source (``kind = "cifs"``): its closures and incidents become city events."""

from __future__ import annotations

import os
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from adapters.base import Fetched, Source, Watermark
from adapters.http import HttpPolicy, fetch_url, redact_location
from exchange.errors import ConfigError
from exchange.model import Event
from feeds.cifs import cifs_item_to_event, parse_cifs
from feeds.items import FeedItem, Snapshot

__all__ = ["CifsAdapter", "CifsSettings"]


class CifsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(
        default="",
        description="CIFS feed URL (XML or JSON), a file:// URL or a local path. '{token}' is replaced by the "
        "value of the variable named by token_env (for feeds that take a key in the query string).",
    )
    token_env: str | None = Field(default=None, description="Environment variable holding the feed's key.")
    namespace: str = Field(
        default="cifs", pattern=r"^[a-z0-9_-]{1,50}$", description="Id namespace of this source's events."
    )
    connect_timeout_s: float = Field(default=10.0, gt=0)
    read_timeout_s: float = Field(default=30.0, gt=0)
    retries: int = Field(default=3, ge=0, le=10, description="Retries on connection errors, 5xx and 429.")
    backoff_s: float = Field(default=1.0, ge=0, description="First backoff step; doubles per retry, jittered.")
    max_backoff_s: float = Field(default=60.0, ge=0, description="Cap on one wait, Retry-After included.")
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, description="Response size cap in bytes.")


class CifsAdapter(Source):
    """Reads cifsv2 or legacy CIFS, XML or JSON; times without an offset are in the city's zone."""

    kind: ClassVar[str] = "cifs"
    settings_model: ClassVar[type[BaseModel]] = CifsSettings
    settings: CifsSettings

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    def _token(self) -> str | None:
        if not self.settings.token_env:
            return None
        token = os.environ.get(self.settings.token_env)
        if not token:
            raise ConfigError(f"source {self.name!r}: environment variable {self.settings.token_env} is not set")
        return token

    def _url(self, token: str | None) -> str:
        if not self.settings.url:
            raise ConfigError(f"source {self.name!r} has no url; set it in the [[sources]] entry")
        if "{token}" in self.settings.url:
            if token is None:
                raise ConfigError(f"source {self.name!r}: the url has {{token}} but token_env is not set")
            return self.settings.url.replace("{token}", token)
        return self.settings.url

    @property
    def location(self) -> str:
        return redact_location(self.settings.url.replace("{token}", "***"))

    def fetch(self, watermark: Watermark) -> Fetched:
        token = self._token()
        policy = HttpPolicy(
            connect_timeout_s=self.settings.connect_timeout_s,
            read_timeout_s=self.settings.read_timeout_s,
            retries=self.settings.retries,
            backoff_s=self.settings.backoff_s,
            max_backoff_s=self.settings.max_backoff_s,
            max_bytes=self.settings.max_bytes,
        )
        return fetch_url(self._url(token), watermark, policy, secrets=[token] if token else [])

    def read(self, body: bytes) -> Snapshot:
        return parse_cifs(body, zone=self.zone)

    def convert(self, item: FeedItem, *, values_checked: bool = False) -> Event:
        return cifs_item_to_event(item, self.namespace, self.zone)
