"""Publishing: the city's events -> CIFS XML, CIFS JSON and WZDx -> validate -> lint -> serve.

What goes out: every city event that is not cancelled and ends in the future or ended less than
``publish.keep_ended_h`` ago (future starts included; ended events keep their id and carry their
end time). Crowd (Waze) data is never republished. A closure two city sources report goes out
once: an event linked to the one published in its place (``same_as``, :mod:`exchange.same_closure`)
leaves the feeds as a cancelled one does, and is neither held back nor lost for the guard.

One bad event never freezes the feeds. The assembled feeds are validated (the CIFS XSD plus the
rules it does not check; the official WZDx 4.2 schemas); when they fail, each event is rendered
and checked on its own, and the ones that fail are held back with their reason, the others go
out. A held-back event whose earlier version is in the last publication keeps that version
served ("newer version held back"); an end is never held back (an ended event that fails goes
out as its last good version with the new end time). Cancelled events leave the feeds.

A mass hold-back guard, the twin of ingest's suspect-poll rule: when more than
``publish.max_hold_back_share`` of the previously published events would be held back or
disappear, nothing is published, the last good feeds stay served, and the run is recorded as
failed (a swapped road network or a renderer bug must not publish a valid, empty feed that makes
Waze drop every closure).

A ONE_DIRECTION line drawn more than 135 degrees against the direction its source signs (a lint
finding with ``holds_back``, given only when no road network is configured) is held back the
same way even when ``publish.hold_back_failing`` is off: it is never published reversed, nor
reversed on its bearing alone. The other blocking lint findings hold back only with
``hold_back_failing``.

A stored city event that cannot be read (a time out of range, text that is not UTF-8, a geometry or
details the model refuses: ``store.read_event``) is held back the same way, with the reason
"cannot be read: ...", and counts for the guard like any other; it never stops the others.

A publication replaces all feeds in one transaction, so a poll never sees half of one. Its
timestamp (the CIFS root ``timestamp``, WZDx ``update_date``) is the time it was generated; when
the content is unchanged no new publication is made until the last is ``publish.max_age_s`` old,
so ETags change only when the content does, or at most every ``max_age_s``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection, Engine, or_, select

from exchange.bulk import Bulk, dumps
from exchange.config import Config
from exchange.db import writing
from exchange.errors import ExchangeError
from exchange.model import Event, SourceRef, Status, from_millis
from exchange.publications import FEED_CONTENT_TYPES, publication_row, save_publications
from exchange.runtime import collector_paused, now_ms
from exchange.schema import events, publications, publish_runs, published_events
from exchange.store import Unreadable, read_event, read_rows, select_events

if TYPE_CHECKING:
    from feeds.cifs import Attribution

__all__ = [
    "Eligible",
    "HeldBack",
    "PublishFailed",
    "PublishResult",
    "eligible_events",
    "held_back_in",
    "held_back_now",
    "publish",
    "render_feeds",
]

log = logging.getLogger("exchange.publish")


class PublishFailed(ExchangeError):
    """Nothing was published (the guard tripped, or the assembled feeds failed validation)."""


@dataclass(frozen=True, slots=True)
class HeldBack:
    """Why an event's current version is not in the feeds, and what is served instead."""

    reason: str
    served: str  # "previous version" or "nothing"

    def describe(self) -> str:
        if self.served == "previous version":
            return f"newer version held back: {self.reason}"
        return f"held back: {self.reason}"


