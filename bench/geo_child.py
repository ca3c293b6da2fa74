"""Child process of ``geo_bench.py``: a cold start that loads a network cache, then (optionally) matches alerts.

    python -m bench.geo_child CACHE [ALERTS.json]

It imports nothing of ``bench`` or ``tests``, so ``geo_bench`` runs it by its path
(``python bench/geo_child.py``).

It runs as a fresh interpreter, so the timings include nothing the benchmark process had loaded,
and its peak resident set size (``VmHWM`` of ``/proc/self/status``, the high-water mark of this
process's own address space after ``exec``) holds only what a daemon would hold: the imports, the
network, the spatial index and one batch of alerts. Prints one JSON object on stdout.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def rss_mb(field: str) -> float | None:
    """``VmHWM`` (peak) or ``VmRSS`` (now) of this process in MB, from ``/proc/self/status``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def main(argv: list[str]) -> int:
    cache = Path(argv[0])
    import numpy as np

    from adapters.network_cache import load_network
    from geo.match import match_points

    imported = time.perf_counter()
    loaded = load_network(cache)
    network = loaded.network
    ready = time.perf_counter()
    out: dict[str, object] = {
        "import_s": imported - STARTED,
        "load_s": ready - imported,
        "start_to_loaded_s": ready - STARTED,
        "from_cache": loaded.from_cache,
        "directed_edges": network.edge_count,
        "rss_after_load_mb": rss_mb("VmRSS"),
    }
    if len(argv) > 1:
        alerts = json.loads(Path(argv[1]).read_text())
        lon = np.asarray(alerts["lon"], dtype=np.float64)
        lat = np.asarray(alerts["lat"], dtype=np.float64)
        heading = np.asarray(alerts["heading"], dtype=np.float64)
        started = time.perf_counter()
        network.segment_tree()
        out["tree_s"] = time.perf_counter() - started
        started = time.perf_counter()
        result = match_points(network, lon, lat, heading=heading, streets=alerts["street"])
        out["match_s"] = time.perf_counter() - started
        out["alerts"] = len(lon)
        out["matched"] = int((result.edge >= 0).sum())
    out["peak_rss_mb"] = rss_mb("VmHWM")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
