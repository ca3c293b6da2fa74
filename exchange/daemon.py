"""``exchange run``: one APScheduler job per enabled source, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import gc
import logging
import signal
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from sqlalchemy import Engine

from adapters import build_source
from exchange.config import Config, SourceConfig
from exchange.errors import ExchangeError, UsageError
from exchange.placement import Placement
from exchange.sync import sync_source

__all__ = ["run_daemon"]

log = logging.getLogger("exchange.daemon")


def _poll(engine: Engine, config: Config, source_config: SourceConfig, placement: Placement | None) -> None:
    """One scheduled poll; a failure is already recorded as a failed run, so it is only logged here."""
    try:
        result = sync_source(engine, build_source(source_config, zone=config.zone), config.lifecycle, placement)
    except ExchangeError as exc:
        log.error("%s: %s", source_config.name, exc.message)
        return
    log.info("%s", result.summary())
    if source_config.kind != "waze-feed" and (result.new or result.updated or result.ended):
        from exchange.publish import publish

        try:  # the city's own events changed: partners see it on their next poll
            log.info("%s", publish(engine, config, placement=placement).summary())
        except ExchangeError as exc:
            log.error("publish after %s: %s", source_config.name, exc.message)


def run_daemon(config: Config, engine: Engine, placement: Placement | None = None) -> None:
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    enabled = [s for s in config.sources if s.enabled]
    if not enabled:
        raise UsageError("no enabled sources to run; add a [[sources]] entry")
    scheduler = BlockingScheduler(timezone=config.zone)
    for source_config in enabled:
        scheduler.add_job(
            _poll,
            IntervalTrigger(seconds=source_config.interval_s, jitter=source_config.jitter_s or None),
            args=(engine, config, source_config, placement),
            id=source_config.name,
            name=f"sync {source_config.name}",
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
        )

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: finishing the running polls, then stopping", signum)
        scheduler.shutdown(wait=True)

    previous: dict[int, Any] = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    # The network's arrays and indexes live for the whole run: keep them out of every future
    # garbage collection, whose cost would otherwise grow with them on each poll.
    gc.freeze()
    log.info("polling %s", ", ".join(f"{s.name} every {s.interval_s}s" for s in enabled))
    try:
        scheduler.start()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
