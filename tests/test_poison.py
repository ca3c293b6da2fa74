"""One bad item never aborts a poll (issue 9): poison values beside good items, on both stores.

A poison value passes parsing and then breaks the store or a conversion: a whole number beyond its
column, a number beyond the float range, a lone surrogate, nesting 1,000 levels deep, an id of 1 MB.
Each rejects its own item with its reason (an ItemError on the sync run), the good items beside it
are stored, and the run is ok. An exception nothing foresaw is a failed run with a one-line message
(``InternalError``), never a traceback.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from sqlalchemy import Engine, String, select

import exchange.placement as placement_module
from adapters.base import Source, Watermark
from adapters.waze import WazeFeedAdapter
from exchange.config import LifecycleConfig, NetworkConfig
from exchange.errors import InternalError
from exchange.model import ItemError
from exchange.placement import Placement
from exchange.schema import events, sync_runs
from exchange.sync import Reconciler, SyncResult, ingest_payload, sync_source
from feeds.city_values import INT32, JSON_INT, TEXT_COLUMNS, check_nesting, check_storable
from feeds.items import digest, dumps_lenient, load_json
from tests.adapters.test_city_sources import CSV_WKT, GEOJSON, HEADER, build, closure, write_csv
from tests.support.helpers import BASE_MS, QuietHandler, Run, alert, feed, http_server, jam
from tests.support.paths import OSM
from tests.test_sync import dump

LIFECYCLE = LifecycleConfig()
HUGE = b"1" + b"0" * 399  # a 400-digit whole number: beyond the float range
DIGITS = b"1" * 5000  # more digits than Python converts to an int (4300)
DEEP = b'{"k": ' * 1000 + b"1" + b"}" * 1000  # objects nested 1,000 levels deep
MEGA_ID = "u" * 1_000_000
#: how a reason names the tree of DEEP (the path is cut at 60 characters)
TOO_DEEP = "tree" + ".k" * 28 + "...: nested more than 64 levels deep"


def raw(record: dict[str, Any], *extra: bytes) -> bytes:
    """``record`` as JSON, with raw ``"key": value`` members appended (what json.dumps cannot write)."""
    body = json.dumps(record).encode()
    return body[:-1] + b"".join(b", " + member for member in extra) + b"}"


def envelope(poll: int, alerts: list[bytes], jams: list[bytes] | None = None) -> bytes:
    start = BASE_MS + poll * 120_000
    return (b'{"startTimeMillis": %d, "endTimeMillis": %d, "alerts": [%s], "jams": [%s]}'
            % (start, start + 60_000, b",".join(alerts), b",".join(jams or [])))


#: name -> (an alert holding one poison value, the start of the reason it is rejected with)
POISON: dict[str, tuple[bytes, str]] = {
    "reliability 10**30": (raw(alert("p-reliability"), b'"reliability": 1' + b"0" * 30),
                           "field 'reliability' is out of range (1e+30; the store keeps -2147483648 to 2147483647)"),
    "400-digit coordinate": (raw(alert("p-coordinate", location={"y": 37.8}), b'"location": {"x": ' + HUGE
                                 + b', "y": 37.8}'),
                             "location.x: inf is not a finite number"),
    "5000-digit number": (raw(alert("p-digits"), b'"score": ' + DIGITS), "score: inf is not a finite number"),
    "lone surrogate in a street": (json.dumps(alert("p-street", street="Main\ud800St")).encode(),
                                   "street: is not valid Unicode text (a lone surrogate U+D800 at position 4)"),
    "lone surrogate in a key": (json.dumps(alert("p-key", **{"n\ud800me": 1})).encode(),
                                "a field name under the record is not valid Unicode text (a lone surrogate U+D800"),
    "nested 1000 deep": (raw(alert("p-deep"), b'"tree": ' + DEEP), TOO_DEEP),
    "1 MB uuid": (json.dumps(alert(MEGA_ID)).encode(), "id: 1000000 characters, more than the 200 an id may have"),
}
GOOD = [json.dumps(alert("a1")).encode(), json.dumps(alert("a2", street="Broadway")).encode()]


def waze() -> WazeFeedAdapter:
    return WazeFeedAdapter("waze", {"url": ""})


def stored_ids(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(events.c.id)).scalars())


def stored_errors(engine: Engine, run_id: int | None) -> list[dict[str, Any]]:
    """The run's item errors read back through the store's own JSON reader (orjson)."""
    with engine.connect() as conn:
        row = conn.execute(select(sync_runs.c.status, sync_runs.c.item_errors).where(sync_runs.c.id == run_id)).one()
    assert row.status == "ok"
    return list(row.item_errors or [])


def reasons(result: SyncResult) -> dict[str | None, str]:
    return {error.source_id: error.reason for error in result.item_errors}


# --------------------------------------------------------------------------- the Waze feed


def test_one_poll_keeps_the_good_items_and_rejects_each_poison_value(engine: Engine) -> None:
    poison_jams = [
        json.dumps(jam(7, delay=10**12)).encode(),
        json.dumps(jam(8, blockingAlertUuid="b" * 300)).encode(),
        json.dumps(jam(9, country="C" * 21)).encode(),
    ]
    body = envelope(0, [GOOD[0], *(item for item, _ in POISON.values()), GOOD[1]],
                    [json.dumps(jam(101)).encode(), *poison_jams])
    result = ingest_payload(engine, waze(), body, LIFECYCLE)
    assert (result.status, result.new, result.rejected) == ("ok", 3, len(POISON) + 3), result.item_errors
    assert stored_ids(engine) == {"waze:alert:a1", "waze:alert:a2", "waze:jam:101"}
    rejected = reasons(result)
    for name, (_, reason) in POISON.items():
        found = [text for text in rejected.values() if text.startswith(reason)]
        assert len(found) == 1, (name, reason, rejected)
    assert rejected["7"] == "field 'delay' is out of range (1000000000000; the store keeps -2147483648 to 2147483647)"
    assert rejected["8"] == "field 'blockingAlertUuid': 300 characters, more than the 200 it may have"
    assert rejected["9"] == "field 'country': 21 characters, more than the 20 it may have"
    # the 1 MB id is named, shortened, in the item error; everything stored reads back
    long_id = next(source_id for source_id in rejected if source_id and source_id.startswith("uuu"))
    assert len(long_id) == 200 and long_id.endswith("...")
    assert len(stored_errors(engine, result.run_id)) == result.rejected


def test_each_poison_value_alone_rejects_only_its_item(engine: Engine) -> None:
    """Alone, some poison values are read by orjson (its fast path), others only by the fallback reader."""
    for poll, (name, (item, reason)) in enumerate(POISON.items()):
        checked = waze().read(envelope(poll, [item])).values_checked
        result = ingest_payload(engine, waze(), envelope(poll, [GOOD[0], item]), LIFECYCLE)
        assert (result.status, result.rejected) == ("ok", 1), (name, result)
        assert result.item_errors[0].reason.startswith(reason), (name, checked, result.item_errors)
        assert result.item_errors[0].step == "convert"
        assert len(stored_errors(engine, result.run_id)) == 1
    assert stored_ids(engine) == {"waze:alert:a1"}


def test_a_poisoned_new_version_keeps_the_stored_event(engine: Engine) -> None:
    ingest_payload(engine, waze(), feed(0, alerts=[alert("a1")]), LIFECYCLE)
    result = ingest_payload(engine, waze(), envelope(1, [raw(alert("a1"), b'"score": ' + DIGITS)]), LIFECYCLE)
    assert (result.status, result.updated, result.rejected) == ("ok", 0, 1)
    with engine.connect() as conn:
        row = conn.execute(select(events.c.status, events.c.attributes)).one()
    assert row.status == "active" and "score" not in row.attributes


def test_the_cli_reports_the_rejections_and_exits_0(cli: Callable[..., Run], tmp_path: Path) -> None:
    path = tmp_path / "poll.json"
    path.write_bytes(envelope(0, [GOOD[0], *(item for item, _ in POISON.values())]))
    run = cli("replay", str(path))
    assert run.code == 0, run
    assert "Traceback" not in run.err and "1 new" in run.err and f"{len(POISON)} rejected" in run.err


# --------------------------------------------------------------------------- city sources


def ingest_source(engine: Engine, source: Source) -> SyncResult:
    body = source.fetch(Watermark()).body
    assert body is not None
    return ingest_payload(engine, source, body, LIFECYCLE)


def city_reasons(result: SyncResult) -> dict[str | None, str]:
    assert result.status == "ok"
    return {error.source_id: error.reason for error in result.item_errors}


def test_csv_rows_with_poison_values_are_rejected_one_by_one(engine: Engine, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "closures.csv", [
        HEADER,
        closure("ok-1"),                                                                          # row 2
        closure("coordinate", wkt=f"LINESTRING ({HUGE.decode()} 39.74, -104.98 39.74)"),          # row 3
        closure("digits", schedule='{"monday": ' + DIGITS.decode() + "}"),                        # row 4
        closure("deep", schedule='{"monday": ' + "[" * 1000 + "]" * 1000 + "}"),                  # row 5
        closure("i" * 300),                                                                       # row 6
        closure("cell", description="d" * 200_000),                                               # row 7
        closure("ok-2", street="Broadway"),                                                       # row 8
    ])
    with warnings.catch_warnings():  # GEOS reads the 400-digit number as inf: numpy's warning stays quiet
        warnings.simplefilter("error", RuntimeWarning)
        result = ingest_source(engine, build(CSV_WKT, url=str(path)))
    assert stored_ids(engine) == {"city:city:ok-1", "city:city:ok-2"}
    rejected = city_reasons(result)
    assert rejected["coordinate"] == "row 3: polyline point 1: coordinates must be finite numbers"
    assert rejected["digits"] == "row 4: schedule: monday hours must be text 'HH:MM-HH:MM[,HH:MM-HH:MM]', got float"
    assert rejected["deep"] == "row 5: schedule: monday hours must be text 'HH:MM-HH:MM[,HH:MM-HH:MM]', got list"
    assert rejected["i" * 197 + "..."] == "row 6: id: 300 characters, more than the 200 an id may have"
    assert rejected[None].startswith("row 7: malformed CSV: field larger than field limit")
    assert len(stored_errors(engine, result.run_id)) == 5


def feature_bytes(closure_id: bytes, *members: bytes, geometry: bytes | None = None) -> bytes:
    properties = b", ".join([b'"closure_id": ' + closure_id, b'"STREET": "Colfax Ave"', b'"START_DATE": %d' % BASE_MS,
                             *members])
    shape = geometry or b'{"type": "LineString", "coordinates": [[-104.99, 39.74], [-104.98, 39.74]]}'
    return b'{"type": "Feature", "geometry": %s, "properties": {%s}}' % (shape, properties)


GEOJSON_POISON = [
    feature_bytes(b'"ok-1"'),
    feature_bytes(b'"coordinate"', geometry=b'{"type": "LineString", "coordinates": [[' + HUGE
                  + b', 39.74], [-104.98, 39.74]]}'),
    feature_bytes(b'"digits"', b'"score": ' + DIGITS),
    feature_bytes(b'"street"', b'"STREET": "Main\\ud800St"'),
    feature_bytes(b'"key"', b'"\\ud800": 1'),
    feature_bytes(b'"deep"', b'"tree": ' + DEEP),
    feature_bytes(b'"' + MEGA_ID.encode() + b'"'),
    feature_bytes(b'"ok-2"'),
]
GEOJSON_REASONS = {
    "coordinate": "feature 1: polyline point 1: coordinates must be finite numbers",
    "digits": "feature 2: score: inf is not a finite number (infinite, or beyond the float range)",
    "street": "feature 3: STREET: is not valid Unicode text (a lone surrogate U+D800 at position 4)",
    "key": "feature 4: a field name under the record is not valid Unicode text (a lone surrogate U+D800 at position 0)",
    "deep": f"feature 5: {TOO_DEEP}",
    MEGA_ID[:197] + "...": "feature 6: id: 1000000 characters, more than the 200 an id may have",
}


def test_geojson_features_with_poison_values_are_rejected_one_by_one(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "closures.geojson"
    path.write_bytes(b'{"type": "FeatureCollection", "features": [' + b",".join(GEOJSON_POISON) + b"]}")
    result = ingest_source(engine, build(GEOJSON, url=str(path)))
    assert stored_ids(engine) == {"city:city:ok-1", "city:city:ok-2"}
    assert city_reasons(result) == GEOJSON_REASONS
    assert len(stored_errors(engine, result.run_id)) == len(GEOJSON_REASONS)


def test_geojson_read_by_orjson_still_bounds_the_nesting(engine: Engine, tmp_path: Path) -> None:
    """Without anything orjson refuses, the document takes the fast path: nesting is checked there too."""
    path = tmp_path / "closures.geojson"
    path.write_bytes(b'{"type": "FeatureCollection", "features": ['
                     + b",".join([GEOJSON_POISON[0], GEOJSON_POISON[5], GEOJSON_POISON[6]]) + b"]}")
    source = build(GEOJSON, url=str(path))
    assert source.read(path.read_bytes()).values_checked
    result = ingest_source(engine, source)
    assert stored_ids(engine) == {"city:city:ok-1"}
    assert city_reasons(result) == {
        "deep": f"feature 1: {TOO_DEEP}",
        MEGA_ID[:197] + "...": "feature 2: id: 1000000 characters, more than the 200 an id may have",
    }


class _OnePage(QuietHandler):
    body = b""

    def do_GET(self) -> None:
        self.answer(200, self.body, {"Content-Type": "application/geo+json"})


@pytest.fixture
def one_page_layer() -> Iterator[str]:
    handler = type("Handler", (_OnePage,), {"body": b'{"type": "FeatureCollection", "features": ['
                                            + b",".join(GEOJSON_POISON) + b"]}"})
    with http_server(handler) as url:
        yield f"{url}/arcgis/rest/services/Closures/FeatureServer/0"


def test_arcgis_pages_with_poison_values_reject_their_features(engine: Engine, one_page_layer: str) -> None:
    source = build("""
