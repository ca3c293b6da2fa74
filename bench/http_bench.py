"""Feed serving benchmark: ``exchange serve`` (uvicorn) against nginx serving the same bytes.

    .venv/bin/python -m bench.http_bench [--duration 10] [--threads 2] [--connections 32] [--workers 1 2]

In one run, on 127.0.0.1 only:

1. a realistic publication: ``--closures`` (2,000) synthetic city closures rendered as CIFS XML
   (plus a CIFS JSON and a WZDx document), stored with ``publication_row`` in a fresh SQLite
   store in a temp dir, and written by ``FileSink(gzip=True)`` into an nginx docroot there;
2. ``exchange serve --no-tokens --no-access-log`` (one process per ``--workers`` value) and nginx
   (a minimal nginx.conf in the temp dir, foreground, ``gzip_static``, ``access_log off``; no
   system configuration is read or written) on free ports;
3. per server, a check of every case with httpx (status, encoding, body), then wrk
   (``-t --threads -c --connections -d --duration``) for each case:
   ``full`` (identity body), ``gzip`` (precompressed body), ``304`` (If-None-Match with the
   server's own ETag, keep-alive) and ``304-new-conn`` (the same with ``Connection: close``:
   a new TCP connection per request, like a partner polling once a minute).

It prints a markdown table (requests/s and latency side by side, nginx / exchange ratios) and the
machine, and writes every sample to ``bench/out/http.json``. wrk and nginx are installed with
apt-get when missing (root only; ``--no-install`` refuses instead). See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import httpx

from bench.machine import machine_info

REPO_DIR = Path(__file__).resolve().parents[1]
OUT = REPO_DIR / "bench" / "out" / "http.json"
FEED = "cifs.xml"
CASES = ("full", "gzip", "304", "304-new-conn")

STREETS = ["Main Street", "Broadway", "5th Avenue", "Market Street", "Elm Street", "Oak Avenue", "Park Road",
           "Water Street", "Church Street", "Mill Road", "Harbor Drive", "King Street", "Queen Street"]
REASONS = ["Water main replacement", "Street festival", "Gas service work", "Bridge inspection",
           "Paving and line striping", "Crane operation", "Sewer repair", "Film shoot", "Parade"]
SUBTYPES = ["ROAD_CLOSED_CONSTRUCTION", "ROAD_CLOSED_EVENT", "ROAD_CLOSED_HAZARD"]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the publication


def synthetic_closures(count: int, seed: int = 2026) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    start = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    closures = []
    for n in range(count):
        lat, lon = 40.70 + rng.random() * 0.1, -74.02 + rng.random() * 0.1
        points = [(lat + i * rng.uniform(-4e-4, 4e-4), lon + i * rng.uniform(3e-4, 9e-4))
                  for i in range(rng.randint(2, 8))]
        begins = start + timedelta(hours=rng.randint(-48, 240))
        closures.append({
            "id": f"city-closure-{n:06d}",
            "subtype": rng.choice(SUBTYPES),
            "street": rng.choice(STREETS),
            "description": f"{rng.choice(REASONS)} between {rng.choice(STREETS)} and {rng.choice(STREETS)}; "
                           "local access only, follow the posted detour",
            "direction": rng.choice(["BOTH_DIRECTIONS", "ONE_DIRECTION"]),
            "polyline": " ".join(f"{a:.6f} {b:.6f}" for a, b in points),
            "starttime": begins.isoformat(timespec="seconds"),
            "endtime": (begins + timedelta(hours=rng.randint(2, 72))).isoformat(timespec="seconds"),
            "updated": (start - timedelta(minutes=rng.randint(0, 600))).isoformat(timespec="seconds"),
        })
    return closures


def cifs_xml(closures: list[dict[str, Any]]) -> bytes:
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<incidents>\n']
    for c in closures:
        parts.append(
            f'  <incident id="{c["id"]}">\n'
            f"    <creationtime>{c['updated']}</creationtime>\n"
            f"    <updatetime>{c['updated']}</updatetime>\n"
            f"    <source><reference>city-dot</reference><name>City Department of Transportation</name></source>\n"
            f"    <type>ROAD_CLOSED</type>\n"
            f"    <subtype>{c['subtype']}</subtype>\n"
            f"    <description>{escape(c['description'])}</description>\n"
            f"    <location>\n"
            f"      <street>{escape(c['street'])}</street>\n"
            f"      <direction>{c['direction']}</direction>\n"
            f"      <polyline>{c['polyline']}</polyline>\n"
            f"    </location>\n"
            f"    <starttime>{c['starttime']}</starttime>\n"
            f"    <endtime>{c['endtime']}</endtime>\n"
            f"  </incident>\n"
        )
    parts.append("</incidents>\n")
    return "".join(parts).encode()


def publish(data_dir: Path, docroot: Path, closures: list[dict[str, Any]]) -> tuple[dict[str, bytes], int]:
    """Store the publication the way the publish step does, and mirror it into the nginx docroot."""
    from adapters.sinks import FileSink
    from exchange.db import open_store, writing
    from exchange.publications import FEED_CONTENT_TYPES, publication_row, save_publications

    feeds = {
        "cifs.xml": cifs_xml(closures),
        "cifs.json": json.dumps({"incidents": closures}).encode(),
        "wzdx.geojson": json.dumps({"type": "FeatureCollection", "features": []}).encode(),
    }
    published_ms = (int(time.time()) - 600) * 1000
    engine = open_store(f"sqlite:///{data_dir / 'exchange.db'}")
    rows = [publication_row(name, body, FEED_CONTENT_TYPES[name], len(closures), published_ms)
            for name, body in feeds.items()]
    with writing(engine) as conn:
        save_publications(conn, rows)
    engine.dispose()
    FileSink(docroot / "feeds", gzip=True).push(feeds, gzipped={row["feed"]: row["body_gzip"] for row in rows},
                                                mtime_ms=published_ms)
    return feeds, published_ms


# --------------------------------------------------------------------------- the servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_tools(install: bool) -> tuple[str, str]:
    wrk, nginx = shutil.which("wrk"), shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if wrk and nginx:
        return wrk, nginx
    if not install or os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit("http_bench: wrk and nginx are needed: apt-get install -y wrk nginx")
    log("installing wrk and nginx (apt-get) ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk", "nginx"], check=True, env=env)
    return ensure_tools(install=False)


def start_exchange(data_dir: Path, workers: int) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
    env.update(EXCHANGE_DATA_DIR=str(data_dir), EXCHANGE_LOG_LEVEL="WARNING")
    command = [sys.executable, "-m", "exchange", "serve", "--port", "0", "--no-tokens", "--no-access-log",
               "--workers", str(workers)]
    process = subprocess.Popen(command, env=env, cwd=REPO_DIR, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               text=True)
    assert process.stderr is not None
    for line in process.stderr:
        match = re.match(r"serving (http://\S+)/feeds/", line)
        if match:
            url = match.group(1)
            wait_until_up(f"{url}/health")
            return process, url
    process.wait()
    sys.exit(f"http_bench: exchange serve did not start (exit {process.returncode})")


NGINX_CONF = """\
worker_processes {workers};
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {tmp}/nginx-temp/body;
    proxy_temp_path {tmp}/nginx-temp/proxy;
    fastcgi_temp_path {tmp}/nginx-temp/fastcgi;
    uwsgi_temp_path {tmp}/nginx-temp/uwsgi;
    scgi_temp_path {tmp}/nginx-temp/scgi;
    types {{ application/xml xml; application/json json; application/geo+json geojson; }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {docroot};
        location /feeds/ {{
            gzip_static on;
            gzip_vary on;
            charset utf-8;
            charset_types application/xml;
            add_header Cache-Control "public, max-age=60";
        }}
    }}
}}
"""


def start_nginx(nginx: str, tmp: Path, docroot: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    (tmp / "nginx-temp").mkdir(exist_ok=True)
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(workers=workers, tmp=tmp, port=port, docroot=docroot))
    command = [nginx, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "nginx-error.log")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/feeds/{FEED}", process)
    except RuntimeError:
        stop(process, signal.SIGQUIT)
        error_log = (tmp / "nginx-error.log").read_text() if (tmp / "nginx-error.log").exists() else ""
        sys.exit(f"http_bench: nginx did not start: {error_log[-800:]}")
    return process, url


def wait_until_up(url: str, process: subprocess.Popen[Any] | None = None, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def stop(process: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --------------------------------------------------------------------------- measuring

WRK_REPORT = """\
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"stdev":%.1f,"p50":%d,"p90":%d,"p99":%d,"max":%d}}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"""


def case_headers(case: str, etag: str) -> dict[str, str]:
    if case == "full":
        return {"Accept-Encoding": "identity"}
    if case == "gzip":
        return {"Accept-Encoding": "gzip"}
    headers = {"Accept-Encoding": "identity", "If-None-Match": etag}
    if case == "304-new-conn":
        headers["Connection"] = "close"
    return headers


def check_case(url: str, case: str, headers: dict[str, str], body: bytes) -> None:
    """Every measured request must be what the case says; wrk itself only counts >= 400 as errors."""
    with httpx.Client() as client, client.stream("GET", url, headers=headers) as response:
        raw = b"".join(response.iter_raw())
    expected = 304 if case.startswith("304") else 200
    problems = []
    if response.status_code != expected:
        problems.append(f"status {response.status_code}, expected {expected}")
    if case == "gzip" and (response.headers.get("content-encoding") != "gzip" or gzip.decompress(raw) != body):
        problems.append("not the gzip body")
    if case == "full" and raw != body:
        problems.append("not the identity body")
    if problems:
        sys.exit(f"http_bench: {url} {case}: {'; '.join(problems)}")


@dataclass
class Sample:
    server: str
    case: str
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    mb_per_s: float
    requests: int
    errors: dict[str, int]


def run_wrk(wrk: str, script: Path, url: str, headers: dict[str, str], args: argparse.Namespace,
            duration: int | None = None) -> dict[str, Any]:
    command = [wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{duration or args.duration}s",
               "--timeout", "10s", "-s", str(script)]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    result = subprocess.run([*command, url], capture_output=True, text=True, check=False,
                            timeout=(duration or args.duration) + 60)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if result.returncode != 0 or line is None:
        sys.exit(f"http_bench: wrk failed: {result.stderr.strip() or result.stdout.strip()}")
    return dict(json.loads(line.removeprefix("WRK_JSON ")))


def measure(wrk: str, script: Path, server: str, base: str, body: bytes, args: argparse.Namespace) -> list[Sample]:
    url = f"{base}/feeds/{FEED}"
    etag = httpx.get(url, headers={"Accept-Encoding": "identity"}).headers["etag"]
    run_wrk(wrk, script, url, case_headers("full", etag), args, duration=1)  # warm-up, not recorded
    samples = []
    for case in CASES:
        headers = case_headers(case, etag)
        check_case(url, case, headers, body)
        raw = run_wrk(wrk, script, url, headers, args)
        seconds = raw["duration_us"] / 1e6
        lat = raw["latency_us"]
        sample = Sample(
            server=server, case=case, requests_per_s=round(raw["requests"] / seconds, 1),
            p50_ms=lat["p50"] / 1000, p90_ms=lat["p90"] / 1000, p99_ms=lat["p99"] / 1000,
            mean_ms=round(lat["mean"] / 1000, 3), max_ms=lat["max"] / 1000,
            mb_per_s=round(raw["bytes"] / seconds / 1e6, 2), requests=raw["requests"], errors=raw["errors"],
        )
        log(f"  {server:>12} {case:<13} {sample.requests_per_s:>10,.0f} req/s  p50 {sample.p50_ms:.2f} ms  "
            f"p99 {sample.p99_ms:.2f} ms  {sample.mb_per_s} MB/s")
        samples.append(sample)
    return samples


# --------------------------------------------------------------------------- report


def version_of(command: list[str]) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=10)
    except OSError:
        return "?"
    text = (result.stdout + result.stderr).strip().splitlines()
    return text[0] if text else "?"


def machine(wrk: str, nginx: str) -> dict[str, Any]:
    import starlette
    import uvicorn

    try:
        import httptools  # type: ignore[import-not-found]  # noqa: F401

        http_impl = "httptools"
    except ImportError:
        http_impl = "h11"
    try:
        import uvloop  # type: ignore[import-not-found]  # noqa: F401

        loop_impl = "uvloop"
    except ImportError:
        loop_impl = "asyncio"
    return machine_info(
        uvicorn=f"{uvicorn.__version__} ({http_impl}, {loop_impl})",
        starlette=starlette.__version__,
        nginx=version_of([nginx, "-v"]).replace("nginx version: ", ""),
        wrk=version_of([wrk, "-v"]).split(" Copyright")[0],
    )


def table(samples: list[Sample], servers: list[str]) -> str:
    by = {(s.server, s.case): s for s in samples}
    exchange = [name for name in servers if name != "nginx"]
    head = ["case"]
    for name in servers:
        head += [f"{name} req/s", f"{name} p50 / p99 ms"]
    head += [f"nginx ÷ {name}" for name in exchange]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for case in CASES:
        row = [case]
        for name in servers:
            s = by[(name, case)]
            row += [f"{s.requests_per_s:,.0f}", f"{s.p50_ms:.2f} / {s.p99_ms:.2f}"]
        for name in exchange:
            row.append(f"{by[('nginx', case)].requests_per_s / by[(name, case)].requests_per_s:.1f}x")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--closures", type=int, default=2000, help="closures in the feed (default 2000)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1],
                        help="exchange serve --workers values to run, e.g. 1 2 (default 1)")
    parser.add_argument("--nginx-workers", type=int, default=1, help="nginx worker_processes (default 1)")
    parser.add_argument("--no-install", action="store_true", help="never apt-get install wrk / nginx")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if not 1 <= args.duration <= 120 or not 1 <= args.connections <= 1000:
        parser.error("bounded runs only: --duration 1..120 s, --connections 1..1000")

    wrk, nginx = ensure_tools(install=not args.no_install)
    tmp = Path(tempfile.mkdtemp(prefix="http-bench-"))
    tmp.chmod(0o755)  # nginx workers run as another user when started by root
    processes: list[tuple[subprocess.Popen[Any], int]] = []
    try:
        data_dir, docroot = tmp / "data", tmp / "www"
        closures = synthetic_closures(args.closures)
        feeds, _ = publish(data_dir, docroot, closures)
        body = feeds[FEED]
        log(f"{FEED}: {len(closures)} closures, {len(body):,} bytes, {len(gzip.compress(body, 9)):,} gzipped")
        script = tmp / "report.lua"
        script.write_text(WRK_REPORT)

        samples: list[Sample] = []
        servers: list[str] = []
        for workers in args.workers:
            name = "exchange" if workers == 1 else f"exchange-{workers}w"
            process, url = start_exchange(data_dir, workers)
            processes.append((process, signal.SIGTERM))
            log(f"{name}: {url} (exchange serve --workers {workers})")
            samples += measure(wrk, script, name, url, body, args)
            stop(process)
            servers.append(name)
        process, url = start_nginx(nginx, tmp, docroot, args.nginx_workers)
        processes.append((process, signal.SIGQUIT))
        log(f"nginx: {url} (worker_processes {args.nginx_workers})")
        samples += measure(wrk, script, "nginx", url, body, args)
        stop(process, signal.SIGQUIT)
        servers.append("nginx")

        info = machine(wrk, nginx)
        print(f"## exchange serve vs nginx: GET /feeds/{FEED} ({len(closures)} closures, {len(body):,} bytes)\n")
        print(table(samples, servers))
        print(f"\nwrk -t{args.threads} -c{args.connections} -d{args.duration:g}s on 127.0.0.1; "
              f"exchange serve --no-tokens --no-access-log; nginx worker_processes {args.nginx_workers}, "
              "access_log off, gzip_static.")
        print(f"Machine: {info['nproc']} x {info['cpu']}; Python {info['python']}; uvicorn {info['uvicorn']}; "
              f"starlette {info['starlette']}; nginx {info['nginx']}; {info['wrk']}; commit {info['commit']}; "
              f"{info['date']}.")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "machine": info,
            "settings": {"duration_s": args.duration, "threads": args.threads, "connections": args.connections,
                         "closures": args.closures, "body_bytes": len(body), "workers": args.workers,
                         "nginx_workers": args.nginx_workers},
            "samples": [asdict(s) for s in samples],
        }, indent=2) + "\n")
        log(f"wrote {args.out}")
        return 0
    finally:
        for process, sig in processes:
            stop(process, sig)
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
