"""Ingest benchmark: ``exchange replay`` of consecutive NYC polls against a plain json + sqlite3 loop.

    .venv/bin/python -m bench.replay_bench [--polls 20] [--repeat 3] [--no-postgres]

In one run: generate the polls (``make_polls.py``) into a temp dir, then per repeat time, each as a
subprocess of its own (start-up included):

* ``plain``: ``plain_loop.py`` into a fresh SQLite file;
* ``sqlite``: ``exchange replay DIR`` into a fresh ``EXCHANGE_DATA_DIR``;
* ``postgres``: ``exchange replay DIR`` into a fresh database ``exchange_bench_<random>``
  (``exchange db upgrade`` first, not timed; the database is dropped at the end);

and each a second time, "again": the same files replayed into the store the first pass filled.
Peak RSS and CPU time are those of that one child, read by GNU time (``/usr/bin/time``) or a small
wrapper, never by this process (see ``run_child``); the PostgreSQL server's own memory and CPU are
not in them. Results: a markdown table on stdout,
everything in ``bench/out/replay.json``. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.machine import machine_info
from bench.make_polls import DEFAULT_SEED, DEFAULT_SOURCE, generate

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
OUT_FILE = BENCH_DIR / "out" / "replay.json"
GATE_RATIO = 2.0
KIND_IDS = {"alerts": "uuid", "jams": "id", "irregularities": "id"}
SUMMARY = re.compile(r"^replayed (\d+) of (\d+) file\(s\) into (\S+): (.*)$", re.MULTILINE)


@dataclass
class Sample:
    variant: str
    mode: str  # "fresh" or "again"
    repeat: int
    wall_s: float
    max_rss_kb: int
    user_s: float
    sys_s: float
    returncode: int
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass
class Child:
    wall_s: float
    max_rss_kb: int
    user_s: float
    sys_s: float
    returncode: int
    stdout: str
    stderr: str


GNU_TIME = Path("/usr/bin/time")
#: fallback without GNU time: a fresh, small interpreter that runs the command and reports its rusage
WRAPPER = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.call(sys.argv[2:])\n"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "open(sys.argv[1], 'w').write(f'{u.ru_maxrss} {u.ru_utime} {u.ru_stime}\\n')\n"
    "sys.exit(rc if rc >= 0 else 128 - rc)\n"
)


def run_child(cmd: list[str], env: dict[str, str]) -> Child:
    """Run one command; wall time from spawn to exit, peak RSS and CPU of that command alone.

    The rusage is read by a small intermediate process (GNU time, else a fresh Python), never by
    this one: a child forked from this (large) process inherits its resident pages until exec,
    so ``wait4`` here would report at least this process's own RSS.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r", suffix=".rusage") as usage_file:
        if GNU_TIME.exists():
            wrapped = [str(GNU_TIME), "-f", "%M %U %S", "-o", usage_file.name, *cmd]
        else:
            wrapped = [sys.executable, "-S", "-c", WRAPPER, usage_file.name, *cmd]
        started = time.perf_counter()
        proc = subprocess.run(wrapped, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=REPO_DIR,
                              check=False)
        wall = time.perf_counter() - started
        lines = Path(usage_file.name).read_text().split("\n")
        rss_kb, user_s, sys_s = [line for line in lines if line.strip()][-1].split()
        out.seek(0)
        err.seek(0)
        return Child(wall, int(rss_kb), float(user_s), float(sys_s), proc.returncode,
                     out.read().decode(errors="replace"), err.read().decode(errors="replace"))


def clean_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("EXCHANGE_")}
    env.update(extra)
    return env


def feed_totals(files: list[Path]) -> tuple[int, int]:
    """Items over all files, and distinct (kind, id) over all files."""
    total, distinct = 0, set()
    for path in files:
        document = json.loads(path.read_bytes())
        for kind, key in KIND_IDS.items():
            for item in document.get(kind) or []:
                total += 1
                distinct.add((kind, str(item[key])))
    return total, len(distinct)


# --------------------------------------------------------------------------- the variants


def plain(polls: Path, db_path: Path, mode: str, repeat: int, distinct: int) -> Sample:
    child = run_child([sys.executable, str(BENCH_DIR / "plain_loop.py"), str(db_path), str(polls)], clean_env())
    sample = _sample("plain", mode, repeat, child)
    found = re.search(r"(\d+) items upserted, (\d+) rows", child.stdout)
    if child.returncode != 0 or not found:
        sample.problems.append(f"plain loop failed: rc={child.returncode}: {child.stderr.strip()[-300:]}")
    else:
        sample.counts = {"upserted": int(found[1]), "rows": int(found[2])}
        if int(found[2]) != distinct:
            sample.problems.append(f"plain loop stored {found[2]} rows, expected {distinct}")
    return sample


