"""The ``exchange`` command line.

Commands parse options, call ``exchange.*`` and format; no SQL or feed parsing lives here.
Exit codes: 0 done (per-item rejections allowed, summarised on stderr), 1 the operation failed,
2 usage or validation error, 3 not found. Machine output goes to stdout, everything else to stderr.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import sys
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from exchange.config import Config
from exchange.config_file import load_config
from exchange.errors import ExchangeError, NotFound, UsageError
from exchange.output import Format, event_record, iso, run_record, source_record, write_records

__all__ = ["app", "main"]

log = logging.getLogger("exchange")

app = typer.Typer(
    name="exchange",
    help="traffic-exchange: a two-way traffic data exchange broker for cities.\n\n"
    "Pulls the Waze partner feed into a store (sync, replay), shows what came in (inspect).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
inspect_app = typer.Typer(help="Show stored events, sync runs and sources.", no_args_is_help=True)
db_app = typer.Typer(help="Manage the store's schema.", no_args_is_help=True)
app.add_typer(inspect_app, name="inspect")
app.add_typer(db_app, name="db")


class State:
    config_path: Path | None = None
    verbose: int = 0
    engine: Any = None
    _config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
            _setup_logging(self._config.log_level, self.verbose)
        return self._config


state = State()


def _setup_logging(level: str, verbose: int) -> None:
    chosen = logging.DEBUG if verbose > 0 else getattr(logging, level)
    logging.basicConfig(level=chosen, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s", force=True)
    # Alembic narrates every migration step at INFO; one line from `db upgrade` is enough.
    logging.getLogger("alembic").setLevel(logging.DEBUG if verbose > 1 else logging.WARNING)


@app.callback()
def _root(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", envvar="EXCHANGE_CONFIG", dir_okay=False,
            help="TOML configuration file. Default: $EXCHANGE_CONFIG; with neither, the embedded defaults "
            "(SQLite in $EXCHANGE_DATA_DIR, one Waze source named 'waze'). Never searched for.",
        ),
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More log output on stderr.")] = 0,
) -> None:
    state.config_path = config
    state.verbose = verbose
    state._config = None


def _engine() -> Any:
    """The store of this invocation, opened once; ``main`` releases its connections at the end."""
    if state.engine is None:
        from exchange.db import open_store

        state.engine = open_store(state.config.database_url)
    return state.engine


def _placement() -> Any:
    """The configured road network for matching and clustering, or None (nothing is matched)."""
    if state.config.network is None:
        return None  # and the geometry stack (numpy, shapely, pyproj) is never imported
    from exchange.placement import Placement

    return Placement.from_config(state.config)


# --------------------------------------------------------------------------- sync / replay


@app.command()
def sync(
    sources: Annotated[
        list[str] | None, typer.Argument(help="Source names from the config. Default: every enabled source.")
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="table: summary on stderr; json/jsonl: runs on stdout.")]
    = Format.table,
) -> None:
    """Fetch each source once, reconcile it with the store, record a sync run.

    Exit 1 if any source failed (the others are still synced); the store is unchanged for a failed one.
    """
    from adapters import build_source
    from exchange.sync import sync_source

    config = state.config
    chosen = [config.source(name) for name in sources] if sources else [s for s in config.sources if s.enabled]
    if not chosen:
        raise UsageError("no sources configured; add a [[sources]] entry or pass --config")
    engine = _engine()
    placement = _placement()
    results, failed = [], 0
    for source_config in chosen:
        try:
            result = sync_source(engine, build_source(source_config, zone=config.zone), config.lifecycle, placement)
        except ExchangeError as exc:
            if exc.exit_code == 2:
                raise
            failed += 1
            print(f"error: {source_config.name}: {exc.message}", file=sys.stderr)
            continue
        results.append(result)
        _report(result)
    if fmt in (Format.json, Format.jsonl):
        write_records(
            ({"run_id": r.run_id, "source": r.source, "status": r.status, **r.counts(), "message": r.message}
             for r in results),
            fmt, columns=(),
        )
    if failed:
        raise typer.Exit(1)


def _report(result: Any) -> None:
    print(result.summary(), file=sys.stderr)
    for error in result.item_errors[:5]:
        print(f"  rejected {error.kind} {error.source_id}: {error.reason}", file=sys.stderr)
    if len(result.item_errors) > 5:
        print(f"  ... and {len(result.item_errors) - 5} more (exchange inspect runs --format json)", file=sys.stderr)


@app.command()
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
    config = state.config
    if source_name:
        source_config = config.source(source_name)
    else:
        waze = [s for s in config.sources if s.kind == "waze-feed"]
        if not waze:
            raise UsageError("no Waze source in the config; pass --source NAME")
        source_config = waze[0]
    source = build_source(source_config, zone=config.zone)
    engine = _engine()
    placement = _placement()
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
        if state.verbose or len(files) == 1:
            _report(result)
        elif result.item_errors:
            print(f"{path.name}: {len(result.item_errors)} item(s) rejected, e.g. "
                  f"{result.item_errors[0].source_id}: {result.item_errors[0].reason}", file=sys.stderr)
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


# --------------------------------------------------------------------------- inspect

_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _parse_since(value: str) -> datetime:
    match = _DURATION.match(value.strip())
    if match:
        return datetime.now(UTC) - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--since: {value!r} is neither a duration (30m, 2h, 7d) nor an ISO 8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=state.config.zone)
    return when


def _parse_bbox(value: str) -> tuple[float, float, float, float]:
    try:
        parts = tuple(float(p) for p in value.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 4:
        raise UsageError(f"--bbox: expected MIN_LON,MIN_LAT,MAX_LON,MAX_LAT, got {value!r}")
    min_lon, min_lat, max_lon, max_lat = parts
    if not (-180 <= min_lon <= max_lon <= 180 and -90 <= min_lat <= max_lat <= 90):
        raise UsageError(f"--bbox: {value!r} is not a valid lon/lat box (min before max, within range)")
    return min_lon, min_lat, max_lon, max_lat


TABLE_LIMIT = 50
EVENT_COLUMNS = ("id", "kind", "category", "subtype", "status", "street", "start_time", "updated")


@inspect_app.command("events")
def inspect_events(
    source: Annotated[str | None, typer.Option(help="Namespace of the events, e.g. waze.")] = None,
    kind: Annotated[str | None, typer.Option(help="alert, jam, irregularity or city.")] = None,
    category: Annotated[str | None, typer.Option(help="ACCIDENT, JAM, HAZARD, ROAD_CLOSED, CONSTRUCTION, ...")] = None,
    status: Annotated[str | None, typer.Option(help="active, ended or cancelled. Default: all.")] = None,
    street: Annotated[str | None, typer.Option(help="Case-insensitive part of the street name.")] = None,
    bbox: Annotated[str | None, typer.Option(help="MIN_LON,MIN_LAT,MAX_LON,MAX_LAT (WGS84).")] = None,
    since: Annotated[
        str | None, typer.Option(help="Changed or started since: a duration (30m, 2h, 7d) or an ISO time.")
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help=f"At most this many. Default: all for machine formats, {TABLE_LIMIT} for the table."),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="table for people; json, jsonl, geojson, csv.")]
    = Format.table,
    unconfirmed_closures: Annotated[
        bool,
        typer.Option("--unconfirmed-closures", help="Only Waze ROAD_CLOSED reports that match no city event."),
    ] = False,
) -> None:
    """List stored events, newest first. Machine formats print every match unless --limit is given."""
    from exchange.confirm import unconfirmed_closure_ids
    from exchange.store import EventFilter, count_events, iter_events

    if kind and kind not in {"alert", "jam", "irregularity", "city"}:
        raise UsageError(f"--kind: {kind!r} is not one of alert, jam, irregularity, city")
    if status and status not in {"active", "ended", "cancelled"}:
        raise UsageError(f"--status: {status!r} is not one of active, ended, cancelled")
    where = EventFilter(
        source=source, kind=kind, category=category, status=status, street=street,
        bbox=_parse_bbox(bbox) if bbox else None, since=_parse_since(since) if since else None,
    )
    engine = _engine()
    with engine.connect() as conn:
        if unconfirmed_closures:
            where = dataclasses.replace(where, ids=unconfirmed_closure_ids(conn))
        if fmt is Format.table:
            shown = limit or TABLE_LIMIT
            total = count_events(conn, where)
            zone = state.config.zone
            rows = (
                {**event_record(row), "start_time": iso(row.start_ms, zone), "updated": iso(row.updated_ms, zone)}
                for row in iter_events(conn, where, limit=shown)
            )
            note = None
            if total > shown:
                note = f"showing {shown} of {total} events; use --limit N or --format json for all"
            write_records(rows, fmt, columns=EVENT_COLUMNS, title=f"{min(total, shown)} of {total} events",
                          truncated_note=note)
        else:
            write_records((event_record(row) for row in iter_events(conn, where, limit=limit)), fmt,
                          columns=(*EVENT_COLUMNS, "geometry"))


@inspect_app.command("event")
def inspect_event(
    event_id: Annotated[str, typer.Argument(metavar="ID", help="Event id, e.g. waze:alert:<uuid>.")],
    fmt: Annotated[Format, typer.Option("--format", "-f", help="table or json.")] = Format.table,
) -> None:
    """One event in full, with its revisions (what changed, when) and the sources that see it."""
    from exchange.store import get_event, revisions_of, seen_by

    engine = _engine()
    with engine.connect() as conn:
        record = event_record(get_event(conn, event_id))
        history = revisions_of(conn, event_id)
        record["seen_by"] = [{"source": s.source_name, "missed_polls": s.missed} for s in seen_by(conn, event_id)]
        if record["origin"] == "city":
            from exchange.confirm import confirmations_of

            record["confirmations"] = [
                {"crowd_event_id": c.crowd_event_id, "how": c.how, "linked": iso(c.linked_ms)}
                for c in confirmations_of(conn, event_id)
            ]
    if fmt is not Format.table:
        record["revisions"] = [
            {"at": iso(r.at_ms), "action": r.action, "run_id": r.run_id, "operator": r.operator, "changes": r.changes}
            for r in history
        ]
        write_records([record], Format.json if fmt is Format.geojson else fmt, columns=tuple(record))
        return
    zone = state.config.zone
    fields = [{"field": key, "value": value} for key, value in record.items() if key not in ("attributes", "geometry")]
    geometry = record["geometry"]
    fields.append({"field": "geometry", "value": f"{geometry['type']} {str(geometry['coordinates'])[:120]}"})
    fields.extend({"field": f"attributes.{key}", "value": str(value)[:160]}
                  for key, value in (record["attributes"] or {}).items())
    write_records(fields, Format.table, columns=("field", "value"), title=event_id)
    revision_rows = [
        {"at": iso(r.at_ms, zone), "action": r.action, "operator": r.operator,
         "changes": "; ".join(f"{k}: {v[0]!r} -> {v[1]!r}"[:80] for k, v in (r.changes or {}).items())}
        for r in history
    ]
    write_records(revision_rows, Format.table, columns=("at", "action", "operator", "changes"), title="revisions")


@inspect_app.command("runs")
def inspect_runs(
    source: Annotated[str | None, typer.Option(help="Only this source's runs.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Newest first, at most this many.")] = 20,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="table, json, jsonl, csv.")] = Format.table,
) -> None:
    """Sync runs: when, outcome, counts and per-item errors."""
    from exchange.store import list_runs

    engine = _engine()
    with engine.connect() as conn:
        rows = list_runs(conn, source=source, limit=limit)
    records = [run_record(row) for row in rows]
    if fmt is Format.table:
        zone = state.config.zone
        for record, row in zip(records, rows, strict=True):
            record["started"] = iso(row.started_ms, zone)
            record["snapshot"] = iso(row.snapshot_ms, zone)
    columns = ("id", "source", "status", "started", "snapshot", "fetched", "new", "updated", "unchanged",
               "ended", "rejected", "message")
    write_records(records, fmt, columns=columns, title="sync runs")


@inspect_app.command("sources")
def inspect_sources(
    fmt: Annotated[Format, typer.Option("--format", "-f", help="table, json, jsonl, csv.")] = Format.table,
) -> None:
    """Sources that have synced: where they read, their active events, their newest snapshot."""
    from exchange.store import list_sources

    engine = _engine()
    with engine.connect() as conn:
        records = [source_record(row) for row in list_sources(conn)]
    write_records(records, fmt, columns=("name", "kind", "namespace", "active_events", "newest_snapshot",
                                         "last_success", "location"), title="sources")


# --------------------------------------------------------------------------- db


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the schema or bring it to the latest migration (needed on PostgreSQL)."""
    from exchange.db import open_store, redact_url

    url = state.config.database_url
    open_store(url, auto_upgrade=True)
    print(f"schema is current on {redact_url(url)}", file=sys.stderr)


