"""``exchange run``: one APScheduler job per enabled source and the publish clock, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import gc
import logging
import signal
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from sqlalchemy import Engine

from exchange.config import Config, SourceConfig
from exchange.cycle import sync_then_publish
from exchange.errors import ExchangeError, UsageError
from exchange.placement import Placement
from exchange.redaction import install_log_redaction, register_config_secrets

__all__ = ["build_scheduler", "run_daemon"]

log = logging.getLogger("exchange.daemon")


def _poll(engine: Engine, config: Config, source_config: SourceConfig, placement: Placement | None) -> None:
    """One scheduled poll; a failure is already recorded as a failed run, so it is only logged here."""
    try:
        cycle = sync_then_publish(engine, config, source_config, placement)
    except ExchangeError as exc:
        log.error("%s: %s", source_config.name, exc.message)
        return
    log.info("%s", cycle.sync.summary())
    if cycle.published is not None:
        log.info("%s", cycle.published.summary())
    if cycle.publish_error is not None:
        log.error("publish after %s: %s", source_config.name, cycle.publish_error)


def _republish(engine: Engine, config: Config, placement: Placement | None) -> None:
    """The publish clock: ended closures age out on time, and an unchanged publication is renewed
    once it is ``publish.max_age_s`` old."""
    from exchange.publish import publish

    try:
        result = publish(engine, config, placement=placement)
    except ExchangeError as exc:
        log.error("publish: %s", exc.message)
        return
    if result.status != "unchanged":
        for line in result.warnings():
            log.warning("%s", line.removeprefix("warning: "))
        log.info("%s", result.summary())


def build_scheduler(config: Config, engine: Engine, placement: Placement | None = None) -> Any:
    """One job per enabled source on its interval, and the publish clock; none started yet.

    The sources' tokens are registered as secrets and the redaction filter installed on the
    logging set-up there is (the CLI's, or an embedding program's), so no poll logs a token.
    """
    register_config_secrets(config)
    install_log_redaction()
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
    scheduler.add_job(
        _republish, IntervalTrigger(seconds=config.publish.interval_s), args=(engine, config, placement),
        id="publish", name="publish clock", max_instances=1, coalesce=True, next_run_time=datetime.now(UTC),
    )
    return scheduler


def run_daemon(config: Config, engine: Engine, placement: Placement | None = None) -> None:
    scheduler = build_scheduler(config, engine, placement)
    enabled = [s for s in config.sources if s.enabled]

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: finishing the running polls, then stopping", signum)
        scheduler.shutdown(wait=True)

    previous: dict[int, Any] = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    # The network's arrays and indexes live for the whole run: keep them out of every future
    # garbage collection, whose cost would otherwise grow with them on each poll.
    gc.freeze()
    log.info("polling %s; publishing every %ss", ", ".join(f"{s.name} every {s.interval_s}s" for s in enabled),
             config.publish.interval_s)
    try:
        scheduler.start()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
