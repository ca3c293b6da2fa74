"""The common base of sources that read one URL (the Waze feed, WZDx, CIFS, CSV, GeoJSON, ArcGIS)."""

from __future__ import annotations

import os
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, field_validator

from adapters.base import Fetched, Source, Watermark
from adapters.http import HttpPolicy, fetch_url, redact_location
from exchange.errors import ConfigError
from feeds.city_fields import CityFormat

__all__ = ["NAMESPACE_PATTERN", "CitySourceSettings", "HttpSource", "HttpSourceSettings"]


NAMESPACE_PATTERN = r"^[a-z0-9_-]{1,50}$"


class HttpSourceSettings(BaseModel):
    """What every source that reads one URL shares: where, the id namespace, the HTTP limits."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(
        default="",
        description="http(s) URL, file:// URL or local path (relative to the config file). '{token}' is replaced "
        "by the value of the variable named by token_env.",
    )
    token_env: str | None = Field(default=None, description="Environment variable holding the feed's token or key.")

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        """A URL of a scheme nothing reads (``htp://``) is named when the config is read, not at the first poll."""
        scheme, separator, _rest = value.partition("://")
        if separator and scheme.lower() not in ("http", "https", "file"):
            raise ValueError(f"unsupported URL scheme {scheme!r} (http, https or file, or a local path)")
        return value

    namespace: str = Field(
        default="city", pattern=NAMESPACE_PATTERN,
        description="Id namespace: sources that publish the same ids share one, so an id is one event.",
    )
    connect_timeout_s: float = Field(default=10.0, gt=0, description="Connect timeout, seconds.")
    read_timeout_s: float = Field(default=30.0, gt=0, description="Read timeout, seconds.")
    deadline_s: float = Field(
        default=60.0, gt=0,
        description="One whole fetch, retries and backoff waits included, seconds: an upstream that trickles "
        "(each read within the read timeout) is cut off at this deadline.",
    )
    retries: int = Field(default=3, ge=0, le=10, description="Retries on connection errors, 5xx and 429.")
    backoff_s: float = Field(default=1.0, ge=0, description="First backoff step; doubles per retry, jittered.")
    max_backoff_s: float = Field(default=60.0, ge=0, description="Cap on one wait, Retry-After included.")
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, description="Response size cap in bytes.")
    allow_redirect_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts a redirect may lead to besides the URL's own (e.g. a CDN); the token is never "
        "carried there. Redirects to the same host (http to https included) are followed; to a non-HTTP "
        "URL, from https to http, or more than 5 times: refused.",
    )
    publisher: str | None = Field(
        default=None, min_length=1,
        description="City sources: who publishes this source's events, named in the CIFS <source> of those that "
        "name no publisher of their own (default: the source's name).",
    )

    def http_policy(self) -> HttpPolicy:
        return HttpPolicy(
            connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s,
            deadline_s=self.deadline_s,
            retries=self.retries,
            backoff_s=self.backoff_s,
            max_backoff_s=self.max_backoff_s,
            max_bytes=self.max_bytes,
            allow_redirect_hosts=tuple(self.allow_redirect_hosts),
        )


class CitySourceSettings(CityFormat, HttpSourceSettings):
    """Settings every city source (CSV, GeoJSON, ArcGIS) shares: a URL and HTTP limits, plus the field mapping.

    pydantic lists the fields of the last base first, so the HTTP keys come before ``mapping`` (the
    order validation errors are reported in).
    """

    url: str = Field(
        min_length=1,
        description="http(s) URL, file:// URL or local path (relative to the config file) of the city's file.",
    )


class HttpSource(Source):
    """A source that reads one URL: the token from the environment, redacted everywhere."""

    settings: HttpSourceSettings

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    def token(self) -> str | None:
        if not self.settings.token_env:
            return None
        token = os.environ.get(self.settings.token_env)
        if not token:
            raise ConfigError(f"source {self.name!r}: environment variable {self.settings.token_env} is not set")
        return token

    def url(self, token: str | None) -> str:
        if not self.settings.url:
            raise ConfigError(f"source {self.name!r} has no url; set it in the [[sources]] entry")
        if "{token}" in self.settings.url:
            if token is None:
                raise ConfigError(f"source {self.name!r}: the url has {{token}} but token_env is not set")
            # encoded: a token holding '+', '&', '/' or '=' must reach the upstream as it is, in a query or a path
            return self.settings.url.replace("{token}", quote(token, safe=""))
        return self.settings.url

    @property
    def location(self) -> str:
        if not self.settings.url:  # refused when fetched (`url`); said as nothing until then
            return ""
        return redact_location(self.settings.url.replace("{token}", "***"))

    def fetch(self, watermark: Watermark) -> Fetched:
        token = self.token()
        return fetch_url(self.url(token), watermark, self.settings.http_policy(), secrets=[token] if token else [],
                         http=self.http, should_stop=self.should_stop)