def replay(exchange: str, polls: Path, env: dict[str, str], variant: str, mode: str, repeat: int,
           n_files: int, total: int) -> Sample:
    child = run_child([exchange, "replay", str(polls)], env)
    sample = _sample(variant, mode, repeat, child)
    if child.returncode != 0:
        sample.problems.append(f"exit code {child.returncode}: {child.stderr.strip()[-300:]}")
    found = SUMMARY.findall(child.stderr)
    if not found:
        sample.problems.append(f"no summary line on stderr: {child.stderr.strip()[-300:]}")
        return sample
    done, of, _source, rest = found[-1]
    counts = {name: int(value) for value, name in re.findall(r"(\d+) (\w+)", rest)}
    sample.counts = counts
    if int(done) != n_files or int(of) != n_files:
        sample.problems.append(f"replayed {done} of {of} files, expected {n_files}")
    if counts.get("rejected") != 0:
        sample.problems.append(f"{counts.get('rejected')} items rejected")
    if counts.get("fetched") != total:
        sample.problems.append(f"fetched {counts.get('fetched')}, expected {total}")
    if mode == "again" and (counts.get("new") or counts.get("updated")):
        sample.problems.append(f"replaying again changed the store: {rest}")
    return sample


def _sample(variant: str, mode: str, repeat: int, child: Child) -> Sample:
    return Sample(variant, mode, repeat, child.wall_s, child.max_rss_kb, child.user_s, child.sys_s, child.returncode)


def sqlite_events(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "exchange.db") as conn:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


