"""``exchange closure add|update|end|cancel|list``: the city's own closures, typed by operators.

Every command that changes a closure prints its id on stdout and exits 0 once the change is
committed; the publication that follows (``publish.on_change``) only warns on stderr when it fails
or holds the closure back, so a script that retries never makes a second closure.
"""

from __future__ import annotations

import getpass
import os
import re
import sys
import traceback
from collections.abc import Mapping
from datetime import date, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from exchange.cli import context
from exchange.errors import ExchangeError, ItemRejected, UsageError
from exchange.output import Format, cut, event_record, in_zone, iso, write_records

if TYPE_CHECKING:
    from exchange.closures import Outcome

__all__ = ["closure_app"]

closure_app = typer.Typer(help="Add, change, end, cancel and list the city's own closures.", no_args_is_help=True)

STREET = typer.Option(help="Street name as Waze knows it (at least 2 characters, no house number).")
POLYLINE = typer.Option(help='Points in travel order, CIFS style: "LAT LON LAT LON ..." (WGS84).')
FROM = typer.Option("--from", help='Start point "LAT LON"; with --to, routed along --street when a network is set.')
TO = typer.Option("--to", help='End point "LAT LON".')
TYPE = typer.Option("--type", help="CIFS type: ROAD_CLOSED, CONSTRUCTION, HAZARD, ACCIDENT, ...")
SUBTYPE = typer.Option(help="CIFS subtype consistent with the type, e.g. ROAD_CLOSED_CONSTRUCTION.")
DIRECTION = typer.Option(help="ONE_DIRECTION (along the polyline) or BOTH_DIRECTIONS (on a divided road: both "
                         "carriageways, as two closures). `add`: BOTH_DIRECTIONS when not given; `update`: "
                         "kept when not given.")
START = typer.Option(help="ISO 8601 start; without an offset it is read in the city's time zone. Required for "
                     "ROAD_CLOSED.")
END = typer.Option(help="ISO 8601 end; without an offset, city time; a day alone (2026-12-03) is to the end "
                         "of that day, as `export --to` reads it. Leave out for an open end.")
DESCRIPTION = typer.Option(help="Short description (Waze shows about 40 characters).")
SCHEDULE = typer.Option(help="Active hours, one --schedule per day: DAY=HH:MM-HH:MM[,HH:MM-HH:MM] with DAY "
                        "everyday or monday..sunday; a night runs past midnight as two days (--schedule "
                        "friday=22:00-23:59 --schedule saturday=00:00-05:00). In `update`, the whole schedule: "
                        "give every day again.")
LANES = typer.Option("--lane-impact", help='Partial closure: "CLOSED_LANES:LEFT|MIDDLE|RIGHT", e.g. "1:RIGHT".')
VERIFIED_START = typer.Option(
    "--verified-start", help="The start is confirmed (a crew on site, a signed order): WZDx/CWZ "
    "is_start_date_verified. Never assumed.")
VERIFIED_END = typer.Option(
    "--verified-end", help="The end is confirmed: WZDx/CWZ is_end_date_verified. Never assumed; `closure end` is.")
OPERATOR = typer.Option(help="Who makes the change, recorded with the revision. Default: $USER.")
ID = typer.Argument(metavar="ID", help="The closure's id, as `closure add` printed.")


class Clearable(StrEnum):
    """What ``closure update --clear`` can remove (``closures.CLEARABLE``, spelled as the options)."""

    start = "start"
    end = "end"
    subtype = "subtype"
    description = "description"
    schedule = "schedule"
    lane_impact = "lane-impact"


def _clearable(value: str) -> Clearable:
    """A ``--clear`` field; one usage line naming the fields for any other (as every bad option)."""
    try:
        return Clearable(value)
    except ValueError:
        raise UsageError(f"--clear: {value!r} is not one of {', '.join(field.value for field in Clearable)} "
                         "(a required field cannot be cleared)") from None


