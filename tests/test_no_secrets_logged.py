"""No secret in any log line (#9): source tokens in a query string, in a URL path and in the ArcGIS
query never reach a log record, at DEBUG or INFO, from ``exchange sync``, the daemon in-process
(an embedding program's logging set-up) and ``exchange run`` as a process.

Every record of every logger is captured by a handler added AFTER the application set up its
logging, placed before the application's own handler (so no filter of that handler has rewritten
the record yet), and by pytest's caplog; the process's stderr is read as well. The tokens carry
characters a URL encodes, and each captured text is searched for every encoding of them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

import pytest

from tests.support.helpers import BASE_MS, QuietHandler, Run, alert, feed, http_server

#: one token per way a token reaches a URL; each holds characters a URL encodes
TOKENS = {
    "WAZE_QUERY_TOKEN": "wq-Qu3ry/s3cr3t+x y=z",  # ?token={token} (httpx encodes the query)
    "WAZE_PATH_TOKEN": "wp-P4th s3cr3t-é",  # .../waze-feeds/{token} (percent-encoded in the path)
    "ARCGIS_TOKEN": "ag-Arc+GIS/s3cr3t=42",  # &token= added by the ArcGIS source (urlencode: quote_plus)
}
SOURCES = ("waze-query", "waze-path", "waze-down", "arcgis", "arcgis-refused")

CONFIG = """
timezone = "America/Denver"

[[sources]]
name = "waze-query"
url = "{base}/feed?format=1&token={{token}}"
token_env = "WAZE_QUERY_TOKEN"
interval_s = 3600
jitter_s = 0

[[sources]]
name = "waze-path"
url = "{base}/partnerhub-api/partners/12345/waze-feeds/{{token}}?format=1"
token_env = "WAZE_PATH_TOKEN"
interval_s = 3600
jitter_s = 0

# answers 503: retried, then a failed run whose message names the (redacted) URL
[[sources]]
name = "waze-down"
url = "{base}/down?token={{token}}"
token_env = "WAZE_QUERY_TOKEN"
interval_s = 3600
jitter_s = 0
retries = 1
backoff_s = 0.01
max_backoff_s = 0.01

[[sources]]
name = "arcgis"
kind = "arcgis"
url = "{base}/arcgis/rest/services/Closures/FeatureServer/0"
token_env = "ARCGIS_TOKEN"
namespace = "gis"
interval_s = 3600
jitter_s = 0
mapping = {{ id = "closure_id", street = "STREET", start = "START_DATE", default_type = "ROAD_CLOSED" }}

