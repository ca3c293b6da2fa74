"""The fault suite (issue 17 item 6): faults injected into real runs against the real store, each
test asserting on what the store holds afterwards AND on what the real feed server (uvicorn,
``exchange.server.create_app``) serves: the bytes and the ETag a partner gets.

Every fault is a real mechanism, not a stand-in for our code: a database trigger that aborts a
write (SQLite ``RAISE(ABORT)``, PostgreSQL ``RAISE EXCEPTION``), a PostgreSQL session that is
read-only or that kills its own connection in the middle of a transaction, an HTTP upstream that
closes the socket half-way through its body, a poison row in a real CSV, and a TCP link to
PostgreSQL that is cut while the server runs. What the suite adds to tests/test_sync.py,
tests/test_publishing.py, tests/test_poison.py and tests/test_server.py (which check the store, or
the served copy, on their own) is the pairing: the fault, then the store, then the wire.

The sync and publish commands run in-process through the CLI (``store_cli``) on a config with one
city CSV source (the demo city's closures); the server runs on its own engine, as a separate
``exchange serve`` would, and refreshes from the store every 50 ms.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree
from sqlalchemy import Engine, select, text

from exchange.db import open_store
from exchange.publications import FEEDS
from exchange.schema import events, publications, publish_runs, revisions, sightings, sync_runs
from tests.support.helpers import QuietHandler, Run, http_server, invoke
from tests.support.serving import PLAIN, running, wait_for

#: the demo city's closures start on 2026-03-02 with no end: all in effect a day later
NOW_MS = 1_772_550_000_000  # 2026-03-03T15:00:00Z
HEADER = "id,type,subtype,street,direction,start,description,wkt"
LINE_A = "LINESTRING (-122.299509 37.808933, -122.300788 37.809578, -122.301448 37.809911)"
LINE_B = "LINESTRING (-122.299297 37.806325, -122.298941 37.807360)"
LINE_C = "LINESTRING (-122.296000 37.810000, -122.297000 37.810500)"


def row(closure_id: str, street: str, description: str, wkt: str = LINE_A) -> str:
    return f'{closure_id},ROAD_CLOSED,ROAD_CLOSED_CONSTRUCTION,{street},BOTH_DIRECTIONS,2026-03-02T15:00:00Z,' \
           f'"{description}","{wkt}"'


#: what the city exported first, and its next export: one closure changed, two added
FIRST = "\n".join([HEADER, row("c-1", "9th Street", "Utility work"), row("c-2", "Campbell Street", "Street fair",
                                                                          LINE_B)]) + "\n"
SECOND = "\n".join([HEADER, row("c-1", "9th Street", "Utility work, now with paving"),
                    row("c-2", "Campbell Street", "Street fair", LINE_B),
                    row("c-3", "Peralta Street", "Crane", LINE_C), row("c-4", "Willow Street", "Gas main", LINE_C)]
                   ) + "\n"


# --------------------------------------------------------------------------- the pieces


@pytest.fixture
def city(tmp_path: Path, store_cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Run]:
    """``exchange --config <one city CSV source> ARGS`` on the test's store, now pinned."""
    monkeypatch.setenv("EXCHANGE_NOW", str(NOW_MS))
    (tmp_path / "closures.csv").write_text(FIRST, encoding="utf-8")
    write_config(tmp_path, str(tmp_path / "closures.csv"))

    def run(*args: str) -> Run:
        return store_cli("--config", str(tmp_path / "exchange.toml"), *args)

    return run


@pytest.fixture
def pg_city(pg_url: str, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
            monkeypatch: pytest.MonkeyPatch) -> Callable[..., Run]:
    """The same on a PostgreSQL store only (for faults SQLite has no counterpart of)."""
    monkeypatch.setenv("EXCHANGE_NOW", str(NOW_MS))
    monkeypatch.setenv("EXCHANGE_DATABASE_URL", pg_url)
    (tmp_path / "closures.csv").write_text(FIRST, encoding="utf-8")
    write_config(tmp_path, str(tmp_path / "closures.csv"))

    def run(*args: str) -> Run:
        return invoke(["--config", str(tmp_path / "exchange.toml"), *args], capsys)

    return run


