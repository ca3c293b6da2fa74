"""A new road network re-routes what is live.

Every live city event keeps the directed edges it was placed on (``road_match``): a closure's
published polyline follows them. When the configured network changes (a refreshed OSM extract, a
new centerline), those edges may no longer exist, or no longer be the road. So when a command
loads a network whose fingerprint differs from the one the store was last placed on, every active
city event is placed again on the new one (lines as :meth:`Placement.place_city_lines` does, points
matched again) and each is reported:

* ``unchanged``: the same edges and polyline;
* ``re-routed``: new edges (and the polyline along them), recorded as a ``rerouted`` revision;
* ``no longer routable``: the new network cannot place it; its polyline is kept as it was, its
  edges are dropped (nothing keeps edges that no longer exist) and ``road_match.reason`` says why,
  so the lint flags it.

Ended and cancelled events are left alone: they are no longer routed to anything.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Engine, func, select

from exchange.bulk import Bulk, dumps, loads
from exchange.db import writing
from exchange.errors import NetworkElsewhere
from exchange.model import Event, RoadMatch, Status
from exchange.runtime import now_ms
from exchange.schema import events, meta
from exchange.store import (
    EVENT_COLUMNS,
    UPDATE_COLUMNS,
    StoredEvent,
    diff_rows,
    event_to_row,
    event_values,
    insert_revisions,
    read_event,
    read_rows,
    select_events,
)
from geo.imported import NO_LONGER_ROUTABLE
from geo.match import point_candidates
from geo.names import SAME_STREET, name_similarity

if TYPE_CHECKING:
    from exchange.placement import Placement
    from geo.network import RoadNetwork

__all__ = ["NETWORK_KEY", "Rerouted", "describe_reroute", "reroute_if_network_changed", "reroute_live"]

#: the ``meta`` row remembering the network the store's events were last placed on
NETWORK_KEY = "network"

UNCHANGED, REROUTED, UNROUTABLE = "unchanged", "re-routed", "no longer routable"


@dataclass(frozen=True, slots=True)
class Rerouted:
    """What re-routing did to one live city event."""

    id: str
    street: str | None
    outcome: str  # UNCHANGED, REROUTED or UNROUTABLE
    detail: str | None = None

    def as_record(self) -> dict[str, Any]:
        return {"id": self.id, "street": self.street, "outcome": self.outcome, "detail": self.detail}


def reroute_if_network_changed(engine: Engine, placement: Placement) -> list[Rerouted] | None:
    """Re-route every live city event when ``placement``'s network is not the one the store was last
    placed on, or when one of them was stored while no network could be loaded (a daemon that ran
    without its missing file); None when neither (nothing done)."""
    fingerprint = placement.network.fingerprint()
    with engine.connect() as conn:
        known = conn.execute(select(meta.c.value).where(meta.c.key == NETWORK_KEY)).scalar_one_or_none()
        unplaced = conn.execute(select(events.c.id).where(
            events.c.origin == "city", events.c.status == Status.ACTIVE.value, events.c.road_match.is_(None),
        ).limit(1)).first()
    if isinstance(known, dict) and known.get("fingerprint") == fingerprint and unplaced is None:
        return None
    return reroute_live(engine, placement)


def reroute_live(engine: Engine, placement: Placement, *, force: bool = False) -> list[Rerouted]:
    """Place every active city event again on ``placement``'s network, store what changed, and
    remember the network; one :class:`Rerouted` per event, in id order.

    A network that places none of the live events that had a road (at least two, or one lying outside
    its extent), or whose area holds none of the store's events, is taken for the wrong file (another
    city's extract) and refused with ``NetworkElsewhere``, nothing changed, unless ``force``: stripping
    every closure of its road is not what a refreshed extract does."""
    at = now_ms()
    query = select_events().where(events.c.origin == "city", events.c.status == Status.ACTIVE.value)
    stored: list[tuple[Any, Event]] = []
    with engine.connect() as conn:
        for row in read_rows(conn, query.order_by(events.c.id)):
            found = read_event(row)
            if isinstance(found, StoredEvent):
                stored.append((found.row, found.event))  # an unreadable row is reported by every list already
    placed = [event.model_copy(deep=True) for _row, event in stored]
    lines = [event for event in placed if event.geometry.type == "LineString"]
    points = [event for event in placed if event.geometry.type == "Point"]
    if lines:
        placement.place_city_lines(lines)
    if points:
        placement.match(points)
    report: list[Rerouted] = []
    updates: list[tuple[Any, ...]] = []
    diffs: list[dict[str, Any]] = []
    for (row, before), after in zip(stored, placed, strict=True):
        outcome = _outcome(before, after, placement.network)
        if outcome.outcome == UNROUTABLE:
            after.geometry = before.geometry  # kept as it was; only the edges it no longer has go
        if outcome.outcome != UNCHANGED:
            new_row = event_to_row(after, now_ms=at)
            changes = diff_rows(tuple(row[c] for c in EVENT_COLUMNS), new_row)
            if changes:  # one that stays unroutable is reported again, not rewritten
                diffs.append(changes)
                updates.append((*event_values(new_row, UPDATE_COLUMNS), after.id))
        report.append(outcome)
    network = placement.network
    if not force:
        with engine.connect() as conn:
            known = conn.execute(select(meta.c.value).where(meta.c.key == NETWORK_KEY)).scalar_one_or_none()
            elsewhere = events_elsewhere(conn, network.lonlat_bounds())
        _refuse_a_network_of_elsewhere(stored, report, placement, known if isinstance(known, dict) else {},
                                       elsewhere=elsewhere)
    remembered = {"fingerprint": network.fingerprint(), "path": str(placement.settings.path),
                  "directed_edges": network.edge_count}
    crowd = _unplaced_crowd(engine, placement)
    with writing(engine) as conn:
        db = Bulk(conn)
        if updates:
            db.update(events, UPDATE_COLUMNS, "id", updates)
            insert_revisions(db, [values[-1] for values in updates], "rerouted", at_ms=at, changes=diffs)
        db.update(events, ("road_match",), "id", crowd)  # a crowd measure: no revision
        _forget_lost_edges(db, network)
        conn.execute(meta.delete().where(meta.c.key == NETWORK_KEY))
        conn.execute(meta.insert().values(key=NETWORK_KEY, value=remembered, updated_ms=at))
    return report


def _unplaced_crowd(engine: Engine, placement: Placement) -> list[tuple[Any, ...]]:
    """(road_match, id) of the live crowd events that had no road (ingested under a network of another
    place, say) and that this network places: otherwise only their next change would match them."""
    query = select_events().where(events.c.origin == "crowd", events.c.status == Status.ACTIVE.value)
    unplaced: list[Event] = []
    with engine.connect() as conn:
        for row in read_rows(conn, query):
            found = read_event(row)
            if isinstance(found, StoredEvent) and not (found.event.road_match and found.event.road_match.edges):
                unplaced.append(found.event)
    if not unplaced:
        return []
    placement.match(unplaced)
    return [(dumps(event.road_match.model_dump(mode="json")), event.id) for event in unplaced
            if event.road_match is not None and event.road_match.edges]


def events_elsewhere(conn: Any, bounds: tuple[float, float, float, float]) -> int:
    """How many events the store holds when none of them lies in ``bounds`` (west, south, east, north);
    0 when one does, or when it holds none."""
    west, south, east, north = bounds
    meets = conn.execute(select(events.c.id).where(
        events.c.max_lon >= west, events.c.min_lon <= east, events.c.max_lat >= south, events.c.min_lat <= north,
    ).limit(1)).first()
    if meets is not None:
        return 0
    return int(conn.execute(select(func.count()).select_from(events)).scalar_one())


def _refuse_a_network_of_elsewhere(stored: Sequence[tuple[Any, Event]], report: Sequence[Rerouted],
                                   placement: Placement, known: Mapping[str, Any], *, elsewhere: int) -> None:
    """``NetworkElsewhere`` for a network of another place: one that places none of the live events that
    had a road (two or more, or one lying outside it), or whose area holds none of the store's events
    (``elsewhere``: how many there are, all outside it)."""
    why = None
    had_a_road = [(event, item) for (_row, event), item in zip(stored, report, strict=True)
                  if event.road_match is not None and event.road_match.edges]
    if had_a_road and all(item.outcome == UNROUTABLE for _event, item in had_a_road):
        inside = placement.network.km_outside(
            [place for event, _item in had_a_road for place in event.geometry.positions]) == 0.0
        if len(had_a_road) >= _ELSEWHERE_LEAST:
            why = f"places none of the {len(had_a_road)} live city events that had a road"
        elif not inside:
            why = "does not place the one live city event that had a road, which lies outside it"
    if why is None and elsewhere:
        placed_on = f" (placed on {known['path']} before)" if known.get("path") else ""
        why = f"holds none of the store's {elsewhere} event(s){placed_on} in its area"
    if why is not None:
        raise NetworkElsewhere(
            f"the road network {placement.settings.path} {why}: the file of another place? Nothing was changed: "
            "correct [network] path, or run `exchange network reroute --force` to place the events on it")


#: live events with a road that a network must all fail to place to be taken for the wrong file (one
#: is enough where it lies outside the network's extent)
_ELSEWHERE_LEAST = 2


def _forget_lost_edges(db: Bulk, network: RoadNetwork) -> None:
    """Ended and cancelled city events are not placed again (what went out stays as it was), but
    none keeps edges the network no longer has."""
    index = network.edge_index()
    rows = db.fetch("SELECT id, road_match FROM events WHERE origin = 'city' AND status <> 'active' "
                    "AND road_match IS NOT NULL")
    kept: list[tuple[Any, ...]] = []
    for event_id, stored in rows:
        match = loads(stored) or {}
        edges = [list(edge) for edge in match.get("edges") or []]
        present = [edge for edge in edges if tuple(edge) in index]
        if len(present) < len(edges):
            lost = f"{len(edges) - len(present)} of its edges are not in the road network any more"
            kept.append((dumps({**match, "edges": present, "reason": lost}), event_id))
    db.update(events, ("road_match",), "id", kept)


def _street_gone(event: Event, network: RoadNetwork) -> str | None:
    """Why the new placement cannot be the event's road: none of its edges bears the event's street
    and no edge of that street lies near them (the street is gone, and the line fell onto a
    neighbour); None otherwise. A street still there beside a wrong placement is a naming matter
    the lint reports, not a lost road."""
    street = (event.street or "").strip()
    assert event.road_match is not None
    if not street:
        return None
    index = network.edge_index()
    placed = [edge for key in event.road_match.edges if (edge := index.get(key)) is not None]
    names = {name for edge in placed for name in network.link_names[int(network.edge_link[edge])]}
    if not names or any(name_similarity(street, name) >= SAME_STREET for name in names):
        return None
    coords = np.vstack([network.edge_coords(edge) for edge in placed])
    near = point_candidates(network, coords[:, 0], coords[:, 1], _STREET_NEAR_M)
    if any(name_similarity(street, name) >= SAME_STREET
           for link in np.unique(network.edge_link[near.edge]) for name in network.link_names[int(link)]):
        return None
    return f"{street!r} is not on the road network there (the nearest road is {sorted(names)[0]!r})"


#: how near a placement another edge of the event's street shows the street is still there (metres)
_STREET_NEAR_M = 60.0


def describe_reroute(report: Sequence[Rerouted], *, only_changes: bool = False) -> list[str]:
    """The re-route report in lines for an operator: a summary, then one line per event (changed
    ones only, with ``only_changes``)."""
    counts = Counter(item.outcome for item in report)
    lines = [f"road network: {len(report)} live city event(s) placed on it: "
             + ", ".join(f"{counts[outcome]} {outcome}" for outcome in (UNCHANGED, REROUTED, UNROUTABLE))]
    for item in report:
        if not (only_changes and item.outcome == UNCHANGED):
            detail = f" ({item.detail})" if item.detail else ""
            lines.append(f"  {item.id} {item.street or '-'}: {item.outcome}{detail}")
    return lines


def _outcome(before: Event, after: Event, network: RoadNetwork) -> Rerouted:
    old = before.road_match.edges if before.road_match is not None else []
    match = after.road_match
    gone = _street_gone(after, network) if match is not None and match.edges else None
    if match is None or not match.edges or gone is not None:
        why = gone or (match.reason if match is not None and match.reason else "no match")
        after.road_match = RoadMatch(reason=f"{NO_LONGER_ROUTABLE}: {why}; the polyline is published as it was")
        return Rerouted(after.id, after.street, UNROUTABLE, why)
    if match.edges == old and after.geometry == before.geometry:
        after.road_match = before.road_match
        return Rerouted(after.id, after.street, UNCHANGED)
    detail = f"{len(old)} edge(s) -> {len(match.edges)} edge(s)" if old else f"placed on {len(match.edges)} edge(s)"
    return Rerouted(after.id, after.street, REROUTED, detail)
