"""Point matching: each alert to its most likely directed edge, for a whole feed at once.

Candidates come from one bulk STRtree query over the network's straight segments; everything
after that (projection, heading at the projected point, scores, the best candidate per alert)
is numpy over arrays of (alert, candidate) pairs. The score is a log-likelihood:

* distance: Gaussian, ``-0.5 (d / sigma)^2``;
* heading: von Mises-like, ``kappa (cos(magvar - bearing) - 1)``, skipped when magvar is unknown
  (Waze sends 0 for about 10 % of alerts, which is read as unknown); distance and heading are
  scored together on each segment of the road within reach and the best segment counts, so on a
  bend the heading is compared with the part of the road the alert may lie on, not only the nearest;
* street name: 0 when the alert's street is one of the edge's names, down to ``-name_weight``
  when unrelated; a named alert on an unnamed edge costs half of that;
* road class: a small penalty when Waze's ``roadType`` contradicts the edge's OSM class.

An alert naming a street the network has, which none of its candidates carries, is looked for
twice as far (Waze's positions downtown may lie 50 m or more off their street) and moved there only
where that street wins the same score.

The confidence is the best candidate's share of the probability over all candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from geo.names import name_similarity, normalize_street
from geo.network import RoadNetwork, bearing_deg, heading_difference

__all__ = ["PointMatches", "best_first", "match_points", "point_candidates", "road_names_at"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Waze roadType -> the OSM highway classes it is compatible with (formats.md §1.7)
_ROAD_TYPE_CLASSES: dict[int, frozenset[str]] = {
    1: frozenset({"residential", "unclassified", "tertiary", "living_street", "service", "road", "secondary"}),
    2: frozenset({"primary", "secondary", "tertiary", "residential", "unclassified", "trunk"}),
    3: frozenset({"motorway", "trunk"}),
    4: frozenset({"motorway_link", "trunk_link", "primary_link", "secondary_link", "tertiary_link"}),
    6: frozenset({"trunk", "primary", "motorway"}),
    7: frozenset({"secondary", "tertiary", "primary"}),
    17: frozenset({"service", "residential", "unclassified"}),
    20: frozenset({"service"}),
    21: frozenset({"service", "residential"}),
}


@dataclass
class PointMatches:
    """Aligned with the input: ``edge[i]`` is a directed edge number or -1 with ``reason[i]``."""

    edge: IntArray
    offset_m: FloatArray
    distance_m: FloatArray
    confidence: FloatArray
    reason: list[str | None]

    def __len__(self) -> int:
        return len(self.edge)


@dataclass
class Candidates:
    """(point, directed edge) pairs with their geometry: the raw material of both matchers."""

    point: IntArray
    edge: IntArray
    distance: FloatArray
    offset: FloatArray
    bearing: FloatArray
    x: FloatArray  # the place on the edge nearest the point (metric)
    y: FloatArray


def point_candidates(network: RoadNetwork, x: FloatArray, y: FloatArray, radius_m: float) -> Candidates:
    """Every directed edge within ``radius_m`` of each metric point, projected, nearest segment per link."""
    return _nearest_per_direction(network, _segment_pairs(network, x, y, radius_m))


def best_first(point: IntArray, score: FloatArray) -> IntArray:
    """The order of (point, candidate) pairs by point, each point's best candidate first (equals in their
    order); ``score`` a log-likelihood, at most 0.

    One float key orders them: the point, then the score in its fraction's place (told apart down to
    about 1e-7 for a million points; scores below ``-_KEY_SPAN`` sort as equals). Candidates come
    nearly sorted by point, which a stable sort exploits: ten times faster than a lexsort. A NaN score
    (a heading that could not be measured) sorts last among its point's.

    >>> best_first(np.array([0, 0, 1, 1, 1]), np.array([-3.0, -1.0, np.nan, -2.0, -2.0])).tolist()
    [1, 0, 3, 4, 2]
    """
    key = point * _KEY_SPAN + np.clip(np.nan_to_num(-score, nan=_KEY_SPAN), 0.0, _KEY_SPAN - 1.0)
    order: IntArray = np.argsort(key, kind="stable")
    return order


#: the range of scores ``best_first`` tells apart: hundreds of units below any candidate within reach
_KEY_SPAN = 1024.0


@dataclass
class _SegmentPairs:
    """(point, segment) pairs within reach, sorted by point and segment (so by link: the segments lie link
    after link); ``link_start`` marks the first pair of each (point, link) group, ``nearest`` is the pair
    of each group nearest its point (the first of equals), ``nearest_bearing`` the link's bearing there."""

    point: IntArray
    link: IntArray
    distance: FloatArray
    along: FloatArray
    bearing: FloatArray
    place: FloatArray  # (pairs, 2): the place on the segment nearest the point
    link_start: npt.NDArray[np.bool_]
    nearest: IntArray
    nearest_bearing: FloatArray


