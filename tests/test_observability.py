"""Issue 13, observability: ``/metrics`` of the real feed server on a real store, and log lines
with a time, a level and a logger, as text or JSON, without the libraries' chatter."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, insert

from exchange.db import writing
from exchange.schema import sync_runs
from tests.support.helpers import Run, alert, feed
from tests.support.paths import ROOT
from tests.support.serving import PLAIN, bodies, publish, running

TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> tuple[Samples, str]:
    """Every sample of ``/metrics`` by (name, labels), parsed by prometheus-client's own parser."""
    response = httpx.get(f"{url}/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain"), response
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, response.text


def value(samples: Samples, name: str, default: float | None = None, **labels: str) -> float:
    found = samples.get((name, frozenset(labels.items())))
    if found is None:
        assert default is not None, f"no {name} {labels} in {sorted(k for k in samples if k[0] == name)}"
        return default
    return found


@pytest.fixture
def restore_logging() -> Iterator[None]:
    from exchange.logs import OWN_LOGGERS, THIRD_PARTY_LOGGERS

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    named = {name: logging.getLogger(name).level for name in (*OWN_LOGGERS, *THIRD_PARTY_LOGGERS)}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, before in named.items():
        logging.getLogger(name).setLevel(before)


# --------------------------------------------------------------------------- /metrics


def test_metrics_follow_a_sync_and_name_partners_never_tokens(
        engine: Engine, store_cli: Callable[..., Run], tmp_path: Path) -> None:
    snapshot = tmp_path / "feed.json"
    snapshot.write_bytes(feed(0, alerts=[alert("a1"), alert("a2")]))
    config = tmp_path / "exchange.toml"
    config.write_text(f'[[sources]]\nname = "north.waze"\nurl = "{snapshot}"\n')
    token = store_cli("partner", "add", "acme").out.strip()
    assert token
    publish(engine, bodies(1))
    from exchange.config_file import load_config

    with running(engine, require_token=True, refresh_s=0.05, config=load_config(config)) as url:
        before, _ = scrape(url)
        run = store_cli("--config", str(config), "sync")
        assert run.code == 0, run
        after, text = scrape(url)
        for name in ("exchange_sync_runs_total", "exchange_sync_run_duration_seconds_count"):
            assert value(after, name, source="north.waze", outcome="ok") == \
                value(before, name, 0, source="north.waze", outcome="ok") + 1, name
        assert value(after, "exchange_sync_runs_total", source="north.waze", outcome="failed") == 0
        assert value(after, "exchange_sync_items_total", source="north.waze", change="fetched") == \
            value(before, "exchange_sync_items_total", 0, source="north.waze", change="fetched") + 2
        assert value(after, "exchange_sync_items_total", source="north.waze", change="new") == 2
        last = value(after, "exchange_source_last_success_timestamp_seconds", source="north.waze")
        assert abs(time.time() - last) < 60, last
        assert value(after, "exchange_store_up") == 1
        assert value(after, "exchange_source_state", source="north.waze", state="OK") == 1
        assert value(after, "exchange_source_state", source="north.waze", state="Offline") == 0
        assert value(after, "exchange_feed_state", feed="wzdx.geojson", state="OK") == 1
        assert abs(time.time() - value(after, "exchange_feed_last_published_timestamp_seconds", feed="cifs.xml")) < 60
        for outcome in ("published", "unchanged", "failed", "held"):
            assert value(after, "exchange_feed_generations_total", outcome=outcome) >= 0
        assert value(after, "exchange_events_held_back") == 0

        with httpx.Client(base_url=url, headers=PLAIN) as http:
            assert http.get("/feeds/cifs.xml", headers={"Authorization": f"Bearer {token}"}).status_code == 200
            assert http.get(f"/feeds/cifs.json?token={token}").status_code == 200
            assert http.get("/feeds/cifs.xml", headers={"X-Partner-Token": "not-a-token-4711"}).status_code == 401
            assert http.get("/feeds/cifs.xml").status_code == 401
        scraped, text = scrape(url)
    assert value(scraped, "exchange_feed_requests_total", feed="cifs.xml", status="200", partner="acme") == 1
    assert value(scraped, "exchange_feed_downloads_total", feed="cifs.json", partner="acme") == 1
    assert value(scraped, "exchange_feed_requests_total", feed="cifs.xml", status="401", partner="unknown") == 1
    assert value(scraped, "exchange_feed_requests_total", feed="cifs.xml", status="401", partner="anonymous") == 1
    assert token not in text and "not-a-token-4711" not in text


