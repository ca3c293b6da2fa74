"""Points and duplicates on ground truth from a third generator, by an outside reviewer; never gated.

    .venv/bin/python -m bench.geo_reporters [--quick] [--seed 4242] [--networks denver helsinki]
        [--variants "25 min" "25 min, no opp, all heading, back 0-30"]

``match_points`` and ``cluster_reports`` with the production settings (``bench.geo_real.PRODUCTION``) on
reports made as drivers make them. An outside reviewer wrote the generator after the tuning; nothing
here is a gate. ``tests/support/realnet.py`` (issue 12's gates) puts drivers on the centreline with
Gaussian noise and an unbiased heading error, 0-10 % without a heading, 1-6 reports within +/-15 m of
the incident over 20-30 min, partners opposite / 40-80 m along / 45-90 min later; ``geo_independent.py``
makes jams only. Here, wherever a choice was free:

* drivers on the travel lane, 1.5-5 m right of the centreline (one-way: any lane, +/-4 m);
* heavy-tailed GPS noise: ``t3`` bivariate Student t, 3 degrees of freedom, scale 10 m; ``mix`` 90 %
  N(0, 6 m) + 10 % N(0, 40 m) per axis;
* heading = bearing + 10 degrees bias + N(0, 8 degrees), 30 % without one; street name on 85 %;
  a Waze roadType ambiguous for the class and wrong (1 or 2) one time in ten;
* 1-8 reports per incident (geometric, p 0.4), 0-60 m *before* it (against travel, through
  straight-ish predecessors), over 40 min; of a both-direction incident (closures, 30 % of accidents on
  two-way roads) 30 % of the reports come from the other direction;
* 35 % of incidents get a close-but-distinct partner of the same category, kinds in random order, the
  first that fits: ``ahead`` 70-130 m, ``cross`` street (within 40 m of the junction), ``later``
  50-100 min, ``opposite`` direction (two-way roads, not for both-direction incidents).

References: the reviewer's naive snapper (nearest segment within 50 m within 60 degrees of the heading,
else the nearest), naive single-linkage clustering (family, 50 m, 30 min, 60 degrees) and DBSCAN 25 m.
Points with the Waze fields (street, roadType) and bare (heading only); the sensitivity table reruns the
duplicates with the reviewer's gentler variants. Markdown on stdout, progress on stderr, every figure in
``bench/out/geo_reporters.json``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from bench.geo_bench import finish, log, machine
from bench.geo_real import PRODUCTION, SOURCES, built_networks
from geo.dedup import CATEGORY_FAMILY, Reports, cluster_reports
from geo.match import match_points
from geo.network import RoadNetwork, heading_difference
from tests.support.realnet import EdgeGeometry, _bearing, _best, naive_clusters
from tests.support.synthetic import fused_fraction, pairwise_f1

OUT_FILE = Path(__file__).resolve().parent / "out" / "geo_reporters.json"
DEFAULT_NETWORKS = ("denver", "helsinki", "west_oakland", "cambridge")
NOISES = ("t3", "mix")
POINT_VARIANTS = ("waze", "bare")  # with street and roadType, or the heading alone
MID_BLOCK_M = 20.0
HEADING_BIAS_DEG = 10.0
HEADING_SD_DEG = 8.0
STREET_SHARE = 0.85
PARTNER_SHARE = 0.35
CATEGORIES = ("ACCIDENT", "HAZARD", "JAM", "ROAD_CLOSED", "POLICE")
CATEGORY_P = (0.30, 0.30, 0.15, 0.10, 0.15)
BASE_TIME_S = 1_790_000_000.0
#: Waze roadTypes an OSM class may carry, drawn evenly (motorway 3, links 4, trunk 6, the rest 1)
WAZE_EITHER = {"primary": [6, 2], "secondary": [7, 2], "tertiary": [2, 1]}


@dataclass(frozen=True)
class ReportModel:
    label: str
    spread_min: float = 40.0  # report times t0 + U(0, spread)
    opposite_share: float = 0.30  # reports of a both-direction incident from the other direction
    back_m: float = 60.0  # reports U(0, back) before the incident
    no_heading_share: float = 0.30


BASE = ReportModel("base (40 min, opp 30%, back 0-60 m)")
SENSITIVITY = {m.label: m for m in (
    ReportModel("25 min", spread_min=25.0),
    ReportModel("25 min, no opp", spread_min=25.0, opposite_share=0.0),
    ReportModel("25 min, no opp, all heading", spread_min=25.0, opposite_share=0.0, no_heading_share=0.0),
    ReportModel("25 min, no opp, all heading, back 0-30", spread_min=25.0, opposite_share=0.0, no_heading_share=0.0,
                back_m=30.0),
)}  # fmt: skip
DEFAULT_SENSITIVITY = ("25 min", "25 min, no opp, all heading, back 0-30")


class ReporterGeometry(EdgeGeometry):
    """``EdgeGeometry`` plus the reviewer's walks along the road and a table of every shape segment."""

    def __init__(self, network: RoadNetwork) -> None:
        super().__init__(network)
        self.segment_edge = np.repeat(np.arange(self.edge_count), [len(c) - 1 for c in self.coords])
        self.segment_start = np.concatenate([c[:-1] for c in self.coords])
        self.segment_end = np.concatenate([c[1:] for c in self.coords])
        delta = self.segment_end - self.segment_start
        self.segment_bearing = _bearing(delta[:, 0], delta[:, 1])
        self.segment_tree = shapely.STRtree(shapely.linestrings(np.stack((self.segment_start, self.segment_end), 1)))

    def position(self, edge: int, offset: float) -> tuple[np.ndarray, np.ndarray]:
        """The point at ``offset`` and the unit direction of travel there."""
        cum, xy = self.cumlen[edge], self.coords[edge]
        offset = min(max(offset, 0.0), cum[-1])
        k = int(np.clip(np.searchsorted(cum, offset, side="right") - 1, 0, len(cum) - 2))
        direction = xy[k + 1] - xy[k]
        piece = cum[k + 1] - cum[k]
        point = xy[k] + direction * (0.0 if piece == 0 else (offset - cum[k]) / piece)
        return point, direction / (np.hypot(*direction) or 1.0)

    def _straight(self, options: list[int], edge: int, before: bool) -> list[int]:
        turn = [heading_difference(self.end_bearing[o], self.start_bearing[edge]) if before
                else heading_difference(self.end_bearing[edge], self.start_bearing[o]) for o in options]
        return [o for o, angle in zip(options, turn, strict=True) if o != self.twin[edge] and angle <= 45]

    def back(self, edge: int, offset: float, distance: float, rng: np.random.Generator) -> tuple[int, float]:
        """``distance`` metres against travel, through a random straight-ish predecessor at junctions."""
        for _ in range(20):
            if offset - distance >= 0:
                return edge, offset - distance
            distance -= offset
            options = self._straight(self.into.get(int(self.u[edge]), []), edge, before=True)
            if not options:
                return edge, 0.0
            edge = int(rng.choice(options))
            offset = self.length[edge]
        return edge, max(offset - distance, 0.0)

    def ahead(self, edge: int, offset: float, distance: float, rng: np.random.Generator) -> tuple[int, float] | None:
        for _ in range(20):
            if offset + distance <= self.length[edge]:
                return edge, offset + distance
            distance -= self.length[edge] - offset
            options = self._straight(self.out.get(int(self.v[edge]), []), edge, before=False)
            if not options:
                return None
            edge, offset = int(rng.choice(options)), 0.0
        return None


