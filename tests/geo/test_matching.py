"""Synthetic ground truth for the geometry layer: a seeded city with one-way streets, dual
carriageways, curves and roundabouts; alerts, jams and report clusters placed on known edges
with 8 m GPS noise and 15 degree heading noise. The thresholds are the issue's gates."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from geo import dedup
from geo.dedup import CATEGORY_FAMILY, Reports, assign_cluster_ids, cluster_reports
from geo.linematch import match_lines
from geo.match import match_points
from geo.network import RoadNetwork
from tests.support.synthetic import (
    SyntheticCity,
    city_and_network,
    fused_fraction,
    jaccard,
    make_alerts,
    make_jams,
    make_report_clusters,
    pairwise_f1,
    point_accuracy,
)


def test_the_network_has_exactly_the_ground_truth_edges() -> None:
    city, network = city_and_network()
    assert set(network.edge_index()) == {edge.key for edge in city.directed_edges}
    for edge in city.directed_edges[:200]:
        built = network.edge_index()[edge.key]
        assert network.edge_length(built) == pytest.approx(edge.length_m, rel=2e-3)
        assert network.edge_oneway(built) == edge.oneway


def test_alerts_match_their_directed_edge() -> None:
    city, network = city_and_network()
    alerts = make_alerts(city, 4000, seed=11)
    result = match_points(
        network,
        np.array([a.lon for a in alerts]),
        np.array([a.lat for a in alerts]),
        heading=np.array([a.magvar for a in alerts], dtype=float),
        streets=[a.street for a in alerts],
    )
    keys = [network.edge_key(int(e)) if e >= 0 else None for e in result.edge]
    accuracy = point_accuracy(city, alerts, keys)
    assert accuracy["far"] >= 0.97, accuracy
    assert accuracy["determinable"] >= 0.95, accuracy
    assert (result.edge >= 0).all()
    assert ((result.confidence > 0) & (result.confidence <= 1)).all()


def test_jams_match_their_paths() -> None:
    city, network = city_and_network()
    jams = make_jams(city, 600, seed=12)
    results = match_lines(network, [np.array(jam.line) for jam in jams])
    scores = [jaccard(set(network.edge_keys(r.edges)), set(jam.edges)) for r, jam in zip(results, jams, strict=True)]
    assert float(np.mean(scores)) >= 0.98, np.mean(scores)
    for result in results:  # every matched part is a connected path
        for part in result.parts:
            assert all(network.edge_v[a] == network.edge_u[b] for a, b in itertools.pairwise(part))


def cluster(city: SyntheticCity, network: RoadNetwork, reports: list, previous: dict | None = None):  # type: ignore[no-untyped-def,type-arg]
    lon = np.array([r.lon for r in reports])
    lat = np.array([r.lat for r in reports])
    heading = np.array([r.magvar for r in reports], dtype=float)
    matched = match_points(network, lon, lat, heading=heading)
    x, y = network.frame.to_metric(lon, lat)
    labels = cluster_reports(Reports(
        x=x, y=y, time_s=np.array([r.pub_millis / 1000 for r in reports]),
        family=[CATEGORY_FAMILY[r.category] for r in reports], edge=matched.edge, offset=matched.offset_m,
        heading=heading,
    ), network)
    return labels, assign_cluster_ids([r.uuid for r in reports], labels, previous or {})


def test_clusters_find_incidents_without_fusing_close_ones() -> None:
    city, network = city_and_network()
    reports = make_report_clusters(city, 1500, seed=13)
    labels, _ = cluster(city, network, list(reports))
    _precision, _recall, f1 = pairwise_f1(reports.true_labels, labels)
    assert f1 >= 0.95
    assert fused_fraction(reports.close_pairs, reports.true_labels, labels) <= 0.10
    assert {kind for _a, _b, kind in reports.close_pairs} == {"opposite", "along", "later"}


def _reports_at(x: list[float], heading: list[float], time_s: list[float] | None = None) -> Reports:
    """Reports of one family on an east-west line (no network: compared where reported)."""
    n = len(x)
    return Reports(x=np.asarray(x, dtype=float), y=np.zeros(n), time_s=np.asarray(time_s or [0.0] * n, dtype=float),
                   family=["crash"] * n, edge=np.full(n, -1, dtype=np.int64), offset=np.full(n, np.nan),
                   heading=np.asarray(heading, dtype=float))


@pytest.mark.parametrize("rounds", [16, 0], ids=["mutual-rounds", "heap-only"])
def test_clusters_merge_by_their_size(rounds: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two single reports 45 m apart may be one incident (each is noisy); two groups of four whose
    centres lie 45 m apart are two (a centre of four reports is known to half a report's noise).
    The same with the heap alone (what follows the rounds of mutual merges on a long chain)."""
    monkeypatch.setattr(dedup, "_MUTUAL_ROUNDS", rounds)
    assert cluster_reports(_reports_at([0.0, 45.0], [90.0, 90.0])).tolist() == [0, 0]
    groups = [0.0, 2.0, -2.0, 1.0, 45.0, 47.0, 43.0, 46.0]
    assert cluster_reports(_reports_at(groups, [90.0] * 8)).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    # never across the time window, never against the direction of travel
    assert len(set(cluster_reports(_reports_at([0.0, 5.0], [90.0, 90.0], [0.0, 3600.0])).tolist())) == 2
    assert len(set(cluster_reports(_reports_at([0.0, 5.0], [90.0, 270.0])).tolist())) == 2