def test_metrics_stay_right_on_a_long_history(engine: Engine) -> None:
    """Thousands of runs: the first scrape sums them in SQL, the next ones read only the new rows,
    and a run whose row becomes visible after rows of higher ids (an open transaction) is counted."""
    from exchange.metrics import ServerMetrics, Tally

    recent_ms = int(time.time() * 1000) - 60_000  # minutes ago: a run still open then could commit now

    def runs(first_id: int, n: int, status: str = "ok") -> list[dict[str, object]]:
        return [{"id": first_id + i, "source": "waze", "started_ms": recent_ms, "finished_ms": recent_ms + 500,
                 "status": status, "fetched": 10, "new": 1, "updated": 0, "unchanged": 9, "ended": 0, "rejected": 0}
                for i in range(n)]

    with writing(engine) as conn:
        conn.execute(insert(sync_runs), runs(1, 3000))
        conn.execute(insert(sync_runs), runs(3002, 10, "failed"))  # id 3001 is still "open"
    metrics = ServerMetrics(engine)

    def counted() -> tuple[float, float, float]:
        samples = {(s.name, frozenset(s.labels.items())): s.value
                   for family in text_string_to_metric_families(metrics.render().decode()) for s in family.samples}
        return (value(samples, "exchange_sync_runs_total", source="waze", outcome="ok"),
                value(samples, "exchange_sync_runs_total", source="waze", outcome="failed"),
                value(samples, "exchange_sync_items_total", source="waze", change="fetched"))

    started = time.perf_counter()
    assert counted() == (3000, 10, 30_100)
    tally = metrics.store._runs
    assert tally.settled_id == 3011 - Tally.LOOKBACK, "the first read sums all but the newest ids in SQL"
    with writing(engine) as conn:
        conn.execute(insert(sync_runs), runs(3001, 1))  # the open transaction commits
    assert counted() == (3001, 10, 30_110)
    tally.SETTLE_S = 30.0  # every row seen is settled (written over 30 s ago): the next read folds them all
    assert counted() == (3001, 10, 30_110)
    assert tally.settled_id == 3011
    with writing(engine) as conn:
        conn.execute(insert(sync_runs), runs(3012, 5))
    assert counted() == (3006, 10, 30_160)
    assert time.perf_counter() - started < 5


# --------------------------------------------------------------------------- logs


def test_json_log_lines_parse(tmp_path: Path) -> None:
    """``exchange --log-format json serve``: every stderr line that is a log line is one JSON object."""
    from exchange.db import open_store

    env = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
    env["EXCHANGE_DATA_DIR"] = str(tmp_path / "data")
    engine = open_store(f"sqlite:///{tmp_path / 'data' / 'exchange.db'}", auto_upgrade=True)
    publish(engine, bodies(1))
    engine.dispose()
    command = [sys.executable, "-m", "exchange", "--log-format", "json", "serve", "--port", "0", "--no-tokens",
               "--refresh-s", "0.1"]
    with subprocess.Popen(command, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                          cwd=ROOT) as server:
        try:
            assert server.stderr is not None
            lines = []
            for line in server.stderr:
                lines.append(line)
                if line.startswith("serving http://"):
                    break
            assert httpx.get(line.split()[1] + "cifs.xml", headers=PLAIN).status_code == 200
        finally:
            server.send_signal(signal.SIGTERM)
            _, rest = server.communicate(timeout=20)
    assert server.returncode == 0, rest
    logged = [json.loads(line) for line in [*lines, *rest.splitlines(True)] if line.startswith("{")]
    assert any(entry["logger"] == "exchange.server" and entry["message"].startswith("serving cifs.xml")
               for entry in logged), lines
    for entry in logged:
        assert set(entry) >= {"time", "level", "logger", "message"}, entry
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"]), entry
    assert not any(entry["logger"].startswith("uvicorn") and entry["level"] == "INFO" for entry in logged), logged


def test_json_lines_carry_the_masked_traceback(restore_logging: None) -> None:
    from exchange.logs import installed_handler, setup_logging
    from exchange.redaction import register_secret

    register_secret("obs-s3cr3t-2468")
    stream = io.StringIO()
    setup_logging("INFO", 0, log_format="json")
    handler = installed_handler()
    assert handler is not None
    handler.setStream(stream)
    try:
        raise RuntimeError("cannot reach http://h/obs-s3cr3t-2468")
    except RuntimeError:
        logging.getLogger("exchange.test").exception("poll of %s failed", "obs-s3cr3t-2468")
    entry = json.loads(stream.getvalue())
    assert entry["level"] == "ERROR" and entry["logger"] == "exchange.test"
    assert entry["message"] == "poll of *** failed"
    assert "RuntimeError: cannot reach http://h/***" in entry["exc_info"] and "s3cr3t" not in stream.getvalue()


