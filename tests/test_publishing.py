"""Publishing never freezes and never drops a live closure: per-event hold-back with the last good
version kept, the mass hold-back guard, and the publish clock (content digest, max age)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from lxml import etree
from sqlalchemy import Engine, func, insert, select, update

import exchange.publish as publishing
from exchange.bulk import Bulk
from exchange.closures import ClosureInput, add_closure
from exchange.config import Config
from exchange.health import read_health
from exchange.model import Event
from exchange.notify import Watcher
from exchange.publish import PublishFailed, held_back_now, publish
from exchange.schema import events, publications, publish_runs, revisions
from exchange.store import EVENT_COLUMNS, event_to_row, event_values
from exchange.targets import Target
from exchange.validation import validate_cifs_xml, validate_wzdx
from feeds.wzdx import parse_wzdx, wzdx_item_to_event
from geo.network import build_network
from geo.types import WayInput
from tests.support.closures import LINE, T0, T0_MS, frozen_config

config = pytest.fixture(frozen_config)


@pytest.fixture
def closures(engine: Engine, config: Config) -> list[str]:
    """Five closures, published once."""
    ids = [
        add_closure(engine, ClosureInput(street=f"{n}th Street", points=LINE, start="2026-03-02T08:00:00-08:00",
                                         end="2026-03-09T08:00:00-08:00", description=f"Works {n}"),
                    zone=config.zone, placement=None).id
        for n in range(5, 10)
    ]
    assert publish(engine, config).status == "published"
    return ids


def served(engine: Engine) -> dict[str, bytes]:
    with engine.connect() as conn:
        return {row.feed: row.body for row in conn.execute(select(publications))}


def incidents(engine: Engine) -> dict[str, str]:
    """Incident id -> description in the served CIFS XML."""
    root = etree.fromstring(served(engine)["cifs.xml"])
    return {str(item.get("id")): str(item.findtext("description")) for item in root.iter("incident")}


@pytest.fixture
def renderer_fails_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Callable[[Event], bool]], None]]:
    """Make every target's renderer raise for the events a predicate picks (a renderer bug, injected)."""
    original = publishing.enabled_targets

    def install(bad: Callable[[Event], bool]) -> None:
        def faulty(target: Target) -> Target:
            def render(chosen: Sequence[Event], config: Config, generated: datetime) -> dict[str, bytes]:
                for event in chosen:
                    if bad(event):
                        raise RuntimeError(f"renderer fault on {event.id}")
                return target.render(chosen, config, generated)

            return dataclasses.replace(target, render=render)

        monkeypatch.setattr(publishing, "enabled_targets", lambda config: [faulty(t) for t in original(config)])

    yield install


def _describe(engine: Engine, event_id: str, description: str) -> None:
    """What an operator's update does to the stored row, without going through entry validation."""
    with engine.begin() as conn:
        details = conn.execute(select(events.c.details).where(events.c.id == event_id)).scalar_one()
        conn.execute(update(events).where(events.c.id == event_id)
                     .values(details={**details, "description": description}, updated_ms=T0_MS + 1))