@dataclass
class PublishResult:
    status: str
    events: int = 0
    held_back: dict[str, str] = field(default_factory=dict)  # event id -> what an operator reads
    problems: list[str] = field(default_factory=list)
    feeds: dict[str, bytes] = field(default_factory=dict)
    success_share: float = 1.0
    unreadable: list[Unreadable] = field(default_factory=list)  # held back too: the stored row cannot be read

    def warnings(self) -> list[str]:
        """One line per event whose stored row cannot be read: its id, why, and what goes out instead."""
        lines = []
        for item in self.unreadable:
            described = self.held_back.get(item.id)
            if described is None:
                outcome = "its last published version goes out with the stored end"
            elif described.startswith("newer version"):
                outcome = "held back, its last published version stays served"
            else:
                outcome = "held back"
            lines.append(item.warning(outcome))
        return lines

    def summary(self) -> str:
        held = f", {len(self.held_back)} held back" if self.held_back else ""
        return (f"publish: {self.status}: {self.events} event(s){held}; "
                f"{self.success_share:.0%} pass the Waze acceptance lint")


@dataclass(frozen=True, slots=True)
class Eligible:
    """The city events that belong in the feeds now, and those of them whose stored row cannot be read."""

    events: list[Event]
    unreadable: list[Unreadable]

    @property
    def ids(self) -> set[str]:
        return {event.id for event in self.events} | {item.id for item in self.unreadable}


def eligible_events(engine: Engine, *, at_ms: int, keep_ended_ms: int) -> Eligible:
    """City events that belong in the feeds now: not cancelled, not ended more than ``keep_ended_ms``
    ago, and not linked to the same closure from another source published in their place (``same_as``)
    while that one is in effect."""
    instead = events.alias("instead")
    in_effect = select(instead.c.id).where(
        instead.c.id == events.c.same_as, instead.c.status == Status.ACTIVE.value,
        or_(instead.c.end_ms.is_(None), instead.c.end_ms > at_ms),
    ).exists()
    query = select_events().where(
        events.c.origin == "city",
        events.c.status != Status.CANCELLED.value,
        or_(events.c.end_ms.is_(None), events.c.end_ms > at_ms - keep_ended_ms),
        # once the event published in its place is over, its source's longer report goes out
        or_(events.c.same_as.is_(None), ~in_effect),
    ).order_by(events.c.id)
    from feeds.cifs import with_revision_times

    found = Eligible([], [])
    with engine.connect() as conn:
        for row in read_rows(conn, query):
            item = read_event(row)
            if isinstance(item, Unreadable):
                found.unreadable.append(item)
            else:  # the feeds date an event by its revisions (CIFS creationtime, updatetime)
                found.events.append(with_revision_times(item.event, item.row["first_seen_ms"], item.row["updated_ms"]))
    return found


def render_feeds(chosen: Sequence[Event], config: Config, generated: datetime) -> dict[str, bytes]:
    from feeds.cifs import render_cifs_json, render_cifs_xml
    from feeds.wzdx import render_wzdx

    settings = config.publish
    attribution = _attribution(config)
    return {
        "cifs.xml": render_cifs_xml(chosen, zone=config.zone, generated=generated, attribution=attribution),
        "cifs.json": render_cifs_json(chosen, zone=config.zone, generated=generated, shape=settings.cifs_json_shape,
                                      attribution=attribution),
        # the city's zone: a schedule's hours are local times, published as one road event per occurrence
        "wzdx.geojson": render_wzdx(chosen, feed_info=_feed_info(config), generated=generated, zone=config.zone),
    }


def held_back_now(engine: Engine) -> dict[str, str]:
    """Event id -> why its current version is not published, as the last publish run found it."""
    with engine.connect() as conn:
        return held_back_in(conn)


def held_back_in(conn: Connection) -> dict[str, str]:
    """:func:`held_back_now` on an open connection (one snapshot with what else it reads)."""
    row = conn.execute(select(publish_runs.c.problems).order_by(publish_runs.c.id.desc()).limit(1)).first()
    found = row.problems if row is not None and isinstance(row.problems, dict) else {}
    return {str(key): str(value) for key, value in (found.get("held_back") or {}).items()}


