"""``exchange db copy``: move a whole store to another database (SQLite to PostgreSQL, typically).

What it guarantees:

- **Same schema first.** The source must be at the code's schema revision (it is read as it is,
  never upgraded here); the target is created or upgraded to that revision with the migrations.
- **Never onto a store in use.** A target whose tables hold any row is refused (exit 2) unless
  ``force``, which empties them first, in the same transaction as the copy. A target that is
  the source itself (another spelling of the same file or database) is refused too.
- **All or nothing.** Every row goes into the target in ONE transaction, tables in foreign-key
  order (``metadata.sorted_tables``), streamed from the source in batches (no table is ever held
  whole in memory; PostgreSQL takes each batch as one COPY), read from one consistent snapshot of
  the source. JSON documents are copied as the text stored, never parsed and re-encoded. Anything
  that fails (a row the target refuses, a lost connection, a failed check) rolls it back: the
  target is left as it was, its tables empty when it was new.
- **Checked before it counts.** Before the commit, the target is read back: the row counts of
  every table, and a random sample of rows (``sample`` primary keys per table) compared column by
  column with the source, JSON (SQL NULL and JSON ``null`` kept apart) and binary columns
  included. A difference rolls the copy back and is reported.
- **New rows do not collide.** On PostgreSQL the sequences of the autoincrement ids are set to the
  largest id copied.

Nothing here prints: progress goes to a callback, the outcome is a :class:`CopyReport`.
"""

from __future__ import annotations

import math
import re
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    ColumnElement,
    Connection,
    Engine,
    MetaData,
    Table,
    Text,
    cast,
    func,
    insert,
    inspect,
    select,
    text,
    tuple_,
)
from sqlalchemy.exc import SQLAlchemyError

from exchange.db import (
    current_revision,
    daemon_running,
    db_error_message,
    normalize_url,
    open_store,
    raw_engine,
    redact_url,
    sqlite_file,
    store_backend,
    writing,
)
from exchange.errors import ConfigError, ExchangeError, NotFound, SchemaOutdated, StoreError, UsageError
from exchange.runtime import fault_point
from exchange.schema import SCHEMA_REVISION, metadata

__all__ = ["CopyReport", "TableReport", "copy_store"]

BATCH_ROWS = 5_000
SAMPLE_ROWS = 200
#: a progress line at least every this many rows of one table
_PROGRESS_EVERY = 50_000
#: mismatches listed per table (the count says how many there were)
_MISMATCHES_SHOWN = 10


