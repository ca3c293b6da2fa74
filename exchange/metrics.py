"""``/metrics``: what the broker did and how it stands, in Prometheus' text format (prometheus-client).

Two kinds of figures, read in the way that stays right however the broker is deployed (the daemon
serving in-process, ``exchange serve`` as a process of its own, with several workers, on several
machines sharing one store):

- **From the store, at scrape time** (:class:`StoreCollector`): sync runs, their duration and items
  by source, feed generations, the last success and publication times, held-back events, closures
  by Waze status. Counters are aggregates over ``sync_runs`` and ``publish_runs``, so every server
  of one store reports the same totals whichever process did the work, a restart resets nothing,
  and a counter goes down only when rows are pruned (Prometheus reads that as a reset). Each
  scrape is a handful of aggregate queries; a store that cannot be read gives
  ``exchange_store_up 0`` and the in-process figures, never an error page.
- **In this process** (:class:`RequestMetrics`): feed requests and downloads, counted by the
  process that answered them. Behind ``exchange serve --workers N`` the workers share one
  directory of prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``), so a scrape
  answered by any worker sums every worker.

No secret is ever a label value: a partner is named by its name (``anonymous`` without a token,
``unknown`` for a token that was refused), a source by its configured name, a feed by its fixed
name; a value outside those patterns is not shown.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import tzinfo
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from sqlalchemy import ColumnElement, Connection, Engine, Table, and_, case, func, literal, select
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from exchange.config import SOURCE_NAME, Config
from exchange.confirm import (
    BETWEEN_WINDOWS,
    NOT_PUBLISHED,
    NOT_SEEN,
    NOT_STARTED,
    SEEN,
    TRAFFIC_FLOWING,
    WAZE_ENDED,
    waze_status,
)
from exchange.db import db_error_message
from exchange.errors import ExchangeError
from exchange.health import HealthReport, read_health
from exchange.health import State as HealthState
from exchange.publications import FEEDS
from exchange.publish import held_back_now
from exchange.runtime import now_ms
from exchange.schema import events, publications, publish_runs, published_events, sources, sync_runs

__all__ = [
    "ANONYMOUS_PARTNER",
    "DURATION_BUCKETS_S",
    "MULTIPROC_ENV",
    "UNKNOWN_PARTNER",
    "RequestMetrics",
    "ServerMetrics",
    "StoreCollector",
    "Tally",
]

log = logging.getLogger("exchange.metrics")

# no ``*_created`` series beside every counter: the store-derived ones have no creation time, and
# Prometheus does not need them
disable_created_metrics()  # type: ignore[no-untyped-call]

#: the partner label of a request without a token (tokens not required), and of a refused token
ANONYMOUS_PARTNER, UNKNOWN_PARTNER = "anonymous", "unknown"
#: prometheus-client's multiprocess mode: the directory the workers of one server share
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

SYNC_OUTCOMES = ("ok", "not-modified", "duplicate", "history", "failed")
ITEM_CHANGES = ("fetched", "new", "updated", "unchanged", "ended", "rejected")
FEED_OUTCOMES = ("published", "unchanged", "failed", "held")
#: the Waze states of a closure in effect or coming (an ended one is no longer counted)
CLOSURE_STATES = (NOT_STARTED, BETWEEN_WINDOWS, NOT_PUBLISHED, NOT_SEEN, SEEN, TRAFFIC_FLOWING)
#: upper bounds of the sync duration histogram, seconds (a poll takes well under a second to minutes)
DURATION_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

# what a label value may be: a source name as the config allows it, a status word
_WORD = re.compile(r"[a-z][a-z-]{0,39}")


def _safe(value: Any, pattern: re.Pattern[str]) -> str | None:
    return value if isinstance(value, str) and pattern.fullmatch(value) else None


class Tally:
    """Sums (or maxima) of expressions over the rows of a table that only grows, by key, kept up to date
    by reading only the rows added since the last scrape.

    The first read aggregates, in SQL, every row but the newest ``LOOKBACK`` ids; every read then
    reads the rows above the settled id (the primary key) and adds them up in Python. A row is folded
    into the settled part once it was written (``written_ms``) or first seen by this process
    ``SETTLE_S`` seconds ago, and only when every row of a lower id seen since is folded too: an id
    is taken when a run's transaction inserts its row, so a lower id may still become visible (a
    transaction still open on PostgreSQL) until every run open then has ended; ``SETTLE_S`` is far
    longer than any run (their fetches have deadlines), and ``LOOKBACK`` is far more ids than can be
    taken while one run is open. A scrape thus reads the rows of the last minutes, however many the
    store holds; pruned rows stay counted.
    """

    LOOKBACK = 1000
    SETTLE_S = 900.0

    def __init__(self, table: Table, keys: tuple[ColumnElement[Any], ...],
                 values: list[tuple[ColumnElement[Any], str]], written_ms: ColumnElement[Any]) -> None:
        self.table, self.keys, self.values, self.written_ms = table, keys, values, written_ms
        self._id = table.c.id
        self._lock = threading.Lock()  # a scrape at a time: the settled part is updated in place
        self.settled_id: int | None = None
        self.settled: dict[tuple[Any, ...], list[int]] = {}
        self._first_seen: dict[int, float] = {}

    def read(self, conn: Connection) -> dict[tuple[Any, ...], list[int]]:
        """Key -> the values added up over every row there is now."""
        with self._lock:
            return self._read(conn)

    def _read(self, conn: Connection) -> dict[tuple[Any, ...], list[int]]:
        if self.settled_id is None:
            top = conn.execute(select(func.max(self._id))).scalar() or 0
            floor = max(0, int(top) - self.LOOKBACK)
            aggregates = [func.sum(expr) if how == "sum" else func.max(expr) for expr, how in self.values]
            rows = conn.execute(select(*self.keys, *aggregates).where(self._id <= floor).group_by(*self.keys))
            n = len(self.keys)
            self.settled = {tuple(row[:n]): [int(value or 0) for value in row[n:]] for row in rows}
            self.settled_id = floor
        recent = conn.execute(
            select(self._id, self.written_ms, *self.keys, *(expr for expr, _ in self.values))
            .where(self._id > self.settled_id).order_by(self._id)
        ).all()
        totals = {key: list(values) for key, values in self.settled.items()}
        now, old_ms = time.monotonic(), now_ms() - self.SETTLE_S * 1000
        settling = True
        n = len(self.keys)
        for row in recent:
            key, values = tuple(row[2:2 + n]), [int(value or 0) for value in row[2 + n:]]
            self._add(totals, key, values)
            # settled: seen by this process long enough, or written long enough ago (the first read)
            if settling and ((row[1] is not None and row[1] < old_ms)
                             or now - self._first_seen.setdefault(row[0], now) >= self.SETTLE_S):
                self._first_seen.pop(row[0], None)
                self._add(self.settled, key, values)
                self.settled_id = row[0]
            else:
                settling = False
                self._first_seen.setdefault(row[0], now)
        return totals

    def _add(self, totals: dict[tuple[Any, ...], list[int]], key: tuple[Any, ...], values: list[int]) -> None:
        current = totals.get(key)
        if current is None:
            totals[key] = list(values)
            return
        for i, (value, (_, how)) in enumerate(zip(values, self.values, strict=True)):
            current[i] = current[i] + value if how == "sum" else max(current[i], value)


class StoreCollector(Collector):
    """The store's figures, read at every scrape (see the module doc)."""

    def __init__(self, engine: Engine, config: Config | None = None) -> None:
        self.engine = engine
        self.config = config or Config()
        duration = sync_runs.c.finished_ms - sync_runs.c.started_ms
        self._runs = Tally(
            sync_runs, (sync_runs.c.source, sync_runs.c.status),
            [(literal(1), "sum"), (duration, "sum"), *((sync_runs.c[change], "sum") for change in ITEM_CHANGES),
             (sync_runs.c.finished_ms, "max"),
             *((case((duration <= round(bound * 1000), 1), else_=0), "sum") for bound in DURATION_BUCKETS_S)],
            sync_runs.c.finished_ms,
        )
        self._generations = Tally(publish_runs, (publish_runs.c.status,), [(literal(1), "sum")], publish_runs.c.at_ms)
        self._failing = False
        #: how long the last scrape of the store took, seconds (for the scrape itself)
        self.last_duration_s = 0.0

    def describe(self) -> Iterable[Metric]:
        return ()  # nothing is read at registration

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        try:
            families = self._read()
        except (SQLAlchemyError, ExchangeError) as exc:
            message = db_error_message(exc)
            if not self._failing:  # once per outage
                log.error("metrics: cannot read the store: %s", message)
            self._failing = True
            families = []
            up = 0
        else:
            if self._failing:
                log.info("metrics: store readable again")
            self._failing = False
            up = 1
        self.last_duration_s = time.perf_counter() - started
        yield from families
        yield GaugeMetricFamily("exchange_store_up", "1 when this scrape could read the store, else 0", value=up)
        yield GaugeMetricFamily("exchange_metrics_store_read_seconds",
                                "Time this scrape spent reading the store", value=self.last_duration_s)

    def _read(self) -> list[Metric]:
        at = now_ms()
        with self.engine.connect() as conn:
            known = {name for (name,) in conn.execute(select(sources.c.name))}
            runs = self._runs.read(conn)
            generations = self._generations.read(conn)
            published = conn.execute(select(publications.c.feed, publications.c.published_ms)).all()
            closures = conn.execute(
                select(events.c.id, events.c.origin, events.c.category, events.c.status, events.c.start_ms,
                       events.c.end_ms, events.c.waze_evidence, events.c.waze_flowing_since_ms,
                       events.c.visible_in_waze_since_ms, events.c.waze_last_seen_ms, events.c.details,
                       func.coalesce(published_events.c.first_published_ms, published_events.c.published_ms))
                .select_from(events.outerjoin(published_events, and_(  # what Waze was sent: the CIFS target
                    published_events.c.event_id == events.c.id, published_events.c.target == "cifs")))
                .where(and_(events.c.status == "active", events.c.category == "ROAD_CLOSED",
                            events.c.origin == "city", events.c.same_as.is_(None)))
            ).all()
            health = read_health(conn, self.config, at)
        held = held_back_now(self.engine)
        return [*self._sync_families(known, runs.items()), *self._publish_families(generations, published, held),
                *self._closure_families(closures, held, at, self.config.publish.waze_unseen_after_min,
                                        self.config.zone),
                *self._health_families(health)]

    @staticmethod
    def _health_families(health: HealthReport) -> list[Metric]:
        families: list[Metric] = []
        for kind, items in (("source", health.sources), ("feed", health.feeds)):
            family = GaugeMetricFamily(f"exchange_{kind}_state",
                                       f"1 for the {kind}'s health state now (OK, Stale, Offline, SchemaError, "
                                       "Suspect), 0 for the others", labels=[kind, "state"])
            for item in items:
                unknown = item.name not in FEEDS if kind == "feed" else not _safe(item.name, SOURCE_NAME)
                if unknown:
                    continue
                for state in HealthState:
                    family.add_metric([item.name, str(state)], 1 if item.state is state else 0)
            families.append(family)
        return families

    def _sync_families(self, known: set[str], runs: Iterable[tuple[tuple[Any, ...], list[int]]]) -> list[Metric]:
        total = CounterMetricFamily("exchange_sync_runs", "Sync runs by source and outcome (sync_runs.status)",
                                    labels=["source", "outcome"])
        seconds = HistogramMetricFamily("exchange_sync_run_duration_seconds",
                                        "Duration of sync runs by source and outcome", labels=["source", "outcome"])
        items = CounterMetricFamily("exchange_sync_items", "Items of sync runs by source and change",
                                    labels=["source", "change"])
        success = GaugeMetricFamily("exchange_source_last_success_timestamp_seconds",
                                    "End of the last sync run of the source that did not fail (Unix time)",
                                    labels=["source"])
        by_outcome: dict[tuple[str, str], tuple[int, int, list[int]]] = {}
        changes: dict[str, list[int]] = {}
        last_success: dict[str, int] = {}
        for (source, outcome), row in runs:
            source, outcome = _safe(source, SOURCE_NAME), _safe(outcome, _WORD)
            if source is None or outcome is None:
                continue
            count, millis = row[0], row[1]
            sums = row[2:2 + len(ITEM_CHANGES)]
            finished = row[2 + len(ITEM_CHANGES)]
            buckets = row[3 + len(ITEM_CHANGES):]
            by_outcome[(source, outcome)] = (count, millis, buckets)
            changes[source] = [a + b for a, b in zip(changes.get(source, [0] * len(sums)), sums, strict=True)]
            if outcome != "failed" and finished:
                last_success[source] = max(last_success.get(source, 0), int(finished))
        names = sorted({name for name in known if _safe(name, SOURCE_NAME)} | {source for source, _ in by_outcome})
        for source in names:
            outcomes = sorted(set(SYNC_OUTCOMES) | {outcome for name, outcome in by_outcome if name == source})
            for outcome in outcomes:
                count, millis, buckets = by_outcome.get((source, outcome), (0, 0, []))
                total.add_metric([source, outcome], count)  # every outcome, 0 included: increase() sees the first
                if not count:
                    continue
                seconds.add_metric(
                    [source, outcome],
                    [*((_bound(b), n) for b, n in zip(DURATION_BUCKETS_S, buckets, strict=True)), ("+Inf", count)],
                    sum_value=millis / 1000,
                )
            for change, value in zip(ITEM_CHANGES, changes.get(source, [0] * len(ITEM_CHANGES)), strict=True):
                items.add_metric([source, change], value)
            if source in last_success:
                success.add_metric([source], last_success[source] / 1000)
        return [total, seconds, items, success]

    @staticmethod
    def _publish_families(generations: dict[tuple[Any, ...], list[int]], published: Iterable[Any],
                          held: dict[str, str]) -> list[Metric]:
        runs = CounterMetricFamily("exchange_feed_generations", "Feed generations by outcome (publish_runs.status)",
                                   labels=["outcome"])
        counts = dict.fromkeys(FEED_OUTCOMES, 0)
        for (status,), (count,) in generations.items():
            if _safe(status, _WORD):
                counts[status] = count
        for outcome, count in sorted(counts.items()):
            runs.add_metric([outcome], count)
        last = GaugeMetricFamily("exchange_feed_last_published_timestamp_seconds",
                                 "When the served publication of the feed was made (Unix time)", labels=["feed"])
        for feed, published_ms in sorted(published):
            if feed in FEEDS:
                last.add_metric([feed], published_ms / 1000)
        held_back = GaugeMetricFamily("exchange_events_held_back",
                                      "Events whose current version the last publish run held back from the feeds",
                                      value=len(held))
        return [runs, last, held_back]

    @staticmethod
    def _closure_families(rows: Iterable[Any], held: dict[str, str], at: int, unseen_after_min: int,
                          zone: tzinfo) -> list[Metric]:
        states = dict.fromkeys(CLOSURE_STATES, 0)
        oldest_unseen_ms = late = 0
        for row in rows:
            m = row._mapping
            first = row[-1]
            status = waze_status(m, now_ms=at, first_published_ms=first, held_back=held.get(row.id),
                                 unseen_after_min=0, zone=zone)
            if status is None or status.state == WAZE_ENDED:
                continue
            states[status.state] = states.get(status.state, 0) + 1
            if status.state == NOT_SEEN and status.since_ms is not None:
                since = row.start_ms if status.published_before_start and row.start_ms is not None else status.since_ms
                oldest_unseen_ms = max(oldest_unseen_ms, at - since)
                late += at - since >= unseen_after_min * 60_000
        closures = GaugeMetricFamily("exchange_closures",
                                     "City closures in effect or coming, by their Waze status (exchange.confirm)",
                                     labels=["waze_status"])
        for state, count in states.items():
            closures.add_metric([state], count)
        unseen = GaugeMetricFamily(
            "exchange_closure_oldest_unseen_seconds",
            "How long the published closure in effect that Waze has not shown for the longest has been out (since "
            "it went out, or since its start if it went out before); 0 when none",
            value=oldest_unseen_ms / 1000,
        )
        late_closures = GaugeMetricFamily(
            "exchange_closures_late",
            "Published closures in effect for publish.waze_unseen_after_min or longer and still not seen in Waze",
            value=late,
        )
        return [closures, unseen, late_closures]


