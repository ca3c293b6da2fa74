"""Load under republishing: 200 connections for 60 s against the feeds and the events API of a real
``exchange run`` daemon that syncs and republishes meanwhile, every body checked against its ETag.

    .venv/bin/python -m bench.load_bench [--connections 200] [--duration 60] [--out bench/out/load.json]

On 127.0.0.1 only, in a temp dir removed at the end (``--keep`` keeps it):

1. a local HTTP server plays the Waze feed: every GET gets the next of the 12 shipped snapshots
   (``fixtures/waze/poll-*.json``) with its envelope times moved to now, so each poll is a new
   snapshot; the city's closures are a CSV file (``fixtures/city/closures.csv``) that this script
   rewrites every ``--edit-every`` seconds (one description changes), so the daemon republishes;
2. ``exchange partner add`` and ``exchange operator add`` make the two tokens, then
   ``exchange run`` starts as a subprocess (SQLite store in the temp dir, both sources polled every
   ``--poll-interval`` seconds, the server on a free port with partner tokens required);
3. ``--clients`` processes (2 by default) share ``--connections`` connections for ``--duration``
   seconds, one asyncio task per keep-alive connection: a lean HTTP/1.1 client on asyncio streams
   (``--client raw``, the default: httpx.AsyncClient, ``--client httpx``, spends about 1.5 ms of
   CPU per request, 6x the server's, so on 2 shared cores it measured itself). Each request is one of:
   a feed (``cifs.xml``, ``cifs.json``, ``wzdx.geojson``; partner token) plain, gzip, or
   conditional (``If-None-Match`` with the last ETag that connection saw, plain or gzip); a page
   of ``/api/events`` (following ``next_cursor`` now and then) or ``/api/stats`` (operator token);
4. every body is parsed (XML with lxml, JSON) and its ETag checked: an ETag names exactly one
   body (ETag -> sha256 of the identity body, gzip bodies decompressed and compared under the
   same ETag without its ``-gzip`` suffix), across all connections and processes; a 304 must
   carry the ETag that was sent. A 5xx, a connection error, an unexpected status, a body that
   does not parse and an ETag naming two bodies are errors, counted and reported;
5. it prints a table (requests, requests/s, p50/p99 latency per route group), the errors, the
   publications seen (distinct ETags of ``cifs.xml`` served, and the daemon's publish and sync
   runs from the store) and the machine with its load average, and writes it all to ``--out``.

Exit status 1 when any error was counted. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import hashlib
import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

import httpx
from lxml import etree

from bench.http_bench import free_port, log, stop, wait_until_up
from bench.machine import machine_info
from tests.support.helpers import QuietHandler, http_server

REPO_DIR = Path(__file__).resolve().parents[1]
OUT = REPO_DIR / "bench" / "out" / "load.json"
POLLS = sorted((REPO_DIR / "fixtures" / "waze").glob("poll-*.json"))
CITY_CSV = REPO_DIR / "fixtures" / "city" / "closures.csv"
FEEDS = ("cifs.xml", "cifs.json", "wzdx.geojson")
GROUPS = ("feed plain", "feed gzip", "feed conditional", "api events", "api stats")
#: bounds on every loop, besides the clock: no task makes more requests than this
MAX_REQUESTS_PER_TASK = 1_000_000
#: never parse XML with a DTD or entities, whatever the server sent
XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)


# --------------------------------------------------------------------------- the upstreams


class WazeUpstream(QuietHandler):
    """Each GET: the next shipped snapshot, its envelope moved to now (a new snapshot every poll)."""

    snapshots: ClassVar[list[dict[str, Any]]] = []
    served = 0
    lock = threading.Lock()

    def do_GET(self) -> None:
        with WazeUpstream.lock:
            snapshot = dict(WazeUpstream.snapshots[WazeUpstream.served % len(WazeUpstream.snapshots)])
            WazeUpstream.served += 1
        now = time.time_ns() // 1_000_000
        snapshot["startTimeMillis"], snapshot["endTimeMillis"] = now - 60_000, now
        self.answer(200, json.dumps(snapshot).encode(), {"Content-Type": "application/json"})


class CityFile:
    """The city's CSV export, rewritten whole (a temp file renamed over it) with one description changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines = CITY_CSV.read_text(encoding="utf-8").splitlines()
        self.edits = 0
        self.write()

    def write(self) -> None:
        lines = list(self.lines)
        if self.edits:
            # the first closure's description names the edit: a changed event, so a new publication
            lines[1] = lines[1].replace('"Utility work & paving"', f'"Utility work & paving (revision {self.edits})"')
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
        temporary.replace(self.path)

    def edit(self) -> None:
        self.edits += 1
        self.write()


