"""The synthetic city and its ground truth: deterministic, realistic in the awkward places, and self-consistent."""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict

import numpy as np
import pytest
from pyproj import Geod

from geo.types import WayInput
from tests.support.synthetic import (
    BENCHMARK_BLOCKS,
    SyntheticCity,
    SyntheticJam,
    SyntheticReports,
    directed_edges_of,
    fused_fraction,
    jaccard,
    make_alerts,
    make_city,
    make_jams,
    make_report_clusters,
    pairwise_f1,
)

SIGMA = 8.0


@pytest.fixture(scope="module")
def city() -> SyntheticCity:
    return make_city(seed=7, blocks=20)


@pytest.fixture(scope="module")
def jams(city: SyntheticCity) -> list[SyntheticJam]:
    return make_jams(city, 600, seed=3)


@pytest.fixture(scope="module")
def reports(city: SyntheticCity) -> SyntheticReports:
    return make_report_clusters(city, 300, seed=5)


def _metric(city: SyntheticCity, lon: float, lat: float) -> tuple[float, float]:
    return city.to_metric(lon, lat)


def _turn(a: float, b: float) -> float:
    return abs((b - a + 180.0) % 360.0 - 180.0)


def test_same_seed_same_city_and_observations() -> None:
    a, b = make_city(seed=3, blocks=8), make_city(seed=3, blocks=8)
    assert a.nodes == b.nodes and a.ways == b.ways and a.features == b.features
    assert [e.key for e in a.directed_edges] == [e.key for e in b.directed_edges]
    assert all(np.array_equal(x.coords_m, y.coords_m) for x, y in zip(a.directed_edges, b.directed_edges, strict=True))
    assert make_alerts(a, 50, seed=1) == make_alerts(b, 50, seed=1)
    assert make_jams(a, 30, seed=1) == make_jams(b, 30, seed=1)
    assert make_report_clusters(a, 40, seed=1) == make_report_clusters(b, 40, seed=1)
    assert make_city(seed=4, blocks=8).ways != a.ways
    assert make_alerts(a, 50, seed=2) != make_alerts(a, 50, seed=1)


def test_ids_and_references(city: SyntheticCity) -> None:
    assert 1500 <= len(city.directed_edges) <= 4000
    assert all(i > 0 for i in city.nodes) and all(w.id > 0 for w in city.ways)
    assert len({w.id for w in city.ways}) == len(city.ways)
    assert not set(city.nodes) & {w.id for w in city.ways}  # disjoint ranges catch node/way mix-ups
    for way in city.ways:
        assert len(way.nodes) >= 2 and all(n in city.nodes for n in way.nodes)
    keys = [e.key for e in city.directed_edges]
    assert len(set(keys)) == len(keys)
    positions = Counter((round(x, 1), round(y, 1)) for x, y in city.nodes_m.values())
    assert positions.most_common(1)[0][1] == 1  # no two nodes on the same spot


def test_lonlat_frame_round_trips_and_matches_geodesic_lengths(city: SyntheticCity) -> None:
    lon0, lat0 = city.origin
    assert city.to_lonlat(0.0, 0.0) == (lon0, lat0)
    x, y = city.to_metric(*city.to_lonlat(1234.5, -987.6))
    assert x == pytest.approx(1234.5, abs=1e-6) and y == pytest.approx(-987.6, abs=1e-6)
    geod = Geod(ellps="WGS84")
    for e in city.directed_edges[::25]:
        lonlat = city.to_lonlat_array(e.coords_m)
        assert geod.line_length(lonlat[:, 0], lonlat[:, 1]) == pytest.approx(e.length_m, rel=2e-3)
        assert np.allclose(lonlat[[0, -1]], [city.nodes[e.from_node], city.nodes[e.to_node]])


