"""One closure two city sources report is published once (issue 10, item 4): the rules of
``exchange.same_closure`` on their own, then a city's CSV export and its GIS layer's GeoJSON export
of the same closures synced on the West Oakland network, published, and inspected."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from lxml import etree
from sqlalchemy import Engine, select

from adapters import build_source
from exchange.closures import ClosureInput, add_closure, cancel_closure
from exchange.config import Config, NetworkConfig
from exchange.config_file import load_config
from exchange.cycle import sync_then_publish
from exchange.errors import ConfigError
from exchange.model import Event, Kind
from exchange.placement import Placement
from exchange.same_closure import Candidate, Reporter, closed_edges, same_closures
from exchange.schema import events, publications, revisions, sync_runs
from feeds.items import FeedItem
from feeds.wzdx import REVERSE_SUFFIX
from tests.support.helpers import Run
from tests.support.paths import OSM

# --------------------------------------------------------------------------- the rules


def candidate(
    eid: str, source: str | None, priority: int = 0, *, edges: Sequence[tuple[int, int, int]] = ((1, 1, 2),),
    type: str = "ROAD_CLOSED", match_id: str | None = None, start: int | None = 0, end: int | None = None,
    direction: str = "ONE_DIRECTION",
) -> Candidate:
    reporter = Reporter(source, priority) if source is not None else None
    return Candidate(eid, reporter, type, match_id, closed_edges(edges, direction), start, end)


BLOCKS = [(7, n, n + 1) for n in range(10)]


def test_the_higher_priority_is_published_ties_go_by_source_name_then_id() -> None:
    assert same_closures([candidate("a", "gis"), candidate("b", "permits", 10)]) == {"a": "b"}
    assert same_closures([candidate("a", "zeta"), candidate("b", "alpha")]) == {"a": "b"}
    # the order the events come in decides nothing
    assert same_closures([candidate("b", "alpha"), candidate("a", "zeta")]) == {"a": "b"}


def test_an_operators_closure_is_never_folded_away_but_takes_an_imported_one() -> None:
    operator, imported = candidate("city:city:1", None), candidate("gis:city:7", "gis", 1_000_000)
    assert same_closures([imported, operator]) == {"gis:city:7": "city:city:1"}
    # a shared id needs both sources to configure a match key: an operator's closure has none
    assert same_closures([candidate("o", None, edges=[(9, 1, 2)]), candidate("g", "gis", match_id="P-1")]) == {}


def test_one_sources_events_are_never_folded_into_each_other() -> None:
    """Two rows of one permit are two closures, as the source lists them."""
    rows = [candidate("c1", "permits", 10, match_id="P-1"), candidate("c2", "permits", 10, match_id="P-1")]
    assert same_closures(rows) == {}
    assert same_closures([*rows, candidate("g", "gis", match_id="P-1")]) == {"g": "c1"}


def test_a_shared_match_id_is_one_closure_whatever_the_road_type_and_times() -> None:
    permits = candidate("c", "permits", 10, match_id="P-1", edges=[(1, 1, 2)], start=0, end=10)
    gis = candidate("g", "gis", match_id="P-1", edges=[(5, 5, 6)], type="CONSTRUCTION", start=20)
    assert same_closures([permits, gis]) == {"g": "c"}
    assert same_closures([permits, candidate("g", "gis", match_id="P-2", edges=[(5, 5, 6)])]) == {}


def test_the_road_overlap_is_counted_against_both_closures_together() -> None:
    """At least 80 % of the edges either closes: a block never stands for the ten around it."""
    ten, one = candidate("ten", "permits", 10, edges=BLOCKS), candidate("one", "gis", 20, edges=BLOCKS[:1])
    assert same_closures([ten, one]) == {}
    eight = candidate("eight", "gis", edges=BLOCKS[:8])
    seven = candidate("seven", "gis", edges=BLOCKS[:7])
    assert same_closures([ten, eight]) == {"eight": "ten"}
    assert same_closures([ten, seven]) == {}


def test_types_differing_are_not_one_closure() -> None:
    closed, works = candidate("c", "permits"), candidate("g", "gis", type="CONSTRUCTION")
    assert same_closures([closed, works]) == {}


def test_a_closure_of_both_directions_closes_its_edges_both_ways() -> None:
    east = [(7, 1, 2), (7, 2, 3)]
    west = [(7, 3, 2), (7, 2, 1)]
    both_east = candidate("c", "permits", 10, edges=east, direction="BOTH_DIRECTIONS")
    assert same_closures([both_east, candidate("g", "gis", edges=west, direction="BOTH_DIRECTIONS")]) == {"g": "c"}
    # one direction is covered by a closure of both (found in a cold trial: a WZDx feed gives one road event
    # per direction, each published beside the city's closure of both); a closure of both is not one of
    # one direction: folding it away would drop the other direction from the feeds
    assert same_closures([both_east, candidate("g", "gis", edges=west)]) == {"g": "c"}
    assert same_closures([both_east, candidate("g", "gis", 20, edges=east)]) == {}
    # the pair together is: a closure of both folded into the first of them
    pair = [candidate("w", "wzdx", 20, edges=west), candidate("e", "wzdx", 20, edges=east)]
    assert same_closures([both_east, *pair]) == {"c": "e"}
    assert same_closures([both_east, pair[0]]) == {}, "half of it only"
    # a pair of one source is two closures to that source: never folded into each other
    assert same_closures(pair) == {}


def test_one_direction_of_a_closure_of_both_on_a_one_way_street_is_the_same_closure() -> None:
    """On a one-way street a closure of both directions closes edges the network does not have (the
    other way): one of the one direction there is the same closure."""
    one_way = [(9, 1, 2), (9, 2, 3)]
    both = candidate("c", "permits", 10, edges=one_way, direction="BOTH_DIRECTIONS")
    assert same_closures([both, candidate("g", "gis", edges=one_way)]) == {"g": "c"}


@pytest.mark.parametrize(("first", "second", "same"), [
    ((0, 10), (5, 20), True),  # from 10 on, the other goes out again (publish)
    ((4, 20), (0, 20), True),  # starts within a fifth of the other's time
    ((6, 20), (0, 20), False),  # folding would take 0 to 6 out of the feeds
    ((0, 10), (10, 20), False),  # one ends as the other starts
    ((None, 10), (5, None), True),  # no start: already started; no end: open
    ((5, None), (None, 10), False),  # the other closes the road before it
    ((20, None), (None, 10), False),
])
def test_the_published_closure_must_start_in_time(
        first: tuple[int | None, int | None], second: tuple[int | None, int | None], same: bool) -> None:
    a = candidate("c", "permits", 10, start=first[0], end=first[1])
    b = candidate("g", "gis", start=second[0], end=second[1])
    assert same_closures([a, b]) == ({"g": "c"} if same else {})


def test_an_operators_night_closure_does_not_take_the_days_closure_out_of_the_feeds() -> None:
    """A street fair closes the road since March with no end; an operator closes it tonight 22:00
    to 05:00: two closures, both published. What started before now does not count: at 10 the
    fair and a permit from 0 to 100 both close the road, and the permit stands for the fair."""
    fair = candidate("fair", "csv", start=-1_000, end=None)
    night = candidate("night", None, start=22, end=29)
    assert same_closures([fair, night], at_ms=10) == {}
    permit = candidate("permit", "permits", 10, start=0, end=100)
    fair_until = candidate("fair", "csv", start=-1_000, end=100)
    assert same_closures([fair_until, permit], at_ms=10) == {"fair": "permit"}
    assert same_closures([fair_until, permit], at_ms=-500) == {}, "before 0, only the fair closes the road"


def test_an_event_is_folded_only_into_a_published_one_it_matches_itself() -> None:
    """a ~ b and b ~ c but not a ~ c: c is published, never folded along the chain."""
    a = candidate("a", "s1", 10, edges=BLOCKS[:5])
    b = candidate("b", "s2", 5, edges=BLOCKS[:5], match_id="P-9")
    c = candidate("c", "s3", 0, edges=BLOCKS[5:], match_id="P-9")
    assert same_closures([c, b, a]) == {"b": "a"}


# --------------------------------------------------------------------------- two sources of one city

NOW = "2026-03-02T17:00:00+00:00"  # 09:00 in Oakland
NINTH = [(-122.299509, 37.808933), (-122.300788, 37.809578), (-122.301448, 37.809911), (-122.302087, 37.810233),
         (-122.303307, 37.810848)]
CAMPBELL = [(-122.299297, 37.806325), (-122.298941, 37.807360)]
CAMPBELL_NEXT_BLOCK = [(-122.298941, 37.807360), (-122.298585, 37.808395)]
SEVENTH = [(-122.302339, 37.807139), (-122.302550, 37.807247), (-122.303143, 37.807505), (-122.303673, 37.807697),
           (-122.304018, 37.807796)]
CSV_HEADER = ["closure_id", "permit_no", "type", "subtype", "street", "direction", "start", "end", "description",
              "wkt"]


def permit_rows(**changes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The city's permit export: a closure of 9th Street, the Campbell Street fair, works on 7th Street."""
    rows = {
        "C-100": {"permit_no": "P-2026-0417", "type": "ROAD_CLOSED", "subtype": "ROAD_CLOSED_CONSTRUCTION",
                  "street": "9th Street", "start": "2026-03-02T07:00", "end": "2026-03-20T17:00",
                  "description": "Utility work & paving", "wkt": NINTH},
        "C-101": {"permit_no": "P-2026-0422", "type": "ROAD_CLOSED", "subtype": "ROAD_CLOSED_EVENT",
                  "street": "Campbell Street", "start": "2026-03-02T07:00", "end": "2026-03-02T22:00",
                  "description": "Street fair", "wkt": CAMPBELL},
        "C-102": {"permit_no": "", "type": "CONSTRUCTION", "subtype": "", "street": "7th Street",
                  "start": "2026-03-02T07:00", "end": "2026-03-30T17:00", "description": "Lane closed: sewer repair",
                  "wkt": SEVENTH},
    }
    for closure_id, values in changes.items():
        rows[closure_id] = {**rows[closure_id], **values}
    return rows


