"""Store schema: SQLite upgrades itself, PostgreSQL asks for `exchange db upgrade`, migrations match the code."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from exchange.db import current_revision, normalize_url, open_store
from exchange.errors import SchemaOutdated, StoreError
from exchange.schema import SCHEMA_REVISION, metadata
from tests.support.helpers import Cli


def test_sqlite_creates_its_schema(tmp_path: Path) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 'sub' / 'x.db'}")
    assert current_revision(engine) == SCHEMA_REVISION
    engine.dispose()


def test_postgresql_without_schema_names_db_upgrade(pg_url: str) -> None:
    store_url = pg_url
    with pytest.raises(SchemaOutdated, match="run `exchange db upgrade`"):
        open_store(store_url)
    engine = open_store(store_url, auto_upgrade=True)
    assert current_revision(engine) == SCHEMA_REVISION
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    with pytest.raises(SchemaOutdated, match="revision 0000, the code needs"):
        open_store(store_url)
    engine.dispose()


def test_migrations_build_exactly_the_declared_schema(store_url: str) -> None:
    engine = open_store(store_url, auto_upgrade=True)
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert differences == []


def test_unreachable_database_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot open database"):
        open_store("postgresql://nobody@127.0.0.1:9/none?connect_timeout=2")


@pytest.mark.parametrize("command", [("db", "status"), ("db", "upgrade"), ("closure", "list"),
                                     ("db", "copy", "--to", "sqlite:///elsewhere.db")])
@pytest.mark.parametrize(("url", "message"), [
    ("mysql://exchange:secret@db/exchange", "database mysql://exchange:***@db/exchange: only postgresql:// and "
                                            "sqlite:/// stores are supported"),
    ("exchange.db", "the database URL cannot be read as one (e.g. postgresql://"),
])
def test_a_store_url_of_another_kind_is_one_line(cli: Cli, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...],
                                                 url: str, message: str) -> None:
    monkeypatch.setenv("EXCHANGE_DATABASE_URL", url)
    result = cli(*command)
    assert result.code == 2 and result.err.startswith(f"error: {message}") and result.err.count("\n") == 1, result
    assert "secret" not in result.err and "Traceback" not in result.err


def test_postgres_urls_select_psycopg() -> None:
    assert normalize_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert create_engine(normalize_url("postgresql://u@h/d")).dialect.driver == "psycopg"


def test_a_store_of_the_previous_release_upgrades_intact(store_url: str) -> None:
    """A store written at 0003 (before per-event publishing) keeps its events, closures, publications and counts."""
    from sqlalchemy import create_engine as raw_engine

    from exchange.db import upgrade

    engine = raw_engine(normalize_url(store_url))
    upgrade(engine, "0003")
    event = (
        "INSERT INTO events (id, source, kind, source_id, origin, category, type, subtype, street, status, geometry,"
        " min_lon, min_lat, max_lon, max_lat, start_ms, first_seen_ms, updated_ms, attributes, digest, details)"
        " VALUES (:id, :source, :kind, :sid, :origin, :category, :type, NULL, '9th Street', 'active', :geometry,"
        " -122.3, 37.8, -122.3, 37.8, 1772463600000, 1772463600000, 1772463600000, '{}', 'd', :details)"
    )
    with engine.begin() as conn:
        conn.execute(text(event), {"id": "waze:alert:a1", "source": "waze", "kind": "alert", "sid": "a1",
                                   "origin": "crowd", "category": "ACCIDENT", "type": "ACCIDENT",
                                   "geometry": '{"type": "Point", "coordinates": [-122.3, 37.8]}', "details": None})
        conn.execute(text(event), {"id": "city:city:c1", "source": "city", "kind": "city", "sid": "c1",
                                   "origin": "city", "category": "ROAD_CLOSED", "type": "ROAD_CLOSED",
                                   "geometry": '{"type": "LineString", "coordinates": [[-122.3, 37.8], [-122, 37]]}',
                                   "details": '{"description": "Water main"}'})
        conn.execute(text("INSERT INTO publications VALUES ('cifs.xml', 1, '\"e\"', 'application/xml', :b, :g, 1)"),
                     {"b": b"<incidents/>", "g": b"gz"})
        conn.execute(text("INSERT INTO downloads VALUES ('acme', 'cifs.xml', 7, 1772463600000)"))
    engine.dispose()
    upgraded = open_store(store_url, auto_upgrade=True)
    assert current_revision(upgraded) == SCHEMA_REVISION
    with upgraded.connect() as conn:
        assert conn.execute(text("SELECT id, status FROM events ORDER BY id")).all() == [
            ("city:city:c1", "active"), ("waze:alert:a1", "active")]
        assert conn.execute(text("SELECT feed, body, events, content_digest FROM publications")).all() == [
            ("cifs.xml", b"<incidents/>", 1, None)]
        assert conn.execute(text("SELECT partner, count, polls FROM downloads")).all() == [("acme", 7, 0)]
        assert conn.execute(text("SELECT count(*) FROM published_events")).scalar() == 0
    upgraded.dispose()


def test_a_store_at_0004_upgrades_to_same_closure_links_intact(store_url: str) -> None:
    """A store written at 0004 (before one closure of two sources was published once) keeps its
    sources, events and sightings: no event is linked, every source has priority 0, and the meta
    table is there, empty."""
    from sqlalchemy import create_engine as raw_engine

    from exchange.db import upgrade

    engine = raw_engine(normalize_url(store_url))
    upgrade(engine, "0004")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO sources (name, kind, namespace, location, recent_counts, created_ms) "
                          "VALUES ('city-permits', 'csv', 'permits', '/srv/permits.csv', '{}', 1772463600000)"))
        conn.execute(text(
            "INSERT INTO events (id, source, kind, source_id, origin, category, type, street, status, geometry,"
            " min_lon, min_lat, max_lon, max_lat, start_ms, first_seen_ms, updated_ms, attributes, digest)"
            " VALUES ('permits:city:C-100', 'permits', 'city', 'C-100', 'city', 'ROAD_CLOSED', 'ROAD_CLOSED',"
            " '9th Street', 'active', :geometry, -122.3, 37.8, -122.29, 37.81, 1772463600000, 1772463600000,"
            " 1772463600000, '{\"permit_no\": \"P-2026-0417\"}', 'd')"),
            {"geometry": '{"type": "LineString", "coordinates": [[-122.3, 37.8], [-122.29, 37.81]]}'})
        conn.execute(text("INSERT INTO sightings VALUES ('permits:city:C-100', 'city-permits', 0, NULL)"))
    engine.dispose()
    upgraded = open_store(store_url, auto_upgrade=True)
    assert current_revision(upgraded) == SCHEMA_REVISION
    with upgraded.begin() as conn:
        assert conn.execute(text("SELECT id, status, match_id, same_as FROM events")).all() == [
            ("permits:city:C-100", "active", None, None)]
        assert conn.execute(text("SELECT name, priority FROM sources")).all() == [("city-permits", 0)]
        assert conn.execute(text("SELECT event_id, source_name FROM sightings")).all() == [
            ("permits:city:C-100", "city-permits")]
        assert conn.execute(text("SELECT count(*) FROM meta")).scalar() == 0
        conn.execute(text("INSERT INTO meta VALUES ('network', '{\"path\": \"west-oakland.osm.bz2\"}', 1)"))
    upgraded.dispose()


def test_a_store_at_0005_upgrades_to_waze_status_with_its_confirmations_mended(store_url: str) -> None:
    """A store written at 0005 keeps its closures and confirmations, except a link that never
    overlapped the closure in time (a Waze closure seen before the closure started); "seen in Waze
    since" becomes the time of the report that showed it, and a published event's first
    publication is the one recorded."""
    from sqlalchemy import create_engine as raw_engine

    from exchange.db import upgrade

    engine = raw_engine(normalize_url(store_url))
    upgrade(engine, "0005")
    start, sync = 1_772_463_600_000, 1_795_000_000_000  # March 2026; a replay in November
    line = '{"type": "LineString", "coordinates": [[-122.3, 37.8], [-122.29, 37.81]]}'
    point = '{"type": "Point", "coordinates": [-122.295, 37.805]}'
    with engine.begin() as conn:
        for eid, origin, kind, category, begins, ends, geometry in (
            ("city:city:now", "city", "city", "ROAD_CLOSED", start, None, line),
            ("city:city:later", "city", "city", "ROAD_CLOSED", start + 86_400_000 * 8, None, line),
            ("waze:alert:a", "crowd", "alert", "ROAD_CLOSED", start + 600_000, None, point),
            ("waze:alert:old", "crowd", "alert", "ROAD_CLOSED", start - 86_400_000, start - 3_600_000, point),
        ):
            conn.execute(text(
                "INSERT INTO events (id, source, kind, source_id, origin, category, type, status, geometry, min_lon,"
                " min_lat, max_lon, max_lat, start_ms, end_ms, first_seen_ms, updated_ms, attributes, digest,"
                " visible_in_waze_since_ms) VALUES (:id, 'x', :kind, :id, :origin, :category, :category, 'active',"
                " :geometry, -122.3, 37.8, -122.29, 37.81, :start, :end, :start, :start, '{}', 'd', :seen)"),
                {"id": eid, "kind": kind, "origin": origin, "category": category, "geometry": geometry,
                 "start": begins, "end": ends, "seen": sync if origin == "city" else None})
        for city, crowd in (("city:city:now", "waze:alert:a"), ("city:city:now", "waze:alert:old"),
                            ("city:city:later", "waze:alert:old")):
            conn.execute(text("INSERT INTO confirmations VALUES (:city, :crowd, :at, 'road-closed-alert')"),
                         {"city": city, "crowd": crowd, "at": sync})
        conn.execute(text("INSERT INTO published_events (event_id, version, published_ms) "
                          "VALUES ('city:city:now', '{}', :at)"), {"at": sync})
    engine.dispose()
    upgraded = open_store(store_url, auto_upgrade=True)
    assert current_revision(upgraded) == SCHEMA_REVISION
    with upgraded.begin() as conn:
        assert conn.execute(text("SELECT city_event_id, crowd_event_id FROM confirmations")).all() == [
            ("city:city:now", "waze:alert:a")]
        seen = dict(conn.execute(text("SELECT id, visible_in_waze_since_ms FROM events WHERE origin = 'city'")).all())
        assert seen == {"city:city:now": start + 600_000, "city:city:later": None}
        assert conn.execute(text("SELECT first_published_ms FROM published_events")).scalar() == sync
    upgraded.dispose()


def test_a_store_a_newer_release_upgraded_is_refused_not_downgraded(store_url: str) -> None:
    engine = open_store(store_url, auto_upgrade=True)
    ahead = f"{int(SCHEMA_REVISION) + 1:04d}"
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": ahead})
    engine.dispose()
    with pytest.raises(SchemaOutdated, match=f"revision {ahead}, newer than this release"):
        open_store(store_url, auto_upgrade=True)
    raw = create_engine(normalize_url(store_url))
    assert current_revision(raw) == ahead, "left as it was"
    raw.dispose()


def test_a_store_at_0006_upgrades_to_health_and_the_shared_schedule(store_url: str) -> None:
    """A store of the previous release keeps its sync runs; a failed one without a recorded kind
    reads as a failed fetch (Offline); the schedule starts empty."""
    from sqlalchemy import create_engine as raw_engine

    from exchange.config import SourceConfig
    from exchange.db import upgrade
    from exchange.health import Run, State, source_health

    engine = raw_engine(normalize_url(store_url))
    upgrade(engine, "0006")
    with engine.begin() as conn:
        for at, status in ((1_000, "ok"), (2_000, "failed")):
            conn.execute(text("INSERT INTO sync_runs (source, started_ms, finished_ms, status, fetched, new, updated,"
                              " unchanged, ended, rejected, message) VALUES ('waze', :at, :at, :status, 0, 0, 0, 0,"
                              " 0, 0, 'HTTP 503')"), {"at": at, "status": status})
    engine.dispose()
    upgraded = open_store(store_url, auto_upgrade=True)
    with upgraded.begin() as conn:
        rows = conn.execute(text("SELECT started_ms, status, failure, message FROM sync_runs ORDER BY id DESC")).all()
        assert conn.execute(text("SELECT count(*) FROM schedule")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM notifications")).scalar() == 0
    upgraded.dispose()
    health = source_health(SourceConfig(name="waze"), [Run(*row) for row in rows], 3_000)
    assert health.state is State.OFFLINE and health.since_ms == 2_000


def test_processes_opening_a_new_store_at_once_migrate_it_once(tmp_path: Path) -> None:
    """The daemon and an `inspect` started beside it on a new SQLite store: one migrates, the other
    waits and finds it current (both used to create its tables: "database is locked")."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'new.db'}"
    script = "import sys; from exchange.db import open_store; open_store(sys.argv[1]).dispose()"
    processes = [subprocess.Popen([sys.executable, "-c", script, url], stderr=subprocess.PIPE) for _ in range(4)]
    errors = [process.communicate(timeout=60)[1].decode() for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0, 0], errors
    assert current_revision(create_engine(url)) == SCHEMA_REVISION


