"""Opening the store: engine, schema version check, migrations.

SQLite (the embedded default) creates or upgrades its schema by itself on open. On PostgreSQL,
shared by several instances, schema changes are an explicit step: a schema behind the code is
an error that names ``exchange db upgrade``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from exchange.errors import ConfigError, ExchangeError, SchemaOutdated, StoreError
from exchange.schema import SCHEMA_REVISION

__all__ = [
    "STORE_BACKENDS", "current_revision", "db_error_message", "normalize_url", "open_store", "raw_engine", "redact_url",
    "sqlite_file", "store_backend", "take_turns", "upgrade", "writing",
]


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean the psycopg 3 driver.

    >>> normalize_url("postgresql://postgres@127.0.0.1/test")
    'postgresql+psycopg://postgres@127.0.0.1/test'
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def redact_url(url: str) -> str:
    """The URL to show: its password masked, also one given as a query parameter.

    >>> redact_url("postgresql://u:pw@h/db"), redact_url("postgresql://u@h/db?password=pw&sslmode=require")
    ('postgresql://u:***@h/db', 'postgresql://u@h/db?password=***&sslmode=require')
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "<invalid database URL>"
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": "***"})
    return parsed.render_as_string(hide_password=True).replace("password=%2A%2A%2A", "password=***")


def _json_dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(value, default=str)


def open_store(url: str, *, auto_upgrade: bool | None = None) -> Engine:
    """Connect, then make sure the schema is current.

    Parameters
    ----------
    url
        SQLAlchemy URL; ``postgresql://`` is read as ``postgresql+psycopg://``.
    auto_upgrade
        Create or upgrade the schema when behind. Defaults to True for SQLite, False otherwise.
    """
    url = normalize_url(url)
    is_sqlite = store_backend(url) == "sqlite"
    if (file := sqlite_file(url)) is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
    engine = raw_engine(url, json_serializer=_json_dumps, json_deserializer=orjson.loads)
    if is_sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    try:
        _check_schema(engine, url, auto_upgrade if auto_upgrade is not None else is_sqlite)
    except StoreError:
        engine.dispose()
        raise
    return engine


#: the databases a store may live in (``store_backend``)
STORE_BACKENDS = ("postgresql", "sqlite")


def store_backend(url: str) -> str:
    """The backend of a store's URL: ``postgresql`` or ``sqlite``; ``ConfigError`` for anything else.

    >>> store_backend("postgresql+psycopg://exchange@db/exchange"), store_backend("sqlite:///exchange.db")
    ('postgresql', 'sqlite')
    """
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        raise ConfigError("the database URL cannot be read as one (e.g. postgresql://exchange@db.internal/exchange, "
                          "sqlite:////var/lib/traffic-exchange/exchange.db)") from None
    if backend not in STORE_BACKENDS:
        raise ConfigError(f"database {redact_url(url)}: only postgresql:// and sqlite:/// stores are supported")
    return backend


def sqlite_file(url: str | URL) -> Path | None:
    """The file a SQLite store's URL names; None for an in-memory one or another backend."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database)


def raw_engine(url: str, **options: Any) -> Engine:
    """An engine on a store's URL that checks nothing of its schema (``open_store`` does)."""
    url = normalize_url(url)
    store_backend(url)
    try:
        return create_engine(url, **options)
    except (ArgumentError, ImportError) as exc:
        raise StoreError(f"cannot use database {redact_url(url)}: {exc}") from exc


def _check_schema(engine: Engine, url: str, auto_upgrade: bool) -> None:
    revision = current_revision(engine)
    if revision != SCHEMA_REVISION:
        if _is_ahead(revision):
            # a newer release upgraded the store (a rolling upgrade): its migrations are additive, so
            # instances already running go on; an older one starting now is refused, never downgrading it
            raise SchemaOutdated(
                f"database schema is at revision {revision}, newer than this release of traffic-exchange "
                f"understands ({SCHEMA_REVISION}); install the release that upgraded it"
            )
        if auto_upgrade:
            upgrade(engine)
        elif revision is None:
            raise SchemaOutdated(
                f"database {redact_url(url)} has no traffic-exchange schema; run `exchange db upgrade`"
            )
        else:
            raise SchemaOutdated(
                f"database schema is at revision {revision}, the code needs {SCHEMA_REVISION}; "
                "run `exchange db upgrade`"
            )