# --------------------------------------------------------------------------- generator


@dataclass(frozen=True)
class Alert:
    x: float
    y: float
    magvar: int  # 0: no heading
    edge: int  # the truth: directed edge and offset of the driver
    offset: float
    street: str | None
    road_type: int
    mid_block: bool  # >= 20 m from both ends of its edge


@dataclass(frozen=True)
class Report(Alert):
    category: str
    time_s: float
    incident: int


@dataclass
class MadeReports:
    reports: list[Report]
    incident_edges: list[int]
    pairs: list[tuple[int, int, str]]  # close-but-distinct (incident a, incident b, kind)


def waze_road_type(road_class: str, rng: np.random.Generator) -> int:
    if rng.random() < 0.10:
        return int(rng.choice([1, 2]))  # Waze's map class disagrees with OSM now and then
    if road_class.endswith("_link"):
        return 4
    if road_class in WAZE_EITHER:
        return int(rng.choice(WAZE_EITHER[road_class]))
    return {"motorway": 3, "trunk": 6}.get(road_class, 1)


def gps_noise(noise: str, rng: np.random.Generator) -> np.ndarray:
    if noise == "t3":  # bivariate Student t, 3 degrees of freedom, scale 10 m
        return 10.0 * rng.normal(0, 1, 2) / math.sqrt(rng.chisquare(3) / 3.0)
    if noise == "mix":  # 90 % N(0, 6 m) + 10 % N(0, 40 m), per axis
        return rng.normal(0, 40.0 if rng.random() < 0.10 else 6.0, 2)
    raise ValueError(noise)


