"""The daemon's first dispatch publishes, due or not: what was committed while it was down (a crash
mid-publish, a CLI change) goes out at once, and a fresh store's feeds are not first published empty
while its city sources are being read."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from adapters import build_source
from exchange.config import Config
from exchange.cycle import sync_then_publish
from exchange.daemon import PRUNE_EVERY_MS, PRUNE_JOB, PUBLISH_JOB, Daemon
from exchange.db import open_store
from exchange.notify import Watcher
from exchange.runtime import now_ms
from exchange.schedule import claim_due, register
from exchange.schema import notifications, publications, publish_runs, schedule, sync_runs
from exchange.sync import sync_source
from tests.support.helpers import QuietHandler, http_server

HEADER = "id,type,subtype,street,direction,start,description,wkt\n"
ROWS = [
    'demo-1,ROAD_CLOSED,ROAD_CLOSED_EVENT,9th Street,BOTH_DIRECTIONS,2026-03-02T15:00:00Z,"Paving",'
    '"LINESTRING (-122.299509 37.808933, -122.300788 37.809578, -122.301448 37.809911)"\n',
    'demo-2,ROAD_CLOSED,ROAD_CLOSED_EVENT,Campbell Street,BOTH_DIRECTIONS,2026-03-02T15:00:00Z,"Fair",'
    '"LINESTRING (-122.299297 37.806325, -122.298941 37.807360)"\n',
]


def _config(url: str, data_dir: Path) -> Config:
    return Config.model_validate({
        "data_dir": str(data_dir),
        "sources": [{"name": "city", "kind": "csv", "url": url, "namespace": "city", "interval_s": 300,
                     "geometry": {"type": "wkt", "column": "wkt"}, "mapping": {"id": "id"}}],
    })


def _runs(engine: Engine) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        return [(row.status, row.events) for row in conn.execute(select(publish_runs).order_by(publish_runs.c.id))]


def _first_dispatch(config: Config, engine: Engine) -> None:
    daemon = Daemon(config, engine)
    try:
        daemon.dispatch()
    finally:
        daemon.workers.shutdown(wait=True)


@pytest.fixture
def slow_city(tmp_path: Path) -> Iterator[str]:
    """The city's CSV over HTTP, answered after 1.5 s (a slow upstream, as city IT has them)."""
    body = (HEADER + ROWS[0] + ROWS[1]).encode()

    class Slow(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(1.5)
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/closures.csv"
    finally:
        server.shutdown()
        server.server_close()


def test_a_fresh_store_is_not_first_published_empty(tmp_path: Path, slow_city: str) -> None:
    config = _config(slow_city, tmp_path / "data")
    engine = open_store(config.database_url)
    try:
        _first_dispatch(config, engine)
        runs = _runs(engine)
    finally:
        engine.dispose()
    published = [events for status, events in runs if status == "published"]
    assert published and published[0] == 2, runs  # the clock waited for the city's first poll


def test_a_change_committed_while_the_daemon_was_down_is_published_at_start(tmp_path: Path) -> None:
    rows = tmp_path / "closures.csv"
    rows.write_text(HEADER + ROWS[0], encoding="utf-8")
    config = _config(str(rows), tmp_path / "data")
    source_config = config.sources[0]
    engine = open_store(config.database_url)
    try:
        assert sync_then_publish(engine, config, source_config).published is not None
        # the second closure is stored but never published (the daemon was killed mid-publish) ...
        rows.write_text(HEADER + ROWS[0] + ROWS[1], encoding="utf-8")
        assert sync_source(engine, build_source(source_config, zone=config.zone, http=config.http),
                           config.lifecycle).new == 1
        # ... and nothing is due when it starts again: the last instance ran every job just now
        jobs = {f"source:{source_config.name}": 300_000, PUBLISH_JOB: 300_000, PRUNE_JOB: PRUNE_EVERY_MS}
        register(engine, jobs)
        assert set(claim_due(engine, list(jobs), "before:1", {})) == set(jobs)
        _first_dispatch(config, engine)
        runs = _runs(engine)
    finally:
        engine.dispose()
    assert runs[-1] == ("published", 2), runs


def test_a_source_added_to_the_config_changes_no_feed_until_it_brings_an_event(tmp_path: Path) -> None:
    """Found in a cold trial: a source added to the config whose rows were all over when stored made a new
    publication (every ETag changed, partners downloaded all again) though the feeds said the same."""
    rows, past = tmp_path / "closures.csv", tmp_path / "past.csv"
    rows.write_text(HEADER + ROWS[0], encoding="utf-8")
    past.write_text("id,type,subtype,street,direction,start,end,description,wkt\n"
                    'fair-2019,ROAD_CLOSED,ROAD_CLOSED_EVENT,Campbell Street,BOTH_DIRECTIONS,2019-03-02T15:00:00Z,'
                    '2019-03-03T15:00:00Z,"Fair","LINESTRING (-122.299297 37.806325, -122.298941 37.807360)"\n',
                    encoding="utf-8")
    config = _config(str(rows), tmp_path / "data")
    engine = open_store(config.database_url)
    try:
        assert sync_then_publish(engine, config, config.sources[0]).published is not None
        grown = Config.model_validate({**config.model_dump(mode="json"), "sources": [
            *config.model_dump(mode="json")["sources"],
            {"name": "archive", "kind": "csv", "url": str(past), "namespace": "archive",
             "geometry": {"type": "wkt", "column": "wkt"}, "mapping": {"id": "id"}}]})
        cycle = sync_then_publish(engine, grown, grown.sources[1])
        assert cycle.sync.new == 1, cycle.sync
        # over before it was read: stored for the record, never published, and the sync says so
        assert "1 of the new already over when read: stored, never published" in cycle.sync.summary()
        assert cycle.published is not None and cycle.published.status == "unchanged", cycle.published.summary()
    finally:
        engine.dispose()


def test_a_poll_claimed_when_the_stop_comes_is_due_again(tmp_path: Path) -> None:
    """Found in a review: a poll claimed just before the stop, that never started, waited its whole
    interval after the next start (the claim had set its next due time)."""
    from exchange.schema import schedule

    config = _config("http://127.0.0.1:9/closures.csv", tmp_path)
    engine = open_store(config.database_url)
    register(engine, {"source:city": 300_000})
    assert claim_due(engine, ["source:city"], "me", {"source:city": 0}) == ["source:city"]
    daemon = Daemon(config, engine)
    try:
        daemon._stopping.set()  # as a stop does (not request_stop: that is for the whole process)
        daemon._run_job("source:city")
    finally:
        daemon.workers.shutdown(wait=True)
    with engine.connect() as conn:
        due = conn.execute(select(schedule.c.next_due_ms).where(schedule.c.job == "source:city")).scalar_one()
    assert due <= time.time() * 1000


def test_a_restart_after_a_night_down_does_not_page_stale_then_ok(tmp_path: Path, slow_city: str) -> None:
    """Last polled and published two hours ago, every source and feed reads Stale in the store until the
    daemon's first runs renew them. The quick source's poll ends first and the watch follows it: it used to
    tell "source city is Stale" (and the feeds), and "OK" once the slow poll was in, paging city IT twice
    for a restart."""
    rows = tmp_path / "quick.csv"
    rows.write_text(HEADER + ROWS[0], encoding="utf-8")
    config = Config.model_validate({
        "data_dir": str(tmp_path / "data"),
        "sources": [{"name": name, "kind": "csv", "url": url, "namespace": name, "interval_s": 300,
                     "geometry": {"type": "wkt", "column": "wkt"}, "mapping": {"id": "id"}}
                    for name, url in (("quick", str(rows)), ("city", slow_city))],
    })
    engine = open_store(config.database_url)
    try:
        _first_dispatch(config, engine)
        night = 2 * 3_600_000
        with engine.begin() as conn:
            conn.execute(update(sync_runs).values(started_ms=sync_runs.c.started_ms - night,
                                                  finished_ms=sync_runs.c.finished_ms - night))
            conn.execute(update(publications).values(published_ms=publications.c.published_ms - night))
            conn.execute(update(schedule).values(next_due_ms=schedule.c.next_due_ms - night))
        assert Watcher(engine, config).notices(now_ms()), "the store says Stale before the restart"
        _first_dispatch(config, engine)
        with engine.connect() as conn:
            told = conn.execute(select(notifications.c.text)).scalars().all()
        assert Watcher(engine, config).notices(now_ms()) == []
    finally:
        engine.dispose()
    assert told == [], told


def test_a_change_during_a_watch_is_watched_again(tmp_path: Path) -> None:
    """A poll that ends while a watch is reading the store asks for a watch: the one under way runs once more
    (it read the store before the poll's change), instead of the change waiting for the next minute."""
    rows = tmp_path / "closures.csv"
    rows.write_text(HEADER + ROWS[0], encoding="utf-8")
    daemon = Daemon(_config(str(rows), tmp_path / "data"), open_store(_config(str(rows), tmp_path / "data")
                                                                       .database_url))
    reading, go_on, calls = threading.Event(), threading.Event(), []

    def check(now: int, settling: object = ()) -> list[object]:
        calls.append(now)
        if len(calls) == 1:
            reading.set()
            go_on.wait(5)
        return []

    daemon.watcher.check = check  # type: ignore[method-assign]
    try:
        first = threading.Thread(target=daemon.watch)
        first.start()
        assert reading.wait(5)
        daemon.watch()  # the lock is taken: returns at once, and asks for one more
        go_on.set()
        first.join(5)
    finally:
        daemon.workers.shutdown(wait=True)
        daemon.engine.dispose()
    assert len(calls) == 2, calls


def test_a_retry_after_longer_than_the_interval_postpones_the_next_poll(tmp_path: Path) -> None:
    """Found in a cold trial: a 429 with ``Retry-After: 300`` from an upstream polled every 20 s got the next
    request 60 s later: the retries honoured it within the fetch, the schedule did not."""

    class TooMany(QuietHandler):
        def do_GET(self) -> None:
            self.answer(429, b"slow down", {"Retry-After": "300"})

    with http_server(TooMany) as url:
        config = Config.model_validate({
            "data_dir": str(tmp_path / "data"),
            "sources": [{"name": "city", "kind": "csv", "url": f"{url}/c.csv", "namespace": "city", "interval_s": 20,
                         "retries": 0, "geometry": {"type": "wkt", "column": "wkt"}, "mapping": {"id": "id"}}],
        })
        engine = open_store(config.database_url)
        daemon = Daemon(config, engine)
        try:
            register(engine, {"source:city": 20_000})
            before = now_ms()
            daemon.poll(config.sources[0])
            with engine.connect() as conn:
                due = conn.execute(select(schedule.c.next_due_ms).where(schedule.c.job == "source:city")).scalar_one()
        finally:
            daemon.workers.shutdown(wait=True)
            engine.dispose()
    assert due >= before + 300_000, (due - before) / 1000
