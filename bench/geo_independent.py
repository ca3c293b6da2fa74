"""Jam matching on ground truth from a second generator, written after the tuning and never gated.

    .venv/bin/python -m bench.geo_independent [--jams 300] [--leuven-jams 100] [--networks denver helsinki]

Issue 12's gates are measured on ``tests/support/realnet.py``, the generator the matcher was tuned
on. A matcher tuned to its generator can lose to a plain one on another's, so this one differs from
it wherever a choice was free:

* walks of 3-15 directed edges turning at random at every junction (``make_jams`` prefers the
  straightest way 6:1, 2-12 edges);
* lines resampled at a fixed spacing from a random phase, so points fall between the road's
  vertices and cut corners (``make_jams`` keeps or drops the road's own vertices);
* each end mid-block half of the time, independently (``make_jams``: one end of 20 % of jams);
* Gaussian noise on every point, per variant.

Ours (``match_lines`` as the exchange calls it) against leuvenmapmatching on the same first jams, its
paths cut by the end rule ``bench/geo_real.py`` gives it. Markdown on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.geo_bench import log, machine
from bench.geo_real import PRODUCTION, SOURCES, References, _reference_paths, built_networks
from exchange.runtime import collector_paused
from geo.linematch import match_lines
from tests.support.realnet import EdgeGeometry, RealJam, _draw_by_length, jam_scores

SEED = 5


@dataclass(frozen=True)
class Variant:
    spacing_m: float  # one point every this many metres along the path
    sigma_m: float  # Gaussian noise per axis

    @property
    def label(self) -> str:
        return f"every {self.spacing_m:g} m, {self.sigma_m:g} m noise"


VARIANTS = (Variant(20.0, 5.0), Variant(50.0, 5.0), Variant(100.0, 5.0), Variant(30.0, 10.0))
EDGES = (3, 15)
MID_BLOCK_SHARE = 0.5  # per end


def random_walk(geometry: EdgeGeometry, rng: np.random.Generator, start: int, k: int) -> list[int]:
    """Up to ``k`` directed edges, each junction's way on drawn uniformly; no U-turn, no junction twice."""
    path, seen = [start], {int(geometry.u[start]), int(geometry.v[start])}
    while len(path) < k:
        options = [e for e in geometry.successors(path[-1]) if int(geometry.v[e]) not in seen]
        if not options:
            break
        chosen = options[int(rng.integers(len(options)))]
        path.append(chosen)
        seen.add(int(geometry.v[chosen]))
    return path


def resampled(shape: np.ndarray, spacing_m: float, rng: np.random.Generator) -> np.ndarray:
    """Points every ``spacing_m`` along ``shape`` from a random phase, both ends kept."""
    cumulative = np.concatenate(([0.0], np.cumsum(np.hypot(*np.diff(shape, axis=0).T))))
    at = np.arange(rng.uniform(0.0, spacing_m), cumulative[-1], spacing_m)
    at = np.concatenate(([0.0], at[(at > 1.0) & (at < cumulative[-1] - 1.0)], [cumulative[-1]]))
    return np.column_stack((np.interp(at, cumulative, shape[:, 0]), np.interp(at, cumulative, shape[:, 1])))


def make_independent_jams(geometry: EdgeGeometry, n: int, variant: Variant, *, seed: int) -> list[RealJam]:
    rng = np.random.default_rng(seed)
    jams: list[RealJam] = []
    while len(jams) < n:
        path = random_walk(geometry, rng, _draw_by_length(geometry, rng), int(rng.integers(EDGES[0], EDGES[1] + 1)))
        if len(path) < EDGES[0]:
            continue
        start = float(rng.uniform(0.2, 0.8)) * geometry.length[path[0]] if rng.random() < MID_BLOCK_SHARE else 0.0
        end = float(geometry.length[path[-1]])
        end = float(rng.uniform(0.2, 0.8)) * end if rng.random() < MID_BLOCK_SHARE else end
        parts = [geometry.shape_from(edge, start if i == 0 else 0.0,
                                     end if i == len(path) - 1 else float(geometry.length[edge]))
                 for i, edge in enumerate(path)]
        shape = resampled(np.vstack([parts[0], *(part[1:] for part in parts[1:])]), variant.spacing_m, rng)
        noisy = shape + rng.normal(0.0, variant.sigma_m, shape.shape)
        lon, lat = geometry.network.frame.to_lonlat(noisy[:, 0], noisy[:, 1])
        mid = "start" if start > 0 else ("end" if end < geometry.length[path[-1]] else None)
        jams.append(RealJam(np.column_stack((lon, lat)), path, mid))
    return jams