def _bound(seconds: float) -> str:
    return str(floatToGoString(seconds))  # type: ignore[no-untyped-call]


class RequestMetrics:
    """Feed requests and downloads counted by this process (by every worker, in multiprocess mode)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("exchange_feed_requests", "Feed requests by feed, HTTP status and partner",
                                ["feed", "status", "partner"], registry=registry)
        self.downloads = Counter("exchange_feed_downloads", "Feed downloads (a 200 GET, the body sent) by feed and "
                                 "partner", ["feed", "partner"], registry=registry)
        self._children: dict[tuple[str, int, str], tuple[Any, Any]] = {}

    def observe(self, feed: str, status: int, partner: str, *, download: bool) -> None:
        """One answered request; ``partner`` is a partner's name, or ANONYMOUS_PARTNER / UNKNOWN_PARTNER."""
        key = (feed, status, partner)
        children = self._children.get(key)
        if children is None:  # prometheus-client's label lookup, once per combination
            children = self._children[key] = (self.requests.labels(feed, str(status), partner),
                                              self.downloads.labels(feed, partner))
        children[0].inc()
        if download:
            children[1].inc()


class ServerMetrics:
    """The ``/metrics`` endpoint of one feed server: the store's figures and this server's requests.

    ``config`` names the sources whose health is shown and the publish settings (default: none, and
    the default settings)."""

    def __init__(self, engine: Engine, config: Config | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = RequestMetrics(self.registry)
        self.store = StoreCollector(engine, config)
        self._exposed = CollectorRegistry(auto_describe=False)
        self._exposed.register(self.store)
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            multiprocess.MultiProcessCollector(self._exposed)  # type: ignore[no-untyped-call]  # every worker's requests, from their files
        else:
            self._exposed.register(_Forward(self.registry))

    def render(self) -> bytes:
        """The text exposition (blocking: reads the store)."""
        return generate_latest(self._exposed)

    async def endpoint(self, _request: Request) -> Response:
        body = await run_in_threadpool(self.render)
        return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"cache-control": "no-store"})


class _Forward(Collector):
    """Another registry's metrics, as one collector."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def describe(self) -> Iterable[Metric]:
        return ()

    def collect(self) -> Iterator[Metric]:
        return iter(self.registry.collect())
