"""``exchange db upgrade|status|prune``: the store's schema, and what it keeps."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from exchange.cli import context
from exchange.output import DocumentFormat, Format, in_zone, iso, write_records

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



@db_app.command("prune")
def db_prune(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would go; change nothing.")
    ] = False,
    vacuum: Annotated[
        bool,
        typer.Option("--vacuum", help="Afterwards give the space back: SQLite VACUUM (rewrites the file; needs as "
                     "much free disk as the store; writers wait meanwhile), PostgreSQL VACUUM (ANALYZE)."),
    ] = False,
    fmt: Annotated[
        DocumentFormat, typer.Option("--format", "-f", help="table for people; json: one object for scripts.")
    ] = DocumentFormat.table,
) -> None:
    """Remove what the store no longer needs, by the [retention] limits (defaults in days: ended crowd
    events 30, revisions of crowd events 30, sync runs 90, publish runs 30, notifications 90; city
    events kept).

    Never removed: a crowd event linked as the confirmation of a city event that is kept, a
    source's newest sync run, the newest publish run, the newest notification of a subject, anything
    the current publication holds, city events and their history unless city_events_days is set.
    Rows go in batches (batch_rows), each its own short transaction: safe while the daemon runs,
    which also prunes once a day. On SQLite the freed pages are reused by new rows (the file stops
    growing); --vacuum shrinks the file.

    Prints the rows deleted per kind on stdout (a dry run: that would be deleted); exit 0.
    """
    from exchange.retention import prune, reclaim
    from exchange.runtime import now_ms

    config = context.state.config
    engine = context.engine()
    try:
        result = prune(engine, config.retention, now_ms(), dry_run=dry_run)
        vacuumed = reclaim(engine) if vacuum and not dry_run else None
    finally:
        engine.dispose()
    if fmt is DocumentFormat.json:
        record = {"dry_run": result.dry_run, "at": iso(result.at_ms), "deleted": result.counts(),
                  "cutoffs": {name: iso(ms) for name, ms in result.cutoffs.items()},
                  "batches": result.batches, "seconds": round(result.seconds, 3),
                  "reusable_bytes": result.reusable_bytes, "vacuum": vacuumed}
        write_records([record], Format.json, columns=())
    else:
        zone = config.zone
        verb = "would delete" if dry_run else "deleted"
        rows = [{"rows": name, verb: count,
                 "older_than": (iso(result.cutoffs[name], zone) or "kept") if name in result.cutoffs
                 else "with their events"}
                for name, count in result.counts().items()]
        write_records(rows, Format.table, columns=("rows", verb, "older_than"),
                      title=in_zone("prune" + (" (dry run)" if dry_run else ""), zone))
    print(result.summary(), file=sys.stderr)
    if vacuumed:
        print(vacuumed, file=sys.stderr)
    elif result.reusable_bytes and not dry_run:
        print(f"{result.reusable_bytes / 1_048_576:.1f} MB of free pages are reused by new rows; "
              "--vacuum gives them back to the disk", file=sys.stderr)