def gis_features(**changes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The GIS layer's export of the same closures, its own way: other ids and names, 5 decimals,
    9th Street drawn from the other end, the permit's closure drawn on the next block, and 7th
    Street taken for a full closure."""
    features = {
        "GIS-7": {"PERMIT": None, "closure_type": "ROAD_CLOSED", "street_name": "9th St", "begins": "2026-03-02T08:00",
                  "ends": None, "notes": "Paving", "line": [(round(x, 5), round(y, 5)) for x, y in reversed(NINTH)]},
        "GIS-8": {"PERMIT": "P-2026-0422 ", "closure_type": "ROAD_CLOSED", "street_name": "Campbell St",
                  "begins": "2026-03-02T06:00", "ends": "2026-03-02T23:00", "notes": "Fair",
                  "line": CAMPBELL_NEXT_BLOCK},
        "GIS-9": {"PERMIT": None, "closure_type": "ROAD_CLOSED", "street_name": "7th St", "begins": "2026-03-02T07:00",
                  "ends": "2026-03-30T17:00", "notes": "Sewer", "line": SEVENTH},
    }
    for gis_id, values in changes.items():
        features[gis_id] = {**features[gis_id], **values}
    return features


def write_exports(folder: Path, rows: dict[str, dict[str, Any]], features: dict[str, dict[str, Any]]) -> None:
    with (folder / "permits.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_HEADER)
        for closure_id, row in rows.items():
            wkt = "LINESTRING (" + ", ".join(f"{x} {y}" for x, y in row["wkt"]) + ")"
            cells = {"direction": "BOTH_DIRECTIONS", **row}
            writer.writerow([closure_id, *(cells.get(name, "") for name in CSV_HEADER[1:-1]), wkt])
    collection = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "LineString", "coordinates": feature["line"]},
         "properties": {"gis_id": gis_id, "direction": "BOTH_DIRECTIONS",
                        **{key: value for key, value in feature.items() if key != "line"}}}
        for gis_id, feature in features.items()
    ]}
    (folder / "closures.geojson").write_text(json.dumps(collection), encoding="utf-8")


def write_config(folder: Path, *, network: bool = True, gis_match_key: str | None = "PERMIT") -> Path:
    lines = [
        'timezone = "America/Los_Angeles"',
        "[lifecycle]", "end_after_missed_polls = 1",
        *(["[network]", f"path = {json.dumps(str(OSM))}"] if network else []),
        "[[sources]]", 'name = "city-permits"', 'kind = "csv"', 'url = "permits.csv"', 'namespace = "permits"',
        "priority = 10", 'match_key = "permit_no"', 'geometry = { type = "wkt", column = "wkt" }',
        'mapping = { id = "closure_id" }',
        "[[sources]]", 'name = "city-gis"', 'kind = "geojson"', 'url = "closures.geojson"', 'namespace = "gis"',
        *([f'match_key = "{gis_match_key}"'] if gis_match_key else []),
        'mapping = { id = "gis_id", type = "closure_type", street = "street_name", start = "begins", end = "ends",'
        ' description = "notes" }',
    ]
    path = folder / "exchange.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def west_oakland() -> Placement:
    return Placement.for_file(OSM, NetworkConfig(path=OSM))


@pytest.fixture
def city(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, west_oakland: Placement) -> Iterator[City]:
    monkeypatch.setenv("EXCHANGE_NOW", NOW)  # after data_dir, which clears every EXCHANGE_* variable
    yield City(tmp_path, west_oakland)


class City:
    """The two exports in a folder, and polling them."""

    def __init__(self, folder: Path, placement: Placement) -> None:
        self.folder = folder
        self.placement = placement

    def export(self, rows: dict[str, dict[str, Any]] | None = None,
               features: dict[str, dict[str, Any]] | None = None) -> None:
        write_exports(self.folder, permit_rows() if rows is None else rows,
                      gis_features() if features is None else features)

    def poll(self, engine: Engine, *names: str, network: bool = True, gis_match_key: str | None = "PERMIT") -> Config:
        config = load_config(write_config(self.folder, network=network, gis_match_key=gis_match_key))
        for name in names:
            cycle = sync_then_publish(engine, config, config.source(name), self.placement if network else None)
            assert cycle.publish_error is None, cycle.publish_error
        return config


def published(engine: Engine) -> set[str]:
    """The event ids in the served feeds, after checking CIFS and WZDx say the same."""
    with engine.connect() as conn:
        feeds = {row.feed: row.body for row in conn.execute(select(publications))}
    in_cifs = {str(incident.get("id")) for incident in etree.fromstring(feeds["cifs.xml"]).iter("incident")}
    in_wzdx = {feature["id"].removesuffix(REVERSE_SUFFIX) for feature in json.loads(feeds["wzdx.geojson"])["features"]}
    assert in_cifs == in_wzdx
    return in_cifs


def links(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(select(events.c.id, events.c.same_as).where(events.c.same_as.is_not(None))).all())


ALL = {"permits:city:C-100", "permits:city:C-101", "permits:city:C-102", "gis:city:GIS-7", "gis:city:GIS-8",
       "gis:city:GIS-9"}


def test_one_closure_from_a_csv_and_a_geojson_source_is_published_once(
    engine: Engine, city: City, store_cli: Callable[..., Run],
) -> None:
    city.export()
    city.poll(engine, "city-gis")
    assert published(engine) == {"gis:city:GIS-7", "gis:city:GIS-8", "gis:city:GIS-9"}
    # the permits come second and win: two of the three published events leave the feeds on purpose,
    # which the mass hold-back guard does not count as lost
    config = city.poll(engine, "city-permits")
    assert links(engine) == {"gis:city:GIS-7": "permits:city:C-100",  # the same road, type and times
                             "gis:city:GIS-8": "permits:city:C-101"}  # the same permit number
    assert published(engine) == ALL - {"gis:city:GIS-7", "gis:city:GIS-8"}  # 7th Street: the types differ
    with engine.connect() as conn:
        note = conn.execute(select(sync_runs.c.message).order_by(sync_runs.c.id.desc()).limit(1)).scalar_one()
        history = conn.execute(select(revisions.c.action, revisions.c.changes)
                               .where(revisions.c.event_id == "gis:city:GIS-8")).all()
    assert "2 event(s) left out of the feeds: the same closure as another source's" in note
    assert history[-1] == ("linked", {"same_as": [None, "permits:city:C-101"]})

    folded = store_cli("--config", str(config.path), "inspect", "event", "gis:city:GIS-7")
    assert folded.code == 0, folded
    assert ("same closure as permits:city:C-100, published in its place (source city-permits, priority 10)"
            in " ".join(folded.out.split()))
    kept = store_cli("--config", str(config.path), "inspect", "event", "permits:city:C-101", "--format", "json")
    record = json.loads(kept.out)[0]
    assert record["also_reported_by"] == [{"id": "gis:city:GIS-8", "source": "city-gis", "priority": 0}]
    assert (record["same_closure_as"], record["match_id"]) == (None, "P-2026-0422")
    assert json.loads(store_cli("--config", str(config.path), "inspect", "event", "gis:city:GIS-8", "--format",
                                "json").out)[0]["same_closure_as"] == {
        "id": "permits:city:C-101", "source": "city-permits", "priority": 10}
    table = store_cli("--config", str(config.path), "inspect", "event", "permits:city:C-100")
    assert "also reported by gis:city:GIS-7 (source city-gis, priority 0)" in " ".join(table.out.split())


def test_a_closure_given_as_one_event_per_direction_is_one_closure(engine: Engine, city: City) -> None:
    """Found in a cold trial: a WZDx feed gives a closure of both directions as one road event per
    direction; each was published beside the city's closure of both (three Waze closures for one)."""
    halves = gis_features()
    ninth = halves.pop("GIS-7")
    halves["GIS_7"] = {**ninth, "direction": "ONE_DIRECTION"}  # drawn westward
    halves["GIS_7E"] = {**ninth, "direction": "ONE_DIRECTION", "line": list(NINTH)}
    city.export(features=halves)
    city.poll(engine, "city-gis", "city-permits")
    assert {key: value for key, value in links(engine).items() if key.startswith("gis:city:GIS_7")} == {
        "gis:city:GIS_7": "permits:city:C-100", "gis:city:GIS_7E": "permits:city:C-100"}
    assert "permits:city:C-100" in published(engine) and not {"gis:city:GIS_7", "gis:city:GIS_7E"} & published(engine)


def test_the_link_is_dropped_when_the_times_part_or_one_ends(engine: Engine, city: City) -> None:
    city.export()
    city.poll(engine, "city-permits", "city-gis")
    assert published(engine) == ALL - {"gis:city:GIS-7", "gis:city:GIS-8"}

    # the GIS moves its 9th Street closure after the permit's: two closures, both published
    city.export(features=gis_features(**{"GIS-7": {"begins": "2026-03-21T08:00", "ends": "2026-03-22T17:00"}}))
    city.poll(engine, "city-gis")
    assert links(engine) == {"gis:city:GIS-8": "permits:city:C-101"}
    assert published(engine) == ALL - {"gis:city:GIS-8"}

    # back to the same times: folded again; then the permit export drops the street fair, which
    # ends it, and the GIS's report of it is published again in its place
    city.export()
    city.poll(engine, "city-gis")
    assert links(engine) == {"gis:city:GIS-7": "permits:city:C-100", "gis:city:GIS-8": "permits:city:C-101"}
    rows = permit_rows()
    del rows["C-101"]
    city.export(rows=rows)
    city.poll(engine, "city-permits")
    assert links(engine) == {"gis:city:GIS-7": "permits:city:C-100"}
    assert published(engine) == ALL - {"gis:city:GIS-7"}  # the ended fair goes out with its end too


def test_a_folded_event_that_ends_keeps_its_link_and_stays_out(engine: Engine, city: City) -> None:
    city.export()
    city.poll(engine, "city-permits", "city-gis")
    features = gis_features()
    del features["GIS-7"]
    city.export(features=features)
    city.poll(engine, "city-gis")
    with engine.connect() as conn:
        status = conn.execute(select(events.c.status).where(events.c.id == "gis:city:GIS-7")).scalar_one()
    assert status == "ended" and links(engine)["gis:city:GIS-7"] == "permits:city:C-100"
    assert "gis:city:GIS-7" not in published(engine)


def test_an_imported_report_is_folded_into_the_operators_closure_of_the_same_road(
    engine: Engine, city: City, store_cli: Callable[..., Run],
) -> None:
    typed = add_closure(engine, ClosureInput(
        street="9th Street", points=NINTH, start="2026-03-02T07:00:00-08:00", end="2026-03-04T17:00:00-08:00",
        direction="BOTH_DIRECTIONS", description="Water main break", operator="dispatch"),
        zone=ZoneInfo("America/Los_Angeles"), placement=city.placement)
    city.export()
    config = city.poll(engine, "city-gis")
    assert links(engine) == {"gis:city:GIS-7": typed.id}
    assert published(engine) == {typed.id, "gis:city:GIS-8", "gis:city:GIS-9"}
    shown = store_cli("--config", str(config.path), "inspect", "event", "gis:city:GIS-7", "--format", "json")
    assert json.loads(shown.out)[0]["same_closure_as"] == {"id": typed.id, "source": None, "priority": None}
    table = store_cli("--config", str(config.path), "inspect", "event", "gis:city:GIS-7")
    assert f"same closure as {typed.id}, published in its place (typed by an operator)" in " ".join(table.out.split())


def test_the_operator_is_told_what_another_sources_report_of_the_same_closure_does(
    engine: Engine, city: City, store_cli: Callable[..., Run],
) -> None:
    """Found in cold trials: an operator's closure took the permits' report of the same road out of the
    feeds, and ending it brought that report back, both unsaid; then the GIS layer's report, already out
    of the feeds (folded into the permit's), was named as leaving and coming back too."""
    city.export()
    config = city.poll(engine, "city-gis", "city-permits")
    assert links(engine)["gis:city:GIS-7"] == "permits:city:C-100"
    polyline = " ".join(f"{lat} {lon}" for lon, lat in NINTH)
    added = store_cli("--config", str(config.path), "closure", "add", "--street", "9th Street", "--polyline",
                      polyline, "--direction", "BOTH_DIRECTIONS", "--start", "2026-03-02T07:00", "--end",
                      "2026-03-20T17:00", "--description", "Water main break")
    assert added.code == 0, added
    notes = [line for line in added.err.splitlines() if line.startswith("note: ")]
    assert notes == ["note: permits:city:C-100 (source city-permits) reports the same closure: it leaves the "
                     "feeds, this one goes out in its place"], added.err
    listed = store_cli("--config", str(config.path), "closure", "list")  # the table wraps the sentence
    assert listed.code == 0 and "left out: the" in listed.out and "closure as" in listed.out, listed.out
    ended = store_cli("--config", str(config.path), "closure", "end", added.out.strip())
    assert ended.code == 0, ended
    notes = [line for line in ended.err.splitlines() if line.startswith("note: ")]
    assert notes == ["note: permits:city:C-100 (source city-permits) still reports this closure: it goes out again "
                     "(`exchange inspect event permits:city:C-100`)"], ended.err
    assert "permits:city:C-100" in published(engine) and links(engine)["gis:city:GIS-7"] == "permits:city:C-100"


def ninth_street_closure(engine: Engine, city: City, start: str, end: str) -> Event:
    """An operator's closure of 9th Street, both directions."""
    return add_closure(engine, ClosureInput(
        street="9th Street", points=NINTH, start=start, end=end, direction="BOTH_DIRECTIONS",
        description="Water main break", operator="dispatch"), zone=ZoneInfo("America/Los_Angeles"),
        placement=city.placement)


def test_an_operators_night_closure_leaves_the_days_imported_closure_in_the_feeds(
    engine: Engine, city: City,
) -> None:
    """The GIS layer closes 9th Street since 08:00 with no end (it is 09:00); an operator closes the
    same road tonight from 22:00 to 05:00. Folding the GIS closure into tonight's would leave 9th
    Street open in every feed until 22:00: both are published."""
    night = ninth_street_closure(engine, city, "2026-03-02T22:00:00-08:00", "2026-03-03T05:00:00-08:00")
    city.export()
    city.poll(engine, "city-gis")
    assert links(engine) == {}
    assert published(engine) == {night.id, "gis:city:GIS-7", "gis:city:GIS-8", "gis:city:GIS-9"}


def test_an_operators_change_relinks_at_once(engine: Engine, city: City) -> None:
    """The operator's closure stands for the GIS one; cancelling it brings the GIS one back without
    waiting for the next poll (and ``inspect`` no longer names a withdrawn closure)."""
    typed = ninth_street_closure(engine, city, "2026-03-02T07:00:00-08:00", "2026-03-04T17:00:00-08:00")
    city.export()
    city.poll(engine, "city-gis")
    assert links(engine) == {"gis:city:GIS-7": typed.id}
    cancel_closure(engine, typed.id, operator="dispatch", zone=ZoneInfo("America/Los_Angeles"))
    assert links(engine) == {}
    with engine.connect() as conn:
        actions = [row.action for row in conn.execute(
            select(revisions.c.action).where(revisions.c.event_id == "gis:city:GIS-7").order_by(revisions.c.id))]
    assert actions[-1] == "unlinked"


def test_a_match_key_configured_later_links_what_is_already_stored(engine: Engine, city: City) -> None:
    """Without a network only a shared id links; one set on a source applies to unchanged records too."""
    city.export()
    city.poll(engine, "city-permits", "city-gis", network=False, gis_match_key=None)
    assert links(engine) == {}
    city.poll(engine, "city-gis", network=False)
    assert links(engine) == {"gis:city:GIS-8": "permits:city:C-101"}
    assert "gis:city:GIS-8" not in published(engine)


def test_match_key_and_priority_are_source_settings_for_every_adapter(tmp_path: Path) -> None:
    path = tmp_path / "exchange.toml"
    path.write_text('[[sources]]\nname = "contractors"\nkind = "wzdx"\nurl = "feed.geojson"\n'
                    'match_key = "core_details.name"\npriority = -5\n', encoding="utf-8")
    source = build_source(load_config(path).source("contractors"))
    assert (source.match_key, source.priority) == ("core_details.name", -5)
    road_event = {"id": "W-1", "type": "Feature", "properties": {"core_details": {"name": " P-2026-0417"}}}
    assert source.match_id(FeedItem(Kind.CITY, "W-1", "d", road_event)) == "P-2026-0417"
    path.write_text('[[sources]]\nname = "permits"\nkind = "csv"\nurl = "p.csv"\nmapping = { id = "id" }\n'
                    'priority = "high"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"sources\[0\]\.priority"):
        load_config(path)


def test_once_the_published_one_is_over_the_longer_report_goes_out(
    engine: Engine, city: City, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The permit's street fair ends at 22:00, the GIS says 23:00: from 22:00 the GIS's report is
    the closure still in effect, and it is published (the link stays, the permit's goes out ended)."""
    from exchange.publish import publish

    city.export()
    config = city.poll(engine, "city-permits", "city-gis")
    assert "gis:city:GIS-8" not in published(engine)
    monkeypatch.setenv("EXCHANGE_NOW", "2026-03-03T06:30:00+00:00")  # 22:30 in Oakland
    publish(engine, config, placement=city.placement)
    assert links(engine)["gis:city:GIS-8"] == "permits:city:C-101"
    assert {"gis:city:GIS-8", "permits:city:C-101"} <= published(engine)


def test_an_imported_closure_the_operator_cancels_stays_out_when_its_source_edits_it(
    engine: Engine, city: City, store_cli: Callable[..., Run],
) -> None:
    """Found in a cold trial: `closure cancel` of an imported closure exited 0, and the next edit of its
    row in the source (any field) put it back in the feeds, unsaid. The cancel holds while the source
    lists it, and the command says what the source's changes still do."""
    city.export()
    config = city.poll(engine, "city-permits")
    assert "permits:city:C-100" in published(engine)
    cancelled = store_cli("--config", str(config.path), "closure", "cancel", "permits:city:C-100")
    assert cancelled.code == 0, cancelled
    assert "note: source city-permits still lists it: it stays cancelled while listed" in cancelled.err, cancelled.err
    listed = store_cli("--config", str(config.path), "closure", "list", "--status", "cancelled")
    assert "cancelled: out of" in listed.out, listed.out  # its Waze status (folded in the table): was "ended"
    city.export(rows=permit_rows(**{"C-100": {"description": "Utility work & paving, phase 2"}}))
    city.poll(engine, "city-permits")
    assert "permits:city:C-100" not in published(engine)
    updated = store_cli("--config", str(config.path), "closure", "update", "permits:city:C-101",
                        "--description", "Street fair (moved)")
    assert updated.code == 0, updated
    assert "note: source city-permits lists it: a changed time, description or schedule holds until the source " \
        "changes that field" in updated.err, updated.err