def publish(
    engine: Engine, config: Config, *, out_dir: Path | None = None, placement: Any = None, renew_within_s: int = 0
) -> PublishResult:
    """Check, render and publish the feeds; raises ``PublishFailed`` when nothing could be published.

    An unchanged publication is renewed once it is ``publish.max_age_s`` old, or ``renew_within_s``
    earlier: the daemon's clock passes its interval, so that no publication outlives ``max_age_s``
    between two of its ticks (``/health/sources`` calls an older feed stale).
    """
    from feeds.lint import feed_success_share, lint_event

    at = now_ms()
    generated = datetime.fromtimestamp(at / 1000, tz=UTC)
    settings = config.publish
    eligible = eligible_events(engine, at_ms=at, keep_ended_ms=round(settings.keep_ended_h * 3_600_000))
    chosen, unreadable = eligible.events, eligible.unreadable
    previous = _PublishedVersions(engine)
    network = placement.network if placement is not None else None
    findings = {event.id: lint_event(event, network, generated) for event in chosen}
    result = PublishResult(status="published", success_share=feed_success_share(list(findings.values())),
                           unreadable=unreadable)
    held: dict[str, HeldBack] = {}
    for event in chosen:
        # the findings that always hold back (a line drawn against its signed direction), the other
        # blocking ones only with publish.hold_back_failing
        blocking = [p.message for p in findings[event.id]
                    if p.severity == "error" and (p.holds_back or settings.hold_back_failing)]
        if blocking and event.status is not Status.ENDED:  # an end is never held back
            held[event.id] = _hold(event.id, "; ".join(blocking), previous.ids)
    with collector_paused():  # thousands of short-lived dicts and elements, no cycles
        # what the feeds would say if every current version passes: when the last publication
        # says exactly that and is young enough, nothing needs rendering at all
        hoped = _serve(chosen, held, {}, previous, config, unreadable)
        max_age_s = max(0, settings.max_age_s - renew_within_s)
        rows = _current_publication(engine, _content_digest(hoped, config), at, max_age_s)
        feeds: dict[str, bytes] = {}
        if not rows:
            candidates = [event for event in chosen if event.id not in held]
            feeds, problems = _checked(candidates, config, generated)
            failing = _failing(candidates, config) if problems else {}
            served = _serve(chosen, held, failing, previous, config, unreadable) if failing else hoped
            if failing or held or unreadable:
                feeds = {}  # rendered without the held-back events' previous versions: render again
            digest = _content_digest(served, config)
            rows = _current_publication(engine, digest, at, max_age_s) if failing else []
        else:
            served, digest = hoped, ""
        result.held_back = {eid: item.describe() for eid, item in held.items()}
        result.events = len(served)
        _guard(engine, at, eligible.ids, served, held, previous.ids, settings.max_hold_back_share, result)
        if rows:
            result.status = "unchanged"
            _record(engine, at, result)
        else:
            if not feeds:
                feeds, problems = _checked(served, config, generated)
                if problems:  # every event passed alone, yet the whole does not: the last guard
                    result.status, result.problems = "failed", problems
                    _record(engine, at, result)
                    raise PublishFailed(f"the assembled feeds are invalid, nothing was published ({len(problems)} "
                                        f"problem(s); first: {problems[0]}); the last good feeds stay served")
            rows = [publication_row(name, body, FEED_CONTENT_TYPES[name], result.events, at)
                    for name, body in feeds.items()]
            for row in rows:
                row["content_digest"] = digest
            _store(engine, at, rows, served, eligible.ids, held, result)
    result.feeds = {row["feed"]: row["body"] for row in rows}
    target = out_dir or settings.out_dir
    if target is not None:
        from adapters.sinks import FileSink

        FileSink(Path(target)).push({row["feed"]: row["body"] for row in rows},
                                    gzipped={row["feed"]: row["body_gzip"] for row in rows})
    return result


# --------------------------------------------------------------------------- per-event isolation


