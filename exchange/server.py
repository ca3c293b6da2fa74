"""The feed server partners poll: ``/feeds/cifs.xml``, ``/feeds/cifs.json``, ``/feeds/wzdx.geojson``.

Partners poll every minute or so, mostly to learn that nothing changed; a publication changes a
few times an hour. So everything is prepared once per publication and a poll only picks bytes:

- The ``publications`` rows (body, gzip body and strong ETag, made by
  :func:`exchange.publications.publication_row`) are copied into memory, together with the
  ready-made response headers of every variant (200 / 304, identity / gzip).
- A background task asks the store ``SELECT feed, etag, published_ms FROM publications`` at most
  every ``refresh_s`` seconds, in a worker thread so the event loop never waits on the database.
  When anything differs it reads every row in ONE statement (one snapshot: the publish step
  writes a publication in one transaction) and replaces the whole in-memory dict at once, so a
  poll sees one publication or the next, never a mix.
- The partners table is re-read on the same period: a revoked token is refused within
  ``refresh_s``.
- Requests are counted in memory and written to ``downloads`` in batches (every ``flush_s``
  seconds and at shutdown), so a poll costs no database write. Per (partner, feed), a 200 GET
  (the body sent) is a download (``downloads.count``); a 304 revalidation or a HEAD is a poll
  (``downloads.polls``); ``downloads.last_ms`` is the time of the last of either. Anonymous
  requests count as ``-``. Refused (401), unpublished (503) and off (404: the feed's target is off,
``exchange.targets.off_feeds``, the reason in the body; known only with a ``config``) requests are not
counted. A
  failed write keeps the counts for the next flush; a hard kill loses at most ``flush_s``
  seconds of counts.

Without ``require_token`` no token is needed; a valid one still names the partner in the counts,
an unknown one is ignored. While the store is unreachable the last copy stays served (and the
last partner list stays in force); ``/health`` says ``"store": "unreachable"``.

Validators follow RFC 9110: ``If-None-Match`` (lists, ``*``, weak comparison) wins over
``If-Modified-Since``. The gzip body is a different representation, so it has its own strong ETag
(the publication's ETag with ``-gzip`` appended inside the quotes); either tag validates the
current publication.

The publish step builds its rows with :func:`exchange.publications.publication_row`: the server
trusts the stored ETag and gzip body as they are.

Feeds are bytes in memory, served through a plain ASGI endpoint (no Request object, no
per-request header building); Starlette only routes.

Open feeds (no token required) can be read from any web page: every answer carries
``Access-Control-Allow-Origin: *`` (and exposes ``ETag``, ``Last-Modified``, ``Content-Length``),
prepared with the other headers, and a CORS preflight (``OPTIONS``) gets 204 (not counted: it
asks for nothing). Feeds that need a partner token send no CORS header and refuse ``OPTIONS``
(405): a browser page of another origin cannot read them (:mod:`exchange.cors`). The catalogue
of the feeds (``/feeds``) is :mod:`exchange.catalogue_web`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from email.utils import formatdate, parsedate_to_datetime
from functools import lru_cache
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from sqlalchemy import Connection, Engine, Table, case, select, update
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from exchange.api import api_router, docs_router
from exchange.catalogue_web import catalogue_routes
from exchange.config import Config
from exchange.cors import OPEN_READ, PREFLIGHT, as_headers
from exchange.db import db_error_message, writing
from exchange.errors import ExchangeError
from exchange.http_headers import weighted
from exchange.metrics import ANONYMOUS_PARTNER, UNKNOWN_PARTNER, RequestMetrics, ServerMetrics
from exchange.partners import ANONYMOUS, hash_token
from exchange.publications import FEEDS
from exchange.redaction import install_log_redaction
from exchange.runtime import degraded, now_ms
from exchange.schema import downloads, operators, partners, publications
from exchange.targets import off_feeds
from exchange.web_auth import OperatorAccess, login_routes, may_carry_token, offered_tokens
from exchange.webmap import map_routes

if TYPE_CHECKING:
    from exchange.health import HealthReport

__all__ = [
    "REALM",
    "FeedServer",
    "accepts_gzip",
    "create_app",
    "default_cache_control",
]

log = logging.getLogger("exchange.server")

REALM = "traffic-exchange"
_ETAG = re.compile(r'(?:W/)?("[^"]*")')


def default_cache_control(require_token: bool, max_age: int = 60) -> str:
    """``public`` for open feeds; ``private`` when tokens are required.

    With tokens, a shared cache (a CDN, nginx ``proxy_cache``) honouring ``public`` would store the
    feed and hand it to anyone, token or not: ``private`` keeps token-protected feeds out of shared
    caches while still letting each partner's own client cache them.
    """
    return f"{'private' if require_token else 'public'}, max-age={max_age}"


@lru_cache(maxsize=512)
def accepts_gzip(value: str) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (``gzip`` / ``x-gzip`` or ``*`` with q > 0).

    >>> accepts_gzip("gzip, deflate, br"), accepts_gzip("br;q=1, gzip;q=0"), accepts_gzip("*;q=0.1")
    (True, False, True)
    >>> accepts_gzip("identity"), accepts_gzip("*, gzip;q=0")
    (False, False)
    """
    gzip_q: float | None = None
    star_q: float | None = None
    for coding, q in weighted(value):
        if coding in ("gzip", "x-gzip"):
            gzip_q = q if gzip_q is None else max(gzip_q, q)
        elif coding == "*":
            star_q = q
    if gzip_q is not None:
        return gzip_q > 0
    return star_q is not None and star_q > 0


