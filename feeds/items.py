"""What every source's codec produces: a snapshot of identified items, converted one by one later.

A poll is read in two steps so that a feed that mostly repeats itself costs little: the codec
gives each item its kind, its source id and a digest of its content (cheap), and only items whose
digest is new are converted into events (the source's ``convert``), each on its own, so one bad
item is rejected with its reason while the rest of the batch goes on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from exchange.errors import MalformedPayload
from exchange.model import ItemError, Kind

__all__ = ["FeedItem", "Snapshot", "digest", "load_json"]


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
    #: True when the reader already guarantees no NaN/Infinity and no NUL in any value, so the
    #: converter may skip its deep scan (orjson refuses those; only ``\u0000`` could pass)
    values_checked: bool = False

    @property
    def taken_ms(self) -> int | None:
        """When the snapshot was taken: the end of its window, else its start."""
        return self.end_ms if self.end_ms is not None else self.start_ms

    def count(self, kind: Kind) -> int:
        return sum(1 for item in self.items if item.kind is kind)


def digest(record: Mapping[str, Any]) -> str:
    """A content hash of a record, independent of key order.

    >>> digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    True
    """
    try:
        canonical = orjson.dumps(record, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        canonical = json.dumps(record, sort_keys=True, default=str).encode()
    return hashlib.blake2b(canonical, digest_size=16).hexdigest()


def load_json(data: bytes) -> tuple[Any, bool]:
    """A JSON payload, and whether its values are known to be free of NaN, Infinity and NUL.

    orjson is tried first (fast, and it refuses NaN, Infinity and raw control characters); the
    standard library then accepts those, so that they are rejected item by item instead of
    failing the whole payload.

    Raises
    ------
    MalformedPayload
        The payload is not JSON at all, with the line and column of the first error.
    """
    try:
        return orjson.loads(data), b"\\u0000" not in data
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(data, strict=False), False
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise MalformedPayload(f"malformed JSON{where}: {detail}") from exc
    except RecursionError as exc:
        raise MalformedPayload("malformed JSON: nested too deeply") from exc
