"""``exchange publish``, ``exchange validate FILE`` and ``exchange inspect feed``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from exchange.output import Format, write_records

__all__ = ["register"]


def publish_command(
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", file_okay=False, help="Also write cifs.xml, cifs.json and wzdx.geojson here."),
    ] = None,
) -> None:
    """Render, validate and publish the feeds (CIFS XML and JSON, WZDx 4.2) from the city's events.

    An invalid feed is not published: the last good one stays served, the failure is recorded,
    and the exit code is 1.
    """
    from exchange.cli import _engine, _placement, state
    from exchange.publish import publish

    result = publish(_engine(), state.config, out_dir=out, placement=_placement())
    print(result.summary(), file=sys.stderr)
    if out is not None:
        for name, body in result.feeds.items():
            print(f"wrote {out / name} ({len(body)} bytes)", file=sys.stderr)


def validate_command(
    path: Annotated[Path, typer.Argument(help="A CIFS XML, CIFS JSON or WZDx GeoJSON file.")],
) -> None:
    """Validate any CIFS or WZDx file; prints each problem with its location on stdout.

    CIFS XML: the official cifsv2.xsd (2023-11-07) plus the rules it does not check (lat-first
    polylines with at least two distinct points, ranges, time zones, type/subtype pairs, ids).
    WZDx: the official 4.2 JSON schemas. Exit 0 when valid, 1 when not.
    """
    from exchange.cli import read_input
    from exchange.validation import validate_feed

    kind, problems = validate_feed(read_input(path))
    for problem in problems:
        print(f"{path}:{problem.location}: {problem.severity}: {problem.message}")
    errors = sum(1 for problem in problems if problem.severity == "error")
    print(f"{path}: {kind}: {'valid' if not errors else f'{errors} error(s)'}"
          f"{f', {len(problems) - errors} warning(s)' if len(problems) > errors else ''}", file=sys.stderr)
    if errors:
        raise typer.Exit(1)


def inspect_feed_command(
    fmt: Annotated[Format, typer.Option("--format", "-f", help="table, json, jsonl, csv.")] = Format.table,
) -> None:
    """The Waze acceptance lint of every event that would be published, and the feed's success share.

    Blocking findings are reasons Waze would reject the event (length outside 30 m - 20 km, more
    than one street, ends not at junctions, a house number in the street); Waze reportedly
    publishes nothing when fewer than about 80 % of a feed's incidents pass.
    """
    from exchange.cli import _engine, _placement, state
    from exchange.publish import eligible_events
    from exchange.runtime import now_ms
    from feeds.lint import feed_success_share, lint_event

    config = state.config
    placement = _placement()
    chosen, _changed = eligible_events(_engine(), at_ms=now_ms(),
                                       keep_ended_ms=round(config.publish.keep_ended_h * 3_600_000))
    network = placement.network if placement is not None else None
    records: list[dict[str, Any]] = []
    findings = []
    for event in chosen:
        found = lint_event(event, network)
        findings.append(found)
        records.append({
            "id": event.id, "street": event.street, "status": event.status.value,
            "blocking": "; ".join(p.message for p in found if p.severity == "error") or None,
            "warnings": "; ".join(p.message for p in found if p.severity != "error") or None,
        })
    write_records(records, fmt, columns=("id", "street", "status", "blocking", "warnings"), title="feed lint")
    share = feed_success_share(findings)
    print(f"{len(chosen)} event(s); {share:.0%} have no blocking finding"
          f"{' (below the ~80% Waze reportedly needs)' if chosen and share < 0.8 else ''}", file=sys.stderr)


def register(app: typer.Typer, inspect_app: typer.Typer) -> None:
    app.command("publish")(publish_command)
    app.command("validate")(validate_command)
    inspect_app.command("feed")(inspect_feed_command)