@db_app.command("status")
def db_status() -> None:
    """Print the schema revision of the store and the one the code needs."""
    from sqlalchemy import create_engine

    from exchange.db import current_revision, normalize_url, redact_url
    from exchange.schema import SCHEMA_REVISION

    url = normalize_url(state.config.database_url)
    revision = current_revision(create_engine(url))
    print(f"{redact_url(url)}: schema {revision or 'absent'}, code needs {SCHEMA_REVISION}")
    if revision != SCHEMA_REVISION:
        raise typer.Exit(1)


# --------------------------------------------------------------------------- network and match

network_app = typer.Typer(help="Build and examine the road network events are matched to.", no_args_is_help=True)
app.add_typer(network_app, name="network")


class MatchFormat(StrEnum):
    json = "json"
    jsonl = "jsonl"


@network_app.command("build")
def network_build(
    source: Annotated[Path, typer.Argument(help="OSM XML (.osm, .osm.bz2), OSM PBF, GeoJSON centerline or graphml.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Cache file to write. Default: beside the source, .network.")
    ] = None,
) -> None:
    """Read a road network, split it into directed edges and write the cache `exchange match` and sync load.

    A GeoJSON centerline is read with the [network.centerline] mapping of the config.
    """
    import time

    from adapters.network_cache import CACHE_SUFFIX, build_cache

    mapping, classes = _reader_options(source)
    target = out or source.with_name(source.name.split(".")[0] + CACHE_SUFFIX)
    started = time.perf_counter()
    network = build_cache(source, target, mapping=mapping, classes=classes)
    summary = {"source": str(source), "cache": str(target), "seconds": round(time.perf_counter() - started, 3),
               **network.summary()}
    write_records([summary], Format.json, columns=tuple(summary))
    print(f"built {summary['directed_edges']} directed edges into {target}", file=sys.stderr)


