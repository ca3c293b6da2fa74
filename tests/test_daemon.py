"""`exchange run`: polls on schedule, records runs, stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.helpers import alert, feed


def test_daemon_polls_and_stops_on_sigterm(tmp_path: Path) -> None:
    snapshot = tmp_path / "feed.json"
    snapshot.write_bytes(feed(0, alerts=[alert("a1")]))
    config = tmp_path / "exchange.toml"
    config.write_text(
        f'[[sources]]\nname = "area"\nurl = "{snapshot}"\ninterval_s = 5\njitter_s = 0\n'
        f'[[sources]]\nname = "dead"\nurl = "{tmp_path / "missing.json"}"\ninterval_s = 5\njitter_s = 0\n'
    )
    env = {**os.environ, "EXCHANGE_DATA_DIR": str(tmp_path / "data"), "EXCHANGE_CONFIG": str(config)}
    command = [sys.executable, "-m", "exchange"]
    with subprocess.Popen([*command, "run", "--port", "0"], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as daemon:
        try:
            runs: list[dict[str, object]] = []
            deadline = time.monotonic() + 45  # a loaded machine starts Python slowly
            while time.monotonic() < deadline:
                time.sleep(0.5)
                listing = subprocess.run([*command, "inspect", "runs", "--format", "json"], env=env,
                                         capture_output=True, text=True, check=False)
                runs = json.loads(listing.stdout) if listing.returncode == 0 and listing.stdout else []
                if {run["source"] for run in runs} == {"area", "dead"}:
                    break
            if daemon.poll() is not None:
                _, err = daemon.communicate(timeout=5)
                raise AssertionError(f"the daemon exited {daemon.returncode}: {err.decode(errors='replace')}")
            assert {run["source"]: run["status"] for run in runs} == {"area": "ok", "dead": "failed"}, (
                runs, listing.stderr)
            assert daemon.poll() is None, "a failing source must not kill the daemon"
            # a SIGHUP (a reload, to many daemons) is said to change nothing, and the daemon runs on
            daemon.send_signal(signal.SIGHUP)
            time.sleep(1.0)
            assert daemon.poll() is None, "SIGHUP ended the daemon (its default action)"
        finally:
            daemon.send_signal(signal.SIGTERM)
            _, err = daemon.communicate(timeout=20)
    assert daemon.returncode == 0, err
    assert b"Traceback" not in err
    assert b"SIGHUP: the configuration is read once, at start" in err


def test_the_daemon_dispatches_and_watches() -> None:
    from exchange.config import Config
    from exchange.daemon import DISPATCH_EVERY_S, build_scheduler

    config = Config.model_validate({"sources": [{"name": "waze", "url": "x.json"}]})
    scheduler = build_scheduler(config, engine=None)  # type: ignore[arg-type]
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"dispatch", "watch"}
    assert jobs["dispatch"].trigger.interval.total_seconds() == DISPATCH_EVERY_S
    assert jobs["dispatch"].max_instances == 1 and jobs["dispatch"].coalesce


def test_a_sigterm_while_the_server_starts_is_a_clean_stop(tmp_path: Path) -> None:
    """CI finding: polls begin before uvicorn installs its signal handlers; a SIGTERM in between
    killed the daemon (exit -15) instead of stopping it. Here SIGTERM comes as soon as the daemon
    says it is polling, before the server has started, several times over."""
    snapshot = tmp_path / "feed.json"
    snapshot.write_bytes(feed(0, alerts=[alert("a1")]))
    config = tmp_path / "exchange.toml"
    config.write_text(f'[[sources]]\nname = "area"\nurl = "{snapshot}"\ninterval_s = 5\njitter_s = 0\n')
    env = {**os.environ, "EXCHANGE_DATA_DIR": str(tmp_path / "data"), "EXCHANGE_CONFIG": str(config)}
    for _ in range(3):
        with subprocess.Popen([sys.executable, "-m", "exchange", "run", "--port", "0"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as daemon:
            assert daemon.stderr is not None
            seen = b""
            while b"exchange.daemon: polling" not in seen:
                line = daemon.stderr.readline()
                assert line, seen
                seen += line
            daemon.send_signal(signal.SIGTERM)
            rest = daemon.stderr.read()
            assert daemon.wait(timeout=60) == 0, seen + rest
