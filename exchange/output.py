"""Formatting for the CLI: tables for people, json / jsonl / geojson / csv for scripts.

Machine formats stream one record at a time, so ``inspect events --format jsonl`` on a large store
starts printing at once and holds little in memory.
"""

from __future__ import annotations

import csv
import os
import re
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import IO, Any
from zoneinfo import ZoneInfo

import orjson

__all__ = [
    "DocumentFormat",
    "Format",
    "RecordFormat",
    "RunFormat",
    "as_text",
    "event_record",
    "in_zone",
    "iso",
    "run_record",
    "source_record",
    "write_records",
]


class Format(StrEnum):
    """Every output: events have a geometry, so they can be GeoJSON too."""

    table = "table"
    json = "json"
    jsonl = "jsonl"
    geojson = "geojson"
    csv = "csv"


#: lists of records without a geometry (runs, sources, the feed's lint, partners)
RecordFormat = StrEnum("RecordFormat", ["table", "json", "jsonl", "csv"])
#: one document (an event in full): a table for people or one JSON object
DocumentFormat = StrEnum("DocumentFormat", ["table", "json"])
#: what ``sync`` prints: a summary on stderr, or the runs on stdout
RunFormat = StrEnum("RunFormat", ["table", "json", "jsonl"])


def iso(ms: int | None, zone: ZoneInfo | None = None) -> str | None:
    """Epoch milliseconds as ISO 8601 UTC with ``Z`` for machines; with ``zone``, the local wall time
    for a table whose title names the zone (:func:`in_zone`), so no cell repeats the offset.

    >>> iso(1772463600000), iso(1772463600000, ZoneInfo("America/Los_Angeles"))
    ('2026-03-02T15:00:00.000Z', '2026-03-02 07:00:00')
    """
    if ms is None:
        return None
    when = datetime.fromtimestamp(ms / 1000, tz=UTC)
    if zone is not None:
        return when.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def in_zone(title: str, zone: ZoneInfo) -> str:
    """A table title that says, once, in which time zone its times are.

    >>> in_zone("sync runs", ZoneInfo("Europe/Paris"))
    'sync runs (times in Europe/Paris)'
    """
    return f"{title} (times in {zone.key})"


_EVENT_NUMBERS = (
    "reliability", "confidence", "thumbs_up", "report_rating", "magvar", "road_type",
    "speed_kmh", "delay_s", "level", "length_m", "blocking_alert_uuid",
)


def event_record(row: Any) -> dict[str, Any]:
    """One stored event as the documented JSON object."""
    m = row._mapping if hasattr(row, "_mapping") else row
    record: dict[str, Any] = {
        "id": m["id"],
        "source": m["source"],
        "kind": m["kind"],
        "source_id": m["source_id"],
        "origin": m["origin"],
        "category": m["category"],
        "type": m["type"],
        "subtype": m["subtype"],
        "status": m["status"],
        "street": m["street"],
        "city": m["city"],
        "country": m["country"],
        "direction": m["direction"],
        "start_time": iso(m["start_ms"]),
        "end_time": iso(m["end_ms"]),
        "first_seen": iso(m["first_seen_ms"]),
        "updated": iso(m["updated_ms"]),
    }
    for name in _EVENT_NUMBERS:
        record[name] = m[name]
    record["road_match"] = m["road_match"]
    record["cluster_id"] = m["cluster_id"]
    if m["origin"] == "city":
        record["details"] = m["details"]
        record["visible_in_waze_since"] = iso(m["visible_in_waze_since_ms"])
        record["same_as"] = m["same_as"]  # the same closure from another source, published in its place
    record["geometry"] = m["geometry"]
    record["attributes"] = m["attributes"]
    return record


def run_record(row: Any) -> dict[str, Any]:
    m = row._mapping
    return {
        "id": m["id"],
        "source": m["source"],
        "status": m["status"],
        "started": iso(m["started_ms"]),
        "finished": iso(m["finished_ms"]),
        "snapshot": iso(m["snapshot_ms"]),
        **{key: m[key] for key in ("fetched", "new", "updated", "unchanged", "ended", "rejected")},
        "message": m["message"],
        "item_errors": m["item_errors"] or [],
    }


