"""``exchange inspect events|event|runs|sources|feed``: what the store holds, for people and scripts."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from exchange.cli import context
from exchange.errors import ExchangeError, NotFound, UsageError
from exchange.output import (
    DocumentFormat,
    Format,
    RecordFormat,
    as_text,
    cut,
    event_record,
    in_zone,
    iso,
    run_record,
    source_record,
    write_records,
)

if TYPE_CHECKING:
    from exchange.config import Config

__all__ = ["inspect_app"]

inspect_app = typer.Typer(help="Show stored events, sync runs, sources and the feed's lint.", no_args_is_help=True)


def _parse_since(value: str) -> datetime:
    from exchange.model import from_millis
    from exchange.runtime import duration_ms, now_ms

    ago = duration_ms(value)
    if ago is not None:
        return from_millis(now_ms() - ago)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--since: {value!r} is neither a duration (30m, 2h, 7d) nor an ISO 8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=context.state.config.zone)
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
    status: Annotated[
        str | None,
        typer.Option(help="planned (a city event not started yet), active (started, not over), ended (or a "
                     "city event's end has passed) or cancelled. Default: all."),
    ] = None,
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
        typer.Option("--unconfirmed-closures", help="Only Waze ROAD_CLOSED reports on no city closure in effect "
                     "(none, one the city has ended: Waze still shows it closed, or a night closure "
                     "by day)."),
    ] = False,
) -> None:
    """List stored events, newest first. Machine formats print every match unless --limit is given."""
    from exchange.confirm import unconfirmed_closure_ids
    from exchange.runtime import now_ms
    from exchange.store import STATUSES, EventFilter, count_events, iter_events, readable

    if kind and kind not in {"alert", "jam", "irregularity", "city"}:
        raise UsageError(f"--kind: {kind!r} is not one of alert, jam, irregularity, city")
    if status and status not in STATUSES:
        raise UsageError(f"--status: {status!r} is not one of {', '.join(STATUSES)}")
    category = context.category_option(category)
    at = now_ms()
    where = EventFilter(
        source=source, kind=kind, category=category, status=status, street=street,
        bbox=_parse_bbox(bbox) if bbox else None, since=_parse_since(since) if since else None, at_ms=at,
    )
    engine = context.engine()
    with engine.connect() as conn:
        if unconfirmed_closures:
            where = dataclasses.replace(where, ids=unconfirmed_closure_ids(conn, at, context.state.config.zone))
        if fmt is Format.table:
            shown = limit or TABLE_LIMIT
            total = count_events(conn, where)
            zone = context.state.config.zone
            rows = (
                {**_record(item.row, at), "start_time": iso(item.row["start_ms"], zone),
                 "updated": iso(item.row["updated_ms"], zone)}
                for item in readable(iter_events(conn, where, limit=shown), context.skipped)
            )
            note = None
            if total > shown:
                note = f"showing {shown} of {total} events; use --limit N or --format json for all"
            title = in_zone(f"{min(total, shown)} of {total} events", zone)
            write_records(rows, fmt, columns=EVENT_COLUMNS, title=title, truncated_note=note)
        else:
            found = readable(iter_events(conn, where, limit=limit), context.skipped)
            write_records((_record(item.row, at) for item in found), fmt, columns=(*EVENT_COLUMNS, "geometry"))


def _record(row: Mapping[str, Any], at_ms: int) -> dict[str, Any]:
    """The event's record with the status it shows now (``shown_status``: ``planned`` for a city event not
    started yet, ``ended`` for one whose end has passed)."""
    from exchange.store import shown_status

    return {**event_record(row), "status": shown_status(row, at_ms)}


@inspect_app.command("event")
def inspect_event(
    event_id: Annotated[str, typer.Argument(metavar="ID", help="Event id, e.g. waze:alert:<uuid>.")],
    fmt: Annotated[DocumentFormat, typer.Option("--format", "-f",
                                                help="table for people; json: a list of the one event.")]
    = DocumentFormat.table,
) -> None:
    """One event in full, with its revisions (what changed, when) and the sources that see it.

    A city event shows its links to the same closure reported by other sources: the event published
    in its place ("same closure as X, published in its place (source S, priority P)"), or the
    events folded into it ("also reported by Y").

    An event stored with a value that cannot be shown (a time out of range, text that is not UTF-8,
    a geometry or details the model refuses) is an error naming the value (exit 1).
    """
    from exchange.runtime import now_ms
    from exchange.store import get_event, revisions_of, seen_by

    engine = context.engine()
    with engine.connect() as conn:
        row = get_event(conn, event_id).row
        record = _record(row, now_ms())
        history = revisions_of(conn, event_id)
        record["seen_by"] = [{"source": s.source_name, "missed_polls": s.missed} for s in seen_by(conn, event_id)]
        if record["origin"] == "city":
            from exchange.confirm import confirmations_of
            from exchange.event_views import city_links

            record["confirmations"] = [
                {"crowd_event_id": c.crowd_event_id, "how": c.how, "linked": iso(c.linked_ms)}
                for c in confirmations_of(conn, event_id)
            ]
            record["match_id"] = row["match_id"]
            record.update(city_links(conn, event_id, row["same_as"]))
    if record["origin"] == "city":
        from exchange.cli.waze import waze_fields
        from exchange.publish import held_back_now

        held = held_back_now(engine)
        record["held_back"] = held.get(event_id)
        record["waze"] = waze_fields(engine, [row], held, now_ms(), table=fmt is not DocumentFormat.json)[0]
    if fmt is DocumentFormat.json:
        from exchange.event_views import revision_record

        record["revisions"] = [revision_record(r) for r in history]
        write_records([record], fmt, columns=tuple(record))
        return
    zone = context.state.config.zone
    for key, column in _EVENT_TIMES.items():
        if key in record:
            record[key] = iso(row[column], zone)
    for confirmation in record.get("confirmations", ()):
        confirmation["linked"] = iso(_millis(confirmation["linked"]), zone)
    if record.get("same_closure_as"):
        instead = record["same_closure_as"]
        record["same_closure_as"] = f"same closure as {instead['id']}, published in its place ({_reported(instead)})"
    if "also_reported_by" in record:
        record["also_reported_by"] = "; ".join(
            f"also reported by {link['id']} ({_reported(link)})" for link in record["also_reported_by"]) or None
    fields = [{"field": key, "value": value} for key, value in record.items() if key not in ("attributes", "geometry")]
    fields.append({"field": "geometry", "value": _geometry_text(record["geometry"])})
    fields.extend({"field": f"attributes.{key}", "value": _cut(as_text(value))}
                  for key, value in (record["attributes"] or {}).items())
    write_records(fields, Format.table, columns=("field", "value"), title=in_zone(event_id, zone))
    revision_rows = [
        {"at": iso(r.at_ms, zone), "action": r.action, "operator": r.operator,
         "changes": "; ".join(f"{key}: {_change_text(key, old, zone)} -> {_change_text(key, new, zone)}"
                              for key, old, new in _changed_parts(r.changes or {}))}
        for r in history
    ]
    write_records(revision_rows, Format.table, columns=("at", "action", "operator", "changes"),
                  title=in_zone("revisions", zone))


def _reported(link: Mapping[str, Any]) -> str:
    if link["source"] is None:
        return "typed by an operator"
    return f"source {link['source']}, priority {link['priority']}"


#: the times of an event record -> their columns
_EVENT_TIMES = {
    "start_time": "start_ms", "end_time": "end_ms", "first_seen": "first_seen_ms", "updated": "updated_ms",
    "visible_in_waze_since": "visible_in_waze_since_ms",
}


def _millis(text: str | None) -> int | None:
    return None if text is None else round(datetime.fromisoformat(text).timestamp() * 1000)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


#: a value longer than this is cut, visibly, in the event table (``--format json`` has it whole)
_SHOWN_CHARACTERS = 240


def _cut(text: str) -> str:
    return cut(text, _SHOWN_CHARACTERS)


def _geometry_text(geometry: Any) -> str:
    """A geometry for people: a point's position, a line's number of points and its ends."""
    if not isinstance(geometry, Mapping) or not isinstance(geometry.get("coordinates"), list):
        return _cut(as_text(geometry))
    coordinates = geometry["coordinates"]
    if geometry.get("type") != "LineString" or len(coordinates) < 2:
        return f"{geometry.get('type')} {as_text(coordinates)}"
    return f"LineString of {len(coordinates)} points, {as_text(coordinates[0])} to {as_text(coordinates[-1])}"


#: the events table's columns holding times (epoch milliseconds) that a revision may record
_TIME_COLUMNS = frozenset({"start_ms", "end_ms", "visible_in_waze_since_ms", "waze_last_seen_ms",
                           "waze_flowing_since_ms"})


def _changed_parts(changes: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """A revision's changes field by field; of an object (``details``), only its keys that changed."""
    parts: list[tuple[str, Any, Any]] = []
    for key, (old, new) in changes.items():
        if isinstance(old, Mapping) and isinstance(new, Mapping) and key != "geometry":
            parts.extend((f"{key}.{name}", old.get(name), new.get(name))
                         for name in dict.fromkeys([*old, *new]) if old.get(name) != new.get(name))
        else:
            parts.append((key, old, new))
    return parts


