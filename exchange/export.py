"""``exchange export``: the history of the city's events as files for an open-data portal.

Three files in one directory: ``events.csv`` (one row per event, the geometry as WKT),
``events.geojson`` (a FeatureCollection, the same events with the same properties) and
``catalog.jsonld`` (DCAT-AP describing the two, from :mod:`exchange.catalogue`). The files name
each other relatively, so the directory can be published anywhere as it is; give ``base_url`` when
the portal publishes the files at a known address.

Which events: those of the city (crowd events only with ``include_crowd``, which the config must
allow: the Waze partner terms do not allow republishing crowd data without Waze's consent) that
were in effect at some time in the period: from their start (or first sighting) to their end (or,
ended or cancelled without an end, their last update; open-ended ones are still in effect); with no
period at all, the whole history, closures called off before they began included. A cancelled
event's ``cancelled_at`` says when it was called off (its ``end_time`` is the end it had been
given). The filters of ``inspect events`` apply (category, source namespace, status as shown now).

Both files are written from one read of the store, so they hold the same events; each is written
to a temporary file renamed into place, so a portal fetching them never reads half a file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy import Connection, Engine, case, func, or_, select

from exchange.catalogue import ExportFile, export_catalogue, to_jsonld
from exchange.config import Config
from exchange.errors import ExchangeError, NotFound, UsageError
from exchange.model import Event, from_millis
from exchange.output import Format, event_record, iso, write_records
from exchange.schema import events
from exchange.store import STATUSES, EventFilter, Unreadable, read_rows, readable, select_events, shown_status
from feeds.wzdx import schedule_occurrences

__all__ = ["CATALOGUE_NAME", "CSV_NAME", "GEOJSON_NAME", "Export", "ExportDone", "export_events"]

CSV_NAME = "events.csv"
GEOJSON_NAME = "events.geojson"
CATALOGUE_NAME = "catalog.jsonld"

#: the CSV's columns: what a spreadsheet user needs; the GeoJSON carries every property
CITY_COLUMNS = (
    "id", "source", "origin", "category", "type", "subtype", "status", "street", "city", "country", "direction",
    "start_time", "end_time", "cancelled_at", "schedule", "lane_impact", "first_seen", "updated", "description",
    "same_as", "wkt",
)
CROWD_COLUMNS = ("reliability", "confidence", "thumbs_up", "speed_kmh", "delay_s", "level", "length_m")


@dataclass(frozen=True, slots=True)
class Export:
    """What to export, and where."""

    out_dir: Path
    from_ms: int | None = None
    to_ms: int | None = None  # exclusive
    category: str | None = None
    source: str | None = None
    status: str | None = None
    include_crowd: bool = False
    base_url: str | None = None  # where the portal publishes the files; None: they name each other relatively


@dataclass
class ExportDone:
    """What an export wrote."""

    events: int
    files: dict[str, Path]
    sizes: dict[str, int]
    unreadable: list[Unreadable] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        return {"events": self.events, "files": {name: str(path) for name, path in self.files.items()},
                "bytes": dict(self.sizes)}


def export_events(
    engine: Engine, config: Config, export: Export, *, at_ms: int,
    skipped: Callable[[Unreadable], None] | None = None,
) -> ExportDone:
    """Write the export's three files; ``skipped`` hears of each stored event that cannot be read (left out).

    UsageError: crowd events asked for and not allowed, a bad status or period; NotFound: a source
    with no events in the store; ExchangeError: the directory cannot be written.
    """
    if export.include_crowd and not config.export.include_crowd:
        raise UsageError("--include-crowd needs `include_crowd = true` in the [export] section of the config: "
                         "the Waze partner terms do not allow republishing crowd data without Waze's consent")
    if export.status and export.status not in STATUSES:
        raise UsageError(f"--status: {export.status!r} is not one of {', '.join(STATUSES)}")
    if export.from_ms is not None and export.to_ms is not None and export.from_ms >= export.to_ms:
        raise UsageError("--from must be before --to")
    unreadable: list[Unreadable] = []

    def left_out(item: Unreadable) -> None:
        unreadable.append(item)
        if skipped is not None:
            skipped(item)

    with engine.connect() as conn:
        if export.source:
            _known_source(conn, export.source)
        # read once and kept: both files must hold the same events, and a second query could see a
        # sync's changes (a city's history is thousands of events; with crowd events, more memory)
        records = [_record(item.row, at_ms, export.include_crowd)
                   for item in readable(read_rows(conn, _query(export, at_ms)), left_out)
                   if _scheduled_in_period(item.event, export, config.zone)]
    _prepare(export.out_dir)
    columns = (*CITY_COLUMNS, *CROWD_COLUMNS) if export.include_crowd else CITY_COLUMNS
    sizes = {
        CSV_NAME: _write(export.out_dir / CSV_NAME, lambda out: write_records(
            ({**r["properties"], "wkt": r["wkt"]} for r in records), Format.csv, columns=columns, out=out)),
        GEOJSON_NAME: _write(export.out_dir / GEOJSON_NAME, lambda out: write_records(
            ({**r["properties"], "geometry": r["geometry"]} for r in records), Format.geojson,
            columns=columns, out=out)),
    }
    base = export.base_url.rstrip("/") + "/" if export.base_url else ""
    media = {CSV_NAME: "text/csv", GEOJSON_NAME: "application/geo+json"}
    catalogue = export_catalogue(
        config, [ExportFile(name, f"{base}{name}", media[name], size) for name, size in sizes.items()],
        uri=f"{base}{CATALOGUE_NAME}", exported_ms=at_ms,
        events=len(records), period=(export.from_ms, export.to_ms), bbox=_extent(records),
        crowd=export.include_crowd, described=describe(export),
    )
    document = orjson.dumps(to_jsonld(catalogue), option=orjson.OPT_INDENT_2).decode() + "\n"
    sizes[CATALOGUE_NAME] = _write(export.out_dir / CATALOGUE_NAME, lambda out: out.write(document))
    files = {name: export.out_dir / name for name in (CSV_NAME, GEOJSON_NAME, CATALOGUE_NAME)}
    return ExportDone(len(records), files, sizes, unreadable)


def describe(export: Export) -> str:
    """The events an export holds, in words (the catalogue's description says it).

    >>> describe(Export(Path("."), from_ms=1772323200000, category="ROAD_CLOSED"))
    'in effect from 2026-03-01T00:00:00.000Z, of category ROAD_CLOSED'
    """
    parts = []
    if export.from_ms is not None and export.to_ms is not None:
        parts.append(f"in effect between {iso(export.from_ms)} and {iso(export.to_ms)}")
    elif export.from_ms is not None:
        parts.append(f"in effect from {iso(export.from_ms)}")
    elif export.to_ms is not None:
        parts.append(f"in effect before {iso(export.to_ms)}")
    else:
        parts.append("over the whole history the store keeps")
    if export.category:
        parts.append(f"of category {export.category.upper()}")
    if export.source:
        parts.append(f"from source {export.source}")
    if export.status:
        parts.append(f"{export.status} at the time of the export")
    return ", ".join(parts)


def _query(export: Export, at_ms: int) -> Any:
    where = EventFilter(category=export.category, source=export.source, status=export.status, at_ms=at_ms)
    query = where.apply(select_events())
    if not export.include_crowd:
        query = query.where(events.c.origin == "city")
    begins = func.coalesce(events.c.start_ms, events.c.first_seen_ms)
    # a cancelled event was in effect until it was cancelled (its last change), if it had started by then
    cancelled = events.c.status == "cancelled"
    withdrawn = case((events.c.end_ms < events.c.updated_ms, events.c.end_ms), else_=events.c.updated_ms)
    ends = case((cancelled, withdrawn), else_=func.coalesce(
        events.c.end_ms, case((events.c.status == "ended", events.c.updated_ms))))
    if export.to_ms is not None:
        query = query.where(begins < export.to_ms)
    if export.from_ms is not None:
        query = query.where(or_(ends.is_(None), ends >= export.from_ms))
    if export.from_ms is not None or export.to_ms is not None:
        query = query.where(or_(~cancelled, withdrawn > begins))  # cancelled before it began: never in effect
    return query.order_by(begins, events.c.id)  # oldest first: a history reads forwards


def _scheduled_in_period(event: Event, export: Export, zone: tzinfo) -> bool:
    """Whether a weekly schedule, if the event has one, is in effect at some time of the export's period
    (a closure of Friday and Saturday nights is not in effect on a Tuesday)."""
    schedule = event.details.schedule if event.details else None
    if not schedule or (export.from_ms is None and export.to_ms is None):
        return True
    low = from_millis(export.from_ms) if export.from_ms is not None else event.start_time
    high = from_millis(export.to_ms) if export.to_ms is not None else event.end_time
    if low is None or high is None:
        return True  # an open-ended period of an open-ended event: its schedule meets it some week
    return bool(schedule_occurrences(schedule, zone=zone, start=event.start_time, end=event.end_time,
                                     window_start=low, window_end=high))


def _known_source(conn: Connection, source: str) -> None:
    if conn.execute(select(events.c.id).where(events.c.source == source).limit(1)).first() is None:
        known = sorted(conn.execute(select(events.c.source).distinct()).scalars())
        raise NotFound(f"--source: no events of source {source!r} in the store "
                       f"(known: {', '.join(known) or 'none'})")


def _record(row: Mapping[str, Any], at_ms: int, crowd: bool) -> dict[str, Any]:
    """One event: its properties (the documented record, status as shown now), geometry, WKT and extent."""
    import shapely

    record = event_record(row)
    geometry = record.pop("geometry")
    record["status"] = shown_status(row, at_ms)
    # a cancelled event's end_time is the end it had been given: when it was called off is its last change
    record["cancelled_at"] = iso(row["updated_ms"]) if row["status"] == "cancelled" else None
    details = record.get("details") or {}
    record["description"] = details.get("description") if isinstance(details, dict) else None
    schedule = details.get("schedule") if isinstance(details, dict) else None
    record["schedule"] = "; ".join(f"{day} {hours}" for day, hours in schedule.items()) if schedule else None
    lanes = details.get("lane_impact") if isinstance(details, dict) else None
    # the lanes a partial closure closes, as `closure add --lane-impact` takes them ("1:RIGHT"); empty: every lane
    record["lane_impact"] = (f"{lanes.get('total_closed_lanes')}:{lanes.get('roadside')}"
                             if isinstance(lanes, dict) else None)
    if isinstance(details, dict) and "operator" in details:
        # who typed it is staff information, not open data
        record["details"] = {key: value for key, value in details.items() if key != "operator"}
    # seen in Waze since is derived from Waze's crowd data: not the city's to publish
    record.pop("visible_in_waze_since", None)
    if not crowd:  # a city event's crowd measures are empty: left out of its properties
        for name in (*CROWD_COLUMNS, "report_rating", "magvar", "road_type", "blocking_alert_uuid"):
            record.pop(name, None)
    return {
        "properties": record,
        "geometry": geometry,
        "wkt": shapely.to_wkt(shapely.from_geojson(orjson.dumps(geometry).decode()), rounding_precision=7),
        "extent": (row["min_lon"], row["min_lat"], row["max_lon"], row["max_lat"]),
    }


def _extent(records: list[dict[str, Any]]) -> tuple[float, float, float, float] | None:
    if not records:
        return None
    boxes = [r["extent"] for r in records]
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def _prepare(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"--out: {directory} is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExchangeError(f"cannot create {directory}: {exc.strerror or exc}") from exc


def _write(path: Path, write: Callable[[IO[str]], object]) -> int:
    """Write through a temporary file renamed into place; the size written, in bytes."""
    try:
        with _replacing(path) as out:
            write(out)
        return path.stat().st_size
    except OSError as exc:
        raise ExchangeError(f"cannot write {path}: {exc.strerror or exc}") from exc


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[IO[str]]:
    # created by open(), not mkstemp: the umask decides its mode (mkstemp's 0600 would hide the
    # published file from the web server)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("w", encoding="utf-8", newline="") as out:
            yield out
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
