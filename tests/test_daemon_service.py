"""`exchange run` as city IT runs it: the real daemon in a subprocess, polling a local HTTP server
that replays a real feed snapshot (the Louisville Waze feed) and the city's closures CSV, serving
the feeds itself, telling a webhook, stopping on SIGTERM within its bound while an upstream
trickles, and continuing after a restart without duplicates.

Every wait is on something observable (sync-run rows, HTTP answers, webhook POSTs) under a deadline.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.support.helpers import QuietHandler, http_server
from tests.support.paths import ROOT

#: SIGTERM to exit, while an upstream trickles (the daemon's own bound is 20 s; a fetch gives up at once)
STOP_BOUND_S = 10.0


class Upstream(QuietHandler):
    """The city's upstreams and its webhook receiver, switched by the test."""

    waze_body: bytes = b""
    city_body: bytes = b""
    waze_up = True
    trickling = threading.Event()
    hooks: ClassVar[list[dict[str, Any]]] = []

    def do_GET(self) -> None:
        if self.path == "/waze.json":
            if not Upstream.waze_up:
                self.answer(503, b"down for maintenance")
                return
            self.answer(200, Upstream.waze_body, {"Content-Type": "application/json"})
        elif self.path == "/closures.csv":
            self.answer(200, Upstream.city_body, {"Content-Type": "text/csv"})
        elif self.path == "/trickle.json":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            Upstream.trickling.set()
            try:
                for _ in range(600):  # a byte a second: each read is within any read timeout
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(1)
            except OSError:
                pass
        else:
            self.answer(404, b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        Upstream.hooks.append(json.loads(self.rfile.read(length)))
        self.answer(204, b"")


@dataclass
class Daemon:
    """A running `exchange run`: its process, its stderr lines as they come, the URL it serves."""

    process: subprocess.Popen[bytes]
    lines: list[str] = field(default_factory=list)

    def read_stderr(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def url(self) -> str:
        for line in self.lines:
            if found := re.search(r"serving (http://[0-9.:]+)/feeds/", line):
                return found.group(1)
        return ""

    def stop(self) -> float:
        """SIGTERM; the seconds it took to exit."""
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=STOP_BOUND_S + 20)
        return time.monotonic() - began


def wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def upstream(testdata: Path) -> Iterator[str]:
    Upstream.waze_body = (testdata / "waze_feed" / "louisville_jams_20190220.json").read_bytes()
    Upstream.city_body = (ROOT / "fixtures" / "city" / "closures.csv").read_bytes()
    Upstream.waze_up, Upstream.hooks = True, []
    Upstream.trickling.clear()
    with http_server(Upstream) as url:
        yield url


def write_config(tmp_path: Path, url: str, *, trickle: bool) -> Path:
    config = tmp_path / "exchange.toml"
    slow = (f'[[sources]]\nname = "slow"\nkind = "waze-feed"\nurl = "{url}/trickle.json"\nnamespace = "slow"\n'
            "interval_s = 3600\njitter_s = 0\nread_timeout_s = 30\nretries = 0\n") if trickle else ""
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        '[serve]\nport = 0\ntokens = false\n'
        f'[notify]\nwebhook_url = "{url}/hook"\n'
        '[publish]\ninterval_s = 10\n'
        f'[[sources]]\nname = "waze"\nkind = "waze-feed"\nurl = "{url}/waze.json"\nnamespace = "waze"\n'
        "interval_s = 5\njitter_s = 0\nretries = 0\nrequired = true\nfailing_max_interval_s = 6\n"
        f'[[sources]]\nname = "city"\nkind = "csv"\nurl = "{url}/closures.csv"\nnamespace = "city"\n'
        'geometry = { type = "wkt", column = "wkt" }\nmapping = { id = "id" }\n'
        "interval_s = 5\njitter_s = 0\nretries = 0\n" + slow
    )
    return config


