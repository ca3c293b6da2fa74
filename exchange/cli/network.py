"""``exchange network build|info`` and ``exchange match``: the road network and matching, from outside."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from exchange.cli import context
from exchange.errors import UsageError
from exchange.output import Format, RecordFormat, write_records

__all__ = ["match", "network_app"]

network_app = typer.Typer(help="Build and examine the road network events are matched to.", no_args_is_help=True)


#: what ``match`` prints: one JSON array, or one object per line
MatchFormat = StrEnum("MatchFormat", ["json", "jsonl"])


@network_app.command("build")
def network_build(
    source: Annotated[Path, typer.Argument(help="OSM XML (.osm, .osm.bz2), OSM PBF, GeoJSON centerline or graphml.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Cache file to write, any name. Default: beside the source, ending .network"),
    ] = None,
) -> None:
    """Read a road network, split it into directed edges and write the cache `exchange match` and sync load.

    A GeoJSON centerline is read with the [network.centerline] mapping of the config.
    """
    import time

    from adapters.network_cache import build_cache, default_cache_path
    from exchange.placement import reader_options

    mapping, classes = reader_options(context.state.config.network, source)
    target = out or default_cache_path(source)
    started = time.perf_counter()
    network = build_cache(source, target, mapping=mapping, classes=classes)
    summary = {"source": str(source), "cache": str(target), "seconds": round(time.perf_counter() - started, 3),
               **network.summary()}
    write_records([summary], Format.json, columns=tuple(summary))
    print(f"built {summary['directed_edges']} directed edges into {target}", file=sys.stderr)


@network_app.command("info")
def network_info(
    source: Annotated[
        Path | None, typer.Argument(help="A network cache or a source file. Default: [network] of the config.")
    ] = None,
) -> None:
    """Print what a network holds: junctions, links, directed edges, one-way links, classes."""
    import time

    from adapters.network_cache import load_network
    from exchange.placement import reader_options

    settings = context.state.config.network
    if source is None:
        if settings is None:
            raise UsageError("no network: pass a file or configure [network]")
        source = Path(settings.path)
    mapping, classes = reader_options(settings, source)
    started = time.perf_counter()
    loaded = load_network(source, mapping=mapping, classes=classes)
    summary = {"source": str(source), "from_cache": loaded.from_cache,
               "seconds": round(time.perf_counter() - started, 3), **loaded.network.summary()}
    write_records([summary], Format.json, columns=tuple(summary))


@network_app.command("reroute")
def network_reroute(
    fmt: Annotated[RecordFormat, typer.Option("--format", "-f", help="table, json, jsonl, csv.")]
    = RecordFormat.table,
    force: Annotated[bool, typer.Option("--force", help="Place them even on a network that places none of "
                                                         "those that had a road (taken for the wrong file).")]
    = False,
) -> None:
    """Place every live city event again on the configured network and report each one.

    One row per active city event: unchanged, re-routed (new edges, and the polyline along them
    for full closures) or no longer routable (its polyline kept as it was, its edges dropped, and
    the lint flags it). Commands that load the network do this by themselves when the network is
    not the one the store was last placed on (a refreshed extract); this runs it on demand.

    A network that places none of the live events that had a road (two or more, or one lying outside
    it), or whose area holds none of the store's events, is taken for the wrong
    file, another place's extract: it is refused with nothing changed (exit 2), here and in every
    command that loads it, until [network] path is corrected or --force places them anyway.
    """
    from exchange.reroute import describe_reroute, reroute_live

    placement = context.placement(reroute=False)
    if placement is None:
        raise UsageError("no road network is configured: add a [network] section to the config")
    report = reroute_live(context.engine(), placement, force=force)
    write_records((item.as_record() for item in report), fmt, columns=("id", "street", "outcome", "detail"))
    print(describe_reroute(report)[0], file=sys.stderr)


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
    from exchange.placement import Placement
    from feeds.waze import parse_waze_feed

    settings = context.state.config.network
    if network is None and settings is None:
        raise UsageError("no network: pass --network FILE or configure [network]")
    path = network or Path(settings.path)  # type: ignore[union-attr]
    placement = Placement.for_file(path, settings)
    parsed = parse_waze_feed(context.read_input(feed))
    placement.match(parsed.events)
    clusters = placement.cluster_events(parsed.events)

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
          f"{len(set(clusters.values()))} cluster(s) of {len(clusters)} alert(s)", file=sys.stderr)
    if parsed.events and matched == 0:
        print(f"warning: {_elsewhere(parsed.events, placement.network)}", file=sys.stderr)


def _elsewhere(events: Any, network: Any) -> str:
    """Why nothing matched, where that is the network: the feed's middle and the network's extent."""
    from statistics import median

    places = [point for event in events for point in event.geometry.positions]
    west, south, east, north = network.lonlat_bounds()
    lon, lat = median(p[0] for p in places), median(p[1] for p in places)
    where = f"the feed lies around {lat:.4f},{lon:.4f} (lat,lon) and the network covers {south:.4f},{west:.4f} " \
            f"to {north:.4f},{east:.4f}"
    if network.km_outside([(lon, lat)]) == 0.0:
        return f"no item matched a road, though {where}: are its roads of the classes the feed reports on?"
    return f"no item matched a road: {where}; is it the network of the feed's city?"
