"""The schedule every instance of the daemon shares: each due run happens on exactly one of them.

Each job (``source:<name>`` for a source's poll, ``publish`` for the publish clock) has a row with
its interval and when it is next due. Every instance asks often (every
:data:`~exchange.daemon.DISPATCH_EVERY_S`) which jobs are due and claims them in the same
statement::

    UPDATE schedule SET next_due_ms = now + interval_ms, claimed_by = me
    WHERE job IN (...) AND next_due_ms <= now RETURNING job

Of two instances that ask at once, PostgreSQL lets one update the row; the other's update waits
for it, re-reads the row, finds it no longer due, and claims nothing (SQLite has one writer at a
time anyway). "Now" is the store's clock (PostgreSQL's ``clock_timestamp()``), so instances whose
clocks disagree still agree on what is due; how their ticks are offset does not matter either,
since a run is due at a time, not at a tick. Runs missed while nothing ran (every instance down,
a suspended machine) coalesce: the next claim sets the next due time from now.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence

from sqlalchemy import Connection, Engine, insert, select, text, update

from exchange.db import writing
from exchange.schema import schedule

__all__ = ["claim_due", "postpone", "register", "store_clock_ms"]


def store_clock_ms(conn: Connection) -> int:
    """Now on the store's clock, in epoch milliseconds (not ``EXCHANGE_NOW``: the schedule runs on real time)."""
    if conn.dialect.name == "postgresql":
        query = text("SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint")
        return int(conn.execute(query).scalar_one())
    return time.time_ns() // 1_000_000


def register(engine: Engine, intervals_ms: Mapping[str, int]) -> None:
    """Make sure every job has its row with its current interval; a new job is due at once, and one
    whose interval shrank is due no later than one new interval from now."""
    with writing(engine, lock="schedule") as conn:
        now = store_clock_ms(conn)
        known = {row.job: row for row in conn.execute(select(schedule).where(schedule.c.job.in_(list(intervals_ms))))}
        for job, interval in intervals_ms.items():
            row = known.get(job)
            if row is None:
                conn.execute(insert(schedule).values(job=job, interval_ms=interval, next_due_ms=now))
            elif row.interval_ms != interval:
                conn.execute(update(schedule).where(schedule.c.job == job).values(
                    interval_ms=interval, next_due_ms=min(row.next_due_ms, now + interval)))


def claim_due(engine: Engine, jobs: Sequence[str], instance: str, jitter_ms: Mapping[str, int]) -> list[str]:
    """Claim the jobs that are due; the ones claimed (by this instance: no other will run them)."""
    with writing(engine) as conn:
        now = store_clock_ms(conn)
        claimed = list(conn.execute(
            update(schedule).where(schedule.c.job.in_(list(jobs)), schedule.c.next_due_ms <= now)
            .values(next_due_ms=now + schedule.c.interval_ms, claimed_by=instance, claimed_ms=now)
            .returning(schedule.c.job)
        ).scalars())
        for job in claimed:
            if jitter_ms.get(job):
                conn.execute(update(schedule).where(schedule.c.job == job).values(
                    next_due_ms=schedule.c.next_due_ms + random.randint(0, jitter_ms[job])))
    return sorted(claimed)


def postpone(engine: Engine, job: str, delay_ms: int) -> None:
    """The job's next run is due ``delay_ms`` from now (a failing source backs off)."""
    with writing(engine) as conn:
        now = store_clock_ms(conn)
        conn.execute(update(schedule).where(schedule.c.job == job).values(next_due_ms=now + delay_ms))
