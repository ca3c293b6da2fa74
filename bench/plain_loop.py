"""The reference for the ingest benchmark: a plain ``json`` + ``sqlite3`` upsert loop.

    python -m bench.plain_loop DB_PATH FILE_OR_DIR...

It imports only the standard library, so ``replay_bench`` runs it by its path
(``python bench/plain_loop.py``).

For each file, in order: ``json.load`` it, then upsert every alert, jam and irregularity, keyed by
kind + id, with its JSON text and a few columns (type, street, pubMillis), in one transaction per
file. The database is in WAL mode with ``synchronous=NORMAL``, the same settings ``exchange`` uses
for SQLite. Every item is written on every poll: nothing is skipped, nothing is compared.
Prints the number of items upserted and the rows in the table.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

ID_KEYS = {"alerts": "uuid", "jams": "id", "irregularities": "id"}

UPSERT = """
INSERT INTO items (id, kind, type, street, pub_millis, body) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT(id) DO UPDATE SET
    type = excluded.type, street = excluded.street, pub_millis = excluded.pub_millis, body = excluded.body
"""


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    files: list[Path] = []
    for name in argv[1:]:
        path = Path(name)
        files.extend(sorted(path.glob("*.json")) if path.is_dir() else [path])
    conn = sqlite3.connect(argv[0], isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, kind TEXT NOT NULL, type TEXT, street TEXT, "
        "pub_millis INTEGER, body TEXT NOT NULL)"
    )
    upserted = 0
    for path in files:
        with path.open("rb") as handle:
            document = json.load(handle)
        rows = []
        for kind, id_key in ID_KEYS.items():
            for item in document.get(kind) or []:
                rows.append((
                    f"{kind}:{item[id_key]}", kind, item.get("type"), item.get("street"),
                    item.get("pubMillis", item.get("detectionDateMillis")), json.dumps(item),
                ))
        conn.execute("BEGIN")
        conn.executemany(UPSERT, rows)
        conn.execute("COMMIT")
        upserted += len(rows)
    stored = conn.execute("SELECT count(*) FROM items").fetchone()[0]
    conn.close()
    print(f"{len(files)} files, {upserted} items upserted, {stored} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
