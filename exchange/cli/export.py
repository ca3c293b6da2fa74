"""``exchange export``: the history of the city's events as CSV and GeoJSON, with DCAT-AP beside them."""

from __future__ import annotations

import json
import re
import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from exchange.cli import context
from exchange.errors import UsageError

__all__ = ["export_command", "parse_day_or_time"]

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_day_or_time(value: str, zone: ZoneInfo, *, option: str, end: bool = False) -> int:
    """A day (``2026-11-01``: its start in ``zone``, or with ``end`` the start of the next day, so the
    whole day is in) or an ISO 8601 time (without an offset: in ``zone``), as epoch milliseconds.

    >>> parse_day_or_time("2026-03-01", ZoneInfo("UTC"), option="--to", end=True)
    1772409600000
    >>> parse_day_or_time("2026-03-01T08:00:00-08:00", ZoneInfo("UTC"), option="--from")
    1772380800000
    """
    from exchange.errors import ItemRejected
    from feeds.city_values import local_time

    text = value.strip()
    try:
        if _DAY.match(text):
            day = date.fromisoformat(text) + (timedelta(days=1) if end else timedelta())
            when = local_time(datetime.combine(day, time()), zone, option)
        else:
            when = datetime.fromisoformat(text)
            if when.tzinfo is None:  # as closure entry reads it: a time the clocks skip or repeat is refused
                when = local_time(when, zone, option)
    except ItemRejected as exc:
        raise UsageError(exc.message) from None
    except ValueError:
        raise UsageError(f"{option}: {value!r} is neither a day (2026-11-01) nor an ISO 8601 time "
                         "(2026-11-01T08:00, 2026-11-01T08:00:00+01:00)") from None
    return round(when.timestamp() * 1000)


def export_command(
    out: Annotated[
        Path,
        typer.Option("--out", "-o", file_okay=False,
                     help="Directory to write events.csv, events.geojson and catalog.jsonld into (created if "
                     "missing; files of an earlier export there are replaced)."),
    ],
    from_: Annotated[
        str | None,
        typer.Option("--from", metavar="DAY|TIME",
                     help="Only events in effect at or after this: a day (2026-11-01, from its start) or an ISO "
                     "8601 time; without an offset, in the config's time zone. Default: no lower bound."),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option("--to", metavar="DAY|TIME",
                     help="Only events in effect before this: a day (2026-11-30: the whole day is in) or an ISO "
                     "8601 time (not included). Default: no upper bound."),
    ] = None,
    category: Annotated[
        str | None, typer.Option(help="Only this category: ROAD_CLOSED, CONSTRUCTION, HAZARD, ... Default: all.")
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(help="Only events of this source namespace (the `namespace` of a [[sources]] entry, e.g. city). "
                     "Exit 3 when the store has none of it. Default: all."),
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(help="Only events that are now planned, active, ended or cancelled. Default: all."),
    ] = None,
    include_crowd: Annotated[
        bool,
        typer.Option("--include-crowd",
                     help="Also export the crowd (Waze) events. Only with Waze's written consent: the Waze partner "
                     "terms do not allow republishing crowd data. Needs `include_crowd = true` in the [export] "
                     "section of the config (exit 2 without it)."),
    ] = False,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", metavar="URL",
                     help="The address the portal will publish the files at (e.g. https://data.example.org/traffic/"
                     "); catalog.jsonld then names them by URL. Default: by file name, right wherever the three "
                     "files are published together."),
    ] = None,
) -> None:
    """Export the history of the city's events for an open-data portal: CSV, GeoJSON and DCAT-AP.

    Writes three files into --out: events.csv (one row per event; the geometry as WKT, WGS84),
    events.geojson (a FeatureCollection of the same events with every property) and catalog.jsonld
    (DCAT-AP JSON-LD describing the two files: title, publisher, licence, period, coverage, sizes;
    from the [catalogue] section of the config). An event is exported when it was in effect at some
    time between --from and --to: from its start to its end, or to when it was cancelled (open-ended
    events are still in effect); a weekly schedule only in its hours. With neither --from nor --to,
    the whole history, closures called off before they began included; a cancelled event's
    cancelled_at says when it was called off. Crowd (Waze) events only with --include-crowd.

    Prints a JSON summary on stdout (events, files, bytes); messages go to stderr. A stored event
    that cannot be read is left out with a warning. Exit codes: 0 done, 1 the store or the directory
    failed, 2 bad options (dates, status, --include-crowd not allowed), 3 --source unknown.
    """
    from exchange.export import Export, export_events
    from exchange.runtime import now_ms

    if base_url is not None and not re.match(r"^https?://", base_url):
        raise UsageError(f"--base-url: {base_url!r} is not an http(s) URL")
    category = context.category_option(category)
    config = context.state.config
    zone = config.zone
    request = Export(
        out_dir=out,
        from_ms=parse_day_or_time(from_, zone, option="--from") if from_ else None,
        to_ms=parse_day_or_time(to, zone, option="--to", end=True) if to else None,
        category=category,
        source=source,
        status=status,
        include_crowd=include_crowd,
        base_url=base_url,
    )
    done = export_events(context.engine(), config, request, at_ms=now_ms(), skipped=context.skipped)
    print(json.dumps(done.record()))
    kind = "event(s)" if include_crowd else "city event(s)"
    if not include_crowd and done.events == 0 and source is not None:
        print(f"note: no city event of source {source!r} in the period; crowd events are exported only with "
              "--include-crowd", file=sys.stderr)
    print(f"exported {done.events} {kind} to {out}: "
          + ", ".join(f"{name} ({size} bytes)" for name, size in done.sizes.items()), file=sys.stderr)
