"""``/feeds``: the feed catalogue over HTTP, and ``/`` leading to it.

``/feeds`` and ``/feeds/`` answer by ``Accept``: HTML for people (the default, also for ``*/*``),
``application/json`` for scripts, ``application/ld+json`` (DCAT-AP) for portals; anything else is
406. ``/feeds/catalog.html``, ``/feeds/catalog.json`` and ``/feeds/catalog.jsonld`` name one
rendering whatever ``Accept`` says (give a harvester one of these).

The catalogue is open to everyone and readable from any web page (``Access-Control-Allow-Origin: *``,
preflight answered), also when the feeds themselves need a partner token; what it says of such
feeds is in :mod:`exchange.catalogue`. The documents are built from the feeds the server holds in
memory and from facts read from the store (download counts, the published events' extent) at
most every :data:`FACTS_EVERY_S` seconds, in a worker thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import orjson
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from exchange.catalogue import BBox, Catalogue, FeedFacts, feed_catalogue, media_type, to_json, to_jsonld
from exchange.catalogue_html import to_html
from exchange.config import CATALOGUE_FEEDS, Config
from exchange.cors import OPEN_READ, PREFLIGHT
from exchange.db import db_error_message
from exchange.errors import ExchangeError
from exchange.http_headers import weighted
from exchange.schema import downloads, events, published_events
from exchange.targets import off_feeds

__all__ = ["FACTS_EVERY_S", "StoreFacts", "catalogue_routes", "choose_rendering", "read_store_facts"]

log = logging.getLogger("exchange.catalogue")

#: how long the store's facts (downloads, extent) are reused: a harvester's burst costs one read
FACTS_EVERY_S = 5.0


#: the feeds in the order people read them: CIFS XML (what Waze polls) first
_FEED_ORDER = {name: index for index, name in enumerate(CATALOGUE_FEEDS)}
_RENDERINGS = {
    "html": "text/html; charset=utf-8",
    "json": "application/json",
    "jsonld": "application/ld+json",
}
#: media ranges -> rendering; the order is the preference on a tie (people first: a browser says */*)
_MEDIA = (("text/html", "html"), ("application/ld+json", "jsonld"), ("application/json", "json"))


def choose_rendering(accept: str | None) -> str | None:
    """The rendering an ``Accept`` header asks for (html, json, jsonld); None when none is acceptable.

    Each rendering takes the q of the most specific range that matches it (RFC 9110 12.5.1).

    >>> choose_rendering(None), choose_rendering("*/*"), choose_rendering("application/ld+json")
    ('html', 'html', 'jsonld')
    >>> choose_rendering("application/json, text/html;q=0.5"), choose_rendering("text/csv")
    ('json', None)
    >>> choose_rendering("text/html;q=0, application/*;q=0.2")
    'jsonld'
    >>> choose_rendering("application/json, text/plain, */*"), choose_rendering("text/html, application/json")
    ('json', 'html')
    """
    if accept is None or not accept.strip():
        return "html"
    ranges = weighted(accept)
    best: tuple[float, int, int, str] | None = None
    for order, (media, rendering) in enumerate(_MEDIA):
        main = media.split("/")[0]
        matched = ([(3, q) for kind, q in ranges if kind == media]
                   or [(2, q) for kind, q in ranges if kind == f"{main}/*"]
                   or [(1, q) for kind, q in ranges if kind == "*/*"])
        if not matched:
            continue
        precision, q = max(matched, key=lambda found: found[1])
        # the higher q wins; on a tie the one named rather than reached by a wildcard, then our preference
        if q > 0 and (best is None or (q, precision, -order) > best[:3]):
            best = (q, precision, -order, rendering)
    return best[3] if best else None


class _Published(Protocol):
    """What the catalogue reads of a feed the server holds (``exchange.server._Feed``)."""

    @property
    def name(self) -> str: ...
    @property
    def content_type(self) -> str: ...
    @property
    def published_ms(self) -> int: ...
    @property
    def first_published_ms(self) -> int: ...
    @property
    def events(self) -> int: ...
    @property
    def body(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class StoreFacts:
    """What the catalogue reads from the store: downloads per feed (every partner and anonymous
    together), the extent of the published events (else of the stored city events)."""

    downloads: dict[str, int]
    events_bbox: BBox | None


def read_store_facts(conn: Connection) -> StoreFacts:
    counts = {feed: int(total or 0) for feed, total in conn.execute(
        select(downloads.c.feed, func.sum(downloads.c.count)).group_by(downloads.c.feed))}
    extent = (func.min(events.c.min_lon), func.min(events.c.min_lat), func.max(events.c.max_lon),
              func.max(events.c.max_lat))
    published = select(*extent).select_from(events.join(published_events, published_events.c.event_id == events.c.id))
    box = conn.execute(published).one()
    if box[0] is None:
        box = conn.execute(select(*extent).where(events.c.origin == "city")).one()
    bbox = None if box[0] is None else (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
    return StoreFacts(counts, bbox)


class _Facts:
    """The store's facts, read at most every :data:`FACTS_EVERY_S`; the last ones while the store is away."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.last = StoreFacts({}, None)
        self.read_at: float | None = None

    async def current(self) -> StoreFacts:
        if self.read_at is None or time.monotonic() - self.read_at >= FACTS_EVERY_S:
            self.read_at = time.monotonic()
            try:
                self.last = await run_in_threadpool(self._read)
            except (SQLAlchemyError, ExchangeError) as exc:
                log.debug("cannot read the catalogue's facts from the store: %s", db_error_message(exc))
        return self.last

    def _read(self) -> StoreFacts:
        with self.engine.connect() as conn:
            return read_store_facts(conn)


