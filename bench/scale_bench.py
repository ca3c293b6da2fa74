"""Scale of the network build and of matching on synthetic cities of ~30k, ~120k and ~400k directed edges.

    python -m bench.scale_bench [--quick] [--repeat N] [--work DIR] [--out bench/out/scale.json]

Each city (``tests.support.synthetic.make_city``) is written as OSM XML and as OSM PBF (with
pyosmium's writer), with 100k alerts (``make_alerts``) and 5k jams (``make_jams``) drawn on it.
Every measurement then runs in a fresh interpreter (``bench/scale_child.py``), so its peak resident
set size (``VmHWM``) is the step's own, imports included:

* ``build``: ``read_road_network`` + ``build_network``, per format;
* ``cache``: ``build_cache`` (read, build, pickle to disk) from the PBF, and the cache's size;
* ``match``: a cold ``load_network`` of that cache, the spatial index, ``match_points`` on the
  alerts and ``match_lines`` on the jams.

Growth is judged per directed edge: build time per edge should stay flat (or grow like log n) from
the smallest city to the largest, and so should the time per alert and per jam (a bigger network
must not make each match dearer beyond the log n of the index). ``--quick`` runs the two smaller
cities only. ``--work DIR`` keeps the generated files there and reuses them on the next run (the
cities are deterministic in their seed), so a before/after comparison measures the same inputs.

Markdown on stdout, everything in JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np

from bench.machine import machine_info
from tests.support.synthetic import SyntheticCity, make_alerts, make_city, make_jams

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
CHILD = BENCH_DIR / "scale_child.py"
OUT_FILE = BENCH_DIR / "out" / "scale.json"

#: blocks per side -> about 30k, 123k and 401k directed edges (seed 7)
SIZES = {"30k": 86, "120k": 173, "400k": 312}
QUICK_SIZES = ("30k", "120k")
SEED_CITY, SEED_ALERTS, SEED_JAMS = 7, 11, 13
ALERTS, JAMS = 100_000, 5_000
FORMATS = ("osm", "pbf")
#: the per-edge (or per-match) time of the largest city may exceed the smallest's by the ratio of
#: their log n, with this much slack for a shared, noisy machine
GROWTH_SLACK = 1.5
#: a step faster than this on the smallest city is not judged: milliseconds are all noise here
GROWTH_MIN_S = 0.05


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------- inputs


def write_osm_xml(path: Path, city: SyntheticCity) -> None:
    """OSM XML 0.6: every node with lat/lon (7 decimals, as OSM stores them), then every way."""
    with path.open("w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="UTF-8"?>\n<osm version="0.6" generator="scale_bench">\n')
        for node_id, (lon, lat) in city.nodes.items():
            out.write(f'  <node id="{node_id}" version="1" lat="{lat:.7f}" lon="{lon:.7f}"/>\n')
        for way in city.ways:
            out.write(f'  <way id="{way.id}" version="1">\n')
            out.writelines(f'    <nd ref="{ref}"/>\n' for ref in way.nodes)
            out.writelines(f"    <tag k={quoteattr(k)} v={quoteattr(v)}/>\n" for k, v in way.tags.items())
            out.write("  </way>\n")
        out.write("</osm>\n")


def write_osm_pbf(path: Path, city: SyntheticCity) -> None:
    """OSM PBF through pyosmium's writer: nodes sorted by id, then ways sorted by id, as in an extract."""
    import osmium

    path.unlink(missing_ok=True)  # the writer refuses to overwrite
    writer = osmium.SimpleWriter(str(path))
    try:
        for node_id in sorted(city.nodes):
            lon, lat = city.nodes[node_id]
            writer.add_node(osmium.osm.mutable.Node(id=node_id, version=1, location=(round(lon, 7), round(lat, 7))))
        for way in sorted(city.ways, key=lambda w: w.id):
            writer.add_way(osmium.osm.mutable.Way(id=way.id, version=1, nodes=list(way.nodes), tags=dict(way.tags)))
    finally:
        writer.close()


def write_matching_inputs(path: Path, city: SyntheticCity, alerts: int, jams: int) -> None:
    drawn = make_alerts(city, alerts, seed=SEED_ALERTS)
    lines = make_jams(city, jams, seed=SEED_JAMS)
    jam_lonlat = np.array([point for jam in lines for point in jam.line], dtype=np.float64)
    jam_ptr = np.concatenate(([0], np.cumsum([len(jam.line) for jam in lines]))).astype(np.int64)
    np.savez(
        path,
        lon=np.array([a.lon for a in drawn]), lat=np.array([a.lat for a in drawn]),
        heading=np.array([float(a.magvar) for a in drawn]), street=np.array([a.street or "" for a in drawn]),
        jam_lonlat=jam_lonlat, jam_ptr=jam_ptr,
    )  # fmt: skip