def write_config(directory: Path, url: str) -> None:
    (directory / "exchange.toml").write_text(
        'timezone = "America/Los_Angeles"\n'
        '[[sources]]\nname = "city"\nkind = "csv"\nnamespace = "city"\n'
        f'url = "{url}"\nretries = 0\n'
        'geometry = { type = "wkt", column = "wkt" }\nmapping = { id = "id" }\n', encoding="utf-8")


def store_state(engine: Engine) -> dict[str, list[Any]]:
    """Everything a sync or a publish may change, except the run logs (which must gain a failure)."""
    with engine.connect() as conn:
        return {
            "events": [tuple(r) for r in conn.execute(select(events).order_by(events.c.id))],
            "revisions": [tuple(r) for r in conn.execute(select(revisions).order_by(revisions.c.id))],
            "sightings": [tuple(r) for r in conn.execute(select(sightings).order_by(sightings.c.event_id))],
            "publications": [tuple(r) for r in conn.execute(select(publications).order_by(publications.c.feed))],
        }


def stored_publications(engine: Engine) -> dict[str, tuple[bytes, str]]:
    with engine.connect() as conn:
        return {r.feed: (bytes(r.body), r.etag) for r in conn.execute(select(publications))}


def ok_runs(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(select(sync_runs.c.id).where(sync_runs.c.status == "ok")).scalars())


def last_run(engine: Engine, table: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(table).order_by(table.c.id.desc()).limit(1)).one()


def wire(http: httpx.Client) -> dict[str, tuple[bytes, str]]:
    """What a partner gets now: feed -> (identity body, ETag), and each ETag revalidates to a 304."""
    got = {}
    for feed in FEEDS:
        response = http.get(f"/feeds/{feed}", headers=PLAIN)
        if feed == "cwz.geojson" and response.status_code in (404, 503):
            continue  # its target is off: the demo's closures are not under CC0
        assert response.status_code == 200, (feed, response.status_code)
        etag = response.headers["etag"]
        again = http.get(f"/feeds/{feed}", headers={**PLAIN, "If-None-Match": etag})
        assert again.status_code == 304 and again.headers["etag"] == etag
        got[feed] = (response.content, etag)
    return got


def descriptions(cifs_xml: bytes) -> dict[str, str]:
    """Incident id -> description in a served CIFS XML document."""
    root = etree.fromstring(cifs_xml)
    return {str(item.get("id")): str(item.findtext("description")) for item in root.iter("incident")}


