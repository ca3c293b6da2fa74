"""A city's closures in an ArcGIS feature layer (``kind = "arcgis"``), read with its ``query`` operation.

``fetch`` pages through ``<layer>/query`` with ``f=geojson``, ``outSR=4326``, the configured
``where`` and ``outFields``, ``orderByFields=<id field>`` (a stable order is what makes paging by
offset correct) and ``resultOffset``/``resultRecordCount``, until a page no longer says
``exceededTransferLimit: true``; Esri's GeoJSON puts that flag at the top level or under
``properties``, and both are honoured. The next offset advances by the features actually received,
since a server caps a page at its own ``maxRecordCount`` when ``page_size`` is larger. The pages'
features are concatenated into one FeatureCollection, which :meth:`ArcGisAdapter.read` reads
exactly as the GeoJSON source does (:func:`feeds.city_geojson.read_feature_collection`).

* The layer must support pagination (hosted feature layers and ArcGIS Server 10.3+ do) and
  ``f=geojson`` (hosted layers and ArcGIS Server 10.4+).
* Conditional GET is not used: a paged query has no single ETag, so every poll reads every page
  (the watermark is ignored and left empty). Unchanged features cost little all the same: their
  digests match and they are not converted again.
* An Esri error body (``{"error": {"code": 498, "message": "Invalid token."}}``, often sent with
  HTTP 200) raises ``UpstreamRefused`` with the code, or ``UpstreamUnavailable`` for codes >= 500.
  HTTP errors and retries are :func:`adapters.http.fetch_url`'s, page by page.
* More than ``max_pages`` pages raises ``PayloadTooLarge`` rather than publishing a partial read,
  which would end every closure beyond the last page; so does a total above ``max_bytes``.
* A token (``token_env``) is sent as the ``token`` query parameter and never shown: locations and
  messages are redacted.
* Paging is not a consistent snapshot: an edit between two pages may shift a feature across the
  boundary (seen twice: the repeat is an item error; or missed once: one missed poll, which ends
  nothing under the default lifecycle).
* A page is read as any JSON payload (:func:`feeds.items.load_json`): what orjson refuses (NaN, a
  lone surrogate, a number beyond the float range) is read by the lenient reader and written back
  by its writer, so such a value rejects its feature, not the poll.
* Esri date fields arrive as epoch milliseconds and are read as such. Map ``id`` to a stable
  closure id, not ``OBJECTID``, which changes when a layer is republished.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar
from urllib.parse import urlencode

import orjson
from pydantic import BaseModel, Field

from adapters.base import Fetched, Watermark
from adapters.http import fetch_url, mask_secrets, redact_location
from adapters.http_source import CitySourceSettings, HttpSource
from exchange.errors import MalformedPayload, PayloadTooLarge, UpstreamRefused, UpstreamUnavailable
from exchange.model import Event
from feeds.city_geojson import feature_event, feature_field, read_feature_collection
from feeds.items import FeedItem, Snapshot, dumps_lenient, load_json

__all__ = ["ArcGisAdapter", "ArcGisSettings"]


class ArcGisSettings(CitySourceSettings):
    url: str = Field(
        min_length=1,
        description="The feature layer URL, e.g. https://services.arcgis.com/<org>/arcgis/rest/services/"
        "Closures/FeatureServer/0 ('/query' is added).",
    )
    where: str = Field(default="1=1", min_length=1, description="SQL where clause of the query.")
    out_fields: str = Field(
        default="*", min_length=1, description="Comma-separated fields to return, or '*'; the id field is added."
    )
    page_size: int = Field(default=1000, ge=1, le=100_000, description="resultRecordCount: features per page.")
    max_pages: int = Field(
        default=100, ge=1, le=100_000,
        description="Safety cap on pages per poll; a layer needing more fails the poll instead of half-reading.",
    )


class ArcGisAdapter(HttpSource):
    """An ArcGIS FeatureServer (or MapServer) layer, paged through its query endpoint."""

    kind: ClassVar[str] = "arcgis"
    settings_model: ClassVar[type[BaseModel]] = ArcGisSettings
    settings: ArcGisSettings

    def query_url(self) -> str:
        base = self.settings.url.rstrip("/")
        return base if base.endswith("/query") else f"{base}/query"

    def query_params(self, offset: int) -> dict[str, str]:
        """The query parameters of the page starting at ``offset`` (without the token)."""
        mapping_id = self.settings.mapping.id
        out_fields = self.settings.out_fields.strip()
        if out_fields != "*":
            names = [name.strip() for name in out_fields.split(",") if name.strip()]
            if mapping_id not in names:
                names.append(mapping_id)
            out_fields = ",".join(names)
        return {
            "f": "geojson",
            "where": self.settings.where,
            "outFields": out_fields,
            "outSR": "4326",
            "orderByFields": mapping_id,
            "resultOffset": str(offset),
            "resultRecordCount": str(self.settings.page_size),
        }

    def fetch(self, watermark: Watermark) -> Fetched:
        """Every page of the query, as one GeoJSON FeatureCollection body (``watermark`` is not used)."""
        token = self.token()
        secrets = [token] if token else []
        policy = self.settings.http_policy()
        features: list[Any] = []
        offset = received = 0
        until = time.monotonic() + policy.deadline_s  # the deadline bounds the whole read, every page
        plain = True  # every page read by orjson: it writes the features back as they were
        for page in range(1, self.settings.max_pages + 1):
            params = self.query_params(offset)
            if token:
                params["token"] = token
            url = f"{self.query_url()}?{urlencode(params)}"
            shown = redact_location(url, secrets)
            body = fetch_url(url, Watermark(), policy, secrets=secrets, http=self.http, should_stop=self.should_stop,
                             until=until).body or b""
            received += len(body)
            if received > policy.max_bytes:
                raise PayloadTooLarge(f"{self.location}: the pages passed the {policy.max_bytes}-byte cap")
            batch, more, checked = _page(body, page, shown, secrets)
            features.extend(batch)
            plain = plain and checked
            if not more:
                document = {"type": "FeatureCollection", "features": features}
                return Fetched(body=_collection(document, plain), location=self.location)
            if not batch:
                raise UpstreamRefused(f"{shown}: page {page} says more features follow but holds none")
            offset += len(batch)
        raise PayloadTooLarge(
            f"{self.location}: more than {self.settings.max_pages} pages of {self.settings.page_size} features; "
            "raise max_pages or narrow 'where'"
        )

    def read(self, body: bytes) -> Snapshot:
        return read_feature_collection(body, self.settings.mapping)

    def convert(self, item: FeedItem, *, values_checked: bool = False) -> Event:
        return feature_event(item, self.namespace, self.settings.mapping, self.zone, values_checked=values_checked)

    def field_value(self, item: FeedItem, name: str) -> Any:
        return feature_field(item, name)


def _collection(document: dict[str, Any], plain: bool) -> bytes:
    """The pages' features as one body that reads back to the same values."""
    if plain:
        try:
            return orjson.dumps(document)
        except orjson.JSONEncodeError:  # nested deeper than the 255 levels orjson writes
            pass
    return dumps_lenient(document)


