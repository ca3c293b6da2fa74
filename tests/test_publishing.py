"""Publishing never freezes and never drops a live closure: per-event hold-back with the last good
version kept, the mass hold-back guard, and the publish clock (content digest, max age)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import Engine, select, update

import exchange.publish as publishing
from exchange.closures import ClosureInput, add_closure
from exchange.config import Config
from exchange.model import Event
from exchange.publish import PublishFailed, held_back_now, publish
from exchange.schema import events, publications, publish_runs
from exchange.validation import validate_cifs_xml, validate_wzdx

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)
LINE = [(-122.300788, 37.809578), (-122.302087, 37.810233)]


@pytest.fixture
def config(monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("EXCHANGE_NOW", str(T0_MS))
    return Config()


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
    """Make the renderer raise for the events a predicate picks (a renderer bug, injected)."""
    original = publishing.render_feeds

    def install(bad: Callable[[Event], bool]) -> None:
        def render(chosen: Sequence[Event], config: Config, generated: datetime) -> dict[str, bytes]:
            for event in chosen:
                if bad(event):
                    raise RuntimeError(f"renderer fault on {event.id}")
            return original(chosen, config, generated)

        monkeypatch.setattr(publishing, "render_feeds", render)

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
    assert last.status == "failed" and last.held_back == 5


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
    assert result.held_back[numbered.id].startswith("held back: "), result.held_back
    assert "house number" in result.held_back[numbered.id]
    assert numbered.id not in incidents(engine) and set(closures) <= set(incidents(engine))
