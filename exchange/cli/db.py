"""``exchange db upgrade|status|copy|prune``: the store's schema, moving a store to another database,
and what it keeps."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from exchange.cli import context
from exchange.output import DocumentFormat, Format, in_zone, iso, write_records

__all__ = ["db_app"]

db_app = typer.Typer(help="Manage the store: its schema, and moving it to another database.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the schema or bring it to the latest migration (needed on PostgreSQL).

    Says on stderr what it did: created the schema, upgraded it from one revision to the next, or
    found it current.
    """
    from exchange.db import current_revision, normalize_url, open_store, raw_engine, redact_url

    url = context.state.config.database_url
    before = None if _not_made_yet(url) is not None else _revision_of(raw_engine(normalize_url(url)))
    engine = open_store(url, auto_upgrade=True)
    try:
        after = current_revision(engine)
    finally:
        engine.dispose()
    where = redact_url(url)
    if before is None:
        print(f"created the schema on {where}: revision {after}", file=sys.stderr)
    elif before != after:
        print(f"upgraded the schema on {where}: revision {before} to {after}", file=sys.stderr)
    else:
        print(f"schema is current on {where}: revision {after}", file=sys.stderr)


def _not_made_yet(url: str) -> Path | None:
    """The file of a SQLite store that does not exist yet (the URL is checked first: another kind is
    a one-line error)."""
    from exchange.db import normalize_url, sqlite_file, store_backend

    url = normalize_url(url)
    file = sqlite_file(url) if store_backend(url) == "sqlite" else None
    return file if file is not None and not file.exists() else None


def _revision_of(engine: Any) -> str | None:
    from exchange.db import current_revision

    try:
        return current_revision(engine)
    finally:
        engine.dispose()


@db_app.command("status")
def db_status() -> None:
    """Print the schema revision of the store and the one the code needs.

    Exit 0 when they are the same; 1 when the store has no schema yet (`exchange db upgrade` makes
    it) or another revision.
    """
    from exchange.db import current_revision, normalize_url, raw_engine, redact_url
    from exchange.schema import SCHEMA_REVISION

    given = context.state.config.database_url
    shown = redact_url(given)  # as given, not as the driver takes it
    if (file := _not_made_yet(given)) is not None:
        print(f"{shown}: no store yet ({file} does not exist: the first command that writes, or "
              f"`exchange db upgrade`, creates it), code needs {SCHEMA_REVISION}")
        raise typer.Exit(1)
    revision = current_revision(raw_engine(normalize_url(given)))
    print(f"{shown}: schema {revision or 'absent'}, code needs {SCHEMA_REVISION}")
    if revision != SCHEMA_REVISION:
        raise typer.Exit(1)



@db_app.command("copy")
def db_copy(
    to: Annotated[
        str,
        typer.Option(
            "--to", metavar="URL",
            help="The database to copy into: postgresql://USER@HOST[:PORT]/DBNAME (or sqlite:///PATH). Its schema "
            "is created or upgraded to this release's. Give the password through PGPASSWORD or ~/.pgpass, not in "
            "the URL, which other users of the machine can see while the command runs; it is never printed.",
        ),
    ],
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Copy even onto a target whose tables hold rows: they are all emptied first, in the same "
            "transaction as the copy (a failure leaves them as they were). Without it, such a target is refused.",
        ),
    ] = False,
    fmt: Annotated[
        DocumentFormat,
        typer.Option("--format", "-f", help="table for people; json: one object with the per-table checks."),
    ] = DocumentFormat.table,
    batch_rows: Annotated[
        int, typer.Option("--batch-rows", min=1, help="Rows read and written at a time (memory stays bounded).")
    ] = 5000,
    sample: Annotated[
        int, typer.Option("--sample", min=0, help="Rows per table, chosen at random, compared column by column.")
    ] = 200,
) -> None:
    """Copy the whole store (the configured one) into another database, e.g. from SQLite to PostgreSQL.

    \b
    Moving a SQLite store to PostgreSQL:
      systemctl stop traffic-exchange                   # nothing may write while it copies
      exchange db copy --to postgresql://exchange@db.internal/exchange
      # set [database] url (or EXCHANGE_DATABASE_URL) to that database, then
      systemctl start traffic-exchange

    Every table is copied in foreign-key order, in batches, in ONE transaction on the target, read
    from one consistent snapshot of the store. Before it commits, the copy is checked: the rows of
    every table counted on both sides, and a random sample of rows (--sample) compared column by
    column. Any failure or difference rolls everything back: the target is left as it was. PostgreSQL's
    id sequences are moved past the copied ids, so new rows do not collide.

    Refused: a target whose tables hold rows (exit 2, unless --force), the store itself under another
    name (exit 2), a store whose schema is behind this release (exit 1: run `exchange db upgrade`
    first; a SQLite store also upgrades itself when another command opens it), a SQLite store that
    does not exist (exit 3). A failed copy or check exits 1. The table or the JSON object of the
    checks goes to stdout, progress to stderr.
    """
    from exchange.dbcopy import copy_store
    from exchange.redaction import register_url_password

    register_url_password(to)  # masked in every log line too
    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    report = copy_store(context.state.config.database_url, to, force=force, batch_rows=batch_rows, sample=sample,
                        progress=progress)
    if fmt is DocumentFormat.json:
        _write_object(report.as_record())
    else:
        from exchange.output import Format, write_records

        records = [{**table.as_record(), "seconds": f"{table.seconds:.2f}",
                    "mismatches": "; ".join(table.mismatches)} for table in report.tables]
        write_records(records, Format.table, title=f"{report.source} -> {report.target}",
                      columns=("table", "source_rows", "target_rows", "sampled", "mismatched", "status", "seconds",
                               "mismatches"))
    if report.committed:
        print(f"copied {report.rows:,} row(s) of {len(report.tables)} tables in {report.seconds:.1f} s "
              f"({report.rows_per_s:,.0f} rows/s), checked and committed into {report.target}", file=sys.stderr)
        return
    failed = [table.table for table in report.tables if not table.ok]
    print(f"error: the copy does not match the store in {', '.join(failed)}; it was rolled back, "
          f"{report.target} is as it was", file=sys.stderr)
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
        _write_object(record)
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


def _write_object(record: Mapping[str, Any]) -> None:
    """``--format json``: one JSON object on stdout, as the commands' ``--help`` says."""
    import orjson

    sys.stdout.write(orjson.dumps(record, option=orjson.OPT_INDENT_2).decode() + "\n")
