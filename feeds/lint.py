"""Waze acceptance lint: what gets a closure refused or turned into a "map problem", per event.

Waze publishes a closure automatically only when it can place it: a polyline along one street,
from junction to junction, 30 m to 20 km long (formats.md §2.5, §2.6). Closures it cannot place
go to manual review, and a feed whose share of placeable closures drops too low is reportedly
not published at all (about 80 %, :data:`PUBLISH_THRESHOLD`). :func:`lint_event` reports, for one
event:

* blocking (``"error"``) for every event: no street, or a street with a house number ("1200 Main
  St", "Main Street 12"; route, ordinal and numbered names such as "Interstate 880", "B 14",
  "8th Street" or "Carrera 7" are names, see :func:`geo.names.has_house_number`);
* blocking for a full closure only (a ROAD_CLOSED without a lane impact, :func:`is_full_closure`):
  a polyline of one point, shorter than :data:`MIN_LENGTH_M` or longer than :data:`MAX_LENGTH_M`
  (measured in metres in the local UTM zone); a line of two points longer than :data:`CHORD_M`
  that no network placed (a chord across the map, not the road's shape); with a road network,
  each finding naming the cause: a line running against the one-way road its matched edges
  follow ("drawn against one-way ..."; the junction gaps that follow from it are not reported),
  a street that is not the name of the road it lies on, matched edges on several streets (the
  closure spans several streets: split it), first or last point farther than
  :data:`JUNCTION_TOLERANCE_M` from a junction of its matched edges (Waze closes whole segments).
  For CONSTRUCTION, HAZARD, the other types and lane closures Waze shows the event where it is
  given, so the same findings are warnings;
* blocking for every ONE_DIRECTION line whose source signs a direction (WZDx ``northbound``,
  ``eastbound``, ...: the direction the traffic flows, not a heading) when its overall bearing
  (first to last point: the point order is the closed travel direction), as published, is more
  than :data:`AGAINST_DIRECTION_DEG` off that direction's nominal heading: "drawn against its
  stated direction", or, where the road network reversed it to follow a one-way road
  (:mod:`geo.imported`), "the road network reverses it ... against the direction its source
  signs". Publishing holds it back even when ``publish.hold_back_failing`` is off
  (``Problem.holds_back``); it is never reversed on its bearing alone, and a network proves a
  line's order only on a one-way road or carriageway (on a two-way street it is held back as
  without a network);
* blocking, and held back the same way, for an event more than :data:`FAR_OUTSIDE_KM` outside the
  road network's extent (any category): a typo in its coordinates, not a road the extract left out
  (one just off the extract is a warning);
* warning only: how placing it on the network changed the line (``road_match.note``: reversed,
  routed, extended to whole segments); a ROAD_CLOSED with a lane impact (``lane_impact``, or a lane list with an open
  lane): Waze asks for ROAD_CLOSED only when every lane is closed, a partial closure is a lane
  impact on CONSTRUCTION (or HAZARD). A warning, not an error: Waze still takes the event, it
  just closes the whole road; a description over :data:`MAX_DESCRIPTION` characters; an event not
  matched to the loaded network (the network checks are then skipped); a closure or work zone
  with no road network configured (its polyline is taken on trust); given the caller's ``now``,
  an event without an end that started more than :data:`OPEN_ENDED_DAYS` days before (Waze may
  have expired it); a ONE_DIRECTION line whose bearing is between :data:`DISAGREES_DEG` and
  :data:`AGAINST_DIRECTION_DEG` off its signed direction (a bend, or drawn the wrong way: check).

The lint does no I/O and reads no clock: the caller passes the time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from exchange.model import Category, Event, LineString
from feeds.problems import Problem, Severity, has_errors
from geo.closure import REVERSED
from geo.crs import MetricFrame
from geo.imported import NO_LONGER_ROUTABLE, NOT_ON_A_ROAD
from geo.names import SAME_STREET, has_house_number, name_similarity
from geo.network import RoadNetwork, bearing_deg, heading_difference

__all__ = [
    "AGAINST_DIRECTION_DEG",
    "CHORD_M",
    "CLOSURE_CATEGORIES",
    "DISAGREES_DEG",
    "FAR_OUTSIDE_KM",
    "JUNCTION_TOLERANCE_M",
    "MAX_DESCRIPTION",
    "MAX_LENGTH_M",
    "MIN_LENGTH_M",
    "OPEN_ENDED_DAYS",
    "PUBLISH_THRESHOLD",
    "SIGNED_HEADINGS",
    "feed_success_share",
    "is_full_closure",
    "line_bearing_deg",
    "lint_event",
    "polyline_length_m",
]

MIN_LENGTH_M = 30.0
MAX_LENGTH_M = 20_000.0
JUNCTION_TOLERANCE_M = 10.0
MAX_DESCRIPTION = 40
#: below this share of events without a blocking finding, Waze reportedly publishes nothing
PUBLISH_THRESHOLD = 0.8
#: categories published as closures and work zones: without a road network their polyline is taken on trust
CLOSURE_CATEGORIES = frozenset({Category.ROAD_CLOSED, Category.CONSTRUCTION})
#: an event without an end that started more than this many days ago may have been expired by Waze
OPEN_ENDED_DAYS = 14
#: a line's bearing more than this off its signed direction: drawn against it (blocks, held back without a network)
AGAINST_DIRECTION_DEG = 135.0
#: a line's bearing more than this (and at most AGAINST_DIRECTION_DEG) off its signed direction: a warning
DISAGREES_DEG = 90.0
#: a two-point line longer than this (metres) is a chord across the map, not the road's shape
CHORD_M = 200.0
#: an event this far outside the road network's extent (km) is no road of the city's a smaller extract
#: left out, but a typo in its coordinates: it blocks where one just off the extract is a warning
FAR_OUTSIDE_KM = 50.0
#: the nominal heading of each signed direction (WZDx ``core_details.direction``), degrees clockwise from north
SIGNED_HEADINGS = {"northbound": 0.0, "eastbound": 90.0, "southbound": 180.0, "westbound": 270.0}


def _points(event: Event) -> list[tuple[float, float]]:
    if isinstance(event.geometry, LineString):
        return list(event.geometry.coordinates)
    return [event.geometry.coordinates]


def polyline_length_m(coordinates: Sequence[tuple[float, float]]) -> float:
    """Length in metres of a ``(lon, lat)`` line, measured in the UTM zone of its first point.

    >>> round(polyline_length_m([(-84.091134, 39.414714), (-84.091072, 39.423646)]))
    992
    """
    if len(coordinates) < 2:
        return 0.0
    lon = np.fromiter((p[0] for p in coordinates), dtype=np.float64, count=len(coordinates))
    lat = np.fromiter((p[1] for p in coordinates), dtype=np.float64, count=len(coordinates))
    x, y = MetricFrame.around(float(lon[0]), float(lat[0])).to_metric(lon, lat)
    return float(np.hypot(np.diff(x), np.diff(y)).sum())


def line_bearing_deg(coordinates: Sequence[tuple[float, float]]) -> float | None:
    """Bearing (degrees clockwise from north) of a ``(lon, lat)`` line from its first to its last
    point, in the UTM zone of its first point; None when they are the same place.

    It is a grid bearing: off true north by the zone's convergence (up to about 3 degrees at
    mid latitudes), nothing next to the 90 and 135 degree thresholds of the direction check.

    >>> round(line_bearing_deg([(-84.091134, 39.414714), (-84.091072, 39.423646)]))
    358
    >>> round(line_bearing_deg([(-84.09, 39.41), (-84.10, 39.41)]))
    268
    """
    if len(coordinates) < 2:
        return None
    (lon0, lat0), (lon1, lat1) = coordinates[0], coordinates[-1]
    x, y = MetricFrame.around(lon0, lat0).to_metric(np.array([lon0, lon1]), np.array([lat0, lat1]))
    dx, dy = float(x[1] - x[0]), float(y[1] - y[0])
    if dx == 0.0 and dy == 0.0:
        return None
    return float(bearing_deg(np.array([dx]), np.array([dy]))[0])


def _signed_direction(event: Event) -> str | None:
    """The direction of traffic flow the source signs (WZDx ``direction``), when it is a compass one."""
    kept = event.attributes.get("wzdx")
    direction = kept.get("direction") if isinstance(kept, dict) else None
    return direction if isinstance(direction, str) and direction in SIGNED_HEADINGS else None


def _direction_problems(event: Event, points: list[tuple[float, float]], where: str) -> list[Problem]:
    """A ONE_DIRECTION line drawn against (or across) the direction its source signs."""
    if event.direction != "ONE_DIRECTION":
        return []
    signed = _signed_direction(event)
    bearing = line_bearing_deg(points) if signed is not None else None
    if signed is None or bearing is None:
        return []
    off = float(heading_difference(np.array([bearing]), np.array([SIGNED_HEADINGS[signed]]))[0])
    if off > AGAINST_DIRECTION_DEG:
        # Published so, it would close the other direction's traffic. The network settles a line's order
        # only on a one-way road or carriageway; a two-way street proves nothing, and a line the network
        # reversed against what its source signs is a disagreement between the two: held back either way.
        note = event.road_match.note if event.road_match is not None else None
        if note is not None and REVERSED in note:
            message = (f"the road network reverses it (heading {bearing:.0f} degrees) against the direction its source "
                       f"signs ({signed}): the source and the network's one-way road disagree")
        else:
            message = f"drawn against its stated direction ({signed}, heading {bearing:.0f} degrees)"
        return [Problem(where, message, "error", holds_back=True)]
    if off > DISAGREES_DEG:
        return [Problem(
            where, f"bearing disagrees with the signed direction ({signed}, heading {bearing:.0f} degrees); check",
            "warning",
        )]
    return []


def _network_problems(
    event: Event, points: list[tuple[float, float]], network: RoadNetwork, where: str, severity: Severity
) -> list[Problem]:
    match = event.road_match
    if match is None or not match.edges:
        why = f" ({match.reason})" if match is not None and match.reason else ""
        # a line along no road (or whose road is gone) cannot be placed by Waze either; one outside
        # the network's area may lie on roads it does not hold
        lost = match is not None and (match.reason or "").startswith((NOT_ON_A_ROAD, NO_LONGER_ROUTABLE))
        away = network.km_outside(points)
        if away > FAR_OUTSIDE_KM:
            # held back from every target: no feed carries a city's event on another continent
            return [Problem(where, f"lies {away:,.0f} km outside the road network's area: a coordinate typo (a "
                                   "sign, lat and lon swapped), or the network of another place?", "error",
                            holds_back=True)]
        return [Problem(where, f"not matched to the road network{why}; street and junction checks skipped",
                        severity if lost else "warning")]
    index = network.edge_index()
    edges = [index.get((int(w), int(a), int(b))) for w, a, b in match.edges]
    known = [edge for edge in edges if edge is not None]
    found: list[Problem] = []
    if len(known) < len(edges):
        missing = len(edges) - len(known)
        found.append(Problem(where, f"{missing} matched edge(s) are not in the loaded network (was it rebuilt?)",
                             "warning"))
    if not known:
        return found
    if match.note:
        found.append(Problem(where, f"placed on the road network: {match.note}", "warning"))
    found.extend(_street_problems(event, known, network, where, severity))
    against = _against_one_way(points, known, network)
    if against is not None:
        # the junction gaps below would only be the consequence: say the cause
        found.append(Problem(
            where, f"drawn against one-way {against!r}: its traffic flows the other way; reverse the points",
            severity,
        ))
    elif len(points) >= 2:
        ends = np.array([network.edge_coords(edge)[end] for edge in known for end in (0, -1)])
        lon = np.array([points[0][0], points[-1][0]])
        lat = np.array([points[0][1], points[-1][1]])
        x, y = network.frame.to_metric(lon, lat)
        for label, px, py in (("starts", x[0], y[0]), ("ends", x[1], y[1])):
            gap = float(np.hypot(ends[:, 0] - px, ends[:, 1] - py).min())
            if gap > JUNCTION_TOLERANCE_M:
                found.append(Problem(
                    where,
                    f"{label} {gap:.0f} m from the nearest junction of its road segments (tolerance "
                    f"{JUNCTION_TOLERANCE_M:.0f} m); Waze closes whole segments, junction to junction",
                    severity,
                ))
    return found


def _street_problems(
    event: Event, known: list[int], network: RoadNetwork, where: str, severity: Severity
) -> list[Problem]:
    """The event's street against the names of the roads it lies on: another name altogether, or
    several streets."""
    street = (event.street or "").strip()
    if not street:
        return []
    named = [names for names in (network.link_names[int(network.edge_link[edge])] for edge in known) if names]
    others = sorted({names[0] for names in named
                     if not any(name_similarity(street, name) >= SAME_STREET for name in names)})
    if not others:
        return []
    if len(others) == len({names[0] for names in named}):  # none of its roads bears the name
        return [Problem(
            where,
            f"street {street!r} is not the name of the road it lies on ({', '.join(repr(n) for n in others)}); "
            "Waze places a closure by the road's name",
            severity,
        )]
    return [Problem(
        where,
        f"covers more than one street: {street!r} and {', '.join(repr(n) for n in others)}; "
        "Waze wants one street per closure: split it",
        severity,
    )]


def _against_one_way(points: list[tuple[float, float]], known: list[int], network: RoadNetwork) -> str | None:
    """The name of the one-way road the line runs against, when its matched edges (all one-way)
    lead the opposite way to the line's own first-to-last bearing."""
    if len(points) < 2 or not all(network.edge_oneway(edge) for edge in known):
        return None
    drawn = line_bearing_deg(points)
    start, end = network.edge_lonlat(known[0])[0], network.edge_lonlat(known[-1])[-1]
    placed = line_bearing_deg([(float(start[0]), float(start[1])), (float(end[0]), float(end[1]))])
    if drawn is None or placed is None:
        return None
    off = float(heading_difference(np.array([drawn]), np.array([placed]))[0])
    if off <= AGAINST_DIRECTION_DEG:
        return None
    return network.edge_name(known[0]) or "road"