# an Esri error body that echoes the token back
[[sources]]
name = "arcgis-refused"
kind = "arcgis"
url = "{base}/arcgis/rest/services/Refused/FeatureServer/0"
token_env = "ARCGIS_TOKEN"
namespace = "gis2"
interval_s = 3600
jitter_s = 0
mapping = {{ id = "closure_id" }}
"""

WAZE_BODY = feed(0, alerts=[alert("a1")])
ARCGIS_BODY = json.dumps({
    "type": "FeatureCollection",
    "features": [{
        "type": "Feature", "id": 1,
        "geometry": {"type": "LineString", "coordinates": [[-104.99, 39.74], [-104.99, 39.741]]},
        "properties": {"closure_id": "A-1", "STREET": "Main Street", "START_DATE": BASE_MS},
    }],
}).encode()


def encodings(token: str) -> set[str]:
    """The forms a token takes in a URL or a log line: raw, percent-encoded, form-encoded."""
    return {token, quote(token), quote(token, safe=""), quote_plus(token), quote(token, safe="/:@!$&'()*+,;="),
            quote(token).lower(), quote(quote(token, safe=""), safe="")}


FORBIDDEN = {form for token in TOKENS.values() for form in encodings(token)}


def leaks(text: str) -> list[str]:
    return sorted(form for form in FORBIDDEN if form in text)


class _Upstream(QuietHandler):
    """The Waze feed, an ArcGIS layer, a 503 and an Esri error, on one local server."""

    targets: list[str]

    def do_GET(self) -> None:
        self.targets.append(self.path)
        path = urlsplit(self.path).path
        status, body = 200, WAZE_BODY
        if path == "/down":
            status, body = 503, b"down"
        elif path.endswith("/Closures/FeatureServer/0/query"):
            body = ARCGIS_BODY
        elif path.endswith("/Refused/FeatureServer/0/query"):
            token = dict(part.split("=", 1) for part in urlsplit(self.path).query.split("&")).get("token", "")
            message = f"Invalid token {unquote(token.replace('+', ' '))}"
            body = json.dumps({"error": {"code": 498, "message": message, "details": [f"token={token}"]}}).encode()
        self.answer(status, body)


@pytest.fixture
def upstream() -> Iterator[tuple[str, list[str]]]:
    targets: list[str] = []
    with http_server(type("Upstream", (_Upstream,), {"targets": targets})) as base:
        yield base, targets


@pytest.fixture
def config_path(tmp_path: Path, upstream: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch,
                data_dir: Path) -> Path:
    for name, value in TOKENS.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "exchange.toml"
    path.write_text(CONFIG.format(base=upstream[0]), encoding="utf-8")
    return path


def check_targets(targets: list[str]) -> None:
    """The tokens did travel, in an encoding ``encodings`` knows (else the search below would be blind)."""
    for name, token in TOKENS.items():
        assert any(form in target for target in targets for form in encodings(token)), (name, targets)
    paths = {urlsplit(target).path.split("/waze-feeds/")[0] for target in targets}
    assert {"/feed", "/partnerhub-api/partners/12345", "/down", "/arcgis/rest/services/Closures/FeatureServer/0/query",
            "/arcgis/rest/services/Refused/FeatureServer/0/query"} <= paths, paths


class Capture(logging.Handler):
    """Every record of every logger, formatted with its traceback and stack, as a handler added
    after the application's logging set-up sees it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []
        self.records: list[logging.LogRecord] = []
        self._lock_lines = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        with self._lock_lines:
            self.records.append(record)
            self.lines.append(line)

    @property
    def text(self) -> str:
        with self._lock_lines:
            return "\n".join(self.lines)