def test_a_failing_update_keeps_the_previous_version_served_with_a_flag(
    engine: Engine, config: Config, closures: list[str], renderer_fails_on: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    renderer_fails_on(lambda event: event.details is not None and event.details.description == "BOOM")
    _describe(engine, closures[0], "BOOM")
    _describe(engine, closures[1], "Works 6, now also the sidewalk")
    monkeypatch.setenv("EXCHANGE_NOW", str(T0_MS + 60_000))
    result = publish(engine, config)
    assert result.status == "published" and result.events == 5
    assert result.held_back == {closures[0]: f"newer version held back: cannot be rendered: RuntimeError: "
                                             f"renderer fault on {closures[0]}"}
    now = incidents(engine)
    assert now[closures[0]] == "Works 5", "the last good version stays served"
    assert now[closures[1]] == "Works 6, now also the sidewalk", "the other change went out"
    assert validate_cifs_xml(served(engine)["cifs.xml"]) == []
    assert validate_wzdx(served(engine)["wzdx.geojson"]) == []
    assert held_back_now(engine) == result.held_back


def test_every_event_failing_publishes_nothing_and_keeps_the_feeds_byte_identical(
    engine: Engine, config: Config, closures: list[str], renderer_fails_on: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = served(engine)
    renderer_fails_on(lambda event: True)
    monkeypatch.setenv("EXCHANGE_NOW", str(T0_MS + 3_600_000))  # past max_age_s: a new publication is due
    with pytest.raises(PublishFailed, match=r"^5 of 5 published events would be held back or disappear") as raised:
        publish(engine, config)
    assert raised.value.exit_code == 1 and "renderer fault" in raised.value.message
    assert served(engine) == before
    with engine.connect() as conn:
        last = conn.execute(select(publish_runs).order_by(publish_runs.c.id.desc()).limit(1)).one()
    # nothing is held back: the last good feeds, these five events in them, stay served; city IT is told
    assert last.status == "failed" and last.held_back == 0 and held_back_now(engine) == {}
    told = [n for n in Watcher(engine, config).notices(T0_MS + 3_600_000) if n.kind != "feed"]  # (feeds are Stale)
    assert [(n.kind, n.subject) for n in told] == [("publish-refused", name) for name in ("cifs", "datex2", "wzdx")]
    assert told[0].text.startswith("cifs was not published: 5 of 5 published events would be held back")
    assert told[0].text.endswith("; its last good feeds stay served")
    with engine.connect() as conn:  # and /health/sources says so (503) while it lasts, not only once the feed is stale
        problems = read_health(conn, config, T0_MS).problems
    assert any(p.startswith("cifs was not published: 5 of 5 published events") for p in problems), problems

    # once per spell (the review: each new count or first event was a new notice), and its end once
    watcher = Watcher(engine, config)
    assert len(watcher.check(T0_MS + 3_600_000)) >= 3
    renderer_fails_on(lambda event: event.id != closures[0])  # 4 of 5 now: other words, the same refusal
    monkeypatch.setenv("EXCHANGE_NOW", str(T0_MS + 2 * 3_600_000))
    with pytest.raises(PublishFailed, match=r"^4 of 5 published events"):
        publish(engine, config)
    assert [n for n in watcher.check(T0_MS + 2 * 3_600_000) if n.kind == "publish-refused"] == []
    renderer_fails_on(lambda event: False)
    monkeypatch.setenv("EXCHANGE_NOW", str(T0_MS + 3 * 3_600_000))
    assert publish(engine, config).status == "published"
    again = [(n.subject, n.text) for n in watcher.check(T0_MS + 3 * 3_600_000) if n.kind == "publish-refused"]
    assert again == [(name, f"{name} is published again") for name in ("cifs", "datex2", "wzdx")], again
    assert [n for n in watcher.check(T0_MS + 3 * 3_600_000 + 1) if n.kind == "publish-refused"] == []


def test_the_guard_lets_a_few_hold_backs_through(
    engine: Engine, config: Config, closures: list[str], renderer_fails_on: Any,
) -> None:
    renderer_fails_on(lambda event: event.id == closures[0])
    _describe(engine, closures[0], "changed")
    result = publish(engine, config)
    assert closures[0] in result.held_back, "1 of 5 is within the 20 % share"
    assert result.status == "unchanged", "the previous version is what the feeds already say"
    config.publish.max_hold_back_share = 0.1
    _describe(engine, closures[0], "changed again")
    with pytest.raises(PublishFailed):
        publish(engine, config)


def test_a_new_event_that_fails_is_held_back_and_the_rest_go_out(
    engine: Engine, config: Config, closures: list[str], renderer_fails_on: Any,
) -> None:
    fresh = add_closure(engine, ClosureInput(street="Parade Street", points=LINE, start="2026-03-02T08:00:00-08:00",
                                             description="Parade"), zone=config.zone, placement=None).id
    renderer_fails_on(lambda event: event.id == fresh)
    _describe(engine, closures[2], "Works 7, extended")
    result = publish(engine, config)
    assert result.held_back == {fresh: f"held back: cannot be rendered: RuntimeError: renderer fault on {fresh}"}
    assert fresh not in incidents(engine) and incidents(engine)[closures[2]] == "Works 7, extended"


def test_the_publish_clock_renews_on_change_or_age_only(
    engine: Engine, config: Config, closures: list[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = served(engine)
    root = etree.fromstring(first["cifs.xml"])
    assert root.get("timestamp") == "2026-03-02T15:00:00+00:00", "the generation time of the publication"
    monkeypatch.setenv("EXCHANGE_NOW", str(T0_MS + 60_000))
    assert publish(engine, config).status == "unchanged"
    assert served(engine) == first, "same bytes, same ETag: partners get their 304"
    monkeypatch.setenv("EXCHANGE_NOW", str(T0_MS + config.publish.max_age_s * 1000))
    assert publish(engine, config).status == "published"
    renewed = served(engine)
    assert renewed != first and incidents(engine) == {eid: f"Works {n}" for eid, n in zip(closures, range(5, 10),
                                                                                            strict=True)}
    # nine days later every closure has ended and aged out (keep_ended_h): the feeds are empty, on time
    monkeypatch.setenv("EXCHANGE_NOW", str(T0_MS + 9 * 86_400_000))
    result = publish(engine, config)
    assert (result.status, result.events, incidents(engine)) == ("published", 0, {})


def test_publish_exits_1_and_serves_the_same_bytes_when_every_event_fails(
    cli: Any, monkeypatch: pytest.MonkeyPatch, renderer_fails_on: Any,
) -> None:
    from tests.support.paths import DEMO

    assert cli("--config", str(DEMO), "sync").code == 0  # the demo closures, published
    from exchange.config_file import load_config
    from exchange.db import open_store

    engine = open_store(load_config(DEMO).database_url)
    try:
        first = served(engine)
        renderer_fails_on(lambda event: True)
        monkeypatch.setenv("EXCHANGE_NOW", str(int(datetime.now(UTC).timestamp() * 1000) + 3_600_000))
        failed = cli("--config", str(DEMO), "publish")
        assert failed.code == 1 and "Traceback" not in failed.err, failed
        assert failed.err.splitlines()[-1].startswith("error: 3 of 3 published events would be held back"), failed
        assert served(engine) == first
    finally:
        engine.dispose()


def test_a_lint_hold_back_never_serves_the_very_version_it_holds_back(
    engine: Engine, config: Config, closures: list[str],
) -> None:
    numbered = add_closure(engine, ClosureInput(street="1200 Wood Street", points=LINE, description="Numbered",
                                                start="2026-03-02T08:00:00-08:00"), zone=config.zone, placement=None)
    assert publish(engine, config).status == "published" and numbered.id in incidents(engine)
    config.publish.hold_back_failing = True
    result = publish(engine, config)
    # the Waze acceptance lint holds back from the CIFS target only: WZDx has no house-number rule
    assert result.held_back[numbered.id].startswith("cifs: held back: "), result.held_back
    assert "house number" in result.held_back[numbered.id]
    assert numbered.id not in incidents(engine) and set(closures) <= set(incidents(engine))
    assert numbered.id in {f["id"] for f in orjson.loads(served(engine)["wzdx.geojson"])["features"]}


# --------------------------------------------------------------------------- signed direction (#10)

#: CDOT work zones: two drawn against their signed direction (161 and 176 degrees off), one across
#: it (125 degrees off), one along it
CDOT_AGAINST = ("a4d1a943-8799-51ae-8c73-0bd0b8c92ea8", "1de16b3c-13cd-5222-a325-ac8bde007f0c")
CDOT_ACROSS = "040b4b1b-4475-5129-9506-a83b8c41374f"
CDOT_ALONG = "098bd70a-4e9e-5a78-8bb5-c62cbabd485a"


def store_cdot(engine: Engine, testdata: Path, source_ids: Sequence[str]) -> dict[str, str]:
    """The CDOT events ``source_ids``, imported through the WZDx codec, running at T0, stored as they are."""
    snapshot = parse_wzdx((testdata / "wzdx" / "cdot_prod_wzdx_v42_20230522.json").read_bytes())
    items = {item.source_id: item for item in snapshot.items}
    stored = [wzdx_item_to_event(items[sid], "wzdx", ZoneInfo("America/Denver"))
              .model_copy(update={"start_time": T0 - timedelta(hours=2), "end_time": T0 + timedelta(days=2)})
              for sid in source_ids]
    with engine.begin() as conn:
        Bulk(conn).insert(events, EVENT_COLUMNS,
                          [event_values(event_to_row(event, now_ms=T0_MS), EVENT_COLUMNS) for event in stored])
    return {event.source_id: event.id for event in stored}


def test_a_line_drawn_against_its_signed_direction_is_held_back_without_hold_back_failing(
    engine: Engine, config: Config, testdata: Path,
) -> None:
    assert config.publish.hold_back_failing is False
    ids = store_cdot(engine, testdata, [*CDOT_AGAINST, CDOT_ACROSS, CDOT_ALONG])
    result = publish(engine, config)
    assert result.status == "published" and result.events == 2
    assert set(result.held_back) == {ids[sid] for sid in CDOT_AGAINST}
    assert result.held_back[ids[CDOT_AGAINST[1]]] == (
        "held back: drawn against its stated direction (eastbound, heading 274 degrees)"
    )
    assert held_back_now(engine) == result.held_back
    told = {n.subject: n.text for n in Watcher(engine, config).notices(T0_MS) if n.kind == "held-back"}
    # said once (a cold trial read "is held back from the feeds: held back: drawn against ...")
    assert told[ids[CDOT_AGAINST[1]]] == (f"event {ids[CDOT_AGAINST[1]]}: held back: drawn against its stated "
                                          "direction (eastbound, heading 274 degrees)")
    out = {f["id"]: f for f in orjson.loads(served(engine)["wzdx.geojson"])["features"]}
    assert set(out) == {ids[CDOT_ACROSS], ids[CDOT_ALONG]}  # across its direction: a warning, served as drawn
    across = [tuple(p) for p in out[ids[CDOT_ACROSS]]["geometry"]["coordinates"]]
    stored_across = store_read(engine, ids[CDOT_ACROSS])
    assert len(across) == len(stored_across)  # never reversed: the points in their stored order
    assert all(p == pytest.approx(tuple(q), abs=1e-6) for p, q in zip(across, stored_across, strict=True))


def test_a_line_held_back_all_along_stays_out_when_it_ends(
    engine: Engine, config: Config, testdata: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found in a cold trial: "an end is never held back" put a work zone drawn against its signed direction,
    held back from every feed all along, in all of them the moment it ended (an operator's `closure end`, or
    its source dropping it), backwards line and all. An end goes out as the last good version with that
    end; one no partner ever saw stays out."""
    ids = store_cdot(engine, testdata, [CDOT_AGAINST[0], CDOT_ALONG])
    against, along = ids[CDOT_AGAINST[0]], ids[CDOT_ALONG]
    assert set(publish(engine, config).held_back) == {against}
    monkeypatch.setenv("EXCHANGE_NOW", str(T0_MS + 60_000))
    with engine.begin() as conn:
        conn.execute(events.update().where(events.c.id.in_([against, along]))
                     .values(status="ended", end_ms=T0_MS, updated_ms=T0_MS + 60_000))
    result = publish(engine, config)
    assert set(result.held_back) == {against}, result.held_back
    wzdx = {f["id"]: f["properties"] for f in orjson.loads(served(engine)["wzdx.geojson"])["features"]}
    assert against not in wzdx and against not in incidents(engine)
    assert wzdx[along]["end_date"] == "2026-03-02T15:00:00Z", "an end partners saw start goes out"


def test_a_network_that_does_not_place_a_line_proves_nothing_it_is_held_back(
    engine: Engine, config: Config, testdata: Path,
) -> None:
    ids = store_cdot(engine, testdata, [CDOT_AGAINST[0], CDOT_ALONG])
    # a street a few km from each, placing neither
    network = build_network({1: (-105.28, 38.96), 2: (-105.29, 38.96), 3: (-107.87, 39.55), 4: (-107.88, 39.55)},
                            [WayInput(1, [1, 2], {"highway": "residential", "name": "Somewhere Street"}),
                             WayInput(2, [3, 4], {"highway": "residential", "name": "Elsewhere Street"})])
    result = publish(engine, config, placement=SimpleNamespace(network=network))
    assert list(result.held_back) == [ids[CDOT_AGAINST[0]]] and result.events == 1
    assert ids[CDOT_AGAINST[0]] not in incidents(engine)


def test_an_event_far_outside_the_road_network_is_held_back_everywhere(
    engine: Engine, config: Config, testdata: Path,
) -> None:
    """Found in a cold trial: a row of another city's coordinates (a typo) went out in the feeds."""
    ids = store_cdot(engine, testdata, [CDOT_ALONG])
    network = build_network({1: (-105.28, 38.96), 2: (-105.29, 38.96)},
                            [WayInput(1, [1, 2], {"highway": "residential", "name": "Somewhere Street"})])
    result = publish(engine, config, placement=SimpleNamespace(network=network))
    reason = result.held_back[ids[CDOT_ALONG]]
    assert "km outside the road network's area: a coordinate typo" in reason, reason
    assert ids[CDOT_ALONG] not in incidents(engine)


def store_read(engine: Engine, event_id: str) -> list[Any]:
    with engine.connect() as conn:
        geometry = conn.execute(select(events.c.geometry).where(events.c.id == event_id)).scalar_one()
    found = orjson.loads(geometry) if isinstance(geometry, (str, bytes)) else geometry
    return list(found["coordinates"])


def test_a_publish_run_overtaken_by_a_newer_one_stores_nothing(
    engine: Engine, config: Config, closures: list[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found in a cold trial: on a first start the daemon's start-up publish (made from the empty store)
    was saved after the first sync's (3 events) and replaced it: partners got an empty feed for a
    minute. A run made before the publication now stored, from events that changed since it read
    them, keeps that publication and is recorded as unchanged, superseded."""
    before = served(engine)
    monkeypatch.setenv("EXCHANGE_NOW", str(T0_MS - 60_000))  # made a minute before what is served

    def read_empty_then_a_sync_writes(*_args: Any, **_kwargs: Any) -> Any:
        with engine.begin() as conn:  # the first sync commits after this run read the store, and publishes
            conn.execute(insert(revisions).values(event_id=closures[0], at_ms=T0_MS, action="updated"))
            conn.execute(update(publications).values(published_ms=T0_MS + 60_000))
        return publishing.Eligible([], [])

    monkeypatch.setattr(publishing, "eligible_events", read_empty_then_a_sync_writes)
    result = publish(engine, config)
    assert result.status == "unchanged"
    assert result.summary().startswith("publish: unchanged: superseded: the events changed after this run read them")
    assert served(engine) == before and len(incidents(engine)) == len(closures)
    with engine.connect() as conn:
        last = conn.execute(select(publish_runs).order_by(publish_runs.c.id.desc()).limit(1)).one()
    assert last.status == "unchanged" and last.message.startswith(
        "superseded: the events changed after this run read them, and a publication dated")


def test_a_host_whose_clock_is_behind_still_publishes_what_it_changed(
    engine: Engine, config: Config, closures: list[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found in a cold trial: a closure added on a host a minute behind the one that published last was
    left out ("publish: unchanged"): the run was dropped as older than the stored publication. Nothing
    changed since it read the events, so it is the store's latest word: stored, dated just after the
    stored publication (Last-Modified never goes back)."""
    with engine.connect() as conn:
        newest = conn.execute(select(func.max(publications.c.published_ms))).scalar_one()
    monkeypatch.setenv("EXCHANGE_NOW", str(newest - 60_000))
    added = add_closure(engine, ClosureInput(street="10th Street", points=LINE, start="2026-03-02T08:00:00-08:00",
                                             end="2026-03-09T08:00:00-08:00", description="Works 10"),
                        zone=config.zone, placement=None).id
    assert publish(engine, config).status == "published"
    assert added in incidents(engine) and len(incidents(engine)) == len(closures) + 1
    with engine.connect() as conn:
        dates = set(conn.execute(select(publications.c.published_ms)).scalars())
    assert dates == {(newest // 1000 + 1) * 1000}  # the next whole second: Last-Modified moves on
    generated = etree.fromstring(served(engine)["cifs.xml"]).get("timestamp")
    assert datetime.fromisoformat(generated) >= datetime.fromtimestamp(newest / 1000, tz=UTC).replace(microsecond=0), \
        "the feeds' own date does not go back either"
