"""Source and feed health: each state from the polls that make it, and since when; notifications
told once, across watchers sharing a store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, insert

from exchange.config import Config, PublishConfig, SourceConfig
from exchange.db import writing
from exchange.health import Run, State, feed_health, read_health, source_health
from exchange.notify import Watcher
from exchange.publications import FEEDS
from exchange.schema import publications, sync_runs
from exchange.targets import off_feeds

MIN = 60_000
NOW = 1_800_000_000_000


def waze(**settings: Any) -> SourceConfig:
    return SourceConfig.model_validate({"name": "waze", "kind": "waze-feed", "interval_s": 120, "jitter_s": 10,
                                        **settings})


def city(**settings: Any) -> SourceConfig:
    return SourceConfig.model_validate({"name": "city", "kind": "csv", "interval_s": 300, "jitter_s": 0, **settings})


def polls(*spec: tuple[int, str] | tuple[int, str, str | None, str | None]) -> list[Run]:
    """(minutes ago, status[, failure, message]), newest first as health reads them."""
    return [Run(NOW - item[0] * MIN, *item[1:]) for item in spec]  # type: ignore[arg-type]


def test_a_source_that_never_polled_is_stale_without_a_since() -> None:
    health = source_health(waze(), [], NOW)
    assert (health.state, health.since_ms, health.detail) == (State.STALE, None, "never polled")


def test_ok_since_the_first_good_poll_after_the_last_failure() -> None:
    health = source_health(waze(), polls((1, "ok"), (3, "duplicate"), (5, "ok"), (7, "failed", "fetch", "x")), NOW)
    assert health.state is State.OK and health.since_ms == NOW - 5 * MIN and health.failures == 0


def test_offline_since_the_first_failed_fetch_in_a_row() -> None:
    runs = polls((1, "failed", "fetch", "cannot reach ***: ConnectError"), (3, "failed", "fetch", "HTTP 503"),
                 (5, "ok"))
    health = source_health(waze(required=True), runs, NOW)
    assert health.state is State.OFFLINE and health.since_ms == NOW - 3 * MIN
    assert health.failures == 2 and health.required and "ConnectError" in health.detail
    assert health.last_success_ms == NOW - 5 * MIN


def test_a_payload_that_cannot_be_read_is_a_schema_error_not_offline() -> None:
    runs = polls((1, "failed", "payload", "not JSON"), (3, "failed", "fetch", "HTTP 503"))
    health = source_health(waze(), runs, NOW)
    assert health.state is State.SCHEMA_ERROR and health.since_ms == NOW - MIN, "its own streak"


def test_suspect_when_the_newest_poll_held_far_fewer_items() -> None:
    note = "suspect feed, nothing of that kind ended (alert: 2 vs recent median 300)"
    health = source_health(waze(), polls((1, "ok", None, note), (3, "ok", None, note), (5, "ok")), NOW)
    assert health.state is State.SUSPECT and health.since_ms == NOW - 3 * MIN
    # the same suspect snapshot served again is no recovery (found in a cold trial: Suspect, OK, Suspect)
    again = source_health(waze(), polls((0, "duplicate"), (1, "ok", None, note), (3, "ok", None, note), (5, "ok")),
                          NOW)
    assert again.state is State.SUSPECT and again.since_ms == NOW - 3 * MIN, again
    between = source_health(waze(), polls((0, "duplicate"), (1, "failed", "fetch"), (2, "ok", None, note), (5, "ok")),
                            NOW)
    assert between.state is State.SUSPECT, "a failed poll between reads nothing either (the review)"
    recovered = source_health(waze(), polls((0, "ok"), (1, "ok", None, note), (5, "ok")), NOW)
    assert recovered.state is State.OK


def test_stale_when_nobody_polled_for_three_intervals() -> None:
    health = source_health(city(), polls((16, "ok")), NOW)  # 3 x 5 min
    assert health.state is State.STALE and health.since_ms == NOW - 16 * MIN + 15 * MIN
    assert source_health(city(), polls((14, "ok")), NOW).state is State.OK


def test_the_waze_feed_is_stale_on_the_same_snapshot_for_15_minutes_a_city_file_is_not() -> None:
    same = polls(*[(m, "duplicate") for m in range(1, 18, 2)], (19, "ok"))
    health = source_health(waze(), same, NOW)
    assert health.state is State.STALE and health.since_ms == NOW - 19 * MIN + 15 * MIN
    assert "same snapshot" in health.detail
    assert source_health(waze(), same[:3], NOW).state is State.OK
    unchanged_file = polls(*[(m, "not-modified") for m in range(1, 600, 5)], (601, "ok"))
    assert source_health(city(), unchanged_file, NOW).state is State.OK
    assert source_health(city(stale_after_s=3600), unchanged_file, NOW).state is State.STALE


def test_replays_do_not_count() -> None:
    assert source_health(waze(), polls((1, "history"), (2, "ok")), NOW).state is State.OK


def test_a_feed_is_stale_past_max_age() -> None:
    settings = PublishConfig(max_age_s=900)
    assert feed_health("cifs.xml", None, settings, NOW).state is State.OFFLINE
    assert feed_health("cifs.xml", NOW - 15 * MIN, settings, NOW).state is State.OK
    stale = feed_health("cifs.xml", NOW - 16 * MIN, settings, NOW)
    assert stale.state is State.STALE and stale.since_ms == NOW - 16 * MIN + 15 * MIN + 30_000


def _store_runs(engine: Engine, *rows: tuple[str, int, str, str | None]) -> None:
    with writing(engine) as conn:
        for source, minutes_ago, status, failure in rows:
            at = NOW - minutes_ago * MIN
            conn.execute(insert(sync_runs).values(source=source, started_ms=at, finished_ms=at, status=status,
                                                  failure=failure, message=f"{status} run"))


def test_watchers_sharing_a_store_tell_each_change_once(engine: Engine, tmp_path: Path) -> None:
    received: list[dict[str, Any]] = []

    def hook(request: httpx.Request) -> httpx.Response:
        import json

        received.append(json.loads(request.content))
        return httpx.Response(204)

    config = Config.model_validate({
        "sources": [{"name": "waze", "url": "x", "required": True}, {"name": "city", "kind": "csv", "url": "y"}],
        "notify": {"webhook_url": "http://hooks.invalid/x"},
    })
    with writing(engine) as conn:
        conn.execute(insert(publications), [
            {"feed": name, "published_ms": NOW - MIN, "etag": '"e"', "content_type": "x", "body": b"",
             "body_gzip": b"", "events": 0} for name in FEEDS if name not in off_feeds(config)])
    _store_runs(engine, ("waze", 3, "ok", None), ("city", 3, "ok", None))
    first, second = (Watcher(engine, config, transport=httpx.MockTransport(hook)) for _ in range(2))
    assert first.check(NOW) == [] and second.check(NOW) == [], "all is well, and nothing was wrong before"

    _store_runs(engine, ("waze", 1, "failed", "fetch"))
    told = first.check(NOW) + second.check(NOW)
    assert [(n.kind, n.subject, n.state) for n in told] == [("source", "waze", "Offline")]
    assert [(r["kind"], r["subject"], r["state"]) for r in received] == [("source", "waze", "Offline")]
    assert received[0]["text"].startswith("traffic-exchange: source waze is Offline since ")
    with engine.connect() as conn:
        report = read_health(conn, config, NOW)
    assert report.problems == [f"source waze is Offline: {report.sources[0].detail}"]

    _store_runs(engine, ("waze", 0, "ok", None))
    assert [(n.subject, n.state) for n in second.check(NOW) + first.check(NOW)] == [("waze", "OK")]
    assert first.check(NOW) == [] and len(received) == 2


@pytest.mark.parametrize("status", [500, None])
def test_a_webhook_that_fails_is_logged_and_the_watch_goes_on(
    engine: Engine, status: int | None, caplog: pytest.LogCaptureFixture
) -> None:
    def hook(request: httpx.Request) -> httpx.Response:
        if status is None:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(status)

    config = Config.model_validate({"sources": [{"name": "waze", "url": "x"}],
                                    "notify": {"webhook_url": "http://hooks.invalid/x"}})
    _store_runs(engine, ("waze", 1, "failed", "payload"))
    watcher = Watcher(engine, config, transport=httpx.MockTransport(hook))
    told = watcher.check(NOW)
    assert [n.state for n in told] == ["SchemaError"] and list(watcher.sent) == []
    assert watcher.sent.maxlen == 100  # bounded: a daemon runs for months
    assert "webhook:" in caplog.text and "source waze is SchemaError" in caplog.text


def test_a_stale_spell_that_ends_with_new_data_is_ok_since_then() -> None:
    runs = polls((1, "ok"), *[(m, "duplicate") for m in range(3, 25, 2)], (25, "ok"), (27, "ok"))
    health = source_health(waze(), runs, NOW)
    assert health.state is State.OK and health.since_ms == NOW - MIN, "since the new data, not before the spell"
    gap = polls((1, "ok"), (3, "ok"), (30, "ok"))  # nobody polled for 27 minutes: Stale between
    assert source_health(waze(), gap, NOW).since_ms == NOW - 3 * MIN


def test_an_older_snapshot_is_a_poll_without_new_data() -> None:
    runs = polls((1, "history"), (3, "history"), (5, "ok"))
    health = source_health(waze(), runs, NOW)
    assert health.state is State.OK and health.last_success_ms == NOW - MIN
    assert source_health(waze(), polls((1, "history"), (20, "ok")), NOW).state is State.STALE


def _webhook_while_offline(engine: Engine, down_status: int | None) -> tuple[Watcher, dict[str, bool], list[str]]:
    """A watcher of one source that is Offline, its webhook receiver down (``up``: False) until a test brings
    it up: down, it refuses the connection (``down_status`` None) or answers that status; up, it keeps the
    states it is sent (``received``)."""
    up = {"value": False}
    received: list[str] = []

    def hook(request: httpx.Request) -> httpx.Response:
        import json

        if not up["value"]:
            if down_status is None:
                raise httpx.ConnectError("refused", request=request)
            return httpx.Response(down_status)
        received.append(json.loads(request.content)["state"])
        return httpx.Response(200)

    config = Config.model_validate({"sources": [{"name": "waze", "url": "x"}],
                                    "notify": {"webhook_url": "http://hooks.invalid/x"}})
    _store_runs(engine, ("waze", 1, "failed", "fetch"))
    return Watcher(engine, config, transport=httpx.MockTransport(hook)), up, received


def test_a_notice_the_webhook_did_not_take_is_sent_again_until_it_is(engine: Engine) -> None:
    from exchange.notify import GIVE_UP_AFTER_MS, RETRY_EVERY_MS

    watcher, up, received = _webhook_while_offline(engine, down_status=None)
    assert [n.state for n in watcher.check(NOW)] == ["Offline"] and received == []
    up["value"] = True
    assert watcher.check(NOW + 1_000) == [] and received == [], "not again before a minute"
    assert watcher.check(NOW + RETRY_EVERY_MS) == [] and received == ["Offline"], "sent again, not told again"
    assert watcher.check(NOW + 3 * RETRY_EVERY_MS) == [] and received == ["Offline"], "delivered: not again"
    up["value"] = False
    _store_runs(engine, ("waze", 0, "ok", None))
    assert [n.state for n in watcher.check(NOW)] == ["OK"]
    watcher.check(NOW + GIVE_UP_AFTER_MS + 1)
    up["value"] = True
    watcher.check(NOW + GIVE_UP_AFTER_MS + 3 * RETRY_EVERY_MS)
    assert "OK" not in received, "given up after a day (a day later the source is Stale: that one is new)"


def test_a_problem_over_before_its_retry_is_not_sent_after_the_recovery(engine: Engine) -> None:
    """Found in a cold trial: the receiver refused "Offline", took "OK" 40 s later, and then the retry of
    "Offline" came: the chat's last word said the source was down while it was up."""
    from exchange.notify import RETRY_EVERY_MS

    watcher, up, received = _webhook_while_offline(engine, down_status=500)
    assert [n.state for n in watcher.check(NOW)] == ["Offline"] and received == []
    up["value"] = True
    _store_runs(engine, ("waze", 0, "ok", None))
    assert [n.state for n in watcher.check(NOW + 40_000)] == ["OK"] and received == ["OK"]
    watcher.check(NOW + 2 * RETRY_EVERY_MS)
    assert received == ["OK"], "the Offline it replaced is not sent any more"