def _segment_pairs(network: RoadNetwork, x: FloatArray, y: FloatArray, radius_m: float) -> _SegmentPairs:
    segments = network.segments()
    # the tree answers boxes several times faster than distances; the distances are computed below anyway
    boxes = shapely.box(x - radius_m, y - radius_m, x + radius_m, y + radius_m)
    boxes[~(np.isfinite(x) & np.isfinite(y))] = None  # GEOS refuses NaN; None finds nothing
    point, segment = network.segment_tree().query(boxes).astype(np.int64)
    # one integer key sorts pairs by point and segment (a lexsort on floats took a third of the matching)
    order = np.argsort(point * len(segments["len"]) + segment, kind="stable")
    point, segment = point[order], segment[order]
    # the point's offset from the segment's start, then from its nearest place on the segment (columns:
    # a few passes over the pairs)
    dx, dy = segments["dx"][segment], segments["dy"][segment]
    ax, ay = x[point] - segments["x0"][segment], y[point] - segments["y0"][segment]
    t = np.clip((ax * dx + ay * dy) * segments["inverse_square"][segment], 0.0, 1.0)
    ax -= dx * t
    ay -= dy * t
    distance = np.hypot(ax, ay)
    within = np.flatnonzero(distance <= radius_m)
    point, segment, distance, t = point[within], segment[within], distance[within], t[within]
    place = np.column_stack((x[point] - ax[within], y[point] - ay[within]))
    link = segments["link"][segment]
    link_start = np.ones(len(point), dtype=bool)
    link_start[1:] = (point[1:] != point[:-1]) | (link[1:] != link[:-1])
    group = np.cumsum(link_start) - 1
    # each group's nearest pair (the first of equals): the first of its pairs at its least distance
    starts = np.flatnonzero(link_start)
    least = np.minimum.reduceat(distance, starts) if len(starts) else distance
    closest = np.flatnonzero(distance == least[group])
    first_closest = np.ones(len(closest), dtype=bool)
    first_closest[1:] = group[closest][1:] != group[closest][:-1]
    nearest = closest[first_closest]
    bearing = segments["bearing"][segment]
    # a point nearest a bend's vertex is as near both its segments: the road's direction there is their mean
    nearest_bearing = bearing[nearest]
    tied = np.flatnonzero(np.diff(np.flatnonzero(first_closest), append=len(closest)) > 1)
    if len(tied):
        ends = np.flatnonzero(first_closest)
        angle = np.radians(90.0 - bearing[closest])
        east, north = np.add.reduceat(np.cos(angle), ends), np.add.reduceat(np.sin(angle), ends)
        nearest_bearing[tied] = bearing_deg(east[tied], north[tied])
    length = segments["len"][segment]
    return _SegmentPairs(point, link, distance, segments["offset"][segment] + t * length, bearing, place, link_start,
                         nearest, nearest_bearing)


def _nearest_per_direction(network: RoadNetwork, pairs: _SegmentPairs) -> Candidates:
    """One candidate per allowed direction of each (point, link), at the link's nearest segment: the
    forward edges, then the backward."""
    nearest = pairs.nearest
    point, link, distance = pairs.point[nearest], pairs.link[nearest], pairs.distance[nearest]
    along, bearing, place = pairs.along[nearest], pairs.nearest_bearing, pairs.place[nearest]
    table = network.link_edges()
    link_len = network.link_len[link]
    forward, backward = table[link, 0], table[link, 1]
    has_f, has_b = forward >= 0, backward >= 0
    return Candidates(
        point=np.concatenate((point[has_f], point[has_b])),
        edge=np.concatenate((forward[has_f], backward[has_b])),
        distance=np.concatenate((distance[has_f], distance[has_b])),
        offset=np.concatenate((along[has_f], (link_len - along)[has_b])),
        bearing=np.concatenate((bearing[has_f], (bearing[has_b] + 180.0) % 360.0)),
        x=np.concatenate((place[has_f, 0], place[has_b, 0])),
        y=np.concatenate((place[has_f, 1], place[has_b, 1])),
    )