def observe(geometry: ReporterGeometry, edge: int, offset: float, noise: str, rng: np.random.Generator,
            no_heading_share: float) -> tuple[np.ndarray, int]:
    """A driver at ``offset`` on ``edge``, on the travel lane: the noisy position and the magvar sent."""
    point, direction = geometry.position(edge, offset)
    right = np.array([direction[1], -direction[0]])
    lateral = rng.uniform(1.5, 5.0) if geometry.twin[edge] >= 0 else rng.uniform(-4.0, 4.0)
    observed = point + right * lateral + gps_noise(noise, rng)
    magvar = 0
    if rng.random() >= no_heading_share:
        true_bearing = float(_bearing(direction[0], direction[1]))
        magvar = round((true_bearing + HEADING_BIAS_DEG + rng.normal(0, HEADING_SD_DEG)) % 360.0) or 360
    return observed, magvar


def draw_edge(geometry: ReporterGeometry, rng: np.random.Generator) -> int:
    return int(rng.choice(geometry.edge_count, p=geometry.length / geometry.length.sum()))


def street_of(geometry: ReporterGeometry, edge: int, rng: np.random.Generator) -> str | None:
    names = geometry.names[edge]
    return names[0] if names and rng.random() < STREET_SHARE else None


def is_mid_block(geometry: ReporterGeometry, edge: int, offset: float) -> bool:
    return bool(offset >= MID_BLOCK_M and geometry.length[edge] - offset >= MID_BLOCK_M)


def make_alerts(geometry: ReporterGeometry, n: int, noise: str, seed: int) -> list[Alert]:
    rng = np.random.default_rng(seed)
    alerts = []
    for _ in range(n):
        edge = draw_edge(geometry, rng)
        offset = float(rng.uniform(0, geometry.length[edge]))
        xy, magvar = observe(geometry, edge, offset, noise, rng, BASE.no_heading_share)
        street = street_of(geometry, edge, rng)
        alerts.append(Alert(float(xy[0]), float(xy[1]), magvar, edge, offset, street,
                            waze_road_type(geometry.road_class[edge], rng), is_mid_block(geometry, edge, offset)))
    return alerts


def make_reports(geometry: ReporterGeometry, n_incidents: int, noise: str, model: ReportModel,
                 seed: int) -> MadeReports:
    rng = np.random.default_rng(seed)
    made = MadeReports([], [], [])

    def add(edge: int, offset: float, category: str, t0: float, both: bool) -> int:
        incident = len(made.incident_edges)
        made.incident_edges.append(edge)
        for _ in range(min(int(rng.geometric(0.4)), 8)):
            on, at = edge, offset
            if both and geometry.twin[edge] >= 0 and rng.random() < model.opposite_share:  # the other direction
                on, at = int(geometry.twin[edge]), float(geometry.length[edge] - offset)
            on, at = geometry.back(on, at, float(rng.uniform(0, model.back_m)), rng)
            xy, magvar = observe(geometry, on, at, noise, rng, model.no_heading_share)
            when = float(t0 + rng.uniform(0, model.spread_min * 60))
            street = street_of(geometry, on, rng)
            made.reports.append(Report(float(xy[0]), float(xy[1]), magvar, on, at, street,
                                       waze_road_type(geometry.road_class[on], rng), is_mid_block(geometry, on, at),
                                       category, when, incident))
        return incident

    while len(made.incident_edges) < n_incidents:
        edge = draw_edge(geometry, rng)
        offset = float(rng.uniform(0, geometry.length[edge]))
        category = str(rng.choice(CATEGORIES, p=CATEGORY_P))
        two_way = bool(geometry.twin[edge] >= 0)
        both = two_way and (category == "ROAD_CLOSED" or (category == "ACCIDENT" and rng.random() < 0.3))
        t0 = BASE_TIME_S + rng.uniform(0, 86400)
        first = add(edge, offset, category, t0, both)
        if len(made.incident_edges) >= n_incidents or rng.random() >= PARTNER_SHARE:
            continue
        kinds = ["ahead", "later", "cross"] + (["opposite"] if two_way and not both else [])
        rng.shuffle(kinds)
        for kind in kinds:
            jitter = rng.uniform(-10, 10) * 60
            place: tuple[int, float] | None = None
            if kind == "opposite":
                place = (int(geometry.twin[edge]), float(geometry.length[edge] - offset))
            elif kind == "ahead":
                place = geometry.ahead(edge, offset, float(rng.uniform(70, 130)), rng)
            elif kind == "later":
                place, jitter = (edge, offset), rng.uniform(50, 100) * 60
            elif kind == "cross" and geometry.length[edge] - offset <= 40:
                crossing = [q for q in geometry.out.get(int(geometry.v[edge]), [])
                            if 45 <= heading_difference(geometry.end_bearing[edge], geometry.start_bearing[q]) <= 135
                            and geometry.length[q] >= 10]
                if crossing:
                    q = int(rng.choice(crossing))
                    place = (q, float(rng.uniform(5, min(30, geometry.length[q]))))
            if place is not None:
                made.pairs.append((first, add(place[0], place[1], category, t0 + jitter, False), kind))
                break
    made.reports.sort(key=lambda r: r.time_s)
    return made


