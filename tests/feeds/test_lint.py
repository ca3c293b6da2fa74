from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest

from exchange.model import Category, Event, Point, RoadMatch
from feeds.city import city_event
from feeds.lint import (
    MAX_DESCRIPTION,
    PUBLISH_THRESHOLD,
    feed_success_share,
    lint_event,
    polyline_length_m,
)
from feeds.problems import Problem, errors_only
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
        ([(-89.9, LAT), (-89.6, LAT)], "25.7 km long; Waze takes at most 20 km"),
    ],
)
def test_too_short_or_too_long_blocks(coordinates: list[tuple[float, float]], expected: str) -> None:
    found = lint_event(event(coordinates))
    assert [expected in m for m in messages(found)] == [True]


def test_one_point_blocks_a_closure_but_not_a_hazard() -> None:
    point = Point(coordinates=NODES[1])  # city events are lines; crowd reports and old rows may be points
    hazard = event(type="HAZARD", subtype=None).model_copy(update={"geometry": point, "category": Category.HAZARD})
    assert messages(lint_event(hazard)) == [] and len(messages(lint_event(hazard), "warning")) == 1
    works = event(type="CONSTRUCTION", subtype=None).model_copy(update={"geometry": point})
    assert any("one place only" in m for m in messages(lint_event(works)))


@pytest.mark.parametrize("street", ["1200 Main Street", "Main Street 12"])
def test_a_house_number_in_the_street_blocks(street: str) -> None:
    assert any("house number" in m for m in messages(lint_event(event(street=street))))


def test_street_names_that_are_not_house_numbers() -> None:
    for street in ("5th Avenue", "Route 9", "I-70"):
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