def _position_and_heading_fit(network: RoadNetwork, pairs: _SegmentPairs, headings: FloatArray | None,
                              sigma_m: float, kappa: float) -> FloatArray:
    """Distance and heading log-likelihood of each candidate of ``_nearest_per_direction``, the best over its
    link's segments within reach.

    Scoring the heading against the nearest segment only fails on a bend: 15 m of noise moves the point
    next to a part of the road that runs 60 degrees off, and the reverse direction of the road fits the
    heading as well there as the right one. The alert lies somewhere near its noisy position, so each
    direction is scored where along the link position and heading fit it best together.
    """
    fit = -0.5 * (pairs.distance / sigma_m) ** 2
    forward_fit, backward_fit = fit, fit.copy()
    if headings is not None:
        heading = np.asarray(headings, dtype=np.float64)[pairs.point]
        known = np.isfinite(heading) & (heading != 0.0)
        cosine = np.cos(np.radians(heading_difference(heading[known], pairs.bearing[known])))
        forward_fit[known] += kappa * (cosine - 1.0)
        backward_fit[known] += kappa * (-cosine - 1.0)
    starts = np.flatnonzero(pairs.link_start)
    if not len(starts):
        return np.zeros(0)
    best_forward, best_backward = np.maximum.reduceat(forward_fit, starts), np.maximum.reduceat(backward_fit, starts)
    table = network.link_edges()
    link = pairs.link[starts]
    return np.concatenate((best_forward[table[link, 0] >= 0], best_backward[table[link, 1] >= 0]))