# --------------------------------------------------------------------------- references and scores


def naive_snap(geometry: ReporterGeometry, x: np.ndarray, y: np.ndarray, magvar: np.ndarray,
               radius_m: float = 50.0, max_deg: float = 60.0) -> np.ndarray:
    """The nearest segment within ``radius_m`` whose bearing is within ``max_deg`` of the heading;
    else (no heading, or none fits) the nearest segment; beyond the radius the nearest of all."""
    points = shapely.points(x, y)
    point, segment = geometry.segment_tree.query(points, predicate="dwithin", distance=radius_m)
    (ax, ay), (bx, by) = geometry.segment_start[segment].T, geometry.segment_end[segment].T
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    safe = np.where(length2 > 0, length2, 1)
    t = np.clip(np.where(length2 > 0, ((x[point] - ax) * dx + (y[point] - ay) * dy) / safe, 0), 0, 1)
    distance = np.hypot(ax + t * dx - x[point], ay + t * dy - y[point])
    turn = heading_difference(geometry.segment_bearing[segment], magvar[point])
    heading_ok = (magvar[point] != 0) & (turn <= max_deg)
    edge = geometry.segment_edge[segment]
    nearest = _best(point, edge, distance, len(x))  # ties: the earlier candidate
    nearest_ok = _best(point[heading_ok], edge[heading_ok], distance[heading_ok], len(x))
    out = np.where(nearest_ok >= 0, nearest_ok, nearest)
    missing = np.flatnonzero(out < 0)
    if len(missing):
        out[missing] = geometry.segment_edge[geometry.segment_tree.nearest(points[missing])]
    return out


@dataclass(frozen=True)
class PointScores:
    overall: float  # exact where a heading was sent, either direction where not
    with_heading: float  # exact, alerts with a heading
    mid_block_heading: float  # exact, alerts with a heading >= 20 m from both ends
    strict: float  # exact, all alerts
    no_heading_either: float  # either direction, alerts without a heading
    unmatched: float


def score_points(geometry: ReporterGeometry, alerts: Sequence[Alert], matched: np.ndarray) -> PointScores:
    truth = np.array([a.edge for a in alerts])
    exact = matched == truth
    either = exact | ((geometry.twin[truth] >= 0) & (matched == geometry.twin[truth]))
    heading = np.array([a.magvar != 0 for a in alerts])
    mid = np.array([a.mid_block for a in alerts])
    everyone = np.ones_like(heading)

    def share(values: np.ndarray, where: np.ndarray) -> float:
        return float(values[where].mean()) if where.any() else math.nan

    return PointScores(share(np.where(heading, exact, either), everyone), share(exact, heading),
                       share(exact, heading & mid), share(exact, everyone), share(either, ~heading),
                       float((matched < 0).mean()))


