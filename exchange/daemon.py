"""``exchange run``: the one process city IT leaves running.

It polls every enabled source on its interval (with jitter; one run of a source at a time; late
runs coalesced into one), runs the publish clock, republishes after city changes, prunes the
store once a day (``[retention]``), tells what goes wrong (:mod:`exchange.notify`), and serves
the feeds on ``serve.port`` in the same process (unless ``serve`` is None: ``--no-serve``, for a
separate ``exchange serve``).

Several instances may share one PostgreSQL store: every second each claims the runs that are due
in the shared schedule (:mod:`exchange.schedule`), so each due poll and publish-clock tick happens
on exactly one instance, and when one instance dies the others carry on. On SQLite a second daemon
on the same store refuses to start.

A source whose polls keep failing is polled ever less often: its interval doubled per failure in
a row (counted in the store, whichever instance polled), up to ``failing_max_interval_s``, so a
dead upstream is not hammered; its first good poll brings back the normal interval.

SIGTERM or SIGINT: no job starts any more; a fetch under way gives up at once (``stop_requested``,
even while an upstream trickles); a sync under way finishes its transaction (or rolls it back),
the feed server flushes its counts; the process exits 0. Should a job still run after
``stop_timeout_s``, the process exits 0 anyway: the database rolls back what it left open.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import os
import signal
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from types import FrameType
from typing import IO, Any

from sqlalchemy import Engine

from exchange.config import Config, SourceConfig
from exchange.cycle import sync_then_publish
from exchange.errors import ExchangeError, UsageError
from exchange.health import consecutive_failures
from exchange.notify import Watcher
from exchange.placement import Placement
from exchange.redaction import install_log_redaction, register_config_secrets
from exchange.runtime import now_ms, request_stop

__all__ = ["Daemon", "ServeOptions", "build_scheduler", "run_daemon"]

log = logging.getLogger("exchange.daemon")

#: the watch that notices time-driven changes (a source that nobody polls goes Stale) runs this often;
#: changes a poll makes are noticed right after that poll
WATCH_EVERY_S = 60

#: every instance looks this often for due runs to claim: a run starts at most this late
DISPATCH_EVERY_S = 1.0

PUBLISH_JOB = "publish"
#: the start-up publish waits at most this long for the city sources' first polls (seconds)
FIRST_POLLS_WAIT_S = 120.0
PRUNE_JOB = "prune"
#: at most this long after a start, what the store says of a source or feed the daemon has not run yet is
#: not told (it is from before the start; the first poll or publish is under way): seconds
SETTLE_MAX_S = 600.0

#: the retention limits are applied this often (by one instance, like every scheduled job)
PRUNE_EVERY_MS = 24 * 3_600_000


@dataclass(frozen=True)
class ServeOptions:
    """How ``exchange run`` serves the feeds (as ``exchange serve`` would)."""

    host: str = "127.0.0.1"
    port: int = 8080
    tokens: bool = True
    refresh_s: float = 1.0
    flush_s: float = 5.0
    cache_control: str | None = None
    access_log: bool = False


class Daemon:
    """The scheduler's jobs and the process's lifetime."""

    def __init__(self, config: Config, engine: Engine, placement: Placement | None = None,
                 serve: ServeOptions | None = None, stop_timeout_s: float = 20.0) -> None:
        self.config, self.engine, self.placement, self.serve = config, engine, placement, serve
        # a configured network that could not be loaded: nothing is published until a restart with it (the
        # wrong-place guard and the routing need it), the feeds stay as last published
        self.network_missing = config.network is not None and placement is None
        self.stop_timeout_s = stop_timeout_s
        self.instance = f"{socket.gethostname()}:{os.getpid()}"
        self.sources = {f"source:{s.name}": s for s in config.sources if s.enabled}
        self.watcher = Watcher(engine, config)
        self._watch_lock = threading.Lock()
        self._watch_again = threading.Event()
        # the jobs whose first run here is not over: the store's word on them is from before this start
        self._settling = {*self.sources, PUBLISH_JOB}
        self._settle_by = time.monotonic() + SETTLE_MAX_S
        self._running: set[str] = set()
        self._running_lock = threading.Lock()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._wake = threading.Event()  # the signal, when there is no server to wait on
        self._uvicorn: Any = None  # the feed server, once made (a signal during its start-up stops it)
        self._lock_file: IO[str] | None = None
        self.workers = ThreadPoolExecutor(len(self.sources) + 1, thread_name_prefix="exchange-job")
        self._registered = False
        self._store_away = False
        # The first dispatch publishes too, due or not: a change committed before a crash (or by the CLI
        # while the daemon was down) would otherwise wait for the publish clock. It waits for the city
        # sources' polls claimed with it, so a fresh store's feeds are not first published empty.
        self._started = False
        self._first_city_polls: set[str] = set()
        self._first_city_polls_done = threading.Event()
        self.scheduler = _periodic_jobs(self)

    # ------------------------------------------------------------------ jobs

    def dispatch(self) -> None:
        """Claim the runs that are due (no other instance will make them) and start them."""
        from exchange.schedule import claim_due, register

        if self._stopping.is_set():
            return
        with self._running_lock:  # a job still running here is not claimed again
            idle = [job for job in (*self.sources, PUBLISH_JOB, PRUNE_JOB) if job not in self._running]
        jitter = {job: s.jitter_s * 1000 for job, s in self.sources.items()}
        try:
            if not self._registered:
                register(self.engine, {**{job: s.interval_s * 1000 for job, s in self.sources.items()},
                                       PUBLISH_JOB: self.config.publish.interval_s * 1000,
                                       PRUNE_JOB: PRUNE_EVERY_MS})
                self._registered = True
            claimed = claim_due(self.engine, idle, self.instance, jitter)
        except Exception as exc:  # the store is away: the next tick tries again
            if not self._store_away:  # once per outage, not once a second
                self._store_away = True
                log.error("cannot reach the store, no poll starts until it is back: %s", _one_line(exc))
            return
        if self._store_away:
            self._store_away = False
            log.info("the store is reachable again; polling goes on")
        if not self._started:
            self._started = True
            claimed = self._with_start_up_publish(claimed, idle)
        for position, job in enumerate(claimed):
            with self._running_lock:
                self._running.add(job)
            try:
                future = self.workers.submit(self._run_job, job)
            except RuntimeError:  # the pool is shutting down: what was claimed and not started is due again
                for left in claimed[position:]:
                    if left in self.sources:
                        self._due_again(self.sources[left])
                return
            if job in self.sources:  # cancelled by the stop before it started: due again, as one given up
                future.add_done_callback(partial(self._due_again_if_cancelled, self.sources[job]))

    def _with_start_up_publish(self, claimed: list[str], idle: list[str]) -> list[str]:
        with self._running_lock:
            self._first_city_polls = {job for job in claimed
                                      if job in self.sources and self.sources[job].kind != "waze-feed"}
        if not self._first_city_polls:
            self._first_city_polls_done.set()
        return claimed if PUBLISH_JOB in claimed or PUBLISH_JOB not in idle else [*claimed, PUBLISH_JOB]

    def _after_first_city_polls(self) -> None:
        """Wait (at most ``FIRST_POLLS_WAIT_S``) until the city sources' polls of the first dispatch are over."""
        deadline = time.monotonic() + FIRST_POLLS_WAIT_S
        while not self._first_city_polls_done.wait(0.2):
            if self._stopping.is_set() or time.monotonic() > deadline:
                return

    def _run_job(self, job: str) -> None:
        try:
            if job == PUBLISH_JOB:
                self._after_first_city_polls()
                self.republish()
            elif job == PRUNE_JOB:
                self.prune()
            else:
                self.poll(self.sources[job])
        except Exception:  # a bug: logged with its traceback, and the daemon goes on
            log.exception("%s failed unexpectedly", job)
        finally:
            with self._running_lock:
                self._running.discard(job)
                self._settling.discard(job)
                if job in self._first_city_polls:
                    self._first_city_polls.discard(job)
                    if not self._first_city_polls:
                        self._first_city_polls_done.set()

    def poll(self, source_config: SourceConfig) -> None:
        """One scheduled poll; a failure is already recorded as a failed run, so it is only logged here."""
        if self._stopping.is_set():  # claimed, then the stop came first: the next start polls it
            self._due_again(source_config)
            return
        try:
            cycle = sync_then_publish(self.engine, self.config, source_config, self.placement, warn_late=False,
                                      publish_changes=not self.network_missing)
        except ExchangeError as exc:
            if not self._stopping.is_set():
                log.error("%s: %s", source_config.name, exc.message)
                self._back_off(source_config, getattr(exc, "retry_after_s", None))
            else:  # said, not recorded: a stop says nothing of the upstream
                self._due_again(source_config)
                log.info("%s: poll given up for the stop, nothing stored (the next start polls it)",
                         source_config.name)
        else:
            log.info("%s", cycle.sync.summary())
            if self.network_missing and cycle.sync.changed and source_config.kind != "waze-feed":
                log.warning("%s: its changes are not published: the road network could not be loaded (the feeds "
                            "stay as last published until a restart with [network] right)", source_config.name)
            if cycle.published is not None:
                log.info("%s", cycle.published.summary())
            if cycle.publish_error is not None:
                log.error("publish after %s: %s", source_config.name, cycle.publish_error)
        with self._running_lock:
            self._settling.discard(f"source:{source_config.name}")
        self.watch()

    def republish(self) -> None:
        """The publish clock: ended closures age out on time, and no publication outlives
        ``publish.max_age_s`` (it is renewed one clock interval before)."""
        from exchange.publish import publish

        if self._stopping.is_set():
            return
        if self.network_missing:
            log.warning("publish: not published, the road network could not be loaded: the feeds stay as last "
                        "published until a restart with [network] right")
            return
        try:
            result = publish(self.engine, self.config, placement=self.placement,
                             renew_within_s=self.config.publish.interval_s)
        except ExchangeError as exc:
            log.error("publish: %s", exc.message)
            return
        if result.status == "unchanged":
            log.debug("%s", result.summary())
            return
        for line in result.warnings():
            log.warning("%s", line.removeprefix("warning: "))
        log.info("%s", result.summary())

    def prune(self) -> None:
        """Once a day: what the ``[retention]`` limits say the store no longer needs goes, in small batches."""
        from exchange.retention import prune

        if self._stopping.is_set():
            return
        try:
            result = prune(self.engine, self.config.retention, now_ms())
        except ExchangeError as exc:  # what it removed before the failure stays removed; tomorrow goes on
            log.error("%s", exc.message)
            return
        log.info("%s", result.summary())

    def watch(self) -> None:
        """Tell what changed (source and feed states, held-back events, closures Waze does not show)."""
        self._watch_again.set()
        while self._watch_again.is_set() and not self._stopping.is_set():
            if not self._watch_lock.acquire(blocking=False):
                return  # the watch under way read the store before this change: it runs once more
            try:
                self._watch_again.clear()
                self.watcher.check(now_ms(), self._settling_now())
            finally:
                self._watch_lock.release()

    def _settling_now(self) -> frozenset[str]:
        """What the watch keeps quiet about: the sources (and, until the start-up publish, the feeds)
        this daemon has not run yet, for at most ``SETTLE_MAX_S`` after its start."""
        from exchange.publications import FEEDS

        with self._running_lock:
            if time.monotonic() > self._settle_by:
                self._settling.clear()
            quiet = set(self._settling)
        if PUBLISH_JOB in quiet:
            quiet.discard(PUBLISH_JOB)
            quiet.update(f"feed:{name}" for name in FEEDS)
        return frozenset(quiet)

    def _due_again_if_cancelled(self, source_config: SourceConfig, done: Future[None]) -> None:
        if done.cancelled():
            self._due_again(source_config)

    def _due_again(self, source_config: SourceConfig) -> None:
        """A poll given up for the stop is due at once: the next start polls it, not an interval (or a
        failing source's back-off) after the claim that never polled."""
        from exchange.schedule import postpone

        try:
            postpone(self.engine, f"source:{source_config.name}", 0)
        except Exception as exc:  # the store is away: the claim's due time stands
            log.debug("cannot make %s due again: %s", source_config.name, exc)

    def _back_off(self, source_config: SourceConfig, retry_after_s: float | None = None) -> None:
        """The next poll of a failing source later: twice the interval per failure in a row, or when the
        upstream asked (``Retry-After`` of a 429 or 503) if that is later; ``failing_max_interval_s`` at most."""
        from exchange.schedule import postpone

        try:
            with self.engine.connect() as conn:
                failures = consecutive_failures(conn, source_config.name)
            delay = min(max(source_config.interval_s * 2**failures, math.ceil(retry_after_s or 0)),
                        source_config.failing_max_interval_s)
            if delay <= source_config.interval_s:
                return
            postpone(self.engine, f"source:{source_config.name}", delay * 1000)
        except Exception as exc:  # the store is away: the normal interval stands
            log.debug("cannot postpone %s: %s", source_config.name, exc)
            return
        log.warning("%s: failed %s in a row; next poll in %ss", source_config.name,
                    "once" if failures == 1 else f"{failures} times", delay)

    # ------------------------------------------------------------------ lifetime

    def run(self) -> None:
        """Run until SIGTERM or SIGINT."""
        # ours from the start: polls begin before uvicorn installs its handlers (it restores these after),
        # and a SIGTERM in between would otherwise kill the process (exit -15) mid-transaction
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_hangup)  # its default ends the process
        try:
            self._run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run(self) -> None:
        self._lock_sqlite_store()
        enabled = list(self.sources.values())
        # The network's arrays and indexes live for the whole run: keep them out of every future
        # garbage collection, whose cost would otherwise grow with them on each poll.
        gc.freeze()
        log.info("polling %s; publishing every %ss", ", ".join(f"{s.name} every {s.interval_s}s" for s in enabled),
                 self.config.publish.interval_s)
        if disabled := [source.name for source in self.config.sources if not source.enabled]:
            log.info("not polling %s (disabled in the config): their live events stay as they are",
                     ", ".join(disabled))
        from exchange.config_check import licence_note

        if (note := licence_note(self.config)) is not None:
            log.warning("%s", note)
        from exchange.serving import listen

        # bound before any poll: a busy port is a one-line error at once, not after a round of polls
        sock = listen(self.serve.host, self.serve.port) if self.serve is not None else None
        try:
            self.scheduler.start()
            if self.serve is not None and sock is not None:
                with sock:
                    self._serve(self.serve, sock)
            elif not self._stopping.is_set():
                self._wake.wait()
        finally:
            self.stop("shutting down")

    def stop(self, why: str) -> None:
        """Stop taking jobs, let the running ones end (bounded), and return; idempotent."""
        if self._stopped.is_set():
            return
        self._begin_stop(why)
        stopper = threading.Thread(target=self._shutdown_scheduler, name="exchange-stop", daemon=True)
        stopper.start()
        stopper.join(self.stop_timeout_s)
        self._stopped.set()
        if stopper.is_alive():
            log.error("a job was still running %ss after the stop; exiting without it (its open transaction "
                      "is rolled back)", self.stop_timeout_s)
            logging.shutdown()
            os._exit(0)
        log.info("stopped")

    def _begin_stop(self, why: str) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        request_stop()  # a fetch under way gives up now, even one that trickles
        log.info("%s: stopping: a fetch under way gives up, a write or a publication under way finishes", why)

    def _shutdown_scheduler(self) -> None:
        from apscheduler.schedulers import SchedulerNotRunningError

        with contextlib.suppress(SchedulerNotRunningError):
            self.scheduler.shutdown(wait=True)
        self.workers.shutdown(wait=True, cancel_futures=True)

    def _lock_sqlite_store(self) -> None:
        """One daemon per SQLite store: a second would poll every source twice (PostgreSQL shares the work)."""
        from exchange.db import lock_for_daemon

        self._lock_file = lock_for_daemon(self.engine)  # held, and so locked, until the process ends

    def _on_hangup(self, _signum: int, _frame: FrameType | None) -> None:
        """SIGHUP asks many daemons to read their configuration again; this one reads it once, at start."""
        log.warning("SIGHUP: the configuration is read once, at start; restart to apply a change "
                    "(systemctl restart traffic-exchange); running on as configured")

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._begin_stop(f"signal {signal.Signals(signum).name}")
        self._wake.set()
        if self._uvicorn is not None:  # still starting up: uvicorn's own handlers are not in place yet
            self._uvicorn.should_exit = True

    def _serve(self, options: ServeOptions, sock: socket.socket) -> None:
        import uvicorn

        from exchange.server import create_app
        from exchange.serving import listening_url, uvicorn_server

        url = listening_url(sock)
        app = create_app(self.engine, require_token=options.tokens, refresh_s=options.refresh_s,
                         flush_s=options.flush_s, cache_control=options.cache_control, config=self.config)
        uv_config = uvicorn.Config(
            app, log_config=None, log_level=None, access_log=options.access_log,
            lifespan="on", server_header=False, timeout_graceful_shutdown=5,
        )
        mode = "tokens required" if options.tokens else "no tokens"
        server = uvicorn_server(
            uv_config, lambda: log.info("serving %s/feeds/ (%s)", url, mode),
            lambda sig: self._begin_stop(f"signal {signal.Signals(sig).name}"),
        )
        self._uvicorn = server
        if self._stopping.is_set():  # asked to stop before the server came up
            return
        server.run(sockets=[sock])
        if not server.started and not self._stopping.is_set():
            raise ExchangeError("the feed server did not start (see the log above)")