def source_record(row: Any) -> dict[str, Any]:
    m = row._mapping
    return {
        "name": m["name"],
        "kind": m["kind"],
        "namespace": m["namespace"],
        "location": m["location"],
        "active_events": m["active_events"],
        "newest_snapshot": iso(m["newest_snapshot_ms"]),
        "last_success": iso(m["last_success_ms"]),
        "etag": m["etag"],
    }


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def write_records(
    records: Iterable[dict[str, Any]],
    fmt: Format | RecordFormat | DocumentFormat | RunFormat,
    *,
    columns: Sequence[str],
    title: str = "",
    out: IO[str] | None = None,
    truncated_note: str | None = None,
) -> int:
    """Write records in ``fmt``; returns how many were written."""
    out = out or sys.stdout
    fmt = Format(fmt.value)
    count = 0
    if fmt is Format.table:
        return _write_table(records, columns, title, out, truncated_note)
    if fmt is Format.csv:
        writer = csv.writer(out)
        writer.writerow(columns)
        # to a file or a pipe the data goes as it is; to a terminal its control characters are shown
        shown = _csv_value if not out.isatty() else lambda value: _terminal_cell(_csv_value(value))
        for record in records:
            writer.writerow(shown(record.get(c)) for c in columns)
            count += 1
        return count
    if fmt is Format.jsonl:
        for record in records:
            out.write(_dumps(record).decode() + "\n")
            count += 1
        return count
    if fmt is Format.geojson:
        out.write('{"type":"FeatureCollection","features":[')
        for record in records:
            properties = {k: v for k, v in record.items() if k != "geometry"}
            feature = {"type": "Feature", "id": record.get("id"), "geometry": record.get("geometry"),
                       "properties": properties}
            out.write(("," if count else "") + "\n" + _dumps(feature).decode())
            count += 1
        out.write("\n]}\n")
        return count
    out.write("[")
    for record in records:
        out.write(("," if count else "") + "\n" + _dumps(record).decode())
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def _write_table(
    records: Iterable[dict[str, Any]], columns: Sequence[str], title: str, out: IO[str], note: str | None
) -> int:
    """A table that fits the terminal: ids, names and times whole on one line; free text folds; short
    values are cut with an ellipsis; columns that still do not fit are left out, and stderr says so."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    rows = [[terminal_safe(as_text(record.get(c))) for c in columns] for record in records]
    console = Console(file=out, width=_table_width(out))
    natural = [max([len(c), *(len(row[i]) for row in rows)]) for i, c in enumerate(columns)]
    least = [natural[i] if c in _UNBROKEN else min(natural[i], _LEAST_TEXT if c in _TEXT else 5)
             for i, c in enumerate(columns)]
    shown = list(range(len(columns)))
    def budget() -> int:  # the width left for cells: 3 characters between columns, 1 spare
        return console.width - 3 * (len(shown) - 1) - 1

    while len(shown) > 1 and sum(least[i] for i in shown) > budget():
        # the rightmost column that is not an id leaves first
        shown.remove(next((i for i in reversed(shown) if columns[i] != "id"), shown[-1]))
    widths = {i: natural[i] for i in shown}
    while sum(widths.values()) > budget():
        widest = max((i for i in shown if widths[i] > least[i]), key=lambda i: widths[i], default=None)
        if widest is None:
            break
        widths[widest] -= 1
    table = Table(title=title or None, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for i in shown:
        column = columns[i]
        text = column in _TEXT
        table.add_column(column, width=widths[i], no_wrap=not text, overflow="fold" if text else "ellipsis")
    for row in rows:
        # Text, not str: a cell is shown as it is, never read as rich markup ("[red]" in a street name)
        table.add_row(*(Text(row[i]) for i in shown))
    console.print(table)
    hidden = [c for i, c in enumerate(columns) if i not in shown]
    if hidden:
        print(f"({', '.join(hidden)} left out to fit {console.width} columns; widen the terminal or use "
              "--format json)", file=sys.stderr)
    if note:
        print(note, file=sys.stderr)
    return len(rows)


def _table_width(out: IO[str]) -> int | None:
    """The terminal's width (None: rich asks it); piped, ``$COLUMNS`` when set, else 200."""
    if out.isatty():
        return None
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) >= 40 else 200


