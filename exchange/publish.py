"""Publishing: the city's events -> CIFS XML, CIFS JSON and WZDx -> validate -> lint -> serve.

What goes out: every city event that is not cancelled and ends in the future or ended less than
``publish.keep_ended_h`` ago (future starts included; ended events keep their id and carry their
end time). Crowd (Waze) data is never republished. Every feed is validated (the CIFS XSD plus
the rules it does not check; the official WZDx 4.2 schemas) before anything changes: an invalid
feed is not published, the last good publication stays served, and the failure is recorded.
A publication replaces all feeds in one transaction, so a poll never sees half of one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, or_, select

from exchange.config import Config
from exchange.db import writing
from exchange.errors import ExchangeError
from exchange.model import Event, Status
from exchange.publications import FEED_CONTENT_TYPES, publication_row, save_publications
from exchange.runtime import collector_paused, now_ms
from exchange.schema import events, publications, publish_runs
from exchange.store import row_to_event

__all__ = ["PublishFailed", "PublishResult", "eligible_events", "publish", "render_feeds"]

log = logging.getLogger("exchange.publish")


class PublishFailed(ExchangeError):
    """A generated feed failed validation; nothing was published."""


@dataclass
class PublishResult:
    status: str
    events: int = 0
    held_back: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    feeds: dict[str, bytes] = field(default_factory=dict)
    success_share: float = 1.0

    def summary(self) -> str:
        held = f", {len(self.held_back)} held back by the lint" if self.held_back else ""
        return (f"publish: {self.status}: {self.events} event(s){held}; "
                f"{self.success_share:.0%} pass the Waze acceptance lint")


def eligible_events(engine: Engine, *, at_ms: int, keep_ended_ms: int) -> tuple[list[Event], int]:
    """City events that belong in the feeds now, and when the newest of them last changed.

    The feeds carry that time as their own, not the time of publishing, so publishing the same
    content again yields the same bytes and ETag: partners polling with If-None-Match get a 304.
    """
    query = select(events).where(
        events.c.origin == "city",
        events.c.status != Status.CANCELLED.value,
        or_(events.c.end_ms.is_(None), events.c.end_ms > at_ms - keep_ended_ms),
    ).order_by(events.c.id)
    with engine.connect() as conn:
        rows = list(conn.execute(query))
    return [row_to_event(row) for row in rows], max((row.updated_ms for row in rows), default=0)


def render_feeds(chosen: list[Event], config: Config, generated: datetime) -> dict[str, bytes]:
    from feeds.cifs import render_cifs_json, render_cifs_xml
    from feeds.wzdx import render_wzdx

    settings = config.publish
    feed_info: dict[str, Any] = {
        "publisher": settings.publisher,
        "data_source_id": settings.data_source_id,
        "organization_name": settings.publisher,
        "contact_name": settings.contact_name,
        "contact_email": settings.contact_email,
        "license": settings.license,
        "update_frequency": settings.update_frequency_s,
        "url": settings.source_url,
    }
    return {
        "cifs.xml": render_cifs_xml(chosen, zone=config.zone, generated=generated),
        "cifs.json": render_cifs_json(chosen, zone=config.zone, generated=generated, shape=settings.cifs_json_shape),
        "wzdx.geojson": render_wzdx(chosen, feed_info={k: v for k, v in feed_info.items() if v is not None},
                                    generated=generated),
    }


def publish(engine: Engine, config: Config, *, out_dir: Path | None = None, placement: Any = None) -> PublishResult:
    """Render, validate, lint and publish the feeds; raises ``PublishFailed`` when one is invalid."""
    from exchange.validation import validate_cifs_xml, validate_wzdx
    from feeds.lint import feed_success_share, lint_event

    at = now_ms()
    settings = config.publish
    chosen, changed_ms = eligible_events(engine, at_ms=at, keep_ended_ms=round(settings.keep_ended_h * 3_600_000))
    network = placement.network if placement is not None else None
    findings = {event.id: lint_event(event, network) for event in chosen}
    result = PublishResult(status="published", success_share=feed_success_share(list(findings.values())))
    if settings.hold_back_failing:
        result.held_back = [eid for eid, found in findings.items() if any(p.severity == "error" for p in found)]
        chosen = [event for event in chosen if event.id not in result.held_back]
    result.events = len(chosen)
    with collector_paused():  # thousands of short-lived dicts and elements, no cycles
        feeds = render_feeds(chosen, config, datetime.fromtimestamp(changed_ms / 1000, tz=UTC))
        problems = [f"cifs.xml: {p.location}: {p.message}" for p in validate_cifs_xml(feeds["cifs.xml"])
                    if p.severity == "error"]
        problems += [f"wzdx.geojson: {p.location}: {p.message}" for p in validate_wzdx(feeds["wzdx.geojson"])
                     if p.severity == "error"]
    if problems:
        result.status, result.problems = "invalid", problems
        _record(engine, at, result)
        raise PublishFailed(f"the generated feeds are invalid, nothing was published ({len(problems)} problem(s); "
                            f"first: {problems[0]}); the last good feeds stay served")
    result.feeds = feeds
    rows = [publication_row(name, body, FEED_CONTENT_TYPES[name], result.events, at) for name, body in feeds.items()]
    _store(engine, at, rows, result)
    target = out_dir or settings.out_dir
    if target is not None:
        from adapters.sinks import FileSink

        FileSink(Path(target)).push({row["feed"]: row["body"] for row in rows},
                                    gzipped={row["feed"]: row["body_gzip"] for row in rows})
    return result


def _store(engine: Engine, at: int, rows: list[dict[str, Any]], result: PublishResult) -> None:
    with writing(engine, lock="publish") as conn:
        current = {row.feed: row.etag for row in conn.execute(select(publications.c.feed, publications.c.etag))}
        if all(current.get(row["feed"]) == row["etag"] for row in rows):
            result.status = "unchanged"
        else:
            save_publications(conn, rows)
        conn.execute(publish_runs.insert().values(
            at_ms=at, status=result.status, events=result.events, held_back=len(result.held_back), problems=None,
        ))


def _record(engine: Engine, at: int, result: PublishResult) -> None:
    with writing(engine) as conn:
        conn.execute(publish_runs.insert().values(
            at_ms=at, status=result.status, events=result.events, held_back=len(result.held_back),
            problems=result.problems[:100],
        ))
