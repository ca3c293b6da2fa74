"""Both directions of a divided road, end to end on the West Oakland extract.

East of Wood Street, 7th Street is mapped as two one-way ways about 10 m apart: 202455449 eastbound
and 202459252 westbound. Waze reads a polyline's point order as the direction closed, and a
divided road is two one-way roads in its map ("Road closure information", section 2), so closing
both directions takes two incidents, each ONE_DIRECTION along its own carriageway, the second
naming the first as its ``parent_event``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from adapters.osm import read_osm_xml
from geo.closure import route_closure
from geo.match import point_candidates
from geo.network import RoadNetwork, build_network, heading_difference
from tests.support.helpers import Cli, Run
from tests.support.paths import DEMO, OSM

EASTBOUND, WESTBOUND = 202455449, 202459252
#: two points on the median of divided 7th Street ("LAT LON"), west to east
WEST, EAST = "37.80665 -122.3010", "37.80620 -122.2990"
#: west of Wood Street 7th Street is one way only (westbound, way 202455451): points along it
ONE_WAY_FROM, ONE_WAY_TO = "37.807505 -122.303143", "37.808020 -122.304962"
#: 8th Street, two-way
TWO_WAY_FROM, TWO_WAY_TO = "37.806366 -122.294557", "37.806041 -122.29313"


@pytest.fixture(scope="module")
def network() -> RoadNetwork:
    """The network the demo config routes on (``fixtures/osm``, the same bytes as ../shared/testdata)."""
    data = read_osm_xml(OSM)
    return build_network(data.nodes, data.ways)


def _time(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat(timespec="seconds")


def add(cli: Cli, street: str, start: str, end: str, *extra: str) -> Run:
    return cli("--config", str(DEMO), "closure", "add", "--street", street, "--from", start, "--to", end,
               "--type", "ROAD_CLOSED", "--subtype", "ROAD_CLOSED_CONSTRUCTION", "--start", _time(-1),
               "--end", _time(48), "--description", "Sewer work", *extra)


def listed(cli: Cli) -> dict[str, dict[str, Any]]:
    shown = cli("--config", str(DEMO), "closure", "list", "--format", "json")
    assert shown.code == 0, shown
    return {record["id"]: record for record in json.loads(shown.out)}


def _lonlat(text: str) -> tuple[float, float]:
    lat, lon = (float(value) for value in text.split())
    return lon, lat


def test_7th_street_is_two_one_way_carriageways_east_of_wood_street(network: RoadNetwork) -> None:
    for point in (WEST, EAST):
        lon, lat = _lonlat(point)
        x, y = network.frame.to_metric(np.array([lon]), np.array([lat]))
        near = point_candidates(network, x, y, 30.0)
        bearing = {network.edge_key(int(edge))[0]: float(heading) for edge, heading in zip(near.edge, near.bearing,
                                                                                              strict=True)
                   if network.edge_name(int(edge)) == "7th Street"}
        assert set(bearing) == {EASTBOUND, WESTBOUND}, bearing
        assert all(network.edge_oneway(int(edge)) for edge in near.edge if network.edge_key(int(edge))[0] in bearing)
        assert heading_difference(np.array([bearing[EASTBOUND]]), np.array([bearing[WESTBOUND]]))[0] > 150


def test_both_directions_of_divided_7th_street_close_both_carriageways(
    cli: Cli, network: RoadNetwork, tmp_path: Path,
) -> None:
    added = add(cli, "7th Street", WEST, EAST, "--direction", "BOTH_DIRECTIONS")
    assert added.code == 0, added
    first = added.out.strip()
    opposite = f"{first}-opposite"
    assert added.out == f"{first}\n"  # a script still gets one id: the one that ends both
    assert "divided road" in added.err and "both carriageways closed" in added.err, added.err
    assert f"{first} (eastbound, as drawn)" in added.err and f"{opposite} (westbound" in added.err, added.err

    out = tmp_path / "feeds"
    assert cli("--config", str(DEMO), "publish", "--out", str(out)).code == 0
    for name in ("cifs.xml", "cifs.json", "wzdx.geojson"):
        checked = cli("validate", str(out / name))
        assert checked.code == 0, checked
    incidents = {item["incident"]["id"]: item["incident"]
                 for item in json.loads((out / "cifs.json").read_text())["incidents"]}
    assert set(incidents) == {first, opposite}
    assert incidents[opposite]["parent_event"] == {"id": first} and "parent_event" not in incidents[first]
    stored = listed(cli)
    index = network.edge_index()
    for closure_id, way in ((first, EASTBOUND), (opposite, WESTBOUND)):
        incident = incidents[closure_id]
        assert incident["direction"] == "ONE_DIRECTION"
        edges = [index[(w, a, b)] for w, a, b in stored[closure_id]["road_match"]["edges"]]
        assert {network.edge_key(edge)[0] for edge in edges} == {way}
        assert all(network.edge_oneway(edge) and network.twin(edge) < 0 for edge in edges)
        # the polyline is those one-way edges in their travel direction, junction to junction, in order
        along = np.vstack([network.edge_lonlat(edges[0])] + [network.edge_lonlat(edge)[1:] for edge in edges[1:]])
        values = [float(value) for value in incident["polyline"].split()]
        points = np.column_stack((values[1::2], values[0::2]))
        assert np.allclose(points, along, atol=1e-6), (closure_id, points, along)
    assert {stored[first]["status"], stored[opposite]["status"]} == {"active"}

    ended = cli("--config", str(DEMO), "closure", "end", opposite)
    assert ended.code == 0 and ended.out == f"{opposite}\n", ended
    assert f"closure {first}, the other carriageway of this divided road: ended too" in ended.err, ended.err
    stored = listed(cli)
    assert stored[first]["status"] == stored[opposite]["status"] == "ended"
    assert stored[first]["end_time"] == stored[opposite]["end_time"]


def test_a_plain_one_way_street_closes_its_one_direction_and_says_so(cli: Cli) -> None:
    added = add(cli, "7th Street", ONE_WAY_FROM, ONE_WAY_TO, "--direction", "BOTH_DIRECTIONS")
    assert added.code == 0, added
    assert "one-way there: only its direction of travel is closed" in added.err, added.err
    (record,) = listed(cli).values()
    assert record["id"] == added.out.strip() and record["direction"] == "ONE_DIRECTION"
    line = record["geometry"]["coordinates"]
    assert line[0][0] > line[-1][0]  # westbound, as the street runs


def test_a_two_way_street_is_one_closure_of_both_directions(cli: Cli) -> None:
    added = add(cli, "8th Street", TWO_WAY_FROM, TWO_WAY_TO, "--direction", "BOTH_DIRECTIONS")
    assert added.code == 0, added
    assert "divided" not in added.err and "one-way" not in added.err, added.err
    (record,) = listed(cli).values()
    assert record["direction"] == "BOTH_DIRECTIONS" and "parent_event" not in record["details"]


def test_the_pair_moves_together(store_cli: Cli) -> None:
    cli = store_cli
    first = add(cli, "7th Street", WEST, EAST).out.strip()  # BOTH_DIRECTIONS is the default
    opposite = f"{first}-opposite"
    before = listed(cli)
    assert set(before) == {first, opposite}

    changed = cli("--config", str(DEMO), "closure", "update", opposite, "--description", "Sewer main")
    assert changed.code == 0 and changed.out == f"{opposite}\n", changed
    assert f"closure {first}, the other carriageway of this divided road: updated too" in changed.err
    after = listed(cli)
    assert after[first]["details"]["description"] == after[opposite]["details"]["description"] == "Sewer main"
    assert all(after[i]["geometry"] == before[i]["geometry"] for i in (first, opposite))  # not moved
    assert after[opposite]["details"]["parent_event"] == first

    # what would take the pair apart is refused, and changes nothing
    for change in (("--direction", "ONE_DIRECTION"), ("--from", ONE_WAY_FROM, "--to", ONE_WAY_TO)):
        refused = cli("--config", str(DEMO), "closure", "update", first, *change)
        assert refused.code == 2 and refused.err.startswith("error: ") and refused.err.count("\n") == 1, refused
        assert "cancel them and add" in refused.err
    assert listed(cli) == after

    moved = cli("--config", str(DEMO), "closure", "update", first, "--from", "37.80660 -122.3005",
                "--to", "37.80615 -122.2985")
    assert moved.code == 0 and "both carriageways closed" in moved.err, moved
    rerouted = listed(cli)
    assert all(rerouted[i]["geometry"] != after[i]["geometry"] for i in (first, opposite))
    assert rerouted[first]["direction"] == rerouted[opposite]["direction"] == "ONE_DIRECTION"

    def eastward(record: dict[str, Any]) -> bool:
        line = record["geometry"]["coordinates"]
        return bool(line[-1][0] > line[0][0])

    # the same place drawn from the other end: each id stays on its side (no id turns round)
    again = cli("--config", str(DEMO), "closure", "update", first, "--from", "37.80615 -122.2985",
                "--to", "37.80660 -122.3005")
    assert again.code == 0 and "its side as before" in again.err, again
    assert "nothing changed" in again.err, again  # the same closures: no revision
    turned = listed(cli)
    assert [eastward(turned[i]) for i in (first, opposite)] == [eastward(rerouted[i]) for i in (first, opposite)]

    cancelled = cli("--config", str(DEMO), "closure", "cancel", first)
    assert cancelled.code == 0 and "cancelled too" in cancelled.err, cancelled
    assert {record["status"] for record in listed(cli).values()} == {"cancelled"}
    for closure_id in (first, opposite):
        shown = json.loads(cli("--config", str(DEMO), "inspect", "event", closure_id, "--format", "json").out)[0]
        assert [r["action"] for r in shown["revisions"]] == ["created", "updated", "updated", "cancelled"]


def test_a_single_closure_is_not_moved_onto_a_divided_road(cli: Cli) -> None:
    closure_id = add(cli, "8th Street", TWO_WAY_FROM, TWO_WAY_TO).out.strip()
    moved = cli("--config", str(DEMO), "closure", "update", closure_id, "--street", "7th Street",
                "--from", WEST, "--to", EAST)
    assert moved.code == 2 and "is a divided road where closure" in moved.err, moved
    assert list(listed(cli)) == [closure_id]


def test_one_direction_drawn_along_the_other_carriageway_closes_that_one(network: RoadNetwork) -> None:
    # the points lie nearer the eastbound carriageway but run west: the westbound one is meant
    points = np.array([_lonlat(EAST), _lonlat(WEST)])
    route = route_closure(network, "7th Street", points, direction="ONE_DIRECTION")
    assert {key[0] for key in route.keys} == {WESTBOUND} and route.opposite is None
    assert route.note is not None and "divided road" in route.note and "reversed" not in route.note


def test_a_polyline_on_one_carriageway_drawn_the_other_way_says_which_it_closes(cli: Cli) -> None:
    """The eastbound carriageway's own nodes, drawn westward: the westbound carriageway is closed (the
    direction drawn), and the operator is told the line lay on the other one."""
    drawn_west = "37.8061375 -122.2989293 37.8062864 -122.2995784 37.8065328 -122.3006667 37.8065829 -122.3008882"
    run = cli("--config", str(DEMO), "closure", "add", "--street", "7th Street", "--polyline", drawn_west,
              "--direction", "ONE_DIRECTION", "--type", "ROAD_CLOSED", "--start", _time(-1), "--end", _time(48),
              "--description", "Sewer work")
    assert run.code == 0, run
    assert "the line lies on one carriageway against its direction; closed the carriageway that runs as drawn" in (
        run.err)
    closed = listed(cli)[run.out.strip()]
    assert {way for way, _a, _b in closed["road_match"]["edges"]} == {WESTBOUND}


def test_an_update_to_both_directions_follows_the_street_as_an_add_does(cli: Cli) -> None:
    """Found in a cold trial: `closure update --direction BOTH_DIRECTIONS` stored it as asked, and WZDx sent
    a closure against a one-way street's traffic (and the other way along one carriageway of a divided
    road). A one-way street keeps its one direction, said as `add` says it; one carriageway is refused."""
    one_way = add(cli, "7th Street", ONE_WAY_FROM, ONE_WAY_TO)
    assert one_way.code == 0, one_way
    closure_id = one_way.out.strip()
    widened = cli("--config", str(DEMO), "closure", "update", closure_id, "--direction", "BOTH_DIRECTIONS")
    assert widened.code == 0 and "one-way there: only its direction of travel is closed" in widened.err, widened
    assert listed(cli)[closure_id]["direction"] == "ONE_DIRECTION"

    carriageway = add(cli, "7th Street", WEST, EAST, "--direction", "ONE_DIRECTION")
    assert carriageway.code == 0, carriageway
    refused = cli("--config", str(DEMO), "closure", "update", carriageway.out.strip(),
                  "--direction", "BOTH_DIRECTIONS")
    assert refused.code == 2 and "lies on one carriageway of divided '7th Street'" in refused.err, refused
    assert listed(cli)[carriageway.out.strip()]["direction"] == "ONE_DIRECTION"