@contextmanager
def daemon(config: Path, *options: str) -> Iterator[Daemon]:
    env = {**os.environ, "EXCHANGE_CONFIG": str(config)}
    env.pop("EXCHANGE_DATA_DIR", None)
    process = subprocess.Popen([sys.executable, "-m", "exchange", *options, "run"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    running = Daemon(process)
    reader = threading.Thread(target=running.read_stderr, daemon=True)
    reader.start()
    try:
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(timeout=5)
        assert process.stderr is not None
        process.stderr.close()


def runs(store: Path) -> list[dict[str, Any]]:
    if not store.exists():
        return []
    engine = create_engine(f"sqlite:///{store}")
    try:
        with engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(text(
                "SELECT id, source, status, new, fetched FROM sync_runs ORDER BY id"))]
    except Exception:  # the daemon is still creating the store
        return []
    finally:
        engine.dispose()


def count(store: Path, sql: str) -> int:
    engine = create_engine(f"sqlite:///{store}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar_one())
    finally:
        engine.dispose()


def ok_runs(store: Path, source: str, after_id: int = 0) -> list[dict[str, Any]]:
    return [r for r in runs(store) if r["source"] == source and r["status"] != "failed" and r["id"] > after_id]


def test_the_daemon_polls_serves_tells_stops_and_restarts(tmp_path: Path, upstream: str) -> None:
    config = write_config(tmp_path, upstream, trickle=True)
    store = tmp_path / "data" / "exchange.db"
    with daemon(config, "--log-format", "json") as first:
        wait(lambda: ok_runs(store, "waze") and ok_runs(store, "city"), 30, "a good run of both sources")
        url = wait(first.url, 10, "the daemon's feed server")
        with httpx.Client(base_url=url, timeout=5) as http:
            feed = wait(lambda: (r := http.get("/feeds/wzdx.geojson")).status_code == 200 and r.json()["features"]
                        and r, 20, "the city's closures served by the daemon itself")
            assert {f["properties"]["core_details"]["data_source_id"] for f in feed.json()["features"]}
            assert http.get("/health").status_code == 200
            wait(lambda: http.get("/health/sources").status_code == 200, 10, "healthy sources")

            Upstream.waze_up = False  # the Waze upstream goes away
            report = wait(lambda: (r := http.get("/health/sources")).status_code == 503 and r.json(), 20,
                          "/health/sources to fail")
            assert report["sources"]["waze"]["state"] == "Offline" and report["sources"]["city"]["state"] == "OK"
            assert http.get("/health").status_code == 200, "a dead upstream must not take the feeds out of service"
            assert http.get("/feeds/cifs.xml").status_code == 200
            hook = wait(lambda: [h for h in Upstream.hooks if h["subject"] == "waze" and h["state"] == "Offline"],
                        15, "the webhook POST for Offline")
            assert hook[0]["kind"] == "source" and "waze" in hook[0]["text"]

            Upstream.waze_up = True  # and comes back (a failing source is polled at most every 6 s here)
            wait(lambda: http.get("/health/sources").status_code == 200, 30, "/health/sources to recover")
            wait(lambda: [h for h in Upstream.hooks if h["subject"] == "waze" and h["state"] == "OK"], 15,
                 "the webhook POST for the recovery")

        wait(Upstream.trickling.is_set, 10, "the trickling upstream to be read")
        assert first.stop() < STOP_BOUND_S, "SIGTERM must not wait on an upstream that trickles"
        assert first.process.returncode == 0, "\n".join(first.lines[-20:])
        assert any("slow: poll given up for the stop, nothing stored" in line for line in first.lines), (
            "the poll the stop cut short is said")
        # and due at once (found in a cold trial: the next start waited its hour-long interval)
        assert count(store, "SELECT next_due_ms FROM schedule WHERE job = 'source:slow'") <= time.time() * 1000
    assert not [line for line in first.lines if "Traceback" in line]
    logged = [json.loads(line) for line in first.lines if line.startswith("{")]
    assert len(logged) == len(first.lines), "one JSON object per line"
    assert {"time", "level", "logger", "message"} <= set(logged[0])
    assert any(entry["logger"] == "exchange.notify" and "waze is Offline" in entry["message"] for entry in logged)

    events_before = count(store, "SELECT count(*) FROM events")
    last_run = max(r["id"] for r in runs(store))
    with daemon(write_config(tmp_path, upstream, trickle=False)) as second:
        again = wait(lambda: ok_runs(store, "waze", last_run), 30, "a Waze run after the restart")
        assert again[0]["new"] == 0, again
        assert count(store, "SELECT count(*) FROM events") == events_before
        assert second.stop() < STOP_BOUND_S and second.process.returncode == 0