def test_a_report_of_unknown_direction_between_both_directions_stays_alone() -> None:
    """Heading 0 (unknown) next to incidents in both directions of a street: it could belong to
    either, and joining one would fuse the two; next to one direction only, it joins."""
    eastbound, westbound = [0.0, 3.0, -3.0], [1.0, -1.0, 2.0]
    both = cluster_reports(_reports_at([*eastbound, *westbound, 0.5], [90.0] * 3 + [270.0] * 3 + [0.0]))
    assert len({*both[:3].tolist()}) == 1 and len({*both[3:6].tolist()}) == 1 and both[0] != both[3]
    assert both[6] not in set(both[:6].tolist())
    one = cluster_reports(_reports_at([*eastbound, 0.5], [90.0] * 3 + [0.0]))
    assert one.tolist() == [0, 0, 0, 0]


def test_cluster_ids_survive_ten_polls_of_changing_members() -> None:
    city, network = city_and_network()
    reports = make_report_clusters(city, 300, seed=14)
    incident_of = {r.uuid: label for r, label in zip(reports, reports.true_labels, strict=True)}
    rng = np.random.default_rng(5)
    previous: dict[str, str] = {}
    last_ids: dict[int, str] = {}
    last_members: dict[int, set[str]] = {}
    survivors = 0
    for _poll in range(10):
        shown = [r for r in reports if rng.random() < 0.8]  # each poll loses and regains members
        labels, ids = cluster(city, network, shown, previous)
        assert len(set(ids)) == len(set(labels.tolist())), "one id per cluster, never shared"
        ids_of_incident: dict[int, set[str]] = {}
        members: dict[int, set[str]] = {}
        previous = {}  # what the store holds: the cluster ids of the last poll
        for report, cluster_id in zip(shown, ids, strict=True):
            ids_of_incident.setdefault(incident_of[report.uuid], set()).add(cluster_id)
            members.setdefault(incident_of[report.uuid], set()).add(report.uuid)
            previous[report.uuid] = cluster_id
        # an incident found as exactly one cluster of its own in two consecutive polls, sharing
        # reports between them, keeps its cluster id
        incidents_of_id: dict[str, set[int]] = {}
        for report, cluster_id in zip(shown, ids, strict=True):
            incidents_of_id.setdefault(cluster_id, set()).add(incident_of[report.uuid])
        now = {
            incident: next(iter(found)) for incident, found in ids_of_incident.items()
            if len(found) == 1 and len(incidents_of_id[next(iter(found))]) == 1
        }
        for incident, cluster_id in now.items():
            if incident in last_ids and members[incident] & last_members[incident]:
                survivors += 1
                assert cluster_id == last_ids[incident], f"incident {incident} changed cluster id"
        last_ids, last_members = now, members
    assert survivors > 1500


