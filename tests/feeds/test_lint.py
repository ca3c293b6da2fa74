from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from exchange.errors import ItemRejected
from exchange.model import Category, Event, Point, RoadMatch
from feeds.city import city_event
from feeds.lint import (
    MAX_DESCRIPTION,
    PUBLISH_THRESHOLD,
    feed_success_share,
    line_bearing_deg,
    lint_event,
    polyline_length_m,
)
from feeds.problems import Problem, errors_only
from feeds.wzdx import WZDX_KEY, parse_wzdx, wzdx_item_to_event
from geo.network import RoadNetwork, build_network
from geo.types import WayInput

ZONE = ZoneInfo("America/Chicago")
LAT = 39.78
# Main Street runs east-west through three junctions about 430 m apart; Oak Avenue crosses at node 2
NODES = {
    1: (-89.660, LAT), 2: (-89.655, LAT), 3: (-89.650, LAT), 10: (-89.655, LAT - 0.005), 11: (-89.655, LAT + 0.005),
}
MAIN = [(100, 1, 2), (100, 2, 3)]


@pytest.fixture(scope="module")
def network() -> RoadNetwork:
    return build_network(NODES, [
        WayInput(100, [1, 2, 3], {"highway": "residential", "name": "Main Street"}),
        WayInput(200, [10, 2, 11], {"highway": "residential", "name": "Oak Avenue"}),
    ])


def event(coordinates: list[tuple[float, float]] | None = None, **overrides: Any) -> Event:
    fields: dict[str, Any] = {
        "type": "ROAD_CLOSED",
        "subtype": "ROAD_CLOSED_CONSTRUCTION",
        "street": "Main Street",
        "coordinates": coordinates or [NODES[1], NODES[2], NODES[3]],
        "zone": ZONE,
        "direction": "BOTH_DIRECTIONS",
        "start": "2026-07-12T08:00:00",
        "description": "Water main",
    }
    fields.update(overrides)
    return city_event("city", "L-1", **fields)


def messages(problems: list[Problem], severity: str = "error") -> list[str]:
    return [p.message for p in problems if p.severity == severity]


def test_a_good_closure_has_no_findings(network: RoadNetwork) -> None:
    good = event()
    good.road_match = RoadMatch(edges=MAIN, confidence=1.0)
    assert lint_event(good, network) == []
    # without a network nothing blocks, but the lint says the polyline is taken on trust
    assert messages(lint_event(good)) == []
    assert any("no road network" in m for m in messages(lint_event(good), "warning"))


def test_length_is_measured_in_metres() -> None:
    assert polyline_length_m([NODES[1], NODES[3]]) == pytest.approx(855.7, rel=3e-3)  # UTM scale error included
    assert polyline_length_m([NODES[1]]) == 0.0


@pytest.mark.parametrize(
    ("coordinates", "expected"),
    [
        ([(-89.66, LAT), (-89.6598, LAT)], "17.1 m long; Waze needs at least 30 m"),
        ([(-89.9, LAT), (-89.75, LAT), (-89.6, LAT)], "25.7 km long; Waze takes at most 20 km"),
    ],
)
def test_too_short_or_too_long_blocks(coordinates: list[tuple[float, float]], expected: str) -> None:
    found = lint_event(event(coordinates))
    assert [expected in m for m in messages(found)] == [True]


def test_one_point_blocks_a_full_closure_but_not_works_or_a_hazard() -> None:
    point = Point(coordinates=NODES[1])  # city events are lines; crowd reports and old rows may be points
    hazard = event(type="HAZARD", subtype=None).model_copy(update={"geometry": point, "category": Category.HAZARD})
    assert messages(lint_event(hazard)) == [] and len(messages(lint_event(hazard), "warning")) == 1
    closed = event().model_copy(update={"geometry": point})
    assert any("one place only" in m for m in messages(lint_event(closed)))
    works = event(type="CONSTRUCTION", subtype=None).model_copy(update={"geometry": point})
    assert messages(lint_event(works)) == []
    assert any("one place only" in m for m in messages(lint_event(works), "warning"))


@pytest.mark.parametrize("street", ["1200 Main Street", "Main Street 12", "1200 8th Street", "1200 Interstate 880"])
def test_a_house_number_in_the_street_blocks(street: str) -> None:
    assert any("house number" in m for m in messages(lint_event(event(street=street))))