def run_variant(geometry: EdgeGeometry, refs: References, variant: Variant, jams_n: int,
                leuven_n: int) -> dict[str, Any]:
    network = geometry.network
    jams = make_independent_jams(geometry, jams_n, variant, seed=SEED)
    started = time.perf_counter()
    with collector_paused():
        found = match_lines(network, [jam.line for jam in jams], radius_m=PRODUCTION.line_radius_m)
    seconds = time.perf_counter() - started
    ours = jam_scores(geometry, jams, [r.edges for r in found])
    out: dict[str, Any] = {"ours": {**ours, "rate": len(jams) / seconds}}
    if refs.leuven is not None and leuven_n > 0:
        leuven = refs.leuven
        out["leuven"] = _reference_paths(network, geometry, jams[:leuven_n], lambda x, y: leuven.match(x, y)[0])
        out["leuven"]["ours_same_jams"] = float(np.mean(ours["scores"][:leuven_n]))
    log(f"    {variant.label}: ours {ours['jaccard']:.4f} {ours['errors']}"
        + (f"; leuven {out['leuven']['jaccard']:.4f} (ours on the same {out['leuven']['ours_same_jams']:.4f})"
           if "leuven" in out else ""))
    return out


_CLEAN_PATH_ERRORS = ("loop", "detour (extra inner edge)", "spurious end edge")


def report(rows: dict[str, dict[str, Any]], leuven_n: int) -> str:
    lines = [f"| network | line | ours: Jaccard (exact) | ours on leuven's {leuven_n} | leuven | ours - leuven |"
             " ours: loops / detours / spurious end edges |",
             "|---|---|---|---|---|---|---|"]
    for network, variants in rows.items():
        for label, result in variants.items():
            ours, leuven = result["ours"], result.get("leuven")
            errors = ours["errors"]
            counts = " / ".join(str(errors.get(kind, 0)) for kind in _CLEAN_PATH_ERRORS)
            same = f"{leuven['ours_same_jams']:.4f}" if leuven else "–"
            theirs = f"{leuven['jaccard']:.4f}" if leuven else "–"
            gap = f"{leuven['ours_same_jams'] - leuven['jaccard']:+.4f}" if leuven else "–"
            lines.append(f"| {network} | {label} | {ours['jaccard']:.4f} ({ours['exact']:.3f}) | {same} | {theirs} "
                         f"| {gap} | {counts} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    gated = [s.name for s in SOURCES if s.gated]
    parser.add_argument("--networks", nargs="*", default=gated, choices=[s.name for s in SOURCES])
    parser.add_argument("--jams", type=int, default=300, help="jams per network and line variant")
    parser.add_argument("--leuven-jams", type=int, default=100, help="of those, how many leuvenmapmatching matches")
    args = parser.parse_args(argv)
    log(f"machine: {machine()}")
    rows: dict[str, dict[str, Any]] = {}
    for source, network in built_networks(args.networks):
        log(source.label)
        geometry = EdgeGeometry(network)
        refs = References(network, args.leuven_jams > 0)
        rows[source.name] = {variant.label: run_variant(geometry, refs, variant, args.jams, args.leuven_jams)
                             for variant in VARIANTS}
    print(report(rows, args.leuven_jams))
    return 0


if __name__ == "__main__":
    sys.exit(main())
