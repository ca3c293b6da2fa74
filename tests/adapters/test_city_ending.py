"""City sources end what they no longer list, whatever their feed's own timestamp says.

The files are trimmed copies of real feeds (CDOT's WZDx 4.2, London Ontario's CIFS), so a removed
feature leaves the rest of the file, and its ``update_date`` / ``timestamp``, exactly as they were:
the way a publisher that does not touch its timestamp on a removal serves it. The last test serves
one over HTTP with an ETag, so that an unchanged file is answered 304.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from lxml import etree
from sqlalchemy import Engine, select

from adapters import adapter_class
from adapters.base import Source
from exchange.config import Config, LifecycleConfig
from exchange.publish import publish
from exchange.schema import events, publications, sightings, sources, sync_runs
from exchange.sync import SyncResult, sync_source
from tests.support.helpers import QuietHandler, http_server

LIFECYCLE = LifecycleConfig()
POLLS = LIFECYCLE.end_after_missed_polls
DENVER, LONDON_ON = ZoneInfo("America/Denver"), ZoneInfo("America/Toronto")
POLL_MS = 300_000
DAY_MS = 86_400_000

# CDOT, update_date 2023-05-22T23:40:06Z: under way until 2025, under way until 05-26, planned for 05-23 06:00
CDOT_KEPT = "5001571f-3352-54f5-a05e-d63c9bd29d56"
CDOT_GONE = "695c2106-1627-5ba1-9e78-1dd855d41947"
CDOT_PLANNED = "a8ae905f-31f1-5563-a23d-752d880366d9"
CDOT_NOW = "2023-05-23T00:00:00+00:00"
# London, timestamp 2018-04-12T21:30:01-05:00: under way until 2019, under way until 2018-11
LONDON_KEPT, LONDON_GONE = "12167", "17945"
LONDON_NOW = "2018-04-12T22:00:00-05:00"


def ms(text: str) -> int:
    return round(datetime.fromisoformat(text).timestamp() * 1000)


@dataclass
class City:
    """One city feed, trimmed to some of its items and written where the source reads it."""

    kind: str
    zone: ZoneInfo
    now: str
    kept: str
    gone: str
    write: Callable[[Path, list[str]], None]
    namespace: str
    planned: list[str] = field(default_factory=list)

    def source(self, url: str) -> Source:
        return adapter_class(self.kind)(self.kind, {"url": url, "retries": 0}, zone=self.zone)


def write_wzdx(testdata: Path) -> Callable[[Path, list[str]], None]:
    document = orjson.loads((testdata / "wzdx" / "cdot_prod_wzdx_v42_20230522.json").read_bytes())

    def write(path: Path, ids: list[str]) -> None:
        features = [feature for feature in document["features"] if feature["id"] in ids]
        assert len(features) == len(ids)
        path.write_bytes(orjson.dumps({**document, "features": features}, option=orjson.OPT_INDENT_2))

    return write


def write_cifs(testdata: Path) -> Callable[[Path, list[str]], None]:
    original = (testdata / "cifs" / "london_on_traffic-incidents_20180412.xml").read_bytes()

    def write(path: Path, ids: list[str]) -> None:
        root = etree.fromstring(original)
        for incident in root.findall("incident"):
            if incident.get("id") not in ids:
                root.remove(incident)
        assert len(root) == len(ids)
        path.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))

    return write


@pytest.fixture(params=["wzdx", "cifs"])
def city(request: pytest.FixtureRequest, testdata: Path) -> City:
    if request.param == "wzdx":
        return City("wzdx", DENVER, CDOT_NOW, CDOT_KEPT, CDOT_GONE, write_wzdx(testdata), "wzdx", [CDOT_PLANNED])
    return City("cifs", LONDON_ON, LONDON_NOW, LONDON_KEPT, LONDON_GONE, write_cifs(testdata), "cifs")


class Clock:
    """``EXCHANGE_NOW``, moved on by hand."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, start_ms: int) -> None:
        self.monkeypatch, self.ms = monkeypatch, start_ms
        self.set(start_ms)

    def set(self, at_ms: int) -> None:
        self.ms = at_ms
        self.monkeypatch.setenv("EXCHANGE_NOW", str(at_ms))

    def advance(self, by_ms: int = POLL_MS) -> int:
        self.set(self.ms + by_ms)
        return self.ms


