"""``has_house_number`` on every street name of the real feeds, and on foreign forms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lxml import etree

from geo.names import has_house_number


def _feed_street_names(testdata: Path) -> set[str]:
    names: set[str] = set()
    for path in sorted((testdata / "waze_feed").glob("*.json")):
        feed = json.loads(path.read_text(encoding="utf-8"))
        for kind in ("alerts", "jams"):
            names.update(item["street"] for item in feed.get(kind) or [] if item.get("street"))
    for path in sorted((testdata / "wzdx").glob("*.json")):
        for feature in json.loads(path.read_text(encoding="utf-8"))["features"]:
            names.update(feature["properties"]["core_details"].get("road_names") or [])
    for path in sorted((testdata / "cifs").glob("**/*.xml")):  # DiaLog, London ON, iCone (CDOT)
        for element in etree.parse(str(path)).iter("{*}street"):
            if element.text and element.text.strip():
                names.add(element.text.strip())
    return names


@pytest.fixture(scope="module")
def feed_names(testdata: Path) -> set[str]:
    names = _feed_street_names(testdata)
    assert len(names) > 1500  # NYC, Jakarta, Louisville, Boston, CDOT, London ON, DiaLog
    return names


def test_every_real_street_name_is_a_name(feed_names: set[str]) -> None:
    flagged = sorted(name for name in feed_names if has_house_number(name))
    assert flagged == []


def test_a_house_number_before_any_real_name_is_flagged(feed_names: set[str]) -> None:
    missed = sorted(name for name in feed_names if not has_house_number(f"1200 {name}"))
    assert missed == []


NAMES = [
    # routes and numbered roads
    "Interstate 880", "CA 24", "I-25", "US 36", "US Highway 36", "Highway 1", "Route 66", "County Road 5",
    "Co Rd 5", "State Road 7", "Farm to Market Road 1960", "SR-139 E", "D14", "N1 Daan Mogot",
    # ordinals
    "8th Street", "W 42nd St", "E 138 St", "1st Ave Tunnel",
    # French, German, Dutch, Spanish, Colombian, Polish, Indonesian
    "Rue du 8 Mai 1945", "Avenue du 11 Novembre", "Autoroute 40", "1er Mai", "B 14", "Bundesstraße 14",
    "Ring 2", "A 9", "N 201", "Rijksweg 12", "Calle 26", "24 de Julio", "Avenida Carrera 7", "Carrera 7",
    "Avenue 12", "3 Maja", "Kebon Kacang 9", "Jalan SMA 14", "Rest Area KM 13.5",
]
ADDRESSES = [
    "1200 Main Street", "12 Main Street", "1200 8th Street", "1200 Interstate 880", "12a Main St",
    "12-14 High St", "12 bis Rue de Rivoli", "12 Mai Street", "1200 Mai 1945", "1200 Rue du 8 Mai 1945",
    "Main Street 12", "Main St 12a", "Market Street 12", "Hauptstraße 12", "Hauptstr. 5", "Kalverstraat 1",
    "Storgatan 3", "Via Roma 12", "Calle Mayor, 12", "Calle 26 # 12-34", "Rue de Rivoli n° 12",
]


@pytest.mark.parametrize("name", NAMES)
def test_numbers_that_are_part_of_the_name(name: str) -> None:
    assert not has_house_number(name)


@pytest.mark.parametrize("name", ADDRESSES)
def test_house_numbers(name: str) -> None:
    assert has_house_number(name)


def test_empty_and_blank_names_have_no_house_number() -> None:
    assert not has_house_number("") and not has_house_number("   ") and not has_house_number("Main Street")