@dataclass(frozen=True)
class ClusterScores:
    precision: float
    recall: float
    f1: float
    fused: dict[str, float]  # share of close-but-distinct pairs fused, per kind and "all"
    clusters: int

    @property
    def cell(self) -> str:
        return f"{self.f1:.3f} ({self.precision:.3f}/{self.recall:.3f}) {self.fused['all']:.3f}"


def score_clusters(made: MadeReports, labels: list[int]) -> ClusterScores:
    truth = [r.incident for r in made.reports]
    precision, recall, f1 = pairwise_f1(truth, labels)
    fused = {kind: fused_fraction(made.pairs, truth, labels, kind=kind) for kind in sorted({k for *_, k in made.pairs})}
    return ClusterScores(precision, recall, f1, {**fused, "all": fused_fraction(made.pairs, truth, labels)},
                         len(set(labels)))


# --------------------------------------------------------------------------- runs


def run_points(network: RoadNetwork, geometry: ReporterGeometry, noise: str, variant: str, n: int,
               seed: int) -> dict[str, Any]:
    alerts = make_alerts(geometry, n, noise, seed)
    x, y = np.array([a.x for a in alerts]), np.array([a.y for a in alerts])
    magvar = np.array([float(a.magvar) for a in alerts])
    lon, lat = network.frame.to_lonlat(x, y)
    options: dict[str, Any] = {"heading": magvar, "radius_m": PRODUCTION.point_radius_m}
    if variant == "waze":
        options.update(streets=[a.street for a in alerts], road_type=np.array([a.road_type for a in alerts],
                                                                               dtype=np.int64))
    started = time.perf_counter()
    ours = np.asarray(match_points(network, lon, lat, **options).edge)
    seconds = time.perf_counter() - started
    naive = naive_snap(geometry, x, y, magvar)
    return {"alerts": n, "with_heading": sum(a.magvar != 0 for a in alerts),
            "mid_block_with_heading": sum(a.mid_block and a.magvar != 0 for a in alerts),
            "ours": asdict(score_points(geometry, alerts, ours)),
            "naive": asdict(score_points(geometry, alerts, naive)),
            "ours_alerts_per_s": n / seconds}


def dbscan_labels(x: np.ndarray, y: np.ndarray) -> list[int] | str:
    try:
        from sklearn.cluster import DBSCAN
    except ImportError as exc:
        return f"skipped: scikit-learn not installed ({exc})"
    return [int(v) for v in DBSCAN(eps=25.0, min_samples=1).fit_predict(np.column_stack((x, y)))]


def run_duplicates(network: RoadNetwork, geometry: ReporterGeometry, noise: str, model: ReportModel,
                   n_incidents: int, seed: int, *, with_dbscan: bool) -> dict[str, Any]:
    made = make_reports(geometry, n_incidents, noise, model, seed)
    rows = made.reports
    x, y = np.array([r.x for r in rows]), np.array([r.y for r in rows])
    magvar, when = np.array([float(r.magvar) for r in rows]), np.array([r.time_s for r in rows])
    family = [CATEGORY_FAMILY[r.category] for r in rows]
    lon, lat = network.frame.to_lonlat(x, y)
    matched = match_points(network, lon, lat, heading=magvar, streets=[r.street for r in rows],
                           road_type=np.array([r.road_type for r in rows], dtype=np.int64),
                           radius_m=PRODUCTION.point_radius_m)
    batch = Reports(x=x, y=y, time_s=when, family=family, edge=matched.edge, offset=matched.offset_m, heading=magvar)
    labels: dict[str, list[int] | str] = {
        "ours": [int(v) for v in cluster_reports(batch, network, radius_m=PRODUCTION.cluster_radius_m,
                                                 window_s=PRODUCTION.cluster_window_min * 60.0)],
        "naive": [int(v) for v in naive_clusters(x, y, when, family, magvar, radius_m=50.0, window_s=1800.0,
                                                 max_heading_deg=60.0)]}
    if with_dbscan:
        labels["dbscan25"] = dbscan_labels(x, y)
    out: dict[str, Any] = {"reports": len(rows), "incidents": len(made.incident_edges),
                           "pairs": dict(Counter(k for *_, k in made.pairs))}
    for name, found in labels.items():
        out[name] = found if isinstance(found, str) else asdict(score_clusters(made, found))
    return out


# --------------------------------------------------------------------------- report


