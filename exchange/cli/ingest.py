"""``exchange sync``, ``exchange replay`` and ``exchange run``: bring the sources' events into the store."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from exchange.cli import context
from exchange.config import Config
from exchange.errors import ExchangeError, NetworkElsewhere, NotFound, UsageError
from exchange.logs import show_access_log
from exchange.model import Kind
from exchange.output import RunFormat, terminal_safe, write_records

__all__ = ["replay", "run", "sync"]

def sync(
    sources: Annotated[
        list[str] | None, typer.Argument(help="Source names from the config. Default: every enabled source.")
    ] = None,
    fmt: Annotated[
        RunFormat, typer.Option("--format", "-f", help="table: summary on stderr; json/jsonl: runs on stdout.")
    ] = RunFormat.table,
) -> None:
    """Fetch each source once, reconcile it with the store, record a sync run; republish the feeds
    when a city source changed the city's events.

    Exit 1 if any source failed (the others are still synced; the store is unchanged for a failed
    one) or the publication after a change failed (the last good feeds stay served).
    """
    from exchange.cycle import sync_then_publish

    config = context.state.config
    chosen = [config.source(name) for name in sources] if sources else [s for s in config.sources if s.enabled]
    if not chosen and config.sources:
        names = ", ".join(source.name for source in config.sources)
        raise UsageError(f"every source is disabled in the config ({names}): enable one, or name it "
                         "(`exchange sync NAME` syncs a disabled source once)")
    if not chosen:
        raise UsageError("no sources configured; add a [[sources]] entry or pass --config")
    engine = context.engine()
    placement = context.placement()
    results, failed = [], 0
    for source_config in chosen:
        try:
            cycle = sync_then_publish(engine, config, source_config, placement)
        except ExchangeError as exc:
            if exc.exit_code == 2:
                raise
            failed += 1
            print(f"error: {source_config.name}: {exc.message}", file=sys.stderr)
            continue
        results.append(cycle.sync)
        _report(cycle.sync)
        if cycle.published is not None:
            print(cycle.published.summary(), file=sys.stderr)
        if cycle.publish_error is not None:
            failed += 1
            print(f"error: publishing after {source_config.name}: {cycle.publish_error}", file=sys.stderr)
    if fmt is not RunFormat.table:
        write_records(
            ({"run_id": r.run_id, "source": r.source, "status": r.status, **r.counts(), "message": r.message}
             for r in results),
            fmt, columns=(),
        )
    if failed:
        raise typer.Exit(1)


def _report(result: Any) -> None:
    print(terminal_safe(result.summary()), file=sys.stderr)
    for error in result.item_errors[:5]:  # ids and reasons quote the upstream: shown, never obeyed
        verb = "skipped" if error.out_of_scope else "rejected"
        kind = error.kind if error.kind != Kind.CITY.value else None  # a city source's items are all "city"
        shown = " ".join(part for part in (kind, error.source_id or "(no id)") if part)
        print(terminal_safe(f"  {verb} {shown}: {error.reason}"), file=sys.stderr)
    if len(result.item_errors) > 5:
        print(f"  ... and {len(result.item_errors) - 5} more (exchange inspect runs --format json)", file=sys.stderr)


def replay(
    paths: Annotated[list[Path], typer.Argument(help="Snapshot files, or directories of *.json / *.xml files.")],
    source_name: Annotated[
        str | None, typer.Option("--source", "-s", help="Source to replay as. Default: the first Waze source.")
    ] = None,
) -> None:
    """Feed saved snapshots through the sync pipeline, in order (backfill, demos, tests).

    Files of a directory are taken in name order. Works without a config file (the default source
    is a Waze feed named 'waze'). Every file is processed; exit 1 if any could not be read.
    """
    from adapters import build_source
    from exchange.sync import ingest_payload

    files = _expand(paths)
    config = context.state.config
    if source_name:
        source_config = config.source(source_name)
    else:
        waze = [s for s in config.sources if s.kind == "waze-feed"]
        if not waze:
            raise UsageError("no Waze source in the config; pass --source NAME")
        source_config = waze[0]
    source = build_source(source_config, zone=config.zone, http=config.http)
    engine = context.engine()
    placement = context.placement()
    failures = 0
    totals: dict[str, int] = {}
    def one(path: Path) -> Any:
        return _replay_one(engine, source, config, ingest_payload, path, placement)

    for path, result in _with_progress(files, one):
        if isinstance(result, ExchangeError):
            failures += 1
            print(f"error: {path}: {result.message}", file=sys.stderr)
            continue
        for key, value in result.counts().items():
            totals[key] = totals.get(key, 0) + value
        if context.state.verbose or len(files) == 1:
            _report(result)
        elif result.item_errors:
            print(terminal_safe(f"{path.name}: {len(result.item_errors)} item(s) rejected, e.g. "
                                f"{result.item_errors[0].source_id}: {result.item_errors[0].reason}"),
                  file=sys.stderr)
    summary = ", ".join(f"{value} {key}" for key, value in totals.items())
    print(f"replayed {len(files) - failures} of {len(files)} file(s) into {source.name}: {summary}", file=sys.stderr)
    if failures:
        raise typer.Exit(1)


def _replay_one(engine: Any, source: Any, config: Config, ingest: Any, path: Path, placement: Any) -> Any:
    try:
        body = path.read_bytes()
    except OSError as exc:
        return ExchangeError(f"cannot read file: {exc.strerror or exc}")
    try:
        return ingest(engine, source, body, config.lifecycle, placement=placement)
    except ExchangeError as exc:
        if isinstance(exc, NotFound) or exc.exit_code == 2:
            raise
        return exc


def _expand(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in {".json", ".xml"} and p.is_file())
            if not found:
                raise UsageError(f"{path} holds no .json or .xml snapshot")
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise NotFound(f"{path} does not exist")
    return files


def _with_progress(files: list[Path], work: Any) -> Any:
    if not sys.stderr.isatty() or len(files) < 2:
        for path in files:
            yield path, work(path)
        return
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        task = progress.add_task("replaying", total=len(files))
        for path in files:
            yield path, work(path)
            progress.advance(task)


def run(
    host: Annotated[
        str | None, typer.Option(help="Address the feed server listens on. Default: serve.host (127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Feed server port; 0 picks a free one. Default: serve.port (8080)."),
    ] = None,
    serve: Annotated[
        bool,
        typer.Option("--serve/--no-serve",
                     help="Serve the feeds in this process (default). --no-serve when a separate `exchange serve` "
                     "(or several) serves them."),
    ] = True,
    tokens: Annotated[
        bool | None,
        typer.Option("--tokens/--no-tokens", help="Require a partner token for the feeds. Default: serve.tokens."),
    ] = None,
    access_log: Annotated[
        bool | None,
        typer.Option("--access-log/--no-access-log",
                     help="Log every request (tokens redacted). Default: only with -v, as `exchange serve`."),
    ] = None,
) -> None:
    """Run as a daemon until SIGTERM or Ctrl-C: poll, publish, tell, and serve the feeds.

    Every enabled source is polled on its interval with jitter (never two runs of a source at once,
    late runs coalesced; a failing source is polled ever less often, up to failing_max_interval_s).
    City changes are published at once; the publish clock ages ended closures out and renews the
    feeds before publish.max_age_s. Source and feed states, newly held-back events and closures
    Waze does not show are logged once and POSTed to notify.webhook_url.

    The feeds and their catalogue (/feeds), /health (load balancers: 200 while a publication can be
    served), /health/sources (monitoring: 503 while a required source is Offline or SchemaError, or a
    feed is stale), /metrics, and for city staff the operator map (/map) and the events API (/api/*,
    /docs) are served on serve.host:serve.port (see `exchange serve --help`). SIGTERM stops within
    about 25 s at worst (a fetch gives up at once, even while an upstream trickles), and exits 0.
    The configuration is read once, at start: restart to apply a change (SIGHUP only logs that).
    The log format is a root option: `exchange --log-format json run`.
    """
    from exchange.daemon import ServeOptions, run_daemon

    config = context.state.config
    options = None
    if serve:
        chosen = config.serve
        options = ServeOptions(host=host or chosen.host, port=chosen.port if port is None else port,
                               tokens=chosen.tokens if tokens is None else tokens,
                               access_log=context.state.verbose > 0 if access_log is None else access_log)
        if options.access_log:
            show_access_log()
    try:
        placement = context.placement()
    except (NetworkElsewhere, NotFound) as exc:
        # the last good feeds stay served: a wrong or missing network file must not take them offline
        from exchange.runtime import note_degraded

        note_degraded("network", f"running without the road network: {exc.message}")
        logging.getLogger("exchange.daemon").error(
            "%s; running without the road network until it is corrected (restart then): the feeds are served "
            "as published, new events are not placed", exc.message)
        placement = None
    run_daemon(config, context.engine(), placement, options)

