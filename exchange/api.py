"""The events API behind the operator map: ``/api/events``, ``/api/events/{id}``, ``/api/stats``.

Every route needs an operator (:func:`exchange.web_auth.require_operator`: 401 without a token
unless ``[web] access = "open"``); Waze's terms do not let the city show crowd data to the public.
The responses are pydantic models, so ``/openapi.json`` documents them as they are sent.

Endpoints are plain ``def``: FastAPI runs them in a worker thread, so the event loop (and the feeds
partners poll on it) never waits on the store. The queries and what each event shows are in
:mod:`exchange.event_views`; this module parses the parameters and shapes the answers.

A bad parameter is a 422 naming it (FastAPI's validation-error body, so every 422 has one shape);
an unreachable store is a 503; nothing a client sends makes a 500.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import re
import threading
from collections.abc import Iterator
from datetime import datetime, tzinfo
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.security import HTTPBearer
from pydantic import BaseModel, Field
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError
from starlette.responses import HTMLResponse, Response

from exchange.db import db_error_message
from exchange.errors import ExchangeError
from exchange.event_views import (
    HOUR_MS,
    MAX_STATS_WINDOW_MS,
    BadCursor,
    EventQuery,
    Facts,
    decode_cursor,
    event_detail,
    event_page,
    event_stats,
)
from exchange.model import Category
from exchange.output import iso
from exchange.runtime import duration_ms, now_ms
from exchange.store import Unreadable
from exchange.web_auth import require_operator

if TYPE_CHECKING:
    from exchange.config import Config
    from geo.network import RoadNetwork

__all__ = ["api_router", "docs_router"]

log = logging.getLogger("exchange.api")

#: the longest id the store keeps (``events.id``): a longer one is unknown without asking the store
_MAX_ID_LENGTH = 300
#: times the API takes and shows: from 1970 to the end of year 9999 (what ISO 8601 writes in four digits)
_LAST_MS = 253_402_300_799_999
_EPOCH_MS = re.compile(r"[+-]?\d{1,19}")
_CATEGORIES = tuple(category.value for category in Category)


# --------------------------------------------------------------------------- response models


class Geometry(BaseModel):
    """GeoJSON geometry, WGS84 lon/lat: a Point or a LineString."""

    type: Literal["Point", "LineString"]
    coordinates: list[float] | list[list[float]]


class EventProperties(BaseModel):
    """What the map shows of an event. Times are ISO 8601 UTC; measures are null when they do not apply."""

    id: str
    source: str = Field(description="namespace of the source family, e.g. waze or city")
    kind: Literal["alert", "jam", "irregularity", "city"]
    origin: Literal["crowd", "city"]
    category: str = Field(description="ACCIDENT, JAM, HAZARD, ROAD_CLOSED, CONSTRUCTION, POLICE, MISC, IRREGULARITY")
    type: str = Field(description="the source's own type")
    subtype: str | None
    street: str | None
    city: str | None
    direction: str | None
    status: Literal["planned", "active", "ended", "cancelled"] = Field(
        description="planned: a city event that has not started yet; ended: ended, or a city event whose end "
                    "has passed")
    start: str | None
    end: str | None
    updated: str = Field(description="when the store last changed it")
    level: int | None = Field(description="jam level 0 (free flow) to 5 (blocked)")
    delay_s: int | None = Field(description="seconds of delay; -1 means blocked")
    speed_kmh: float | None
    length_m: int | None
    reliability: int | None
    confidence: int | None
    cluster_id: str | None = Field(description="the incident this report belongs to (alerts of one incident)")
    matched: bool | None = Field(description="placed on the road network; null when no network was used")
    match_reason: str | None = Field(description="why it is unmatched or only partly matched")
    waze_status: str | None = Field(
        description="city closures: what the inbound Waze feed shows of it (seen in Waze, not seen yet, traffic "
        "flowing, not published, not started, between its windows, ended)")
    held_back: str | None = Field(description="city events: why its current version is not in the feeds")
    published: bool = Field(description="a version of it is in the feeds partners poll")
    same_as: str | None = Field(default=None, description="city events: the same closure reported by another "
                                "source, published in its place (this one stays out of the feeds)")
    lint_problems: int = Field(description="Waze acceptance lint findings (errors and warnings); 0 for crowd reports")


class EventFeature(BaseModel):
    type: Literal["Feature"]
    id: str
    geometry: Geometry
    properties: EventProperties


class EventCollection(BaseModel):
    """One page of events, the latest change first."""

    type: Literal["FeatureCollection"]
    features: list[EventFeature]
    count: int = Field(description="the number of features in this page")
    next_cursor: str | None = Field(description="pass as cursor for the next page; null on the last page")
    as_of: str = Field(description="when the walk's first page was read: an event that changes while you page "
                                   "moves ahead of the cursor, so after the last page ask since=as_of for them")


class Revision(BaseModel):
    at: str
    action: str = Field(description="created, updated, ended, reopened, cancelled, history, ...")
    run_id: int | None = Field(description="the sync run that made it; null for an operator's change")
    operator: str | None
    changes: dict[str, Any] | None = Field(description="field -> [old, new]")


class LintFinding(BaseModel):
    severity: Literal["error", "warning"] = Field(description="error: a reason Waze would reject the event")
    message: str
    location: str
    holds_back: bool = Field(description="publishing holds the event back whatever the settings")


class WazeState(BaseModel):
    state: str
    since: str | None
    last_seen: str | None
    text: str = Field(description="the state in one line for people")
    evidence: dict[str, Any] | None = Field(description="the Waze reports and jams behind the state")
    not_published: str | None = Field(description="why it is not published, when it is not")
    late_minutes: int | None = Field(description="set when Waze should show it by now: minutes out and in effect")


class Confirmation(BaseModel):
    city_event_id: str
    crowd_event_id: str
    how: str = Field(description="road-closed-alert or blocked-jam")
    linked: str


class Sighting(BaseModel):
    source: str
    missed_polls: int


class LinkedEvent(BaseModel):
    id: str
    source: str | None = Field(description="its configured source; null: typed by an operator")
    priority: int | None


class EventDetailProperties(EventProperties):
    first_seen: str
    details: dict[str, Any] | None = Field(description="city events: description, schedule, lanes, reference")
    match: dict[str, Any] | None = Field(description="the stored road match: edges, distance, confidence, reason")
    attributes: dict[str, Any] = Field(description="the source's own record")
    revisions: list[Revision]
    lint: list[LintFinding]
    waze: WazeState | None = Field(description="city ROAD_CLOSED events only")
    confirmations: list[Confirmation] = Field(
        description="a city closure: the Waze reports showing it; a Waze report: the city closures it shows")
    seen_by: list[Sighting]
    same_closure_as: LinkedEvent | None = Field(description="the event published in its place")
    also_reported_by: list[LinkedEvent] = Field(description="events of other sources folded into it")


class EventDetail(BaseModel):
    type: Literal["Feature"]
    id: str
    geometry: Geometry
    properties: EventDetailProperties


class HourCounts(BaseModel):
    hour: str = Field(description="the start of the hour, UTC")
    counts: dict[str, int] = Field(description="category -> events that began in this hour")
    total: int


class ConfirmationCounts(BaseModel):
    count: int
    by_how: dict[str, int]


class HeldBackEvent(BaseModel):
    id: str
    reason: str


class ClosuresSeenInWaze(BaseModel):
    total: int = Field(description="published city ROAD_CLOSED events in effect now")
    seen: int = Field(description="of them, the ones the inbound Waze feed shows (no traffic flowing through)")
    share: float | None = Field(description="seen / total; null when there are none")


class Stats(BaseModel):
    since: str
    until: str
    total: int
    by_category: dict[str, int] = Field(description="events that began in the window (start, or first seen)")
    by_hour: list[HourCounts] = Field(description="every hour of the window, oldest first")
    confirmations: ConfirmationCounts = Field(description="Waze reports linked to a city closure in the window")
    held_back: list[HeldBackEvent] = Field(description="now: city events the last publish held back, and why")
    closures_seen_in_waze: ClosuresSeenInWaze = Field(description="now")


class ErrorBody(BaseModel):
    detail: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no valid operator token"},
    503: {"model": ErrorBody, "description": "the store cannot be read"},
}


# --------------------------------------------------------------------------- parameters


def _invalid(name: str, value: Any, message: str) -> NoReturn:
    """A 422 in FastAPI's own validation-error shape, naming the parameter."""
    if isinstance(value, str) and len(value) > 200:  # a bad 100 kB cursor is not sent back whole
        value = value[:200] + "…"
    raise RequestValidationError([{"type": "value_error", "loc": ("query", name), "msg": f"{name}: {message}",
                                   "input": value}])


