"""Retention and compact revisions on both stores: `exchange db prune` removes exactly what the limits
say and nothing a kept city event, a source's health or the publication needs; a crowd report's
revisions record what an operator follows, not its measures."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, insert, inspect, select, text

from exchange.config import RetentionConfig
from exchange.db import normalize_url, open_store, upgrade
from exchange.retention import DAY_MS, prune
from exchange.schema import (
    SCHEMA_REVISION,
    confirmations,
    events,
    notifications,
    publish_runs,
    published_events,
    revisions,
    sightings,
    sources,
    sync_runs,
)
from tests.support.helpers import BASE_MS, Run, alert, feed, jam
from tests.test_sync import ingest

NOW = BASE_MS + 400 * DAY_MS
POINT = {"type": "Point", "coordinates": [-122.2841, 37.8093]}


def ago(days: float) -> int:
    return NOW - round(days * DAY_MS)


def add_event(conn: Any, eid: str, status: str, updated_days_ago: float, *, revised_days_ago: tuple[float, ...] = (),
              run_id: int | None = None) -> None:
    source, kind, source_id = eid.split(":", 2)
    origin = "city" if kind == "city" else "crowd"
    updated = ago(updated_days_ago)
    conn.execute(insert(events).values(
        id=eid, source=source, kind=kind, source_id=source_id, origin=origin, category="ROAD_CLOSED",
        type="ROAD_CLOSED", status=status, geometry=POINT, min_lon=-122.2841, min_lat=37.8093, max_lon=-122.2841,
        max_lat=37.8093, first_seen_ms=updated - DAY_MS, updated_ms=updated,
        end_ms=updated if status == "ended" else None, attributes={}, digest="d"))
    for days in revised_days_ago:
        conn.execute(insert(revisions).values(event_id=eid, run_id=run_id, at_ms=ago(days), action="updated",
                                              changes={"street": ["A", "B"]}))


def add_run(conn: Any, source: str, days_ago: float) -> int:
    at = ago(days_ago)
    return int(conn.execute(insert(sync_runs).values(source=source, started_ms=at, finished_ms=at, status="ok")
                            .returning(sync_runs.c.id)).scalar_one())


def fill(engine: Engine) -> dict[str, int]:
    """A store a year old: what each limit removes next to what it must keep."""
    with engine.begin() as conn:
        runs = {"waze-100": add_run(conn, "waze", 100), "waze-95": add_run(conn, "waze", 95),
                "city-300": add_run(conn, "city", 300), "city-200": add_run(conn, "city", 200),
                "waze-10": add_run(conn, "waze", 10)}
        add_event(conn, "waze:alert:old-ended", "ended", 40, revised_days_ago=(41, 40))
        add_event(conn, "waze:jam:old-cancelled", "cancelled", 31, revised_days_ago=(31,))
        add_event(conn, "waze:alert:recent-ended", "ended", 10, revised_days_ago=(11,))
        add_event(conn, "waze:alert:old-active", "active", 1, revised_days_ago=(45, 1))
        add_event(conn, "waze:alert:confirms", "ended", 40, revised_days_ago=(40,))
        add_event(conn, "waze:alert:confirms-ended-closure", "ended", 40, revised_days_ago=(40,))
        add_event(conn, "city:city:open", "active", 300, revised_days_ago=(350, 300), run_id=runs["city-300"])
        add_event(conn, "city:city:closed-long-ago", "ended", 380, revised_days_ago=(390, 380))
        add_event(conn, "city:city:still-published", "ended", 380, revised_days_ago=(380,))
        conn.execute(insert(confirmations), [
            {"city_event_id": "city:city:open", "crowd_event_id": "waze:alert:confirms", "linked_ms": ago(41),
             "how": "road-closed-alert"},
            {"city_event_id": "city:city:closed-long-ago", "crowd_event_id": "waze:alert:confirms-ended-closure",
             "linked_ms": ago(41), "how": "road-closed-alert"},
        ])
        conn.execute(insert(published_events).values(event_id="city:city:still-published", target="cifs", version={},
                                                     published_ms=ago(380)))
        for days, status in ((40, "published"), (39, "unchanged"), (35, "unchanged")):
            conn.execute(insert(publish_runs).values(at_ms=ago(days), status=status, events=1, held_back=0))
        for key, subject, days in (("source:waze:Offline:1", "waze", 100), ("source:waze:OK:2", "waze", 95),
                                   ("source:city:Stale:3", "city", 200)):
            conn.execute(insert(notifications).values(key=key, kind="source", subject=subject, state="x",
                                                      sent_ms=ago(days), text="t"))
    return runs


def ids(engine: Engine, table: Any, column: Any) -> set[Any]:
    with engine.connect() as conn:
        return set(conn.execute(select(column)).scalars())


def revised(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(select(revisions.c.event_id, func.count()).group_by(revisions.c.event_id)).all())


def snapshot(engine: Engine) -> dict[str, list[str]]:
    with engine.connect() as conn:
        return {table.name: sorted(map(str, conn.execute(select(table)).all()))
                for table in (events, revisions, sightings, confirmations, sync_runs, publish_runs, notifications)}


def test_prune_removes_exactly_what_the_default_limits_say(engine: Engine) -> None:
    runs = fill(engine)
    with engine.begin() as conn:
        conn.execute(insert(sources).values(name="waze", kind="waze-feed", namespace="waze", location="-",
                                            created_ms=ago(400)))
        conn.execute(insert(sightings).values(event_id="waze:alert:old-ended", source_name="waze", missed=3))
    before = snapshot(engine)
    dry = prune(engine, RetentionConfig(), NOW, dry_run=True)
    assert snapshot(engine) == before, "a dry run changes nothing"

    done = prune(engine, RetentionConfig(), NOW)
    assert done.counts() == dry.counts() == {
        "city_events": 0, "crowd_events": 2, "revisions": 4, "sightings": 1, "confirmations": 0, "sync_runs": 3,
        "publish_runs": 2, "notifications": 1}
    assert ids(engine, events, events.c.id) == {
        "waze:alert:recent-ended", "waze:alert:old-active", "waze:alert:confirms", "city:city:open",
        "city:city:closed-long-ago", "city:city:still-published", "waze:alert:confirms-ended-closure"}
    # the active report keeps its row, not its month-old history; city events and the crowd events
    # that confirm one keep all of theirs
    assert revised(engine) == {"waze:alert:recent-ended": 1, "waze:alert:old-active": 1, "waze:alert:confirms": 1,
                               "waze:alert:confirms-ended-closure": 1, "city:city:open": 2,
                               "city:city:closed-long-ago": 2, "city:city:still-published": 1}
    assert ids(engine, sightings, sightings.c.event_id) == set()
    assert len(ids(engine, confirmations, confirmations.c.crowd_event_id)) == 2
    # each source's newest run stays, however old (health reads it); a city revision loses its pruned run's id
    assert ids(engine, sync_runs, sync_runs.c.id) == {runs["city-200"], runs["waze-10"]}
    with engine.connect() as conn:
        assert set(conn.execute(select(revisions.c.run_id).where(revisions.c.event_id == "city:city:open"))
                   .scalars()) == {None}
        assert list(conn.execute(select(publish_runs.c.status)).scalars()) == ["unchanged"]
    assert ids(engine, notifications, notifications.c.key) == {"source:waze:OK:2", "source:city:Stale:3"}

    assert prune(engine, RetentionConfig(), NOW).total == 0, "a second prune finds nothing"


def test_city_events_go_only_when_configured_and_never_from_the_publication(engine: Engine) -> None:
    fill(engine)
    retention = RetentionConfig(city_events_days=365, batch_rows=10)
    done = prune(engine, retention, NOW)
    assert done.deleted["city_events"] == 1 and done.deleted["confirmations"] == 1
    left = ids(engine, events, events.c.id)
    assert "city:city:closed-long-ago" not in left
    assert {"city:city:open", "city:city:still-published", "waze:alert:confirms"} <= left
    # its confirmation went with it, so the crowd event that only confirmed it went too
    assert "waze:alert:confirms-ended-closure" not in left
    assert "city:city:closed-long-ago" not in revised(engine)


def test_zero_keeps_forever_and_batches_bound_each_transaction(engine: Engine) -> None:
    with engine.begin() as conn:
        for n in range(25):
            add_event(conn, f"waze:jam:{n}", "ended", 40 + n, revised_days_ago=(40 + n,))
    kept = prune(engine, RetentionConfig(ended_crowd_days=0, revisions_days=0), NOW)
    assert kept.total == 0 and len(ids(engine, events, events.c.id)) == 25
    done = prune(engine, RetentionConfig(batch_rows=10), NOW)
    assert done.deleted["crowd_events"] == 25 and done.deleted["revisions"] == 25
    assert done.batches >= 3 and ids(engine, events, events.c.id) == set()


def test_db_prune_command(store_cli: Callable[..., Run], engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(engine)
    monkeypatch.setenv("EXCHANGE_NOW", str(NOW))
    before = snapshot(engine)
    dry = store_cli("db", "prune", "--dry-run", "--format", "json")
    assert dry.code == 0, dry
    record = json.loads(dry.out)  # one object, as --help says
    assert record["dry_run"] is True and record["deleted"]["crowd_events"] == 2
    assert record["cutoffs"]["city_events"] is None and record["cutoffs"]["revisions"] is not None
    assert snapshot(engine) == before
    done = store_cli("db", "prune", "--vacuum")
    assert done.code == 0, done
    assert "crowd_events" in done.out and "prune deleted 2 crowd events" in done.err and "VACUUM" in done.err
    assert "waze:alert:old-ended" not in ids(engine, events, events.c.id)


# --------------------------------------------------------------------------- compact revisions


def history(engine: Engine, eid: str) -> list[tuple[str, Any]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(  # type: ignore[misc]
            select(revisions.c.action, revisions.c.changes).where(revisions.c.event_id == eid)
            .order_by(revisions.c.id))]


def test_crowd_revisions_record_what_an_operator_follows_not_the_measures(engine: Engine) -> None:
    line = jam(1)["line"]
    shifted = [{"x": p["x"] + 0.0001, "y": p["y"]} for p in line]  # ~9 m: GPS noise
    moved = [{"x": p["x"] + 0.01, "y": p["y"]} for p in line]  # ~880 m: somewhere else
    polls: list[tuple[list[Any], list[Any]]] = [
        ([alert("a1")], [jam(1)]),
        # measures only: speed, delay, level, length, thumbs-up, reliability, a jittered line
        ([alert("a1", nThumbsUp=3, reliability=9, confidence=4)],
         [jam(1, speed=1.0, speedKMH=3.6, delay=300, level=4, length=260, line=shifted)]),
        # what matters: a new street and category, the jam moves and becomes a closure
        ([alert("a1", nThumbsUp=4, street="8th Street", type="ROAD_CLOSED", subtype="")],
         [jam(1, speedKMH=0.0, line=moved, blockingAlertUuid="a1", level=5)]),
        ([], []), ([], []), ([], []),  # gone three polls: ended
    ]
    for poll, (alerts, jams) in enumerate(polls):  # another alert and jam stay: no poll looks suspect
        ingest(engine, feed(poll, alerts=[*alerts, alert("stays")], jams=[*jams, jam(2)]))
    alert_history = history(engine, "waze:alert:a1")
    assert [action for action, _ in alert_history] == ["created", "updated", "ended"]
    assert alert_history[1][1] == {"category": ["ACCIDENT", "ROAD_CLOSED"], "type": ["ACCIDENT", "ROAD_CLOSED"],
                                   "subtype": ["ACCIDENT_MINOR", None], "street": ["7th Street", "8th Street"]}
    assert alert_history[2][1] == {"status": ["active", "ended"]}
    jam_history = history(engine, "waze:jam:1")
    assert [action for action, _ in jam_history] == ["created", "updated", "ended"]
    changes = jam_history[1][1]
    assert set(changes) == {"geometry", "blocking_alert_uuid"}, changes
    assert changes["geometry"][1]["coordinates"][0] == [moved[0]["x"], moved[0]["y"]]
    with engine.connect() as conn:  # the row has the latest measures all the same
        row = conn.execute(select(events.c.thumbs_up, events.c.reliability).where(events.c.id == "waze:alert:a1")).one()
    assert tuple(row) == (4, 6)


def test_city_revisions_keep_every_change_but_the_derived_bounding_box() -> None:
    from exchange.model import Event
    from exchange.store import diff_rows, event_to_row

    base = Event(id="c:city:1", source="c", kind="city", source_id="1", origin="city", category="ROAD_CLOSED",
                 type="ROAD_CLOSED", geometry={"type": "Point", "coordinates": (-122.28, 37.8)},
                 attributes={"permit": "P-1", "crew": 2}, digest="a")
    row = event_to_row(base, now_ms=BASE_MS)
    changed = base.model_copy(update={"geometry": base.geometry.model_copy(update={"coordinates": (-122.28, 37.80001)}),
                                      "attributes": {"permit": "P-1", "crew": 3}, "digest": "b"})
    from exchange.store import EVENT_COLUMNS

    changes = diff_rows(tuple(row[c] for c in EVENT_COLUMNS), event_to_row(changed, now_ms=BASE_MS + 1))
    assert set(changes) == {"geometry", "attributes.crew"}, "a city event's every change, even 1 m, is history"


# --------------------------------------------------------------------------- the migration


def test_a_store_at_0008_upgrades_to_the_retention_indexes_intact(store_url: str) -> None:
    raw = create_engine(normalize_url(store_url))
    upgrade(raw, "0008")
    with raw.begin() as conn:
        conn.execute(text("INSERT INTO sync_runs (source, started_ms, finished_ms, status, fetched, new, updated,"
                          " unchanged, ended, rejected) VALUES ('waze', 1, 1, 'ok', 0, 0, 0, 0, 0, 0)"))
        conn.execute(text(
            "INSERT INTO events (id, source, kind, source_id, origin, category, type, status, geometry, min_lon,"
            " min_lat, max_lon, max_lat, first_seen_ms, updated_ms, end_ms, attributes, digest) VALUES"
            " ('waze:alert:a', 'waze', 'alert', 'a', 'crowd', 'ACCIDENT', 'ACCIDENT', 'ended',"
            " '{\"type\": \"Point\", \"coordinates\": [-122.3, 37.8]}', -122.3, 37.8, -122.3, 37.8, 1, 2, 2,"
            " '{}', 'd')"))
        conn.execute(text("INSERT INTO revisions (event_id, run_id, at_ms, action, changes) VALUES"
                          " ('waze:alert:a', 1, 1, 'updated', '{\"speed_kmh\": [1, 2], \"street\": [\"A\", \"B\"]}')"))
    raw.dispose()
    upgraded = open_store(store_url, auto_upgrade=True)
    with upgraded.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == SCHEMA_REVISION
        names = {i["name"] for table in ("events", "revisions", "confirmations")
                 for i in inspect(conn).get_indexes(table)}
        assert {"ix_events_status_updated", "ix_revisions_run", "ix_confirmations_crowd"} <= names
        # written before: kept as it was, until retention prunes it
        assert conn.execute(select(revisions.c.changes)).scalar_one() == {"speed_kmh": [1, 2], "street": ["A", "B"]}
    done = prune(upgraded, RetentionConfig(), NOW)
    assert done.deleted == {**dict.fromkeys(done.deleted, 0), "crowd_events": 1, "revisions": 1}
    assert ids(upgraded, sync_runs, sync_runs.c.id) == {1}, "the source's newest run stays"
    upgraded.dispose()


def test_the_daemon_prunes_once_a_day_as_a_claimed_job(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from exchange.config import Config
    from exchange.daemon import PRUNE_EVERY_MS, PRUNE_JOB, Daemon
    from exchange.schema import schedule

    fill(engine)
    monkeypatch.setenv("EXCHANGE_NOW", str(NOW))
    daemon = Daemon(Config.model_validate({"sources": [{"name": "waze", "url": "x.json"}]}), engine)
    daemon.prune()
    assert prune(engine, RetentionConfig(), NOW, dry_run=True).total == 0, "the daemon's prune did it all"
    daemon.dispatch()  # registers the schedule and claims what is due: the polls, the clock, the prune
    daemon.workers.shutdown(wait=True)
    with engine.connect() as conn:
        prune_row = conn.execute(select(schedule).where(schedule.c.job == PRUNE_JOB)).one()
    assert prune_row.interval_ms == PRUNE_EVERY_MS == DAY_MS and prune_row.claimed_by == daemon.instance
