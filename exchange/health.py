"""The health of every source and published feed: a state, since when, and why.

A source is

- **Offline** when its newest poll failed to fetch (the upstream is down, refuses, or trickles
  past the deadline), or the store could not take what it sent;
- **SchemaError** when its newest poll fetched a payload that could not be read;
- **Suspect** when its newest poll held far fewer items than usual (the lifecycle's suspect
  rule: nothing of that kind was ended), or every item it held was rejected (its format or
  field names changed);
- **Stale** when no poll succeeded for three intervals (nobody polls it: the daemon is down or
  stuck), or when it brought no new data for longer than ``stale_after_s`` (by default 15
  minutes for the Waze feed, whose snapshot moves every two; a city file may rightly stay the
  same for days, so a city source has no such limit unless one is set);
- **OK** otherwise.

A published feed is OK, **Stale** when its publication is older than ``publish.max_age_s`` (the
publish clock renews it before that; an older one means no clock runs), or **Offline** when it
was never published.

"Since" is the start of the current state: the first of the newest polls in that state, or the
moment a time limit was crossed. Only the newest :data:`LOOKBACK_RUNS` polls of a source are read,
so a state older than that says "since" its oldest one.

The states are computed from the store, never kept: every process (the daemon, a separate feed
server, ``inspect sources``) sees the same, and a restart forgets nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, select

from exchange.config import Config, PublishConfig, SourceConfig
from exchange.publications import FEEDS
from exchange.schema import publications, publish_runs, sync_runs
from exchange.sync import SUSPECT_NOTE
from exchange.targets import off_feeds

__all__ = ["LOOKBACK_RUNS", "Health", "HealthReport", "State", "feed_health", "read_health", "refusal_spells",
           "refused_in", "source_health"]

#: how many of a source's newest polls its state is read from
LOOKBACK_RUNS = 200

#: a feed a little older than ``max_age_s`` is not yet stale: the clock's tick takes its time
_FEED_SLACK_MS = 30_000

#: a poll that fetched and read its payload (``history``: an older snapshot than one stored)
_SUCCESS = frozenset({"ok", "not-modified", "duplicate", "history"})
#: polls that read nothing new: what the source says is still what the last payload read said
_REPEATS = frozenset({"not-modified", "duplicate"})


class State(StrEnum):
    OK = "OK"
    STALE = "Stale"
    OFFLINE = "Offline"
    SCHEMA_ERROR = "SchemaError"
    SUSPECT = "Suspect"


#: the states in which a ``required`` source makes ``/health/sources`` answer 503
FAILING = frozenset({State.OFFLINE, State.SCHEMA_ERROR})


@dataclass(frozen=True, slots=True)
class Run:
    """What health reads of one sync run."""

    started_ms: int
    status: str
    failure: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class Health:
    """One source's or feed's state, since when (epoch ms; None: never polled or published), and why."""

    name: str
    state: State
    since_ms: int | None
    detail: str
    required: bool = False
    last_success_ms: int | None = None
    failures: int = 0

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "state": str(self.state), "since_ms": self.since_ms, "detail": self.detail,
                "required": self.required, "last_success_ms": self.last_success_ms,
                "consecutive_failures": self.failures}


@dataclass(frozen=True, slots=True)
class HealthReport:
    at_ms: int
    sources: list[Health] = field(default_factory=list)
    feeds: list[Health] = field(default_factory=list)
    #: target -> why the last publish refused it (its last good feeds stay served, young as they may be)
    refused: dict[str, str] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        """Why ``/health/sources`` answers 503: required sources failing, feeds stale, a target the last
        publish refused; empty when all is well."""
        found = [f"source {h.name} is {h.state}: {h.detail}" for h in self.sources if h.required and h.state in FAILING]
        found += [f"feed {h.name} is {h.state}: {h.detail}" for h in self.feeds if h.state is not State.OK]
        found += [f"{target} was not published: {reason}" for target, reason in self.refused.items()]
        return found

    def record(self) -> dict[str, Any]:
        return {"at_ms": self.at_ms, "sources": {h.name: h.record() for h in self.sources},
                "feeds": {h.name: h.record() for h in self.feeds}, "problems": self.problems}


def stale_after_ms(source: SourceConfig) -> int | None:
    """How long the source may bring nothing new before it is Stale (None: no such limit)."""
    if source.stale_after_s is not None:
        return source.stale_after_s * 1000
    if source.kind == "waze-feed":
        return max(900, 5 * source.interval_s) * 1000
    return None


def source_health(source: SourceConfig, runs: Sequence[Run], now_ms: int) -> Health:
    """The state of ``source`` from its polls, newest first.

    A poll that read an older snapshot than one already stored (``history``: the upstream went back
    in time, or a replay) was a poll all the same, without new data.
    """
    last_success = next((run.started_ms for run in runs if run.status in _SUCCESS), None)
    failures = next((i for i, run in enumerate(runs) if run.status != "failed"), len(runs))
    made = _HealthOf(source, now_ms, last_success, failures)
    if not runs:
        return made(State.STALE, None, "never polled")
    newest = runs[0]
    if newest.status == "failed":
        state = _failed_state(newest)
        streak = _streak(runs, lambda run: run.status == "failed" and _failed_state(run) is state)
        what = "its payload cannot be read" if state is State.SCHEMA_ERROR else "it cannot be fetched"
        polls = "1 poll" if len(streak) == 1 else f"{len(streak)} polls in a row"
        return made(state, streak[-1].started_ms, f"{what} ({polls}): {newest.message or ''}")
    polled_within = 3 * source.interval_s * 1000 + source.jitter_s * 1000
    if last_success is not None and now_ms - last_success > polled_within:
        return made(State.STALE, last_success + polled_within,
                    f"no poll succeeded for {_minutes(now_ms - last_success)} (polled every {source.interval_s}s)")
    limit = stale_after_ms(source)
    if limit is not None:
        new_data = next((run.started_ms for run in runs if run.status == "ok"), None)
        reference = new_data if new_data is not None else runs[-1].started_ms
        if now_ms - reference > limit:
            what = "the same snapshot" if new_data is not None else "no new data yet"
            return made(State.STALE, reference + limit, f"{what} for {_minutes(now_ms - reference)}")
    # a poll that read no new payload (the same snapshot again, a 304) leaves the data as the last read
    # one was: a suspect snapshot served twice is no recovery
    # (nor does a failed one in between: the data is still the suspect snapshot)
    last_read = next((run for run in runs if run.status in _SUCCESS and run.status not in _REPEATS), newest)
    if last_read.status in _SUCCESS and _suspect(last_read):
        streak = _streak(runs, lambda run: run.status in _REPEATS or run.status == "failed"
                         or (run.status in _SUCCESS and _suspect(run)))
        return made(State.SUSPECT, streak[-1].started_ms, last_read.message or "")
    return made(State.OK, _ok_since(runs, polled_within, limit), f"last poll {newest.status}")


def feed_health(name: str, published_ms: int | None, settings: PublishConfig, now_ms: int) -> Health:
    if published_ms is None:
        return Health(name, State.OFFLINE, None, "never published")
    limit = settings.max_age_s * 1000 + _FEED_SLACK_MS
    age = now_ms - published_ms
    if age > limit:
        return Health(name, State.STALE, published_ms + limit,
                      f"published {_minutes(age)} ago, renewed every {settings.max_age_s}s at the latest",
                      last_success_ms=published_ms)
    return Health(name, State.OK, published_ms, f"published {_minutes(age)} ago", last_success_ms=published_ms)


def consecutive_failures(conn: Connection, source: str, limit: int = 16) -> int:
    """How many of the source's newest polls failed in a row (at most ``limit``)."""
    statuses = conn.execute(
        select(sync_runs.c.status).where(sync_runs.c.source == source)
        .order_by(sync_runs.c.id.desc()).limit(limit)
    ).scalars()
    count = 0
    for status in statuses:
        if status != "failed":
            break
        count += 1
    return count


