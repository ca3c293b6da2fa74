"""One source's cycle, shared by ``exchange sync`` and the daemon: sync it, then republish the
feeds when the city's own events changed (or which of one closure's reports is published did),
so partners see the change on their next poll."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from adapters import build_source
from exchange.config import Config, SourceConfig
from exchange.errors import ExchangeError
from exchange.redaction import register_source_secrets
from exchange.runtime import stop_requested
from exchange.sync import SyncResult, sync_source

if TYPE_CHECKING:
    from exchange.placement import Placement
    from exchange.publish import PublishResult

__all__ = ["Cycle", "sync_then_publish"]

log = logging.getLogger("exchange.cycle")


@dataclass
class Cycle:
    """What one cycle did: the sync, and the publication that followed (or why it failed)."""

    sync: SyncResult
    published: PublishResult | None = None
    publish_error: str | None = None


def sync_then_publish(
    engine: Engine, config: Config, source_config: SourceConfig, placement: Placement | None = None,
    *, warn_late: bool = True, publish_changes: bool = True,
) -> Cycle:
    """Sync one source (its failure raises, recorded as a failed run); then, when it changed city
    events (and ``publish_changes``), publish. A failed publication does not undo the sync: it is in
    ``publish_error``.

    After a Waze poll, ``warn_late`` logs the closures Waze still does not show (the daemon's watch
    tells them itself, once)."""
    register_source_secrets(source_config)  # its token is masked in every log line (httpx logs the URL)
    source = build_source(source_config, zone=config.zone, http=config.http, should_stop=stop_requested)
    result = sync_source(engine, source, config.lifecycle, placement)
    cycle = Cycle(result)
    if source_config.kind == "waze-feed":
        if placement is not None and warn_late:
            _warn_late(engine, config, source_config.interval_s)
        return cycle
    if not publish_changes or not result.changed:
        return cycle
    from exchange.publish import publish

    try:
        cycle.published = publish(engine, config, placement=placement)
    except ExchangeError as exc:
        cycle.publish_error = exc.message
    return cycle


def _warn_late(engine: Engine, config: Config, interval_s: int) -> None:
    """Log once (at the Waze poll that crosses the delay) each published closure Waze still does not show."""
    from exchange.confirm import late_closures
    from exchange.publish import held_back_now
    from exchange.runtime import now_ms

    delay = config.publish.waze_unseen_after_min
    with engine.connect() as conn:
        late = late_closures(conn, now_ms(), delay, held_back_now(engine), config.zone)
    for closure_id, status in late:
        assert status.unseen_minutes is not None
        if status.unseen_minutes * 60 < delay * 60 + interval_s:
            log.warning("%s", status.warning(closure_id))