def test_db_status_of_a_store_not_created_yet_says_so(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXCHANGE_DATABASE_URL", f"sqlite:///{tmp_path / 'new' / 'exchange.db'}")
    result = cli("db", "status")
    assert result.code == 1 and "no store yet" in result.out and "unable to open" not in result.out + result.err
    assert not (tmp_path / "new").exists()


def test_db_upgrade_says_what_it_did(cli: Cli, monkeypatch: pytest.MonkeyPatch, store_url: str) -> None:
    """Finding: on an empty PostgreSQL database `db upgrade` created the schema and said "schema is
    current"; `db status` showed the driver's URL (postgresql+psycopg://), the other commands the one given."""
    from exchange.db import upgrade

    older = create_engine(normalize_url(store_url))
    upgrade(older, "0011")
    older.dispose()
    monkeypatch.setenv("EXCHANGE_DATABASE_URL", store_url)
    behind = cli("db", "status")
    assert behind.code == 1 and behind.out.startswith(f"{store_url.split('://')[0]}://"), behind
    assert "schema 0011, code needs" in behind.out
    upgraded = cli("db", "upgrade")
    assert upgraded.code == 0 and f"revision 0011 to {SCHEMA_REVISION}" in upgraded.err, upgraded
    again = cli("db", "upgrade")
    assert again.code == 0 and again.err.startswith("schema is current on"), again
    assert cli("db", "status").code == 0


def test_db_upgrade_of_a_new_store_says_it_created_the_schema(cli: Cli, monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    monkeypatch.setenv("EXCHANGE_DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")
    created = cli("db", "upgrade")
    assert created.code == 0 and created.err.startswith("created the schema on sqlite:///"), created
    assert created.err.rstrip().endswith(f"revision {SCHEMA_REVISION}")