def _change_text(key: str, value: Any, zone: Any) -> str:
    """One side of a revision's change: the event's times (``start_ms``, ...) in the city's zone, a
    geometry summed up. An attribute is the source's, whatever its name says: shown as it is."""
    if key in _TIME_COLUMNS and isinstance(value, int) and not isinstance(value, bool):
        try:
            return iso(value, zone) or ""
        except (ValueError, OverflowError, OSError):  # a time no calendar holds: its number, as stored
            return str(value)
    if key == "geometry":
        return _geometry_text(value)
    return _cut(_json(value))


@inspect_app.command("runs")
def inspect_runs(
    source: Annotated[str | None, typer.Option(help="Only this source's runs.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Newest first, at most this many.")] = 20,
    fmt: Annotated[RecordFormat, typer.Option("--format", "-f", help="table, json, jsonl, csv.")]
    = RecordFormat.table,
) -> None:
    """Sync runs: when, outcome, counts and per-item errors."""
    from exchange.store import list_runs

    engine = context.engine()
    with engine.connect() as conn:
        rows = list_runs(conn, source=source, limit=limit)
    configured = {entry.name for entry in context.state.config.sources}
    if source is not None and not rows and source not in configured:
        raise NotFound(f"--source: no source named {source!r} (configured: {', '.join(sorted(configured)) or 'none'})")
    records = [run_record(row) for row in rows]
    zone = context.state.config.zone
    if fmt is RecordFormat.table:
        for record, row in zip(records, rows, strict=True):
            record["started"] = iso(row.started_ms, zone)
            record["snapshot"] = iso(row.snapshot_ms, zone)
    columns = ("id", "source", "status", "started", "snapshot", "fetched", "new", "updated", "unchanged",
               "ended", "rejected", "message")
    write_records(records, fmt, columns=columns, title=in_zone("sync runs", zone))