def test_edges_follow_the_splitting_rule(city: SyntheticCity) -> None:
    uses = Counter(n for w in city.ways for n in w.nodes)
    ways = {w.id: w for w in city.ways}
    at = {(round(x, 3), round(y, 3)): n for n, (x, y) in city.nodes_m.items()}
    for e in city.directed_edges:
        way = ways[e.way_id]
        ends = {way.nodes[0], way.nodes[-1]}
        assert uses[e.from_node] >= 2 or e.from_node in ends
        assert uses[e.to_node] >= 2 or e.to_node in ends
        xy = np.array([city.nodes_m[e.from_node], city.nodes_m[e.to_node]])
        assert np.allclose(e.coords_m[[0, -1]], xy)
        assert all(uses[at[(round(float(x), 3), round(float(y), 3))]] == 1 for x, y in e.coords_m[1:-1])
        assert e.length_m == pytest.approx(float(np.hypot(*np.diff(e.coords_m, axis=0).T).sum()))
        assert e.oneway == (not city.has_edge((e.way_id, e.to_node, e.from_node)))


def test_directed_edges_of_a_hand_made_network() -> None:
    nodes = {1: (0.0, 0.0), 2: (100.0, 0.0), 3: (200.0, 0.0), 4: (100.0, 100.0), 5: (150.0, 50.0), 6: (100.0, -50.0)}
    ways = [
        WayInput(10, [1, 2, 3], {"name": "A St"}),
        WayInput(11, [4, 5, 2], {"oneway": "-1"}),  # travel 2 -> 5 -> 4 only; 5 is a shape vertex
        WayInput(12, [2, 6, 2], {"junction": "roundabout"}),  # closed: 2 is used twice by one way
    ]
    edges = {e.key: e for e in directed_edges_of(nodes, ways)}
    assert set(edges) == {(10, 1, 2), (10, 2, 1), (10, 2, 3), (10, 3, 2), (11, 2, 4), (12, 2, 2)}
    assert edges[(11, 2, 4)].coords_m.tolist() == [[100.0, 0.0], [150.0, 50.0], [100.0, 100.0]]
    assert edges[(11, 2, 4)].oneway and not edges[(10, 1, 2)].oneway
    assert edges[(12, 2, 2)].length_m == pytest.approx(100.0)
    reverse_ring = directed_edges_of(nodes, [WayInput(13, [2, 6, 5, 2], {"junction": "roundabout", "oneway": "-1"})])
    assert [e.key for e in reverse_ring] == [(13, 2, 2)] and reverse_ring[0].coords_m[1].tolist() == [150.0, 50.0]


@pytest.mark.parametrize("blocks", [2, 3, 5, 8])
def test_small_cities_are_consistent(blocks: int) -> None:
    city = make_city(seed=blocks, blocks=blocks)
    assert city.directed_edges and all(n in city.nodes for w in city.ways for n in w.nodes)
    assert make_jams(city, 5, seed=1, min_edges=1, max_edges=3) and make_report_clusters(city, 10, seed=1)


def test_one_way_streets_both_tagging_styles(city: SyntheticCity) -> None:
    ways = {w.id: w for w in city.ways}
    oneway, reverse = set(city.features["oneway"]), set(city.features["oneway_reverse"])
    assert len(reverse) >= 3 and len(oneway - reverse) >= 3
    for e in city.directed_edges:
        if e.way_id in oneway:
            nodes = list(ways[e.way_id].nodes)
            forward = nodes.index(e.from_node) < nodes.index(e.to_node)
            assert e.oneway and forward == (e.way_id not in reverse)
            assert ways[e.way_id].tags["oneway"] == ("-1" if e.way_id in reverse else "yes")
    streets = {ways[w].tags["name"] for w in oneway}
    assert 0.15 <= len(streets) / (2 * (city.blocks + 1)) <= 0.35
    # alternating directions: both compass directions occur on each axis
    bearings = {round(city.point_at(e.key, 1.0)[2] / 90) % 4 for e in city.directed_edges if e.way_id in oneway}
    assert bearings == {0, 1, 2, 3}


