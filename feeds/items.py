"""What every source's codec produces: a snapshot of identified items, converted one by one later.

A poll is read in two steps so that a feed that mostly repeats itself costs little: the codec
gives each item its kind, its source id and a digest of its content (cheap), and only items whose
digest is new are converted into events (the source's ``convert``), each on its own, so one bad
item is rejected with its reason while the rest of the batch goes on.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson

from exchange.errors import MalformedPayload
from exchange.model import ItemError, Kind

__all__ = ["FeedItem", "Snapshot", "digest", "dumps_lenient", "field_at", "load_json", "loads_lenient"]


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One record of a feed, identified but not yet converted."""

    kind: Kind
    source_id: str
    digest: str
    record: dict[str, Any]


@dataclass(slots=True)
class Snapshot:
    """One poll of a source: its time window, which kinds it lists, its items and what was refused."""

    start_ms: int | None
    end_ms: int | None
    kinds_present: frozenset[Kind]
    items: list[FeedItem] = field(default_factory=list)
    errors: list[ItemError] = field(default_factory=list)
    #: True when the reader already guarantees that every value but the nesting is storable (no
    #: NaN/Infinity, no NUL, no lone surrogate, whole numbers within 64 bits), so the converter
    #: may skip its deep scan for the cheaper nesting check (orjson refuses or converts the rest;
    #: only ``\u0000`` could pass, and the readers look for it in the bytes)
    values_checked: bool = False

    @property
    def taken_ms(self) -> int | None:
        """When the snapshot was taken: the end of its window, else its start."""
        return self.end_ms if self.end_ms is not None else self.start_ms


def digest(record: Mapping[str, Any]) -> str:
    """A content hash of a record, independent of key order; it never raises.

    >>> digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    True
    """
    try:
        canonical = orjson.dumps(record, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):  # lone surrogates, nesting beyond 255 levels, odd types
        try:
            canonical = dumps_lenient(record, sort_keys=True)
        except (TypeError, ValueError, RecursionError):
            # nothing a reader of this package produces; such a record is refused when converted
            canonical = b"\x00unwritable"
    return hashlib.blake2b(canonical, digest_size=16).hexdigest()


def field_at(record: Any, name: str) -> Any:
    """The value of field ``name`` in a record, ``None`` when it has none: the key itself, else a
    dotted path into nested objects (``core_details.name``).

    >>> field_at({"permit": "P-1", "core_details": {"name": "W-7"}}, "core_details.name")
    'W-7'
    >>> field_at({"a.b": 1, "a": {"b": 2}}, "a.b"), field_at({"a": [1]}, "a.b"), field_at(None, "a")
    (1, None, None)
    """
    if not isinstance(record, Mapping):
        return None
    if name in record:
        return record[name]
    head, dot, rest = name.partition(".")
    return field_at(record.get(head), rest) if dot and rest else None


def load_json(data: bytes) -> tuple[Any, bool]:
    """A JSON payload, and whether its values are known to be storable but for their nesting.

    orjson is tried first (fast, and it refuses NaN, Infinity, raw control characters, lone
    surrogates, numbers beyond the float range and nesting beyond 1024 levels);
    :func:`loads_lenient` then accepts all of those, so that they are rejected item by item
    instead of failing the whole payload. What the second reader cannot read either is malformed.

    Raises
    ------
    MalformedPayload
        The payload is not JSON at all, with the line and column of the first error; or it nests
        deeper than about 1100 levels.
    """
    try:
        return orjson.loads(data), b"\\u0000" not in data
    except orjson.JSONDecodeError:
        pass
    try:
        return loads_lenient(data), False
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        where = f" at line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise MalformedPayload(f"malformed JSON{where}: {detail}") from exc
    except RecursionError as exc:
        raise MalformedPayload("malformed JSON: nested too deeply") from exc


# --------------------------------------------------------------------------- the standard library's JSON, leniently

#: the whole numbers orjson reads as such; it reads a larger one as a float
_INT_MIN, _UINT_MAX = -(2**63), 2**64 - 1
#: how many more levels of recursion the standard library's JSON reader and writer are given: a
#: little more than the 1024 levels of nesting orjson reads
_NESTING_ROOM = 1100
_room = threading.RLock()


@contextmanager
def _room_for_nesting() -> Iterator[None]:
    """Python's recursion limit raised by :data:`_NESTING_ROOM` for as long as the block runs.

    The standard library reads and writes JSON recursively, one level of recursion per level of
    nesting, within the interpreter's recursion limit (1000 by default, less the caller's own
    depth): without the room, a document orjson reads could fail the whole payload in the
    fallback reader. The limit is process-wide, so changes take turns under a lock and are undone
    on the way out; the room stays bounded, so a deeper document still fails with RecursionError.
    """
    with _room:
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(limit + _NESTING_ROOM)
        try:
            yield
        finally:
            sys.setrecursionlimit(limit)


def _integer(text: str) -> int | float:
    """A JSON integer as orjson reads one: exactly within 64 bits, else as a float (``inf`` beyond its range).

    So both readers agree, and no integer has more digits than Python converts to text (4300):
    a 5,000-digit number is ``inf``, and rejects its item as any non-finite number does.

    >>> _integer("42"), _integer(str(2**64)), _integer("1" * 5000)
    (42, 1.8446744073709552e+19, inf)
    """
    if len(text) <= 20:
        number = int(text)
        if _INT_MIN <= number <= _UINT_MAX:
            return number
    return float(text)


def loads_lenient(data: str | bytes) -> Any:
    """JSON as the standard library reads it, accepting what orjson refuses, so items are refused one by one.

    NaN and Infinity are floats, raw control characters and lone surrogates (``"\\ud800"``) are
    kept in their strings, an integer beyond 64 bits is a float as orjson reads it, and nesting as
    deep as orjson reads is read.

    Raises
    ------
    json.JSONDecodeError
        Not JSON (a ``ValueError``).
    UnicodeDecodeError
        Bytes that are not UTF-8 (or UTF-16/32, as the standard library detects them).
    RecursionError
        Nested deeper than about 1100 levels.
    """
    with _room_for_nesting():
        return json.loads(data, strict=False, parse_int=_integer)


def dumps_lenient(value: Any, *, sort_keys: bool = False) -> bytes:
    """JSON as the standard library writes it: what orjson refuses to write, or writes differently.

    NaN and Infinity are written as such (orjson writes ``null``), lone surrogates as ``\\u``
    escapes, unknown types as their text, and nesting as deep as :func:`loads_lenient` reads;
    :func:`load_json` reads the result back to the same values.

    Raises
    ------
    RecursionError, ValueError, TypeError
        Nesting deeper than :func:`loads_lenient` reads, an integer of more than 4300 digits, keys
        that cannot be sorted.
    """
    with _room_for_nesting():
        return json.dumps(value, sort_keys=sort_keys, default=str).encode()