def test_street_names_that_are_not_house_numbers() -> None:
    for street in ("5th Avenue", "Route 9", "I-70", "Interstate 880", "CA 24", "US 36", "B 14", "Carrera 7",
                   "Autoroute 40", "Ring 2", "8th Street", "Highway 1", "Route 66", "County Road 5"):
        assert messages(lint_event(event(street=street))) == []


def test_a_long_description_is_only_a_warning() -> None:
    found = lint_event(event(description="x" * (MAX_DESCRIPTION + 1)))
    assert messages(found) == []
    assert len([m for m in messages(found, "warning") if "description" in m]) == 1


def test_more_than_one_street_blocks(network: RoadNetwork) -> None:
    turning = event([NODES[1], NODES[2], NODES[11]])
    turning.road_match = RoadMatch(edges=[(100, 1, 2), (200, 2, 11)])
    found = messages(lint_event(turning, network))
    assert any("more than one street" in m and "'Oak Avenue'" in m for m in found)


def test_endpoints_must_be_at_junctions(network: RoadNetwork) -> None:
    inside = event([(-89.6594, LAT), NODES[2], (-89.6506, LAT)])  # about 50 m inside each end
    inside.road_match = RoadMatch(edges=MAIN)
    found = messages(lint_event(inside, network))
    assert [m.split(" m ")[0] for m in found] == ["starts 51", "ends 51"]
    assert all("junction" in m for m in found)


def test_without_a_match_the_network_checks_are_skipped(network: RoadNetwork) -> None:
    lonely = event()
    lonely.road_match = RoadMatch(reason="no edge within 30 m")
    found = lint_event(lonely, network)
    assert messages(found) == [] and "no edge within 30 m" in messages(found, "warning")[0]
    assert "skipped" in messages(lint_event(event(), network), "warning")[0]
    stale = event()
    stale.road_match = RoadMatch(edges=[(999, 1, 2)])
    assert "not in the loaded network" in messages(lint_event(stale, network), "warning")[0]


def test_feed_success_share() -> None:
    findings = [lint_event(event()), lint_event(event([(-89.66, LAT), (-89.6599, LAT)])),
                lint_event(event(description="y" * 80)), lint_event(event(street="12 Main Street"))]
    assert [bool(errors_only(f)) for f in findings] == [False, True, False, True]
    share = feed_success_share(findings)
    assert share == 0.5 and share < PUBLISH_THRESHOLD
    assert feed_success_share([]) == 1.0


# the geometry rules block full closures only ---------------------------------------------------------------
SHORT = [(-89.66, LAT), (-89.6598, LAT)]
LONG = [(-89.9, LAT), (-89.6, LAT)]
PARTIAL = {"lane_impact": {"total_closed_lanes": 1, "roadside": "RIGHT"}}


@pytest.mark.parametrize("coordinates", [SHORT, LONG])
@pytest.mark.parametrize(
    ("overrides", "blocks"),
    [
        ({}, True),  # ROAD_CLOSED, every lane
        ({"lanes": [{"order": 0, "status": "CLOSED"}, {"order": 1, "status": "CLOSED"}]}, True),  # every lane listed
        (PARTIAL, False),
        ({"lanes": [{"order": 0, "status": "CLOSED"}, {"order": 1, "status": "OPEN"}]}, False),
        ({"type": "CONSTRUCTION", "subtype": None}, False),
        ({"type": "HAZARD", "subtype": "HAZARD_ON_ROAD_CONSTRUCTION"}, False),
    ],
)
def test_length_blocks_a_full_closure_only(
    coordinates: list[tuple[float, float]], overrides: dict[str, Any], blocks: bool
) -> None:
    found = lint_event(event(coordinates, **overrides))
    assert [p.severity for p in found if " long; Waze " in p.message] == ["error" if blocks else "warning"]


def test_junction_and_street_rules_block_a_full_closure_only(network: RoadNetwork) -> None:
    inside = [(-89.6594, LAT), NODES[2], (-89.6506, LAT)]
    for overrides, severity in (({}, "error"), (PARTIAL, "warning"), ({"type": "CONSTRUCTION", "subtype": None},
                                                                       "warning")):
        placed = event(inside, **overrides)
        placed.road_match = RoadMatch(edges=MAIN)
        junctions = [p.severity for p in lint_event(placed, network) if "junction" in p.message]
        assert junctions == [severity, severity]
        turning = event([NODES[1], NODES[2], NODES[11]], **overrides)
        turning.road_match = RoadMatch(edges=[(100, 1, 2), (200, 2, 11)])
        streets = [p.severity for p in lint_event(turning, network) if "more than one street" in p.message]
        assert streets == [severity]


