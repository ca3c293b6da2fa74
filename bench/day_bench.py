"""A compressed day: 720 polls of an NYC-sized Waze feed, 2 minutes apart, into a fresh SQLite store.

    .venv/bin/python -m bench.day_bench [--polls 720] [--no-prune] [--keep]

The polls come from ``make_polls.py``'s generator (seeded, deterministic), made one at a time in
memory and handed to the sync (``exchange.sync.ingest_payload``) in this process, each with its
snapshot's time as the run's clock, so the store holds a day of March 2019 exactly as a daemon
polling every 2 minutes would have written it (no road network: nothing is matched or clustered).

Reported: wall time (generation and ingest apart), RSS of this process at the start, every 60
polls and at the end; the store's size (the file after a WAL checkpoint) after poll 1 and at the
end, per table (SQLite's ``dbstat``), and what the revisions hold (per action, per field changed);
then, when ``exchange.retention`` exists (``--no-prune`` skips it), a prune as the daemon would run
it 31 days after the day (everything ended during the day is older than every default limit), its
time, and the file after ``VACUUM``. Last, the steady state under the default retention,
extrapolated from the day's growth. Results: markdown on stdout, everything in
``bench/out/day.json``. The code measured is whatever ``exchange`` imports: run it from a checkout
of another commit to measure that one (see ``bench/README.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.machine import machine_info
from bench.make_polls import DEFAULT_SEED, DEFAULT_SOURCE, POLL_INTERVAL_MS, Ids, next_poll

BENCH_DIR = Path(__file__).resolve().parent
OUT_FILE = BENCH_DIR / "out" / "day.json"
DAY_MS = 86_400_000
GB = 1024**3
MB = 1024**2
#: the issue's bound for the steady-state store of an NYC-sized feed polled every 2 minutes
STEADY_LIMIT_GB = 5.0


def rss_mb() -> float:
    """This process's resident set size now (Linux ``/proc``; ``ru_maxrss`` elsewhere, a peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def file_size(db: Path) -> int:
    """The store's size on disk: the file after its WAL is checkpointed into it (and truncated)."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(path.stat().st_size for path in (db, db.with_name(db.name + "-wal")) if path.exists())


def table_sizes(db: Path) -> dict[str, int]:
    """Bytes per table, its indexes included (``dbstat``), and the free pages."""
    with sqlite3.connect(db) as conn:
        owner = dict(conn.execute("SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')"))
        sizes: Counter[str] = Counter()
        for name, size in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
            sizes[owner.get(name, name)] += size
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        sizes["(free pages)"] = conn.execute("PRAGMA freelist_count").fetchone()[0] * page_size
    return dict(sizes.most_common())


def row_counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                           "AND name NOT LIKE 'sqlite_%' AND name != 'alembic_version'")]
        return {name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in sorted(names)}


def revision_profile(db: Path) -> dict[str, Any]:
    """What the revisions hold: rows and bytes of ``changes`` per action, and how often each field changed."""
    actions: Counter[str] = Counter()
    action_bytes: Counter[str] = Counter()
    fields: Counter[str] = Counter()
    field_bytes: Counter[str] = Counter()
    with sqlite3.connect(db) as conn:
        for action, changes in conn.execute("SELECT action, changes FROM revisions"):
            actions[action] += 1
            action_bytes[action] += len(changes or "")
            if not changes:
                continue
            for name, value in json.loads(changes).items():
                fields[name] += 1
                field_bytes[name] += len(json.dumps(value, separators=(",", ":")))
    return {
        "rows_per_action": dict(actions.most_common()),
        "changes_bytes_per_action": dict(action_bytes.most_common()),
        "field_changes": dict(fields.most_common(25)),
        "field_bytes": dict(field_bytes.most_common(25)),
    }


def replay_day(db: Path, polls: int, seed: int, source_file: Path) -> dict[str, Any]:
    from adapters import build_source
    from exchange.config import LifecycleConfig, SourceConfig
    from exchange.db import open_store
    from exchange.sync import ingest_payload

    engine = open_store(f"sqlite:///{db}", auto_upgrade=True)
    source = build_source(SourceConfig(name="waze", kind="waze-feed", url=""), zone=ZoneInfo("UTC"))
    lifecycle = LifecycleConfig()
    rng = random.Random(seed)
    document: dict[str, Any] = json.loads(source_file.read_bytes())
    ids = Ids(rng, document)
    rss_start = rss_mb()
    samples: list[dict[str, Any]] = []
    generate_s = ingest_s = 0.0
    first_ms = last_ms = 0
    after_first = 0
    totals: Counter[str] = Counter()
    poll = document
    started = time.perf_counter()
    cpu_started = time.process_time()
    for number in range(1, polls + 1):
        tick = time.perf_counter()
        if number > 1:
            poll, _ = next_poll(rng, ids, poll)
        body = json.dumps(poll, separators=(",", ":"), ensure_ascii=False).encode()
        taken = int(poll.get("endTimeMillis") or poll["startTimeMillis"])
        generate_s += time.perf_counter() - tick
        tick = time.perf_counter()
        # the run's clock is the snapshot's: revisions and runs are dated across the day they describe
        result = ingest_payload(engine, source, body, lifecycle, started_ms=taken + 5_000)
        ingest_s += time.perf_counter() - tick
        totals.update(result.counts())
        if number == 1:
            first_ms = taken
            engine.dispose()
            after_first = file_size(db)
        last_ms = taken
        if number % 60 == 0 or number == polls:
            samples.append({"poll": number, "rss_mb": round(rss_mb(), 1), "elapsed_s": round(time.perf_counter()
                            - started, 1), "file_mb": round(file_size(db) / MB, 1)})
            print(f"  poll {number:4d}: {samples[-1]['elapsed_s']:7.1f} s, RSS {samples[-1]['rss_mb']:6.1f} MB, "
                  f"store {samples[-1]['file_mb']:7.1f} MB", file=sys.stderr)
    engine.dispose()
    return {
        "polls": polls,
        "first_snapshot_ms": first_ms,
        "last_snapshot_ms": last_ms,
        "wall_s": round(time.perf_counter() - started, 1),
        "cpu_s": round(time.process_time() - cpu_started, 1),
        "generate_s": round(generate_s, 1),
        "ingest_s": round(ingest_s, 1),
        "per_poll_ingest_ms": round(ingest_s / polls * 1000, 1),
        "rss_start_mb": round(rss_start, 1),
        "rss_end_mb": round(rss_mb(), 1),
        "samples": samples,
        "totals": dict(totals),
        "file_after_poll_1": after_first,
    }


def prune_after(db: Path, at_ms: int) -> dict[str, Any] | None:
    """``exchange db prune`` as the daemon runs it at ``at_ms`` (default retention), then ``VACUUM``."""
    try:
        from exchange.retention import prune
    except ImportError:
        return None
    from exchange.config import RetentionConfig
    from exchange.db import open_store

    engine = open_store(f"sqlite:///{db}")
    rss_before = rss_mb()
    tick = time.perf_counter()
    result = prune(engine, RetentionConfig(), at_ms)
    prune_s = time.perf_counter() - tick
    engine.dispose()
    size_pruned = file_size(db)
    tick = time.perf_counter()
    with sqlite3.connect(db) as conn:
        conn.execute("VACUUM")
    vacuum_s = time.perf_counter() - tick
    return {
        "at_ms": at_ms,
        "deleted": result.counts(),
        "prune_s": round(prune_s, 1),
        "rss_before_mb": round(rss_before, 1),
        "rss_after_mb": round(rss_mb(), 1),
        "file_after_prune": size_pruned,
        "vacuum_s": round(vacuum_s, 1),
        "file_after_vacuum": file_size(db),
        "tables_after_vacuum": table_sizes(db),
        "rows_after": row_counts(db),
    }


def steady_state(day: dict[str, Any], sizes: dict[str, int], base: int) -> dict[str, Any]:
    """The store under the default retention, from one day's growth.

    ``base`` (the store after poll 1: the feed's live events) stays; of the growth, the sync runs
    are kept ``sync_runs_days`` (90), everything else (ended events, their revisions, the revisions
    of the live ones) at most ``max(ended_crowd_days, revisions_days)`` (30).
    """
    try:
        from exchange.config import RetentionConfig

        retention = RetentionConfig()
        crowd_days = max(retention.ended_crowd_days, retention.revisions_days)
        runs_days = retention.sync_runs_days
    except ImportError:  # a checkout before retention: the defaults it would get
        crowd_days, runs_days = 30, 90
    span_days = (day["last_snapshot_ms"] - day["first_snapshot_ms"] + POLL_INTERVAL_MS) / DAY_MS
    total = sum(size for name, size in sizes.items() if name != "(free pages)")
    runs = sizes.get("sync_runs", 0)
    growth = max(0, total - base) / span_days
    runs_per_day = runs / span_days
    rest_per_day = max(0.0, growth - runs_per_day)
    steady = base + rest_per_day * crowd_days + runs_per_day * runs_days
    return {
        "span_days": round(span_days, 3),
        "growth_per_day_mb": round(growth / MB, 1),
        "sync_runs_per_day_mb": round(runs_per_day / MB, 2),
        "base_mb": round(base / MB, 1),
        "crowd_days": crowd_days,
        "runs_days": runs_days,
        "steady_gb": round(steady / GB, 2),
        "unpruned_year_gb": round((base + growth * 365) / GB, 1),
        "arithmetic": (f"{base / MB:.1f} MB live + {rest_per_day / MB:.1f} MB/day x {crowd_days} days + "
                       f"{runs_per_day / MB:.2f} MB/day of sync runs x {runs_days} days = {steady / GB:.2f} GB"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=720, help="polls 2 minutes apart (720: one day)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE,
                        help="the real snapshot to start from (default: %(default)s)")
    parser.add_argument("--no-prune", action="store_true", help="skip the prune and VACUUM")
    parser.add_argument("--out", type=Path, default=OUT_FILE)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (the store)")
    args = parser.parse_args(argv)
    if args.polls < 2:
        parser.error("--polls must be at least 2")

    import exchange

    work = Path(tempfile.mkdtemp(prefix="day-bench-"))
    db = work / "exchange.db"
    print(f"{args.polls} polls into {db} (code: {Path(exchange.__file__).parent})", file=sys.stderr)
    try:
        day = replay_day(db, args.polls, args.seed, args.source)
        size = file_size(db)
        sizes = table_sizes(db)
        rows = row_counts(db)
        profile = revision_profile(db)
        steady = steady_state(day, sizes, day["file_after_poll_1"])
        pruned = None if args.no_prune else prune_after(db, day["last_snapshot_ms"] + 31 * DAY_MS)
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    from exchange.schema import SCHEMA_REVISION

    info = machine_info(sqlite=sqlite3.sqlite_version, schema=SCHEMA_REVISION)
    span = steady["span_days"]
    print(f"## A compressed day: {args.polls} polls of the NYC feed into SQLite ({info['date']})")
    print()
    print(f"Machine: {info['nproc']} cores, {info['cpu']}, Python {info['python']}, SQLite {info['sqlite']}; "
          f"commit {info['commit']}{' + local changes' if info['tracked_changes'] else ''}, schema {SCHEMA_REVISION}")
    print()
    print("| measure | value |")
    print("|---|---:|")
    print(f"| wall time (generating polls / ingesting) | {day['wall_s']} s ({day['generate_s']} / {day['ingest_s']}) |")
    print(f"| CPU time of this process | {day['cpu_s']} s |")
    print(f"| ingest per poll | {day['per_poll_ingest_ms']} ms |")
    print(f"| RSS at start / end (max of samples) | {day['rss_start_mb']} / {day['rss_end_mb']} MB "
          f"({max(s['rss_mb'] for s in day['samples'])}) |")
    print(f"| items: {', '.join(f'{v} {k}' for k, v in day['totals'].items())} | |")
    print(f"| store after poll 1 | {day['file_after_poll_1'] / MB:.1f} MB |")
    print(f"| store after {args.polls} polls ({span:g} day) | {size / MB:.1f} MB |")
    print(f"| growth per day | {steady['growth_per_day_mb']} MB |")
    print(f"| revisions (rows, MB with index) | {rows.get('revisions', 0):,} rows, "
          f"{sizes.get('revisions', 0) / MB:.1f} MB ({sizes.get('revisions', 0) / max(size, 1):.0%}) |")
    print(f"| unpruned, a year | {steady['unpruned_year_gb']} GB |")
    if pruned is not None:
        print(f"| prune 31 days later: deleted | {', '.join(f'{v:,} {k}' for k, v in pruned['deleted'].items())} |")
        print(f"| prune time (RSS before / after) | {pruned['prune_s']} s ({pruned['rss_before_mb']} / "
              f"{pruned['rss_after_mb']} MB) |")
        print(f"| store after prune / after VACUUM ({pruned['vacuum_s']} s) | {pruned['file_after_prune'] / MB:.1f} / "
              f"{pruned['file_after_vacuum'] / MB:.1f} MB |")
    verdict = "PASS" if steady["steady_gb"] < STEADY_LIMIT_GB else "FAIL"
    print(f"| steady state, default retention | {steady['steady_gb']} GB (< {STEADY_LIMIT_GB:g} GB: {verdict}) |")
    print()
    print(f"Steady state: {steady['arithmetic']}.")
    print()
    print("Store per table (MB, indexes included): "
          + ", ".join(f"{name} {value / MB:.1f}" for name, value in sizes.items() if value >= MB / 10))
    print()
    print("Revisions per action: " + ", ".join(f"{k} {v:,}" for k, v in profile["rows_per_action"].items()))
    print()
    print("Fields changed in revisions (count, KB of JSON): " + ", ".join(
        f"{name} {count:,} ({profile['field_bytes'][name] / 1024:,.0f})"
        for name, count in profile["field_changes"].items()))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "machine": info,
        "settings": {"polls": args.polls, "seed": args.seed, "source": str(args.source),
                     "code": str(Path(exchange.__file__).parent)},
        "day": day,
        "file_size": size,
        "tables": sizes,
        "rows": rows,
        "revisions": profile,
        "steady_state": steady,
        "prune": pruned,
        "pid": os.getpid(),
    }, indent=2) + "\n")
    print(f"\nwritten to {args.out}", file=sys.stderr)
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