@pytest.mark.parametrize(
    ("lon", "lat", "reason"),
    [(np.nan, 37.8, "invalid coordinates"), (-122.30, 95.0, "invalid coordinates"), (0.0, 0.0, "no road within")],
)
def test_bad_points_are_reported_not_raised(lon: float, lat: float, reason: str) -> None:
    _city, network = city_and_network()
    result = match_points(network, np.array([lon]), np.array([lat]))
    assert result.edge[0] == -1 and reason in (result.reason[0] or "")


def test_empty_and_degenerate_lines() -> None:
    _city, network = city_and_network()
    results = match_lines(network, [np.zeros((0, 2)), np.array([[-122.3, 37.8]]), np.array([[0.0, 0.0], [0.001, 0.0]]),
                                    np.array([[np.nan, np.nan], [np.nan, np.nan]])])
    assert [r.matched for r in results] == [False, False, False, False]
    assert all(r.reason for r in results)


def test_batch_contract_empty_in_empty_out() -> None:
    _city, network = city_and_network()
    assert len(match_points(network, np.array([]), np.array([]))) == 0
    assert match_lines(network, []) == []
    empty = Reports(x=np.array([]), y=np.array([]), time_s=np.array([]), family=[], edge=np.array([], dtype=np.int64),
                    offset=np.array([]), heading=np.array([]))
    assert len(cluster_reports(empty, network)) == 0


def _parallel_streets() -> RoadNetwork:
    """Three one-way streets, west to east: 'Blake Street', 'Market Street' 70 m south of it, and 'Far
    Street' 170 m further south."""
    from geo.network import build_network
    from geo.types import WayInput

    north, south, far = 39.7500, 39.7500 - 70 / 111_000, 39.7500 - 240 / 111_000
    nodes = {1: (-105.000, north), 2: (-104.996, north), 3: (-105.000, south), 4: (-104.996, south),
             5: (-105.000, far), 6: (-104.996, far)}
    streets = ("Blake Street", "Market Street", "Far Street")
    return build_network(nodes, [WayInput(k + 1, [2 * k + 1, 2 * k + 2],
                                          {"name": name, "highway": "residential", "oneway": "yes"})
                                 for k, name in enumerate(streets)])


def test_an_alert_far_off_its_named_street_is_looked_for_farther() -> None:
    """Waze positions downtown may lie 50 m or more off the street they name: where no road within the
    radius carries that street, it is looked for twice as far, and taken only there."""
    network = _parallel_streets()
    blake, market = (next(e for e in range(network.edge_count) if network.edge_name(e) == name) for name in
                     ("Blake Street", "Market Street"))
    lat = 39.7500 - 45 / 111_000  # 45 m south of Blake Street, 25 m north of Market Street
    lon = np.array([-104.998] * 4)
    lats = np.array([lat] * 4)
    found = match_points(network, lon, lats, heading=np.full(4, 90.0), radius_m=40.0,
                         streets=["Blake Street", None, "Unknown Road", "Far Street"])
    assert found.edge.tolist()[:3] == [blake, market, market]  # an unknown name: no search farther
    # 'Far Street' lies 195 m off, beyond twice the radius: the alert stays on the road near it
    assert found.edge[3] == market
    assert found.reason == [None] * 4


def test_a_named_street_found_farther_is_taken_only_where_it_wins() -> None:
    """Searched twice as far, the alert's street must win there: a nearer road of another name found in
    the wider search does not take an alert that had none within the radius."""
    network = _parallel_streets()
    north_of_blake = 39.7500 + 60 / 111_000  # 60 m north of Blake Street, 130 m from Market Street
    found = match_points(network, np.array([-104.998]), np.array([north_of_blake]), heading=np.array([90.0]),
                         radius_m=40.0, streets=["Market Street"])
    assert found.edge.tolist() == [-1] and found.reason == ["no road within 40 m"]