def install_trigger(engine: Engine, table: str, operation: str, body: str | None = None) -> None:
    """A trigger on ``table`` that aborts the statement (or runs ``body`` on PostgreSQL)."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text(f"CREATE TRIGGER fault BEFORE {operation} ON {table} "
                              "BEGIN SELECT RAISE(ABORT, 'injected fault: the disk says no'); END"))
        else:
            action = body or "RAISE EXCEPTION 'injected fault: the disk says no';"
            conn.execute(text(f"CREATE FUNCTION fault() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {action} "
                              "RETURN NEW; END $$"))
            conn.execute(text(f"CREATE TRIGGER fault BEFORE {operation} ON {table} "
                              "FOR EACH ROW EXECUTE FUNCTION fault()"))


def drop_trigger(engine: Engine, table: str) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER fault"))
        else:
            conn.execute(text(f"DROP TRIGGER fault ON {table}"))
            conn.execute(text("DROP FUNCTION fault()"))


@contextlib.contextmanager
def served(engine: Engine) -> Iterator[httpx.Client]:
    with running(engine, require_token=False, refresh_s=0.05) as url, httpx.Client(base_url=url, timeout=10) as http:
        yield http


def kept_then_republished(engine: Engine, http: httpx.Client, before_wire: dict[str, tuple[bytes, str]],
                          city: Callable[..., Run]) -> None:
    """After a publish failed behind a committed sync: the publications rows and the wire are as
    before; once the trigger is dropped, a publish serves the four closures."""
    assert last_run(engine, sync_runs).status == "ok", "the sync itself is committed before the publish"
    assert stored_publications(engine) == before_wire, "publications rows moved without the rest of the publish"
    time.sleep(0.2)
    assert wire(http) == before_wire
    drop_trigger(engine, "published_events")
    assert city("publish").code == 0
    wait_for(lambda: serves_new(http, before_wire["cifs.xml"][1]), what="the new publication")
    assert len(descriptions(wire(http)["cifs.xml"][0])) == 4


def first_publication(city: Callable[..., Run], engine: Engine, http: httpx.Client) -> dict[str, tuple[bytes, str]]:
    """Sync and publish the city's first export; wait until the server serves it."""
    result = city("sync")
    assert result.code == 0, result
    with engine.connect() as conn:
        etag = conn.execute(select(publications.c.etag).where(publications.c.feed == "cifs.xml")).scalar_one()
    wait_for(lambda: http.get("/feeds/cifs.xml", headers=PLAIN).headers.get("etag") == etag, what="publication 1")
    now = wire(http)
    assert descriptions(now["cifs.xml"][0]) == {"city:city:c-1": "Utility work", "city:city:c-2": "Street fair"}
    return now


def serves_new(http: httpx.Client, old_etag: str) -> bool:
    return http.get("/feeds/cifs.xml", headers=PLAIN).headers.get("etag") not in (None, old_etag)


# --------------------------------------------------------------------------- sync faults


def test_a_sync_failing_half_way_applies_nothing_and_the_feeds_stay(
    engine: Engine, city: Callable[..., Run], tmp_path: Path,
) -> None:
    """Fault: the store refuses the sightings of the new closures (a trigger aborts the INSERT),
    after the sync has already inserted their events and revisions and updated c-1 in the same
    transaction. If the boundary moved (events committed before the sightings, or per item), c-3
    and c-4 would be stored without sightings, c-1's new description would be stored, the failed
    run's changes would go out in the next publication, and the run might be recorded ok."""
    with served(engine) as http:
        before_wire = first_publication(city, engine, http)
        before, ok_before = store_state(engine), ok_runs(engine)
        (tmp_path / "closures.csv").write_text(SECOND, encoding="utf-8")
        install_trigger(engine, "sightings", "INSERT")
        result = city("sync")
        assert result.code == 1 and "injected fault" in result.err, result
        assert store_state(engine) == before, "a half-applied sync"
        assert ok_runs(engine) == ok_before, "no run of the failed attempt is marked ok"
        run = last_run(engine, sync_runs)
        assert run.status == "failed" and "injected fault" in run.message and "\n" not in run.message
        assert city("publish").code == 0
        time.sleep(0.2)  # four refreshes of the server's copy
        assert wire(http) == before_wire, "the feeds changed after a failed sync"

        drop_trigger(engine, "sightings")
        assert city("sync").code == 0  # the same export, now whole: everything at once
        wait_for(lambda: serves_new(http, before_wire["cifs.xml"][1]), what="the new publication")
        assert descriptions(wire(http)["cifs.xml"][0]) == {
            "city:city:c-1": "Utility work, now with paving", "city:city:c-2": "Street fair",
            "city:city:c-3": "Crane", "city:city:c-4": "Gas main"}
        assert last_run(engine, sync_runs).status == "ok"