def test_the_same_state_again_is_not_told_again(engine: Engine) -> None:
    config = Config.model_validate({"sources": [{"name": "waze", "url": "x"}]})
    _store_runs(engine, ("waze", 3, "failed", "fetch"))
    watcher = Watcher(engine, config)
    assert [n.state for n in watcher.check(NOW)] == ["Offline"]
    _store_runs(engine, ("waze", 2, "ok", None), ("waze", 1, "failed", "fetch"))
    assert watcher.check(NOW) == [], "a new Offline spell right after, the OK between unseen: not a change"


def test_a_webhook_set_up_during_an_outage_hears_of_it_once(engine: Engine) -> None:
    """Found in a cold trial: a source Offline since before the webhook was configured was told in the log
    only, and the webhook never heard of it, restart after restart."""
    received: list[str] = []

    def hook(request: httpx.Request) -> httpx.Response:
        import json

        received.append(json.loads(request.content)["text"])
        return httpx.Response(204)

    sources = [{"name": "waze", "url": "x"}]
    _store_runs(engine, ("waze", 2, "failed", "fetch"))
    assert [n.state for n in Watcher(engine, Config.model_validate({"sources": sources})).check(NOW)] == ["Offline"]
    with_hook = Config.model_validate({"sources": sources, "notify": {"webhook_url": "http://hooks.invalid/x"}})
    first, second = (Watcher(engine, with_hook, transport=httpx.MockTransport(hook)) for _ in range(2))
    told = first.check(NOW + MIN) + second.check(NOW + MIN)
    assert [(n.subject, n.state) for n in told] == [("waze", "Offline")]
    assert len(received) == 1 and received[0].endswith("(going on since before the webhook was set up)")
    assert first.check(NOW + 2 * MIN) == [] and len(received) == 1, "once"
    _store_runs(engine, ("waze", 0, "ok", None))
    assert [n.state for n in first.check(NOW + 3 * MIN)] == ["OK"] and len(received) == 2