def test_dual_carriageways(city: SyntheticCity) -> None:
    ways = {w.id: w for w in city.ways}
    assert len(city.carriageways) >= 4  # at least two avenues, two carriageways each
    uses = Counter(n for w in city.ways for n in w.nodes)
    for (axis, street, side), way_ids in city.carriageways.items():
        twin = city.carriageways[(axis, street, 1 - side)]
        names = {ways[w].tags["name"] for w in way_ids + twin}
        assert len(names) == 1 and {ways[w].tags["highway"] for w in way_ids} == {"primary"}
        assert all(ways[w].tags["oneway"] == "yes" for w in way_ids)
        for e in (e for e in city.directed_edges if e.way_id in way_ids):
            x, y, heading = city.point_at(e.key, e.length_m / 2)
            other = city.opposite_at(e.key, e.length_m / 2)
            assert other is not None and other[0][0] in twin
            ox, oy, other_heading = city.point_at(*other)
            assert 12.0 <= math.hypot(x - ox, y - oy) <= 18.0
            assert _turn(heading, other_heading) > 170.0
            for node in (e.from_node, e.to_node):  # junctions of its own, shared with the cross street
                assert uses[node] >= 2 or node in (ways[e.way_id].nodes[0], ways[e.way_id].nodes[-1])
        own, twin_nodes = ({n for w in group for n in ways[w].nodes} for group in (way_ids, twin))
        crossings = own & {n for w in city.ways if w.id not in way_ids for n in w.nodes}
        assert not own & twin_nodes and len(crossings) >= city.blocks  # every cross street meets it at its own node


def test_curved_streets_roundabouts_service_roads_and_tags(city: SyntheticCity) -> None:
    ways = {w.id: w for w in city.ways}
    curved = [e for e in city.directed_edges if e.way_id in set(city.features["curved"])]
    assert curved and max(len(e.coords_m) for e in curved) >= 15
    chord = [math.dist(e.coords_m[0], e.coords_m[-1]) for e in curved]
    assert max(e.length_m / c for e, c in zip(curved, chord, strict=True)) > 1.02
    assert 1 <= len(city.features["roundabout"]) <= 3
    for wid in city.features["roundabout"]:
        ring = ways[wid]
        assert ring.nodes[0] == ring.nodes[-1] and ring.tags["junction"] == "roundabout" and "oneway" not in ring.tags
        edges = [e for e in city.directed_edges if e.way_id == wid]
        assert len(edges) == 4 and all(e.oneway for e in edges)
        xy = np.array([city.nodes_m[n] for n in ring.nodes[:-1]])
        centre = xy.mean(axis=0)
        (ax, ay), (bx, by) = xy[1] - centre, xy[2] - centre
        assert ax * by - ay * bx > 0  # counter-clockwise, as right-hand traffic drives
    service = [ways[w] for w in city.features["service"]]
    assert len(service) >= 5 and all("name" not in w.tags and w.tags["highway"] == "service" for w in service)
    tags = [w.tags for w in city.ways]
    assert {t["highway"] for t in tags} == {"primary", "secondary", "residential", "service"}
    assert any("alt_name" in t for t in tags) and any("ref" in t for t in tags)
    names = {t.get("name") for t in tags}
    assert {"Maple Street", "3rd Avenue", "11th Avenue", "12th Avenue", "13th Avenue", "21st Avenue"} <= names
    assert len(city.features["shape_vertices"]) > len(city.features["curved"]) + len(city.features["roundabout"])


def test_streets_are_ways_of_several_blocks(city: SyntheticCity) -> None:
    per_way = Counter(e.way_id for e in city.directed_edges if e.highway in ("residential", "secondary") and e.oneway)
    ways = {w.id: w for w in city.ways}
    spans = [math.dist(city.nodes_m[ways[w].nodes[0]], city.nodes_m[ways[w].nodes[-1]]) / city.block_m for w in per_way]
    assert 2.5 <= float(np.median(spans)) <= 6.5
    assert max(per_way.values()) >= 3