def report(results: dict[str, Any]) -> str:
    runs = results["settings"]
    out = [f"## Points and duplicates on the reviewer's generator (seed {runs['seed']}, {runs['alerts']} alerts, "
           f"{runs['incidents']} incidents)", "", "### Points: ours / naive", "",
           "| network | noise | variant | overall | with heading | mid-block with heading |",
           "|---|---|---|---|---|---|"]
    for name, row in results["networks"].items():
        for key, p in row["points"].items():
            cells = [f"{p['ours'][s]:.3f} / {p['naive'][s]:.3f}" for s in ("overall", "with_heading",
                                                                           "mid_block_heading")]
            out.append(f"| {name} | {' | '.join(key.split('/'))} | {' | '.join(cells)} |")

    def cell(d: dict[str, Any], key: str) -> str:
        found = d.get(key, "not run")
        return found if isinstance(found, str) else ClusterScores(**found).cell

    out += ["", "### Duplicates: F1 (precision/recall) fused", "",
            "| network | noise | reports | ours | naive | DBSCAN 25 m |", "|---|---|---:|---|---|---|"]
    for name, row in results["networks"].items():
        for noise, d in row["duplicates"].items():
            out.append(f"| {name} | {noise} | {d['reports']:,} | {cell(d, 'ours')} | {cell(d, 'naive')} "
                       f"| {cell(d, 'dbscan25')} |")
    if any(row["sensitivity"] for row in results["networks"].values()):
        out += ["", "### Duplicates, sensitivity: F1 (precision/recall) fused", "",
                "| network | noise | variant | ours | naive |", "|---|---|---|---|---|"]
        for name, row in results["networks"].items():
            for noise, d in row["duplicates"].items():
                out.append(f"| {name} | {noise} | {BASE.label} | {cell(d, 'ours')} | {cell(d, 'naive')} |")
                for label, v in row["sensitivity"].get(noise, {}).items():
                    out.append(f"| {name} | {noise} | {label} | {cell(v, 'ours')} | {cell(v, 'naive')} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1000 alerts and 300 incidents (else 5000 and 1500)")
    parser.add_argument("--seed", type=int, default=4242, help="alerts; the reports get seed + 1")
    parser.add_argument("--networks", nargs="*", default=list(DEFAULT_NETWORKS), choices=[s.name for s in SOURCES])
    parser.add_argument("--variants", nargs="*", default=list(DEFAULT_SENSITIVITY), choices=list(SENSITIVITY),
                        help="duplicate sensitivity variants (none: no sensitivity table)")
    parser.add_argument("--out", type=Path, default=OUT_FILE)
    args = parser.parse_args(argv)
    n_alerts, n_incidents = (1000, 300) if args.quick else (5000, 1500)
    results: dict[str, Any] = {"machine": machine(), "networks": {},
                               "settings": {"seed": args.seed, "alerts": n_alerts, "incidents": n_incidents,
                                            "production": PRODUCTION.model_dump(mode="json")}}
    log(f"machine: {results['machine']}")
    started = time.perf_counter()
    for source, network in built_networks(args.networks):
        geometry = ReporterGeometry(network)
        log(f"{source.label}: {network.edge_count} directed edges, {network.link_count} links")
        row: dict[str, Any] = {"label": source.label, "edges": network.edge_count, "points": {}, "duplicates": {},
                               "sensitivity": {}}
        results["networks"][source.name] = row
        for noise in NOISES:
            for variant in POINT_VARIANTS:
                p = run_points(network, geometry, noise, variant, n_alerts, args.seed)
                row["points"][f"{noise}/{variant}"] = p
                log(f"  points {noise}/{variant}: overall ours {p['ours']['overall']:.3f} naive "
                    f"{p['naive']['overall']:.3f}")
            for model in (BASE, *(SENSITIVITY[label] for label in args.variants)):
                d = run_duplicates(network, geometry, noise, model, n_incidents, args.seed + 1,
                                   with_dbscan=model == BASE)
                if model == BASE:
                    row["duplicates"][noise] = d
                else:
                    row["sensitivity"].setdefault(noise, {})[model.label] = d
                log(f"  duplicates {noise}, {model.label}: F1 ours {d['ours']['f1']:.3f} naive {d['naive']['f1']:.3f}")
    results["wall_s"] = time.perf_counter() - started
    finish(results, report(results), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
