"""Shared test fixtures: the real test data, stores on SQLite and on the PostgreSQL server, and the
CLI run in-process (helpers that are not fixtures live in ``tests/support/``).

With CI=true a missing ../shared/testdata or an unreachable PostgreSQL fails the run instead of
skipping, so a green CI always means both stores and the real payloads were exercised.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.support.helpers import Run, invoke
from tests.support.paths import TESTDATA

PG_ADMIN_URL = os.environ.get("EXCHANGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this is a failure, not a skip)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def testdata() -> Path:
    if not TESTDATA.is_dir():
        _unavailable(f"{TESTDATA} is missing")
    return TESTDATA


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A fresh database exchange_test_<random> on the PostgreSQL server, dropped at the end."""
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except Exception as exc:  # any connection failure means "no server here"
        _unavailable(f"PostgreSQL at {PG_ADMIN_URL} is not reachable: {exc}")
        raise
    name = f"exchange_test_{secrets.token_hex(4)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    """An empty PostgreSQL store: a schema of its own in the session's test database."""
    import psycopg

    schema = f"t_{secrets.token_hex(4)}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{pg_server_url}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty store on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'exchange.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own EXCHANGE_DATA_DIR, and no stray EXCHANGE_* (or a COLUMNS that would narrow
    the tables) from the caller's shell."""
    for name in list(os.environ):
        if name.startswith("EXCHANGE_") or name == "COLUMNS":
            monkeypatch.delenv(name)
    target = tmp_path / "data"
    monkeypatch.setenv("EXCHANGE_DATA_DIR", str(target))
    return target


@pytest.fixture
def cli(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """``exchange ARGS`` in-process on the test's own data dir (SQLite unless the config says otherwise)."""

    def run(*args: str) -> Run:
        return invoke(list(args), capsys)

    return run


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    """An open store on each backend, schema created."""
    from exchange.db import open_store

    engine = open_store(store_url, auto_upgrade=True)
    yield engine
    engine.dispose()


@pytest.fixture
def store_cli(data_dir: Path, store_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch,
              capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """The CLI in-process, on the same store as ``engine``."""
    monkeypatch.setenv("EXCHANGE_DATABASE_URL", store_url)

    def run(*args: str) -> Run:
        return invoke(list(args), capsys)

    return run
