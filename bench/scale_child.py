"""Child process of ``scale_bench.py``: one measured step in a fresh interpreter.

    python bench/scale_child.py build SOURCE            read the source and build_network
    python bench/scale_child.py cache SOURCE OUT        build_cache (read, build, write the cache)
    python bench/scale_child.py match CACHE INPUTS.npz  cold load_network, then match_points and match_lines

It imports nothing of ``bench`` or ``tests`` and runs by its path, so what it holds is only what the
step needs. The peak resident set size is ``VmHWM`` of ``/proc/self/status``: the high-water mark of
this process's own address space after ``exec``. ``ru_maxrss`` is printed too, but on Linux it also
carries the high-water mark of the address space the child was spawned from (``exec`` folds the old
one into it, and ``subprocess`` spawns through ``vfork``, sharing the benchmark's), so it says how
big the benchmark was, not the step. Prints one JSON object on stdout.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import itertools  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from geo_child import rss_mb  # noqa: E402  (the sibling script: both run as scripts from bench/)


def build(source: Path) -> dict[str, object]:
    from adapters.osm import read_road_network
    from geo.network import build_network

    imported = time.perf_counter()
    data = read_road_network(source)
    read = time.perf_counter()
    rss_after_read = rss_mb("VmRSS")
    network = build_network(data.nodes, data.ways)
    built = time.perf_counter()
    return {
        "read_s": read - imported,
        "build_network_s": built - read,
        "read_and_build_s": built - imported,
        "rss_after_read_mb": rss_after_read,
        "directed_edges": network.edge_count,
        "fingerprint": network.fingerprint(),
    }


def cache(source: Path, out: Path) -> dict[str, object]:
    from adapters.network_cache import build_cache

    imported = time.perf_counter()
    network = build_cache(source, out)
    return {"build_cache_s": time.perf_counter() - imported, "cache_mb": out.stat().st_size / 1e6,
            "directed_edges": network.edge_count}


def match(cache_file: Path, inputs: Path) -> dict[str, object]:
    import numpy as np

    from adapters.network_cache import load_network
    from geo.linematch import match_lines
    from geo.match import match_points

    imported = time.perf_counter()
    network = load_network(cache_file).network
    loaded = time.perf_counter()
    out: dict[str, object] = {
        "import_s": imported - STARTED, "load_s": loaded - imported, "directed_edges": network.edge_count,
        "rss_after_load_mb": rss_mb("VmRSS"), "peak_after_load_mb": rss_mb("VmHWM"),
    }
    with np.load(inputs, allow_pickle=False) as arrays:
        lon, lat, heading = arrays["lon"], arrays["lat"], arrays["heading"]
        streets = [s or None for s in arrays["street"].tolist()]
        jam_xy, jam_ptr = arrays["jam_lonlat"], arrays["jam_ptr"]
    lines = [jam_xy[start:end] for start, end in itertools.pairwise(jam_ptr.tolist())]

    started = time.perf_counter()
    network.segment_tree()
    out["index_s"] = time.perf_counter() - started
    out["peak_after_index_mb"] = rss_mb("VmHWM")
    started = time.perf_counter()
    points = match_points(network, lon, lat, heading=heading, streets=streets)
    out["match_points_s"] = time.perf_counter() - started
    out["alerts"], out["alerts_matched"] = len(lon), int((points.edge >= 0).sum())
    out["peak_after_points_mb"] = rss_mb("VmHWM")
    del points
    started = time.perf_counter()
    jams = match_lines(network, lines)
    out["match_lines_s"] = time.perf_counter() - started
    out["jams"], out["jams_matched"] = len(lines), sum(1 for jam in jams if len(jam.edges) > 0)
    return out


def main(argv: list[str]) -> int:
    step, args = argv[0], [Path(a) for a in argv[1:]]
    steps = {"build": build, "cache": cache, "match": match}
    out = steps[step](*args)
    out["peak_rss_mb"] = rss_mb("VmHWM")
    out["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["wall_s"] = time.perf_counter() - STARTED
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