@lru_cache(maxsize=256)
def _http_date_s(value: str) -> int | None:
    """An HTTP date as epoch seconds; None when invalid (the header is then ignored, RFC 9110)."""
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class _Feed:
    """One publication of one feed, with every response header list ready to send."""

    name: str
    etag: str
    content_type: str
    published_ms: int
    first_published_ms: int
    events: int
    body: bytes
    body_gzip: bytes
    published_s: int
    tags: frozenset[str]
    ok_plain: Headers
    ok_gzip: Headers
    not_modified_plain: Headers
    not_modified_gzip: Headers

    @classmethod
    def from_row(cls, row: Mapping[str, Any], cache_control: str, cors: Sequence[tuple[bytes, bytes]] = ()) -> _Feed:
        """``cors``: headers every answer carries (an open feed's CORS headers; none when tokens are required)."""
        body, body_gzip = bytes(row["body"]), bytes(row["body_gzip"])
        etag = row["etag"]
        etag_gzip = etag[:-1] + '-gzip"' if etag.endswith('"') else etag + "-gzip"
        last_modified = formatdate(row["published_ms"] // 1000, usegmt=True)
        common: Headers = [
            (b"last-modified", last_modified.encode()),
            (b"cache-control", cache_control.encode("latin-1")),
            (b"vary", b"Accept-Encoding"),
            *cors,
        ]
        content = [(b"content-type", row["content_type"].encode("latin-1")), (b"x-content-type-options", b"nosniff")]
        plain_tag = [(b"etag", etag.encode("latin-1"))]
        gzip_tag = [(b"etag", etag_gzip.encode("latin-1"))]
        return cls(
            name=row["feed"],
            etag=etag,
            content_type=row["content_type"],
            published_ms=row["published_ms"],
            first_published_ms=row.get("first_published_ms") or row["published_ms"],
            events=row["events"],
            body=body,
            body_gzip=body_gzip,
            published_s=row["published_ms"] // 1000,
            tags=frozenset({etag, etag_gzip}),
            ok_plain=[*content, (b"content-length", str(len(body)).encode()), *plain_tag, *common],
            ok_gzip=[*content, (b"content-encoding", b"gzip"), (b"content-length", str(len(body_gzip)).encode()),
                     *gzip_tag, *common],
            not_modified_plain=[*plain_tag, *common],
            not_modified_gzip=[*gzip_tag, *common],
        )


class FeedServer:
    """The in-memory state behind the app: feeds, active tokens, pending download and poll counts."""

    def __init__(
        self,
        engine: Engine,
        *,
        require_token: bool,
        refresh_s: float = 1.0,
        flush_s: float = 5.0,
        cache_control: str | None = None,
    ) -> None:
        if refresh_s <= 0 or flush_s <= 0:
            raise ValueError("refresh_s and flush_s must be positive")
        self.engine = engine
        self.require_token = require_token
        self.refresh_s = refresh_s
        self.flush_s = flush_s
        self.cache_control = cache_control or default_cache_control(require_token)
        #: sent with every answer of a feed: CORS for open feeds only (a partner-only feed says nothing of it)
        self.cors_headers: Headers = [] if require_token else as_headers(OPEN_READ)
        self.feeds: dict[str, _Feed] = {}
        #: feed -> why it is not published (its target is off): answered 404 with the reason
        self.off: Mapping[str, str] = {}
        self._versions: dict[str, tuple[str, int]] = {}
        self._tokens: tuple[tuple[bytes, str], ...] = ()
        self._operator_tokens: tuple[tuple[bytes, str], ...] = ()
        self._operator_sessions: dict[str, tuple[str, int | None]] = {}
        self._counts: dict[tuple[str, str], list[int]] = {}
        self.refreshed_ms: int | None = None
        self.refresh_error: str | None = None
        #: the download counts could not be written at the last flush (said once per outage)
        self.counts_failing = False

    # ------------------------------------------------------------------ reading the store (worker threads)

    def refresh(self) -> bool:
        """Re-read partners, and the publications if they changed; True if the feeds were replaced.

        Blocking: call it from a worker thread. On a store error the previous copy stays in use.
        """
        try:
            with self.engine.connect() as conn:
                self._load_tokens(conn)
                changed = self._load_publications(conn)
        except (SQLAlchemyError, ExchangeError) as exc:
            message = db_error_message(exc)
            if self.refresh_error is None:  # once per outage, not once per second
                log.error("cannot refresh from the store, serving the last copy: %s", message)
            self.refresh_error = message
            return False
        if self.refresh_error is not None:
            log.info("store reachable again")
        self.refresh_error = None
        self.refreshed_ms = now_ms()
        return changed

    def _load_publications(self, conn: Connection) -> bool:
        versions = {
            feed: (etag, published_ms)
            for feed, etag, published_ms in conn.execute(
                select(publications.c.feed, publications.c.etag, publications.c.published_ms)
            )
        }
        if versions == self._versions:
            return False
        # One statement, one snapshot: every row of one publication or of the next, never a mix.
        rows = conn.execute(select(publications)).mappings().all()
        feeds = {row["feed"]: _Feed.from_row(dict(row), self.cache_control, self.cors_headers) for row in rows}
        self.feeds = feeds  # the swap: one assignment
        self._versions = {name: (feed.etag, feed.published_ms) for name, feed in feeds.items()}
        log.info("serving %s", ", ".join(f"{f.name} {f.etag} ({f.events} events)" for f in feeds.values()) or "nothing")
        return True

    def _load_tokens(self, conn: Connection) -> None:
        """The active partners' and operators' tokens; one read of each table."""
        self._tokens = _active_tokens(conn, partners)
        sessions = {
            name: (token_hash, signed_out_ms)
            for name, token_hash, signed_out_ms in conn.execute(
                select(operators.c.name, operators.c.token_hash, operators.c.signed_out_ms)
                .where(operators.c.revoked_ms.is_(None))
            )
        }
        self._operator_tokens = tuple((token_hash.encode("ascii"), name) for name, (token_hash, _) in sessions.items())
        self._operator_sessions = sessions

    # ------------------------------------------------------------------ tokens

    def partner_for(self, candidates: Iterable[str]) -> str | None:
        """The active partner owning one of these tokens, or None."""
        return _owner(self._tokens, candidates)

    def operator_session(self, name: str) -> tuple[str, int | None] | None:
        """An active operator's token hash and last sign-out time (sign-in cookies are checked against both)."""
        return self._operator_sessions.get(name)

    def sign_out(self, name: str, at_ms: int) -> None:
        """Refuse the operator's sign-in cookies issued until ``at_ms``, here at once and in the store
        (for the other servers of the store, at their next refresh). Blocking: a worker thread."""
        found = self._operator_sessions.get(name)
        if found is not None:
            self._operator_sessions = {**self._operator_sessions, name: (found[0], at_ms)}
        with writing(self.engine) as conn:
            conn.execute(update(operators).where(operators.c.name == name).values(signed_out_ms=at_ms))

    def operator_for(self, candidates: Iterable[str]) -> str | None:
        """The active operator owning one of these tokens, or None (partner tokens are not operator tokens)."""
        return _owner(self._operator_tokens, candidates)

    # ------------------------------------------------------------------ download and poll counts

    def count(self, partner: str, feed: str, poll: bool = False) -> None:
        """One served request: a download (a 200 GET, the body sent) or, with ``poll``, a 304 or a HEAD.

        The pending entry of (partner, feed) is ``[downloads, polls, last_ms]``.
        """
        entry = self._counts.get((partner, feed))
        at_ms = now_ms()
        if entry is None:
            self._counts[(partner, feed)] = [0, 1, at_ms] if poll else [1, 0, at_ms]
        else:
            entry[1 if poll else 0] += 1
            entry[2] = at_ms

    def take_counts(self) -> dict[tuple[str, str], list[int]]:
        """The pending counts, leaving none; call on the event loop thread (where counting happens)."""
        pending, self._counts = self._counts, {}
        return pending

    def restore_counts(self, pending: Mapping[tuple[str, str], list[int]]) -> None:
        """Put back counts a failed flush could not write, to try again next time."""
        for key, (downloads_n, polls_n, last_ms) in pending.items():
            entry = self._counts.setdefault(key, [0, 0, last_ms])
            entry[0] += downloads_n
            entry[1] += polls_n
            entry[2] = max(entry[2], last_ms)

    def write_counts(self, pending: Mapping[tuple[str, str], list[int]]) -> None:
        """Add the counts to ``downloads`` in one transaction (blocking: a worker thread)."""
        if not pending:
            return
        rows = [
            {"partner": partner, "feed": feed, "count": downloads_n, "polls": polls_n, "last_ms": last_ms}
            for (partner, feed), (downloads_n, polls_n, last_ms) in sorted(pending.items())  # one lock order
        ]
        with writing(self.engine) as conn:
            _add_downloads(conn, rows)

    async def flush(self) -> None:
        pending = self.take_counts()
        try:
            await run_in_threadpool(self.write_counts, pending)
        except (SQLAlchemyError, ExchangeError) as exc:
            self.restore_counts(pending)
            # said once per outage, not at every flush (720 lines an hour): the store's own state is in /health
            if not self.counts_failing:
                log.warning("cannot write download and poll counts (kept for the next try while the server "
                            "runs; said once until they are written again): %s", db_error_message(exc))
            self.counts_failing = True
            return
        if self.counts_failing:
            log.info("download and poll counts written again")
        self.counts_failing = False

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Refresh every ``refresh_s`` and flush every ``flush_s`` until cancelled."""
        next_flush = time.monotonic() + self.flush_s
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await run_in_threadpool(self.refresh)
                if time.monotonic() >= next_flush:
                    await self.flush()
                    next_flush = time.monotonic() + self.flush_s
            except Exception:  # a bug must not stop the refreshing for the life of the process
                log.exception("feed refresh failed")


def _active_tokens(conn: Connection, table: Table) -> tuple[tuple[bytes, str], ...]:
    rows = conn.execute(select(table.c.token_hash, table.c.name).where(table.c.revoked_ms.is_(None))).all()
    return tuple((token_hash.encode("ascii"), name) for token_hash, name in rows)


def _owner(tokens: tuple[tuple[bytes, str], ...], candidates: Iterable[str]) -> str | None:
    """The name owning one of these tokens, or None.

    Every stored hash is compared, in constant time, whatever matched: the response time says
    nothing about how close a guess was or where it sits in the table.
    """
    for candidate in candidates:
        digest = hash_token(candidate).encode("ascii")
        found: str | None = None
        for stored, name in tokens:
            if hmac.compare_digest(stored, digest):
                found = name
        if found is not None:
            return found
    return None


def _add_downloads(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Upsert: count += downloads, polls += polls, last_ms = the later one. Safe with several servers on one store."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = conn.dialect.name
    if dialect not in ("postgresql", "sqlite"):  # pragma: no cover - the store runs on these two only
        raise NotImplementedError(dialect)
    stmt: Any = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(downloads)
    stmt = stmt.on_conflict_do_update(
        index_elements=[downloads.c.partner, downloads.c.feed],
        set_={
            "count": downloads.c.count + stmt.excluded.count,
            "polls": downloads.c.polls + stmt.excluded.polls,
            "last_ms": case((stmt.excluded.last_ms > downloads.c.last_ms, stmt.excluded.last_ms),
                            else_=downloads.c.last_ms),
        },
    )
    conn.execute(stmt, rows)


# --------------------------------------------------------------------------- HTTP

_UNAUTHORIZED: Headers = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"www-authenticate", f'Basic realm="{REALM}"'.encode()),
    (b"cache-control", b"no-store"),
]
_PREFLIGHT: Headers = as_headers(PREFLIGHT)
_UNAUTHORIZED_BODY = (b"a partner token is required: Authorization: Bearer <token>, X-Partner-Token, ?token=, "
                      b"or HTTP Basic (the token as the password)\n")
#: a token was offered but is no active partner's (mistyped, revoked): the partner should know it is not missing
_INVALID_TOKEN_BODY = b"the partner token given is not valid (unknown or revoked); ask the city for a current one\n"
_UNPUBLISHED_BODY = b"this feed has not been published yet\n"


class _FeedEndpoint:
    """The ASGI app of one feed path: GET and HEAD, and OPTIONS (a CORS preflight) when the feeds are
    open; Starlette's route answers 405 to the rest."""

    def __init__(self, server: FeedServer, feed: str, requests: RequestMetrics) -> None:
        self.server = server
        self.feed = feed
        self.observe = requests.observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = self.server
        if scope["method"] == "OPTIONS":  # routed only when the feeds are open: not a request for the feed
            await _send(send, 204, _PREFLIGHT, b"")
            return
        authorization = header_token = if_none_match = if_modified_since = accept_encoding = None
        for name, value in scope["headers"]:
            if name == b"accept-encoding":
                accept_encoding = value.decode("latin-1")
            elif name == b"if-none-match":  # several fields form one list
                tags = value.decode("latin-1")
                if_none_match = tags if if_none_match is None else f"{if_none_match},{tags}"
            elif name == b"if-modified-since":
                if_modified_since = value.decode("latin-1")
            elif name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"x-partner-token":
                header_token = value.decode("latin-1")

        partner = ANONYMOUS
        query = scope.get("query_string", b"")
        if server.require_token or authorization or header_token or may_carry_token(query):
            offered = offered_tokens(authorization, header_token, query)
            found = server.partner_for(offered)
            if found is not None:
                partner = found
            elif server.require_token:
                self.observe(self.feed, 401, UNKNOWN_PARTNER if offered else ANONYMOUS_PARTNER, download=False)
                await _send(send, 401, _UNAUTHORIZED, _INVALID_TOKEN_BODY if offered else _UNAUTHORIZED_BODY)
                return
        shown = ANONYMOUS_PARTNER if partner == ANONYMOUS else partner  # its name, never a token

        off = server.off.get(self.feed)
        if off is not None:  # not "not published yet": it will not be, and the partner should know why
            self.observe(self.feed, 404, shown, download=False)
            headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"no-store"),
                       *server.cors_headers]
            await _send(send, 404, headers, f"this feed is not published: {off}\n".encode())
            return
        feed = server.feeds.get(self.feed)
        if feed is None:
            self.observe(self.feed, 503, shown, download=False)
            headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"retry-after", b"60"),
                       (b"cache-control", b"no-store"), *server.cors_headers]
            await _send(send, 503, headers, _UNPUBLISHED_BODY)
            return

        gzip = accept_encoding is not None and accepts_gzip(accept_encoding)
        if if_none_match is not None:
            not_modified = if_none_match.strip() == "*" or any(
                tag in feed.tags for tag in _ETAG.findall(if_none_match)
            )
        elif if_modified_since is not None:
            since = _http_date_s(if_modified_since)
            not_modified = since is not None and feed.published_s <= since
        else:
            not_modified = False

        head = scope["method"] == "HEAD"
        server.count(partner, self.feed, not_modified or head)  # a 304 or a HEAD is a poll, not a download
        self.observe(self.feed, 304 if not_modified else 200, shown, download=not (not_modified or head))
        if not_modified:
            await _send(send, 304, feed.not_modified_gzip if gzip else feed.not_modified_plain, b"")
        elif gzip:
            await _send(send, 200, feed.ok_gzip, b"" if head else feed.body_gzip)
        else:
            await _send(send, 200, feed.ok_plain, b"" if head else feed.body)


