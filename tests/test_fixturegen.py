"""The synthetic Waze-feed fixtures in fixtures/waze/ and their generator (tests.support.fixturegen).

These tests read only the project's own fixtures (the OSM extract and the generated files) and
import nothing of the project but the generator.
"""

from __future__ import annotations

import bz2
import itertools
import json
import math
import re
import uuid
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from tests.support import fixturegen

ROOT = Path(__file__).resolve().parents[1]
OSM = ROOT / "fixtures" / "osm" / "west-oakland.osm.bz2"
WAZE = ROOT / "fixtures" / "waze"
FIXTURES_CITY = ROOT / "fixtures" / "city"
POLLS = 12
ENVELOPE = {"alerts", "jams", "irregularities", "startTimeMillis", "endTimeMillis", "startTime", "endTime"}
GEORSS = "http://www.georss.org/georss"
LINQMAP = "http://www.linqmap.com"
TOLERANCE_DEG = 1e-6  # coordinates are rounded to 6 decimals


@cache
def polls() -> tuple[dict[str, Any], ...]:
    return tuple(json.loads((WAZE / f"poll-{i:03d}.json").read_bytes()) for i in range(1, POLLS + 1))


@cache
def osm_geometry() -> tuple[dict[str, tuple[float, float]], list[list[tuple[float, float]]]]:
    """Independent read of the extract: all nodes (lat, lon) and the node lists of highway ways."""
    nodes: dict[str, tuple[float, float]] = {}
    ways: list[list[str]] = []
    with bz2.open(OSM, "rb") as stream:
        for _event, element in etree.iterparse(
            stream, events=("end",), tag=("node", "way"), resolve_entities=False, no_network=True
        ):
            if element.tag == "node":
                nodes[element.get("id", "")] = (
                    float(element.get("lat", "nan")),
                    float(element.get("lon", "nan")),
                )
            elif any(t.get("k") == "highway" for t in element.iterfind("tag")):
                ways.append([nd.get("ref", "") for nd in element.iterfind("nd")])
            element.clear()
    return nodes, [[nodes[r] for r in refs if r in nodes] for refs in ways]


def all_points(poll: dict[str, Any]) -> list[tuple[float, float]]:
    """Every coordinate of a snapshot as (lat, lon)."""
    points = [(a["location"]["y"], a["location"]["x"]) for a in poll["alerts"]]
    for key in ("jams", "irregularities"):
        for record in poll[key]:
            points.extend((p["y"], p["x"]) for p in record["line"])
    return points