def read_health(conn: Connection, config: Config, now_ms: int) -> HealthReport:
    """Every enabled source's and every feed's health, read from the store."""
    report = HealthReport(now_ms)
    for source in config.sources:
        if not source.enabled:
            continue
        rows = conn.execute(
            select(sync_runs.c.started_ms, sync_runs.c.status, sync_runs.c.failure, sync_runs.c.message)
            .where(sync_runs.c.source == source.name).order_by(sync_runs.c.id.desc()).limit(LOOKBACK_RUNS)
        )
        report.sources.append(source_health(source, [Run(*row) for row in rows], now_ms))
    published: dict[str, int] = dict(conn.execute(select(publications.c.feed, publications.c.published_ms)).all())
    off = off_feeds(config)  # a feed whose target is off is not "never published": it is not meant to be
    report.feeds.extend(feed_health(name, published.get(name), config.publish, now_ms) for name in FEEDS
                        if name not in off)
    report.refused.update(refused_in(conn))
    return report


def refused_in(conn: Connection) -> dict[str, str]:
    """Target -> why the last publish run refused it (its last good feeds stay served); empty when none was."""
    newest = next(_publish_runs_newest_first(conn), None)
    return _refused_by(newest[1]) if newest is not None else {}


def refusal_spells(conn: Connection, told_refused: Collection[str] = ()) -> dict[str, tuple[bool, int, str]]:
    """Per target refused by the last publish run, or in ``told_refused`` (last told as refused): whether it
    still is refused, since when (the first run of the refusal going on, or the run that published it
    again), and the newest reason. Reads back only as far as that takes (a run's problems can be large)."""
    runs = _publish_runs_newest_first(conn)
    newest = next(runs, None)
    if newest is None:
        return {}
    current = _refused_by(newest[1])
    spells: dict[str, tuple[bool, int, str]] = {}
    open_streaks = dict.fromkeys(current, newest[0])  # target -> the oldest run of its refusal so far
    recovering = {target: newest[0] for target in told_refused if target not in current}  # -> the run after
    for at, problems in runs:
        if not open_streaks and not recovering:
            break
        refused = _refused_by(problems)
        for target in list(open_streaks):
            if target in refused:
                open_streaks[target] = at
            else:
                spells[target] = (True, open_streaks.pop(target), current[target])
        for target in list(recovering):
            if target in refused:
                spells[target] = (False, recovering.pop(target), refused[target])
            else:
                recovering[target] = at
    spells.update({target: (True, since, current[target]) for target, since in open_streaks.items()})
    # refused beyond the runs looked back at: published again by the oldest of them at the latest
    spells.update({target: (False, since, "") for target, since in recovering.items()})
    return spells