def stored(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        return {row["source_id"]: dict(row) for row in conn.execute(select(events)).mappings()}


def missed(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(select(sightings.c.event_id, sightings.c.missed)).all()
    return {eid.rsplit(":", 1)[1]: count for eid, count in rows}


def cifs_incidents(engine: Engine, config: Config) -> dict[str, str | None]:
    """Incident id -> end time in the CIFS XML that publishing serves."""
    publish(engine, config)
    with engine.connect() as conn:
        body = conn.execute(select(publications.c.body).where(publications.c.feed == "cifs.xml")).scalar_one()
    root = etree.fromstring(body)
    return {str(item.get("id")): item.findtext("endtime") for item in root.iter("incident")}


def test_a_city_feed_whose_timestamp_stays_ends_what_it_no_longer_lists(
    engine: Engine, city: City, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch, ms(city.now))
    config = Config(timezone=str(city.zone))
    path = tmp_path / f"feed.{city.kind}"
    source = city.source(str(path))
    kept, gone = (f"{city.namespace}:city:{ident}" for ident in (city.kept, city.gone))
    city.write(path, [city.kept, city.gone, *city.planned])
    first = sync_source(engine, source, LIFECYCLE)
    assert (first.status, first.new, first.rejected) == ("ok", 2 + len(city.planned), 0), first.item_errors
    listed_ms = clock.ms
    before = cifs_incidents(engine, config)
    assert {kept, gone, *(f"{city.namespace}:city:{p}" for p in city.planned)} == set(before)

    city.write(path, [city.kept])  # the feed's timestamp stays what it was
    results: list[SyncResult] = []
    for _ in range(POLLS):
        clock.advance()
        results.append(sync_source(engine, source, LIFECYCLE))
    assert [r.status for r in results] == ["ok"] * POLLS, "a city poll is never a duplicate"
    assert {r.snapshot_ms for r in results} == {first.snapshot_ms}
    assert [r.ended for r in results] == [0] * (POLLS - 1) + [1 + len(city.planned)]
    rows = stored(engine)
    assert (rows[city.gone]["status"], rows[city.gone]["end_ms"]) == ("ended", listed_ms), \
        "ended when the last poll that listed it ran, not at the feed's stale timestamp"
    assert [rows[planned]["status"] for planned in city.planned] == ["cancelled"] * len(city.planned)
    assert rows[city.kept]["status"] == "active"

    # the feeds carry the ended one with its end for publish.keep_ended_h, then drop it
    now = cifs_incidents(engine, config)
    assert set(now) == {kept, gone}, "a planned one that went away leaves at once"
    ended_at, planned_end = now[gone], before[gone]
    assert ended_at is not None and ms(ended_at) == listed_ms
    assert planned_end is not None and ms(planned_end) > listed_ms
    clock.advance(round(config.publish.keep_ended_h * 3_600_000) + POLL_MS)
    assert set(cifs_incidents(engine, config)) == {kept}

    # back in its feed: reopened with its own end
    city.write(path, [city.kept, city.gone])
    back = sync_source(engine, source, LIFECYCLE)
    assert (back.status, back.updated) == ("ok", 1)
    assert stored(engine)[city.gone]["status"] == "active"


def test_the_same_file_read_again_counts_every_poll(engine: Engine, testdata: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Byte for byte the same payload: still a poll (the removal may be what the file last said)."""
    clock = Clock(monkeypatch, ms(CDOT_NOW))
    path = tmp_path / "cdot.json"
    write_wzdx(testdata)(path, [CDOT_KEPT, CDOT_GONE])
    source = adapter_class("wzdx")("cdot", {"url": str(path)}, zone=DENVER)
    sync_source(engine, source, LIFECYCLE)
    write_wzdx(testdata)(path, [CDOT_KEPT])
    body = path.read_bytes()
    for poll in range(1, POLLS + 1):
        clock.advance()
        assert path.read_bytes() == body
        result = sync_source(engine, source, LIFECYCLE)
        assert (result.status, result.unchanged) == ("ok", 1)
        assert missed(engine).get(CDOT_GONE) == (poll if poll < POLLS else None)
    assert stored(engine)[CDOT_GONE]["status"] == "ended"


def test_a_city_feed_whose_timestamp_goes_back_is_not_history(
    engine: Engine, testdata: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A publisher whose timestamp is its newest item's time goes back when that item is removed."""
    Clock(monkeypatch, ms(CDOT_NOW))
    path = tmp_path / "cdot.json"
    write_wzdx(testdata)(path, [CDOT_KEPT, CDOT_GONE])
    source = adapter_class("wzdx")("cdot", {"url": str(path)}, zone=DENVER)
    newer = orjson.loads(path.read_bytes())
    newer["feed_info"]["update_date"] = "2023-05-22T23:50:00Z"
    path.write_bytes(orjson.dumps(newer))
    sync_source(engine, source, LIFECYCLE)
    write_wzdx(testdata)(path, [CDOT_KEPT])  # back to 23:40:06
    results = [sync_source(engine, source, LIFECYCLE) for _ in range(POLLS)]
    assert [r.status for r in results] == ["ok"] * POLLS and results[-1].ended == 1
    assert stored(engine)[CDOT_GONE]["status"] == "ended"
    with engine.connect() as conn:
        newest = conn.execute(select(sources.c.newest_snapshot_ms)).scalar_one()
    assert newest == ms("2023-05-22T23:50:00+00:00"), "the newest timestamp seen is kept"


@dataclass
class Upstream:
    """A city's feed over HTTP: the current file with an ETag of its bytes, 304 when unchanged."""

    body: bytes = b""
    answers: list[int] = field(default_factory=list)


class _Handler(QuietHandler):
    upstream: Upstream

    def do_GET(self) -> None:
        body = self.upstream.body
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        status = 304 if self.headers.get("If-None-Match") == etag else 200
        self.upstream.answers.append(status)
        self.answer(status, b"" if status == 304 else body, {"ETag": etag, "Content-Type": "application/geo+json"})


@pytest.fixture
def upstream() -> Iterator[tuple[str, Upstream]]:
    state = Upstream()
    with http_server(type("Handler", (_Handler,), {"upstream": state})) as url:
        yield f"{url}/wzdx.geojson", state


def test_a_304_ends_nothing_listed_and_misses_again_what_the_last_payload_dropped(
    engine: Engine, testdata: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    upstream: tuple[str, Upstream],
) -> None:
    url, server = upstream
    clock = Clock(monkeypatch, ms(CDOT_NOW))
    path = tmp_path / "cdot.json"
    write = write_wzdx(testdata)
    source = adapter_class("wzdx")("cdot", {"url": url, "retries": 0}, zone=DENVER)

    def poll() -> SyncResult:
        clock.advance()
        server.body = path.read_bytes()
        return sync_source(engine, source, LIFECYCLE)

    write(path, [CDOT_KEPT, CDOT_GONE])
    assert poll().new == 2
    unchanged = [poll() for _ in range(3 * POLLS)]
    assert {r.status for r in unchanged} == {"not-modified"} and server.answers[1:] == [304] * 3 * POLLS
    assert missed(engine) == {CDOT_KEPT: 0, CDOT_GONE: 0}
    assert {row["status"] for row in stored(engine).values()} == {"active"}

    write(path, [CDOT_KEPT])  # removed: one missed poll, then the file stays the same behind 304s
    assert (poll().status, missed(engine)[CDOT_GONE]) == ("ok", 1)
    answers = [poll() for _ in range(POLLS - 1)]
    assert [r.status for r in answers] == ["not-modified"] * (POLLS - 1)
    assert [r.ended for r in answers] == [0] * (POLLS - 2) + [1], "a 304 is the same payload: missed again"
    assert stored(engine)[CDOT_GONE]["status"] == "ended"
    assert missed(engine) == {CDOT_KEPT: 0}, "what is still listed is never counted"
    with engine.connect() as conn:
        statuses = conn.execute(select(sync_runs.c.status).order_by(sync_runs.c.id)).scalars().all()
    assert statuses.count("not-modified") == server.answers.count(304) == 3 * POLLS + POLLS - 1
    assert "duplicate" not in statuses