def prepare(label: str, blocks: int, work: Path, alerts: int, jams: int) -> dict[str, Path]:
    """The city's files in ``work``, written unless a previous run left them there."""
    stem = work / f"city-b{blocks}-s{SEED_CITY}"
    files = {"osm": stem.with_suffix(".osm"), "pbf": stem.with_suffix(".osm.pbf"),
             "inputs": work / f"inputs-b{blocks}-a{alerts}-j{jams}.npz"}
    if all(path.exists() for path in files.values()):
        log(f"{label}: reusing {stem}.*")
        return files
    started = time.perf_counter()
    city = make_city(seed=SEED_CITY, blocks=blocks)
    log(f"{label}: city of {len(city.directed_edges):,} directed edges ({time.perf_counter() - started:.1f} s)")
    write_osm_xml(files["osm"], city)
    write_osm_pbf(files["pbf"], city)
    started = time.perf_counter()
    write_matching_inputs(files["inputs"], city, alerts, jams)
    log(f"{label}: {alerts:,} alerts and {jams:,} jams drawn ({time.perf_counter() - started:.1f} s)")
    return files


# ------------------------------------------------------------------------------------------ steps


def child(*args: Path | str) -> dict[str, Any]:
    """One step in a fresh interpreter that imports this checkout's code (``PYTHONPATH``)."""
    proc = subprocess.run(
        [sys.executable, str(CHILD), *map(str, args)], cwd=REPO_DIR, capture_output=True, text=True, check=False,
        env={"PYTHONPATH": str(REPO_DIR), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1",
             "OPENBLAS_NUM_THREADS": "1"},
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"scale_child.py {args[0]} failed: {proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def repeated(repeat: int, *args: Path | str) -> dict[str, Any]:
    """The step ``repeat`` times: the median of every timing, the largest peak, every run kept."""
    runs = [child(*args) for _ in range(repeat)]
    out: dict[str, Any] = {"runs": runs}
    for key, value in runs[0].items():
        if key.endswith("_s"):
            out[key] = statistics.median(run[key] for run in runs)
        elif key.endswith("_mb"):
            out[key] = max(run[key] for run in runs)
        else:
            out[key] = value
    return out


def measure(label: str, files: dict[str, Path], work: Path, repeat: int) -> dict[str, Any]:
    row: dict[str, Any] = {"size": label, "file_mb": {f: files[f].stat().st_size / 1e6 for f in FORMATS}}
    row["build"] = {}
    for fmt in FORMATS:
        row["build"][fmt] = repeated(repeat, "build", files[fmt])
        step = row["build"][fmt]
        log(f"{label} {fmt}: read {step['read_s']:.2f} s + build {step['build_network_s']:.2f} s, "
            f"peak {step['peak_rss_mb']:.0f} MB")
    fingerprints = {row["build"][f]["fingerprint"] for f in FORMATS}
    row["formats_agree"] = len(fingerprints) == 1
    row["directed_edges"] = row["build"]["pbf"]["directed_edges"]
    cache = work / f"{files['pbf'].name}.network"
    cache.unlink(missing_ok=True)
    row["cache"] = repeated(1, "cache", files["pbf"], cache)
    row["match"] = repeated(repeat, "match", cache, files["inputs"])
    step = row["match"]
    log(f"{label}: cache {row['cache']['build_cache_s']:.2f} s, {row['cache']['cache_mb']:.1f} MB; cold load "
        f"{step['load_s']:.3f} s; {step['alerts']:,} alerts {step['match_points_s']:.2f} s; {step['jams']:,} jams "
        f"{step['match_lines_s']:.2f} s; peak {step['peak_rss_mb']:.0f} MB")
    return row


# ----------------------------------------------------------------------------------------- growth


def growth(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Time per unit at the largest city over the smallest, against the ratio of their log n."""
    small, large = rows[0], rows[-1]
    log_ratio = math.log(large["directed_edges"]) / math.log(small["directed_edges"])

    def seconds_and_units(row: dict[str, Any], what: str) -> tuple[float, int]:
        if what.startswith("build"):
            return float(row["build"][what.split(":")[1]]["read_and_build_s"]), row["directed_edges"]
        if what == "cache":
            return float(row["cache"]["build_cache_s"]), row["directed_edges"]
        if what == "load":
            return float(row["match"]["load_s"]), row["directed_edges"]
        if what == "points":
            return float(row["match"]["match_points_s"]), row["match"]["alerts"]
        return float(row["match"]["match_lines_s"]), row["match"]["jams"]

    checks: dict[str, dict[str, Any]] = {}
    for what in ("build:osm", "build:pbf", "cache", "load", "points", "jams"):
        (small_s, small_n), (large_s, large_n) = seconds_and_units(small, what), seconds_and_units(large, what)
        ratio = (large_s / large_n) / (small_s / small_n)
        ok = None if small_s < GROWTH_MIN_S else ratio <= log_ratio * GROWTH_SLACK
        checks[what] = {"ratio": ratio, "ok": ok, "smallest_s": small_s}
    return {"log_ratio": log_ratio, "slack": GROWTH_SLACK, "checks": checks}


# ----------------------------------------------------------------------------------------- report


def report(results: dict[str, Any]) -> str:
    rows, info = results["rows"], results["machine"]
    lines = [
        f"## Scale ({info['date'][:10]}, {info['nproc']} cores, {info['cpu']}, Python {info['python']}, "
        f"commit {info['commit']}{' + changes' if info['tracked_changes'] else ''}; median of "
        f"{results['settings']['repeat']}, peak RSS = max)",
        "",
        "| directed edges | format | file MB | read s | build_network s | read + build s | µs / edge "
        "| peak RSS MB (read + build) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        for fmt in FORMATS:
            step = row["build"][fmt]
            lines.append(
                f"| {row['directed_edges']:,} | {fmt.upper() if fmt == 'pbf' else 'OSM XML'} "
                f"| {row['file_mb'][fmt]:.1f} | {step['read_s']:.2f} | {step['build_network_s']:.2f} "
                f"| {step['read_and_build_s']:.2f} | {step['read_and_build_s'] / row['directed_edges'] * 1e6:.1f} "
                f"| {step['peak_rss_mb']:.0f} |")
    lines += [
        "",
        "| directed edges | build_cache s | cache MB | cold load s | index s | alerts/s | jams/s "
        "| µs / alert | ms / jam | peak RSS MB: loaded / + index / + points / + jams |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        cache, step = row["cache"], row["match"]
        lines.append(
            f"| {row['directed_edges']:,} | {cache['build_cache_s']:.2f} | {cache['cache_mb']:.1f} "
            f"| {step['load_s']:.3f} | {step['index_s']:.2f} | {step['alerts'] / step['match_points_s']:,.0f} "
            f"| {step['jams'] / step['match_lines_s']:,.0f} | {step['match_points_s'] / step['alerts'] * 1e6:.1f} "
            f"| {step['match_lines_s'] / step['jams'] * 1e3:.2f} | {step['peak_after_load_mb']:.0f} / "
            f"{step['peak_after_index_mb']:.0f} / {step['peak_after_points_mb']:.0f} / {step['peak_rss_mb']:.0f} |")
    grown = results["growth"]
    lines += ["", f"Growth from {rows[0]['directed_edges']:,} to {rows[-1]['directed_edges']:,} edges, time per "
              f"unit (edge, alert or jam), largest / smallest; log n ratio {grown['log_ratio']:.2f}, allowed up to "
              f"{grown['log_ratio'] * grown['slack']:.2f}:", ""]
    for what, check in grown["checks"].items():
        verdict = {True: "ok", False: "GROWS FASTER THAN n log n"}.get(
            check["ok"], f"not judged ({check['smallest_s'] * 1e3:.0f} ms on the smallest city is noise)")
        lines.append(f"- {what}: {check['ratio']:.2f} {verdict}")
    agree = all(row["formats_agree"] for row in rows)
    lines.append(f"- OSM XML and PBF give the same network (fingerprint): {'yes' if agree else 'NO'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the ~30k and ~120k cities only")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measured step (median, max peak)")
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=None, help="run only these cities")
    parser.add_argument("--work", type=Path, default=None, help="keep the generated files here and reuse them")
    parser.add_argument("--out", type=Path, default=OUT_FILE)
    args = parser.parse_args(argv)
    sizes = args.sizes or (QUICK_SIZES if args.quick else tuple(SIZES))
    work = args.work or Path(tempfile.mkdtemp(prefix="scale-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "machine": machine_info(),
        "settings": {"sizes": {s: SIZES[s] for s in sizes}, "alerts": ALERTS, "jams": JAMS, "repeat": args.repeat,
                     "seeds": {"city": SEED_CITY, "alerts": SEED_ALERTS, "jams": SEED_JAMS}},
        "rows": [],
    }  # fmt: skip
    log(f"work dir {work}")
    try:
        for label in sizes:
            files = prepare(label, SIZES[label], work, ALERTS, JAMS)
            results["rows"].append(measure(label, files, work, args.repeat))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    results["rows"].sort(key=lambda row: row["directed_edges"])
    results["growth"] = growth(results["rows"])
    text = report(results)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    log(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
