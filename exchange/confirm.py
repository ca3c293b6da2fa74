"""Two-way confirmation: Waze's own reports tell the city that a closure is live in Waze.

A crowd ``ROAD_CLOSED`` alert, or a level-5 jam whose ``blockingAlertUuid`` points at a crowd
``ROAD_CLOSED`` alert, that lies on the road segments of a city closure is linked to it, and the
closure records ``visible_in_waze_since``. Segments are compared without direction (a closure of
both directions is confirmed by a report in either one). Crowd closures that match no city event
are what operators should look at (``inspect events --unconfirmed-closures``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, select

from exchange.bulk import Bulk, loads
from exchange.schema import confirmations, events

__all__ = ["confirmations_of", "link_confirmations", "unconfirmed_closure_ids"]


def _segments(road_match: Any) -> set[tuple[int, int, int]]:
    match = loads(road_match) or {}
    return {(way, min(a, b), max(a, b)) for way, a, b in match.get("edges") or []}


def _closures(db: Bulk) -> dict[str, set[tuple[int, int, int]]]:
    rows = db.fetch(
        "SELECT id, road_match FROM events WHERE origin = 'city' AND category = 'ROAD_CLOSED' "
        "AND status = 'active' AND road_match IS NOT NULL"
    )
    return {eid: segments for eid, match in rows if (segments := _segments(match))}


def _crowd_reports(db: Bulk) -> list[tuple[str, str, set[tuple[int, int, int]]]]:
    """(crowd event id, how, segments) of crowd closure reports and the blocked jams that point at one."""
    alerts = db.fetch(
        "SELECT id, source_id, source, road_match FROM events WHERE origin = 'crowd' AND kind = 'alert' "
        "AND category = 'ROAD_CLOSED' AND status = 'active'"
    )
    reports = [(eid, "road-closed-alert", _segments(match)) for eid, _sid, _ns, match in alerts]
    closed_alerts = {(namespace, sid) for _eid, sid, namespace, _match in alerts}
    jams = db.fetch(
        "SELECT id, source, blocking_alert_uuid, road_match FROM events WHERE origin = 'crowd' AND kind = 'jam' "
        "AND level = 5 AND blocking_alert_uuid IS NOT NULL AND status = 'active'"
    )
    reports.extend(
        (eid, "blocked-jam", _segments(match))
        for eid, namespace, blocking, match in jams
        if (namespace, blocking) in closed_alerts
    )
    return [report for report in reports if report[2]]


def link_confirmations(conn: Connection, now_ms: int) -> int:
    """Link crowd reports to the city closures they lie on; returns how many links are new."""
    db = Bulk(conn)
    closures = _closures(db)
    if not closures:
        return 0
    known = {(row.city_event_id, row.crowd_event_id) for row in conn.execute(select(confirmations))}
    new: list[tuple[Any, ...]] = []
    for crowd_id, how, segments in _crowd_reports(db):
        for city_id, closed in closures.items():
            if segments & closed and (city_id, crowd_id) not in known:
                new.append((city_id, crowd_id, now_ms, how))
    db.insert(confirmations, ("city_event_id", "crowd_event_id", "linked_ms", "how"), new)
    confirmed = sorted({row[0] for row in new})
    db.where_in(
        "UPDATE events SET visible_in_waze_since_ms = COALESCE(visible_in_waze_since_ms, ?) WHERE",
        "id", confirmed, (now_ms,), rows=False,
    )
    return len(new)


def unconfirmed_closure_ids(conn: Connection) -> list[str]:
    """Active crowd ROAD_CLOSED alerts linked to no city event."""
    linked = select(confirmations.c.crowd_event_id)
    query = select(events.c.id).where(
        events.c.origin == "crowd", events.c.kind == "alert", events.c.category == "ROAD_CLOSED",
        events.c.status == "active", events.c.id.not_in(linked),
    )
    return list(conn.execute(query).scalars())


def confirmations_of(conn: Connection, city_event_id: str) -> Iterable[Any]:
    query = select(confirmations).where(confirmations.c.city_event_id == city_event_id)
    return conn.execute(query.order_by(confirmations.c.linked_ms, confirmations.c.crowd_event_id)).all()
