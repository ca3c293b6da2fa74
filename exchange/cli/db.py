"""``exchange db upgrade|status``: the store's schema."""

from __future__ import annotations

import sys

import typer

from exchange.cli import context

__all__ = ["db_app"]

db_app = typer.Typer(help="Manage the store's schema.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the schema or bring it to the latest migration (needed on PostgreSQL)."""
    from exchange.db import open_store, redact_url

    url = context.state.config.database_url
    open_store(url, auto_upgrade=True)
    print(f"schema is current on {redact_url(url)}", file=sys.stderr)


@db_app.command("status")
def db_status() -> None:
    """Print the schema revision of the store and the one the code needs."""
    from sqlalchemy import create_engine

    from exchange.db import current_revision, normalize_url, redact_url
    from exchange.schema import SCHEMA_REVISION

    url = normalize_url(context.state.config.database_url)
    revision = current_revision(create_engine(url))
    print(f"{redact_url(url)}: schema {revision or 'absent'}, code needs {SCHEMA_REVISION}")
    if revision != SCHEMA_REVISION:
        raise typer.Exit(1)