class CutUpstream(QuietHandler):
    """The city's CSV export over HTTP; ``cut`` sends half of the next export, then closes."""

    body = b""
    cut = False

    def do_GET(self) -> None:
        if not CutUpstream.cut:
            self.answer(200, CutUpstream.body, {"Content-Type": "text/csv"})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(CutUpstream.body)))
        self.end_headers()
        self.wfile.write(CutUpstream.body[: len(CutUpstream.body) // 2])  # ends mid-row
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)


def test_an_upstream_dying_mid_body_is_a_failed_run_that_changes_nothing(
    engine: Engine, city: Callable[..., Run], tmp_path: Path,
) -> None:
    """Fault: the upstream promises the whole export (Content-Length) and closes the connection
    half-way, in the middle of a row. If the sync read what arrived as a payload (the fetch
    boundary moved), the half export would be reconciled: c-3 stored with a cut description and
    c-2, absent from the half, missed once; the next publication would change."""
    CutUpstream.body, CutUpstream.cut = FIRST.encode(), False
    with http_server(CutUpstream) as upstream, served(engine) as http:
        write_config(tmp_path, f"{upstream}/closures.csv")
        before_wire = first_publication(city, engine, http)
        before = store_state(engine)
        CutUpstream.body, CutUpstream.cut = SECOND.encode(), True
        result = city("sync")
        assert result.code == 1, result
        assert store_state(engine) == before
        run = last_run(engine, sync_runs)
        assert run.status == "failed" and run.fetched == 0 and "\n" not in run.message, run
        assert "Traceback" not in result.err
        assert [line for line in result.err.splitlines() if line.startswith("error:")] == [
            f"error: city: cannot read {upstream}/closures.csv: its answer broke off, or was not HTTP "
            "(RemoteProtocolError)"]
        assert city("publish").code == 0
        time.sleep(0.2)
        assert wire(http) == before_wire


def test_a_poison_row_is_rejected_with_its_reason_and_the_good_ones_go_out(
    engine: Engine, city: Callable[..., Run], tmp_path: Path,
) -> None:
    """Fault: one row of the export holds a coordinate of 400 digits (read as inf) between good
    rows. If the item boundary moved to the poll (one bad row failing the whole sync), c-3 and
    c-4 would never be published; if it moved the other way (no per-item check), the poison would
    reach the store and break the rendering of every feed."""
    huge = "1" + "0" * 399
    poison = row("c-poison", "Bad Street", "Inf", f"LINESTRING ({huge} 37.81, -122.297 37.8105)")
    rows = SECOND.splitlines()
    (tmp_path / "closures.csv").write_text("\n".join([*rows[:3], poison, *rows[3:]]) + "\n", encoding="utf-8")
    with served(engine) as http:
        with warnings.catch_warnings():  # GEOS reads the 400-digit number as inf: numpy's warning stays quiet
            warnings.simplefilter("error", RuntimeWarning)
            result = city("sync")
        assert result.code == 0, result
        run = last_run(engine, sync_runs)
        assert run.status == "ok" and run.rejected == 1
        assert [(e["source_id"], e["reason"]) for e in run.item_errors] == [
            ("c-poison", "row 4: polyline point 1: coordinates must be finite numbers")]
        with engine.connect() as conn:
            stored = set(conn.execute(select(events.c.id)).scalars())
        assert stored == {"city:city:c-1", "city:city:c-2", "city:city:c-3", "city:city:c-4"}
        wait_for(lambda: http.get("/feeds/cifs.xml", headers=PLAIN).status_code == 200, what="the publication")
        now = wire(http)
        assert set(descriptions(now["cifs.xml"][0])) == stored
        # WZDx: one road event per direction of a BOTH_DIRECTIONS closure
        assert len(json.loads(now["wzdx.geojson"][0])["features"]) == 2 * len(stored)


# --------------------------------------------------------------------------- publish faults


def test_a_publish_whose_store_write_fails_keeps_the_last_publication(
    engine: Engine, city: Callable[..., Run], tmp_path: Path,
) -> None:
    """Fault: the store refuses the write of the published versions (a trigger on
    ``published_events``), which the publish transaction makes after it has replaced the three
    ``publications`` rows. If the boundary moved (publications saved in a transaction of their
    own), partners would get the new feeds while the store's record of what was published (what
    a later hold-back serves) stayed old: here the new bytes would be served. The sync before the
    publish is its own transaction and stays committed."""
    with served(engine) as http:
        before_wire = first_publication(city, engine, http)
        (tmp_path / "closures.csv").write_text(SECOND, encoding="utf-8")
        install_trigger(engine, "published_events", "INSERT" if engine.dialect.name == "sqlite" else "INSERT OR UPDATE")
        failed = city("sync")  # see test_..._is_a_one_line_error_... below
        assert failed.code == 1 and "injected fault" in failed.err and "Traceback" not in failed.err
        kept_then_republished(engine, http, before_wire, city)


def test_a_publish_that_cannot_render_its_closures_keeps_the_feeds_and_records_the_failure(
    engine: Engine, city: Callable[..., Run],
) -> None:
    """Fault: every published closure's stored row is corrupted (details the model refuses, as a
    hand edit or an older release leaves them), so nothing can be rendered and the hold-back guard
    refuses the publication. If the publish stored its feeds before the guard and the validation
    (the boundary moved), partners would get feeds with every closure gone; the served bytes and
    ETags must stay, and ``publish_runs`` must say ``failed`` with the reason."""
    with served(engine) as http:
        before_wire = first_publication(city, engine, http)
        with engine.begin() as conn:
            conn.execute(text("UPDATE events SET details = :bad"),
                         {"bad": '{"lanes": "all of them"}'})
        result = city("publish")
        assert result.code == 1 and "Traceback" not in result.err, result
        assert "error: 2 of 2 published events would be held back or disappear" in result.err
        assert "the last good feeds stay served" in result.err
        run = last_run(engine, publish_runs)
        assert run.status == "failed" and run.message.startswith("cifs: 2 of 2 published events would be held back")
        assert all(f"{target}: 2 of 2" in run.message for target in ("wzdx", "datex2")), "every target refused"
        assert stored_publications(engine) == before_wire
        time.sleep(0.2)
        assert wire(http) == before_wire


def test_a_store_write_failing_mid_publish_is_a_one_line_error_and_a_failed_publish_run(
    engine: Engine, city: Callable[..., Run], tmp_path: Path,
) -> None:
    """Fault: as above. The publish should end as every other failed publish does: exit 1, one
    ``error:`` line, and a ``failed`` row in ``publish_runs`` (which the trigger does not block), so
    /metrics' ``exchange_feed_generations_total{outcome="failed"}`` counts it. Found by this suite:
    the database exception left the CLI with its traceback and no run was recorded."""
    assert city("sync").code == 0
    (tmp_path / "closures.csv").write_text(SECOND, encoding="utf-8")
    install_trigger(engine, "published_events", "INSERT" if engine.dialect.name == "sqlite" else "INSERT OR UPDATE")
    result = city("sync")
    assert result.code == 1 and "Traceback" not in result.err
    assert last_run(engine, publish_runs).status == "failed"


@pytest.mark.postgres
def test_a_read_only_postgresql_keeps_the_last_publication(
    pg_url: str, pg_city: Callable[..., Run], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fault: the database turns read-only under the syncing and publishing commands
    (``default_transaction_read_only``, what a failover to a hot standby looks like): their first
    write fails. If the sync or the publish wrote anything outside their one transaction, a part
    would be stored; the served copy must stay byte for byte, and writes resume once it is
    writable again."""
    engine = open_store(pg_url, auto_upgrade=True)
    try:
        with served(engine) as http:
            before_wire = first_publication(pg_city, engine, http)
            before = store_state(engine)
            (tmp_path / "closures.csv").write_text(SECOND, encoding="utf-8")
            # every session the CLI opens from now on is read-only; the server's engine is not
            monkeypatch.setenv("EXCHANGE_DATABASE_URL", pg_url + "%20-cdefault_transaction_read_only%3Don")
            result = pg_city("sync")  # a failed run, which cannot even be recorded (logged as such)
            assert result.code == 1 and "Traceback" not in result.err, result
            assert "error: city: " in result.err and "read-only transaction" in result.err
            # the publish's store error is one line too (it was a traceback, see the test above)
            published = pg_city("publish")
            assert published.code == 1 and "Traceback" not in published.err, published
            assert "the store refused the publication" in published.err and "read-only transaction" in published.err
            assert store_state(engine) == before
            time.sleep(0.2)
            assert wire(http) == before_wire
            monkeypatch.setenv("EXCHANGE_DATABASE_URL", pg_url)
            assert pg_city("sync").code == 0
            wait_for(lambda: serves_new(http, before_wire["cifs.xml"][1]), what="the new publication")
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_postgresql_connection_killed_mid_publish_keeps_the_last_publication(
    pg_url: str, pg_city: Callable[..., Run], tmp_path: Path,
) -> None:
    """Fault: the server process of the publisher's connection is terminated in the middle of the
    publish transaction (a trigger on ``published_events`` calls ``pg_terminate_backend`` on its
    own backend, after the ``publications`` rows were replaced): an OOM kill or an operator's
    ``pg_terminate_backend``. If the publications were committed apart from the rest, the new
    feeds would be served; they must not be, and the next publish must go through."""
    engine = open_store(pg_url, auto_upgrade=True)
    try:
        with served(engine) as http:
            before_wire = first_publication(pg_city, engine, http)
            (tmp_path / "closures.csv").write_text(SECOND, encoding="utf-8")
            install_trigger(engine, "published_events", "INSERT OR UPDATE",
                            body="PERFORM pg_terminate_backend(pg_backend_pid());")
            failed = pg_city("sync")
            assert failed.code == 1 and "Traceback" not in failed.err, failed
            assert re.search(r"server closed the connection|terminating connection", failed.err), failed.err
            kept_then_republished(engine, http, before_wire, pg_city)
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- the store unreachable


class TcpLink:
    """A TCP forwarder on a fixed local port to PostgreSQL, which the test can cut and restore:
    cutting closes every forwarded connection and stops listening (new connections are refused),
    as a network partition or a database restart looks to the server."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = int(probe.getsockname()[1])
        probe.close()
        self.sockets: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.lock = threading.Lock()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self.lock:
            doomed, self.sockets = [*self.sockets, *([self.listener] if self.listener else [])], []
            self.listener = None
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_RDWR)


@pytest.mark.postgres
def test_the_store_unreachable_while_serving_keeps_the_last_copy_then_serves_the_new(pg_url: str) -> None:
    """Fault: the link between the feed server and PostgreSQL is cut (every connection reset, new
    ones refused) while a publisher on the other side of the cut publishes. The server must keep
    serving its last copy byte for byte with its ETag, say ``"store": "unreachable"`` on
    /health, and serve the new publication once the link is back. If a failed refresh emptied or
    half-replaced the copy (the swap boundary moved), partners would get 503s or a mix."""
    from tests.support.serving import bodies, publish

    direct = open_store(pg_url, auto_upgrade=True)
    link = TcpLink(("127.0.0.1", 5432))
    link.restore()
    through_link = open_store(pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{link.port}"), auto_upgrade=False)
    try:
        first = publish(direct, bodies(1))
        with served(through_link) as http:
            before_wire = wire(http)
            assert {feed: etag for feed, (_, etag) in before_wire.items()} == first
            link.cut()
            wait_for(lambda: http.get("/health").json()["store"] == "unreachable", what="the outage seen")
            second = publish(direct, bodies(2))
            time.sleep(0.3)
            assert wire(http) == before_wire, "the last copy must stay served while the store is away"
            assert http.get("/health").status_code == 200, "a load balancer keeps the instance"
            link.restore()
            wait_for(lambda: http.get("/health").json()["store"] == "ok", timeout=15, what="the store back")
            wait_for(lambda: serves_new(http, first["cifs.xml"]), what="the new publication")
            after = wire(http)
            assert {feed: etag for feed, (_, etag) in after.items()} == second
            assert {feed: body for feed, (body, _) in after.items()} == bodies(2)
    finally:
        link.cut()
        through_link.dispose()
        direct.dispose()
