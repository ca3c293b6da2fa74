"""`exchange network`, `exchange match`, and sync with a road network configured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.helpers import Cli, alert, feed, jam
from tests.support.paths import DEMO, OSM, POLLS


def test_network_build_and_info(cli: Cli, tmp_path: Path) -> None:
    cache = tmp_path / "oakland.network"
    built = cli("network", "build", str(OSM), "--out", str(cache))
    assert built.code == 0, built
    summary = json.loads(built.out)[0]
    assert summary["directed_edges"] > 50 and summary["crs"] == "EPSG:32610" and cache.is_file()
    info = cli("network", "info", str(cache))
    assert info.code == 0 and json.loads(info.out)[0]["from_cache"] is True
    assert json.loads(info.out)[0]["directed_edges"] == summary["directed_edges"]


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_match_prints_one_object_per_item(cli: Cli, fmt: str) -> None:
    result = cli("match", "--network", str(OSM), str(POLLS[0]), "--format", fmt)
    assert result.code == 0, result
    records = json.loads(result.out) if fmt == "json" else [json.loads(line) for line in result.out.splitlines()]
    source = json.loads(POLLS[0].read_text())
    assert len(records) == len(source["alerts"]) + len(source["jams"]) + len(source["irregularities"])
    by_uuid = {str(r["uuid"]): r for r in records}
    first_jam = source["jams"][0]
    record = by_uuid[str(first_jam["uuid"])]
    assert record["kind"] == "jam" and record["edges"]
    assert set(record["edges"][0]) == {"way_id", "from_node", "to_node"}
    for r in records:
        assert ("edges" in r and r["distance_m"] is not None and 0 < r["confidence"] <= 1) or "unmatched" in r
    alerts = [r for r in records if r["kind"] == "alert"]
    assert all(r["cluster_id"] for r in alerts)
    assert all(r["cluster_id"] is None for r in records if r["kind"] != "alert")
    assert "matched" in result.err


def test_match_reports_bad_geometry_per_item(cli: Cli, testdata: Path, tmp_path: Path) -> None:
    village = testdata / "osm" / "planet_10.068_48.135_10.071_48.137.osm"
    snapshot = tmp_path / "feed.json"
    snapshot.write_bytes(feed(0, alerts=[
        alert("swapped", location={"x": 48.1361, "y": 10.0695}),
        alert("far", location={"x": 11.5, "y": 48.1}),
        alert("good", location={"x": 10.0695, "y": 48.1361}, street=None),
    ], jams=[
        jam(1, line=[{"x": 10.0690, "y": 48.1360}, {"x": 10.0700, "y": 48.1362}, {"x": 10.0690, "y": 48.1360},
                     {"x": 10.0700, "y": 48.1362}]),
        jam(2, line=[{"x": 10.0690, "y": 48.1360}]),
    ]))
    result = cli("match", "--network", str(village), str(snapshot), "--format", "json")
    assert result.code == 0, result
    records = {str(r["uuid"]): r for r in json.loads(result.out)}
    assert "swapped" in records["swapped"]["unmatched"]
    assert "outside the road network" in records["far"]["unmatched"]
    assert records["good"]["edges"]
    assert "edges" in records["1"] or "unmatched" in records["1"]  # self-overlapping: a result, not a crash
    assert "at least 2" in records["2"]["unmatched"]


def test_match_says_when_the_network_is_of_another_city(cli: Cli, testdata: Path) -> None:
    boston = testdata / "waze_feed" / "boston_cambridge_minimal_2018-10-16.json"
    result = cli("match", "--network", str(OSM), str(boston))
    assert result.code == 0, result
    assert "warning: no item matched a road: the feed lies around 42." in result.err
    assert "is it the network of the feed's city?" in result.err
    assert "warning" not in cli("match", "--network", str(OSM), str(POLLS[0])).err


def test_match_errors(cli: Cli, tmp_path: Path) -> None:
    assert cli("match", str(POLLS[0])).code == 2  # no network anywhere
    missing = cli("match", "--network", str(tmp_path / "none.osm"), str(POLLS[0]))
    assert missing.code == 3 and "does not exist" in missing.err
    broken = tmp_path / "broken.osm"
    broken.write_text("<osm><node id='1'")
    bad = cli("match", "--network", str(broken), str(POLLS[0]))
    assert bad.code == 1 and "Traceback" not in bad.err, bad
    assert cli("match", "--network", str(OSM), str(tmp_path / "nofeed.json")).code == 3


def test_sync_stores_matches_and_clusters(cli: Cli, tmp_path: Path) -> None:
    assert cli("--config", str(DEMO), "replay", *map(str, POLLS[:3])).code == 0
    events = json.loads(cli("--config", str(DEMO), "inspect", "events", "--status", "active", "--format", "json").out)
    assert events and all(e["road_match"] and e["road_match"]["edges"] for e in events)
    assert all(e["cluster_id"] for e in events if e["kind"] == "alert")
    # two reports of one crash, a minute apart, a few metres apart on the same street: one cluster
    first = next(e for e in events if e["kind"] == "alert" and e["road_match"]["confidence"] > 0.9)
    lon, lat = first["geometry"]["coordinates"]
    twin = dict(first["attributes"], uuid="twin-report", location={"x": lon + 0.00003, "y": lat},
                pubMillis=first["attributes"]["pubMillis"] + 60_000)
    original = json.loads(POLLS[3].read_text())
    original["alerts"].append(twin)
    extra = tmp_path / "poll-004.json"
    extra.write_text(json.dumps(original))
    assert cli("--config", str(DEMO), "replay", str(extra)).code == 0
    twin_id = "waze:alert:twin-report"
    stored = json.loads(cli("--config", str(DEMO), "inspect", "event", twin_id, "--format", "json").out)
    assert stored[0]["cluster_id"] == json.loads(
        cli("--config", str(DEMO), "inspect", "event", first["id"], "--format", "json").out)[0]["cluster_id"]
