"""`exchange db copy --to URL`: a SQLite store built by real commands moves to PostgreSQL whole, is
checked, serves the same feeds, refuses a target in use, and leaves the target as it was when it fails."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select, text

from exchange.db import open_store, upgrade
from exchange.publications import FEEDS
from exchange.schema import SCHEMA_REVISION, metadata, publications, sync_runs
from tests.support.helpers import Cli, Run
from tests.support.paths import DEMO, POLLS
from tests.support.serving import PLAIN, running

NINTH = "37.809578 -122.300788 37.810233 -122.302087"
#: trust authentication ignores it; it must never be printed
PASSWORD = "s3cret-pw"


@dataclass
class Original:
    """A SQLite store made by real commands, kept pristine: each test copies it first."""

    path: Path
    data_dir: Path
    token: str
    counts: dict[str, int]


def _run(args: list[str]) -> Run:
    """``exchange ARGS`` in-process, outside any function-scoped capture (the module fixture)."""
    from exchange.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(args)
        except SystemExit as exc:
            code = int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return Run(code, out.getvalue(), err.getvalue())


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                for table in metadata.sorted_tables}


def _time(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat(timespec="seconds")


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Original]:
    """Waze polls replayed and synced, the city source synced (confirmations against the Waze
    reports), an operator closure, a partner, a publication, and that partner's downloads."""
    root = tmp_path_factory.mktemp("original")
    data_dir = root / "data"
    with pytest.MonkeyPatch.context() as env:
        for name in list(os.environ):
            if name.startswith("EXCHANGE_"):
                env.delenv(name)
        env.setenv("EXCHANGE_DATA_DIR", str(data_dir))
        demo = ["--config", str(DEMO)]
        steps = [
            ["replay", *map(str, POLLS[:4])],
            ["sync"],  # the newest Waze snapshot and the city's CSV: closures linked to Waze reports
            ["closure", "add", "--street", "9th Street", "--polyline", NINTH, "--type", "ROAD_CLOSED",
             "--subtype", "ROAD_CLOSED_CONSTRUCTION", "--direction", "BOTH_DIRECTIONS", "--start", _time(-1),
             "--end", _time(48), "--description", "Water main \"B\" & <valve>"],
            ["publish"],
        ]
        for step in steps:
            result = _run([*demo, *step])
            assert result.code == 0, (step, result)
        added = _run(["partner", "add", "acme-maps"])
        assert added.code == 0, added
        token = added.out.strip()
        path = data_dir / "exchange.db"
        engine = open_store(f"sqlite:///{path}")
        _served(engine, token)  # the partner's downloads
        counts = _counts(engine)
        engine.dispose()
    for table in ("events", "revisions", "sync_runs", "sightings", "confirmations", "partners", "downloads",
                  "publications", "published_events", "publish_runs", "sources", "meta"):
        assert counts[table] > 0, (table, counts)
    yield Original(path, data_dir, token, counts)