def _publish_runs_newest_first(conn: Connection) -> Iterator[tuple[int, Any]]:
    """The publish runs (time, problems), newest first, at most ``LOOKBACK_RUNS``: the newest alone (most
    readers need no other), then a few at a time."""
    last_id: int | None = None
    read, batch = 0, 1
    while read < LOOKBACK_RUNS:
        query = select(publish_runs.c.id, publish_runs.c.at_ms, publish_runs.c.problems)
        if last_id is not None:
            query = query.where(publish_runs.c.id < last_id)
        rows = conn.execute(query.order_by(publish_runs.c.id.desc()).limit(batch)).all()
        for run_id, at, problems in rows:
            last_id = run_id
            yield int(at), problems
        if len(rows) < batch:
            return
        read, batch = read + batch, _RUNS_PER_READ


#: publish runs read at a time when looking back for a refusal's start or end
_RUNS_PER_READ = 8


def _refused_by(problems: Any) -> dict[str, str]:
    targets = problems.get("targets") if isinstance(problems, dict) else None
    if not isinstance(targets, dict):
        return {}
    return {str(name): str(part.get("reason") or "") for name, part in targets.items()
            if isinstance(part, dict) and part.get("status") == "failed"}


class _HealthOf:
    """Builds the Health of one source with what every state shares."""

    def __init__(self, source: SourceConfig, now_ms: int, last_success_ms: int | None, failures: int) -> None:
        self.source, self.last_success_ms, self.failures = source, last_success_ms, failures

    def __call__(self, state: State, since_ms: int | None, detail: str) -> Health:
        return Health(self.source.name, state, since_ms, detail, self.source.required, self.last_success_ms,
                      self.failures)


def _ok_since(runs: Sequence[Run], polled_within: int, limit: int | None) -> int:
    """When the current OK began: the oldest of the newest good polls, stopping where a poll failed
    or was suspect, where nobody polled for ``polled_within``, or where the data was older than
    ``limit`` (a Stale spell that ended with new data)."""
    newest_new: list[int | None] = [None] * len(runs)
    latest: int | None = None
    for index in range(len(runs) - 1, -1, -1):
        if runs[index].status == "ok":
            latest = runs[index].started_ms
        newest_new[index] = latest
    since = runs[0].started_ms
    for index, run in enumerate(runs):
        if run.status not in _SUCCESS or _suspect(run):
            break
        if index and runs[index - 1].started_ms - run.started_ms > polled_within:
            break
        new = newest_new[index]
        if limit is not None and (new is None or run.started_ms - new > limit):
            break
        since = run.started_ms
    return since


def _suspect(run: Run) -> bool:
    return run.message is not None and SUSPECT_NOTE in run.message


def _failed_state(run: Run) -> State:
    return State.SCHEMA_ERROR if run.failure == "payload" else State.OFFLINE


def _streak(runs: Sequence[Run], belongs: Callable[[Run], bool]) -> list[Run]:
    """The newest runs for which ``belongs`` holds, up to the first that does not (newest first)."""
    streak: list[Run] = []
    for run in runs:
        if not belongs(run):
            break
        streak.append(run)
    return streak or [runs[0]]


def _minutes(ms: int) -> str:
    minutes = ms / 60_000
    if minutes < 1:
        return f"{ms // 1000} s"
    if minutes < 120:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.1f} h"
