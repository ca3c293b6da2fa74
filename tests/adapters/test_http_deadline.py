"""A fetch ends on time: the total deadline and the stop flag, against real localhost servers that
trickle (each read well within the read timeout, so no per-read timeout would ever end them)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.arcgis import ArcGisAdapter
from adapters.base import Watermark
from adapters.http import HttpPolicy, fetch_url
from adapters.waze import WazeFeedAdapter
from exchange.errors import FetchStopped, UpstreamUnavailable
from tests.support.helpers import Cli, QuietHandler, http_server

#: generous per-read and connect timeouts: only the deadline or the stop can end these fetches early
PATIENT = HttpPolicy(connect_timeout_s=5, read_timeout_s=5, retries=3, backoff_s=0.01, max_backoff_s=60)


class _Trickle(QuietHandler):
    """Headers at once, then one byte of a long body per ``interval`` seconds (or, with
    ``headers_too``, the status line itself a byte at a time)."""

    interval = 1.0
    headers_too = False
    silent = False
    close_delimited = False  # HTTP/1.0, no Content-Length: the body ends when the connection closes
    done: threading.Event

    def do_GET(self) -> None:
        try:
            if self.silent:
                self.done.wait(30)
                return
            if self.headers_too:
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n":
                    if self.done.wait(self.interval):
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                return
            self.send_response(200)
            if not self.close_delimited:
                self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.flush()
            for _ in range(1000):
                if self.done.wait(self.interval):
                    return
                self.wfile.write(b"x")
                self.wfile.flush()
        except OSError:
            pass  # the client hung up: what the deadline is for


@pytest.fixture
def trickle() -> Iterator[tuple[str, type[_Trickle]]]:
    handler = type("Trickle", (_Trickle,), {"done": threading.Event()})
    with http_server(handler) as url:
        yield url, handler
        handler.done.set()


def _timed_fetch(url: str, policy: HttpPolicy, **options: object) -> tuple[BaseException, float]:
    started = time.monotonic()
    with pytest.raises(UpstreamUnavailable) as caught:
        fetch_url(url, Watermark(), policy, **options)  # type: ignore[arg-type]
    return caught.value, time.monotonic() - started


def _policy(deadline_s: float) -> HttpPolicy:
    return HttpPolicy(connect_timeout_s=5, read_timeout_s=5, retries=3, backoff_s=0.01, max_backoff_s=60,
                      deadline_s=deadline_s)


def test_a_trickling_body_is_cut_off_at_the_deadline(trickle: tuple[str, type[_Trickle]]) -> None:
    url, handler = trickle
    handler.interval = 0.25  # a byte 20 times within each 5-second read timeout
    error, took = _timed_fetch(f"{url}/feed", _policy(0.9))
    assert str(error) == f"cannot read {url}/feed: no complete answer within the 0.9-second deadline (deadline_s)"
    assert not isinstance(error, FetchStopped)
    assert 0.85 < took < 2.0, took


def test_a_close_delimited_body_cut_at_the_deadline_is_not_taken_for_the_whole(
    trickle: tuple[str, type[_Trickle]],
) -> None:
    """Found in a cold trial: without a Content-Length (HTTP/1.0, the body ends when the connection closes)
    the watchdog's cut read as the body's end, and the first 10,000 bytes were parsed: "malformed JSON",
    the source SchemaError instead of Offline."""
    url, handler = trickle
    handler.close_delimited, handler.interval, handler.protocol_version = True, 0.02, "HTTP/1.0"
    error, took = _timed_fetch(f"{url}/feed", _policy(0.6))
    assert str(error) == f"cannot read {url}/feed: no complete answer within the 0.6-second deadline (deadline_s)"
    assert took < 1.6, took


def test_trickling_headers_are_cut_off_at_the_deadline(trickle: tuple[str, type[_Trickle]]) -> None:
    url, handler = trickle
    handler.headers_too, handler.interval = True, 0.1
    error, took = _timed_fetch(url, _policy(0.6))
    assert "0.6-second deadline" in str(error)
    assert 0.55 < took < 1.6, took


def test_a_silent_upstream_is_cut_off_at_the_deadline_not_the_read_timeout(
    trickle: tuple[str, type[_Trickle]],
) -> None:
    url, handler = trickle
    handler.silent = True
    error, took = _timed_fetch(url, _policy(0.5))
    assert "0.5-second deadline" in str(error)
    assert took < 1.5, took  # the read timeout is 5 s: the watchdog cut the connection


def test_the_deadline_setting_reaches_the_fetch(trickle: tuple[str, type[_Trickle]]) -> None:
    url, handler = trickle
    handler.interval = 0.1
    source = WazeFeedAdapter("slow", {"url": url, "deadline_s": 0.5, "read_timeout_s": 5})
    started = time.monotonic()
    with pytest.raises(UpstreamUnavailable, match=r"0\.5-second deadline"):
        source.fetch(Watermark())
    assert time.monotonic() - started < 1.5


def test_a_stop_ends_a_trickling_fetch_within_a_second(trickle: tuple[str, type[_Trickle]]) -> None:
    url, handler = trickle
    handler.interval = 0.2
    stop = threading.Event()
    threading.Timer(0.4, stop.set).start()
    error, took = _timed_fetch(url, _policy(60), should_stop=stop.is_set)
    assert isinstance(error, FetchStopped) and str(error) == f"gave up on {url}: stopped: shutting down"
    assert 0.35 < took < 1.5, took


def test_a_stop_ends_a_silent_fetch_through_the_source(trickle: tuple[str, type[_Trickle]]) -> None:
    url, handler = trickle
    handler.silent = True
    stop = threading.Event()
    source = WazeFeedAdapter("quiet", {"url": url, "read_timeout_s": 30})
    source.should_stop = stop.is_set
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    with pytest.raises(FetchStopped):
        source.fetch(Watermark())
    assert time.monotonic() - started < 1.5


class _Busy(QuietHandler):
    retry_after: str | None = "30"
    status = 503
    hits: list[float]

    def do_GET(self) -> None:
        self.hits.append(time.monotonic())
        self.answer(self.status, b"{}", {"Retry-After": self.retry_after} if self.retry_after else {})


@pytest.fixture
def busy() -> Iterator[tuple[str, type[_Busy]]]:
    handler = type("Busy", (_Busy,), {"hits": []})
    with http_server(handler) as url:
        yield url, handler


def test_a_stop_ends_a_backoff_wait(busy: tuple[str, type[_Busy]]) -> None:
    url, handler = busy
    handler.retry_after = "20"
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    error, took = _timed_fetch(url, _policy(60), should_stop=stop.is_set)
    assert isinstance(error, FetchStopped)
    assert took < 1.5 and len(handler.hits) == 1, (took, handler.hits)


def test_a_wait_past_the_deadline_gives_up_at_once(busy: tuple[str, type[_Busy]]) -> None:
    url, handler = busy
    handler.retry_after = "30"
    error, took = _timed_fetch(url, _policy(5))
    assert str(error) == (f"cannot read {url}: HTTP 503 (after 1 attempts), and the next try in 30 s would pass the "
                          "5-second deadline (deadline_s)")
    assert took < 1.0 and len(handler.hits) == 1


def test_the_deadline_counts_the_backoff_waits(busy: tuple[str, type[_Busy]]) -> None:
    """Waits that each fit the deadline still end the fetch once their sum reaches it."""
    url, handler = busy
    handler.retry_after = None
    policy = HttpPolicy(connect_timeout_s=5, read_timeout_s=5, retries=10, backoff_s=0.2, max_backoff_s=0.2,
                        deadline_s=0.6)
    error, took = _timed_fetch(url, policy)
    assert "0.6-second deadline" in str(error)
    assert took < 1.2 and 2 <= len(handler.hits) <= 6, (took, handler.hits)  # not the 11 attempts retries=10 allow


def test_a_fast_upstream_is_unaffected(busy: tuple[str, type[_Busy]]) -> None:
    url, handler = busy
    handler.status, handler.retry_after = 200, None
    assert fetch_url(url, Watermark(), PATIENT, should_stop=lambda: False).body == b"{}"
    assert threading.active_count() < 50  # the watchdog threads end with their fetch
    names = [thread.name for thread in threading.enumerate()]
    assert "fetch-watchdog" not in names


class _SlowLayer(QuietHandler):
    """An ArcGIS layer whose every page takes 0.2 s and says more features follow."""

    pages: list[str]

    def do_GET(self) -> None:
        self.pages.append(self.path)
        time.sleep(0.2)
        feature = {"type": "Feature", "properties": {"id": len(self.pages)},
                   "geometry": {"type": "Point", "coordinates": [-104.99, 39.74]}}
        body = json.dumps({"type": "FeatureCollection", "features": [feature], "exceededTransferLimit": True})
        self.answer(200, body.encode(), {"Content-Type": "application/geo+json"})


def test_one_deadline_bounds_every_page_of_an_arcgis_layer() -> None:
    """Each page is well within the deadline; together they are not."""
    pages: list[str] = []
    with http_server(type("Layer", (_SlowLayer,), {"pages": pages})) as url:
        source = ArcGisAdapter("layer", {"url": f"{url}/FeatureServer/0", "mapping": {"id": "id"}, "page_size": 1,
                                         "deadline_s": 1.0, "retries": 0})
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable, match=r"1-second deadline"):
            source.fetch(Watermark())
    assert time.monotonic() - started < 1.8 and 2 <= len(pages) <= 5, pages


def test_sync_of_a_trickling_source_fails_in_one_line_at_its_deadline(
    cli: Cli, tmp_path: Path, trickle: tuple[str, type[_Trickle]]
) -> None:
    url, handler = trickle
    handler.interval = 0.1
    config = tmp_path / "exchange.toml"
    config.write_text(f'[[sources]]\nname = "slow"\nurl = "{url}/feed"\ndeadline_s = 0.5\nread_timeout_s = 5\n')
    run = cli("-c", str(config), "sync")
    assert run.code == 1, run
    assert run.err.splitlines()[-1] == (f"error: slow: cannot read {url}/feed: no complete answer within the "
                                        "0.5-second deadline (deadline_s)")