@pytest.fixture
def source(original: Original, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's copy of the original store (online backup: WAL and all), as the configured store."""
    path = tmp_path / "source.db"
    with sqlite3.connect(original.path) as pristine, sqlite3.connect(path) as mine:
        pristine.backup(mine)
    monkeypatch.setenv("EXCHANGE_DATA_DIR", str(original.data_dir))  # the road network cache, built once
    monkeypatch.setenv("EXCHANGE_DATABASE_URL", f"sqlite:///{path}")
    return path


@pytest.fixture
def fresh_database(pg_server_url: str) -> Iterator[str]:
    """A PostgreSQL database as an operator creates it for the move: the session's own new database,
    in its default schema (other tests use schemas of their own in it); emptied again afterwards
    (cheaper than a database of its own, whose DROP waits for a checkpoint)."""
    import psycopg

    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        held = admin.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
        assert held == (0,), "the session database's public schema is in use"
    try:
        yield pg_server_url
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute("DROP SCHEMA public CASCADE")
            admin.execute("CREATE SCHEMA public")


def _with_password(url: str) -> str:
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{PASSWORD}@{host}"


def _served(engine: Engine, token: str) -> dict[str, tuple[bytes, str]]:
    auth = {"Authorization": f"Bearer {token}", **PLAIN}
    with engine.connect() as conn:  # the feeds of the targets that are on
        published = conn.execute(select(publications.c.feed)).scalars().all()
    assert set(published) <= set(FEEDS) and "cifs.xml" in published
    with running(engine, require_token=True, refresh_s=0.2) as url, httpx.Client(base_url=url) as client:
        answers = {feed: client.get(f"/feeds/{feed}", headers=auth) for feed in published}
        for feed, answer in answers.items():
            assert answer.status_code == 200, (feed, answer.text)
    return {feed: (answer.content, answer.headers["etag"]) for feed, answer in answers.items()}


def test_a_sqlite_store_moves_to_postgresql_and_serves_the_same_feeds(
    original: Original, source: Path, fresh_database: str, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = _with_password(fresh_database)
    copied = cli("db", "copy", "--to", target, "--format", "json")
    assert copied.code == 0, copied
    assert PASSWORD not in copied.out + copied.err
    report = json.loads(copied.out)
    assert report["ok"] and report["committed"] and report["schema_revision"] == SCHEMA_REVISION
    assert report["target"] == target.replace(PASSWORD, "***")
    tables = {entry["table"]: entry for entry in report["tables"]}
    assert set(tables) == {table.name for table in metadata.sorted_tables}
    for name, count in original.counts.items():
        assert tables[name]["source_rows"] == tables[name]["target_rows"] == count, name
        assert tables[name]["sampled"] == min(count, 200) and tables[name]["mismatched"] == 0, name
    assert "copied events:" in copied.err and "checked and committed" in copied.err

    mine, theirs = open_store(f"sqlite:///{source}"), open_store(fresh_database)
    try:
        assert _counts(theirs) == original.counts
        with theirs.connect() as conn:  # SQL NULL and JSON null both kept as they were
            assert conn.execute(text("SELECT count(*) FROM events WHERE details IS NULL")).scalar() > 0
            assert conn.execute(text("SELECT count(*) FROM sync_runs WHERE item_errors::text = 'null'")).scalar() > 0
        # the same bytes and ETags, and the partner's token from the SQLite days still works
        assert _served(theirs, original.token) == _served(mine, original.token)

        # the daemon's next steps on the copy: nothing to republish, and new rows take new ids
        monkeypatch.setenv("EXCHANGE_DATABASE_URL", fresh_database)
        published = cli("--config", str(DEMO), "publish")
        assert published.code == 0 and "unchanged" in published.err, published
        last_run = original.counts["sync_runs"]
        synced = cli("--config", str(DEMO), "sync")
        assert synced.code == 0, synced
        with theirs.connect() as conn:
            ids = sorted(conn.execute(select(sync_runs.c.id).where(sync_runs.c.id > last_run)).scalars())
        assert ids == [last_run + 1, last_run + 2]  # waze and city-closures, after the copied ones
        added = cli("--config", str(DEMO), "closure", "add", "--street", "9th Street", "--polyline", NINTH,
                    "--type", "ROAD_CLOSED", "--start", _time(-2))
        assert added.code == 0, added

        # a second copy onto the store now in use is refused, and changes nothing
        monkeypatch.setenv("EXCHANGE_DATABASE_URL", f"sqlite:///{source}")
        in_use = _counts(theirs)
        again = cli("db", "copy", "--to", target)
        assert again.code == 2 and again.out == "", again
        assert again.err.startswith("error: ") and "--force" in again.err and "not empty" in again.err
        assert len(again.err.strip().splitlines()) == 1 and PASSWORD not in again.err
        assert _counts(theirs) == in_use

        forced = cli("db", "copy", "--to", target, "--force")
        assert forced.code == 0, forced
        assert "emptied" in forced.err and PASSWORD not in forced.out + forced.err
        assert "sync_runs" in forced.out and "FAILED" not in forced.out  # the table for people
        assert _counts(theirs) == original.counts
        # once more, for scripts: the JSON report names what was emptied (it was a traceback, after
        # the commit, so the script took the copy for failed)
        as_json = cli("db", "copy", "--to", target, "--force", "--format", "json")
        assert as_json.code == 0 and "Traceback" not in as_json.err, as_json
        report = json.loads(as_json.out)
        assert report["committed"] and report["emptied"]["events"] == original.counts["events"], report
        assert _counts(theirs) == original.counts
    finally:
        mine.dispose()
        theirs.dispose()


def test_a_failed_copy_leaves_the_target_as_it_was(
    source: Path, pg_url: str, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXCHANGE_INJECT_FAULT", "mid-copy")
    failed = cli("db", "copy", "--to", pg_url)
    assert failed.code == 1 and "injected fault at mid-copy" in failed.err, failed
    target = open_store(pg_url)  # the schema was made; no row was kept
    try:
        assert set(_counts(target).values()) == {0}
        monkeypatch.delenv("EXCHANGE_INJECT_FAULT")

        # a row PostgreSQL refuses (SQLite never checks VARCHAR lengths), deep in a later table
        with sqlite3.connect(source) as db:
            db.execute("INSERT INTO sync_runs (source, started_ms, finished_ms, status, fetched, new, updated, "
                       "unchanged, ended, rejected) VALUES (?, 0, 0, 'ok', 0, 0, 0, 0, 0, 0)", ("x" * 150,))
        refused = cli("db", "copy", "--to", pg_url)
        assert refused.code == 1, refused
        message = refused.err.strip().splitlines()[-1]
        assert message.startswith("error: the copy failed in table sync_runs") and "nothing was written" in message
        assert set(_counts(target).values()) == {0}

        # onto a store in use with --force: the emptying is rolled back with the rest
        with sqlite3.connect(source) as db:
            db.execute("DELETE FROM sync_runs WHERE length(source) > 100")
        assert cli("db", "copy", "--to", pg_url).code == 0
        before = _counts(target)
        monkeypatch.setenv("EXCHANGE_INJECT_FAULT", "mid-copy")
        assert cli("db", "copy", "--to", pg_url, "--force").code == 1
        assert _counts(target) == before
    finally:
        target.dispose()


@pytest.mark.parametrize("spoil", ["street", "json-null"])
def test_a_copy_that_differs_is_found_and_rolled_back(
    spoil: str, source: Path, pg_url: str, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checks are real: a value changed on its way (a street; a JSON null written as SQL NULL)
    fails the sample comparison, exit 1, and nothing is kept."""
    from exchange import dbcopy

    copier = dbcopy._copier
    table, column = ("events", "street") if spoil == "street" else ("sync_runs", "item_errors")

    def spoiling(write: Any, into: Any) -> Callable[[list[tuple[Any, ...]]], None]:
        write_batch = copier(write, into)
        if into.name != table:
            return write_batch
        at = list(into.columns.keys()).index(column)
        new = (lambda value: f"{value}!") if spoil == "street" else (lambda value: None)  # JSON null -> SQL NULL
        return lambda rows: write_batch([(*row[:at], new(row[at]), *row[at + 1:]) for row in rows])

    monkeypatch.setattr(dbcopy, "_copier", spoiling)
    result = cli("db", "copy", "--to", pg_url, "--format", "json")
    assert result.code == 1, result
    report = json.loads(result.out)
    assert not report["ok"] and not report["committed"]
    bad = {entry["table"]: entry for entry in report["tables"] if entry["status"] == "FAILED"}
    assert list(bad) == [table] and bad[table]["mismatched"] == bad[table]["sampled"] > 0
    assert column in bad[table]["mismatches"][0]
    assert "rolled back" in result.err and table in result.err
    target = open_store(pg_url)
    try:
        assert set(_counts(target).values()) == {0}
    finally:
        target.dispose()


def test_what_is_refused(source: Path, tmp_path: Path, pg_url: str, cli: Cli,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    # the store itself under another name: SQLite by path, PostgreSQL by another host spelling
    same = cli("db", "copy", "--to", f"sqlite:///{source.parent}/./{source.name}")
    assert same.code == 2 and "is the store being copied" in same.err, same
    open_store(pg_url, auto_upgrade=True).dispose()
    monkeypatch.setenv("EXCHANGE_DATABASE_URL", pg_url)
    same_pg = cli("db", "copy", "--to", pg_url.replace("127.0.0.1", "localhost"))
    assert same_pg.code == 2 and "is the store being copied" in same_pg.err, same_pg

    # a store behind the code is refused, and left as it was (not upgraded behind the user's back)
    old = tmp_path / "old.db"
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{old}")
    upgrade(engine, "0006")
    engine.dispose()
    monkeypatch.setenv("EXCHANGE_DATABASE_URL", f"sqlite:///{old}")
    behind = cli("db", "copy", "--to", f"sqlite:///{tmp_path / 'new.db'}")
    assert behind.code == 1 and "run `exchange db upgrade` first" in behind.err, behind
    with sqlite3.connect(old) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchone() == ("0006",)

    monkeypatch.setenv("EXCHANGE_DATABASE_URL", f"sqlite:///{tmp_path / 'none.db'}")
    missing = cli("db", "copy", "--to", f"sqlite:///{tmp_path / 'new.db'}")
    assert missing.code == 3 and "does not exist" in missing.err, missing
    assert not (tmp_path / "none.db").exists()

    monkeypatch.setenv("EXCHANGE_DATABASE_URL", f"sqlite:///{source}")
    assert cli("db", "copy", "--to", "not a url").code == 2
    assert cli("db", "copy").code == 2  # --to is required
    unreachable = cli("db", "copy", "--to", f"postgresql://nobody:{PASSWORD}@127.0.0.1:9/none?connect_timeout=2")
    assert unreachable.code == 1 and len(unreachable.err.strip().splitlines()) == 1, unreachable
    assert "Traceback" not in unreachable.err and PASSWORD not in unreachable.err
    in_query = cli("db", "copy", "--to", f"postgresql://nobody@127.0.0.1:9/none?password={PASSWORD}")
    assert in_query.code == 1 and "password=***" in in_query.err and PASSWORD not in in_query.err, in_query


def test_sqlite_to_sqlite_in_small_batches(source: Path, tmp_path: Path, cli: Cli, original: Original) -> None:
    target = tmp_path / "elsewhere" / "copy.db"
    result = cli("db", "copy", "--to", f"sqlite:///{target}", "--batch-rows", "7", "--sample", "5",
                 "--format", "json")
    assert result.code == 0, result
    report = json.loads(result.out)
    assert all(entry["sampled"] == min(5, entry["source_rows"]) for entry in report["tables"])
    copy, mine = open_store(f"sqlite:///{target}"), open_store(f"sqlite:///{source}")
    try:
        assert _counts(copy) == original.counts
        feeds = select(publications).order_by(publications.c.feed)
        with copy.connect() as theirs, mine.connect() as ours:
            assert [tuple(row) for row in theirs.execute(feeds)] == [tuple(row) for row in ours.execute(feeds)]
    finally:
        copy.dispose()
        mine.dispose()


def test_help_says_what_force_does(cli: Callable[..., Run]) -> None:
    shown = cli("db", "copy", "--help")
    assert shown.code == 0
    assert "--force" in shown.out and "emptied first" in shown.out and "exchange db upgrade" in shown.out