def add_foreign_handlers(capture: Capture, caplog: pytest.LogCaptureFixture) -> None:
    """The capture first on the root (before the application's handler), then caplog's handler."""
    root = logging.getLogger()
    root.handlers.insert(0, capture)
    caplog.handler.setLevel(logging.DEBUG)
    root.addHandler(caplog.handler)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The root's handlers and level, and the levels the CLI's set-up gives the named loggers."""
    from exchange.logs import OWN_LOGGERS, THIRD_PARTY_LOGGERS

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    named = {name: logging.getLogger(name).level for name in (*OWN_LOGGERS, *THIRD_PARTY_LOGGERS)}
    for name in named:  # as an embedding program finds them: no level of a CLI run before this test
        logging.getLogger(name).setLevel(logging.NOTSET)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, before in named.items():
        logging.getLogger(name).setLevel(before)


def assert_clean(capture: Capture, caplog: pytest.LogCaptureFixture, *texts: str, empty_ok: bool = False) -> None:
    assert capture.records or empty_ok, "nothing was captured"
    for text in (capture.text, caplog.text, *texts):
        assert leaks(text) == [], text
    for record in capture.records:
        assert leaks(record.getMessage()) == [] and leaks(repr(record.args)) == [], record
        assert record.levelno >= logging.DEBUG


# --------------------------------------------------------------------------- exchange sync, in-process


@pytest.mark.parametrize(("verbose", "log_format"), [(2, "text"), (1, "json"), (0, "text")],
                         ids=["debug", "verbose-json", "info"])
def test_sync_logs_no_token(verbose: int, log_format: str, config_path: Path, upstream: tuple[str, list[str]],
                            cli: Callable[..., Run], caplog: pytest.LogCaptureFixture,
                            monkeypatch: pytest.MonkeyPatch, restore_logging: None) -> None:
    from exchange.cli import context

    capture = Capture()
    original = context.setup_logging

    def setup_then_capture(level: str, verbosity: int, **options: Any) -> None:
        original(level, verbosity, **options)
        add_foreign_handlers(capture, caplog)

    monkeypatch.setattr(context, "setup_logging", setup_then_capture)
    run = cli("--config", str(config_path), "--log-format", log_format, *(["-v"] * verbose), "sync")
    assert run.code == 1, run  # waze-down and arcgis-refused fail; the others are synced
    check_targets(upstream[1])
    # at the default level a sync logs nothing: its summary and errors are the command's own output
    assert_clean(capture, caplog, run.out, run.err, empty_ok=not verbose)
    requests = [line for line in capture.lines if line.startswith("INFO httpx: HTTP Request: GET")]
    # httpx's line per request is chatter: only with -v (5 sources, one retry of the 503)
    assert len(requests) == (6 if verbose else 0), requests
    assert all("***" in line for line in requests), requests
    assert "error: arcgis-refused:" in run.err and "Invalid token ***" in run.err, run.err
    assert any(line.startswith("DEBUG httpcore") for line in capture.lines) is (verbose > 1)


# --------------------------------------------------------------------------- the daemon, in-process


@pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO], ids=["debug", "info"])
def test_the_daemon_logs_no_token(level: int, config_path: Path, upstream: tuple[str, list[str]],
                                  caplog: pytest.LogCaptureFixture, tmp_path: Path, restore_logging: None) -> None:
    """An embedding program's own logging set-up: the daemon installs the filter on it."""
    import io

    from exchange.config_file import load_config
    from exchange.daemon import build_scheduler
    from exchange.db import open_store

    stream = io.StringIO()
    logging.basicConfig(level=level, stream=stream, format="%(levelname)s %(name)s: %(message)s", force=True)
    engine = open_store(f"sqlite:///{tmp_path / 'daemon.db'}", auto_upgrade=True)
    capture = Capture()
    try:
        scheduler = build_scheduler(load_config(config_path), engine)
        add_foreign_handlers(capture, caplog)
        thread = threading.Thread(target=scheduler.start, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(
            any(line.startswith(f"{kind} exchange.daemon: {name}: ") for line in capture.lines
                for kind in ("INFO", "ERROR"))
            for name in SOURCES
        ):
            time.sleep(0.05)
        scheduler.shutdown(wait=True)
        thread.join(10)
    finally:
        engine.dispose()
    check_targets(upstream[1])
    assert_clean(capture, caplog, stream.getvalue())
    assert 'Running job "dispatch' in capture.text  # apscheduler's records are in the capture
    for name in SOURCES:
        assert f"exchange.daemon: {name}: " in stream.getvalue(), stream.getvalue()
    assert "INFO httpx: HTTP Request: GET" in stream.getvalue()


# --------------------------------------------------------------------------- exchange run, a process


def test_exchange_run_logs_no_token(config_path: Path, upstream: tuple[str, list[str]], tmp_path: Path) -> None:
    """``exchange run`` at DEBUG and at INFO side by side, stopped with SIGTERM: stderr holds no token."""
    env = {**os.environ, "EXCHANGE_CONFIG": str(config_path)}
    daemons: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    for level in ("DEBUG", "INFO"):
        err = tmp_path / f"run-{level}.err"
        with err.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "exchange", "run", "--no-serve"], stdout=subprocess.DEVNULL, stderr=sink,
                env={**env, "EXCHANGE_LOG_LEVEL": level, "EXCHANGE_DATA_DIR": str(tmp_path / level)},
            )
        daemons[level] = process, err
    texts: dict[str, str] = {}
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            texts = {level: err.read_text(encoding="utf-8", errors="replace") for level, (_, err) in daemons.items()}
            if all(f"exchange.daemon: {name}: " in text for text in texts.values() for name in SOURCES):
                break
            time.sleep(0.1)
    finally:
        for process, _ in daemons.values():
            process.send_signal(signal.SIGTERM)
        for process, _ in daemons.values():
            process.wait(timeout=20)
    texts = {level: err.read_text(encoding="utf-8", errors="replace") for level, (_, err) in daemons.items()}
    check_targets(upstream[1])
    for level, text in texts.items():
        process = daemons[level][0]
        assert process.returncode == 0, text
        assert all(f"exchange.daemon: {name}: " in text for name in SOURCES), text
        assert leaks(text) == [], text
        # the libraries' chatter only when asked for (log_level DEBUG shows everything)
        assert ("INFO httpx: HTTP Request: GET" in text) is (level == "DEBUG"), text
        assert ("DEBUG apscheduler" in text) is (level == "DEBUG"), text
        assert ("Running job" in text) is (level == "DEBUG"), text


