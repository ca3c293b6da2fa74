"""``exchange publish`` and ``exchange validate FILE``: the feeds partners poll."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from exchange.cli import context

__all__ = ["publish_command", "validate_command"]


def publish_command(
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", file_okay=False, help="Also write the feeds (cifs.xml, cifs.json, wzdx.geojson, "
                     "datex2.xml, cwz.geojson) here."),
    ] = None,
) -> None:
    """Render, validate and publish the feeds of every target (publish.targets: CIFS XML and JSON, WZDx 4.2,
    DATEX II v3, CWZ 1.0) from the city's events.

    Each target holds back on its own the events it cannot carry validly; stderr says, per target,
    how many events it publishes, holds back and carries with losses (`exchange inspect feed --target`
    shows which), or why it is off. A target whose feeds are invalid, or that would hold back too many
    of the events it published before, publishes nothing new (its last good feeds stay served, the
    others go out) and the exit code is 1. A city event whose stored row cannot be read is held back
    (a warning on stderr names it and why); the others go out.
    """
    from exchange.publish import publish

    result = publish(context.engine(), context.state.config, out_dir=out, placement=context.placement())
    for line in result.warnings():
        print(line, file=sys.stderr)
    print(result.summary(), file=sys.stderr)
    for line in result.target_lines():
        print(f"  {line}", file=sys.stderr)
    if out is not None:
        for name, body in result.feeds.items():
            print(f"wrote {out / name} ({len(body)} bytes)", file=sys.stderr)
    if result.failed_targets:
        raise typer.Exit(1)


def validate_command(
    path: Annotated[Path, typer.Argument(help="A CIFS XML, CIFS JSON or WZDx GeoJSON file.")],
) -> None:
    """Validate any CIFS or WZDx file; prints each problem with its location on stdout.

    CIFS XML: the official cifsv2.xsd (2023-11-07) plus the rules it does not check (lat-first
    polylines with at least two distinct points, ranges, time zones, type/subtype pairs, ids).
    WZDx: the official 4.2 JSON schemas. Exit 0 when valid, 1 when not.
    """
    from exchange.validation import validate_feed

    kind, problems = validate_feed(context.read_input(path))
    for problem in problems:
        print(f"{path}:{problem.location}: {problem.severity}: {problem.message}")
    errors = sum(1 for problem in problems if problem.severity == "error")
    print(f"{path}: {kind}: {'valid' if not errors else f'{errors} error(s)'}"
          f"{f', {len(problems) - errors} warning(s)' if len(problems) > errors else ''}", file=sys.stderr)
    if errors:
        raise typer.Exit(1)