def _name_scores(
    network: RoadNetwork, candidates: Candidates, streets: Sequence[str | None], weight: float, unnamed_weight: float
) -> tuple[FloatArray, npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """The name term of each candidate (relative to the alert's best-fitting candidate), whether the
    candidate carries the alert's street exactly (as the network spells it, normalized), and whether
    each alert names a street the network has."""
    numbers, _per_link = network.name_ids()
    score = np.zeros(len(candidates.edge))
    if weight == 0.0:
        return score, np.zeros(len(candidates.edge), dtype=bool), np.zeros(len(streets), dtype=bool)
    link = network.edge_link[candidates.edge]
    named = network.name_table()[0][link]
    wanted = np.full(len(streets), -2, dtype=np.int64)  # -2: no street given
    unknown: dict[int, str] = {}
    for i, street in enumerate(streets):
        if street:
            wanted[i] = numbers.get(normalize_street(street), -1)
            if wanted[i] == -1:
                unknown[i] = street
    asked = wanted[candidates.point]
    given = asked != -2
    if not given.any():
        return score, np.zeros(len(candidates.edge), dtype=bool), wanted >= 0
    if unnamed_weight:
        # the alert names no street although the feed names streets: most such alerts lie on
        # unnamed roads (ramps, service roads), so a named edge is a little less likely
        score[~given & named] = -unnamed_weight
    link_names = network.link_names
    name_keys = network.name_table()[1]
    wanted_keys = link * (len(numbers) + 1) + np.maximum(asked, 0)
    found = np.searchsorted(name_keys, wanted_keys)
    exact = (asked >= 0) & (found < len(name_keys)) & (name_keys[np.minimum(found, len(name_keys) - 1)] == wanted_keys)
    score[given & named & ~exact] = -weight
    score[given & ~named] = -weight / 2
    # streets spelled in a way no edge spells them: fuzzy similarity, once per (street, link)
    for pair in np.flatnonzero(given & named & ~exact & (asked == -1)).tolist():
        street = unknown[int(candidates.point[pair])]
        best = max(name_similarity(street, name) for name in link_names[int(link[pair])])
        score[pair] = -weight * (1.0 - best)
    # names are evidence relative to the other candidates: when the alert's street is on none of
    # them (the app names it differently), no candidate is penalised for that
    best_fit = np.full(len(streets), -np.inf)
    np.maximum.at(best_fit, candidates.point, score)
    relative: FloatArray = score - best_fit[candidates.point]
    return relative, exact, wanted >= 0


def _class_scores(network: RoadNetwork, candidates: Candidates, road_type: IntArray | None) -> FloatArray:
    score = np.zeros(len(candidates.edge))
    if road_type is None:
        return score
    types = np.asarray(road_type)[candidates.point]
    classes = network.link_class
    link = network.edge_link[candidates.edge]
    for i in np.flatnonzero(np.isin(types, list(_ROAD_TYPE_CLASSES))):
        if classes[int(link[i])] not in _ROAD_TYPE_CLASSES[int(types[i])]:
            score[i] = -0.5
    return score


def match_points(
    network: RoadNetwork,
    lon: FloatArray,
    lat: FloatArray,
    *,
    heading: FloatArray | None = None,
    streets: Sequence[str | None] | None = None,
    road_type: IntArray | None = None,
    radius_m: float = 50.0,
    sigma_m: float = 14.0,
    kappa: float = 4.0,
    name_weight: float = 6.0,
    unnamed_weight: float = 1.0,
) -> PointMatches:
    """Match points (alerts) to directed edges.

    Parameters
    ----------
    lon, lat
        WGS84 coordinates, one per alert.
    heading
        Reporter heading in degrees from north (Waze ``magvar``); 0 or NaN means unknown.
    streets
        The alert's street name, or None.
    road_type
        Waze ``roadType`` codes, or None.
    radius_m
        Candidate edges must lie within this distance (metres); twice that for an alert whose named
        street lies beyond it (taken only where that street wins).
    sigma_m, kappa, name_weight
        Weights of the distance, heading and name terms (see the module docstring). ``sigma_m`` is
        the spread of GPS positions across the road (Waze alerts: 8-15 m per axis; a point 35 m off
        its street is common); a street name Waze sends is trusted more than a metre-scale
        preference for the nearer road, so a wrong name costs as much as being about 2.4 sigma farther.
        A batch of at least 30 alerts whose positions are clearly noisier (their median distance from
        the matched roads says so) is matched again with its own spread.

    Returns
    -------
    PointMatches aligned with the input; unmatched rows carry ``edge = -1`` and a reason.
    """
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    valid = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180) & (np.abs(lat) <= 90)
    x, y = network.frame.to_metric(np.where(valid, lon, 0.0), np.where(valid, lat, 0.0))
    x[~valid] = np.nan
    y[~valid] = np.nan
    scoring = (sigma_m, kappa, name_weight, unnamed_weight)
    result, named_nearby = _match(network, x, y, heading, streets, road_type, radius_m, scoring)
    noisier = _batch_sigma(result.distance_m, sigma_m)
    if noisier is not None:  # positions noisier than sigma_m: distance overruled heading and name
        scoring = (noisier, kappa, name_weight, unnamed_weight)
        result, named_nearby = _match(network, x, y, heading, streets, road_type, radius_m, scoring)
    # an alert naming a street the network has but none of its candidates carries: Waze's position
    # downtown may lie 50 m or more off its street; look for the street twice as far, and take what is
    # found there only where it carries that street (the name outweighs the distance, as near)
    far = np.flatnonzero(~named_nearby & valid)
    if len(far):
        found, named = _match(network, x[far], y[far], None if heading is None else np.asarray(heading)[far],
                              None if streets is None else [streets[i] for i in far.tolist()],
                              None if road_type is None else np.asarray(road_type)[far], _FAR_STREET * radius_m,
                              scoring, chosen_named=True)
        take = named & (found.edge >= 0)
        for field in ("edge", "offset_m", "distance_m", "confidence"):
            getattr(result, field)[far[take]] = getattr(found, field)[take]
    for i in np.flatnonzero(result.edge < 0):
        result.reason[i] = (
            "invalid coordinates (NaN or out of range)" if not valid[i] else f"no road within {radius_m:g} m"
        )
    return result


#: how much farther than ``radius_m`` an alert's named street is looked for when none near carries it
_FAR_STREET = 2.0