def test_alerts_lie_near_their_true_edge(city: SyntheticCity) -> None:
    alerts = make_alerts(city, 2000, seed=11, gps_noise_m=SIGMA, junction_clearance_m=10.0)
    dist = []
    for a in alerts:
        edge = city.edge(a.edge)
        assert 10.0 <= a.offset_m <= edge.length_m - 10.0
        assert a.dist_to_junction_m == pytest.approx(min(a.offset_m, edge.length_m - a.offset_m))
        assert a.true_bearing_deg == pytest.approx(city.point_at(a.edge, a.offset_m)[2])
        dist.append(city.project(a.edge, *_metric(city, a.lon, a.lat))[0])
        if a.magvar:
            assert _turn(a.magvar, a.true_bearing_deg) <= 5 * 15.0
        assert 0 <= a.magvar <= 359
    assert max(dist) <= 5 * SIGMA and np.mean(np.array(dist) <= 3 * SIGMA) >= 0.99
    assert 0.06 <= np.mean([a.magvar == 0 for a in alerts]) <= 0.14
    assert {a.type for a in alerts} == {"ACCIDENT", "WEATHERHAZARD", "JAM", "ROAD_CLOSED"}
    streets = [a.street for a in alerts]
    assert None in streets and any(s and s.endswith(" St") for s in streets)
    assert any(s and s.endswith(" Street") for s in streets)
    assert len({a.uuid for a in alerts}) == len(alerts)


def test_jams_follow_legal_connected_paths(city: SyntheticCity, jams: list[SyntheticJam]) -> None:
    for jam in jams:
        assert 2 <= len(jam.edges) <= 8 and all(city.has_edge(k) for k in jam.edges)
        for (_, a1, b1), (_, a2, b2) in itertools.pairwise(jam.edges):
            assert b1 == a2 and b2 != a1  # connected, no U-turn
        points = [_metric(city, lon, lat) for lon, lat in jam.line]
        for i, (x, y) in enumerate(points):
            if i == jam.outlier_index:
                assert city.distance_to_network(x, y) >= 40.0
            else:
                assert min(city.project(k, x, y)[0] for k in jam.edges) <= 5 * SIGMA
        spacing = [math.dist(p, q) for p, q in itertools.pairwise(points)]
        assert float(np.median(spacing)) <= 60.0
    assert len({j.jam_id for j in jams}) == len(jams)
    assert 10 <= sum(j.outlier_index is not None for j in jams) <= 60 and 20 <= sum(j.gap for j in jams) <= 100
    assert any(j.street is None or j.street.endswith("Avenue") for j in jams)


def test_report_clusters_and_close_but_distinct_pairs(city: SyntheticCity, reports: SyntheticReports) -> None:
    incidents = {i.incident_id: i for i in reports.incidents}
    assert len(incidents) == 300 and len(reports) == len(reports.reports) >= 300
    by_incident = defaultdict(list)
    for r in reports:
        by_incident[r.incident_id].append(r)
        inc = incidents[r.incident_id]
        assert r.edge == inc.edge and r.category == inc.category and abs(r.offset_m - inc.offset_m) <= 15.0
        x, y, _ = city.point_at(inc.edge, inc.offset_m)
        assert math.dist((x, y), _metric(city, r.lon, r.lat)) <= 15.0 + 5 * SIGMA
    assert [r.pub_millis for r in reports] == sorted(r.pub_millis for r in reports)
    for inc_id, group in by_incident.items():
        times = [r.pub_millis - incidents[inc_id].start_millis for r in group]
        assert 1 <= len(group) <= 6 and min(times) == 0 and max(times) <= 30 * 60_000
    kinds = Counter(kind for _, _, kind in reports.close_pairs)
    assert set(kinds) == {"opposite", "along", "later"} and min(kinds.values()) >= 10
    for a_id, b_id, kind in reports.close_pairs:
        a, b = incidents[a_id], incidents[b_id]
        assert a.category == b.category
        ax, ay, ah = city.point_at(a.edge, a.offset_m)
        bx, by, bh = city.point_at(b.edge, b.offset_m)
        gap = math.dist((ax, ay), (bx, by))
        if kind == "opposite":
            assert gap <= 18.5 and _turn(ah, bh) > 150.0 and abs(a.start_millis - b.start_millis) <= 10 * 60_000
        elif kind == "along":  # 40-80 m further along the road, on the same edge or the straightest next ones
            assert 25.0 <= gap <= 80.0 and abs(a.start_millis - b.start_millis) <= 10 * 60_000
            if b.edge == a.edge:
                assert 40.0 <= b.offset_m - a.offset_m <= 80.0
            else:
                assert city.edge(a.edge).to_node != b.edge[2]
        else:
            assert (b.edge, b.offset_m) == (a.edge, a.offset_m)
            assert 60 * 60_000 <= b.start_millis - a.start_millis <= 90 * 60_000
    assert reports.true_labels == [r.incident_id for r in reports.reports]