def _lane_impact(event: Event) -> bool:
    """True when the event closes some lanes only: a lane impact, or a lane list with an open lane."""
    details = event.details
    if details is None:
        return False
    if details.lane_impact is not None:
        return True
    return bool(details.lanes) and any(not lane.status.startswith("CLOSE") for lane in details.lanes or [])


def is_full_closure(event: Event) -> bool:
    """A ROAD_CLOSED without a lane impact: every lane closed, the only kind Waze places junction to junction."""
    return event.category is Category.ROAD_CLOSED and not _lane_impact(event)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def lint_event(event: Event, network: RoadNetwork | None = None, now: datetime | None = None) -> list[Problem]:
    """The acceptance findings for one event; an empty list means Waze should take it as it is.

    Parameters
    ----------
    event
        A city event (or any event about to be published).
    network
        The loaded road network; with it, ``event.road_match`` is checked for a single street and
        for endpoints at junctions.
    now
        The time of the lint (timezone-aware; a naive one is taken as UTC), given by the caller:
        with it, an event without an end that started more than :data:`OPEN_ENDED_DAYS` days
        before gets a warning. Without it that check is skipped.
    """
    where = f"event {event.id}"
    strict: Severity = "error" if is_full_closure(event) else "warning"
    found: list[Problem] = []
    street = (event.street or "").strip()
    if not street:
        found.append(Problem(where, "street: missing; Waze places a closure by its street name"))
    elif has_house_number(street):
        found.append(Problem(where, f"street {street!r} carries a house number; give the street name only"))
    points = _points(event)
    if len(set(points)) < 2:
        found.append(Problem(
            where,
            f"polyline of one place only; a closure needs a line along the road of at least {MIN_LENGTH_M:.0f} m",
            strict,
        ))
    else:
        length = polyline_length_m(points)
        if length < MIN_LENGTH_M:
            found.append(Problem(
                where, f"polyline is {length:.1f} m long; Waze needs at least {MIN_LENGTH_M:.0f} m", strict
            ))
        elif length > MAX_LENGTH_M:
            found.append(Problem(
                where, f"polyline is {length / 1000:.1f} km long; Waze takes at most {MAX_LENGTH_M / 1000:.0f} km: "
                "split it", strict,
            ))
    found.extend(_direction_problems(event, points, where))
    placed = event.road_match is not None and bool(event.road_match.edges)
    if len(points) == 2 and not placed:
        length = polyline_length_m(points)
        if length > CHORD_M:
            found.append(Problem(
                where, f"a two-point line of {length / 1000:.1f} km: a straight chord, not the road's shape; Waze "
                "needs points along the road (a road network would route it)", strict,
            ))
    if event.category is Category.ROAD_CLOSED and _lane_impact(event):
        found.append(Problem(
            where, "a ROAD_CLOSED closes every lane; a partial closure is a lane impact on CONSTRUCTION (or HAZARD)",
            "warning",
        ))
    if now is not None and event.end_time is None and event.start_time is not None:
        age = _aware(now) - _aware(event.start_time)
        if age > timedelta(days=OPEN_ENDED_DAYS):
            found.append(Problem(
                where, f"started {age.days} days ago with no end: Waze may have expired it; give an end", "warning"
            ))
    description = event.details.description if event.details is not None else None
    if description and len(description) > MAX_DESCRIPTION:
        found.append(Problem(
            where, f"description is {len(description)} characters; keep it under {MAX_DESCRIPTION}", "warning"
        ))
    if network is not None:
        found.extend(_network_problems(event, points, network, where, strict))
    elif event.category in CLOSURE_CATEGORIES:
        found.append(Problem(
            where, "no road network is configured: the polyline is published as given and must already follow "
            "the road from junction to junction", "warning",
        ))
    return found


def feed_success_share(findings_per_event: Iterable[Sequence[Problem]]) -> float:
    """The share of events without a blocking finding (1.0 for no events).

    Compare with :data:`PUBLISH_THRESHOLD`: below it, Waze reportedly publishes nothing of the feed.

    >>> feed_success_share([[], [Problem("e", "too short")], [Problem("e", "long text", "warning")], []])
    0.75
    """
    total = blocked = 0
    for findings in findings_per_event:
        total += 1
        blocked += has_errors(findings)
    return 1.0 if total == 0 else (total - blocked) / total
