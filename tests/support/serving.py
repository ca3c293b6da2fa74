"""Serving and polling in tests: publications stored as the publish step stores them, the real
feed server (uvicorn) on a free port, and waiting for what a background task does."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from sqlalchemy import Engine, select
from starlette.applications import Starlette

from exchange.db import writing
from exchange.publications import FEED_CONTENT_TYPES, publication_row, save_publications
from exchange.schema import downloads
from exchange.server import create_app

PLAIN = {"Accept-Encoding": "identity"}
GZIP = {"Accept-Encoding": "gzip"}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def bodies(n: int, size: int = 50) -> dict[str, bytes]:
    """Publication ``n``: distinct bytes per feed, sizes varying with n (a torn read would show)."""
    return {
        "cifs.xml": b'<?xml version="1.0"?><incidents>' + b"<incident id='%d'/>" % n * (size + n) + b"</incidents>",
        "cifs.json": json.dumps({"publication": n, "incidents": [{"id": i} for i in range(size + n)]}).encode(),
        "wzdx.geojson": json.dumps({"type": "FeatureCollection", "n": n, "features": [None] * (size + n)}).encode(),
        "datex2.xml": b'<?xml version="1.0"?><payload>' + b"<situation id='%d'/>" % n * (size + n) + b"</payload>",
        "cwz.geojson": json.dumps({"type": "FeatureCollection", "cwz": n, "features": [None] * (size + n)}).encode(),
    }


def publish(engine: Engine, feeds: dict[str, bytes], at_ms: int | None = None, events: int = 7) -> dict[str, str]:
    """Store one publication of every feed in one transaction; returns feed -> ETag."""
    rows = [publication_row(name, body, FEED_CONTENT_TYPES[name], events, at_ms or now_ms())
            for name, body in feeds.items()]
    with writing(engine) as conn:
        save_publications(conn, rows)
    return {row["feed"]: row["etag"] for row in rows}


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def serving(app: Starlette) -> Iterator[str]:
    """The real server (uvicorn, lifespan on) in a thread on a free port; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, what="server start")
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
        assert not thread.is_alive(), "server did not stop"


@contextmanager
def running(engine: Engine, **options: Any) -> Iterator[str]:
    with serving(create_app(engine, **options)) as url:
        yield url


def stored_downloads(engine: Engine) -> dict[tuple[str, str], int]:
    """(partner, feed) -> downloads (200 responses with the body)."""
    with engine.connect() as conn:
        return {(r.partner, r.feed): r.count for r in conn.execute(select(downloads))}


def stored_counts(engine: Engine) -> dict[tuple[str, str], tuple[int, int]]:
    """(partner, feed) -> (downloads, polls): polls are 304 revalidations and HEAD requests."""
    with engine.connect() as conn:
        return {(r.partner, r.feed): (r.count, r.polls) for r in conn.execute(select(downloads))}


def stored_last_ms(engine: Engine) -> dict[tuple[str, str], int]:
    """(partner, feed) -> the time of its last request of either kind."""
    with engine.connect() as conn:
        return {(r.partner, r.feed): r.last_ms for r in conn.execute(select(downloads))}