def test_text_lines_have_a_time_and_apscheduler_is_quiet(
        cli: Callable[..., Run], tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None) -> None:
    """The daemon's own lines, each with its time, level and logger; APScheduler's "Running job" and
    "executed successfully" only with -vv (its one-second dispatch job would bury -v's lines)."""
    from exchange.config_file import load_config
    from exchange.daemon import build_scheduler
    from exchange.db import open_store

    snapshot = tmp_path / "feed.json"
    snapshot.write_bytes(feed(0, alerts=[alert("a1")]))
    config = tmp_path / "exchange.toml"
    config.write_text(f'[[sources]]\nname = "area"\nurl = "{snapshot}"\ninterval_s = 3600\njitter_s = 0\n')
    for verbose in (0, 1, 2):
        engine = open_store(f"sqlite:///{tmp_path / f'{verbose}.db'}", auto_upgrade=True)
        # the CLI's set-up, on a real command (it loads the config); then the daemon's scheduler, in-process
        assert cli("--config", str(config), *["-v"] * verbose, "inspect", "sources").code == 0
        capsys.readouterr()
        scheduler = build_scheduler(load_config(config), engine)
        thread = threading.Thread(target=scheduler.start, daemon=True)
        thread.start()
        err = ""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "exchange.daemon: area: ok" not in err:
            time.sleep(0.05)
            err += capsys.readouterr().err
        scheduler.shutdown(wait=True)
        thread.join(10)
        engine.dispose()
        err += capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert any("INFO exchange.daemon: area: ok" in line for line in lines), err
        assert all(TEXT_LINE.match(line) for line in lines), err
        assert ('Running job "' in err) is (verbose == 2), err
        assert ("executed successfully" in err) is (verbose == 2), err


def test_a_closed_stderr_left_behind_is_no_logging_error(restore_logging: None) -> None:
    """Tests (and embedding programs) swap sys.stderr between commands: the handler follows it."""
    from exchange.logs import setup_logging

    first, second = io.StringIO(), io.StringIO()
    saved, sys.stderr = sys.stderr, first
    try:
        setup_logging("INFO", 0)
        logging.getLogger("exchange.test").warning("one")
        first.close()
        sys.stderr = second
        logging.raiseExceptions, raised = True, logging.raiseExceptions
        logging.getLogger("exchange.test").warning("two")
        setup_logging("INFO", 0)  # again, as the next command does
        logging.getLogger("exchange.test").warning("three")
    finally:
        sys.stderr = saved
        logging.raiseExceptions = raised
    assert "Logging error" not in second.getvalue()
    mine = [line.split(": ", 1)[1] for line in second.getvalue().splitlines() if " exchange.test: " in line]
    assert mine == ["two", "three"], second.getvalue()


def test_closures_by_waze_status(cli: Callable[..., Run], data_dir: Path) -> None:
    """Operator closures as the publish step sends them out: counted by their Waze status."""
    from datetime import UTC, datetime, timedelta

    from exchange.db import open_store
    from exchange.metrics import ServerMetrics
    from tests.support.paths import DEMO

    now = datetime.now(UTC)
    for street, polyline, start in (("9th Street", "37.809578 -122.300788 37.810233 -122.302087", -2),
                                    ("9th Street", "37.809578 -122.300788 37.810233 -122.302087", 5)):
        added = cli("--config", str(DEMO), "closure", "add", "--street", street, "--polyline", polyline,
                    "--type", "ROAD_CLOSED", "--subtype", "ROAD_CLOSED_CONSTRUCTION",
                    "--start", (now + timedelta(hours=start)).isoformat(timespec="seconds"),
                    "--end", (now + timedelta(hours=48)).isoformat(timespec="seconds"), "--description", "Works")
        assert added.code == 0, added
    engine = open_store(f"sqlite:///{data_dir / 'exchange.db'}")
    try:
        samples = {(s.name, frozenset(s.labels.items())): s.value for family in
                   text_string_to_metric_families(ServerMetrics(engine).render().decode()) for s in family.samples}
    finally:
        engine.dispose()
    states = {dict(labels)["waze_status"]: count for (name, labels), count in samples.items()
              if name == "exchange_closures"}
    assert states == {"not started": 1, "between its windows": 0, "not published": 0, "not seen yet": 1,
                      "seen in Waze": 0, "traffic flowing": 0}, states
    assert 0 <= value(samples, "exchange_closure_oldest_unseen_seconds") < 60
    assert value(samples, "exchange_closures_late") == 0  # out for less than publish.waze_unseen_after_min
    assert value(samples, "exchange_feed_generations_total", outcome="published") >= 1


def test_every_metric_of_the_example_alert_rules_is_served(engine: Engine, tmp_path: Path) -> None:
    """config/prometheus-alerts.yml names only metrics /metrics serves (a renamed metric fails here)."""
    from exchange.config import Config

    rules = (ROOT / "config" / "prometheus-alerts.yml").read_text()
    named = set(re.findall(r"\bexchange_[a-z_]+\b", rules))
    assert {"exchange_source_state", "exchange_feed_state", "exchange_events_held_back",
            "exchange_closures_late"} <= named
    publish(engine, bodies(1))
    config = Config.model_validate({"sources": [{"name": "waze", "url": str(tmp_path / "x.json")}]})
    with running(engine, require_token=False, refresh_s=0.05, config=config) as url:
        samples, _ = scrape(url)
    served = {name for name, _labels in samples}
    assert named <= served, named - served