def _operator(value: str | None) -> str:
    if value:
        return value
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _point(text: str, option: str) -> tuple[float, float]:
    from feeds.city import parse_polyline

    try:
        points = parse_polyline(text, option)
    except ItemRejected as exc:
        raise UsageError(exc.message) from exc
    if len(points) != 1:
        raise UsageError(f'{option}: expected one point "LAT LON", got {len(points)}')
    return points[0]


def _points(polyline: str | None, start: str | None, end: str | None) -> list[tuple[float, float]] | None:
    from feeds.city import parse_polyline

    if polyline and (start or end):
        raise UsageError("give either --polyline or --from/--to, not both")
    if polyline:
        try:
            return parse_polyline(polyline, "polyline")
        except ItemRejected as exc:
            raise UsageError(exc.message) from exc
    if start or end:
        if not (start and end):
            raise UsageError("--from and --to go together")
        return [_point(start, "--from"), _point(end, "--to")]
    return None


def _schedule(values: list[str] | None) -> dict[str, str] | None:
    if not values:
        return None
    schedule: dict[str, str] = {}
    for value in values:
        day, separator, hours = value.partition("=")
        if not separator:
            raise UsageError(f"--schedule: {value!r} is not DAY=HH:MM-HH:MM")
        key = day.strip().lower()
        # a repeated day adds windows (the option is repeatable), it never replaces the earlier ones
        schedule[key] = f"{schedule[key]},{hours.strip()}" if key in schedule else hours.strip()
    return schedule


def _lane_impact(value: str | None) -> dict[str, Any] | None:
    if not value:
        return None
    count, separator, side = value.partition(":")
    if not separator or not count.strip().isdigit():
        raise UsageError(f"--lane-impact: {value!r} is not CLOSED_LANES:LEFT|MIDDLE|RIGHT")
    if int(count) == 0:
        raise UsageError(f"--lane-impact: {value!r} closes no lane: give 1 or more (or no --lane-impact for a "
                         "closure of every lane)")
    if side.strip().upper() not in _ROADSIDES:
        raise UsageError(f"--lane-impact: {side.strip()!r} is not a roadside: LEFT, MIDDLE or RIGHT")
    return {"total_closed_lanes": int(count), "roadside": side.strip().upper()}


_ROADSIDES = ("LEFT", "MIDDLE", "RIGHT")