async def _send(send: Send, status: int, headers: Headers, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Checkup:
    """The health of the sources and feeds, read from the store at most every :data:`_CHECKUP_EVERY_S`."""

    def __init__(self, server: FeedServer, config: Config | None) -> None:
        self.server, self.config = server, config or Config()
        self.last: HealthReport | None = None
        self.read_at = 0.0

    async def report(self) -> HealthReport | None:
        if self.last is None or time.monotonic() - self.read_at >= _CHECKUP_EVERY_S:
            self.read_at = time.monotonic()
            try:
                self.last = await run_in_threadpool(self._read)
            except (SQLAlchemyError, ExchangeError) as exc:
                message = db_error_message(exc)
                log.debug("cannot read the health from the store: %s", message)
        return self.last

    def _read(self) -> HealthReport:
        from exchange.health import read_health

        with self.server.engine.connect() as conn:
            return read_health(conn, self.config, now_ms())


#: how long a read of the sources' health is reused (a monitor polling every second costs nothing)
_CHECKUP_EVERY_S = 2.0


def _states(report: HealthReport | None) -> dict[str, Any]:
    if report is None:
        return {"sources": {}, "feed_states": {}}
    return {
        "sources": {h.name: {**h.record(), "since": _iso(h.since_ms), "last_success": _iso(h.last_success_ms)}
                    for h in report.sources},
        "feed_states": {h.name: {**h.record(), "since": _iso(h.since_ms)} for h in report.feeds},
    }


def _iso(ms: int | None) -> str | None:
    from exchange.output import iso

    return iso(ms)


async def _no_icon(_request: Request) -> Response:
    """Every browser asks for one: no icon, said without a 404 in the console."""
    return Response(status_code=204, headers={"cache-control": "public, max-age=86400"})


def create_app(
    engine: Engine,
    *,
    require_token: bool,
    refresh_s: float = 1.0,
    flush_s: float = 5.0,
    cache_control: str | None = None,
    config: Config | None = None,
) -> FastAPI:
    """The feed server as an ASGI app; run it with uvicorn (``exchange serve`` and ``exchange run`` do).

    The copy of the store is loaded at startup (the lifespan), refreshed in the background, and
    the download and poll counts are flushed at shutdown. ``app.state.feed_server`` is the :class:`FeedServer`.
    ``cache_control`` defaults to :func:`default_cache_control`. ``config`` names the sources whose
    health ``/health`` and ``/health/sources`` report (without it: the feeds only).
    """
    server = FeedServer(engine, require_token=require_token, refresh_s=refresh_s, flush_s=flush_s,
                        cache_control=cache_control)
    checkup = _Checkup(server, config)
    if config is not None:
        server.off = off_feeds(config)
    # uvicorn's access log prints the query string, ?token= included: masked (exchange.redaction)
    install_log_redaction()

    async def health(_request: Request) -> JSONResponse:
        """Readiness for a load balancer: 200 while a publication can be served, whatever the sources do."""
        feeds = server.feeds
        report = await checkup.report()
        body = {
            "status": "ok" if feeds else "unpublished",
            "tokens_required": server.require_token,
            "refreshed": _iso(server.refreshed_ms),
            # not the driver's message: /health is public and that names internal hosts (it is logged)
            "store": "ok" if server.refresh_error is None else "unreachable",
            "feeds": {
                name: ({"off": server.off[name]} if name in server.off else None) if (feed := feeds.get(name)) is None
                else {
                    "published": _iso(feed.published_ms),
                    "published_ms": feed.published_ms,
                    # what the feeds hold is for partners when they need a token (as in the catalogue)
                    **({} if server.require_token else {
                        "etag": feed.etag,
                        "events": feed.events,
                        "bytes": len(feed.body),
                        "gzip_bytes": len(feed.body_gzip),
                    }),
                }
                for name in FEEDS
            },
            **_states(report),
        }
        return JSONResponse(body, status_code=200 if feeds else 503, headers={"cache-control": "no-store"})

    async def health_sources(_request: Request) -> JSONResponse:
        """For monitoring, never for a load balancer: 503 while a required source fails or a feed is stale."""
        report = await checkup.report()
        problems = report.problems if report is not None else ["the store has not been read yet"]
        if server.refresh_error is not None:
            problems = ["the store is unreachable", *problems]
        problems = [*degraded().values(), *problems]  # what the daemon runs without (a wrong network file)
        body = {"status": "ok" if not problems else "failing", "problems": problems, **_states(report)}
        return JSONResponse(body, status_code=503 if problems else 200, headers={"cache-control": "no-store"})

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        install_log_redaction()  # again: uvicorn may have set up handlers of its own since create_app
        await run_in_threadpool(server.refresh)
        task = asyncio.create_task(server.run(), name="exchange-feed-refresh")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await server.flush()

    metrics = ServerMetrics(engine, config)  # /metrics: the store's figures and this server's requests
    feed_methods = ["GET"] if require_token else ["GET", "OPTIONS"]
    routes: list[BaseRoute] = [
        Route(f"/feeds/{name}", _FeedEndpoint(server, name, metrics.requests), methods=feed_methods, name=name)
        for name in FEEDS
    ]
    routes.append(Route("/health", health, methods=["GET"]))
    routes.append(Route("/health/sources", health_sources, methods=["GET"]))
    routes.append(Route("/metrics", metrics.endpoint, methods=["GET"]))
    routes.append(Route("/favicon.ico", _no_icon, methods=["GET"]))
    settings = config or Config()
    routes.extend(catalogue_routes(engine, settings, restricted=require_token,
                                   published=lambda: server.feeds.values()))  # /, /feeds, /feeds/catalog.*
    operator_access = OperatorAccess(server, settings.web)
    routes.extend(login_routes(operator_access))  # /login, /logout
    routes.extend(map_routes(settings))  # /map, /static
    # FastAPI for the OpenAPI schema of the /api routes; the feed routes above stay plain ASGI
    # endpoints (not in the schema: the feeds are documented by their own formats).
    app = FastAPI(
        title="traffic-exchange",
        version=version("traffic-exchange"),
        description="The events API behind the operator map, the feed catalogue and the feeds partners poll.",
        routes=routes,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.feed_server = server
    app.state.operator_access = operator_access
    app.include_router(api_router(config))  # /api/*: the events API behind the operator map (operators only)
    app.include_router(docs_router())  # /docs: Swagger UI from files in the package
    app.add_middleware(_HeadLikeGet)
    app.state.metrics = metrics
    return app


#: the routes FastAPI serves (the others are Starlette's, which answer HEAD on a GET route themselves)
_FASTAPI_PATHS = re.compile(r"/(api/|docs(/|$)|openapi\.json$)")


class _HeadLikeGet:
    """HEAD on the FastAPI routes (``/api/*``, ``/docs``, ``/openapi.json``) answered as their GET without
    the body: FastAPI answers 405 to HEAD on a GET route, and a monitor's or a proxy's HEAD is a GET
    that wants the headers only (RFC 9110, 9.3.2). Authorization and errors are the GET's."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD" or not _FASTAPI_PATHS.match(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)