@inspect_app.command("sources")
def inspect_sources(
    fmt: Annotated[RecordFormat, typer.Option("--format", "-f", help="table, json, jsonl, csv.")]
    = RecordFormat.table,
) -> None:
    """Every source: its health (OK, Stale, Offline, SchemaError, Suspect) and since when, where it
    reads, its active events (those it lists now that `inspect events --status active` shows: a listed
    closure whose end has passed is ended, one not started yet planned), its newest snapshot.

    Offline: its newest poll could not fetch. SchemaError: it fetched what cannot be read. Suspect:
    far fewer items than usual, or every item rejected. Stale: no poll succeeded for three intervals,
    or (the Waze feed, or stale_after_s) the same data for too long. `last_success` is the start of
    its last poll that did not fail (a 304 or the same snapshot again included), as /health says it.
    Sources of the config that never synced are listed too; a disabled one is said to be; sources the
    store knows but the config no longer names have no state.
    """
    from exchange.health import read_health
    from exchange.runtime import now_ms
    from exchange.store import list_sources

    config = context.state.config
    engine = context.engine()
    at = now_ms()
    with engine.connect() as conn:
        rows = list_sources(conn, at)
        report = read_health(conn, config, at)
    health = {h.name: h for h in report.sources}
    zone = config.zone
    records = []
    for row in rows:
        record = source_record(row)
        if fmt is RecordFormat.table:
            record["newest_snapshot"] = iso(row.newest_snapshot_ms, zone)
            record["last_success"] = iso(row.last_success_ms, zone)
        records.append(record)
    known = {record["name"] for record in records}
    disabled = {source.name for source in config.sources if not source.enabled}
    records += [_never_synced(config, name) for name in [*health, *sorted(disabled)] if name not in known]
    shown_zone = zone if fmt is RecordFormat.table else None
    for record in records:
        found = health.get(record["name"])
        record["state"] = str(found.state) if found else None
        record["since"] = iso(found.since_ms, shown_zone) if found else None
        if found is not None and found.last_success_ms is not None:  # as /health says it: 304s and repeats too
            record["last_success"] = iso(found.last_success_ms, shown_zone)
        if found is not None:
            record["detail"] = found.detail
        elif record["name"] in disabled:
            record["detail"] = (f"disabled in the config: not polled; {record.get('active_events', 0)} live "
                                "event(s) kept as they are")
        else:
            record["detail"] = "not in the config"
    title = in_zone("sources", zone) if fmt is RecordFormat.table else "sources"
    write_records(records, fmt, columns=("name", "kind", "state", "since", "active_events", "newest_snapshot",
                                         "last_success", "detail", "location"), title=title)