def _after_change(config: Any, engine: Any, closure_ids: tuple[str, ...]) -> None:
    """Publish at once when the config asks for it, so partners see the change on their next poll.

    The change is committed already: whatever happens here is a warning, never the exit code.
    """
    if config.publish is None or not config.publish.on_change:
        return
    from exchange.publish import publish

    saved = (f"closure {closure_ids[0]} is saved" if len(closure_ids) == 1
             else f"closures {' and '.join(closure_ids)} are saved")
    try:
        result = publish(engine, config, placement=context.placement())
    except ExchangeError as exc:
        print(f"warning: {saved}, but publishing failed: {exc.message}", file=sys.stderr)
        return
    except Exception as exc:  # a bug: keep its traceback, but the closure is saved all the same
        traceback.print_exc()
        print(f"warning: {saved}, but publishing failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return
    print(result.summary(), file=sys.stderr)
    held = getattr(result, "held_back", None) or {}
    for closure_id in closure_ids:
        if closure_id in held:
            reason = held[closure_id] if isinstance(held, Mapping) else "it fails the Waze acceptance lint"
            print(f"warning: closure {closure_id} is saved but held back from the feeds: {reason}", file=sys.stderr)


def _done(config: Any, engine: Any, closure_id: str, outcome: Outcome,
          links_before: Mapping[str, str | None] | None = None) -> None:
    """The id on stdout, a note on stderr (on a divided road it names the other carriageway's closure,
    changed with it; another source's report of the same closure that leaves the feeds for it, or goes
    out again: ``links_before`` is :func:`_city_links` before the change), and the publication when
    something changed."""
    print(closure_id, flush=True)
    if outcome.note:
        print(outcome.note, file=sys.stderr)
    if outcome.changed:
        _say_imported(engine, closure_id, outcome.action)
        _say_relinked(engine, closure_id, links_before or {})
        _after_change(config, engine, (closure_id, *outcome.also))


def _say_imported(engine: Any, closure_id: str, action: str | None) -> None:
    """For a closure a city source lists: what that source's next change of its record does to this one."""
    from sqlalchemy import select

    from exchange.schema import sightings

    with engine.connect() as conn:
        listing = sorted(conn.execute(select(sightings.c.source_name).where(sightings.c.event_id == closure_id))
                         .scalars())
    if not listing:
        return
    named = f"source{'s' if len(listing) > 1 else ''} {', '.join(listing)}"
    if action in ("ended", "cancelled"):
        print(f"note: {named} still list{'s' if len(listing) == 1 else ''} it: it stays {action} while listed "
              "(a change of its record there is taken, but not its status or end); `closure update --reopen` brings "
              "it back", file=sys.stderr)
    else:
        print(f"note: {named} list{'s' if len(listing) == 1 else ''} it: a changed time, description or schedule "
              "holds until the source changes that field; another street, points, type, direction or lanes last "
              "until its next edit of the record (change it there too)", file=sys.stderr)


def _city_links(engine: Any) -> dict[str, str | None]:
    """Every live city event's link (the event published in its place, None when it is published)."""
    from sqlalchemy import select

    from exchange.schema import events

    query = select(events.c.id, events.c.same_as).where(events.c.origin == "city", events.c.status == "active")
    with engine.connect() as conn:
        return {str(row.id): row.same_as for row in conn.execute(query)}


def _say_relinked(engine: Any, closure_id: str, before: Mapping[str, str | None]) -> None:
    """Name the reports of other sources the change took out of the feeds (now folded into this closure)
    or brought back (no longer folded into it), with their source."""
    from exchange.bulk import Bulk
    from exchange.closures import OPPOSITE_SUFFIX
    from exchange.same_closure import reporters

    first = closure_id.removesuffix(OPPOSITE_SUFFIX)
    mine = {first, first + OPPOSITE_SUFFIX}
    after = _city_links(engine)
    leaving = [eid for eid, link in after.items() if link in mine and before.get(eid, "new") is None]
    back = [eid for eid, link in before.items() if link in mine and eid in after and after[eid] is None]
    if not leaving and not back:
        return
    with engine.connect() as conn:
        sources = reporters(Bulk(conn), [*leaving, *back])
    for eid in sorted(leaving):
        source = sources[eid].source if eid in sources else "?"
        print(f"note: {eid} (source {source}) reports the same closure: it leaves the feeds, this one goes out "
              "in its place", file=sys.stderr)
    for eid in sorted(back):
        source = sources[eid].source if eid in sources else "?"
        print(f"note: {eid} (source {source}) still reports this closure: it goes out again "
              f"(`exchange inspect event {eid}`)", file=sys.stderr)


@closure_app.command("add")
def closure_add(
    street: Annotated[str, STREET],
    polyline: Annotated[str | None, POLYLINE] = None,
    start_point: Annotated[str | None, FROM] = None,
    end_point: Annotated[str | None, TO] = None,
    kind: Annotated[str, TYPE] = "ROAD_CLOSED",
    subtype: Annotated[str | None, SUBTYPE] = None,
    direction: Annotated[str | None, DIRECTION] = None,
    start: Annotated[str | None, START] = None,
    end: Annotated[str | None, END] = None,
    description: Annotated[str | None, DESCRIPTION] = None,
    schedule: Annotated[list[str] | None, SCHEDULE] = None,
    lane_impact: Annotated[str | None, LANES] = None,
    verified_start: Annotated[bool, VERIFIED_START] = False,
    verified_end: Annotated[bool, VERIFIED_END] = False,
    operator: Annotated[str | None, OPERATOR] = None,
) -> None:
    """Add a closure; prints only its new id on stdout.

    With a road network, both directions of a divided road (two one-way carriageways) are closed as
    two closures: the id printed, along the points, and ID-opposite along the other carriageway
    (stderr names both). `closure end`, `cancel` and `update` of either id change both.

    Example: exchange closure add --street "Main Street" --polyline "40.7 -74.0 40.701 -74.0"
    --type ROAD_CLOSED --subtype ROAD_CLOSED_CONSTRUCTION --start 2026-12-01T08:00:00-05:00
    """
    from exchange.closures import ClosureInput, Outcome, added_twice, create_closure
    from feeds.lint import is_full_closure

    points = _points(polyline, start_point, end_point)
    if points is None:
        raise UsageError("a closure needs --polyline or --from and --to")
    config, engine, placement = context.state.config, context.engine(), context.placement()
    spec = ClosureInput(
        street=street, points=points, type=kind, subtype=subtype, direction=direction, start=start,
        end=_whole_day(end),
        description=description, schedule=_schedule(schedule), lane_impact=_lane_impact(lane_impact),
        operator=_operator(operator), verified_start=verified_start, verified_end=verified_end,
    )
    links_before = _city_links(engine)
    created = create_closure(engine, spec, zone=config.zone, placement=placement)
    also = (created.opposite.id,) if created.opposite is not None else ()
    _say_times(created.event, config.zone, added=True)
    _say_blocking(created.event, placement)
    same = added_twice(engine, created.event, config.zone)
    if same:
        verb = "close" if is_full_closure(created.event) else "cover"
        print(f"note: {', '.join(same)} already {verb}{'s' if len(same) == 1 else ''} {created.event.street} there "
              "at overlapping times (added twice? `closure cancel` the one too many)", file=sys.stderr)
    _done(config, engine, created.event.id, Outcome(created.event, "created", created.note, also), links_before)


def _whole_day(end: str | None) -> str | None:
    """An end given as a day alone is the end of that day (midnight after it), the way people say "until
    Friday" and ``export --to`` reads a day; a time is left as it is.

    >>> _whole_day("2026-12-03"), _whole_day("2026-12-31"), _whole_day("2026-12-03T17:00")
    ('2026-12-04T00:00', '2027-01-01T00:00', '2026-12-03T17:00')
    """
    if end is None or not _DAY.fullmatch(end.strip()):
        return end
    try:
        day = date.fromisoformat(end.strip())
    except ValueError:
        return end  # not a day of the calendar: the time check says so
    return (day + timedelta(days=1)).isoformat() + "T00:00" if day < date.max else end


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _say_times(event: Any, zone: Any, *, added: bool) -> None:
    """The times as understood, in the city's zone (a ``Z`` typed out of habit is another hour there),
    and a warning when the end is already past: a closure added so is stored as ended and never
    published; one changed so is ended (the feeds say so for ``publish.keep_ended_h``)."""
    from exchange.model import to_millis
    from exchange.runtime import now_ms

    def local(moment: Any) -> str:
        return moment.astimezone(zone).isoformat(timespec="minutes") if moment is not None else "open"

    start = local(event.start_time) if event.start_time is not None else "now"
    verb = "closed" if event.type == "ROAD_CLOSED" else "in effect"  # a hazard closes nothing
    until = f"to {local(event.end_time)}" if event.end_time is not None else "with no end set"
    print(f"{verb} from {start} {until} ({zone})", file=sys.stderr)
    if event.end_time is not None and to_millis(event.end_time) <= now_ms():
        what = "stored as ended, it is not published" if added else "it is ended now"
        print(f"warning: its end {local(event.end_time)} is already past: {what} "
              "(a typo? `closure update ID --start ... --end ... --reopen` mends it)", file=sys.stderr)


def _say_blocking(event: Any, placement: Any) -> None:
    """What Waze would refuse in the closure (the acceptance lint's blocking findings), said at once: the
    publication's summary counts the feed's share only."""
    from exchange.model import from_millis
    from exchange.runtime import now_ms
    from feeds.lint import lint_event
    from feeds.problems import errors_only

    network = placement.network if placement is not None else None
    for problem in errors_only(lint_event(event, network, from_millis(now_ms()))):
        print(f"warning: Waze would refuse it: {problem.message}", file=sys.stderr)


@closure_app.command("update")
def closure_update(
    closure_id: Annotated[str, ID],
    street: Annotated[str | None, STREET] = None,
    polyline: Annotated[str | None, POLYLINE] = None,
    start_point: Annotated[str | None, FROM] = None,
    end_point: Annotated[str | None, TO] = None,
    kind: Annotated[str | None, TYPE] = None,
    subtype: Annotated[str | None, SUBTYPE] = None,
    direction: Annotated[str | None, DIRECTION] = None,
    start: Annotated[str | None, START] = None,
    end: Annotated[str | None, END] = None,
    description: Annotated[str | None, DESCRIPTION] = None,
    schedule: Annotated[list[str] | None, SCHEDULE] = None,
    lane_impact: Annotated[str | None, LANES] = None,
    verified_start: Annotated[
        bool | None,
        typer.Option("--verified-start/--unverified-start", help="The start is confirmed, or no longer. Default: "
                     "kept, except a changed start is unverified."),
    ] = None,
    verified_end: Annotated[
        bool | None,
        typer.Option("--verified-end/--unverified-end", help="The end is confirmed, or no longer. Default: kept, "
                     "except a changed end is unverified."),
    ] = None,
    clear: Annotated[
        list[str] | None,
        typer.Option("--clear", metavar="FIELD", help="Remove an optional field, repeatable: start, end, subtype, "
                     "description, schedule, lane-impact."),
    ] = None,
    reopen: Annotated[
        bool, typer.Option("--reopen", help="Make an ended or cancelled closure active again; an end already "
                           "past is cleared unless --end gives a new one.")
    ] = False,
    operator: Annotated[str | None, OPERATOR] = None,
) -> None:
    """Change the fields given; every other one stays. The change is a revision with the operator.

    An ended or cancelled closure is refused unless --reopen is given. One whose stored row cannot be
    read (a time out of range, text that is not UTF-8, a geometry or details the model refuses) is
    refused with the reason (exit 1); `closure end` and `closure cancel` still work on it.

    Either closure of a divided road's pair (ID and ID-opposite) changes both. A change that would
    split the pair, or make one closure a pair (moved off or onto a divided road, --direction
    ONE_DIRECTION), is refused (exit 2): cancel and add instead.
    """
    from exchange.closures import update_closure

    changes: dict[str, Any] = {
        key: value for key, value in {
            "street": street, "type": kind, "subtype": subtype, "direction": direction, "start": start,
            "end": _whole_day(end), "description": description, "schedule": _schedule(schedule),
            "lane_impact": _lane_impact(lane_impact), "points": _points(polyline, start_point, end_point),
            "verified_start": verified_start, "verified_end": verified_end,
        }.items() if value is not None
    }
    cleared = [_clearable(field).name for field in clear or ()]
    if not changes and not cleared and not reopen:
        raise UsageError("nothing to change: give at least one option")
    config, engine, placement = context.state.config, context.engine(), context.placement()
    links_before = _city_links(engine)
    outcome = update_closure(engine, closure_id, changes, zone=config.zone, placement=placement,
                             operator=_operator(operator), clear=cleared, reopen=reopen)
    if outcome.event is not None and outcome.action is not None and ({"start", "end"} & changes.keys() or reopen):
        _say_times(outcome.event, config.zone, added=False)
    if outcome.event is not None and outcome.changed:
        _say_blocking(outcome.event, placement)
    _done(config, engine, closure_id, outcome, links_before)


@closure_app.command("end")
def closure_end(
    closure_id: Annotated[str, ID],
    cancel: Annotated[
        bool, typer.Option("--cancel", help="Withdraw it instead: the same as `closure cancel`.")
    ] = False,
    operator: Annotated[str | None, OPERATOR] = None,
) -> None:
    """End a closure now. It stays in the CIFS feed with its end time for `publish.keep_ended_h` hours.

    One that has not started yet is cancelled instead (it leaves the feeds, with a note on stderr);
    one whose end is already past keeps that end. Ending an ended or cancelled one changes nothing.
    One whose stored row cannot be read is ended all the same: only its status and end change (a
    note on stderr names the reason), so an end past the year 9999 is replaced by now. Either closure
    of a divided road's pair (ID and ID-opposite) ends both.
    """
    from exchange.closures import end_closure

    config, engine = context.state.config, context.engine()
    links_before = _city_links(engine)
    outcome = end_closure(engine, closure_id, operator=_operator(operator), cancel=cancel, zone=config.zone)
    _done(config, engine, closure_id, outcome, links_before)


@closure_app.command("cancel")
def closure_cancel(
    closure_id: Annotated[str, ID],
    operator: Annotated[str | None, OPERATOR] = None,
) -> None:
    """Withdraw a closure in any state (planned, active, ended): it leaves the feeds at once.

    Cancelling a cancelled closure changes nothing (exit 0). `closure update --reopen` brings it back.
    One whose stored row cannot be read is cancelled all the same: only its status changes. Either
    closure of a divided road's pair (ID and ID-opposite) cancels both.
    """
    from exchange.closures import cancel_closure

    config, engine = context.state.config, context.engine()
    links_before = _city_links(engine)
    outcome = cancel_closure(engine, closure_id, operator=_operator(operator), zone=config.zone)
    _done(config, engine, closure_id, outcome, links_before)


#: characters of a description shown in ``closure list``'s table (the machine formats have it whole)
_LISTED_DESCRIPTION = 80


@closure_app.command("list")
def closure_list(
    status: Annotated[
        str | None,
        typer.Option(help="planned (not started yet), active (started, not over), ended (or its end has "
                     "passed) or cancelled. Default: all."),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="table, json, jsonl, geojson, csv.")] = Format.table,
) -> None:
    """City events (closures typed here and imported ones), newest first, with what the last publish
    held back and why (`held_back`) and, for ROAD_CLOSED, what the inbound Waze feed shows of it
    (`waze`: not started yet, not published, published and not seen in Waze yet, seen in Waze since,
    traffic flowing through it, ended). A closure published and in effect for
    `publish.waze_unseen_after_min` (60) minutes that Waze does not show is warned of on stderr.
    One whose stored row cannot be read is left out with a warning on stderr naming it and why."""
    from exchange.cli.waze import waze_fields
    from exchange.publish import held_back_now
    from exchange.runtime import now_ms
    from exchange.store import STATUSES, EventFilter, iter_events, readable, shown_status

    if status and status not in STATUSES:
        raise UsageError(f"--status: {status!r} is not one of {', '.join(STATUSES)}")
    config, engine, at = context.state.config, context.engine(), now_ms()
    where = EventFilter(kind="city", status=status, at_ms=at)
    with engine.connect() as conn:
        found = list(readable(iter_events(conn, where), context.skipped))
    held = held_back_now(engine)
    title = "city closures"
    records = []
    in_waze = waze_fields(engine, [item.row for item in found], held, at, table=fmt is Format.table)
    for item, waze in zip(found, in_waze, strict=True):
        row, details = item.row, item.event.details
        record = event_record(row)
        record["status"] = shown_status(row, at)
        record["description"] = details.description if details else None
        record["held_back"] = held.get(item.event.id)
        record["waze"] = waze
        if fmt is Format.table:
            record["start_time"] = iso(row["start_ms"], config.zone)
            record["end_time"] = iso(row["end_ms"], config.zone)
            # a list, one closure a few lines: an agency's 400-character description is `inspect event`'s to show
            if record["description"]:
                record["description"] = cut(record["description"], _LISTED_DESCRIPTION)
            if row["same_as"] and not record["held_back"]:  # machine formats have same_as itself
                record["held_back"] = f"left out: the same closure as {row['same_as']} goes out in its place"
        records.append(record)
    if fmt is Format.table:
        title = in_zone(title, config.zone)
    write_records(records, fmt, columns=("id", "type", "subtype", "status", "street", "direction", "start_time",
                                         "end_time", "description", "held_back", "waze"), title=title)