def catalogue_routes(
    engine: Engine, config: Config, *, restricted: bool, published: Callable[[], Iterable[_Published]],
) -> list[BaseRoute]:
    """The routes of the catalogue and of ``/``; ``published`` gives the feeds being served now."""
    facts = _Facts(engine)

    async def build(request: Request) -> Catalogue:
        known = await facts.current()
        feeds = sorted(published(), key=lambda feed: _FEED_ORDER.get(feed.name, len(_FEED_ORDER)))
        base = config.catalogue.base_url or str(request.base_url)
        return feed_catalogue(
            config,
            [FeedFacts(name=f.name, media_type=media_type(f.content_type), published_ms=f.published_ms,
                       first_published_ms=f.first_published_ms, byte_size=len(f.body), events=f.events,
                       downloads=known.downloads.get(f.name, 0)) for f in feeds],
            base_url=base, restricted=restricted, events_bbox=known.events_bbox, off=off_feeds(config),
        )

    async def answer(request: Request, rendering: str | None, negotiated: bool) -> Response:
        vary = {"vary": "Accept"} if negotiated else {}
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=dict(PREFLIGHT))
        if rendering is None:
            listed = ", ".join(sorted(set(_RENDERINGS.values())))
            return Response(f"the catalogue is available as {listed}\n", status_code=406,
                            media_type="text/plain", headers={**OPEN_READ, **vary})
        catalogue = await build(request)
        if rendering == "html":
            body = to_html(catalogue).encode()
        else:
            body = orjson.dumps(to_json(catalogue) if rendering == "json" else to_jsonld(catalogue),
                                option=orjson.OPT_INDENT_2)
        headers = {**OPEN_READ, **vary, "cache-control": "public, max-age=60", "x-content-type-options": "nosniff"}
        return Response(body, headers=headers, media_type=_RENDERINGS[rendering])

    async def negotiated(request: Request) -> Response:
        return await answer(request, choose_rendering(request.headers.get("accept")), negotiated=True)

    def fixed(rendering: str) -> Callable[[Request], object]:
        async def endpoint(request: Request) -> Response:
            return await answer(request, rendering, negotiated=False)

        return endpoint

    async def home(request: Request) -> Response:
        # never built from the request's Host: the public address when set, else a path on this host
        base = (config.catalogue.base_url or "").rstrip("/") or request.scope.get("root_path", "")
        return RedirectResponse(f"{base}/feeds", status_code=302)

    methods = ["GET", "OPTIONS"]
    return [
        Route("/", home, methods=["GET"]),
        Route("/feeds", negotiated, methods=methods, name="catalogue"),
        Route("/feeds/", negotiated, methods=methods),
        Route("/feeds/catalog.html", fixed("html"), methods=methods),
        Route("/feeds/catalog.json", fixed("json"), methods=methods),
        Route("/feeds/catalog.jsonld", fixed("jsonld"), methods=methods),
    ]