def _one_line(exc: Exception) -> str:
    from sqlalchemy.exc import SQLAlchemyError

    from exchange.db import db_error_message

    if isinstance(exc, (SQLAlchemyError, ExchangeError)):
        return db_error_message(exc)
    return f"{type(exc).__name__}: {exc}"


def build_scheduler(config: Config, engine: Engine, placement: Placement | None = None) -> Any:
    """The daemon's periodic jobs for an embedding program, not started yet: the dispatch (claims
    and runs the due polls and publish-clock ticks, in the daemon's own worker threads) and the watch.

    The sources' tokens are registered as secrets and the redaction filter installed on the
    logging set-up there is (the CLI's, or an embedding program's), so no poll logs a token.
    """
    return Daemon(config, engine, placement).scheduler


def _periodic_jobs(daemon: Daemon) -> Any:
    register_config_secrets(daemon.config)
    install_log_redaction()
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    if not daemon.sources:
        raise UsageError("no enabled sources to run; add a [[sources]] entry")
    scheduler = BackgroundScheduler(timezone=daemon.config.zone)
    # one run of a job at a time; ticks missed (a suspended machine) coalesce into one, however late
    once = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
    now = datetime.now(UTC)
    scheduler.add_job(daemon.dispatch, IntervalTrigger(seconds=DISPATCH_EVERY_S), id="dispatch", name="dispatch",
                      next_run_time=now, **once)
    scheduler.add_job(daemon.watch, IntervalTrigger(seconds=WATCH_EVERY_S), id="watch", name="watch",
                      next_run_time=now + timedelta(seconds=WATCH_EVERY_S), **once)
    return scheduler


def run_daemon(config: Config, engine: Engine, placement: Placement | None = None,
               serve: ServeOptions | None = None) -> None:
    Daemon(config, engine, placement, serve).run()