#: the query parameters that may be given more than once (every value counts)
_REPEATABLE = frozenset({"category"})


def _given_once(request: Request) -> None:
    """A parameter other than a repeatable one given twice is a 422 naming it: FastAPI would take the
    last silently, and ``status=active&status=ended`` asks what no answer gives."""
    names = [name for name, _value in request.query_params.multi_items() if name not in _REPEATABLE]
    for name in dict.fromkeys(names):
        if names.count(name) > 1:
            _invalid(name, request.query_params.getlist(name), "given more than once; give it once")


def _known_only(request: Request) -> None:
    """A parameter the endpoint does not take is a 422 naming it: ``stauts=active`` would otherwise be
    ignored and list every event."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known: set[str] = set()
    pending = [dependant]
    while pending:  # the endpoint's own parameters and its dependencies'
        current = pending.pop()
        known.update(param.alias for param in current.query_params)
        pending.extend(current.dependencies)
    for name in dict.fromkeys(request.query_params):
        if name not in known:
            takes = ", ".join(sorted(known)) or "none"
            _invalid(name, request.query_params.get(name), f"not a parameter of this endpoint (it takes: {takes})")


def _not_cached(response: Response) -> None:
    """An operator's answer is kept by no cache: it holds crowd data, which must not be republished, and
    is read behind a sign-in a shared cache knows nothing of."""
    response.headers["Cache-Control"] = "private, no-store"


def _bbox(value: str) -> tuple[float, float, float, float]:
    try:
        parts = tuple(float(part) for part in value.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 4 or not all(math.isfinite(part) for part in parts):
        _invalid("bbox", value, "expected four numbers minLon,minLat,maxLon,maxLat")
    min_lon, min_lat, max_lon, max_lat = parts
    if not (-180 <= min_lon <= max_lon <= 180 and -90 <= min_lat <= max_lat <= 90):
        _invalid("bbox", value, "not a lon/lat box (min before max, longitudes within ±180, latitudes within ±90)")
    return min_lon, min_lat, max_lon, max_lat


def _categories(values: list[str]) -> tuple[str, ...]:
    found: list[str] = []
    for value in values:
        if not value.replace(",", "").strip():  # as an empty status is refused
            _invalid("category", value, f"empty; give one or more of {', '.join(_CATEGORIES)}")
        for part in value.split(","):
            name = part.strip().upper()
            if not name:
                continue
            if name not in _CATEGORIES:
                _invalid("category", value, f"{part.strip()!r} is not one of {', '.join(_CATEGORIES)}")
            if name not in found:
                found.append(name)
    return tuple(found)


def _instant(name: str, value: str, zone: tzinfo) -> int:
    """ISO 8601 (without an offset: the city's time, ``zone``, as the CLI and the exports read it), epoch
    milliseconds, or a duration back from now (``2h``, as the CLI's ``--since`` takes), as epoch
    milliseconds."""
    text = value.strip()
    ago = duration_ms(text)
    if ago is not None:
        return max(0, now_ms() - ago)
    try:
        if _EPOCH_MS.fullmatch(text):
            at_ms = int(text)
        else:
            when = datetime.fromisoformat(text)
            if when.tzinfo is None:
                when = when.replace(tzinfo=zone)
            at_ms = round(when.timestamp() * 1000)
    except (ValueError, OverflowError):
        _invalid(name, value, "neither an ISO 8601 time, epoch milliseconds nor a duration (30m, 2h, 7d)")
    if not 0 <= at_ms <= _LAST_MS:
        _invalid(name, value, "out of range (1970 to 9999)")
    return at_ms


# --------------------------------------------------------------------------- the router


class _Network:
    """The configured road network for the lint, loaded once, when the first request needs it."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.loaded: RoadNetwork | None = None
        self.tried = False
        self.lock = threading.Lock()

    def get(self) -> RoadNetwork | None:
        with self.lock:  # two first requests at once load it once
            if not self.tried:
                self.tried = True
                if self.config.network is not None:
                    self.loaded = self._load()
        return self.loaded

    def _load(self) -> RoadNetwork | None:
        from exchange.placement import Placement

        try:
            placement = Placement.from_config(self.config)
        except Exception as exc:  # a missing or corrupt network file must not take the events API down
            # the lint then skips the network checks and says so per event, as it does without a network
            log.warning("events API: cannot load the road network, the lint runs without it: %s", exc)
            return None
        return placement.network if placement is not None else None


def api_router(config: Config | None = None) -> APIRouter:
    """The ``/api`` routes of one app; ``config`` gives the road network (for the lint) and the
    publish settings (when a closure Waze does not show is late)."""
    from exchange.config import Config

    settings = config or Config()
    network = _Network(settings)
    router = APIRouter(
        prefix="/api",
        tags=["events"],
        # HTTPBearer only documents the scheme (Swagger UI's Authorize); require_operator decides
        dependencies=[Depends(require_operator), Security(HTTPBearer(auto_error=False)), Depends(_given_once),
                      Depends(_known_only), Depends(_not_cached)],
        responses=_ERRORS,
    )

    @contextlib.contextmanager
    def reading(request: Request) -> Iterator[tuple[Connection, Facts]]:
        """A connection to the store and the facts the features are read against, or a 503."""
        engine = request.app.state.feed_server.engine
        try:
            lint_network = network.get()
            with engine.connect() as conn:
                yield conn, Facts.read(conn, at_ms=now_ms(), network=lint_network,
                                       unseen_after_min=settings.publish.waze_unseen_after_min, zone=settings.zone)
        except (SQLAlchemyError, ExchangeError) as exc:
            log.error("events API: cannot read the store: %s", db_error_message(exc))
            raise HTTPException(503, "the store cannot be read now; try again",
                                headers={"Retry-After": "10"}) from None

    @router.get("/events", response_model=EventCollection, summary="Events as GeoJSON, the latest change first")
    def list_events(
        request: Request,
        bbox: Annotated[str | None, Query(description="minLon,minLat,maxLon,maxLat (WGS84): events whose extent "
                                          "intersects it", examples=["-122.31,37.80,-122.27,37.82"])] = None,
        category: Annotated[list[str], Query(description="repeatable and/or comma-separated, any case: "
                                             + ", ".join(_CATEGORIES))] = [],  # noqa: B006 - FastAPI copies it
        origin: Annotated[Literal["crowd", "city"] | None, Query()] = None,
        status: Annotated[Literal["planned", "active", "ended", "cancelled"] | None, Query(
            description="planned: a city event not started yet; active: started and not over; ended: ended, or a "
                        "city event whose end has passed")] = None,
        since: Annotated[str | None, Query(description="changed at or after: ISO 8601 (the city's time without an "
                                           "offset), epoch milliseconds or a duration back from now (30m, 2h, 7d)")]
        = None,
        until: Annotated[str | None, Query(description="changed before: ISO 8601, epoch milliseconds or a "
                                           "duration back from now")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 500,
        cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    ) -> dict[str, Any]:
        after = None
        if cursor is not None:
            try:
                after = decode_cursor(cursor)
            except BadCursor as exc:
                _invalid("cursor", cursor, str(exc))
        since_ms = _instant("since", since, settings.zone) if since is not None else None
        until_ms = _instant("until", until, settings.zone) if until is not None else None
        if since_ms is not None and until_ms is not None and since_ms >= until_ms:
            _invalid("since", since, "must be before until")  # as /api/stats says it
        query = EventQuery(
            bbox=_bbox(bbox) if bbox is not None else None,
            categories=_categories(category),
            origin=origin,
            status=status,
            since_ms=since_ms,
            until_ms=until_ms,
            limit=limit,
            after=after,
        )
        with reading(request) as (conn, facts):
            page = event_page(conn, query, facts)
        return {"type": "FeatureCollection", "features": page.features, "count": len(page.features),
                "next_cursor": page.next_cursor, "as_of": iso(page.as_of_ms)}

    @router.get(
        "/events/{event_id:path}", response_model=EventDetail, summary="One event in full",
        responses={404: {"model": ErrorBody, "description": "no event with this id"},
                   409: {"model": ErrorBody, "description": "the stored event cannot be read (the reason says why)"}},
    )
    def get_event(request: Request, event_id: str) -> dict[str, Any]:
        """The event's feature with its revisions, Waze acceptance lint, Waze status, road match,
        details, confirmations and same-closure links. Ids contain ``:`` (``waze:alert:<uuid>``)."""
        unknown = HTTPException(404, f"no event with id {event_id!r}")
        if len(event_id) > _MAX_ID_LENGTH or "\x00" in event_id:
            raise unknown  # no stored id looks like this (and PostgreSQL refuses NUL in text)
        with reading(request) as (conn, facts):
            found = event_detail(conn, event_id, facts)
        if found is None:
            raise unknown
        if isinstance(found, Unreadable):
            raise HTTPException(409, f"event {found.id} cannot be read: {found.reason}")
        return found

    @router.get("/stats", response_model=Stats, summary="What happened in a window (default: the last 24 hours)")
    def stats(
        request: Request,
        since: Annotated[str | None, Query(description="ISO 8601 or epoch milliseconds; default: until - 24 h")]
        = None,
        until: Annotated[str | None, Query(description="ISO 8601 or epoch milliseconds; default: now")] = None,
    ) -> dict[str, Any]:
        """Events by category and by hour (by when each began), confirmations linked in the window;
        and, as of now, the events held back from the feeds and how many published closures Waze shows.
        The window is at most 31 days."""
        until_ms = _instant("until", until, settings.zone) if until is not None else now_ms()
        since_ms = _instant("since", since, settings.zone) if since is not None else max(0, until_ms - 24 * HOUR_MS)
        if since_ms >= until_ms:
            _invalid("since", since, "must be before until")
        if until_ms - since_ms > MAX_STATS_WINDOW_MS:
            _invalid("since", since, "the window is at most 31 days")
        with reading(request) as (conn, facts):
            return event_stats(conn, since_ms, until_ms, facts)

    return router


# --------------------------------------------------------------------------- /docs


#: Swagger UI's files, committed in the package (exchange/static/vendor/README.md says how to refresh them)
_SWAGGER_UI = "static/vendor/swagger-ui"
_SWAGGER_FILES = {"swagger-ui-bundle.js": "text/javascript; charset=utf-8", "swagger-ui.css": "text/css; charset=utf-8"}


@functools.lru_cache(maxsize=len(_SWAGGER_FILES))
def _swagger_file(name: str) -> bytes:
    return (resources.files("exchange") / _SWAGGER_UI / name).read_bytes()


def docs_router() -> APIRouter:
    """``/docs``: Swagger UI on ``/openapi.json``, its script and style served from the package, so the
    page works where no CDN is reachable. Public, as ``/openapi.json`` is: trying a call needs a token."""
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="traffic-exchange API",
            swagger_js_url="/docs/swagger-ui-bundle.js",
            swagger_css_url="/docs/swagger-ui.css",
            swagger_favicon_url="data:,",  # none: the default is an image on fastapi.tiangolo.com
        )

    @router.get("/docs/{name}")
    def swagger_file(name: str) -> Response:
        media_type = _SWAGGER_FILES.get(name)
        if media_type is None:
            raise HTTPException(404, "not found")
        return Response(_swagger_file(name), media_type=media_type,
                        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"})

    return router
