"""A WZDx work zone feed as a source (``kind = "wzdx"``): another agency's road works become city events."""

from __future__ import annotations

import os
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from adapters.base import Fetched, Source, Watermark
from adapters.http import HttpPolicy, fetch_url, redact_location
from exchange.errors import ConfigError
from exchange.model import Event
from feeds.items import FeedItem, Snapshot
from feeds.wzdx import parse_wzdx, wzdx_item_to_event

__all__ = ["WzdxAdapter", "WzdxSettings"]


class WzdxSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(
        default="",
        description="WZDx 4.x WorkZoneFeed URL, a file:// URL or a local path. '{token}' is replaced by the "
        "value of the variable named by token_env (many DOT feeds take an API key in the query string).",
    )
    token_env: str | None = Field(default=None, description="Environment variable holding the feed's API key.")
    namespace: str = Field(
        default="wzdx", pattern=r"^[a-z0-9_-]{1,50}$", description="Id namespace of this source's events."
    )
    connect_timeout_s: float = Field(default=10.0, gt=0)
    read_timeout_s: float = Field(default=30.0, gt=0)
    retries: int = Field(default=3, ge=0, le=10, description="Retries on connection errors, 5xx and 429.")
    backoff_s: float = Field(default=1.0, ge=0, description="First backoff step; doubles per retry, jittered.")
    max_backoff_s: float = Field(default=60.0, ge=0, description="Cap on one wait, Retry-After included.")
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, description="Response size cap in bytes.")


class WzdxAdapter(Source):
    """Reads a WZDx 4.0/4.1/4.2 feed; detours are skipped with a reason, other road events converted."""

    kind: ClassVar[str] = "wzdx"
    settings_model: ClassVar[type[BaseModel]] = WzdxSettings
    settings: WzdxSettings

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
        return parse_wzdx(body)

    def convert(self, item: FeedItem, *, values_checked: bool = False) -> Event:
        return wzdx_item_to_event(item, self.namespace, self.zone)