#: a free-text column narrower than this folds a sentence a word a line (a closure's description over 40
#: lines): the table leaves a column out instead, and says so
_LEAST_TEXT = 24
#: table columns of free text, folded over lines when the terminal is narrow
_TEXT = frozenset({
    "street", "description", "message", "blocking", "warnings", "location", "value", "changes", "held_back",
    "waze", "mismatches", "losses", "detail",
})
#: table columns never broken over lines
_UNBROKEN = frozenset({
    "id", "name", "table", "start_time", "end_time", "updated", "started", "snapshot", "newest_snapshot",
    "last_success", "at", "created", "revoked", "last_request", "linked",
    "cifs.xml", "cifs.json", "wzdx.geojson",  # `partner list`: downloads/polls per feed, numbers never cut
})


def cut(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters: whole, or its start and "…" (a table cell, a field)."""
    return text if len(text) <= limit else f"{text[:limit - 1].rstrip()}…"


def as_text(value: Any) -> str:
    """A value for people: nested values as compact JSON (what ``--format json`` shows), not Python reprs.

    >>> as_text({"edges": [[1, 2, 3]], "note": None}), as_text(None), as_text("7th Street")
    ('{"edges":[[1,2,3]],"note":null}', '', '7th Street')
    """
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return _dumps(value).decode()
    return str(value)


def terminal_safe(text: str) -> str:
    r"""``text`` with control characters shown, not obeyed: an upstream street name holding
    ``ESC]0;...`` or ``ESC[2J`` must not retitle or clear the operator's terminal; bidirectional
    overrides would reorder what is shown.

    >>> terminal_safe("7th\x1b[2J Street\u202e"), terminal_safe("two\nlines")
    ('7th\\x1b[2J Street\\u202e', 'two\nlines')
    """
    return _CONTROL.sub(_shown_escape, text) if _CONTROL.search(text) else text


_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _shown_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def csv_safe(value: Any) -> Any:
    r"""A CSV cell that a spreadsheet will not run: text starting with ``=``, ``+``, ``-``, ``@``, TAB,
    CR or LF gets a leading apostrophe (OWASP "CSV injection"); plain decimal numbers, also written as
    text (``-122.300788``), stay as they are so the file stays machine-readable.

    >>> csv_safe("=HYPERLINK(\"http://x\")"), csv_safe("-122.300788"), csv_safe(-1), csv_safe("@SUM(A1)")
    ('\'=HYPERLINK("http://x")', '-122.300788', -1, "'@SUM(A1)")
    >>> csv_safe("\t1"), csv_safe("-inf"), csv_safe("-1_000"), csv_safe("\n=1+2"), csv_safe("-1e-3")
    ("'\t1", "'-inf", "'-1_000", "'\n=1+2", '-1e-3')
    """
    if isinstance(value, str) and value and value[0] in _FORMULA_STARTS and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


_FORMULA_STARTS = frozenset("=+-@\t\r\n")
#: a plain decimal number (what a spreadsheet reads as one and runs nothing): ``-1``, ``+2.5``, ``-1e-3``;
#: not ``-inf``, ``-1_000`` or other digits, which Python's float() also takes
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


def _terminal_cell(value: Any) -> Any:
    return terminal_safe(value) if isinstance(value, str) else value


def _csv_value(value: Any) -> Any:
    if isinstance(value, dict | list):
        return _dumps(value).decode()
    return csv_safe(value)
