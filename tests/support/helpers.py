"""Builders for small Waze feeds, so each test states exactly the payload it reconciles."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BASE_MS = 1_772_463_600_000  # 2026-03-02T15:00:00Z
POLL_MS = 120_000


def alert(uuid: str, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "uuid": uuid,
        "type": "ACCIDENT",
        "subtype": "ACCIDENT_MINOR",
        "location": {"x": -122.2841, "y": 37.8093},
        "street": "7th Street",
        "city": "Oakland, CA",
        "country": "US",
        "pubMillis": BASE_MS - 60_000,
        "reliability": 6,
        "confidence": 1,
        "nThumbsUp": 0,
        "reportRating": 3,
        "magvar": 90,
        "roadType": 2,
    }
    record.update(fields)
    return record


def jam(jam_id: int, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "uuid": jam_id,
        "id": jam_id,
        "line": [{"x": -122.2841, "y": 37.8093}, {"x": -122.2830, "y": 37.8095}, {"x": -122.2820, "y": 37.8097}],
        "speed": 3.5,
        "speedKMH": 12.6,
        "length": 250,
        "delay": 60,
        "level": 3,
        "type": "NONE",
        "street": "7th Street",
        "city": "Oakland, CA",
        "country": "US",
        "pubMillis": BASE_MS - 30_000,
        "segments": [{}, {}],
        "turnType": "NONE",
        "roadType": 2,
    }
    record.update(fields)
    return record


def feed(
    poll: int = 0,
    *,
    alerts: list[dict[str, Any]] | None = None,
    jams: list[dict[str, Any]] | None = None,
    irregularities: list[dict[str, Any]] | None = None,
) -> bytes:
    """A feed envelope for poll number ``poll`` (2 minutes apart); an array left as None is absent."""
    start = BASE_MS + poll * POLL_MS
    document: dict[str, Any] = {"startTimeMillis": start, "endTimeMillis": start + 60_000}
    if alerts is not None:
        document["alerts"] = alerts
    if jams is not None:
        document["jams"] = jams
    if irregularities is not None:
        document["irregularities"] = irregularities
    return json.dumps(document).encode()


class Run:
    """What one in-process CLI call did: its exit code and what it printed."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"Run(code={self.code}, out={self.out[:400]!r}, err={self.err[:400]!r})"


#: the ``cli`` fixtures: ``cli("inspect", "events")`` runs ``exchange inspect events`` in-process
Cli = Callable[..., Run]


def invoke(args: list[str], capsys: Any) -> Run:
    """Run ``exchange ARGS`` in this process through the console entry point, exit code included."""
    from exchange.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0) if not isinstance(exc.code, str) else 1
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)


class QuietHandler(BaseHTTPRequestHandler):
    """A local test server's handler: no log lines, and one call to send a whole answer."""

    def answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def http_server(handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """A real HTTP server on a free localhost port, in a thread; yields its base URL (HTTPS with ``tls``)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    # a short poll interval: shutting the server down at the end of a test takes 0.05 s, not 0.5 s
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def as_published(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """A line as the feeds carry it, to 6 decimals: two vertices a hair apart (DiaLog writes 9 decimals)
    become one point repeated, which a reader drops; the points themselves are kept as given."""
    def rounded(point: tuple[float, float]) -> tuple[float, float]:
        return round(point[0], 6), round(point[1], 6)

    return [point for k, point in enumerate(points) if k == 0 or rounded(point) != rounded(points[k - 1])]