def _never_synced(config: Config, name: str) -> dict[str, Any]:
    """The record of a configured source the store has not heard of yet: what the config says of it."""
    from adapters import build_source

    entry = config.source(name)
    record: dict[str, Any] = {"name": name, "kind": entry.kind, "namespace": None, "location": None,
                              "active_events": 0, "newest_snapshot": None, "last_success": None, "etag": None}
    try:
        source = build_source(entry, zone=config.zone)
    except (ExchangeError, ValueError):  # `config check` names what is wrong with it
        return record
    record["namespace"], record["location"] = source.namespace, source.location or None
    return record


@inspect_app.command("feed")
def inspect_feed(
    fmt: Annotated[RecordFormat, typer.Option("--format", "-f", help="table, json, jsonl, csv.")]
    = RecordFormat.table,
    target: Annotated[str | None, typer.Option(
        "--target", "-t", help="cifs, wzdx, datex2 or cwz: the compile report of the last publication for that "
        "target (what it held back and why, what it lost or approximated of each event).")] = None,
) -> None:
    """The Waze acceptance lint of every event that belongs in the feeds, what the last publish held
    back and why, and the feed's success share; with --target, that target's compile report.

    The compile report lists every event the last publication rendered for the target: "outcome" is
    published, "previous version" (a newer one is held back) or "held back"; "held_back" says why;
    "losses" what the target could not carry of it or approximated (one sentence each). The event's
    id is the same in every target (CIFS incident id, WZDx/CWZ feature id, DATEX II situation id).

    Blocking findings are reasons Waze would reject the event (no street or a house number in it;
    for a full closure, a ROAD_CLOSED without a lane impact: length outside 30 m - 20 km, more than
    one street, ends not at junctions; for works, hazards and lane closures these are warnings).
    Warnings include a ROAD_CLOSED with a lane impact and an event without an end that started
    more than 14 days ago (Waze may have expired it). Waze reportedly
    publishes nothing when fewer than about 80 % of a feed's incidents pass. "held_back" is why
    the event's current version is not in the feeds (a failed check; its last good version may
    still be served). An event whose stored row cannot be read is left out with a warning on stderr
    (publish holds it back).
    """
    if target is not None:
        _compile_report(target, fmt)
        return
    from exchange.confirm import observed_share
    from exchange.publish import eligible_events, held_back_now
    from exchange.runtime import now_ms
    from exchange.store import event_status
    from feeds.lint import feed_success_share, lint_event

    config = context.state.config
    placement = context.placement(reroute=False)  # looking changes nothing
    engine = context.engine()
    at = now_ms()
    eligible = eligible_events(engine, at_ms=at, keep_ended_ms=round(config.publish.keep_ended_h * 3_600_000))
    chosen = eligible.events
    for item in eligible.unreadable:
        context.skipped(item)
    held = held_back_now(engine)
    network = placement.network if placement is not None else None
    records: list[dict[str, Any]] = []
    findings = []
    linted_at = datetime.fromtimestamp(at / 1000, UTC)
    for event in chosen:
        found = lint_event(event, network, linted_at)
        findings.append(found)
        records.append({
            "id": event.id, "street": event.street,
            "status": event_status(event, at),
            "held_back": held.get(event.id),
            "blocking": "; ".join(p.message for p in found if p.severity == "error") or None,
            "warnings": "; ".join(p.message for p in found if p.severity != "error") or None,
        })
    write_records(records, fmt, columns=("id", "street", "status", "held_back", "blocking", "warnings"),
                  title="feed lint")
    share = feed_success_share(findings)
    held_here = sum(1 for event in chosen if event.id in held)
    unreadable = f"; {len(eligible.unreadable)} cannot be read" if eligible.unreadable else ""
    print(f"{len(chosen)} event(s); {share:.0%} have no blocking finding"
          f"{' (below the ~80% Waze reportedly needs)' if chosen and share < 0.8 else ''}"
          f"{f'; {held_here} held back by the last publish' if held_here else ''}{unreadable}", file=sys.stderr)
    with engine.connect() as conn:
        seen, live = observed_share(conn, at, context.state.config.zone)
    if live:
        print(f"Waze shows {seen} of the {live} published closure(s) in effect ({seen / live:.0%} observed in the "
              f"inbound feed; the lint predicts {share:.0%})", file=sys.stderr)


