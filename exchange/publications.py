"""Publication rows: the bytes partners download, rendered once per publication.

The publish step renders a feed and stores it with :func:`publication_row`; the feed server
(``exchange serve``) and file sinks then hand out those stored bytes as they are. Everything a
response needs that depends on the content (the gzip body, the strong ETag) is computed here,
once, so that serving a poll is a memory copy: no per-request rendering, hashing or compression.

The publish step must build every row with :func:`publication_row` and write the rows of one
publication in ONE transaction (:func:`save_publications` inside ``writing(engine)``), so that a
server never loads half of a publication.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from exchange.schema import publications
from exchange.targets import TARGETS

__all__ = [
    "FEEDS",
    "FEED_CONTENT_TYPES",
    "etag_for",
    "gzip_body",
    "publication_row",
    "save_publications",
]

#: feed name (the ``publications.feed`` key and the last part of ``/feeds/<name>``) -> media type, for
#: every feed of every target (a target that is off has its feeds answer 404 with the reason)
FEED_CONTENT_TYPES: Mapping[str, str] = {name: media for target in TARGETS.values()
                                         for name, media in target.feeds.items()}
FEEDS: tuple[str, ...] = tuple(FEED_CONTENT_TYPES)


def etag_for(body: bytes) -> str:
    """A strong ETag from the content (quoted, as sent on the wire).

    Derived from the bytes rather than the publication time, so re-publishing identical content
    keeps partners' caches valid (they get 304s), and two servers reading the same store agree.

    >>> etag_for(b"")
    '"e3b0c44298fc1c149afbf4c8996fb92427ae41e4"'
    """
    return '"' + hashlib.sha256(body).hexdigest()[:40] + '"'


def gzip_body(body: bytes) -> bytes:
    """Deterministic gzip (no timestamp or file name in the header): same bytes in, same bytes out.

    Level 9 costs a little CPU once per publication and saves bandwidth on every download.
    """
    return gzip.compress(body, compresslevel=9, mtime=0)


def publication_row(feed: str, body: bytes, content_type: str, events: int, now_ms: int) -> dict[str, Any]:
    """One ``publications`` row, ready to insert: body, gzip body and ETag computed here, once.

    ``content_type`` is sent as it is; :data:`FEED_CONTENT_TYPES` holds the ones partners expect.
    ``events`` is how many events the feed holds (shown by ``/health``).
    """
    if feed not in FEED_CONTENT_TYPES:
        raise ValueError(f"unknown feed {feed!r}; known: {', '.join(FEEDS)}")
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError("a feed body is bytes (encode the rendered document first)")
    data = bytes(body)
    return {
        "feed": feed,
        "published_ms": int(now_ms),
        "etag": etag_for(data),
        "content_type": content_type,
        "body": data,
        "body_gzip": gzip_body(data),
        "events": int(events),
    }


def save_publications(conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
    """Replace the stored rows of these feeds, inside the caller's transaction.

    Call it once per publication within ``writing(engine)``: readers then see either all of the
    old rows or all of the new ones. A feed's ``first_published_ms`` (the catalogue's first
    publication) is carried over from the row replaced; a feed published for the first time gets
    its ``published_ms``.
    """
    chosen = [dict(row) for row in rows]
    if not chosen:
        return
    names = [row["feed"] for row in chosen]
    first = dict(conn.execute(
        select(publications.c.feed, publications.c.first_published_ms).where(publications.c.feed.in_(names))
    ).all())
    for row in chosen:
        row["first_published_ms"] = first.get(row["feed"]) or row.get("first_published_ms") or row["published_ms"]
    conn.execute(delete(publications).where(publications.c.feed.in_(names)))
    conn.execute(insert(publications), chosen)