class _PublishedVersions:
    """The events of the last publications: their ids at once, a version only when it is needed."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        with engine.connect() as conn:
            self.ids = frozenset(conn.execute(select(published_events.c.event_id)).scalars())
        self._loaded: dict[str, Event | None] = {}

    def get(self, event_id: str) -> Event | None:
        if event_id not in self.ids:
            return None
        if event_id not in self._loaded:
            with self.engine.connect() as conn:
                version = conn.execute(select(published_events.c.version)
                                       .where(published_events.c.event_id == event_id)).scalar_one()
            try:
                self._loaded[event_id] = Event.model_validate(version)
            except ValueError as exc:  # stored by a release whose model differed: nothing to fall back on
                log.warning("the published version of %s cannot be read (%s); it is not served again",
                            event_id, exc)
                self._loaded[event_id] = None
        return self._loaded[event_id]


def _serve(
    chosen: list[Event], held: dict[str, HeldBack], failing: Mapping[str, str], previous: _PublishedVersions,
    config: Config, unreadable: Sequence[Unreadable] = (),
) -> list[Event]:
    """The versions to publish: the current one where it passes, else the last good one, else nothing.

    Events that fail are added to ``held`` with their reason; so are the ``unreadable`` ones.
    """
    served: list[Event] = _unreadable_versions(unreadable, held, previous, config)
    for event in chosen:
        reason = failing.get(event.id)
        if reason is not None and event.status is Status.ENDED:
            # an end is never held back: the last good version with this end, or out of the feeds
            # (never the last good version still running)
            ended = _ended_fallback(event.end_time, previous.get(event.id), config)
            if ended is not None:
                served.append(ended)
            else:
                held[event.id] = HeldBack(reason, "nothing")
            continue
        if reason is not None:
            held[event.id] = _hold(event.id, reason, previous.ids)
        if event.id in held:
            last_good = previous.get(event.id) if held[event.id].served == "previous version" else None
            if last_good is not None and _same(last_good, event):
                # what was published is this very version (published before it was held back):
                # nothing newer is held back, and this one goes out no more
                held[event.id] = HeldBack(held[event.id].reason, "nothing")
            elif last_good is not None:
                served.append(last_good)
            continue
        served.append(event)
    return sorted(served, key=lambda event: event.id) if unreadable else served


def _unreadable_versions(
    unreadable: Sequence[Unreadable], held: dict[str, HeldBack], previous: _PublishedVersions, config: Config,
) -> list[Event]:
    """What stands in for events whose stored row cannot be read: the last good version, as for any
    held-back event (with the stored end when the row says it ended, as an end is never held back),
    or nothing. Each one is added to ``held``, except an end that goes out."""
    served: list[Event] = []
    for item in unreadable:
        reason = f"cannot be read: {item.reason}"
        if item.row.get("status") == Status.ENDED.value:
            ended = _ended_fallback(_stored_time(item.row.get("end_ms")), previous.get(item.id), config)
            if ended is not None:
                served.append(ended)
            else:
                held[item.id] = HeldBack(reason, "nothing")
            continue
        held[item.id] = _hold(item.id, reason, previous.ids)
        last_good = previous.get(item.id) if held[item.id].served == "previous version" else None
        if last_good is not None:
            served.append(last_good)
        else:
            held[item.id] = HeldBack(reason, "nothing")
    return served


def _stored_time(ms: Any) -> datetime | None:
    try:
        return from_millis(ms) if isinstance(ms, int) else None
    except (ValueError, OverflowError, OSError):
        return None


def _same(published: Event, current: Event) -> bool:
    return _published_content(published) == _published_content(current)


def _published_content(event: Event) -> dict[str, Any]:
    """What of an event the feeds can say: not how it was matched or clustered."""
    return event.model_dump(mode="json", exclude={"road_match", "cluster_id"})


def _checked(chosen: Sequence[Event], config: Config, generated: datetime) -> tuple[dict[str, bytes], list[str]]:
    """The feeds of ``chosen`` and their problems (a renderer fault is a problem, never a traceback)."""
    try:
        feeds = render_feeds(chosen, config, generated)
    except Exception as exc:
        return {}, [f"cannot be rendered: {type(exc).__name__}: {exc}"]
    return feeds, _feed_problems(feeds)


def _hold(event_id: str, reason: str, previous_ids: frozenset[str]) -> HeldBack:
    return HeldBack(reason, "previous version" if event_id in previous_ids else "nothing")


def _failing(chosen: Sequence[Event], config: Config) -> dict[str, str]:
    """Event id -> its first problem, for the events that fail when rendered and checked alone.

    The assembled feeds are checked first (one pass, the common case). When they fail, the
    events are split in halves and each half is checked the same way, down to single events: one
    bad event among n costs about 2n events rendered, not n one-event feeds. (Events that fail
    only together are left to the final check of the assembled feeds.)
    """
    if not chosen:
        return {}
    problems = _problems_of(chosen, config)
    if not problems:
        return {}
    if len(chosen) == 1:
        return {chosen[0].id: problems[0]}
    middle = len(chosen) // 2
    return {**_failing(chosen[:middle], config), **_failing(chosen[middle:], config)}


def _problems_of(chosen: Sequence[Event], config: Config) -> list[str]:
    return _checked(chosen, config, _CHECK_TIME)[1]


def _ended_fallback(end_time: datetime | None, last_good: Event | None, config: Config) -> Event | None:
    """The last good version with this end, when it passes (an end must reach Waze), else None."""
    if last_good is None or end_time is None:
        return None
    if last_good.start_time is not None and end_time <= last_good.start_time:
        return None
    ended = last_good.model_copy(update={"status": Status.ENDED, "end_time": end_time})
    return ended if not _problems_of([ended], config) else None


def _feed_problems(feeds: Mapping[str, bytes]) -> list[str]:
    from exchange.validation import validate_cifs_xml, validate_wzdx

    problems = [f"cifs.xml: {p.location}: {p.message}" for p in validate_cifs_xml(feeds["cifs.xml"])
                if p.severity == "error"]
    problems += [f"wzdx.geojson: {p.location}: {p.message}" for p in validate_wzdx(feeds["wzdx.geojson"])
                 if p.severity == "error"]
    return problems


#: the generation time of feeds rendered only to be checked (it is not in any rule)
_CHECK_TIME = datetime(2026, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- the mass hold-back guard


def _guard(
    engine: Engine, at: int, eligible: set[str], served: Sequence[Event], held: Mapping[str, HeldBack],
    previous_ids: frozenset[str], max_share: float, result: PublishResult,
) -> None:
    """Refuse a publication that would hold back or lose too many of the events published before.

    An event that left the feeds on purpose (cancelled, ended longer ago than ``keep_ended_h``, or
    folded into the same closure from another source) is not lost: only events still eligible
    count (an eligible one that cannot be read counts).
    """
    still_eligible = eligible & previous_ids
    fresh = {event.id for event in served} - set(held)
    lost = sorted(eid for eid in still_eligible if eid not in fresh)
    if not lost or len(lost) <= max_share * len(still_eligible):
        return
    reasons = [f"{eid}: {held[eid].reason}" if eid in held else f"{eid}: missing from the rendered feeds"
               for eid in lost]
    result.status, result.problems = "failed", reasons
    _record(engine, at, result, message=f"{len(lost)} of {len(still_eligible)} published events would be held back")
    raise PublishFailed(
        f"{len(lost)} of {len(still_eligible)} published events would be held back or disappear (over the "
        f"{max_share:.0%} of publish.max_hold_back_share), nothing was published; first: {reasons[0]}; "
        "the last good feeds stay served"
    )


# --------------------------------------------------------------------------- the store


def _feed_info(config: Config) -> dict[str, Any]:
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
    return {key: value for key, value in feed_info.items() if value is not None}


def _attribution(config: Config) -> Attribution:
    """Who the CIFS ``<source>`` names for events that carry none: the city for its operators'
    closures, each city source (its ``publisher``, else its name) for its imports."""
    from adapters import build_source
    from feeds.cifs import Attribution

    settings = config.publish
    own = SourceRef(reference=settings.reference, name=settings.publisher, url=settings.source_url)
    by_namespace: dict[str, SourceRef] = {}
    for source in config.sources:
        if source.kind == "waze-feed":  # crowd data is never republished
            continue
        try:
            built = build_source(source, zone=config.zone)
        except Exception:  # a source that does not build is reported by sync and config check, not here
            continue
        publisher = getattr(built.settings, "publisher", None)
        by_namespace.setdefault(built.namespace, SourceRef(reference=source.name, name=publisher or source.name))
    return Attribution(own=own, by_namespace=by_namespace)


def _content_digest(served: Sequence[Event], config: Config) -> str:
    """What the feeds say, without when they were generated: equal digests, equal feeds."""
    digest = hashlib.sha256()
    settings = config.publish
    attribution = _attribution(config)
    sources = {namespace: ref.model_dump() for namespace, ref in attribution.by_namespace.items()}
    digest.update(orjson.dumps([config.timezone, settings.cifs_json_shape, settings.reference, _feed_info(config),
                                sources]))
    for event in served:
        digest.update(orjson.dumps(_published_content(event)))
    return digest.hexdigest()


#: a publication this close to ``max_age_s`` is renewed now: the clock's ticks drift by milliseconds,
#: and waiting for the next tick would renew it a whole ``interval_s`` late
_CLOCK_SLACK_MS = 1_000


def _current_publication(engine: Engine, digest: str, at: int, max_age_s: int) -> list[dict[str, Any]]:
    """The stored publication when it says the same and is younger than ``max_age_s``, else nothing."""
    with engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(select(publications))]
    current = (len(rows) == len(FEED_CONTENT_TYPES) and all(row["content_digest"] == digest for row in rows)
               and all(at - row["published_ms"] < max_age_s * 1000 - _CLOCK_SLACK_MS for row in rows))
    return rows if current else []


def _store(
    engine: Engine, at: int, rows: list[dict[str, Any]], served: Sequence[Event], eligible: set[str],
    held: Mapping[str, HeldBack], result: PublishResult,
) -> None:
    fresh = [event for event in served if event.id not in held]
    with writing(engine, lock="publish") as conn:
        save_publications(conn, rows)
        _remember(conn, at, fresh, eligible, held)
        _insert_run(conn, at, result)


def _remember(conn: Connection, at: int, fresh: Sequence[Event], eligible: set[str],
              held: Mapping[str, HeldBack]) -> None:
    """Keep the published version of each event (what a later hold-back serves), forget the rest."""
    db = Bulk(conn)
    known = set(conn.execute(select(published_events.c.event_id)).scalars())
    db.many("DELETE FROM published_events WHERE event_id = ?", [(eid,) for eid in sorted(known - eligible)])
    versions = {event.id: dumps(event.model_dump(mode="json")) for event in fresh}
    db.update(published_events, ("version", "published_ms", "held_back_reason", "held_back_ms"), "event_id",
              [(version, at, None, None, eid) for eid, version in versions.items() if eid in known])
    db.insert(published_events, ("event_id", "version", "published_ms", "first_published_ms"),
              [(eid, version, at, at) for eid, version in versions.items() if eid not in known])
    db.update(published_events, ("held_back_reason", "held_back_ms"), "event_id",
              [(item.reason, at, eid) for eid, item in held.items() if item.served == "previous version"])


def _insert_run(conn: Connection, at: int, result: PublishResult, message: str | None = None) -> None:
    problems: dict[str, Any] | None = None
    if result.problems or result.held_back:
        problems = {"feeds": result.problems[:100], "held_back": result.held_back}
    conn.execute(publish_runs.insert().values(
        at_ms=at, status=result.status, events=result.events, held_back=len(result.held_back), problems=problems,
        message=message,
    ))


def _record(engine: Engine, at: int, result: PublishResult, message: str | None = None) -> None:
    with writing(engine) as conn:
        _insert_run(conn, at, result, message)