def _compile_report(name: str, fmt: RecordFormat) -> None:
    """``inspect feed --target``: one record per event the target's last publication rendered or held back."""
    from exchange.publish import compile_report
    from exchange.targets import TARGETS

    if name not in TARGETS:
        raise UsageError(f"unknown target {name!r}; known: {', '.join(TARGETS)}")
    at, report = compile_report(context.engine())
    part = report.get(name)
    if at is None or part is None:
        print(f"{name}: no publication has been rendered yet (run `exchange publish`)", file=sys.stderr)
        return
    when = datetime.fromtimestamp(at / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    if part.get("status") == "off":
        print(f"{name}: off: {part.get('reason')} (publication of {when})", file=sys.stderr)
        return
    held: dict[str, str] = part.get("held_back") or {}
    absent: dict[str, str] = part.get("absent") or {}
    losses: dict[str, list[str]] = part.get("losses") or {}
    joined = fmt in (RecordFormat.table, RecordFormat.csv)
    records = []
    for event_id in sorted(set(held) | set(losses) | set(part.get("carried") or ())):
        reason = held.get(event_id)
        outcome = ("previous version" if reason.startswith("newer version") else "held back") if reason else \
            "not in the feed yet" if event_id in absent else "published"
        lost = [absent[event_id], *losses.get(event_id, [])] if event_id in absent else losses.get(event_id, [])
        records.append({"id": event_id, "outcome": outcome, "held_back": reason,
                        "losses": ("; ".join(lost) or None) if joined else lost})
    write_records(records, fmt, columns=("id", "outcome", "held_back", "losses"), title=f"{name} compile report")
    failed = f"; failed: {part.get('reason')}" if part.get("status") == "failed" else ""
    not_yet = f", {len(absent)} not in the feed yet" if absent else ""
    print(f"{name}: publication of {when}: {part.get('events', 0)} event(s), {len(held)} held back{not_yet}, "
          f"{len(losses)} with losses{failed}", file=sys.stderr)
