"""Publishing: the city's events -> every target (:mod:`exchange.targets`: CIFS XML and JSON, WZDx 4.2,
DATEX II v3, CWZ 1.0) -> validate -> lint -> serve.

What goes out: every city event that is not cancelled and ends in the future or ended less than
``publish.keep_ended_h`` ago (future starts included; ended events keep their id and carry their
end time). Crowd (Waze) data is never republished. A closure two city sources report goes out
once: an event linked to the one published in its place (``same_as``, :mod:`exchange.same_closure`)
leaves the feeds as a cancelled one does, and is neither held back nor lost for the guard.

Each target publishes on its own: an event a target cannot carry validly (its ``problems_for``, or
its document fails the target's check) is held back from that target only, with its reason, and
goes out in the others; every rule below (per-event hold-back, the last good version served, ends
never held back, the mass hold-back guard) applies per target, with the versions it published kept
per (event, target) in ``published_events``. What each target lost or approximated of each event it
carried (its ``losses_for``) and what it held back is the compile report, stored with the run
(``publish_runs.problems["targets"]``, :func:`compile_report`, ``exchange inspect feed --target``).
What a target cannot carry by its scope (an accident in WZDx) stays in that report; the operator's
held-back list (:func:`held_back_now`) names the other reasons.

One bad event never freezes the feeds. The assembled feeds of a target are validated (CIFS: the XSD
plus the rules it does not check; WZDx: the official 4.2 schemas; CWZ: those plus the CWZ
differences; DATEX II: the project's structural rules; and the official schemas of
``publish.schema_dir`` when given); when they fail, each event is rendered and checked on its
own, and the ones that fail are held back with their reason, the others go out. A held-back
event whose earlier version is in the last publication keeps that version served ("newer version
held back"); an end is never held back (an ended event that fails goes
out as its last good version with the new end time). Cancelled events leave the feeds.

A mass hold-back guard, the twin of ingest's suspect-poll rule: when more than
``publish.max_hold_back_share`` of the previously published events would be held back or
disappear, that target publishes nothing, its last good feeds stay served (the other targets
publish), and when every target is refused the run is recorded as failed (a swapped road network
or a renderer bug must not publish a valid, empty feed that makes Waze drop every closure).

A ONE_DIRECTION line drawn more than 135 degrees against the direction its source signs (a lint
finding with ``holds_back``, given only when no road network is configured) is held back the
same way even when ``publish.hold_back_failing`` is off: it is never published reversed, nor
reversed on its bearing alone, in any target. The other blocking lint findings (the Waze acceptance
lint) hold back only with ``hold_back_failing``, and from the CIFS target only.

A stored city event that cannot be read (a time out of range, text that is not UTF-8, a geometry or
details the model refuses: ``store.read_event``) is held back the same way, with the reason
"cannot be read: ...", and counts for the guard like any other; it never stops the others.

A publication replaces the feeds of every target in one transaction, so a poll never sees half of
one (the feeds of a target now off are withdrawn in it). Its
timestamp (the CIFS root ``timestamp``, WZDx ``update_date``) is the time it was generated; when
the content is unchanged no new publication is made until the last is ``publish.max_age_s`` old,
so ETags change only when the content does, or at most every ``max_age_s``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import orjson
from sqlalchemy import Connection, Engine, delete, func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from exchange.bulk import Bulk, dumps
from exchange.config import Config
from exchange.db import db_error_message, writing
from exchange.errors import ExchangeError
from exchange.model import Event, Status, from_millis
from exchange.output import iso
from exchange.publications import publication_row, save_publications
from exchange.runtime import clear_degraded, collector_paused, note_degraded, now_ms
from exchange.schema import events, publications, publish_runs, published_events, revisions
from exchange.store import Unreadable, read_event, read_rows, select_events
from exchange.targets import (
    OfficialSchemas,
    Target,
    attribution,
    enabled_targets,
    off_feeds,
    off_targets,
    official_schemas,
)

__all__ = [
    "Eligible",
    "HeldBack",
    "PublishFailed",
    "PublishResult",
    "compile_report",
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
    #: with an out_dir: whether a new set of files was written there (False: it held these feeds already)
    files_written: bool | None = None
    success_share: float = 1.0
    unreadable: list[Unreadable] = field(default_factory=list)  # held back too: the stored row cannot be read
    #: target name -> its part of the run: status, events, held_back, losses (the compile report)
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    off: dict[str, str] = field(default_factory=dict)  # target name -> why it is not published
    #: why a run that found something new stored nothing (another process's newer publication)
    superseded: str | None = None

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
        if self.superseded is not None:
            return f"publish: {self.status}: {self.superseded}; the stored publication stays served"
        return (f"publish: {self.status}: {self.events} event(s){held}; "
                f"{self.success_share:.0%} pass the Waze acceptance lint")

    def target_lines(self) -> list[str]:
        """One line per target: its events, how many it held back, how many it carries with losses, or why
        it is off or failed."""
        lines = []
        for name, part in self.targets.items():
            with_losses = f", {part['not_yet']} not in the feed yet" if part.get("not_yet") else ""
            with_losses += f", {part['with_losses']} with losses" if part.get("with_losses") else ""
            failed = f"; failed: {part['reason']}" if part.get("status") == "failed" else ""
            lines.append(f"{name}: {part.get('events', 0)} event(s), {len(part.get('held_back') or {})} held back"
                         f"{with_losses}{failed}")
        lines += [f"{name}: off: {reason}" for name, reason in self.off.items()]
        return lines

    @property
    def failed_targets(self) -> list[str]:
        return [name for name, part in self.targets.items() if part.get("status") == "failed"]


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
    ago (nor before they were first stored), and not linked to the same closure from another source
    published in their place (``same_as``) while that one is in effect."""
    instead = events.alias("instead")
    in_effect = select(instead.c.id).where(
        instead.c.id == events.c.same_as, instead.c.status == Status.ACTIVE.value,
        or_(instead.c.end_ms.is_(None), instead.c.end_ms > at_ms),
    ).exists()
    query = select_events().where(
        events.c.origin == "city",
        events.c.status != Status.CANCELLED.value,
        or_(events.c.end_ms.is_(None), events.c.end_ms > at_ms - keep_ended_ms),
        # over before it was stored (typed or imported with a past end): no partner saw it to see it end
        or_(events.c.end_ms.is_(None), events.c.end_ms >= events.c.first_seen_ms),
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
    """Every feed of every target published (:func:`exchange.targets.enabled_targets`), unchecked."""
    return {name: body for target in enabled_targets(config) for name, body in target.render(chosen, config,
                                                                                            generated).items()}


def held_back_now(engine: Engine) -> dict[str, str]:
    """Event id -> why its current version is not published, as the last publish run found it."""
    with engine.connect() as conn:
        return held_back_in(conn)


def held_back_in(conn: Connection) -> dict[str, str]:
    """:func:`held_back_now` on an open connection (one snapshot with what else it reads)."""
    row = conn.execute(select(publish_runs.c.problems).order_by(publish_runs.c.id.desc()).limit(1)).first()
    found = row.problems if row is not None and isinstance(row.problems, dict) else {}
    return {str(key): str(value) for key, value in (found.get("held_back") or {}).items()}


def compile_report(engine: Engine) -> tuple[int | None, dict[str, Any]]:
    """(when, per target report) of the last publish run that rendered the feeds: for each target its
    status (published, failed, off), events, what it held back and why, and what it lost or approximated
    of each event it carried (``losses``). (None, {}) before any."""
    with engine.connect() as conn:
        rows = conn.execute(select(publish_runs.c.at_ms, publish_runs.c.problems)
                            .where(publish_runs.c.status != "unchanged")
                            .order_by(publish_runs.c.id.desc()).limit(50))
        for at, problems in rows:
            if isinstance(problems, dict) and isinstance(problems.get("targets"), dict):
                return int(at), problems["targets"]
    return None, {}


def publish(
    engine: Engine, config: Config, *, out_dir: Path | None = None, placement: Any = None, renew_within_s: int = 0,
    targets: Sequence[Target] | None = None,
) -> PublishResult:
    """Check, render and publish the feeds of every target; raises ``PublishFailed`` when nothing could be
    published.

    An unchanged publication is renewed once it is ``publish.max_age_s`` old, or ``renew_within_s``
    earlier: the daemon's clock passes its interval, so that no publication outlives ``max_age_s``
    between two of its ticks (``/health/sources`` calls an older feed stale). ``targets``: the targets
    to publish instead of the configured ones.

    A store error (a write refused, the connection lost) is a failed publish like any other: the
    publication is one transaction, so the last good feeds stay served; the run is recorded as
    failed when the store takes that write, and :class:`PublishFailed` says why in one line.
    """
    try:
        with _ONE_AT_A_TIME:  # the daemon's start-up publish and a sync's: the later one reads what the other wrote
            return _publish(engine, config, out_dir=out_dir, placement=placement, renew_within_s=renew_within_s,
                            targets=targets)
    except SQLAlchemyError as exc:
        message = f"the store refused the publication: {db_error_message(exc)}"
        try:
            _record(engine, now_ms(), PublishResult(status="failed"), message)
        except SQLAlchemyError:  # the store is gone altogether: the log line is the record
            log.warning("cannot record the failed publish run: %s", message)
        raise PublishFailed(f"{message}; the last good feeds stay served") from exc


#: publish runs of one process take turns (:func:`publish`); across processes, ``_store`` drops a run
#: that a newer one overtook
_ONE_AT_A_TIME = threading.Lock()


def _publish(
    engine: Engine, config: Config, *, out_dir: Path | None, placement: Any, renew_within_s: int,
    targets: Sequence[Target] | None,
) -> PublishResult:
    from feeds.lint import feed_success_share, lint_event

    with engine.connect() as conn:
        # never dated before the stored publication: a host whose clock is behind must not date its feeds back
        at = max(now_ms(), _next_second(_newest_publication(conn)))
        read_revision = _last_revision(conn)  # before the events: a change after it is one this run may miss
    generated = datetime.fromtimestamp(at / 1000, tz=UTC)
    settings = config.publish
    off = off_targets(config) if targets is None else {}
    chosen_targets = enabled_targets(config) if targets is None else list(targets)
    if not chosen_targets:
        raise PublishFailed("nothing to publish: every target is off ("
                            + "; ".join(f"{name}: {reason}" for name, reason in off.items()) + ")")
    schemas = official_schemas(settings.schema_dir)
    eligible = eligible_events(engine, at_ms=at, keep_ended_ms=round(settings.keep_ended_h * 3_600_000))
    chosen, unreadable = eligible.events, eligible.unreadable
    network = placement.network if placement is not None else None
    findings = {event.id: lint_event(event, network, generated) for event in chosen}
    result = PublishResult(status="published", success_share=feed_success_share(list(findings.values())),
                           unreadable=unreadable, off=off)
    runs = [_Run(engine, target, config, schemas, generated) for target in chosen_targets]
    for run in runs:
        for event in chosen:
            # the findings that always hold back (a line drawn against its signed direction), the other
            # blocking ones only with publish.hold_back_failing, in the targets the Waze lint is about
            blocking = [p.message for p in findings[event.id] if p.severity == "error"
                        and (p.holds_back or (settings.hold_back_failing and run.target.waze_lint))]
            if blocking and event.status is Status.ENDED:
                # an end is never held back, but it goes out as the last good version with this end: a line
                # no partner ever saw (held back all along) is not published now that it is over
                run.ended_blocked[event.id] = "; ".join(blocking)
            elif blocking:
                run.held[event.id] = _hold(event.id, "; ".join(blocking), run.previous.ids)
            elif reason := run.cannot(event):
                run.cannot_carry[event.id] = reason
    max_age_s = max(0, settings.max_age_s - renew_within_s)
    dumped: dict[int, tuple[Event, bytes]] = {}  # id(event) -> it and its published content, across targets
    with collector_paused():  # thousands of short-lived dicts and elements, no cycles
        # what the feeds would say if every current version the target can carry passes: when the last
        # publication says exactly that and is young enough, nothing needs rendering at all
        for run in runs:
            run.served = _serve(chosen, run.held, {**run.cannot_carry, **run.ended_blocked}, run, unreadable)
            run.digest = _content_digest(run.served, config, run.target.name, dumped)
        rows = _current_publication(engine, runs, at, max_age_s)
        if not rows:
            refailed = False
            for run in runs:
                candidates = [e for e in chosen if e.id not in run.held and e.id not in run.cannot_carry
                              and e.id not in run.ended_blocked]
                run.feeds, problems = run.checked(candidates, generated)
                if problems:
                    failing = {**run.cannot_carry, **run.ended_blocked, **_failing(candidates, run)}
                    run.served = _serve(chosen, run.held, failing, run, unreadable)
                    run.digest = _content_digest(run.served, config, run.target.name, dumped)
                    refailed = True
                if problems or run.held or run.cannot_carry or run.ended_blocked or unreadable:
                    run.feeds = {}  # rendered without the held-back events' previous versions: render again
            rows = _current_publication(engine, runs, at, max_age_s) if refailed else []
        for run in runs:
            run.failed = _guard(eligible.ids, run, settings.max_hold_back_share)
        result.held_back = _held_back(runs)
        result.events = len({event.id for run in runs for event in run.served})
        if all(run.failed for run in runs):
            _refuse(engine, at, result, runs)
        if rows:
            result.status = "unchanged"
            result.targets = {run.target.name: run.report(losses=False) for run in runs}
            _record(engine, at, result)
            for run in runs:
                if run.failed:
                    log.warning("%s: %s; its last good feeds stay served", run.target.name, run.failed)
        else:
            for run in runs:
                if run.failed is None and not run.feeds:
                    run.feeds, problems = run.checked(run.served, generated)
                    if problems:  # every event passed alone, yet the whole does not: the last guard
                        result.problems += problems
                        run.failed = (f"the assembled feeds are invalid, nothing was published ({len(problems)} "
                                      f"problem(s); first: {problems[0]})")
            failed = [run for run in runs if run.failed]
            result.held_back = _held_back(runs)  # a target may have failed its last check just now
            if len(failed) == len(runs):
                _refuse(engine, at, result, runs)
            result.targets = {run.target.name: run.report(losses=run.failed is None) for run in runs}
            # a target whose feeds say what they said (a change only another target carries) keeps its stored
            # rows: the same bodies and ETags, so its partners are answered 304
            kept = _still_current(engine, runs, at, max_age_s)
            rows = [kept.get(name) or publication_row(name, body, run.target.feeds[name], len(run.served), at)
                    for run in runs if run.failed is None for name, body in run.feeds.items()]
            digests = {name: run.digest for run in runs for name in run.target.feeds}
            for row in rows:
                row["content_digest"] = digests[row["feed"]]
            gone = list(off_feeds(config)) if targets is None else []
            _store(engine, at, rows, gone, [run for run in runs if run.failed is None], eligible.ids, result,
                   read_revision)
            for run in failed:  # the others went out: a warning, for the daemon's log and the CLI's exit code
                log.warning("%s: %s; its last good feeds stay served", run.target.name, run.failed)
    result.feeds = {row["feed"]: row["body"] for row in rows}
    out = out_dir or settings.out_dir
    if out is not None:
        from adapters.sinks import FileSink

        # the sink writes whole sets: every feed served now, so a target that was refused keeps its
        # last good file (``rows`` holds only the feeds this run published)
        with engine.connect() as conn:
            served = conn.execute(select(publications.c.feed, publications.c.body, publications.c.body_gzip,
                                         publications.c.published_ms)).all()
        try:
            result.files_written = FileSink(Path(out), gzip=True).push(
                {row.feed: bytes(row.body) for row in served},
                gzipped={row.feed: bytes(row.body_gzip) for row in served},
                mtime_ms={row.feed: int(row.published_ms) for row in served})
        except ExchangeError as exc:  # monitoring hears of it (/health/sources) until a set is written again
            note_degraded("out_dir", exc.message)
            raise
        clear_degraded("out_dir")
    return result


def _refuse(engine: Engine, at: int, result: PublishResult, runs: Sequence[_Run]) -> NoReturn:
    """Every target refused to publish: record the failed run and raise (the last good feeds stay served)."""
    failed = [run for run in runs if run.failed]
    result.status = "failed"
    result.targets = {run.target.name: run.report(losses=False) for run in runs}
    result.problems = result.problems or [f"{run.target.name}: {run.failed}" for run in failed]
    _record(engine, at, result, message="; ".join(f"{run.target.name}: {run.failed}" for run in failed))
    others = f" (also {', '.join(run.target.name for run in failed[1:])})" if len(failed) > 1 else ""
    raise PublishFailed(f"{failed[0].failed}; the last good feeds stay served{others}")


def _held_back(runs: Sequence[_Run]) -> dict[str, str]:
    """Event id -> what an operator reads: the one description when every target holds it back alike,
    else each target's, named. What a target cannot carry (its ``problems_for``: an accident in WZDx,
    a hazard in DATEX II) is left to the compile report: it is the target's scope, nothing to mend.
    Nor is what a refused target would have held back: its last good feeds stay served, with the
    event as it went out then, and "held back" would tell operators the opposite of what partners see
    (the refusal is the run's warning, and the target's compile report lists them)."""
    said: dict[str, dict[str, str]] = {}
    for run in runs:
        if run.failed:
            continue
        for eid, item in run.held.items():
            if run.cannot_carry.get(eid) != item.reason:
                said.setdefault(eid, {})[run.target.name] = item.describe()
    found = {}
    for eid, by_target in said.items():
        carrying = {run.target.name for run in runs if eid not in run.cannot_carry}
        alike = len(set(by_target.values())) == 1 and set(by_target) == carrying
        found[eid] = next(iter(by_target.values())) if alike else "; ".join(
            f"{name}: {text}" for name, text in by_target.items())
    return found


class _Run:
    """One target's part of a publish run: what it holds back, serves and publishes."""

    def __init__(self, engine: Engine, target: Target, config: Config, schemas: OfficialSchemas,
                 generated: datetime) -> None:
        self.target = target
        self.config = config
        self.schemas = schemas
        self.generated = generated
        self.previous = _PublishedVersions(engine, target.name)
        self.held: dict[str, HeldBack] = {}
        self.cannot_carry: dict[str, str] = {}  # event id -> why the target cannot carry it (problems_for)
        #: ended events whose current version a finding would hold back: their last good version goes out
        #: with the end, or nothing
        self.ended_blocked: dict[str, str] = {}
        self.served: list[Event] = []
        self.digest = ""
        self.feeds: dict[str, bytes] = {}
        self.failed: str | None = None  # why nothing new is published for this target

    def checked(self, chosen: Sequence[Event], generated: datetime) -> tuple[dict[str, bytes], list[str]]:
        """The target's feeds of ``chosen`` and their problems (a renderer or checker fault is a problem,
        never a traceback)."""
        try:
            feeds = self.target.render(chosen, self.config, generated)
            return feeds, self.target.check(feeds, self.schemas)
        except Exception as exc:
            return {}, [f"cannot be rendered: {type(exc).__name__}: {exc}"]

    def problems_of(self, chosen: Sequence[Event]) -> list[str]:
        """Why these events cannot go out in this target: what it cannot carry, else the document's problems."""
        found = [reason for event in chosen if (reason := self.cannot(event))]
        return found or self.checked(chosen, _CHECK_TIME)[1]

    def cannot(self, event: Event) -> str:
        """Why the target cannot carry ``event`` validly ('' when it can)."""
        try:
            reasons = self.target.problems_for(event, self.config.zone)
        except Exception as exc:  # a fault in one event's statement holds back that event only
            reasons = [f"cannot be checked: {type(exc).__name__}: {exc}"]
        return f"{self.target.name} cannot carry it: {'; '.join(reasons)}" if reasons else ""

    def losses(self) -> dict[str, list[str]]:
        """Event id -> what this target lost or approximated of the version it serves."""
        return self._told(self.target.losses_for, lambda fault: [fault])

    def absent(self) -> dict[str, str]:
        """Event id -> why the feeds generated now leave out an event this target carries (a schedule whose
        first occurrence lies beyond a work zone feed's horizon)."""
        absent_for = self.target.absent_for
        if absent_for is None:
            return {}
        return self._told(lambda event: absent_for(event, self.generated, self.config.zone), str)

    def _told(self, tell: Callable[[Event], Any], fault: Callable[[str], Any]) -> dict[str, Any]:
        """Event id -> what ``tell`` says of each event served, where it says anything; a fault in one
        event's statement is that event's answer alone (``fault`` of what went wrong)."""
        found: dict[str, Any] = {}
        for event in self.served:
            try:
                said = tell(event)
            except Exception as exc:
                said = fault(f"cannot be told: {type(exc).__name__}: {exc}")
            if said:
                found[event.id] = said
        return found

    def report(self, losses: bool) -> dict[str, Any]:
        fresh = {event.id for event in self.served} - set(self.held)
        found: dict[str, Any] = {
            "status": "failed" if self.failed else "published", "events": len(self.served),
            "fresh": len(fresh), "held_back": {eid: item.describe() for eid, item in self.held.items()},
        }
        if self.failed:
            found["reason"] = self.failed
        lost, absent = self.losses(), self.absent()
        found["with_losses"] = len(lost)
        if absent:
            found["not_yet"] = len(absent)
        if losses:  # stored with the runs that render (an unchanged run says the same as the last one)
            found["losses"] = lost
            found["carried"] = sorted(event.id for event in self.served)
            found["absent"] = absent
        return found


# --------------------------------------------------------------------------- per-event isolation


class _PublishedVersions:
    """The events of a target's last publications: their ids at once, a version only when it is needed."""

    def __init__(self, engine: Engine, target: str) -> None:
        self.engine = engine
        self.target = target
        with engine.connect() as conn:
            self.ids = frozenset(conn.execute(select(published_events.c.event_id)
                                              .where(published_events.c.target == target)).scalars())
        self._loaded: dict[str, Event | None] = {}

    def get(self, event_id: str) -> Event | None:
        if event_id not in self.ids:
            return None
        if event_id not in self._loaded:
            with self.engine.connect() as conn:
                version = conn.execute(select(published_events.c.version).where(
                    published_events.c.event_id == event_id, published_events.c.target == self.target,
                )).scalar_one()
            try:
                self._loaded[event_id] = Event.model_validate(version)
            except ValueError as exc:  # stored by a release whose model differed: nothing to fall back on
                log.warning("the published version of %s in %s cannot be read (%s); it is not served again",
                            event_id, self.target, exc)
                self._loaded[event_id] = None
        return self._loaded[event_id]


def _serve(
    chosen: list[Event], held: dict[str, HeldBack], failing: Mapping[str, str], run: _Run,
    unreadable: Sequence[Unreadable] = (),
) -> list[Event]:
    """The versions a target publishes: the current one where it passes, else the last good one, else nothing.

    Events that fail are added to ``held`` with their reason; so are the ``unreadable`` ones.
    """
    previous = run.previous
    served: list[Event] = _unreadable_versions(unreadable, held, run)
    for event in chosen:
        reason = failing.get(event.id)
        if reason is not None and event.status is Status.ENDED:
            # an end is never held back: the last good version with this end, or out of the feeds
            # (never the last good version still running)
            ended = _ended_fallback(event.end_time, previous.get(event.id), run)
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


def _unreadable_versions(unreadable: Sequence[Unreadable], held: dict[str, HeldBack], run: _Run) -> list[Event]:
    """What stands in for events whose stored row cannot be read: the last good version, as for any
    held-back event (with the stored end when the row says it ended, as an end is never held back),
    or nothing. Each one is added to ``held``, except an end that goes out."""
    served: list[Event] = []
    previous = run.previous
    for item in unreadable:
        reason = f"cannot be read: {item.reason}"
        if item.row.get("status") == Status.ENDED.value:
            ended = _ended_fallback(_stored_time(item.row.get("end_ms")), previous.get(item.id), run)
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


def _hold(event_id: str, reason: str, previous_ids: frozenset[str]) -> HeldBack:
    return HeldBack(reason, "previous version" if event_id in previous_ids else "nothing")


def _failing(chosen: Sequence[Event], run: _Run) -> dict[str, str]:
    """Event id -> its first problem, for the events that fail when rendered and checked alone.

    The assembled feeds are checked first (one pass, the common case). When they fail, the
    events are split in halves and each half is checked the same way, down to single events: one
    bad event among n costs about 2n events rendered, not n one-event feeds. (Events that fail
    only together are left to the final check of the assembled feeds.)
    """
    if not chosen:
        return {}
    problems = run.problems_of(chosen)
    if not problems:
        return {}
    if len(chosen) == 1:
        return {chosen[0].id: problems[0]}
    middle = len(chosen) // 2
    return {**_failing(chosen[:middle], run), **_failing(chosen[middle:], run)}


def _ended_fallback(end_time: datetime | None, last_good: Event | None, run: _Run) -> Event | None:
    """The last good version with this end, when it passes (an end must reach Waze), else None."""
    if last_good is None or end_time is None:
        return None
    if last_good.start_time is not None and end_time <= last_good.start_time:
        return None
    ended = last_good.model_copy(update={"status": Status.ENDED, "end_time": end_time})
    return ended if not run.problems_of([ended]) else None


#: the generation time of feeds rendered only to be checked (it is not in any rule)
_CHECK_TIME = datetime(2026, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- the mass hold-back guard


def _guard(eligible: set[str], run: _Run, max_share: float) -> str | None:
    """Why the target must not publish (None: it may): it would hold back or lose too many of the events
    it published before. Its last good feeds then stay served; the other targets publish.

    An event that left the feeds on purpose (cancelled, ended longer ago than ``keep_ended_h``, or
    folded into the same closure from another source) is not lost: only events still eligible
    count (an eligible one that cannot be read counts).
    """
    still_eligible = eligible & run.previous.ids
    fresh = {event.id for event in run.served} - set(run.held)
    lost = sorted(eid for eid in still_eligible if eid not in fresh)
    if not lost or len(lost) <= max_share * len(still_eligible):
        return None
    first = f"{lost[0]}: {run.held[lost[0]].reason}" if lost[0] in run.held else \
        f"{lost[0]}: missing from the rendered feeds"
    return (f"{len(lost)} of {len(still_eligible)} published events would be held back or disappear (over the "
            f"{max_share:.0%} of publish.max_hold_back_share), nothing was published; first: {first}")


# --------------------------------------------------------------------------- the store


def _content_digest(
    served: Sequence[Event], config: Config, target: str, dumped: dict[int, tuple[Event, bytes]],
) -> str:
    """What a target's feeds say, without when they were generated: equal digests, equal feeds.

    ``dumped`` keeps each event's content across the targets of a run, which mostly serve the same
    objects (keyed by the object's id; the event is kept with it, so that no id is reused)."""
    digest = hashlib.sha256()
    named = attribution(config)  # the sources a CIFS <source> names: those of the events served
    present = {event.source for event in served}
    sources = {namespace: ref.model_dump() for namespace, ref in named.by_namespace.items() if namespace in present}
    # every publish setting: what a renderer reads of them is its own business
    digest.update(orjson.dumps([target, config.timezone, config.publish.model_dump(mode="json"), sources]))
    for event in served:
        known = dumped.get(id(event))
        if known is None:
            known = dumped[id(event)] = (event, orjson.dumps(_published_content(event)))
        digest.update(known[1])
    return digest.hexdigest()


#: a publication this close to ``max_age_s`` is renewed now: the clock's ticks drift by milliseconds,
#: and waiting for the next tick would renew it a whole ``interval_s`` late
_CLOCK_SLACK_MS = 1_000


def _still_current(engine: Engine, runs: Sequence[_Run], at: int, max_age_s: int) -> dict[str, dict[str, Any]]:
    """Feed -> its stored row, for every target whose stored feeds all say what this run's would and are
    younger than ``max_age_s``."""
    with engine.connect() as conn:
        stored = {row.feed: dict(row._mapping) for row in conn.execute(
            select(publications.c.feed, publications.c.content_digest, publications.c.published_ms))}
        kept = [name for run in runs if all(_says_the_same(stored.get(name), run.digest, at, max_age_s)
                                            for name in run.target.feeds) for name in run.target.feeds]
        if not kept:  # the bodies are read only for the feeds kept
            return {}
        return {row.feed: dict(row._mapping) for row in conn.execute(
            select(publications).where(publications.c.feed.in_(kept)))}


def _current_publication(engine: Engine, runs: Sequence[_Run], at: int, max_age_s: int) -> list[dict[str, Any]]:
    """The stored publication when it holds exactly the feeds of these targets, each says the same and is
    younger than ``max_age_s``, else nothing."""
    with engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(select(publications))]
    digests = {name: run.digest for run in runs for name in run.target.feeds}
    current = ({row["feed"] for row in rows} == set(digests)
               and all(_says_the_same(row, digests[row["feed"]], at, max_age_s) for row in rows))
    return rows if current else []


def _says_the_same(row: Mapping[str, Any] | None, digest: str, at: int, max_age_s: int) -> bool:
    """Whether a stored feed (its ``publications`` row, or None) says what ``digest`` says and is young
    enough to stay served as it is."""
    return (row is not None and row["content_digest"] == digest
            and at - row["published_ms"] < max_age_s * 1000 - _CLOCK_SLACK_MS)


def _store(engine: Engine, at: int, rows: list[dict[str, Any]], gone: Sequence[str], runs: Sequence[_Run],
           eligible: set[str], result: PublishResult, read_revision: int) -> None:
    """One transaction: the new feeds of the targets that publish (the feeds of targets now off are
    withdrawn), each target's published versions, and the run.

    A run made before the publication now stored (another process published while this one rendered)
    stores nothing but itself when the events changed after it read them: its feeds would take the
    newer ones' content back (a start-up publish of an empty store after the first sync's, say), and
    it is recorded as unchanged. Where nothing changed since it read them, it holds the store's latest
    word whatever the clocks say (a host a minute behind the daemon's must not leave an operator's
    closure out): it is stored, dated just after the stored one so that ``Last-Modified`` never goes
    back."""
    with writing(engine, lock="publish") as conn:
        newest = _newest_publication(conn)
        if newest > at:
            if _last_revision(conn) != read_revision:
                result.status = "unchanged"
                result.superseded = (f"superseded: the events changed after this run read them, and a publication "
                                     f"dated {iso(newest)} was stored first")
                _insert_run(conn, at, result, message=result.superseded)
                return
            for row in rows:
                if row["published_ms"] >= at:  # new ones; a feed kept as it was keeps its time
                    row["published_ms"] = _next_second(newest)
        save_publications(conn, rows)
        if gone:
            conn.execute(delete(publications).where(publications.c.feed.in_(gone)))
        for run in runs:
            _remember(conn, at, run, eligible)
        _insert_run(conn, at, result)


def _next_second(ms: int) -> int:
    """The first whole second after ``ms``: ``Last-Modified`` has whole seconds, and a feed that changed
    must not carry the date of the one before (``If-Modified-Since`` would answer 304).

    >>> _next_second(1_700_000_000_400), _next_second(1_700_000_000_000)
    (1700000001000, 1700000001000)
    """
    return (ms // 1000 + 1) * 1000


def _newest_publication(conn: Connection) -> int:
    """When the stored publication was made (epoch ms; 0 before the first)."""
    return int(conn.execute(select(func.max(publications.c.published_ms))).scalar() or 0)


def _last_revision(conn: Connection) -> int:
    """The newest revision's id: every change of a city event writes one, in the same transaction."""
    return int(conn.execute(select(func.max(revisions.c.id))).scalar() or 0)


def _remember(conn: Connection, at: int, run: _Run, eligible: set[str]) -> None:
    """Keep the version of each event a target published (what a later hold-back serves), forget the rest."""
    db = Bulk(conn)
    target = run.target.name
    known = set(conn.execute(select(published_events.c.event_id)
                             .where(published_events.c.target == target)).scalars())
    db.many("DELETE FROM published_events WHERE event_id = ? AND target = ?",
            [(eid, target) for eid in sorted(known - eligible)])
    versions = {event.id: dumps(event.model_dump(mode="json")) for event in run.served if event.id not in run.held}
    db.update(published_events, ("version", "published_ms", "held_back_reason", "held_back_ms"), ("event_id", "target"),
              [(version, at, None, None, eid, target) for eid, version in versions.items() if eid in known])
    db.insert(published_events, ("event_id", "target", "version", "published_ms", "first_published_ms"),
              [(eid, target, version, at, at) for eid, version in versions.items() if eid not in known])
    db.update(published_events, ("held_back_reason", "held_back_ms"), ("event_id", "target"),
              [(item.reason, at, eid, target) for eid, item in run.held.items() if item.served == "previous version"])


def _insert_run(conn: Connection, at: int, result: PublishResult, message: str | None = None) -> None:
    problems: dict[str, Any] | None = None
    if result.problems or result.held_back or result.targets or result.off:
        problems = {"feeds": result.problems[:100], "held_back": result.held_back,
                    "targets": {**result.targets, **{name: {"status": "off", "reason": reason}
                                                     for name, reason in result.off.items()}}}
    conn.execute(publish_runs.insert().values(
        at_ms=at, status=result.status, events=result.events, held_back=len(result.held_back), problems=problems,
        message=message,
    ))


def _record(engine: Engine, at: int, result: PublishResult, message: str | None = None) -> None:
    with writing(engine) as conn:
        _insert_run(conn, at, result, message)