# --------------------------------------------------------------------------- the filter itself


def test_the_filter_masks_every_encoding_and_keeps_a_clean_record(restore_logging: None) -> None:
    from exchange.redaction import redact, redact_record, register_secret, register_secret_env

    secret = "unit-s3cr3t/é+ x"
    register_secret(secret)
    os.environ["EXCHANGE_TEST_REDACTION_TOKEN"] = "env-s3cr3t-0123"
    try:
        register_secret_env("EXCHANGE_TEST_REDACTION_TOKEN")
        for form in (*encodings(secret), quote(secret).replace("%C3%A9", "%c3%a9"), "unit-s3cr3t%2F\u00e9+%20x",
                     "env-s3cr3t-0123", quote(quote(secret, safe=""), safe="")):
            assert redact(f"GET http://h/p/{form}?a=1") == "GET http://h/p/***?a=1", form
        assert redact("/feeds/cifs.xml?a=1&token=partner-token&b=2") == "/feeds/cifs.xml?a=1&token=***&b=2"
        assert redact("unit-s3cr3t only a prefix") == "unit-s3cr3t only a prefix"

        def record(msg: Any, *args: Any, exc: BaseException | None = None) -> logging.LogRecord:
            exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
            return logging.LogRecord("httpx", logging.INFO, __file__, 1, msg, args or None, exc_info)

        clean = record('HTTP Request: %s %s "%s %d %s"', "GET", "http://h/feed", "HTTP/1.1", 200, "OK")
        before = dict(clean.__dict__)
        redact_record(clean)
        assert clean.__dict__ == before, "a record without a secret is left as it is"

        access = record('%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", f"/feed?token={quote(secret)}", "1.1", 200)
        redact_record(access)
        assert isinstance(access.args, tuple) and len(access.args) == 5, "the access formatter unpacks five args"
        assert access.getMessage() == '127.0.0.1:1 - "GET /feed?token=*** HTTP/1.1" 200'

        nested = record("seen %r", {"url": f"http://h/{secret}"})
        redact_record(nested)
        assert nested.getMessage() == "seen {'url': 'http://h/***'}"

        broken = record("two %s %s", secret)  # logging would print msg and args on its error path
        redact_record(broken)
        assert leaks(str(broken.msg) + repr(broken.args)) == [] and "***" in str(broken.msg)

        try:
            raise RuntimeError(f"cannot reach http://h/{secret}")
        except RuntimeError as error:
            failed = record("poll failed", exc=error)
        redact_record(failed)
        assert failed.exc_info is None and failed.exc_text is not None
        assert "cannot reach http://h/***" in failed.exc_text and secret not in failed.exc_text
        assert "cannot reach http://h/***" in logging.Formatter().format(failed)
    finally:
        del os.environ["EXCHANGE_TEST_REDACTION_TOKEN"]


def test_a_short_secret_is_masked_where_it_stands_alone_not_inside_words(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test token ``x`` masked inside every word made the daemon's log read "ne***t poll in 60s"
    (found in a cold trial); standing alone it is still masked."""
    from exchange import redaction
    from exchange.redaction import redact, register_secret

    monkeypatch.setattr(redaction, "_registry", redaction._Registry())  # these two stay out of other tests

    register_secret("x")
    register_secret("pw-1")
    assert redact("next poll in 60s for source taxi") == "next poll in 60s for source taxi"
    assert redact("GET /feed?a=1 Bearer x") == "GET /feed?a=1 Bearer ***"
    assert redact("http://h/p/x?k=pw-1&n=pw-12") == "http://h/p/***?k=***&n=pw-12"


def test_a_child_logger_is_masked_by_the_handler(restore_logging: None) -> None:
    """A filter on a logger does not see its children's records; the one on the handler does."""
    import io

    from exchange.cli.context import setup_logging
    from exchange.logs import installed_handler
    from exchange.redaction import register_secret

    register_secret("child-s3cr3t-9876")
    stream = io.StringIO()
    setup_logging("DEBUG", 0)
    handler = installed_handler()
    assert handler is not None
    handler.setStream(stream)
    for name in ("httpcore.http11", "apscheduler.executors.default", "some.library"):
        logging.getLogger(name).info("GET /p/%s", "child-s3cr3t-9876")
    assert stream.getvalue().count("GET /p/***") == 3 and "child-s3cr3t" not in stream.getvalue()


# ------------------------------------------------------------------ partners and operators on the daemon's server


def test_the_daemon_logs_no_partner_or_operator_token(config_path: Path, upstream: tuple[str, list[str]],
                                                      tmp_path: Path) -> None:
    """``exchange run`` at DEBUG with the access log: partner and operator tokens in every form the
    server accepts (Bearer, Basic, X-Partner-Token, ?token=, the percent-encoded ?%74oken= that was
    logged in clear (issue 17), a misspelt ?t0ken=, the sign-in form and its cookie), refused ones
    too: none in stderr."""
    import httpx

    env = {**os.environ, "EXCHANGE_CONFIG": str(config_path), "EXCHANGE_DATA_DIR": str(tmp_path / "data")}
    minted = {kind: subprocess.run([sys.executable, "-m", "exchange", kind, "add", f"{kind}-1"], env=env,
                                   capture_output=True, text=True, check=True).stdout.strip()
              for kind in ("partner", "operator")}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    err = tmp_path / "run.err"
    with err.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "exchange", "-vv", "run", "--port", str(port), "--tokens", "--access-log"],
            stdout=subprocess.DEVNULL, stderr=sink, env={**env, "EXCHANGE_LOG_LEVEL": "DEBUG"},
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/health", timeout=1).status_code in (200, 503):
                    break
            time.sleep(0.1)
        partner, operator = minted["partner"], minted["operator"]
        with httpx.Client(base_url=base, timeout=5) as http:
            for token in (partner, operator, "wrong-" + partner):
                http.get("/feeds/cifs.xml", headers={"Authorization": f"Bearer {token}"})
                http.get("/feeds/cifs.xml", auth=("x", token))
                http.get("/feeds/cifs.xml", headers={"X-Partner-Token": token})
                http.get(f"/feeds/cifs.xml?token={quote(token, safe='')}")
                http.get(f"/feeds/cifs.xml?%74oken={quote(token, safe='')}&TO%4BEN={quote(token, safe='')}")
                # a misspelt name (answered 401) still carries the token, as does one with no name, one
                # quoted, and one cut short by a copy and paste
                http.get(f"/feeds/cifs.xml?t0ken={quote(token, safe='')}&x={quote(token, safe='')}")
                http.get(f"/feeds/cifs.xml?{quote(token, safe='')}")
                http.get(f"/feeds/cifs.xml?t=%22{quote(token, safe='')}%22")
                http.get(f"/feeds/cifs.xml?t0ken={quote(token[:30], safe='')}")
                # and in the path, however it is wrapped
                for path in (f"/feeds/cifs.xml;token={token}", f"/feeds/{token}.xml", f'/feeds/"{token}"',
                             f"/feeds/{token[:30]}", f"/feeds/cifs.xml,{token}"):
                    http.get(quote(path, safe="/"))
                http.get("/api/events", headers={"Authorization": f"Bearer {token}"})
                http.get(f"/map?token={quote(token, safe='')}")
                http.post("/login", data={"token": token, "next": "/map"})
                http.get("/map", headers={"Cookie": f"exchange_operator={token}"})
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    text = err.read_text(encoding="utf-8", errors="replace")
    assert process.returncode == 0, text
    assert "/feeds/cifs.xml?%74oken=***&TO%4BEN=***" in text, "the percent-encoded names are masked"
    assert "/feeds/cifs.xml" in text and "/api/events" in text, "the access log was on"
    forms = {form for token in (minted["partner"], minted["operator"]) for form in encodings(token)}
    forms |= {token[:30] for token in (minted["partner"], minted["operator"])}
    assert sorted(form for form in forms if form in text) == [], text
    # the same run polled the sources with their tokens in the query and the path, and failed some
    assert all(f"exchange.daemon: {name}: " in text for name in SOURCES), text
    check_targets(upstream[1])
    assert leaks(text) == [], text