def test_opposite_pairs_on_dual_carriageways_exist() -> None:
    city = make_city(seed=7, blocks=20)
    reports = make_report_clusters(city, 2000, seed=9)
    incidents = {i.incident_id: i for i in reports.incidents}
    dual = [p for p in reports.close_pairs if p[2] == "opposite" and city.carriageway_of(incidents[p[0]].edge[0])]
    assert dual and all(incidents[b].edge[0] != incidents[a].edge[0] for a, b, _ in dual)


def test_pairwise_f1_known_values() -> None:
    assert pairwise_f1([0, 0, 0, 1, 1], [0, 0, 1, 1, 1]) == (0.5, 0.5, 0.5)
    assert pairwise_f1(["a", "a", "b"], [7, 7, 9]) == (1.0, 1.0, 1.0)
    assert pairwise_f1([0, 0, 1, 1], [0, 1, 2, 3]) == (1.0, 0.0, 0.0)  # no predicted pairs: precision 1 by convention
    assert pairwise_f1([0, 0, 1, 1], [5, 5, 5, 5]) == (2 / 6, 1.0, 0.5)
    with pytest.raises(ValueError, match="length"):
        pairwise_f1([0], [0, 1])


def test_pairwise_f1_agrees_with_brute_force() -> None:
    rng = np.random.default_rng(0)
    truth, pred = rng.integers(0, 12, 80).tolist(), rng.integers(0, 15, 80).tolist()
    pairs = list(itertools.combinations(range(80), 2))
    tp = sum(truth[i] == truth[j] and pred[i] == pred[j] for i, j in pairs)
    same_pred, same_true = sum(pred[i] == pred[j] for i, j in pairs), sum(truth[i] == truth[j] for i, j in pairs)
    precision, recall, f1 = pairwise_f1(truth, pred)
    assert precision == pytest.approx(tp / same_pred) and recall == pytest.approx(tp / same_true)
    assert f1 == pytest.approx(2 * precision * recall / (precision + recall))


def test_fused_fraction_and_jaccard() -> None:
    pairs = [(0, 1, "opposite"), (2, 3, "along"), (4, 5, "later")]
    truth = [0, 0, 1, 2, 3, 4, 5]
    predicted = ["x", "x", "x", "y", "z", "w", "w"]  # 0+1 fused, 2/3 apart, 4+5 fused
    assert fused_fraction(pairs, truth, predicted) == pytest.approx(2 / 3)
    assert fused_fraction(pairs, truth, predicted, kind="along") == 0.0
    assert fused_fraction(pairs, truth, predicted, kind="later") == 1.0
    assert fused_fraction([], truth, predicted) == 0.0
    assert jaccard({1, 2, 3}, {2, 3, 4}) == 0.5 and jaccard(set(), set()) == 1.0 and jaccard({1}, set()) == 0.0


def test_benchmark_size_has_over_100k_directed_edges() -> None:
    city = make_city(blocks=BENCHMARK_BLOCKS)
    assert 115_000 <= len(city.directed_edges) <= 135_000