def test_a_road_closed_with_a_lane_impact_is_a_warning() -> None:
    for overrides in (PARTIAL, {"lanes": [{"order": 0, "status": "CLOSED"}, {"order": 1, "status": "OPEN_LANE"}]}):
        found = lint_event(event(**overrides))
        assert messages(found) == []
        assert "a ROAD_CLOSED closes every lane; a partial closure is a lane impact on CONSTRUCTION (or HAZARD)" \
            in messages(found, "warning")
    for quiet in (event(), event(type="CONSTRUCTION", subtype=None, **PARTIAL)):
        assert not any("closes every lane" in m for m in messages(lint_event(quiet), "warning"))


# open-ended events -----------------------------------------------------------------------------------------
NOW = datetime(2026, 8, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        ("2026-07-12T08:00:00", None, 19),  # 19 days and 23 hours (Chicago is UTC-5 in July)
        ("2026-07-18T06:00:00", None, 14),  # 14 days and 1 hour: more than 14 days
        ("2026-07-18T08:00:00", None, None),  # 13 days and 23 hours
        ("2026-07-12T08:00:00", "2026-09-01T08:00:00", None),  # an end is given
        ("2026-07-31T08:00:00", None, None),
    ],
)
def test_an_old_start_without_an_end_is_a_warning(start: str, end: str | None, days: int | None) -> None:
    fields: dict[str, Any] = {"start": start} if end is None else {"start": start, "end": end}
    found = lint_event(event(**fields), now=NOW)
    assert messages(found) == []
    expired = [m for m in messages(found, "warning") if "no end" in m]
    if days is None:
        assert expired == []
    else:
        assert expired == [f"started {days} days ago with no end: Waze may have expired it; give an end"]
    assert not any("no end" in p.message for p in lint_event(event(**fields)))  # without a clock: not checked


def test_the_lint_takes_a_naive_now_as_utc() -> None:
    found = lint_event(event(), now=NOW.replace(tzinfo=None))
    assert "started 19 days ago with no end: Waze may have expired it; give an end" in messages(found, "warning")


# --------------------------------------------------------------------------- signed direction (#10)


def signed(direction: str, coordinates: list[tuple[float, float]], **overrides: Any) -> Event:
    """A ONE_DIRECTION work zone whose source (WZDx) signs ``direction``."""
    base = event(coordinates, type="CONSTRUCTION", subtype=None, direction="ONE_DIRECTION", **overrides)
    return base.model_copy(update={"attributes": {**base.attributes, WZDX_KEY: {"direction": direction}}})


def direction_findings(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if "direction" in p.message]


EASTWARD = [NODES[1], NODES[2], NODES[3]]


def test_a_line_along_its_signed_direction_has_no_direction_finding() -> None:
    assert direction_findings(lint_event(signed("eastbound", EASTWARD))) == []
    assert line_bearing_deg(EASTWARD) == pytest.approx(90.0, abs=2.0)  # UTM grid north: 1.7 degrees off here


def test_a_line_drawn_against_its_signed_direction_blocks_and_holds_back() -> None:
    found = direction_findings(lint_event(signed("westbound", EASTWARD)))
    message = "drawn against its stated direction (westbound, heading 92 degrees)"
    assert found == [Problem("event city:city:L-1", message, "error", holds_back=True)]


def test_a_line_across_its_signed_direction_is_a_warning_to_check() -> None:
    north_east = [(-89.660, LAT), (-89.650, LAT + 0.0065)]  # about 52 degrees
    found = direction_findings(lint_event(signed("southbound", north_east)))
    assert [(p.message, p.severity, p.holds_back) for p in found] == [
        ("bearing disagrees with the signed direction (southbound, heading 52 degrees); check", "warning", False)
    ]
    assert direction_findings(lint_event(signed("northbound", north_east))) == []  # 52 degrees off