def _is_ahead(revision: str | None) -> bool:
    """Revisions are numbered 0001, 0002, ...: one above the code's is a later release's."""
    return revision is not None and revision.isdigit() and int(revision) > int(SCHEMA_REVISION)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own implicit BEGIN is switched off so that _sqlite_begin decides (SQLAlchemy recipe).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # A writer takes the write lock up front: two deferred transactions that both read and then
    # write would otherwise fail with "database is locked" instead of waiting their turn.
    immediate = conn.get_execution_options().get("immediate", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def writing(engine: Engine, lock: str | None = None) -> Iterator[Connection]:
    """A write transaction; with ``lock``, writers of the same name take turns (also across processes).

    On PostgreSQL the lock is a transaction-level advisory lock, so several daemons sharing one
    store reconcile a given source one at a time; on SQLite the write lock is taken at BEGIN.
    """
    with engine.execution_options(immediate=True).begin() as conn:
        if lock is not None:
            take_turns(conn, lock)
        yield conn


def take_turns(conn: Connection, lock: str) -> None:
    """Until the transaction ends, other writers taking the same lock wait (PostgreSQL: an advisory
    lock; SQLite has a single writer anyway)."""
    if conn.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.blake2b(lock.encode(), digest_size=8).digest(), "big", signed=True)
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at, read directly (cheap; no Alembic import)."""
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot open database {redact_url(str(engine.url))}: {db_error_message(exc)}") from exc


def upgrade(engine: Engine, target: str = "head") -> str:
    """Run every pending migration up to ``target`` (tests build older releases' stores); returns the revision."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    try:
        # one migration at a time: two processes opening a new store at once (the daemon and an
        # `inspect` beside it) would both create its tables. The second waits, then finds it current.
        with engine.connect() as connection:
            conn = connection.execution_options(immediate=True)  # SQLite: the write lock at BEGIN
            with conn.begin():
                take_turns(conn, "schema-migration")  # PostgreSQL: an advisory lock
                config.attributes["connection"] = conn
                command.upgrade(config, target)
    except SQLAlchemyError as exc:
        raise StoreError(f"migration failed: {db_error_message(exc)}") from exc
    return SCHEMA_REVISION if target == "head" else target


def db_error_message(exc: BaseException) -> str:
    """The driver's own first line, without SQLAlchemy's SQL echo and background link; an
    ExchangeError's own message (a store error one of ours already worded)."""
    if isinstance(exc, ExchangeError):
        return exc.message
    original = getattr(exc, "orig", None)
    message = str(original if original is not None else exc)
    return message.strip().splitlines()[0] if message.strip() else type(exc).__name__


def lock_for_daemon(engine: Engine) -> IO[str] | None:
    """Hold the SQLite store's daemon lock for the life of the process (None for PostgreSQL, which
    several daemons share): the returned file must stay open. A second daemon, or a copy of the
    store while one runs, is refused with who holds it."""
    path = _daemon_lock_path(engine)
    if path is None:
        return None
    import fcntl
    import os
    import socket

    handle = path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise StoreError(
            f"another `exchange run` ({holder}) is already running on {engine.url.database}; one daemon "
            "per SQLite store (several instances need PostgreSQL)"
        ) from None
    handle.truncate(0)
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    return handle


def daemon_running(engine: Engine) -> str | None:
    """Who runs a daemon on this SQLite store now ("pid N on HOST"), or None."""
    path = _daemon_lock_path(engine)
    if path is None or not path.exists():
        return None
    import fcntl

    with path.open("r", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "another process"
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def _daemon_lock_path(engine: Engine) -> Path | None:
    file = sqlite_file(engine.url)
    return None if file is None else Path(f"{file}.daemon-lock")