class Postgres:
    """Creates and drops throw-away databases next to the admin database of ``url``."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.psycopg = psycopg
        self.url = url
        self.base = url.rsplit("/", 1)[0]
        with psycopg.connect(url, connect_timeout=5) as conn:
            self.version = str(conn.execute("SHOW server_version").fetchone()[0])

    def create(self) -> str:
        name = f"exchange_bench_{secrets.token_hex(4)}"
        with self.psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop(self, name: str) -> None:
        with self.psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def events(self, name: str) -> int:
        with self.psycopg.connect(f"{self.base}/{name}") as conn:
            return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


# --------------------------------------------------------------------------- reporting


def machine() -> dict[str, Any]:
    return machine_info(sqlite=sqlite3.sqlite_version)


def summarise(samples: list[Sample], total: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    groups: dict[tuple[str, str], list[Sample]] = {}
    for sample in samples:
        groups.setdefault((sample.variant, sample.mode), []).append(sample)
    medians = {key: statistics.median(s.wall_s for s in group) for key, group in groups.items()}
    base = medians.get(("plain", "fresh"))
    for (variant, mode), group in groups.items():
        wall = medians[(variant, mode)]
        same_mode_plain = medians.get(("plain", mode))
        rows.append({
            "variant": variant,
            "mode": mode,
            "runs": len(group),
            "median_s": wall,
            "min_s": min(s.wall_s for s in group),
            "max_s": max(s.wall_s for s in group),
            "items_per_s": total / wall if wall else None,
            "peak_rss_mb": statistics.median(s.max_rss_kb for s in group) / 1024,
            "cpu_s": statistics.median(s.user_s + s.sys_s for s in group),
            "ratio_to_plain": wall / base if base else None,
            "ratio_to_plain_same_mode": wall / same_mode_plain if same_mode_plain else None,
            "problems": sorted({p for s in group for p in s.problems}),
        })
    return rows


def markdown(rows: list[dict[str, Any]], total: int, n_files: int) -> str:
    lines = [
        f"{n_files} polls, {total} items in all; median of the runs; start-up included.",
        "",
        "| variant | mode | runs | median s | min-max s | items/s | peak RSS MB | CPU s "
        "| x plain | x plain same mode |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['variant']} | {row['mode']} | {row['runs']} | {row['median_s']:.2f} "
            f"| {row['min_s']:.2f}-{row['max_s']:.2f} | {row['items_per_s']:,.0f} | {row['peak_rss_mb']:.0f} "
            f"| {row['cpu_s']:.2f} | {row['ratio_to_plain']:.2f} | {row['ratio_to_plain_same_mode']:.2f} |"
        )
    return "\n".join(lines)


def verdict(rows: list[dict[str, Any]]) -> list[str]:
    notes = []
    for row in rows:
        if row["variant"] == "plain" or row["mode"] != "fresh":
            continue
        ratio = row["ratio_to_plain"]
        gate = "PASS" if ratio <= GATE_RATIO else "FAIL"
        stretch = "met" if ratio < 1.0 else "not met"
        notes.append(f"{row['variant']}: {ratio:.2f}x the plain loop -> gate (<= {GATE_RATIO:g}x) {gate}, "
                     f"stretch (< 1x) {stretch}")
    return notes


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE,
                        help="the real snapshot to start from (default: %(default)s)")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"),
                        help="an existing database to connect to for CREATE/DROP DATABASE")
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL variant")
    parser.add_argument("--exchange", default=None, help="the exchange command (default: next to this Python)")
    parser.add_argument("--out", type=Path, default=OUT_FILE)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (polls and stores)")
    args = parser.parse_args(argv)

    exchange = args.exchange or str(Path(sys.executable).with_name("exchange"))
    if not Path(exchange).exists():
        exchange = shutil.which("exchange") or exchange
    work = Path(tempfile.mkdtemp(prefix="replay-bench-"))
    postgres: Postgres | None = None
    if not args.no_postgres:
        try:
            postgres = Postgres(args.pg_url)
        except Exception as exc:  # no server, no driver: report and go on without it
            print(f"PostgreSQL variant skipped: {exc}", file=sys.stderr)
    created: list[str] = []
    samples: list[Sample] = []
    problems: list[str] = []
    try:
        polls = work / "polls"
        files = generate(polls, args.polls, args.seed, args.source)
        total, distinct = feed_totals(files)
        print(f"{len(files)} polls, {total} items, {distinct} distinct items; work dir {work}", file=sys.stderr)

        # Warm-up, untimed: page cache and byte-code caches for both commands.
        run_child([sys.executable, str(BENCH_DIR / "plain_loop.py"), str(work / "warm.db"), str(files[0])],
                  clean_env())
        warm = run_child([exchange, "replay", str(files[0])], clean_env(EXCHANGE_DATA_DIR=str(work / "warm")))
        if warm.returncode != 0:
            print(f"warm-up `exchange replay` failed:\n{warm.stderr}", file=sys.stderr)
            return 1

        for repeat in range(1, args.repeat + 1):
            run_dir = work / f"run-{repeat}"
            run_dir.mkdir()
            db_path = run_dir / "plain.db"
            for mode in ("fresh", "again"):
                samples.append(plain(polls, db_path, mode, repeat, distinct))
                _progress(samples[-1])

            data_dir = run_dir / "sqlite"
            env = clean_env(EXCHANGE_DATA_DIR=str(data_dir))
            for mode in ("fresh", "again"):
                samples.append(replay(exchange, polls, env, "sqlite", mode, repeat, len(files), total))
                _progress(samples[-1])
            stored = sqlite_events(data_dir)
            if stored != distinct:
                samples[-1].problems.append(f"SQLite store holds {stored} events, expected {distinct}")

            if postgres is not None:
                name = postgres.create()
                created.append(name)
                env = clean_env(EXCHANGE_DATABASE_URL=f"{postgres.base}/{name}",
                                EXCHANGE_DATA_DIR=str(run_dir / "pg-data"))
                upgrade = run_child([exchange, "db", "upgrade"], env)
                if upgrade.returncode != 0:
                    problems.append(f"exchange db upgrade failed: {upgrade.stderr.strip()[-300:]}")
                    print(problems[-1], file=sys.stderr)
                else:
                    for mode in ("fresh", "again"):
                        samples.append(replay(exchange, polls, env, "postgres", mode, repeat, len(files), total))
                        _progress(samples[-1])
                    stored = postgres.events(name)
                    if stored != distinct:
                        samples[-1].problems.append(f"PostgreSQL store holds {stored} events, expected {distinct}")
                postgres.drop(name)
                created.remove(name)
    finally:
        if postgres is not None:
            for name in created:
                postgres.drop(name)
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    rows = summarise(samples, total)
    info = machine()
    if postgres is not None:
        info["postgres"] = postgres.version
    problems.extend(f"{row['variant']} {row['mode']}: {p}" for row in rows for p in row["problems"])
    notes = verdict(rows)

    print()
    print(f"## exchange replay vs plain json + sqlite3 loop ({info['date']})")
    print()
    print(f"Machine: {info['nproc']} cores, {info['cpu']}, Python {info['python']}, SQLite {info['sqlite']}"
          + (f", PostgreSQL {info['postgres']}" if "postgres" in info else "")
          + f"; commit {info['commit']}{' + local changes' if info['tracked_changes'] else ''}")
    print()
    print(markdown(rows, total, len(files)))
    print()
    for note in notes:
        print(f"- {note}")
    for problem in problems:
        print(f"- PROBLEM: {problem}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "machine": info,
        "settings": {"polls": args.polls, "repeat": args.repeat, "seed": args.seed, "source": str(args.source),
                     "exchange": exchange, "gate_ratio": GATE_RATIO},
        "items": total,
        "distinct_items": distinct,
        "summary": rows,
        "verdict": notes,
        "problems": problems,
        "samples": [asdict(s) for s in samples],
    }, indent=2) + "\n")
    print(f"\nwritten to {args.out}", file=sys.stderr)
    return 1 if problems else 0


def _progress(sample: Sample) -> None:
    flag = "" if not sample.problems else "  PROBLEM: " + "; ".join(sample.problems)
    print(f"  run {sample.repeat} {sample.variant:<8} {sample.mode:<5} {sample.wall_s:6.2f} s "
          f"{sample.max_rss_kb / 1024:6.0f} MB{flag}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
