"""Store schema: SQLite upgrades itself, PostgreSQL asks for `exchange db upgrade`, migrations match the code."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from exchange.db import current_revision, normalize_url, open_store
from exchange.errors import SchemaOutdated, StoreError
from exchange.schema import SCHEMA_REVISION, metadata


def test_sqlite_creates_its_schema(tmp_path: Path) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 'sub' / 'x.db'}")
    assert current_revision(engine) == SCHEMA_REVISION
    engine.dispose()


def test_postgresql_without_schema_names_db_upgrade(pg_url: str) -> None:
    store_url = pg_url
    with pytest.raises(SchemaOutdated, match="run `exchange db upgrade`"):
        open_store(store_url)
    engine = open_store(store_url, auto_upgrade=True)
    assert current_revision(engine) == SCHEMA_REVISION
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    with pytest.raises(SchemaOutdated, match="revision 0000, the code needs"):
        open_store(store_url)
    engine.dispose()


def test_migrations_build_exactly_the_declared_schema(store_url: str) -> None:
    engine = open_store(store_url, auto_upgrade=True)
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert differences == []


def test_unreachable_database_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot open database"):
        open_store("postgresql://nobody@127.0.0.1:9/none?connect_timeout=2")


def test_postgres_urls_select_psycopg() -> None:
    assert normalize_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert create_engine(normalize_url("postgresql://u@h/d")).dialect.driver == "psycopg"