[[sources]]
name = "city-arcgis"
kind = "arcgis"
url = "{url}"
[sources.mapping]
id = "closure_id"
street = "STREET"
start = "START_DATE"
""", url=one_page_layer)
    result = sync_source(engine, source, LIFECYCLE)
    assert stored_ids(engine) == {"city:city:ok-1", "city:city:ok-2"}
    assert city_reasons(result) == GEOJSON_REASONS


WZDX_HEAD = (b'{"feed_info": {"update_date": "2026-03-02T15:00:00Z", "version": "4.2"}, '
             b'"type": "FeatureCollection", "features": [')


def road_event(ident: bytes, *, road: bytes = b'"Colfax Ave"', coordinates: bytes = b"[-104.99, 39.74]",
               extra: bytes = b"", core: bytes = b"") -> bytes:
    return (b'{"id": %s, "type": "Feature", "geometry": {"type": "LineString", "coordinates": [%s, '
            b'[-104.98, 39.74]]}, "properties": {"core_details": {"event_type": "work-zone", "data_source_id": "d", '
            b'"road_names": [%s], "direction": "eastbound"%s}, "start_date": "2026-03-02T15:00:00Z", '
            b'"end_date": "2026-03-09T15:00:00Z", "vehicle_impact": "all-lanes-closed"%s}}'
            % (ident, coordinates, road, core, extra))


def test_wzdx_road_events_with_poison_values_are_rejected_one_by_one(engine: Engine) -> None:
    body = WZDX_HEAD + b",".join([
        road_event(b'"ok-1"'),
        road_event(b'"coordinate"', coordinates=b"[" + HUGE + b", 39.74]"),
        road_event(b'"digits"', extra=b', "beginning_milepost": ' + DIGITS),
        road_event(b'"street"', road=b'"Main\\ud800St"'),
        road_event(b'"deep-description"', core=b', "description": ' + DEEP),
        road_event(b'"' + MEGA_ID.encode() + b'"'),
        road_event(b'"ignored"', extra=b', "vendor_tree": ' + DEEP),  # a field WZDx does not map: dropped
    ]) + b"]}"
    result = ingest_payload(engine, build('[[sources]]\nname = "w"\nkind = "wzdx"\nurl = "x"'), body, LIFECYCLE)
    assert stored_ids(engine) == {"wzdx:city:ok-1", "wzdx:city:ignored"}
    assert city_reasons(result) == {
        "coordinate": "polyline point 1: coordinates must be finite numbers",
        "digits": "attributes.wzdx.beginning_milepost: inf is not a finite number "
                  "(infinite, or beyond the float range)",
        "street": "street: is not valid Unicode text (a lone surrogate U+D800 at position 4)",
        "deep-description": "core_details.description: expected text, got dict",
        MEGA_ID[:197] + "...": "id: 1000000 characters, more than the 200 an id may have",
    }


def test_cifs_incidents_with_poison_values_are_rejected_one_by_one(engine: Engine) -> None:
    def incident(ident: bytes, *members: bytes, street: bytes = b'"Colfax Ave"') -> bytes:
        fields = [b'"id": ' + ident, b'"type": "ROAD_CLOSED"', b'"street": ' + street,
                  b'"polyline": "39.74 -104.99 39.74 -104.98"', b'"starttime": "2026-03-02T08:00:00-07:00"', *members]
        return b"{" + b", ".join(fields) + b"}"

    body = b'{"incidents": [' + b",".join([
        incident(b'"ok-1"'),
        incident(b'"coordinate"', b'"polyline": [[39.74, ' + HUGE + b"], [39.74, -104.98]]"),
        incident(b'"lanes"', b'"lanes": [{"order": 1' + b"0" * 30 + b', "status": "CLOSED"}]'),
        incident(b'"street"', street=b'"Main\\ud800St"'),
        incident(b'"schedule"', b'"schedule": {"monday": ' + DEEP + b"}"),
        incident(b'"' + MEGA_ID.encode() + b'"'),
    ]) + b"]}"
    result = ingest_payload(engine, build('[[sources]]\nname = "c"\nkind = "cifs"\nurl = "x"'), body, LIFECYCLE)
    assert stored_ids(engine) == {"cifs:city:ok-1"}
    rejected = city_reasons(result)
    assert rejected.pop("coordinate") == "polyline point 1: coordinates must be finite numbers"
    assert rejected.pop("lanes").startswith("lanes[0].order: ")
    assert rejected.pop("street") == "street: is not valid Unicode text (a lone surrogate U+D800 at position 4)"
    assert rejected.pop("schedule") == "schedule.monday: expected text, got dict"
    assert rejected == {MEGA_ID[:197] + "...": "id: 1000000 characters, more than the 200 an id may have"}


# --------------------------------------------------------------------------- what nothing foresaw


def last_run(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(sync_runs).order_by(sync_runs.c.id.desc())).first()


def boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("boom\nsecond line")


@pytest.mark.parametrize("step", ["fetching", "reading the payload", "reconciling"])
def test_an_unexpected_exception_is_a_failed_run_with_a_one_line_message(
    engine: Engine, step: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "poll.json"
    path.write_bytes(feed(0, alerts=[alert("a1")]))
    source = WazeFeedAdapter("waze", {"url": str(path)})
    sync_source(engine, source, LIFECYCLE)
    path.write_bytes(feed(1, alerts=[alert("a1", nThumbsUp=4), alert("a2")]))
    before = dump(engine)
    if step == "fetching":
        monkeypatch.setattr(WazeFeedAdapter, "fetch", boom)
    elif step == "reading the payload":
        monkeypatch.setattr(WazeFeedAdapter, "read", boom)
    else:
        monkeypatch.setattr(Reconciler, "_update_source", boom)
    with pytest.raises(InternalError) as caught:
        sync_source(engine, source, LIFECYCLE)
    reason = f"{step} failed unexpectedly: RuntimeError: boom"
    assert caught.value.message == f"sync of waze failed, nothing was changed: {reason}"
    run = last_run(engine)
    assert (run.status, run.message) == ("failed", reason)
    assert dump(engine) == before


def test_an_unexpected_exception_converting_one_item_rejects_that_item_only(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    convert = WazeFeedAdapter.convert

    def fragile(self: WazeFeedAdapter, item: Any, *, values_checked: bool = False) -> Any:
        if item.source_id == "bad":
            raise KeyError("nobody expected this\nat all")
        return convert(self, item, values_checked=values_checked)

    monkeypatch.setattr(WazeFeedAdapter, "convert", fragile)
    result = ingest_payload(engine, waze(), feed(0, alerts=[alert("a1"), alert("bad"), alert("a2")]), LIFECYCLE)
    assert (result.status, result.new, result.rejected) == ("ok", 2, 1)
    assert result.item_errors == [ItemError(kind="alert", source_id="bad", step="convert",
                                            reason="cannot be converted: KeyError: 'nobody expected this\\nat all'")]


def test_a_geometry_fault_one_jam_trips_leaves_only_that_jam_unmatched(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a fault in the line matcher that one jam's shape trips (as a noisy line once divided by zero) fails
    # the batch; the poll's other jams are still matched, the tripping one goes unmatched with the error
    placement = Placement.for_file(OSM, NetworkConfig(path=OSM))
    network = placement.network
    lines = []  # three 7th Street blocks as Waze would draw them
    for edge in [e for e in range(network.edge_count) if network.edge_name(e) == "7th Street"][:3]:
        xy = np.asarray(network.edge_coords(edge))
        lon, lat = network.frame.to_lonlat(xy[:, 0], xy[:, 1])
        lines.append([{"x": round(float(x), 6), "y": round(float(y), 6)} for x, y in zip(lon, lat, strict=True)])
    trap = lines[1][1]["x"]
    real_match = placement_module.match_lines

    def fragile(network: Any, lines: Any, **options: Any) -> Any:
        if any(round(float(line[1][0]), 6) == trap for line in lines):
            raise ZeroDivisionError("division by zero")
        return real_match(network, lines, **options)

    monkeypatch.setattr(placement_module, "match_lines", fragile)
    point = lines[0][0]
    jams = [jam(k + 1, line=line) for k, line in enumerate(lines)]
    result = ingest_payload(engine, waze(), feed(0, alerts=[alert("a1", location=point)], jams=jams),
                            LIFECYCLE, placement=placement)
    assert (result.status, result.new, result.rejected) == ("ok", 4, 0)
    with engine.connect() as conn:
        matches = {row.id: row.road_match for row in conn.execute(select(events.c.id, events.c.road_match))}
    assert matches["waze:jam:2"]["reason"] == "matching failed (ZeroDivisionError: division by zero)"
    assert "edges" not in matches["waze:jam:2"] or not matches["waze:jam:2"]["edges"]
    for matched in ("waze:jam:1", "waze:jam:3", "waze:alert:a1"):
        assert matches[matched]["edges"], matches[matched]


def test_the_cli_says_one_error_line_and_exits_1(
    cli: Callable[..., Run], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(WazeFeedAdapter, "read", boom)
    path = tmp_path / "poll.json"
    path.write_bytes(feed(0, alerts=[alert("a1")]))
    run = cli("replay", str(path))
    assert run.code == 1, run
    assert "Traceback" not in run.err
    errors = [line for line in run.err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {path}: sync of waze failed, nothing was changed: "
                      "reading the payload failed unexpectedly: ZeroDivisionError: division by zero"]


# --------------------------------------------------------------------------- the rules themselves


def test_the_limits_are_the_store_columns() -> None:
    from exchange.schema import revisions

    for name, length in TEXT_COLUMNS.items():
        column = revisions.c.operator if name == "operator" else events.c[name]
        assert isinstance(column.type, String) and column.type.length == length, name
    assert INT32 == (-(2**31), 2**31 - 1)
    assert orjson.loads(str(JSON_INT[0])) == JSON_INT[0] and orjson.loads(str(JSON_INT[1])) == JSON_INT[1]
    assert isinstance(orjson.loads(str(JSON_INT[1] + 1)), float)


@pytest.mark.parametrize("text", ["9223372036854775807", "18446744073709551615", "18446744073709551616",
                                  "-9223372036854775808", "-9223372036854775809", "1" * 30, "-" + "1" * 400])
def test_both_json_readers_read_whole_numbers_alike(text: str) -> None:
    fast = orjson.loads(text) if len(text) < 300 else float(text)
    lenient, checked = load_json(b"[" + text.encode() + b", NaN]")
    assert not checked and lenient[0] == fast and type(lenient[0]) is type(fast)


def test_deep_and_odd_values_read_write_and_digest_without_raising() -> None:
    document, checked = load_json(b'{"a": ' + DEEP + b', "b": NaN, "c": "\\ud800"}')
    assert not checked
    assert load_json(dumps_lenient(document))[0]["c"] == "\ud800"
    assert digest(document) == digest(load_json(dumps_lenient(document))[0])
    for check in (check_storable, check_nesting):
        with pytest.raises(Exception, match="nested more than 64 levels deep"):
            check(document)
