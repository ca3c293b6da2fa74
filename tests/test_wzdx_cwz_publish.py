"""Issue 16, items 2 and 4, end to end: the demo's WZDx and the real CDOT feed through the broker.

* The demo (replay + sync + publish) never publishes an end before now for an active closure, and a
  weekly night closure typed by an operator goes out as linked occurrences; the operator's
  ``--verified-start``/``--verified-end`` are the only way its flags become true.
* The real CDOT WZDx 4.2 feed (declared CC0 by its publisher), imported with ``publish.license`` set
  to the CC0 URL, renders a ``cwz.geojson`` the offline CWZ 1.0 validator of ../shared/testdata
  accepts (run as a subprocess with this venv's python), and a WZDx that still validates with the
  shipped 4.2 schemas and keeps CDOT's lanes, types of work and data source.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from exchange.config_file import load_config
from exchange.db import open_store
from exchange.publish import eligible_events
from exchange.validation import validate_wzdx
from feeds.cwz import check_cwz, render_cwz
from feeds.problems import errors_only
from feeds.wzdx import CC0_LICENSE
from tests.support.helpers import Run
from tests.support.webdata import demo_site

NINTH = "37.809578 -122.300788 37.810233 -122.302087"
#: a Tuesday, 04:00 in Oakland: the 14-day horizon holds the nights of December 1 and 8
TUESDAY = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CDOT_NOW = "2023-05-22T18:00:00+00:00"  # inside most of the CDOT feed's work zones


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_the_demo_wzdx_has_no_past_end_and_keeps_a_weekly_schedule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    with demo_site(tmp_path / "demo", polls=1) as site:
        monkeypatch.setenv("EXCHANGE_NOW", TUESDAY.isoformat())

        def add(*extra: str) -> str:
            code, out, err = site.cli("closure", "add", "--street", "9th Street", "--polyline", NINTH, "--type",
                                      "ROAD_CLOSED", "--direction", "ONE_DIRECTION", *extra)
            assert code == 0, err
            return out.strip()

        nightly = add("--start", "2026-11-20T00:00:00", "--schedule", "tuesday=21:00-23:59", "--schedule",
                      "wednesday=00:00-05:00", "--description", "Night paving", "--verified-start")
        vouched = add("--start", "2026-11-30T08:00:00", "--end", "2026-12-04T17:00:00", "--verified-start",
                      "--verified-end", "--description", "Water main")
        code, _out, err = site.cli("closure", "add", "--street", "9th Street", "--polyline", NINTH, "--start",
                                   "2026-11-30T08:00:00", "--verified-end")
        assert code == 2 and "--verified-end: the closure has no end to verify" in err
        code, _out, err = site.cli("closure", "update", vouched, "--end", "2026-12-05T17:00:00")
        assert code == 0, err
        code, _out, err = site.cli("publish", "--out", str(tmp_path / "out"))
        assert code == 0, err
        document = orjson.loads((tmp_path / "out" / "wzdx.geojson").read_bytes())
        # `closure end` is the operator's word that the work is over: the end it sets is verified
        for args in (["closure", "end", vouched], ["publish", "--out", str(tmp_path / "ended")]):
            code, _out, err = site.cli(*args)
            assert code == 0, err
        ended = orjson.loads((tmp_path / "ended" / "wzdx.geojson").read_bytes())

    assert validate_wzdx(orjson.dumps(document)) == []
    found = document["features"]
    assert all(utc(f["properties"]["end_date"]) > TUESDAY for f in found)  # every demo event is active
    demo = [f for f in found if f["id"].startswith("city:city:demo-")]
    # open ends: 14 days after the day of publication, midnight in the city (Los Angeles), not in UTC
    assert demo and {f["properties"]["end_date"] for f in demo} == {"2026-12-15T08:00:00Z"}
    assert not any(f["properties"]["is_end_date_verified"] for f in demo)

    nights = [f for f in found if f["id"].startswith(f"{nightly}#")]
    assert [f["id"] for f in nights] == [f"{nightly}#2026-12-01T21:00", f"{nightly}#2026-12-08T21:00"]
    assert [(f["properties"]["start_date"], f["properties"]["end_date"]) for f in nights] == [
        ("2026-12-02T05:00:00Z", "2026-12-02T13:00:00Z"), ("2026-12-09T05:00:00Z", "2026-12-09T13:00:00Z")]
    assert nights[0]["properties"]["core_details"]["related_road_events"] == [
        {"type": "next-occurrence", "id": nights[1]["id"]}]

    (checked,) = [f["properties"] for f in found if f["id"] == vouched]
    # the start stays verified; the end changed by the update is no longer, until the operator says so
    assert checked["is_start_date_verified"] is True and checked["is_end_date_verified"] is False
    (over,) = [f["properties"] for f in ended["features"] if f["id"] == vouched]
    assert over["end_date"] == "2026-12-01T12:00:00Z" and over["is_end_date_verified"] is True


def cdot_config(tmp_path: Path, testdata: Path) -> Path:
    path = tmp_path / "exchange.toml"
    feed = testdata / "wzdx" / "cdot_prod_wzdx_v42_20230522.json"
    path.write_text(
        f'timezone = "America/Denver"\n\n[[sources]]\nname = "cdot"\nkind = "wzdx"\nurl = "{feed}"\n'
        f'namespace = "cdot"\n\n[publish]\npublisher = "CDOT relay"\nlicense = "{CC0_LICENSE}"\n'
        "update_frequency_s = 300\n",
        encoding="utf-8",
    )
    return path


def test_the_cdot_feed_imported_under_cc0_publishes_a_valid_cwz_and_a_faithful_wzdx(
    tmp_path: Path, testdata: Path, cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXCHANGE_NOW", CDOT_NOW)
    config_path = cdot_config(tmp_path, testdata)
    for args in (["sync"], ["publish", "--out", str(tmp_path / "out")]):
        run = cli("--config", str(config_path), *args)
        assert run.code == 0, run
    config = load_config(config_path)
    settings = config.publish
    engine = open_store(config.database_url, auto_upgrade=False)
    try:
        now = utc(CDOT_NOW)
        chosen = eligible_events(engine, at_ms=round(now.timestamp() * 1000), keep_ended_ms=86_400_000).events
    finally:
        engine.dispose()
    assert len(chosen) > 60
    feed_info: dict[str, Any] = {"publisher": settings.publisher, "data_source_id": settings.data_source_id,
                                 "license": settings.license, "update_frequency": settings.update_frequency_s}
    cwz = render_cwz(chosen, feed_info=feed_info, generated=now, zone=config.zone)
    written = tmp_path / "out" / "cwz.geojson"
    written.write_bytes(cwz)
    official = subprocess.run(
        [sys.executable, str(testdata / "cwz" / "validate_offline.py"), "--spec", "cwz1.0", str(written)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert official.returncode == 0 and official.stdout.startswith("VALID"), official.stdout + official.stderr
    assert errors_only(check_cwz(cwz, wzdx_check=validate_wzdx)) == []
    assert all(isinstance(f["properties"]["is_end_date_verified"], bool) for f in orjson.loads(cwz)["features"])

    # WZDx to WZDx: what CDOT said goes out again (the events the lint holds back aside)
    wzdx = (tmp_path / "out" / "wzdx.geojson").read_bytes()
    assert validate_wzdx(wzdx) == []
    source = orjson.loads((testdata / "wzdx" / "cdot_prod_wzdx_v42_20230522.json").read_bytes())
    originals = {f["id"]: f["properties"] for f in source["features"]}
    out = orjson.loads(wzdx)
    assert source["feed_info"]["data_sources"][0]["data_source_id"] in {
        s["data_source_id"] for s in out["feed_info"]["data_sources"]}
    published = {f["id"].removeprefix("cdot:city:"): f["properties"] for f in out["features"]}
    assert len(published) > 60
    for source_id, after in published.items():
        before = originals[source_id]
        assert [after.get(key) for key in ("lanes", "types_of_work", "vehicle_impact", "end_date")] == [
            before.get(key) for key in ("lanes", "types_of_work", "vehicle_impact", "end_date")], source_id
        assert after["core_details"]["data_source_id"] == before["core_details"]["data_source_id"]
        assert after["core_details"]["direction"] == before["core_details"]["direction"]


def test_cc0_declared_for_lines_placed_on_openstreetmap_is_warned_of(
    tmp_path: Path, testdata: Path, cli: Callable[..., Run],
) -> None:
    """Found in a cold trial: with an OSM network and publish.license CC0, WZDx and CWZ said CC0 for
    lines routed on OpenStreetMap (ODbL) without a word."""
    from tests.support.webdata import demo_config_text

    path = tmp_path / "exchange.toml"
    path.write_text(demo_config_text(tmp_path).replace("[publish]\n", f'[publish]\nlicense = "{CC0_LICENSE}"\n', 1),
                    encoding="utf-8")
    checked = cli("--config", str(path), "config", "check", "--offline")
    assert "network: ok: " in checked.out and "warning: publish.license declares CC0, but closures are placed on " \
        "OpenStreetMap (ODbL)" in checked.out, checked
    published = cli("--config", str(path), "publish")
    assert published.code == 0 and "warning: publish.license declares CC0" in published.err, published
    (tmp_path / "cdot").mkdir()
    imported = cli("--config", str(cdot_config(tmp_path / "cdot", testdata)), "config", "check", "--offline")
    assert "declares CC0" not in imported.out  # no network: the lines are the source's
