"""Road network files as an operator names them: a built cache under any name, an osmnx GraphML in the
config, and a one-line refusal for a file that is neither."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from adapters.network_cache import MAGIC
from tests.support.helpers import Cli, alert, feed, jam
from tests.support.paths import OSM, POLLS

DENVER = Path("match") / "denver_mappymatch"
COLFAX_WAY = 100397027  # East Colfax Avenue, primary


def write_config(path: Path, network: Path | str, feed_file: Path, **extra: object) -> Path:
    lines = ["[network]", f"path = {json.dumps(str(network))}"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in extra.items()]
    lines += ["", "[[sources]]", 'name = "waze"', 'kind = "waze-feed"', f"url = {json.dumps(str(feed_file))}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def stored_matches(cli: Cli, config: Path) -> dict[str, dict[str, object]]:
    listing = cli("--config", str(config), "inspect", "events", "--format", "json")
    assert listing.code == 0, listing
    return {event["source_id"]: event["road_match"] for event in json.loads(listing.out)}


def denver_feed(testdata: Path, tmp_path: Path) -> Path:
    """An alert on East Colfax Avenue and a jam along the GPS trace that came with the graph."""
    trace = json.loads((testdata / DENVER / "test_trace.geojson").read_text())
    points = [feature["geometry"]["coordinates"] for feature in trace["features"]][:7]
    path = tmp_path / "denver-feed.json"
    path.write_bytes(feed(0, alerts=[
        alert("colfax", location={"x": -104.98510, "y": 39.74007}, street="E Colfax Ave", city="Denver, CO", magvar=90),
    ], jams=[jam(7, line=[{"x": x, "y": y} for x, y in points], street=None, city="Denver, CO")]))
    return path


# --------------------------------------------------------------------------------- a cache by any name


@pytest.mark.parametrize("name", ["network.cache", "roads", "nested/dir/city.osm"])
def test_cache_under_any_name(cli: Cli, tmp_path: Path, name: str) -> None:
    cache = tmp_path / name
    built = cli("network", "build", str(OSM), "--out", str(cache))
    assert built.code == 0, built
    assert cache.read_bytes().startswith(MAGIC)
    edges = json.loads(built.out)[0]["directed_edges"]

    info = cli("network", "info", str(cache))
    assert info.code == 0, info
    assert json.loads(info.out)[0]["from_cache"] is True and json.loads(info.out)[0]["directed_edges"] == edges

    matched = cli("match", "--network", str(cache), str(POLLS[0]), "--format", "json")
    assert matched.code == 0, matched
    assert any("edges" in record for record in json.loads(matched.out))

    rebuilt = cli("network", "build", str(OSM), "--out", str(cache))  # an existing cache is replaced
    assert rebuilt.code == 0, rebuilt


def test_config_path_is_a_cache_with_any_name(cli: Cli, data_dir: Path, tmp_path: Path) -> None:
    assert cli("network", "build", str(OSM), "--out", str(tmp_path / "oakland.bin")).code == 0
    config = write_config(tmp_path / "exchange.toml", "oakland.bin", POLLS[0])  # relative to the config file
    synced = cli("--config", str(config), "sync")
    assert synced.code == 0, synced
    matches = stored_matches(cli, config)
    assert matches and all(match and match["edges"] for match in matches.values())
    assert not (data_dir / "networks").exists(), "the cache is used as it is, not rebuilt into the data dir"


# ------------------------------------------------------------------------------------- graphml in the config


def test_graphml_in_config_syncs_and_matches(cli: Cli, testdata: Path, data_dir: Path, tmp_path: Path) -> None:
    snapshot = denver_feed(testdata, tmp_path)
    config = write_config(tmp_path / "exchange.toml", testdata / DENVER / "osmnx_drive_graph.graphml", snapshot)
    synced = cli("--config", str(config), "sync")
    assert synced.code == 0, synced
    matches = stored_matches(cli, config)
    assert matches["colfax"]["edges"][0][0] == COLFAX_WAY  # type: ignore[index]
    assert matches["7"]["edges"] and matches["7"]["covered_fraction"] == 1.0
    assert len(list((data_dir / "networks").glob("*.network"))) == 1  # built once, then loaded from there
    assert cli("--config", str(config), "sync").code == 0


def test_graphml_classes_filter_edges(cli: Cli, testdata: Path, tmp_path: Path) -> None:
    graph = testdata / DENVER / "osmnx_drive_graph.graphml"
    config = write_config(tmp_path / "exchange.toml", graph, denver_feed(testdata, tmp_path), classes=["residential"])
    info = cli("--config", str(config), "network", "info", str(graph))
    assert info.code == 0, info
    assert set(json.loads(info.out)[0]["classes"]) == {"residential"}
    assert cli("--config", str(config), "sync").code == 0
    matches = stored_matches(cli, config)
    assert matches["colfax"]["edges"] and matches["colfax"]["edges"][0][0] != COLFAX_WAY  # type: ignore[index]
    assert matches["7"]["edges"] == [] and matches["7"]["reason"] == "no road near the line"  # on a primary street


def test_json_centerline_without_mapping_in_config(cli: Cli, testdata: Path, tmp_path: Path) -> None:
    """A `.json` centerline with no [network.centerline] gets the default mapping, not the OSM classes."""
    roads = tmp_path / "roads.json"
    roads.symlink_to(testdata / "match" / "cambridge_waze_osm" / "osm_elements.geojson")
    first = json.loads(roads.read_text())["features"][0]["geometry"]["coordinates"][0]
    snapshot = tmp_path / "cambridge.json"
    snapshot.write_bytes(feed(0, alerts=[alert("a", location={"x": first[0], "y": first[1]}, street=None)]))
    config = write_config(tmp_path / "exchange.toml", roads, snapshot)
    synced = cli("--config", str(config), "sync")
    assert synced.code == 0, synced
    assert stored_matches(cli, config)["a"]["edges"]


# ------------------------------------------------------------------------------------------ refusals


def one_line_error(run, codes: tuple[int, ...] = (1, 2)) -> str:  # type: ignore[no-untyped-def]
    assert run.code in codes, run
    assert "Traceback" not in run.err and run.err.startswith("error: ") and run.err.count("\n") == 1, run
    return str(run.err)


def stale_cache(tmp_path: Path) -> bytes:
    """A cache as an older traffic-exchange would have pickled it: a RoadNetwork field missing."""
    from adapters.network_cache import build_cache

    network = build_cache(OSM, tmp_path / "fresh.network")
    del network.__dict__["edge_v"]
    return MAGIC + pickle.dumps(network)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("roads.network", b"hello", "is not a traffic-exchange network cache"),
        ("roads.cache", b"hello", "unknown road network format"),
        ("cut.bin", MAGIC + b"\x80\x05\x95", "unreadable network cache"),
        ("future.network", b"traffic-exchange road network v9\n\x80", "network cache format v9, this traffic-exchange"),
        ("old.network", None, "written by an older traffic-exchange"),
        ("broken.graphml", b"<graphml><node id='1'", "malformed XML"),
        ("empty.network", b"", "is not a traffic-exchange network cache"),
    ],
)
def test_foreign_or_corrupt_network_file(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content if content is not None else stale_cache(tmp_path))
    assert message in one_line_error(cli("network", "info", str(path)))
    assert message in one_line_error(cli("match", "--network", str(path), str(POLLS[0])))
    config = write_config(tmp_path / "exchange.toml", path, POLLS[0])
    assert message in one_line_error(cli("--config", str(config), "sync"))


def test_build_refuses_to_destroy_a_file(cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "oakland.osm.bz2"
    source.write_bytes(OSM.read_bytes())
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    (tmp_path / "dir").mkdir()
    for out, message in [(source, "is the source itself"), (notes, "is not a network cache"), (tmp_path / "dir",
                                                                                                 "is a directory")]:
        assert message in one_line_error(cli("network", "build", str(source), "--out", str(out)), codes=(2,))
    assert source.read_bytes() == OSM.read_bytes() and notes.read_text() == "keep me"
    cache = tmp_path / "oakland.cache"
    assert cli("network", "build", str(source), "--out", str(cache)).code == 0
    assert "already a built network cache" in one_line_error(cli("network", "build", str(cache)), codes=(2,))


def test_network_info_defaults_to_the_configured_network(cli: Cli, tmp_path: Path) -> None:
    config = write_config(tmp_path / "exchange.toml", OSM, POLLS[0])
    shown = cli("--config", str(config), "network", "info")
    assert shown.code == 0, shown
    assert json.loads(shown.out)[0]["directed_edges"] > 0
    bare = tmp_path / "bare.toml"
    bare.write_text("", encoding="utf-8")
    refused = cli("--config", str(bare), "network", "info")
    assert refused.code == 2 and refused.err == "error: no network: pass a file or configure [network]\n", refused
