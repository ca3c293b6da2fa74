"""``exchange serve``: the feed server partners poll (uvicorn, one process or several workers)."""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
from typing import TYPE_CHECKING, Annotated, Any

import typer

from exchange.cli import context
from exchange.errors import ExchangeError
from exchange.logs import show_access_log
from exchange.serving import listen, listening_url, uvicorn_server

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["serve", "worker_app"]

#: how ``exchange serve --workers N`` hands its settings to the worker processes (spawned, not forked)
_WORKER_SETTINGS = "EXCHANGE_SERVE_SETTINGS"


def serve(
    host: Annotated[
        str | None,
        typer.Option(help="Address to listen on. Keep 127.0.0.1 behind a reverse proxy (nginx does TLS). "
                     "Default: serve.host (127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=0, max=65535,
                     help="TCP port; 0 picks a free one (the URL is printed on stderr). Default: serve.port (8080)."),
    ] = None,
    tokens: Annotated[
        bool | None,
        typer.Option(
            "--tokens/--no-tokens",
            help="Require a partner token (see `exchange partner add`). --no-tokens serves the feeds openly. "
            "Default: serve.tokens (true).",
        ),
    ] = None,
    refresh_s: Annotated[
        float,
        typer.Option(min=0.05, max=3600, help="Seconds between checks for a new publication or a revoked partner."),
    ] = 1.0,
    flush_s: Annotated[
        float,
        typer.Option(min=0.1, max=3600, help="Seconds between writes of the download and poll counters to the store."),
    ] = 5.0,
    cache_control: Annotated[
        str | None,
        typer.Option(
            help="Cache-Control of the feeds. Default: 'public, max-age=60', or 'private, max-age=60' with "
            "--tokens (a shared cache must not hand token-protected feeds to anyone).",
        ),
    ] = None,
    access_log: Annotated[
        bool | None,
        typer.Option(
            "--access-log/--no-access-log",
            help="Log every request (tokens in URLs are redacted). Default: only with -v (uvicorn's access log is "
            "at INFO, which the libraries' loggers show only with -v).",
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Worker processes sharing the port (each holds its own copy).")
    ] = 1,
) -> None:
    """Serve the published feeds over HTTP until SIGTERM or Ctrl-C.

    Paths: /feeds/cifs.xml, /feeds/cifs.json, /feeds/wzdx.geojson, /feeds/datex2.xml, /feeds/cwz.geojson
    (what the publish step stored, for the targets in publish.targets;
    without tokens readable from any web page: CORS), /feeds (the catalogue: HTML, JSON, and DCAT-AP
    JSON-LD at /feeds/catalog.jsonld for open-data portals; [catalogue] in the config; / leads there),
    /health (for load balancers: 200 while a publication can be served; JSON with every source's and
    feed's state), /health/sources (for monitoring: 503 while a required source is Offline or
    SchemaError, a feed is older than publish.max_age_s, the store is unreachable, the daemon runs
    without its road network or cannot write publish.out_dir) and /metrics (Prometheus; keep it off the
    internet). ETag / Last-Modified revalidation and
    gzip are built in. Tokens go in `Authorization: Bearer`, `X-Partner-Token`, `?token=` or HTTP
    Basic (the password). Downloads (200 with the body) and polls (304 or HEAD) per partner and
    feed are counted in memory, written to the store every --flush-s and at shutdown; see
    `exchange partner list`.

    For city staff: /map (the live operator map) and /api/events, /api/events/{id}, /api/stats
    (the events API; schema at /openapi.json, Swagger UI at /docs), behind operator tokens
    (`exchange operator add`; sign in at /login) unless [web] access = "open".
    """
    chosen = context.state.config.serve
    host = host or chosen.host
    port = chosen.port if port is None else port
    tokens = chosen.tokens if tokens is None else tokens
    engine = context.engine()  # opens the store and checks its schema before anything listens
    try:
        _serve(engine, host, port, tokens, refresh_s, flush_s, cache_control, access_log, workers)
    finally:
        engine.dispose()


def _serve(engine: Any, host: str, port: int, tokens: bool, refresh_s: float, flush_s: float,
           cache_control: str | None, access_log: bool | None, workers: int) -> None:
    sock = listen(host, port)
    with sock:
        _run_uvicorn(engine, sock, tokens, refresh_s, flush_s, cache_control, access_log, workers)


def _run_uvicorn(engine: Any, sock: socket.socket, tokens: bool, refresh_s: float, flush_s: float,
                 cache_control: str | None, access_log: bool | None, workers: int) -> None:
    import uvicorn

    from exchange.server import create_app

    state = context.state
    config = state.config
    url = listening_url(sock)
    mode = "tokens required" if tokens else "no tokens"
    if access_log:
        show_access_log()
    uvicorn_options: dict[str, Any] = {
        # keep the CLI's logging set-up (exchange.logs: format, level from the config and -v): no
        # config of uvicorn's own, and no level it would set on its loggers
        "log_config": None, "log_level": None,
        "access_log": access_log is not False, "lifespan": "on", "server_header": False,
    }
    if workers == 1:
        app = create_app(engine, require_token=tokens, refresh_s=refresh_s, flush_s=flush_s,
                         cache_control=cache_control, config=config)
        ready = f"serving {url}/feeds/ ({mode}; refresh every {refresh_s:g}s)"
        server = uvicorn_server(uvicorn.Config(app, **uvicorn_options),
                                lambda: print(ready, file=sys.stderr, flush=True))
        server.run(sockets=[sock])
        if not server.started:
            raise ExchangeError("the feed server did not start (see the log above)")
        return
    from uvicorn.supervisors import Multiprocess

    engine.dispose()  # each worker opens its own
    os.environ[_WORKER_SETTINGS] = json.dumps({
        "database_url": config.database_url, "require_token": tokens, "refresh_s": refresh_s,
        "flush_s": flush_s, "cache_control": cache_control, "log_level": config.log_level,
        "verbose": state.verbose, "log_format": state.log_format or config.log_format, "access_log": access_log,
        "config": config.model_dump(mode="json"),
    })
    uv_config = uvicorn.Config("exchange.cli.serve:worker_app", factory=True, workers=workers, **uvicorn_options)
    print(f"serving {url}/feeds/ ({mode}; {workers} workers; refresh every {refresh_s:g}s)", file=sys.stderr)
    from exchange.metrics import MULTIPROC_ENV

    if os.environ.get(MULTIPROC_ENV):  # the operator's own directory (cleared by them)
        Multiprocess(uv_config, sockets=[sock]).run()
        return
    # /metrics of any worker sums the request counters of all (prometheus-client's multiprocess mode)
    with tempfile.TemporaryDirectory(prefix="exchange-metrics-") as shared:
        os.environ[MULTIPROC_ENV] = shared
        try:
            Multiprocess(uv_config, sockets=[sock]).run()
        finally:
            del os.environ[MULTIPROC_ENV]


def worker_app() -> Starlette:
    """The app of one ``--workers`` process (uvicorn factory): settings come from the parent."""
    from exchange.config import Config
    from exchange.db import open_store
    from exchange.redaction import register_url_password
    from exchange.server import create_app

    settings = json.loads(os.environ[_WORKER_SETTINGS])
    context.setup_logging(settings["log_level"], settings["verbose"], log_format=settings["log_format"])
    if settings["access_log"]:
        show_access_log()
    register_url_password(settings["database_url"])
    engine = open_store(settings["database_url"])
    return create_app(engine, require_token=settings["require_token"], refresh_s=settings["refresh_s"],
                      flush_s=settings["flush_s"], cache_control=settings["cache_control"],
                      config=Config.model_validate(settings["config"]))