def _batch_sigma(distance_m: FloatArray, sigma_m: float) -> float | None:
    """The GPS noise of a batch, when it is clearly more than ``sigma_m``: else None.

    A point's distance from the road it lies on is half-normal, with median 0.6745 sigma; measured on
    the matched roads it comes within 5 % of the true sigma from 4 to 30 m on the issue 12 networks.
    At least ``_NOISE_MIN_POINTS`` matched points, and more than ``_NOISE_MARGIN`` times ``sigma_m``:
    a quiet batch never makes the distance outweigh a street name more than ``sigma_m`` lets it.
    """
    matched = distance_m[np.isfinite(distance_m)]
    if len(matched) < _NOISE_MIN_POINTS:
        return None
    sigma = float(np.median(matched)) / 0.6745
    return sigma if sigma > _NOISE_MARGIN * sigma_m else None


#: fewer matched points than this: their noise is not estimated
_NOISE_MIN_POINTS = 30
#: a batch whose noise is estimated at more than this times ``sigma_m`` is matched again with it
_NOISE_MARGIN = 1.15


def _match(network: RoadNetwork, x: FloatArray, y: FloatArray, heading: FloatArray | None,
           streets: Sequence[str | None] | None, road_type: IntArray | None, radius_m: float,
           scoring: tuple[float, float, float, float], *,
           chosen_named: bool = False) -> tuple[PointMatches, npt.NDArray[np.bool_]]:
    """``match_points`` on metric points (NaN: invalid) within ``radius_m``, and per point whether its
    street is found: among its candidates, or (``chosen_named``) on the candidate chosen. A point that
    names no street, or one the network does not know, counts as found."""
    sigma_m, kappa, name_weight, unnamed_weight = scoring
    n = len(x)
    result = PointMatches(
        edge=np.full(n, -1, dtype=np.int64),
        offset_m=np.full(n, np.nan),
        distance_m=np.full(n, np.nan),
        confidence=np.zeros(n),
        reason=[None] * n,
    )
    named_found = np.ones(n, dtype=bool)
    if n == 0:
        return result, named_found
    pairs = _segment_pairs(network, x, y, radius_m)
    candidates = _nearest_per_direction(network, pairs)
    score = _position_and_heading_fit(network, pairs, heading, sigma_m, kappa)
    exact = np.zeros(len(score), dtype=bool)
    if streets is not None:
        names, exact, known = _name_scores(network, candidates, streets, name_weight, unnamed_weight)
        score += names
        named_found = ~known
    score += _class_scores(network, candidates, road_type)

    if len(score):
        order = best_first(candidates.point, score)
        point = candidates.point[order]
        starts = np.flatnonzero(np.concatenate(([True], point[1:] != point[:-1])))
        best = order[starts]
        # softmax share of the best candidate within each point's group
        top = np.repeat(score[best], np.diff(np.concatenate((starts, [len(order)]))))
        weights = np.exp(score[order] - top)
        totals = np.add.reduceat(weights, starts)
        chosen = candidates.point[best]
        result.edge[chosen] = candidates.edge[best]
        result.offset_m[chosen] = candidates.offset[best]
        result.distance_m[chosen] = candidates.distance[best]
        result.confidence[chosen] = 1.0 / totals
        if chosen_named:
            named_found[chosen[exact[best]]] = True
        else:
            named_found[candidates.point[exact]] = True
    return result, named_found


def road_names_at(network: RoadNetwork, lon: FloatArray, lat: FloatArray, *, radius_m: float) -> list[str | None]:
    """The name of the road nearest each WGS84 point within ``radius_m``; None where no road is that
    near, or where the nearest one has no name (a ramp: a farther named road is not the road there).

    >>> from geo.types import WayInput
    >>> from geo.network import build_network
    >>> net = build_network({1: (-84.100, 37.150), 2: (-84.100, 37.160)}, [WayInput(1, [1, 2], {"name": "I-75"})])
    >>> road_names_at(net, np.array([-84.1001, -84.2]), np.array([37.155, 37.155]), radius_m=50.0)
    ['I-75', None]
    """
    x, y = network.frame.to_metric(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    found = point_candidates(network, x, y, radius_m)
    names: list[str | None] = [None] * len(x)
    decided = np.zeros(len(x), dtype=bool)
    for pair in np.argsort(found.distance, kind="stable"):
        point = int(found.point[pair])
        if not decided[point]:
            decided[point] = True
            names[point] = network.edge_name(int(found.edge[pair])) or None
    return names