def test_with_a_network_a_line_placed_against_its_direction_is_still_held_back(network: RoadNetwork) -> None:
    # a network proves a line's order only on a one-way road: placed as drawn (a two-way street), it closes
    # the other side of the road from the one its source signs (found in a cold trial)
    placed = signed("westbound", EASTWARD).model_copy(
        update={"road_match": RoadMatch(edges=network.edge_keys([0]), confidence=1.0)})
    found = direction_findings(lint_event(placed, network))
    assert found == [Problem("event city:city:L-1", "drawn against its stated direction (westbound, heading 92 "
                                                    "degrees)", "error", holds_back=True)]
    # reversed by the network to follow a one-way road, against what its source signs: the two disagree
    turned = signed("eastbound", EASTWARD[::-1]).model_copy(update={"road_match": RoadMatch(
        edges=network.edge_keys([0]), confidence=1.0,
        note="drawn against one-way '1st Street': reversed to follow it (the road network proves it)")})
    found = direction_findings(lint_event(turned, network))
    assert [(p.severity, p.holds_back) for p in found] == [("error", True)]
    assert found[0].message == ("the road network reverses it (heading 272 degrees) against the direction its "
                                "source signs (eastbound): the source and the network's one-way road disagree")


@pytest.mark.parametrize("direction", ["inner-loop", "unknown", None])
def test_no_compass_direction_or_both_directions_no_finding(direction: str | None) -> None:
    if direction is not None:
        assert direction_findings(lint_event(signed(direction, EASTWARD))) == []
    both = signed("westbound", EASTWARD).model_copy(update={"direction": "BOTH_DIRECTIONS"})
    assert direction_findings(lint_event(both)) == []
    assert direction_findings(lint_event(event(EASTWARD, direction="ONE_DIRECTION"))) == []  # no signed direction


def cdot_events(testdata: Path) -> list[Event]:
    snapshot = parse_wzdx((testdata / "wzdx" / "cdot_prod_wzdx_v42_20230522.json").read_bytes())
    found: list[Event] = []
    for item in snapshot.items:
        with contextlib.suppress(ItemRejected):
            found.append(wzdx_item_to_event(item, "wzdx", ZoneInfo("America/Denver")))
    return [event for event in found if event.geometry.type == "LineString"]  # the four point work zones aside


def test_cdot_lines_against_their_signed_direction(testdata: Path, network: RoadNetwork) -> None:
    lines = cdot_events(testdata)
    assert len(lines) == 83
    findings = {e.source_id: direction_findings(lint_event(e)) for e in lines}
    against = {sid for sid, found in findings.items()
               if any(p.severity == "error" and p.holds_back for p in found)}
    across = {sid for sid, found in findings.items() if any("disagrees" in p.message for p in found)}
    assert len(against) == 12 and len(across) == 11 and not against & across  # 23 over 90 degrees
    assert all(len(found) <= 1 for found in findings.values())
    assert all(p.severity == "warning" and not p.holds_back for sid in across for p in findings[sid])
    assert findings["adc88e1f-d6dc-5ba8-bdbe-8576b1bff865"][0].message == (
        "drawn against its stated direction (northbound, heading 174 degrees)"
    )
    assert findings["040b4b1b-4475-5129-9506-a83b8c41374f"][0].message == (
        "bearing disagrees with the signed direction (westbound, heading 35 degrees); check"
    )
    # a network that does not cover Colorado places none of them: the same findings
    with_network = {e.source_id: direction_findings(lint_event(e, network)) for e in lines}
    assert with_network == findings


def test_cdot_two_point_chords_are_flagged_without_a_network(testdata: Path) -> None:
    lines = cdot_events(testdata)
    chords = [e for e in lines if len({tuple(p) for p in e.geometry.coordinates}) == 2]
    flagged = [p for e in lines for p in lint_event(e) if "straight chord" in p.message]
    assert len(chords) == 19 and len(flagged) == 17  # the other two are under 200 m: short and straight is fine
    assert max(polyline_length_m(e.geometry.coordinates) for e in chords) > 14_000


def test_imported_some_lanes_closed_is_a_lane_impact_not_a_road_closed(testdata: Path) -> None:
    lines = cdot_events(testdata)
    partial = [e for e in lines if str(e.attributes[WZDX_KEY].get("vehicle_impact", "")).startswith("some-lanes")]
    assert partial and all(e.category is Category.CONSTRUCTION for e in partial)
    assert not [p for e in partial for p in lint_event(e) if "closes every lane" in p.message]