# --------------------------------------------------------------------------- the daemon


def config_text(tmp: Path, waze_url: str, port: int, interval_s: int) -> str:
    return (
        f'data_dir = "{tmp / "data"}"\n'
        'timezone = "America/Los_Angeles"\n'
        f'[serve]\nhost = "127.0.0.1"\nport = {port}\ntokens = true\n'
        # the publish clock's floor is 10 s; the city's edits republish on their own poll anyway
        f"[publish]\ninterval_s = {max(10, interval_s)}\n"
        f'[[sources]]\nname = "waze"\nkind = "waze-feed"\nurl = "{waze_url}/waze.json"\n'
        f"interval_s = {interval_s}\njitter_s = 0\nretries = 0\n"
        f'[[sources]]\nname = "city-closures"\nkind = "csv"\nurl = "{tmp / "closures.csv"}"\nnamespace = "city"\n'
        'geometry = { type = "wkt", column = "wkt" }\nmapping = { id = "id" }\n'
        f"interval_s = {interval_s}\njitter_s = 0\n"
    )


def daemon_env(config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
    env["EXCHANGE_CONFIG"] = str(config)  # INFO: its "serving" line and one line per run, no access log
    return env


def new_token(config: Path, kind: str) -> str:
    """``exchange partner|operator add load-bench``: the token is the first line on stdout."""
    done = subprocess.run([sys.executable, "-m", "exchange", kind, "add", "load-bench"], env=daemon_env(config),
                          cwd=REPO_DIR, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        sys.exit(f"load_bench: exchange {kind} add failed: {done.stderr.strip()}")
    return done.stdout.splitlines()[0].strip()


class Daemon:
    """``exchange run`` in a subprocess; its stderr lines are kept (errors in them are reported)."""

    def __init__(self, config: Path) -> None:
        # no access log: 200 connections would write a line per request to the pipe read here
        self.process = subprocess.Popen([sys.executable, "-m", "exchange", "run", "--no-access-log"],
                                        env=daemon_env(config), cwd=REPO_DIR, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.url = ""
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            if not self.url and (found := re.search(r"serving (http://[0-9.:]+)/feeds/", line)):
                self.url = found.group(1)

    def wait_serving(self, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while not self.url and time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit("load_bench: exchange run exited:\n" + "\n".join(self.lines[-20:]))
            time.sleep(0.1)
        if not self.url:
            sys.exit("load_bench: exchange run did not start serving")
        return self.url

    def cpu_s(self) -> float:
        """User + system CPU seconds of the daemon so far (/proc/PID/stat, clock ticks)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        stop(self.process)
        self.reader.join(timeout=5)


# --------------------------------------------------------------------------- one client process


class Tally:
    """What one client process saw: latencies per group, errors by kind, and ETag -> body digests."""

    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.statuses: dict[str, Counter[int]] = defaultdict(Counter)
        self.errors: Counter[str] = Counter()
        self.error_examples: list[str] = []
        self.digests: dict[str, str] = {}  # ETag (without -gzip) -> sha256 of the identity body
        self.feed_etags: dict[str, set[str]] = defaultdict(set)
        self.bytes = 0

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.error_examples) < 20:
            self.error_examples.append(f"{kind}: {detail}"[:300])

    def body_for(self, feed: str, etag: str, identity: bytes) -> None:
        """The ETag must name exactly one body: the first body seen under it is the only one allowed."""
        key = etag.removesuffix('-gzip"') + '"' if etag.endswith('-gzip"') else etag
        digest = hashlib.sha256(identity).hexdigest()
        known = self.digests.setdefault(key, digest)
        if known != digest:
            self.error("etag names two bodies", f"{feed} {etag}")
        self.feed_etags[feed].add(key)

    def as_dict(self) -> dict[str, Any]:
        return {"latency": dict(self.latency), "statuses": {k: dict(v) for k, v in self.statuses.items()},
                "errors": dict(self.errors), "error_examples": self.error_examples, "digests": self.digests,
                "feed_etags": {k: sorted(v) for k, v in self.feed_etags.items()}, "bytes": self.bytes}


def check_feed_body(feed: str, body: bytes) -> None:
    if feed.endswith(".xml"):
        root = etree.fromstring(body, XML_PARSER)
        if root.getroottree().docinfo.doctype:  # type: ignore[union-attr]
            raise ValueError("a DOCTYPE in a served feed")
    else:
        document = json.loads(body)
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes  # as sent: a gzip body is still compressed


class ConnectionFailed(Exception):
    """The connection was refused, reset or closed mid-answer, or the answer was not HTTP/1.1."""


class RawConnection:
    """One keep-alive HTTP/1.1 connection over asyncio streams: status line, headers, and a body
    of Content-Length bytes or chunked (anything else is an error). About a third of httpx's CPU
    per request, so on 2 shared cores more of the CPU goes to the server under test."""

    def __init__(self, base: str, timeout: float = 30.0) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.timeout = timeout
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, path: str, headers: dict[str, str]) -> Reply:
        try:
            return await asyncio.wait_for(self._get(path, headers), self.timeout)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            await self.aclose()
            raise ConnectionFailed(f"{type(exc).__name__}: {exc}") from exc

    async def _get(self, path: str, headers: dict[str, str]) -> Reply:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        lines = [f"GET {path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                 *(f"{name}: {value}" for name, value in headers.items())]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        status_line = await reader.readuntil(b"\r\n")
        version, status, _reason = status_line.decode("latin-1").split(" ", 2)
        if version != "HTTP/1.1":
            raise ValueError(f"not HTTP/1.1: {status_line!r}")
        received: dict[str, str] = {}
        while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
            name, value = line.decode("latin-1").split(":", 1)
            received[name.strip().lower()] = value.strip()
        code = int(status)
        if code in (204, 304):
            body = b""
        elif "content-length" in received:
            body = await reader.readexactly(int(received["content-length"]))
        elif received.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            await reader.readuntil(b"\r\n")  # no trailers are sent here
            body = b"".join(chunks)
        else:
            raise ValueError("an answer without Content-Length or chunked framing")
        if received.get("connection", "").lower() == "close":
            await self.aclose()
        return Reply(code, received, body)

    async def aclose(self) -> None:
        if self.streams is not None:
            writer = self.streams[1]
            self.streams = None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class HttpxConnection:
    """The same over httpx.AsyncClient (one connection), for comparison: ``--client httpx``."""

    def __init__(self, base: str, timeout: float = 30.0) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self.client = httpx.AsyncClient(base_url=base, limits=limits, timeout=httpx.Timeout(timeout))

    async def get(self, path: str, headers: dict[str, str]) -> Reply:
        try:
            # stream + aiter_raw: the gzip body as sent, decompressed by the check (httpx would decode it)
            async with self.client.stream("GET", path, headers=headers) as response:
                raw = b"".join([chunk async for chunk in response.aiter_raw()])
        except httpx.HTTPError as exc:
            raise ConnectionFailed(f"{type(exc).__name__}: {exc}") from exc
        return Reply(response.status_code, {k.lower(): v for k, v in response.headers.items()}, raw)

    async def aclose(self) -> None:
        await self.client.aclose()


CLIENTS: dict[str, Any] = {"raw": RawConnection, "httpx": HttpxConnection}


async def feed_request(conn: Any, token: str, tally: Tally, rng: random.Random,
                       last_etag: dict[tuple[str, bool], str]) -> None:
    feed = rng.choice(FEEDS)
    zipped = rng.random() < 0.5
    conditional = (feed, zipped) in last_etag and rng.random() < 0.5
    group = "feed conditional" if conditional else ("feed gzip" if zipped else "feed plain")
    headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip" if zipped else "identity"}
    if conditional:
        headers["If-None-Match"] = last_etag[(feed, zipped)]
    began = time.perf_counter()
    reply = await conn.get(f"/feeds/{feed}", headers)
    tally.latency[group].append(time.perf_counter() - began)
    tally.statuses[group][reply.status] += 1
    tally.bytes += len(reply.body)
    etag = reply.headers.get("etag", "")
    if reply.status == 304:
        if etag != headers.get("If-None-Match"):
            tally.error("304 without the ETag sent", f"{feed} sent {headers.get('If-None-Match')} got {etag}")
        return
    if reply.status != 200:
        tally.error(f"status {reply.status}", f"{group} {feed}")
        return
    encoding = reply.headers.get("content-encoding", "")
    if zipped != (encoding == "gzip") or zipped != etag.endswith('-gzip"'):
        tally.error("wrong encoding or ETag variant", f"{feed} asked gzip={zipped} got {encoding!r} {etag}")
        return
    try:
        identity = gzip.decompress(reply.body) if zipped else reply.body
        check_feed_body(feed, identity)
    except Exception as exc:  # any unreadable body is what this benchmark counts
        tally.error("body does not parse", f"{feed} {etag}: {type(exc).__name__}: {exc}")
        return
    tally.body_for(feed, etag, identity)
    last_etag[(feed, zipped)] = etag


async def api_request(conn: Any, token: str, tally: Tally, rng: random.Random, cursor: list[str]) -> None:
    if rng.random() < 0.25:
        group, path = "api stats", "/api/stats"
    else:
        group = "api events"
        params = {"limit": str(rng.choice((50, 100, 200)))}
        if cursor and rng.random() < 0.5:
            params["cursor"] = cursor.pop()
        path = f"/api/events?{urlencode(params)}"
    began = time.perf_counter()
    reply = await conn.get(path, {"Authorization": f"Bearer {token}", "Accept-Encoding": "identity"})
    tally.latency[group].append(time.perf_counter() - began)
    tally.statuses[group][reply.status] += 1
    tally.bytes += len(reply.body)
    if reply.status != 200:
        tally.error(f"status {reply.status}", f"{group} {reply.body[:120]!r}")
        return
    try:
        document = json.loads(reply.body)
        if group == "api events":
            if document.get("type") != "FeatureCollection" or not isinstance(document.get("features"), list):
                raise ValueError("not a FeatureCollection")
            if document.get("next_cursor"):
                cursor[:] = [document["next_cursor"]]
        elif not isinstance(document, dict):
            raise ValueError("not a JSON object")
    except Exception as exc:  # any unreadable body is what this benchmark counts
        tally.error("body does not parse", f"{group}: {type(exc).__name__}: {exc}")


async def connection(base: str, partner: str, operator: str, deadline: float, seed: int, tally: Tally,
                     api_share: float, client: str) -> None:
    """One connection's loop: each task holds its own keep-alive TCP connection."""
    rng = random.Random(seed)
    last_etag: dict[tuple[str, bool], str] = {}
    cursor: list[str] = []
    conn = CLIENTS[client](base)
    try:
        for _ in range(MAX_REQUESTS_PER_TASK):
            if time.monotonic() >= deadline:
                return
            try:
                if rng.random() < api_share:
                    await api_request(conn, operator, tally, rng, cursor)
                else:
                    await feed_request(conn, partner, tally, rng, last_etag)
            except ConnectionFailed as exc:
                tally.error("connection error", str(exc))
                await asyncio.sleep(0.05)  # a refused connection must not spin
    finally:
        await conn.aclose()


def client_process(base: str, partner: str, operator: str, tasks: int, start_at: float, duration: float,
                   seed: int, api_share: float, client: str, results: Any) -> None:
    """One load-generating process: ``tasks`` connections until the shared deadline."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops everyone in order

    async def main() -> Tally:
        tally = Tally()
        await asyncio.sleep(max(0.0, start_at - time.time()))
        deadline = time.monotonic() + duration
        await asyncio.gather(*(connection(base, partner, operator, deadline, seed * 10_000 + i, tally, api_share,
                                          client)
                               for i in range(tasks)))
        return tally

    tally = asyncio.run(main())
    # what the load generator itself cost: next to the daemon's CPU, it says which side was bound
    results.put({**tally.as_dict(), "cpu_s": time.process_time()})


# --------------------------------------------------------------------------- the report


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    latency: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, Counter[int]] = defaultdict(Counter)
    errors: Counter[str] = Counter()
    examples: list[str] = []
    digests: dict[str, str] = {}
    feed_etags: dict[str, set[str]] = defaultdict(set)
    total_bytes = 0
    for part in parts:
        for group, values in part["latency"].items():
            latency[group] += values
        for group, counts in part["statuses"].items():
            statuses[group].update({int(k): v for k, v in counts.items()})
        errors.update(part["errors"])
        examples += part["error_examples"]
        for etag, digest in part["digests"].items():
            if digests.setdefault(etag, digest) != digest:  # two processes saw two bodies under one ETag
                errors["etag names two bodies"] += 1
                examples.append(f"etag names two bodies: {etag} (across client processes)")
        for feed, etags in part["feed_etags"].items():
            feed_etags[feed] |= set(etags)
        total_bytes += part["bytes"]
    return {"latency": latency, "statuses": statuses, "errors": errors, "examples": examples[:20],
            "feed_etags": feed_etags, "bytes": total_bytes}


def store_runs(tmp: Path, since_ms: int) -> dict[str, Any]:
    """The daemon's own record: publish and sync runs during the load (read-only, after it stopped)."""
    with sqlite3.connect(f"file:{tmp / 'data' / 'exchange.db'}?mode=ro", uri=True) as db:
        publish = dict(db.execute("SELECT status, count(*) FROM publish_runs WHERE at_ms >= ? GROUP BY status",
                                  (since_ms,)).fetchall())
        sync = [list(r) for r in db.execute("SELECT source, status, count(*) FROM sync_runs WHERE started_ms >= ? "
                                            "GROUP BY source, status ORDER BY source, status", (since_ms,))]
    return {"publish_runs": publish, "sync_runs": sync}


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| route group | requests | req/s | p50 ms | p99 ms | statuses |", "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items()))
        lines.append(f"| {r['group']} | {r['requests']:,} | {r['rps']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
                     f"| {statuses} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


@contextmanager
def temp_dir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="load-bench-"))
    try:
        yield path
    finally:
        if keep:
            log(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=200, help="concurrent keep-alive connections")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--out", type=Path, default=OUT, help="the JSON report (default bench/out/load.json)")
    parser.add_argument("--clients", type=int, default=2, help="load-generating processes sharing the connections")
    parser.add_argument("--poll-interval", type=int, default=5, help="the daemon's source and publish interval, s")
    parser.add_argument("--edit-every", type=float, default=10.0, help="rewrite the city CSV every N s")
    parser.add_argument("--api-share", type=float, default=0.3, help="share of requests to the events API")
    parser.add_argument("--client", choices=sorted(CLIENTS), default="raw",
                        help="raw: a lean HTTP/1.1 client on asyncio streams; httpx: httpx.AsyncClient")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (store, config)")
    args = parser.parse_args()
    if not 1 <= args.connections <= 2000 or not 1 <= args.duration <= 3600 or not 1 <= args.clients <= 16:
        parser.error("--connections 1-2000, --duration 1-3600 s, --clients 1-16")
    load_before = os.getloadavg()
    WazeUpstream.snapshots = [json.loads(path.read_bytes()) for path in POLLS]

    with temp_dir(args.keep) as tmp, http_server(WazeUpstream) as waze_url:
        city = CityFile(tmp / "closures.csv")
        config = tmp / "exchange.toml"
        config.write_text(config_text(tmp, waze_url, free_port(), args.poll_interval), encoding="utf-8")
        subprocess.run([sys.executable, "-m", "exchange", "db", "upgrade"], env=daemon_env(config), cwd=REPO_DIR,
                       capture_output=True, timeout=120)
        partner, operator = new_token(config, "partner"), new_token(config, "operator")
        daemon = Daemon(config)
        workers: list[Any] = []  # spawn-context processes
        try:
            base = daemon.wait_serving()
            log(f"exchange run serving {base}; waiting for its first publication ...")
            deadline = time.monotonic() + 120
            while httpx.get(f"{base}/feeds/cifs.xml", headers={"Authorization": f"Bearer {partner}"},
                            timeout=10).status_code != 200:
                if time.monotonic() > deadline or daemon.process.poll() is not None:
                    sys.exit("load_bench: no publication:\n" + "\n".join(daemon.lines[-20:]))
                time.sleep(0.5)
            wait_until_up(f"{base}/health")
            since_ms = time.time_ns() // 1_000_000
            context = multiprocessing.get_context("spawn")
            results = context.Queue()
            start_at = time.time() + 3.0  # every process starts its connections together
            shares = [args.connections // args.clients + (i < args.connections % args.clients)
                      for i in range(args.clients)]
            for i, tasks in enumerate(shares):
                worker = context.Process(target=client_process, args=(base, partner, operator, tasks, start_at,
                                                                      args.duration, i + 1, args.api_share,
                                                                      args.client, results))
                worker.start()
                workers.append(worker)
            log(f"{args.connections} connections in {args.clients} processes for {args.duration:.0f} s ...")
            time.sleep(max(0.0, start_at - time.time()))
            began = time.monotonic()
            daemon_cpu_before = daemon.cpu_s()
            load_samples = []
            next_edit = began + args.edit_every
            while time.monotonic() < began + args.duration:
                if time.monotonic() >= next_edit:
                    city.edit()
                    next_edit += args.edit_every
                load_samples.append(os.getloadavg()[0])
                time.sleep(0.5)
            daemon_cpu = daemon.cpu_s() - daemon_cpu_before
            parts = [results.get(timeout=120) for _ in workers]
            for worker in workers:
                worker.join(timeout=30)
            # requests/s over the load's duration: no request starts after it, and the few in flight
            # at its end finish within their latency
            wall = time.monotonic() - began
        finally:
            for worker in workers:
                if worker.is_alive():
                    worker.terminate()
                    worker.join(timeout=5)
            daemon.stop()
        runs = store_runs(tmp, since_ms)
        daemon_problems = [line for line in daemon.lines if re.search(r"\b(ERROR|CRITICAL|Traceback)\b", line)]

    merged = merge(parts)
    rows = []
    for group in GROUPS:
        values = merged["latency"].get(group, [])
        rows.append({"group": group, "requests": len(values), "rps": len(values) / args.duration,
                     "p50_ms": percentile(values, 0.50) * 1000, "p99_ms": percentile(values, 0.99) * 1000,
                     "statuses": dict(merged["statuses"].get(group, {}))})
    everything = [v for values in merged["latency"].values() for v in values]
    rows.append({"group": "all", "requests": len(everything), "rps": len(everything) / args.duration,
                 "p50_ms": percentile(everything, 0.50) * 1000, "p99_ms": percentile(everything, 0.99) * 1000,
                 "statuses": dict(sum(merged["statuses"].values(), Counter()))})
    errors = sum(merged["errors"].values())
    report = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "wall_s": wall,
        "routes": rows,
        "errors": {"total": errors, "by_kind": dict(merged["errors"]), "examples": merged["examples"]},
        "publications_seen": {feed: len(etags) for feed, etags in merged["feed_etags"].items()},
        "city_edits": city.edits,
        "waze_polls_served": WazeUpstream.served,
        "daemon": {**runs, "log_problems": daemon_problems[:50]},
        "bytes_received": merged["bytes"],
        "cpu_s": {"daemon": daemon_cpu, "clients": [part["cpu_s"] for part in parts],
                  "available": args.duration * (os.cpu_count() or 1)},
        "machine": machine_info(load_average_before=load_before, load_average_during_max=max(load_samples),
                                load_average_during_mean=sum(load_samples) / len(load_samples),
                                load_average_after=os.getloadavg()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")

    print(table(rows))
    print()
    print(f"errors: {errors} {dict(merged['errors']) or ''}")
    for example in merged["examples"][:5]:
        print(f"  {example}")
    print(f"publications seen (distinct ETags served): {report['publications_seen']}; city CSV edits: {city.edits}; "
          f"Waze snapshots served: {WazeUpstream.served}")
    print(f"daemon during the load: publish runs {runs['publish_runs']}, sync runs {runs['sync_runs']}, "
          f"{len(daemon_problems)} error line(s) in its log")
    cpu = report["cpu_s"]
    print(f"CPU seconds during the {args.duration:.0f} s: daemon {daemon_cpu:.1f}, load generator "
          f"{sum(cpu['clients']):.1f} ({args.clients} processes), of {cpu['available']:.0f} on {os.cpu_count()} cores")
    m = report["machine"]
    print(f"machine: {m['nproc']} x {m['cpu']}, Python {m['python']}, commit {m['commit']}, {m['date']}; "
          f"load average before {load_before[0]:.2f}, during max {m['load_average_during_max']:.2f}")
    print(f"wrote {args.out}")
    return 1 if errors or daemon_problems else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # everything was stopped and removed on the way out (the finally blocks)
        log("load_bench: interrupted; the daemon and the servers are stopped")
        sys.exit(130)
