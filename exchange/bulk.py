"""Driver-level bulk reads and writes for the hot path of a sync.

SQLAlchemy Core builds parameters row by row, which costs more than the writes themselves when a
poll touches thousands of rows. Here statements go straight to the DB-API cursor as
``executemany`` with positional tuples and pre-serialized JSON, in the driver's own paramstyle.
Only the sync pipeline uses this; everything else stays on SQLAlchemy Core.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, Table

__all__ = ["Bulk", "dumps", "loads"]

_SQLITE_CHUNK = 900
_PG_UPDATE_VIA_COPY = 200


def dumps(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(value, default=str)


def loads(value: Any) -> Any:
    """A JSON column as read by the driver: text on SQLite, already decoded by psycopg."""
    if isinstance(value, str | bytes):
        return orjson.loads(value)
    return value


class Bulk:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.postgres = conn.dialect.name == "postgresql"
        self.mark = "%s" if conn.dialect.paramstyle in ("format", "pyformat") else "?"

    def _sql(self, statement: str) -> str:
        return statement.replace("?", self.mark) if self.mark != "?" else statement

    def fetch(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(self.conn.exec_driver_sql(self._sql(statement), tuple(params)).fetchall())

    def many(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.conn.exec_driver_sql(self._sql(statement), list(rows))

    def where_in(
        self, statement: str, column: str, values: Sequence[Any], params: Sequence[Any] = (), *, rows: bool = True
    ) -> list[Any]:
        """Run ``statement`` (ending in WHERE or AND) restricted to ``column`` in ``values``.

        ``params`` fill the statement's own placeholders, which come before the list. With
        ``rows=False`` the statement is a write and nothing is fetched.
        """
        if not values:
            return []
        found: list[Any] = []
        if self.postgres:
            chunks: list[tuple[str, tuple[Any, ...]]] = [(f"{column} = ANY(?)", (*params, list(values)))]
        else:
            chunks = [
                (f"{column} IN ({','.join('?' * len(chunk))})", (*params, *chunk))
                for chunk in (values[i : i + _SQLITE_CHUNK] for i in range(0, len(values), _SQLITE_CHUNK))
            ]
        for condition, arguments in chunks:
            result = self.conn.exec_driver_sql(self._sql(f"{statement} {condition}"), arguments)
            if rows:
                found.extend(result.fetchall())
        return found

    def insert(self, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Insert rows; on PostgreSQL through COPY, which is several times faster than INSERTs."""
        rows = list(rows)
        if not rows:
            return
        if self.postgres:
            self._copy(table.name, columns, rows)
            return
        marks = ",".join("?" * len(columns))
        self.many(f"INSERT INTO {table.name} ({','.join(columns)}) VALUES ({marks})", rows)

    def update(self, table: Table, columns: Sequence[str], key: str | Sequence[str],
               rows: Iterable[Sequence[Any]]) -> None:
        """Each row holds the new values of ``columns`` then the key (the values of each key column, in
        order, when the key is several columns).

        On PostgreSQL a large batch is copied into a temporary table and applied with one
        ``UPDATE ... FROM``: one statement instead of one per row.
        """
        rows = list(rows)
        keys = [key] if isinstance(key, str) else list(key)
        if self.postgres and len(rows) >= _PG_UPDATE_VIA_COPY:
            listed = ",".join([*columns, *keys])
            scratch = f"bulk_{table.name}_{zlib.crc32(listed.encode()):08x}"
            self.conn.exec_driver_sql(
                f"CREATE TEMP TABLE IF NOT EXISTS {scratch} AS SELECT {listed} FROM {table.name} WITH NO DATA"
            )
            self.conn.exec_driver_sql(f"TRUNCATE {scratch}")
            self._copy(scratch, [*columns, *keys], rows)
            assignments = ",".join(f"{column}=s.{column}" for column in columns)
            matched = " AND ".join(f"{table.name}.{column} = s.{column}" for column in keys)
            self.conn.exec_driver_sql(f"UPDATE {table.name} SET {assignments} FROM {scratch} s WHERE {matched}")
            return
        assignments = ",".join(f"{column}=?" for column in columns)
        self.many(f"UPDATE {table.name} SET {assignments} WHERE {' AND '.join(f'{k}=?' for k in keys)}", rows)

    def _copy(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        cursor = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY {table} ({','.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