def _page(body: bytes, page: int, shown: str, secrets: list[str]) -> tuple[list[Any], bool, bool]:
    """The features of one page, whether more follow, and whether orjson read it all; an Esri error body raises."""
    try:
        document, checked = load_json(body)
    except MalformedPayload:
        raise UpstreamRefused(f"{shown}: page {page} is not JSON (is the URL a feature layer?)") from None
    if not isinstance(document, dict):
        raise UpstreamRefused(f"{shown}: page {page} is not a JSON object")
    error = document.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        details = error.get("details")
        parts = [error.get("message") or "no message", *(details if isinstance(details, list) else [])]
        text = "; ".join(str(part) for part in parts if part)
        text = mask_secrets(text, secrets)
        kind = UpstreamUnavailable if isinstance(code, int) and code >= 500 else UpstreamRefused
        raise kind(f"{shown} answered Esri error {code}: {text}")
    features = document.get("features")
    if document.get("type") != "FeatureCollection" or not isinstance(features, list):
        raise UpstreamRefused(f"{shown}: page {page} is not a GeoJSON FeatureCollection")
    properties = document.get("properties")
    more = _flag(document.get("exceededTransferLimit")) or (
        isinstance(properties, dict) and _flag(properties.get("exceededTransferLimit"))
    )
    return features, more, checked


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")
