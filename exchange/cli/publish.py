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
    from exchange.config_check import licence_note
    from exchange.publish import publish

    result = publish(context.engine(), context.state.config, out_dir=out, placement=context.placement())
    note = licence_note(context.state.config)
    for line in [*result.warnings(), *([f"warning: {note}"] if note else [])]:
        print(line, file=sys.stderr)
    print(result.summary(), file=sys.stderr)
    for line in result.target_lines():
        print(f"  {line}", file=sys.stderr)
    if out is not None and result.files_written is False:
        print(f"{out} already holds these feeds: left as it is", file=sys.stderr)
    elif out is not None:
        for name, body in result.feeds.items():
            print(f"wrote {out / name} ({len(body)} bytes)", file=sys.stderr)
    if result.failed_targets:
        raise typer.Exit(1)


def validate_command(
    path: Annotated[Path, typer.Argument(help="A CIFS XML, CIFS JSON, WZDx 4.2, CWZ 1.0 or DATEX II v3 file.")],
) -> None:
    """Validate any CIFS, WZDx, CWZ or DATEX II file (detected by content); prints each problem with its
    location on stdout, and on stderr which checks ran.

    CIFS XML: the official cifsv2.xsd (2023-11-07) plus the rules it does not check (lat-first
    polylines with at least two distinct points, ranges, time zones, type/subtype pairs, ids).
    WZDx: the official 4.2 JSON schemas. CWZ 1.0: the shipped WZDx 4.2 schemas plus the CWZ
    differences. DATEX II v3: the project's own structural rules. CWZ and DATEX II are also checked
    against the official schemas when publish.schema_dir holds them. Exit 0 when valid, 1 when not.
    """
    from exchange.targets import official_schemas
    from exchange.validation import checks_run, validate_feed

    schemas = official_schemas(context.state.config.publish.schema_dir)
    kind, problems = validate_feed(context.read_input(path), schemas)
    for problem in problems:
        print(f"{path}:{problem.location}: {problem.severity}: {problem.message}")
    errors = sum(1 for problem in problems if problem.severity == "error")
    ran = "; ".join(checks_run(kind, schemas))
    print(f"{path}: {kind}: {'valid' if not errors else f'{errors} error(s)'}"
          f"{f', {len(problems) - errors} warning(s)' if len(problems) > errors else ''}"
          f"{f' (checked: {ran})' if ran else ''}", file=sys.stderr)
    if errors:
        raise typer.Exit(1)