@network_app.command("info")
def network_info(
    source: Annotated[Path, typer.Argument(help="A network cache or a source file.")],
) -> None:
    """Print what a network holds: junctions, links, directed edges, one-way links, classes."""
    import time

    from adapters.network_cache import load_network

    mapping, classes = _reader_options(source)
    started = time.perf_counter()
    loaded = load_network(source, mapping=mapping, classes=classes)
    summary = {"source": str(source), "from_cache": loaded.from_cache,
               "seconds": round(time.perf_counter() - started, 3), **loaded.network.summary()}
    write_records([summary], Format.json, columns=tuple(summary))


def read_input(path: Path) -> bytes:
    """A file named on the command line: a missing one is NotFound (exit 3), an unreadable one exit 1."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"{path} does not exist") from None
    except OSError as exc:
        raise ExchangeError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _reader_options(source: Path) -> tuple[Any, Any]:
    from adapters.osm import CenterlineMapping

    settings = state.config.network
    mapping = None
    if source.suffix in (".geojson", ".json"):
        mapping = CenterlineMapping.model_validate((settings.centerline if settings else None) or {})
    classes = frozenset(settings.classes) if settings and settings.classes else None
    return mapping, classes


@app.command()
def match(
    feed: Annotated[Path, typer.Argument(help="A Waze feed snapshot (JSON or GeoRSS XML).")],
    network: Annotated[
        Path | None,
        typer.Option("--network", "-n", help="Network cache or source file. Default: [network] of the config."),
    ] = None,
    fmt: Annotated[MatchFormat, typer.Option("--format", "-f", help="json: one array; jsonl: one object per line.")]
    = MatchFormat.json,
) -> None:
    """Match every item of a feed to the road network and cluster the alerts, without storing anything.

    One object per feed item: uuid, kind, edges ([{way_id, from_node, to_node}] in travel order),
    distance_m, confidence, cluster_id; or "unmatched" with the reason.
    """
    from adapters.network_cache import load_network
    from exchange.config import NetworkConfig
    from exchange.model import to_millis
    from exchange.placement import AlertRow, Placement
    from feeds.waze import parse_waze_feed

    settings = state.config.network
    if network is None and settings is None:
        raise UsageError("no network: pass --network FILE or configure [network]")
    path = network or Path(settings.path)  # type: ignore[union-attr]
    mapping, classes = _reader_options(path)
    loaded = load_network(path, mapping=mapping, classes=classes)
    placement = Placement(loaded.network, settings or NetworkConfig(path=path))
    parsed = parse_waze_feed(read_input(feed))
    placement.match(parsed.events)
    alerts = [
        AlertRow(e.id, e.geometry.coordinates[0], e.geometry.coordinates[1],  # type: ignore[arg-type]
                 to_millis(e.start_time) if e.start_time else 0, e.category.value, e.magvar,
                 e.road_match.model_dump() if e.road_match else None, None)
        for e in parsed.events if e.kind.value == "alert"
    ]
    clusters = placement.cluster(alerts)

    def records() -> Any:
        for event in parsed.events:
            result = event.road_match
            record: dict[str, Any] = {"uuid": event.source_id, "kind": event.kind.value}
            if result is None or not result.edges:
                record["unmatched"] = result.reason if result else "not matched"
            else:
                record["edges"] = [{"way_id": w, "from_node": a, "to_node": b} for w, a, b in result.edges]
                record["distance_m"] = result.distance_m
                record["confidence"] = result.confidence
                if result.covered_fraction is not None:
                    record["covered_fraction"] = result.covered_fraction
                if result.reason:
                    record["note"] = result.reason
            record["cluster_id"] = clusters.get(event.id)
            yield record
        for error in parsed.errors:
            yield {"uuid": error.source_id, "kind": error.kind, "unmatched": f"rejected: {error.reason}",
                   "cluster_id": None}

    write_records(records(), Format(fmt.value), columns=())
    matched = sum(1 for e in parsed.events if e.road_match and e.road_match.edges)
    print(f"matched {matched} of {len(parsed.events) + len(parsed.errors)} item(s); "
          f"{len(set(clusters.values()))} cluster(s) of {len(alerts)} alert(s)", file=sys.stderr)


# --------------------------------------------------------------------------- daemon


@app.command()
def run() -> None:
    """Run as a daemon: poll every enabled source on its interval until stopped (SIGTERM or Ctrl-C).

    One job per source, never two runs of a source at once; a failed poll is recorded and the next
    one still happens.
    """
    from exchange.daemon import run_daemon

    run_daemon(state.config, _engine(), _placement())


# --------------------------------------------------------------------------- entry point


from exchange.cli_closure import register as _register_closure  # noqa: E402 - needs app defined
from exchange.cli_publish import register as _register_publish  # noqa: E402

_register_closure(app)
_register_publish(app, inspect_app)

from exchange.cli_serve import register as _register_serve  # noqa: E402

_register_serve(app)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: an ExchangeError becomes one line on stderr and its exit code.

    Usage errors are typer's (exit 2); any other exception is a bug and keeps its traceback.
    """
    try:
        app(args=argv, prog_name="exchange")
    except ExchangeError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.exit(0)
    finally:
        if state.engine is not None:  # no pooled connection outlives the command (tests run it in-process)
            state.engine.dispose()
            state.engine = None