@dataclass
class TableReport:
    """What happened to one table."""

    table: str
    source_rows: int = 0
    target_rows: int = 0
    sampled: int = 0
    mismatched: int = 0
    mismatches: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.source_rows == self.target_rows and self.mismatched == 0

    def as_record(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "source_rows": self.source_rows,
            "target_rows": self.target_rows,
            "sampled": self.sampled,
            "mismatched": self.mismatched,
            "status": "ok" if self.ok else "FAILED",
            "mismatches": self.mismatches,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class CopyReport:
    """The outcome: per table counts and sample checks; ``committed`` only when every check passed."""

    source: str
    target: str
    revision: str
    tables: list[TableReport] = field(default_factory=list)
    emptied: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    committed: bool = False

    @property
    def ok(self) -> bool:
        return all(table.ok for table in self.tables)

    @property
    def rows(self) -> int:
        return sum(table.source_rows for table in self.tables)

    @property
    def rows_per_s(self) -> float:
        copying = sum(table.seconds for table in self.tables)
        return self.rows / copying if copying > 0 else 0.0

    def as_record(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "schema_revision": self.revision,
            "ok": self.ok,
            "committed": self.committed,
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "rows_per_s": round(self.rows_per_s),
            "emptied": self.emptied,
            "tables": [table.as_record() for table in self.tables],
        }


Progress = Callable[[str], None]


def copy_store(
    source_url: str,
    target_url: str,
    *,
    force: bool = False,
    batch_rows: int = BATCH_ROWS,
    sample: int = SAMPLE_ROWS,
    progress: Progress | None = None,
) -> CopyReport:
    """Copy every table of the store at ``source_url`` into ``target_url``; see the module doc.

    Raises UsageError (the target is the source, or holds rows and ``force`` is not given),
    NotFound (a SQLite source file that does not exist), SchemaOutdated (the source is behind the
    code) and StoreError (anything the databases refuse). A failed check is not raised: the report
    says it, with ``committed`` False, and the target is left as it was.
    """
    say: Progress = progress or (lambda _message: None)
    started = time.monotonic()
    # shown as given (postgresql://, not the driver's name), the password masked
    source_shown, target_shown = redact_url(source_url), redact_url(target_url)
    source_url, target_url = normalize_url(source_url), normalize_url(target_url)
    _check_url(target_url)
    source = _open_source(source_url, source_shown)
    holder = daemon_running(source)
    if holder is not None:
        source.dispose()
        raise UsageError(f"`exchange run` ({holder}) is writing to {source_shown}: stop it first, or what it "
                         "writes after the copy is left behind")
    if (file := sqlite_file(target_url)) is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
    try:
        target_raw = raw_engine(target_url)
        try:
            if _same_store(source, target_raw, target_shown):
                raise UsageError(f"{target_shown} is the store being copied; give another database")
            _check_target_schema(target_raw, target_shown, force)
        finally:
            target_raw.dispose()
        target = open_store(target_url, auto_upgrade=True)
        try:
            report = CopyReport(source_shown, target_shown, SCHEMA_REVISION)
            _copy(source, target, report, force=force, batch_rows=batch_rows, sample=sample, say=say)
        finally:
            target.dispose()
    finally:
        source.dispose()
    report.seconds = time.monotonic() - started
    return report


# --- checks before anything is written -----------------------------------------------------------


def _check_url(url: str) -> None:
    try:
        store_backend(url)
    except ConfigError as exc:
        raise UsageError(f"--to: {exc}") from None


def _open_source(url: str, shown: str) -> Engine:
    """The store to copy, as it is: at the code's revision, never upgraded or created here."""
    if store_backend(url) == "sqlite":
        file = sqlite_file(url)
        if file is None:
            raise UsageError("the store to copy is an in-memory SQLite database: there is nothing to copy")
        if not file.is_file():
            raise NotFound(f"the store {shown} does not exist: there is nothing to copy")
    raw = raw_engine(url)
    try:
        revision = current_revision(raw)
    finally:
        raw.dispose()
    if revision is None:
        raise SchemaOutdated(f"{shown} holds no traffic-exchange store (no schema revision)")
    if revision > SCHEMA_REVISION:
        raise SchemaOutdated(
            f"the store to copy is at schema revision {revision}, newer than this release's {SCHEMA_REVISION}: "
            "copy it with the release that wrote it"
        )
    if revision != SCHEMA_REVISION:
        raise SchemaOutdated(
            f"the store to copy is at schema revision {revision}, this release needs {SCHEMA_REVISION}: "
            "run `exchange db upgrade` first (a SQLite store also upgrades itself when any other command "
            "opens it), then copy"
        )
    return open_store(url, auto_upgrade=False)


def _same_store(source: Engine, target: Engine, shown: str) -> bool:
    """Whether both engines reach one store, whatever the URLs' spelling (a path, localhost, 127.0.0.1)."""
    if source.dialect.name != target.dialect.name:
        return False
    if source.dialect.name == "sqlite":
        mine, theirs = sqlite_file(source.url), sqlite_file(target.url)
        if mine is None or theirs is None:
            return False
        if mine.exists() and theirs.exists():
            return mine.samefile(theirs)
        return mine.resolve() == theirs.resolve()
    # PostgreSQL: advisory locks are per database, so a key held by one session that another
    # session cannot take means one database; then the schema (search_path) tells stores apart.
    key = secrets.randbits(62)
    try:
        with source.connect() as ours, target.connect() as other:
            ours.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                taken = other.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
                if taken:
                    other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    return False
            finally:
                ours.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            schema = text("SELECT current_schema()")
            return bool(ours.execute(schema).scalar() == other.execute(schema).scalar())
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot open database {shown}: {db_error_message(exc)}") from exc


def _check_target_schema(target: Engine, shown: str, force: bool) -> None:
    """Refuse a target of a newer release, or one holding rows (before upgrading it changes anything)."""
    try:
        revision = current_revision(target)
    except StoreError as exc:  # unreachable, no such database, refused: said with the URL as given
        raise StoreError(f"cannot open {shown}: {db_error_message(exc.__cause__ or exc)}") from exc
    if revision is not None and revision > SCHEMA_REVISION:
        raise StoreError(
            f"{shown} is at schema revision {revision}, newer than this release's {SCHEMA_REVISION}; "
            "copy with that release"
        )
    if force:
        return
    try:
        with target.connect() as conn:
            present = set(inspect(conn).get_table_names())
            _refuse_rows(conn, shown, [table for table in metadata.sorted_tables if table.name in present])
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read {shown}: {db_error_message(exc)}") from exc


def _refuse_rows(conn: Connection, shown: str, tables: Iterable[Table]) -> None:
    held = _row_counts(conn, tables)
    if held:
        listed = ", ".join(f"{name}: {count:,}" for name, count in held.items())
        raise UsageError(
            f"{shown} is not empty (rows in {listed}); give an empty database, or --force to empty "
            "its tables first (in the same transaction as the copy)"
        )


def _row_counts(conn: Connection, tables: Iterable[Table]) -> dict[str, int]:
    """table -> rows, for the tables that hold any."""
    held: dict[str, int] = {}
    for table in tables:
        if conn.execute(select(1).select_from(table).limit(1)).first() is not None:
            # str(): a table's name is SQLAlchemy's quoted_name, which a JSON report cannot key by
            held[str(table.name)] = conn.execute(select(func.count()).select_from(table)).scalar_one()
    return held


# --- the copy -----------------------------------------------------------------------------------


def _copy(source: Engine, target: Engine, report: CopyReport, *, force: bool, batch_rows: int, sample: int,
          say: Progress) -> None:
    tables = metadata.sorted_tables
    current: str | None = None  # the table being copied
    say(f"copying {report.source} into {report.target} (schema {report.revision}), in one transaction")
    with source.connect() as read:
        if read.dialect.name == "postgresql":
            read = read.execution_options(isolation_level="REPEATABLE READ")
        with read.begin():  # one snapshot of the source for the copy and the checks
            try:
                with writing(target) as write:
                    _lock(write, tables)
                    if force:
                        report.emptied = _empty(write, tables)
                        if report.emptied:
                            say(f"emptied {sum(report.emptied.values()):,} row(s) of the target first")
                    else:
                        _refuse_rows(write, report.target, tables)
                    for table in tables:
                        current = table.name
                        report.tables.append(_copy_table(read, write, table, batch_rows, say))
                    current = None
                    _reset_sequences(write, tables)
                    say(f"checking: row counts, and up to {sample} sampled row(s) of each table")
                    for table, table_report in zip(tables, report.tables, strict=True):
                        _verify(read, write, table, table_report, sample)
                    if not report.ok:
                        raise _ChecksFailed
            except _ChecksFailed:
                return  # rolled back: the report says what differs
            except ExchangeError:
                raise
            except SQLAlchemyError as exc:
                where = f" in table {current}" if current else ""
                raise StoreError(
                    f"the copy failed{where}: {db_error_message(exc)}; nothing was written to the target"
                ) from exc
    report.committed = True


class _ChecksFailed(Exception):
    pass


def _lock(conn: Connection, tables: Sequence[Table]) -> None:
    """PostgreSQL: nobody writes to the target while it is filled (SQLite: the write lock is held already)."""
    if conn.dialect.name == "postgresql":
        names = ", ".join(conn.dialect.identifier_preparer.format_table(table) for table in tables)
        conn.execute(text(f"LOCK TABLE {names} IN EXCLUSIVE MODE"))


def _empty(conn: Connection, tables: Sequence[Table]) -> dict[str, int]:
    held = _row_counts(conn, tables)
    if not held:
        return held
    if conn.dialect.name == "postgresql":
        names = ", ".join(conn.dialect.identifier_preparer.format_table(table) for table in tables)
        conn.execute(text(f"TRUNCATE {names}"))
    else:
        for table in reversed(tables):
            conn.execute(table.delete())
    return held


def _json_columns(table: Table) -> list[str]:
    return [column.name for column in table.columns if isinstance(column.type, JSON)]


def _as_stored(table: Table) -> list[ColumnElement[Any]]:
    """Every column as the source stores it: JSON as its text, never parsed, so SQL NULL and JSON
    ``null`` stay apart and the target gets the very document (PostgreSQL's ``json`` keeps it verbatim)."""
    return [cast(column, Text).label(column.name) if isinstance(column.type, JSON) else column
            for column in table.columns]


def _readable(table: Table) -> list[ColumnElement[Any]]:
    """Every column as the application reads it, and for each JSON column whether it is SQL NULL
    (its value reads None either way): what the checks compare."""
    return [*table.columns, *(table.c[name].is_(None).label(f"{name} is null") for name in _json_columns(table))]


Batch = list[tuple[Any, ...]]


def _copy_table(read: Connection, write: Connection, table: Table, batch_rows: int, say: Progress) -> TableReport:
    report = TableReport(table.name)
    started = time.monotonic()
    total = read.execute(select(func.count()).select_from(table)).scalar_one()
    if total > _PROGRESS_EVERY:
        say(f"copying {table.name}: {total:,} rows")
    write_batch = _copier(write, table)
    query = select(*_as_stored(table)).order_by(*table.primary_key.columns)
    result = read.execute(query, execution_options={"stream_results": True, "yield_per": batch_rows})
    copied, told = 0, 0
    for batch in result.partitions(batch_rows):
        write_batch([tuple(row) for row in batch])
        copied += len(batch)
        fault_point("mid-copy")
        if copied - told >= _PROGRESS_EVERY:
            told = copied
            rate = copied / max(time.monotonic() - started, 1e-9)
            say(f"  {table.name}: {copied:,} of {total:,} rows ({rate:,.0f} rows/s)")
    report.source_rows = copied
    report.seconds = time.monotonic() - started
    say(f"copied {table.name}: {copied:,} row(s) in {report.seconds:.1f} s")
    return report


def _copier(write: Connection, table: Table) -> Callable[[Batch], None]:
    """How a batch of rows (values in the table's column order, JSON as text) goes into the target:
    PostgreSQL's COPY (one round trip per batch, not per row), or an executemany of INSERTs (SQLite)."""
    names = [column.name for column in table.columns]
    if write.dialect.name != "postgresql":
        # JSON columns written as the text read (SQLite stores JSON as text anyway)
        shadow = Table(table.name, MetaData(), *(
            Column(column.name, Text if isinstance(column.type, JSON) else column.type,
                   primary_key=column.primary_key, autoincrement=False)
            for column in table.columns
        ))
        statement = insert(shadow)

        def insert_batch(rows: Batch) -> None:
            write.execute(statement, [dict(zip(names, row, strict=True)) for row in rows])

        return insert_batch

    preparer = write.dialect.identifier_preparer
    sql = f"COPY {preparer.format_table(table)} ({', '.join(preparer.quote(name) for name in names)}) FROM STDIN"
    keys = [names.index(column.name) for column in table.primary_key.columns]

    def copy_batch(rows: Batch) -> None:
        driver = write.connection.driver_connection
        assert driver is not None
        try:
            with driver.cursor() as cursor, cursor.copy(sql) as copy:
                for row in rows:
                    copy.write_row(row)
        except write.dialect.loaded_dbapi.Error as exc:
            # the driver's own error (COPY is beneath SQLAlchemy); its context names the line and column
            context = getattr(getattr(exc, "diag", None), "context", None) or ""
            found = re.search(r"line (\d+)(?:, column (\w+))?", context)
            where = ""
            if found and 0 < int(found.group(1)) <= len(rows):
                row = rows[int(found.group(1)) - 1]
                column = f", column {found.group(2)}" if found.group(2) else ""
                where = f" ({_key_text(tuple(row[key] for key in keys))}{column})"
            raise StoreError(f"the copy failed in table {table.name}{where}: {db_error_message(exc)}; nothing was "
                             "written to the target") from exc

    return copy_batch


def _reset_sequences(conn: Connection, tables: Sequence[Table]) -> None:
    """PostgreSQL: the next id of each autoincrement column follows the largest copied (SQLite takes
    max(rowid) + 1 by itself, and ``sqlite_sequence`` when a table was made AUTOINCREMENT)."""
    for table in tables:
        column = table.autoincrement_column
        if column is None:
            continue
        name = conn.dialect.identifier_preparer.format_table(table)
        quoted = conn.dialect.identifier_preparer.quote(column.name)
        if conn.dialect.name == "postgresql":
            conn.execute(
                text(f"SELECT setval(pg_get_serial_sequence(:table, :column), COALESCE(MAX({quoted}), 1), "
                     f"MAX({quoted}) IS NOT NULL) FROM {name}"),
                {"table": name, "column": column.name},
            )
        elif inspect(conn).has_table("sqlite_sequence"):
            conn.execute(text("DELETE FROM sqlite_sequence WHERE name = :t"), {"t": table.name})
            conn.execute(text(f"INSERT INTO sqlite_sequence (name, seq) SELECT :t, MAX({quoted}) FROM {name} "
                              f"WHERE {quoted} IS NOT NULL"), {"t": table.name})


# --- the checks ---------------------------------------------------------------------------------


def _verify(read: Connection, write: Connection, table: Table, report: TableReport, sample: int) -> None:
    count = select(func.count()).select_from(table)
    report.source_rows = read.execute(count).scalar_one()
    report.target_rows = write.execute(count).scalar_one()
    if report.source_rows != report.target_rows:
        report.mismatches.append(f"{report.source_rows:,} row(s) in the source, {report.target_rows:,} in the target")
    keys = list(table.primary_key.columns)
    if sample <= 0 or not keys:
        return
    picked = [tuple(row) for row in read.execute(select(*keys).order_by(func.random()).limit(sample))]
    report.sampled = len(picked)
    mine, theirs = _rows_by_key(read, table, picked), _rows_by_key(write, table, picked)
    for key in picked:
        problem = _difference(mine.get(key), theirs.get(key))
        if problem is not None:
            report.mismatched += 1
            if len(report.mismatches) < _MISMATCHES_SHOWN:
                report.mismatches.append(f"{_key_text(key)}: {problem}")


def _rows_by_key(
    conn: Connection, table: Table, picked: Sequence[tuple[Any, ...]]
) -> dict[tuple[Any, ...], dict[str, Any]]:
    keys = list(table.primary_key.columns)
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    for start in range(0, len(picked), 100):
        chunk = picked[start:start + 100]
        where = keys[0].in_([key[0] for key in chunk]) if len(keys) == 1 else tuple_(*keys).in_(chunk)
        for row in conn.execute(select(*_readable(table)).where(where)):
            values = dict(row._mapping)
            found[tuple(values[column.name] for column in keys)] = values
    return found


def _difference(mine: dict[str, Any] | None, theirs: dict[str, Any] | None) -> str | None:
    if mine is None:
        return "gone from the source"
    if theirs is None:
        return "missing in the target"
    differing = [name for name, value in mine.items() if not _same(value, theirs.get(name))]
    return f"differs in {', '.join(differing)}" if differing else None


def _same(a: Any, b: Any) -> bool:
    """Equal as the application reads them: bytes whatever the driver hands back, NaN equal to NaN,
    SQL booleans as 0/1 (SQLite) or True/False (PostgreSQL), JSON compared parsed."""
    if isinstance(a, memoryview):
        a = bytes(a)
    if isinstance(b, memoryview):
        b = bytes(b)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) == bool(b) if a is not None and b is not None else a is b
    return (bool(a == b) and type(a) is type(b)) or _loosely_same(a, b)


def _loosely_same(a: Any, b: Any) -> bool:
    """Numbers of one value but not one type (1 and 1.0 in a JSON document) are the same number."""
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers):
        return bool(a == b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[key], b[key]) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return False


def _key_text(key: tuple[Any, ...]) -> str:
    return "row " + (repr(key[0]) if len(key) == 1 else repr(key))