def distance_to_segment_m(p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    k = math.cos(math.radians(p[0]))
    ax, ay = (a[1] - p[1]) * k, a[0] - p[0]
    bx, by = (b[1] - p[1]) * k, b[0] - p[0]
    dx, dy = bx - ax, by - ay
    t = 0.0 if dx == dy == 0 else max(0.0, min(1.0, -(ax * dx + ay * dy) / (dx * dx + dy * dy)))
    return math.hypot(ax + t * dx, ay + t * dy) * 111_195.0


def by_key(records: list[dict[str, Any]], key: str = "uuid") -> dict[Any, dict[str, Any]]:
    return {r[key]: r for r in records}


# ------------------------------------------------------------------------------------ determinism


def test_regeneration_reproduces_shipped_files_byte_for_byte() -> None:
    files = fixturegen.generate(OSM, seed=2026, polls=POLLS)
    shipped = {p.name for p in WAZE.iterdir() if p.is_file()}
    assert set(files) == shipped
    for name, data in files.items():
        assert (WAZE / name).read_bytes() == data, f"{name} differs from a fresh generation"


def test_other_seed_gives_other_data() -> None:
    other = fixturegen.generate(OSM, seed=7, polls=3)
    assert sorted(other) == [
        "README.md",
        "poll-001.json",
        "poll-002.json",
        "poll-003.json",
        "poll-georss-sample.xml",
    ]
    assert other["poll-001.json"] != (WAZE / "poll-001.json").read_bytes()
    assert other == fixturegen.generate(OSM, seed=7, polls=3)


def test_main_writes_files_and_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "waze"
    out.mkdir()
    (out / "poll-099.json").write_text("{}")  # stale output from an earlier, longer run
    assert fixturegen.main(["--out", str(out), "--osm", str(OSM), "--seed", "11", "--polls", "4"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["README.md", *(f"poll-{i:03d}.json" for i in range(1, 5)), "poll-georss-sample.xml"]
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "4 polls" in err


# ---------------------------------------------------------------------------------------- envelope


def test_every_poll_has_the_envelope_and_real_time_format() -> None:
    pattern = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3}")
    previous_start: int | None = None
    for poll in polls():
        assert set(poll) >= ENVELOPE
        start, end = poll["startTimeMillis"], poll["endTimeMillis"]
        assert end - start == 60_000
        if previous_start is not None:
            assert start - previous_start == 120_000
        previous_start = start
        for key, millis in (("startTime", start), ("endTime", end)):
            assert pattern.fullmatch(poll[key])
            dt = datetime.fromtimestamp(millis / 1000, tz=UTC)
            assert poll[key] == dt.strftime("%Y-%m-%d %H:%M:%S") + f":{millis % 1000:03d}"
    assert polls()[0]["startTime"] == "2026-03-02 15:00:00:000"


def test_counts_per_poll() -> None:
    for poll in polls():
        assert 40 <= len(poll["alerts"]) <= 80
        assert 20 <= len(poll["jams"]) <= 40
        assert 2 <= len(poll["irregularities"]) <= 4


def test_ids_are_unique_within_a_poll() -> None:
    for poll in polls():
        assert len(by_key(poll["alerts"])) == len(poll["alerts"])
        assert len(by_key(poll["jams"])) == len(poll["jams"])
        assert len(by_key(poll["irregularities"], "id")) == len(poll["irregularities"])


# ---------------------------------------------------------------------------------------- geometry


def test_all_coordinates_lie_inside_the_osm_node_bbox() -> None:
    nodes, _ways = osm_geometry()
    lats = [lat for lat, _lon in nodes.values()]
    lons = [lon for _lat, lon in nodes.values()]
    for poll in polls():
        for lat, lon in all_points(poll):
            assert min(lats) - TOLERANCE_DEG <= lat <= max(lats) + TOLERANCE_DEG
            assert min(lons) - TOLERANCE_DEG <= lon <= max(lons) + TOLERANCE_DEG
            assert round(lat, 6) == lat and round(lon, 6) == lon


def test_records_lie_on_the_osm_ways() -> None:
    nodes, ways = osm_geometry()
    rounded_nodes = {(round(lat, 6), round(lon, 6)) for lat, lon in nodes.values()}
    segments = [(a, b) for way in ways for a, b in itertools.pairwise(way)]
    for poll in polls():
        for alert in poll["alerts"]:
            p = (alert["location"]["y"], alert["location"]["x"])
            assert min(distance_to_segment_m(p, a, b) for a, b in segments) < 1.0, alert["uuid"]
        for record in poll["jams"] + poll["irregularities"]:
            assert len(record["line"]) >= 2
            for point in record["line"]:
                assert (point["y"], point["x"]) in rounded_nodes  # lines follow way nodes


def test_magvar_follows_the_way_bearing() -> None:
    alerts = list(polls()[0]["alerts"])
    assert all(isinstance(a["magvar"], int) and 0 <= a["magvar"] <= 359 for a in alerts)
    assert any(a["magvar"] == 0 for a in alerts)
    assert len({a["magvar"] for a in alerts}) > 10


# ----------------------------------------------------------------------------------------- closure


def test_blocking_jam_points_to_a_road_closed_alert_in_the_same_poll() -> None:
    for poll in polls():
        blocking = [j for j in poll["jams"] if "blockingAlertUuid" in j]
        assert blocking
        alerts = by_key(poll["alerts"])
        for jam in blocking:
            assert (jam["level"], jam["delay"], jam["speed"], jam["speedKMH"]) == (5, -1, 0, 0)
            alert = alerts[jam["blockingAlertUuid"]]
            assert alert["type"] == "ROAD_CLOSED"
            assert alert["subtype"] == "ROAD_CLOSED_CONSTRUCTION"
            assert alert["street"] == jam["street"]
            assert poll["startTimeMillis"] - alert["pubMillis"] > 14 * 86_400_000  # weeks old
            p = (alert["location"]["y"], alert["location"]["x"])
            line = [(pt["y"], pt["x"]) for pt in jam["line"]]
            assert min(distance_to_segment_m(p, a, b) for a, b in itertools.pairwise(line)) < 1.0


# --------------------------------------------------------------------------------------- evolution


def test_between_consecutive_polls_items_change_appear_and_disappear() -> None:
    jam_appeared = jam_disappeared = 0
    for before, after in itertools.pairwise(polls()):
        a0, a1 = by_key(before["alerts"]), by_key(after["alerts"])
        persisting = a0.keys() & a1.keys()
        changed = [u for u in persisting if a0[u] != a1[u]]
        assert a1.keys() - a0.keys(), "no alert appeared"
        assert a0.keys() - a1.keys(), "no alert disappeared"
        assert 0.05 <= len(changed) / len(persisting) <= 0.25
        assert len(persisting) / len(a0) >= 0.9  # most persist
        j0, j1 = by_key(before["jams"]), by_key(after["jams"])
        assert any(j0[u] != j1[u] for u in j0.keys() & j1.keys()), "no jam changed"
        jam_appeared += len(j1.keys() - j0.keys())
        jam_disappeared += len(j0.keys() - j1.keys())
        for u in j0.keys() & j1.keys():
            assert j0[u]["pubMillis"] == j1[u]["pubMillis"]
    assert jam_appeared and jam_disappeared


def test_one_alert_flickers_and_others_stay_gone_for_three_polls() -> None:
    presence: dict[str, list[bool]] = {}
    for index, poll in enumerate(polls()):
        for alert in poll["alerts"]:
            presence.setdefault(alert["uuid"], [False] * POLLS)[index] = True
    flickering = []
    ended = []
    for key, seen in presence.items():
        first = seen.index(True)
        last = POLLS - 1 - seen[::-1].index(True)
        gaps = [i for i in range(first, last + 1) if not seen[i]]
        if gaps:
            flickering.append((key, gaps))
        if last <= POLLS - 4:
            ended.append(key)
    assert len(flickering) == 1
    key, gaps = flickering[0]
    assert len(gaps) == 1  # missing from one poll only: a 3-poll rule must not end it
    around = [next(a for a in polls()[g]["alerts"] if a["uuid"] == key) for g in (gaps[0] - 1, gaps[0] + 1)]
    assert around[0] == around[1]
    assert len(ended) >= 3


# ------------------------------------------------------------------------------------------ quirks


def test_quirks_of_real_payloads_are_present() -> None:
    alerts = [a for poll in polls() for a in poll["alerts"]]
    jams = [j for poll in polls() for j in poll["jams"]]
    irregularities = [i for poll in polls() for i in poll["irregularities"]]

    for alert in alerts:
        assert str(uuid.UUID(alert["uuid"])) == alert["uuid"]
        assert alert["country"] == "US"
        assert alert.get("city", "Oakland, CA") == "Oakland, CA"
    types = {a["type"] for a in alerts}
    assert {"ACCIDENT", "JAM", "WEATHERHAZARD", "ROAD_CLOSED", "POLICE", "CONSTRUCTION", "MISC"} <= types
    assert "HAZARD" not in types
    assert all(a["subtype"].startswith("HAZARD_") for a in alerts if a["type"] == "WEATHERHAZARD")
    assert any(a.get("subtype") == "" for a in alerts if a["type"] == "JAM")
    assert any(a.get("subtype") == "" for a in alerts if a["type"] == "ACCIDENT")
    assert any("street" not in a for a in alerts)
    assert any("city" not in a and "roadType" not in a for a in alerts)
    assert any("subtype" not in a for a in alerts)
    assert any(a.get("reportByMunicipalityUser") == "False" for a in alerts)
    assert any(a.get("reportByMunicipalityUser") == "false" for a in alerts)
    assert not any(isinstance(a.get("reportByMunicipalityUser"), bool) for a in alerts)
    assert any(a["reportRating"] == 0 for a in alerts)

    for jam in jams:
        assert isinstance(jam["uuid"], int) and jam["uuid"] == jam["id"]
        assert 100_000_000 <= jam["id"] <= 999_999_999
        assert jam["type"] in {"NONE", "Small", "Medium", "Large"}
        assert jam["speedKMH"] == pytest.approx(3.6 * jam["speed"], abs=0.005)
        assert jam["segments"] and all(s == {} for s in jam["segments"])
        assert jam["turnType"] == "NONE"
        assert "speedKPH" not in jam
    assert {j["type"] for j in jams} == {"NONE", "Small", "Medium", "Large"}
    assert any(j.get("street") == "" for j in jams)

    for irr in irregularities:
        assert re.fullmatch(
            r"[A-Z][a-z]{2} [A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d \+0000 \d{4}", irr["detectionDate"]
        )
        assert irr["type"] in {"Small", "Medium", "Large"}
        assert isinstance(irr["highway"], bool)
        assert irr["alerts"] == []
        assert irr["speed"] == pytest.approx(irr["length"] / irr["seconds"] * 3.6, rel=0.005)
        assert irr["regularSpeed"] > irr["speed"]
        assert irr["updateDateMillis"] >= irr["detectionDateMillis"]

    assert any("x_demo_note" in r for r in alerts)
    assert any("x_demo_note" in r for r in jams)
    assert any("x_demo_note" in r for r in irregularities)


# ------------------------------------------------------------------------------------------ GeoRSS


def test_georss_sample_is_well_formed_and_lat_first() -> None:
    data = (WAZE / "poll-georss-sample.xml").read_bytes()
    assert b"<!DOCTYPE" not in data
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(data, parser=parser)
    comment = root.getprevious()
    assert comment is not None and comment.tag is etree.Comment
    assert "SYNTHETIC" in (comment.text or "") and "1.8" in (comment.text or "")
    assert root.tag == "rss" and root.get("version") == "2.0"
    channel = root.find("channel")
    assert channel is not None
    poll = polls()[0]
    assert channel.findtext(f"{{{LINQMAP}}}startTimeMillis") == str(poll["startTimeMillis"])
    assert channel.findtext(f"{{{LINQMAP}}}endTimeMillis") == str(poll["endTimeMillis"])

    items = channel.findall("item")
    expected = (
        [("alert", r) for r in poll["alerts"]]
        + [("jam", r) for r in poll["jams"]]
        + [("irregularity", r) for r in poll["irregularities"]]
    )
    assert len(items) == len(expected)
    for item, (title, record) in zip(items, expected, strict=True):
        assert item.findtext("title") == title
        assert item.findtext("pubDate")
        key = "uuid" if title != "irregularity" else "id"
        assert item.findtext(f"{{{LINQMAP}}}{key}") == str(record[key])
        if title == "alert":
            lat, lon = map(float, (item.findtext(f"{{{GEORSS}}}point") or "").split())
            assert (lat, lon) == (record["location"]["y"], record["location"]["x"])
        else:
            values = [float(v) for v in (item.findtext(f"{{{GEORSS}}}line") or "").split()]
            assert list(zip(values[0::2], values[1::2], strict=True)) == [
                (p["y"], p["x"]) for p in record["line"]
            ]
        for name, value in record.items():
            if isinstance(value, list | dict):
                continue
            text = item.findtext(f"{{{LINQMAP}}}{name}")
            assert text is not None, name
            if isinstance(value, bool):
                assert text == str(value).lower()
            elif isinstance(value, int | float):
                assert float(text) == value
            else:
                assert text == value
    blocking = [i for i in items if i.find(f"{{{LINQMAP}}}blockingAlertUuid") is not None]
    assert blocking and all(i.findtext(f"{{{LINQMAP}}}speedKMH") == "0" for i in blocking)


def test_city_closures_csv_is_reproducible_and_on_named_ways() -> None:
    data = fixturegen.city_closures_csv(OSM)
    assert (FIXTURES_CITY / "closures.csv").read_bytes() == data
    lines = data.decode().splitlines()
    assert lines[0].startswith("id,type,subtype,street") and len(lines) == 4
    assert all("LINESTRING (" in line for line in lines[1:])
