"""What the inbound Waze feed says of each city closure, as `closure list` and `inspect event` show it.

The status itself is derived in :mod:`exchange.confirm`; this puts it in a record (a line for a
table, an object for JSON) and says on stderr which published closures Waze should show by now
and does not.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine

from exchange.cli import context
from exchange.confirm import WazeStatus, first_published, waze_status
from exchange.output import iso

__all__ = ["waze_fields"]


def waze_fields(engine: Engine, rows: Sequence[Any], held: dict[str, str], now_ms: int, *, table: bool) -> list[Any]:
    """For each row, the ``waze`` value of its record (None for an event that is not a city
    ROAD_CLOSED); warns on stderr of every late one."""
    config = context.state.config
    with engine.connect() as conn:
        published = first_published(conn)
    values: list[Any] = []
    for row in rows:
        m = row._mapping if hasattr(row, "_mapping") else row
        status = waze_status(m, now_ms=now_ms, first_published_ms=published.get(m["id"]), held_back=held.get(m["id"]),
                             unseen_after_min=config.publish.waze_unseen_after_min, zone=config.zone)
        values.append(_shown(status, config.zone if table else None))
        warning = status.warning(m["id"]) if status is not None else None
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
    return values


def _shown(status: WazeStatus | None, zone: Any) -> Any:
    if status is None:
        return None
    if zone is not None:
        return status.describe(lambda ms: iso(ms, zone))
    from exchange.event_views import waze_record

    return waze_record(status)
