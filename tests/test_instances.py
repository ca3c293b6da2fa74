"""Several instances of the daemon on one store: each due run happens on exactly one of them, every
instance serves the same bytes and ETags, one killed leaves the others carrying on; and a second
daemon on a SQLite store refuses to start."""

from __future__ import annotations

import itertools
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text

from exchange.db import open_store
from exchange.schedule import claim_due, postpone, register
from tests.conftest import PG_ADMIN_URL
from tests.support.paths import ROOT
from tests.test_daemon_service import Daemon, wait

SNAPSHOT = ROOT / "fixtures" / "waze" / "poll-012.json"


def test_of_instances_claiming_at_once_exactly_one_gets_a_due_run(engine: Engine) -> None:
    register(engine, {"source:waze": 60_000, "publish": 300_000})
    won: list[list[str]] = []
    start = threading.Barrier(6)

    def instance(n: int) -> None:
        start.wait()
        won.append(claim_due(engine, ["source:waze", "publish"], f"host:{n}", {}))

    threads = [threading.Thread(target=instance, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = sorted(job for jobs in won for job in jobs)
    assert claimed == ["publish", "source:waze"], won
    assert claim_due(engine, ["source:waze", "publish"], "host:9", {}) == [], "not due again before its interval"
    postpone(engine, "source:waze", 0)
    assert claim_due(engine, ["source:waze"], "host:9", {}) == ["source:waze"]


def test_a_shorter_interval_takes_effect_at_once(engine: Engine) -> None:
    register(engine, {"source:waze": 3_600_000})
    assert claim_due(engine, ["source:waze"], "a", {}) == ["source:waze"]
    register(engine, {"source:waze": 1})
    time.sleep(0.01)
    assert claim_due(engine, ["source:waze"], "a", {}) == ["source:waze"]


@pytest.fixture
def database() -> Iterator[str]:
    """A PostgreSQL database of this test's own, dropped at the end."""
    import psycopg

    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except Exception as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"PostgreSQL is not reachable: {exc}")
    name = f"exchange_instances_{secrets.token_hex(4)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def config_for(tmp_path: Path, database_url: str | None) -> Path:
    config = tmp_path / "exchange.toml"
    store = f'[database]\nurl = "{database_url}"\n' if database_url else ""
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n{store}'
        '[serve]\nport = 0\ntokens = false\n[publish]\ninterval_s = 10\n'
        f'[[sources]]\nname = "waze"\nurl = "{SNAPSHOT}"\ninterval_s = 5\njitter_s = 0\n'
    )
    return config


@contextmanager
def daemons(config: Path, count: int) -> Iterator[list[Daemon]]:
    env = {**os.environ, "EXCHANGE_CONFIG": str(config)}
    env.pop("EXCHANGE_DATA_DIR", None)
    started = [Daemon(subprocess.Popen([sys.executable, "-m", "exchange", "run"], env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)) for _ in range(count)]
    readers = [threading.Thread(target=d.read_stderr, daemon=True) for d in started]
    for reader in readers:
        reader.start()
    try:
        yield started
    finally:
        for running in started:
            if running.process.poll() is None:
                running.process.kill()
                running.process.wait()
        for reader, running in zip(readers, started, strict=True):
            reader.join(timeout=5)
            assert running.process.stderr is not None
            running.process.stderr.close()


def waze_runs(engine: Engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        return [(row.started_ms, row.status) for row in conn.execute(text(
            "SELECT started_ms, status FROM sync_runs WHERE source = 'waze' ORDER BY started_ms"))]


def test_two_daemons_on_one_postgresql_store_share_the_work(tmp_path: Path, database: str) -> None:
    open_store(database, auto_upgrade=True).dispose()
    engine = create_engine(database.replace("postgresql://", "postgresql+psycopg://", 1))
    with daemons(config_for(tmp_path, database), 2) as (first, second):
        urls = [wait(d.url, 30, "both feed servers") for d in (first, second)]
        wait(lambda: len(waze_runs(engine)) >= 4, 40, "four Waze polls")
        runs = waze_runs(engine)
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(runs)]
        assert min(gaps) >= 4_000, f"a run happened twice (5 s interval): gaps {gaps} ms"
        with engine.connect() as conn:
            claimants = {row[0].rsplit(":", 1)[1] for row in conn.execute(text(
                "SELECT DISTINCT claimed_by FROM schedule WHERE claimed_by IS NOT NULL"))}
            events, distinct = conn.execute(text(
                "SELECT count(*), count(DISTINCT source_id) FROM events WHERE source = 'waze'")).one()
        assert events == distinct > 0
        assert claimants <= {str(first.process.pid), str(second.process.pid)}

        answers = [httpx.get(f"{url}/feeds/cifs.xml", timeout=5) for url in urls]
        assert [a.status_code for a in answers] == [200, 200]
        assert answers[0].content == answers[1].content and answers[0].headers["etag"] == answers[1].headers["etag"]

        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        killed_at = time.time() * 1000
        wait(lambda: len([r for r in waze_runs(engine) if r[0] > killed_at]) >= 2, 25,
             "the survivor to carry on polling")
        assert httpx.get(f"{urls[1]}/feeds/cifs.xml", timeout=5).status_code == 200
        second.stop()
        assert second.process.returncode == 0
    engine.dispose()


def test_a_second_daemon_on_one_sqlite_store_refuses_to_start(tmp_path: Path) -> None:
    config = config_for(tmp_path, None)
    with daemons(config, 1) as (first,):
        wait(first.url, 30, "the first daemon")
        env = {**os.environ, "EXCHANGE_CONFIG": str(config)}
        env.pop("EXCHANGE_DATA_DIR", None)
        second = subprocess.run([sys.executable, "-m", "exchange", "run"], env=env, capture_output=True, text=True,
                                timeout=30, check=False)
        assert second.returncode == 1
        assert "already running" in second.stderr and "one daemon per SQLite store" in second.stderr
        assert "Traceback" not in second.stderr
        copy = subprocess.run([sys.executable, "-m", "exchange", "db", "copy", "--to",
                               f"sqlite:///{tmp_path / 'copy.db'}"], env=env, capture_output=True, text=True,
                              timeout=30, check=False)
        assert copy.returncode == 2 and "is writing to" in copy.stderr and "stop it first" in copy.stderr, copy
        assert first.process.poll() is None, "the first one goes on"
