"""Deduplication: reports of one incident form one cluster, and a cluster keeps its id between polls.

Reports are compared where they lie on the road: each is snapped to its matched directed edge, which
removes the GPS noise across the road (as large as the noise along it). What is left is the noise
along the road plus the stretch of road the reports of one incident cover (issue 12: about 30 m).
Reports of one incident share

* a category family (a crash and a hazard are different incidents);
* a time window: a cluster never spans more than ``window_s`` (Waze users report up to 30 minutes
  late), so an incident and a new one at the same place an hour later stay apart;
* a direction of travel: the report's heading, or its one-way street's direction; a report of
  unknown direction (Waze heading 0 on a two-way street, or next to the other carriageway) joins
  either direction. Where reports of both directions are near it, it sits out the merge and then
  joins the cluster it most likely belongs to only when no cluster of another direction passes the
  merge test for it (else it stays alone: joining either could fuse the incidents on the two sides);
* a place: clusters merge while their centres are close *for their size*. The centre of n reports
  is known to sigma / sqrt(n), so under 8 m GPS noise two clusters of four reports 30 m apart are two
  incidents where two single reports 30 m apart may well be one.

The merge test is a likelihood ratio. Each report lies at its incident's place plus a spread of
variance ``s2`` along the road (GPS noise sigma^2, estimated from how far the reports lie from their
roads, plus the incident's own extent). Clusters a and b (na, nb reports, centres d apart) merge,
cheapest first, while ``d^2 h / (2 s2) - log h < merge_threshold`` with ``h = na nb / (na + nb)``
(the log-odds of "one incident" against "two", up to a constant). That spread is a floor: where a
family's clusters turn out wider than it (drivers report a crash as they pass it, 50 m on), that
family is clustered again with the spread its clusters show, until the two agree; one family's
spread never widens another's. The greedy merge fixes each
report's cluster early, before the centres are known; a few Lloyd rounds along the road follow:
each report moves to the neighbouring cluster (direction, time window) that takes it cheaper than
its own does without it (the same test; staying alone costs the threshold), and the centres are
estimated again. Last, a report that is about as likely to belong to a neighbouring cluster as to
its own leaves its cluster: such a report between two close incidents would otherwise fuse them.

Candidates come from one STRtree over the reports placed by family and slice of time. Merging runs
in rounds, in numpy: every two neighbouring clusters that are each other's cheapest merge merge (6-7
rounds on the issue 12 networks); a heap takes over after 16 rounds. The whole step is O(n log n) for
a given density of reports.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from geo.match import point_candidates
from geo.network import RoadNetwork, bearing_deg, heading_difference

__all__ = ["CATEGORY_FAMILY", "Reports", "assign_cluster_ids", "cluster_reports"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: categories that describe the same kind of incident
CATEGORY_FAMILY: dict[str, str] = {
    "ACCIDENT": "crash",
    "HAZARD": "hazard",
    "WEATHERHAZARD": "hazard",
    "JAM": "congestion",
    "IRREGULARITY": "congestion",
    "ROAD_CLOSED": "closure",
    "CONSTRUCTION": "closure",
    "POLICE": "police",
    "MISC": "misc",
}


@dataclass
class Reports:
    """Reports to cluster, as aligned arrays. ``edge`` is -1 (and ``offset`` NaN) when unmatched."""

    x: FloatArray
    y: FloatArray
    time_s: FloatArray
    family: Sequence[str]
    edge: IntArray
    offset: FloatArray
    heading: FloatArray

    def __len__(self) -> int:
        return len(self.x)


def _road_points(network: RoadNetwork | None, reports: Reports) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Each report's matched position on its edge (its GPS position when unmatched or without a
    network), and the bearing of its edge there in the direction of travel (NaN when unmatched).

    Snapping removes the noise across the road, which is as large as the noise along it: two reports
    of one incident 15 m apart may lie 30 m apart as reported, but not once on the road.
    """
    x, y, bearing = reports.x.copy(), reports.y.copy(), np.full(len(reports), np.nan)
    if network is None:
        return x, y, bearing
    matched = np.flatnonzero((reports.edge >= 0) & np.isfinite(reports.offset))
    if len(matched) == 0:
        return x, y, bearing
    edge = reports.edge[matched]
    link = network.edge_link[edge]
    length = network.link_len[link]
    offset = np.clip(reports.offset[matched], 0.0, length)
    along = np.where(network.edge_forward[edge], offset, length - offset)  # from the link's start
    segments = network.segments()
    # segments are ordered by link, then by offset: one search finds the segment holding each point
    scale = float(network.link_len.max()) + 1.0
    keys = segments["link"] * scale + segments["offset"]
    segment = np.clip(np.searchsorted(keys, link * scale + along, side="right") - 1, 0, len(keys) - 1)
    t = np.clip((along - segments["offset"][segment]) / np.maximum(segments["len"][segment], 1e-12), 0.0, 1.0)
    p0, p1 = segments["p0"][segment], segments["p1"][segment]
    on_road = p0 + (p1 - p0) * t[:, None]
    x[matched], y[matched] = on_road[:, 0], on_road[:, 1]
    dx, dy = (p1 - p0).T
    forward = network.edge_forward[edge]
    bearing[matched] = bearing_deg(np.where(forward, dx, -dx), np.where(forward, dy, -dy))
    return x, y, bearing


def _travel_direction(network: RoadNetwork | None, reports: Reports, edge_bearing: FloatArray,
                      carriageway_m: float) -> FloatArray:
    """The direction of travel of each report: its heading when known, else the bearing of its
    matched edge when that is a one-way street with no street running the other way within
    ``carriageway_m`` (without a heading the match may well be the other carriageway); NaN when
    unknown."""
    heading = reports.heading
    direction = np.where(np.isfinite(heading) & (heading != 0), heading % 360.0, np.nan)
    if network is None:
        return direction
    matched = reports.edge >= 0
    oneway = np.zeros(len(reports), dtype=bool)
    oneway[matched] = network.link_oneway[network.edge_link[reports.edge[matched]]] != 0
    use_edge = np.flatnonzero(np.isnan(direction) & oneway & np.isfinite(reports.x) & np.isfinite(reports.y))
    direction[use_edge] = edge_bearing[use_edge]
    if len(use_edge) and carriageway_m > 0:
        near = point_candidates(network, reports.x[use_edge], reports.y[use_edge], carriageway_m)
        opposite = heading_difference(near.bearing, direction[use_edge][near.point]) > 135.0
        direction[use_edge[np.unique(near.point[opposite])]] = np.nan
    return direction


def _along_variance(reports: Reports, x: FloatArray, y: FloatArray, radius_m: float, extent_m: float) -> float:
    """Variance of a report's place along the road around its incident's place (m^2).

    The GPS noise is as large along the road as across it, and across it is how far the reports lie
    from their matched roads: sigma = the larger of the median distance / 0.6745 (half-normal) and
    their root mean square. Under Gaussian noise the two agree, but where the noisiest reports are
    matched to the next street (15 m of noise on short blocks) the mean square loses them first; under
    heavy-tailed noise (a tenth of the positions 40 m off, as in an urban canyon) the median sees only
    the quiet nine tenths, and the merge test split an incident's far reports off (the mean square:
    F1 +0.01 to +0.025 on a second generator with such noise). Plus the incident's own
    extent (uniform over ``extent_m``: extent^2 / 12). When fewer than ``_MIN_SPREAD_REPORTS``
    reports are matched, ``radius_m^2 / 2`` (two reports ``radius_m`` apart, one standard deviation);
    the estimate is capped at ``_SPREAD_CAP`` times that radius (noise beyond 35 m means the matches,
    not the reports, are off). Under 25 m of GPS noise the old cap at the radius itself split
    incidents: F1 0.82 instead of 0.89 on the issue 12 networks.
    """
    matched = (reports.edge >= 0) & np.isfinite(reports.x) & np.isfinite(reports.y)
    if np.count_nonzero(matched) < _MIN_SPREAD_REPORTS:
        return radius_m * radius_m / 2.0
    across = np.hypot(reports.x[matched] - x[matched], reports.y[matched] - y[matched])
    sigma = max(float(np.median(across)) / 0.6745, float(np.sqrt(np.mean(across * across))), _MIN_SIGMA_M)
    cap = (_SPREAD_CAP * radius_m) ** 2 / 2.0
    return min(sigma * sigma + extent_m * extent_m / 12.0, cap)


#: fewer matched reports than this: the GPS noise is not estimated (``_along_variance``)
_MIN_SPREAD_REPORTS = 20
#: the GPS noise is never taken as smaller than this (metres)
_MIN_SIGMA_M = 4.0
#: the estimated spread is capped at this many ``radius_m``
_SPREAD_CAP = 2.0


def cluster_reports(
    reports: Reports,
    network: RoadNetwork | None = None,
    *,
    radius_m: float = 25.0,
    window_s: float = 1800.0,
    max_heading_deg: float = 70.0,
    extent_m: float = 30.0,
    merge_threshold: float = 3.75,
    carriageway_m: float = 30.0,
) -> IntArray:
    """Cluster labels (0..k-1, in order of each cluster's first report) for the reports.

    Parameters
    ----------
    reports
        Positions in a metric CRS, times in seconds, category families, match results.
    network
        The network the edges refer to; without it reports are compared where they were reported.
    radius_m
        The spread of one incident's reports: two of them typically lie this far apart along the
        road, GPS noise included (one standard deviation). It scales the merge test when the
        GPS noise cannot be estimated (fewer than 20 matched reports) and, doubled, caps it otherwise;
        a report of unknown direction looks for reports of both directions within 3 x this.
    window_s
        How far apart in time reports of one cluster may be (30 minutes by default), so a chain of
        reports cannot join an incident with a new one at the same place an hour later.
    max_heading_deg
        Clusters whose directions of travel differ more than this are not merged (opposite
        directions of a street, the other carriageway, the cross street at a junction).
    extent_m
        The stretch of road one incident's reports cover, before GPS noise.
    merge_threshold
        The log-odds above which two clusters are one incident (see the module docstring); higher
        merges more (recall) and fuses more close but distinct incidents.
    carriageway_m
        A report without a heading takes the direction of its one-way street only when no street
        runs the other way within this distance.

    Notes
    -----
    Positions are the reports snapped to their matched edges and distances are straight lines
    between them, not along the network: reports of one incident on two short consecutive edges,
    across a junction, or one of them matched to the cross street, still meet.
    """
    n = len(reports)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    x, y, edge_bearing = _road_points(network, reports)
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = np.where(finite, x, 0.0), np.where(finite, y, 0.0)
    family = np.asarray(reports.family, dtype=object)
    time_s = np.asarray(reports.time_s, dtype=np.float64)
    direction = _travel_direction(network, reports, edge_bearing, carriageway_m)
    certain = np.isfinite(direction)
    assumed = _along_variance(reports, x, y, radius_m, extent_m)

    def clustered(spread: FloatArray, rows: IntArray) -> IntArray:
        return _clustered(x[rows], y[rows], finite[rows], family[rows], time_s[rows], direction[rows], certain[rows],
                          edge_bearing[rows], spread[rows], radius_m=radius_m, window_s=window_s,
                          max_heading_deg=max_heading_deg, merge_threshold=merge_threshold)

    labels = clustered(np.full(n, assumed), np.arange(n))
    if network is not None and np.count_nonzero(reports.edge >= 0) >= _MIN_SPREAD_REPORTS:
        labels = _with_own_spread(x, y, family, labels, assumed, (_SPREAD_CAP * radius_m) ** 2 / 2.0, clustered)
    order: dict[int, int] = {}
    return np.array([order.setdefault(label, len(order)) for label in labels.tolist()], dtype=np.int64)


def _clustered(x: FloatArray, y: FloatArray, finite: npt.NDArray[np.bool_], family: npt.NDArray[np.object_],
               time_s: FloatArray, direction: FloatArray, certain: npt.NDArray[np.bool_], axis: FloatArray,
               spread: FloatArray, *,
               radius_m: float, window_s: float, max_heading_deg: float, merge_threshold: float) -> IntArray:
    """Cluster labels (any integers) for the reports on the road, each report's spread along it
    (its family's) ``spread``; ``axis`` is the bearing of each report's matched edge (NaN unmatched)."""
    n = len(x)
    # candidate pairs: as far apart as two single reports can lie and still merge (larger
    # clusters merge closer), one family, one time window, compatible directions
    reach = 2.0 * math.sqrt(float(spread.max()) * max(merge_threshold - math.log(2.0), 0.0))
    space_time = _SpaceTime(x, y, finite, family, time_s, window_s, max(reach, _TORN_REACH * radius_m))
    i, j = space_time.pairs(np.arange(n), reach, both_ways=False)
    both = certain[i] & certain[j]
    compatible = ~both | (heading_difference(np.nan_to_num(direction[i]), np.nan_to_num(direction[j]))
                          <= max_heading_deg)
    i, j = i[compatible], j[compatible]
    # a report of unknown direction with neighbours of both directions around it could belong to
    # an incident on either side of the street, and joining one would fuse it with the other
    loose = np.flatnonzero(~certain & finite)
    torn = np.zeros(n, dtype=bool)
    if len(loose):
        li, lj = space_time.pairs(loose, _TORN_REACH * radius_m, both_ways=True)
        li, lj = li[certain[lj]], lj[certain[lj]]
        torn = _torn(n, li, lj, direction, axis, max_heading_deg)
        keep = ~torn[i] & ~torn[j]
        i, j = i[keep], j[keep]
    state = _State(x, y, time_s, direction, spread, window_s, max_heading_deg)
    root = _merge(state, i, j, merge_threshold)
    root = _refine(state, root, i, j, merge_threshold)
    labels = _detach_contested(state, root, i, j, merge_threshold)
    if torn.any():
        pick = torn[li]
        labels = _attach_torn(state, labels, li[pick], lj[pick], merge_threshold)
    return labels


def _with_own_spread(x: FloatArray, y: FloatArray, family: npt.NDArray[np.object_], labels: IntArray,
                     assumed: float, cap: float, clustered: Callable[[FloatArray, IntArray], IntArray]) -> IntArray:
    """Labels after clustering again, family by family, with the spread the clusters found show.

    The spread assumed (GPS noise plus ``extent_m``) is a floor: reports of one incident may lie
    farther apart along the road than that (a driver reports a crash 50 m past it), and a merge
    test that assumes less splits every incident. Where a family's clusters of two or more
    reports are wider than assumed, that family is clustered again with their spread, until the
    two agree (at most ``_SPREAD_ROUNDS`` times, never beyond ``cap``). Family by family, so a
    string of jam reports along a congested street does not widen the crashes beside it; only the
    families whose spread moved are clustered again (no cluster spans two families).
    """
    spread = np.full(len(x), assumed)
    for _round in range(_SPREAD_ROUNDS):
        again = np.zeros(len(x), dtype=bool)
        for name in np.unique(family).tolist():
            members = family == name
            within = _within_variance(x[members], y[members], labels[members])
            if within is None:
                continue
            measured = min(max(within / _WITHIN_SHARE, assumed), cap)
            now = float(spread[members][0])
            if abs(measured - now) > _SPREAD_SETTLED * now:
                spread[members] = measured
                again |= members
        if not again.any():
            break
        rows = np.flatnonzero(again)
        labels = labels.copy()
        labels[rows] = clustered(spread, rows) + int(labels.max()) + 1  # apart from the labels kept
    return labels


def _within_variance(x: FloatArray, y: FloatArray, labels: IntArray) -> float | None:
    """The pooled variance of the reports about their cluster's centre, over clusters of two or more
    reports (squared distances over n - 1 per cluster); None when fewer than
    ``_MIN_SPREAD_CLUSTERS`` such clusters say anything."""
    _, index, size = np.unique(labels, return_inverse=True, return_counts=True)
    several = size >= 2
    if np.count_nonzero(several) < _MIN_SPREAD_CLUSTERS:
        return None
    centre_x, centre_y = np.bincount(index, x) / size, np.bincount(index, y) / size
    member = several[index]
    squares = (x[member] - centre_x[index[member]]) ** 2 + (y[member] - centre_y[index[member]]) ** 2
    return float(squares.sum() / (size[several] - 1).sum())


#: at most this many times, clusters are found again with their own spread
_SPREAD_ROUNDS = 8
#: the spread is taken as settled when measured and assumed are this close (a share)
_SPREAD_SETTLED = 0.03
#: the spread within clusters found with the right spread is this share of it (0.86-0.90 on the issue
#: 12 networks): the merge test stops a cluster before its farthest reports
_WITHIN_SHARE = 0.87
#: fewer clusters of two or more reports than this: their spread is not measured
_MIN_SPREAD_CLUSTERS = 20


#: reports of unknown direction look for neighbours of both directions within this many ``radius_m``
_TORN_REACH = 3.0


class _SpaceTime:
    """Neighbours in space, family and time from one STRtree: each report is placed in a tile of
    its own for its family and its ``window_s`` slice of time (tiles ``span`` apart, more than
    the network's extent), so a query at a report's place in its own tile and in the next slice's
    tile finds only reports of its family at most one slice apart. A dense feed (a day of reports
    on a few streets) does not make the query quadratic."""

    def __init__(self, x: FloatArray, y: FloatArray, finite: npt.NDArray[np.bool_],
                 family: npt.NDArray[np.object_], time_s: FloatArray, window_s: float, reach: float) -> None:
        self.family, self.time_s, self.window_s = family, time_s, window_s
        index: dict[object, int] = {}
        codes = np.array([index.setdefault(f, len(index)) for f in family.tolist()], dtype=np.float64)
        timed = np.isfinite(time_s)
        if window_s > 0 and math.isfinite(window_s) and timed.any():
            self.slice = np.floor((np.where(timed, time_s, 0.0) - time_s[timed].min()) / window_s)
        else:
            self.slice = np.zeros(len(x))
        extent = max(float(np.ptp(x[finite])), float(np.ptp(y[finite]))) if finite.any() else 0.0
        self.span = extent + 2.0 * reach + 1.0
        self.x = x - (x[finite].min() if finite.any() else 0.0) + self.slice * self.span
        self.y = y - (y[finite].min() if finite.any() else 0.0) + codes * self.span
        self.finite = finite
        self.tree = shapely.STRtree(self._points(np.arange(len(x)), 0))

    def _points(self, which: IntArray, shift: int) -> npt.NDArray[np.object_]:
        points: npt.NDArray[np.object_] = shapely.points(self.x[which] + shift * self.span, self.y[which])
        points[~self.finite[which]] = None  # no position, no neighbours
        return points

    def pairs(self, which: IntArray, distance: float, *, both_ways: bool) -> tuple[IntArray, IntArray]:
        """Pairs (report in ``which``, other report) within ``distance``, of one family and time
        window: each pair once with i < j, or with ``both_ways`` every (report in ``which``, other)."""
        found_i, found_j = [], []
        for shift in (-1, 0, 1) if both_ways else (0, 1):
            hits = self.tree.query(self._points(which, shift), predicate="dwithin", distance=distance)
            i, j = which[hits[0]].astype(np.int64), hits[1].astype(np.int64)
            if both_ways:
                keep = i != j
            elif shift == 0:
                keep = i < j  # found both ways round: keep one
            else:
                i, j = np.minimum(i, j), np.maximum(i, j)  # found once, from the earlier slice
                keep = np.ones(len(i), dtype=bool)
            found_i.append(i[keep])
            found_j.append(j[keep])
        i, j = np.concatenate(found_i), np.concatenate(found_j)
        keep = (self.family[i] == self.family[j]) & (np.abs(self.time_s[i] - self.time_s[j]) <= self.window_s)
        return i[keep], j[keep]


def _torn(n: int, loose: IntArray, neighbour: IntArray, direction: FloatArray, axis: FloatArray,
          max_heading_deg: float) -> npt.NDArray[np.bool_]:
    """Which reports of unknown direction (``loose``) have neighbours of known direction that
    disagree (pairs: ``loose[k]`` next to ``neighbour[k]``).

    A report matched to an edge can only be travelling along it, one way or the other (``axis``): it
    is torn when it has neighbours going each way of its street. A neighbour on the cross street
    (a crash round the corner) goes neither way, and no longer keeps it from its own incident (F1
    +0.002 to +0.008 on a second generator with a third of the headings missing; +0.001 or nothing
    under the issue 12 models). An unmatched report is torn when any two of its neighbours disagree."""
    torn = np.zeros(n, dtype=bool)
    if len(loose) == 0:
        return torn
    on_axis = np.isfinite(axis[loose])
    if on_axis.any():
        ahead = heading_difference(direction[neighbour], np.nan_to_num(axis[loose])) <= max_heading_deg
        behind = heading_difference(direction[neighbour], np.nan_to_num(axis[loose]) + 180.0) <= max_heading_deg
        both = np.zeros((n, 2), dtype=bool)
        both[loose[on_axis & ahead], 0] = True
        both[loose[on_axis & behind], 1] = True
        torn |= both.all(axis=1)
        loose, neighbour = loose[~on_axis], neighbour[~on_axis]
    reference = np.full(n, np.nan)
    reference[loose] = direction[neighbour]  # one neighbour's direction per loose report
    torn[loose[heading_difference(direction[neighbour], reference[loose]) > max_heading_deg]] = True
    return torn


def _attach_torn(state: _State, labels: IntArray, torn: IntArray, neighbour: IntArray, threshold: float) -> IntArray:
    """Labels after each report of unknown direction that sat out the merge (``torn``: pairs of it
    and its neighbours of known direction) joins the neighbouring cluster that takes it cheapest,
    when that passes the merge test and no cluster of another direction (mean directions more than
    ``max_heading_deg`` apart) does. Where both directions could take it, it stays alone: it is as
    likely to come from the incident on the other side of the street, and joining would fuse the
    two."""
    labels = labels.copy()
    if len(torn) == 0:
        return labels
    base = int(labels.max()) + 1
    key = np.unique(torn * base + labels[neighbour])  # each (report, neighbouring cluster) once
    report, cluster = key // base, key % base
    state.tally(labels)
    size, east, north = state.size, state.sum_east, state.sum_north
    centre_x = state.sum_x / np.maximum(size, 1.0)
    centre_y = state.sum_y / np.maximum(size, 1.0)
    x, y, time_s = state.x, state.y, state.time_s
    h = size[cluster] / (size[cluster] + 1.0)
    distance2 = (x[report] - centre_x[cluster]) ** 2 + (y[report] - centre_y[cluster]) ** 2
    cost = distance2 * h * state.scale[report] - np.log(h)
    fits = (np.maximum(state.last[cluster], time_s[report]) - np.minimum(state.first[cluster], time_s[report])
            <= state.window_s)
    cost[~fits] = np.inf
    order = np.lexsort((cluster, cost, report))  # per report, cheapest first
    report, cluster, cost = report[order], cluster[order], cost[order]
    head = np.ones(len(report), dtype=bool)
    head[1:] = report[1:] != report[:-1]
    start = np.flatnonzero(head)
    best = np.repeat(cluster[start], np.diff(np.append(start, len(report))))
    other = state.apart(east[cluster], north[cluster], east[best], north[best])
    rival = np.full(len(labels), np.inf)  # per report: the cheapest cluster of another direction
    np.minimum.at(rival, report[other], cost[other])
    chosen = report[start]
    join = (cost[start] < threshold) & (rival[chosen] >= threshold)
    labels[chosen[join]] = cluster[start][join]
    return labels


class _State:
    """Clusters as arrays indexed by their root report: size, sums of positions, first and last
    time, and the sum of the unit vectors of the members' directions of travel (0, 0 when none is
    known)."""

    def __init__(self, x: FloatArray, y: FloatArray, time_s: FloatArray, direction: FloatArray,
                 variance: float | FloatArray, window_s: float, max_heading_deg: float) -> None:
        certain = np.isfinite(direction)
        radians = np.radians(np.where(certain, direction, 0.0))
        self.x, self.y, self.time_s = x, y, time_s
        self.east = np.where(certain, np.sin(radians), 0.0)
        self.north = np.where(certain, np.cos(radians), 0.0)
        # per report: its spread along the road (one for all, or its family's)
        self.scale = 1.0 / (2.0 * np.broadcast_to(np.asarray(variance, dtype=np.float64), x.shape))
        self.window_s = window_s
        self.cos_max = math.cos(math.radians(max_heading_deg))

    def tally(self, label: IntArray) -> None:
        """Each cluster's totals (``label``: its id per report; arrays indexed by id): size, sums of
        positions and of direction vectors, first and last time."""
        n = max(len(label), int(label.max()) + 1 if len(label) else 0)
        self.size = np.bincount(label, minlength=n).astype(np.float64)
        self.sum_x = np.bincount(label, self.x, n)
        self.sum_y = np.bincount(label, self.y, n)
        self.sum_east = np.bincount(label, self.east, n)
        self.sum_north = np.bincount(label, self.north, n)
        self.first = np.full(n, np.inf)
        np.minimum.at(self.first, label, self.time_s)
        self.last = np.full(n, -np.inf)
        np.maximum.at(self.last, label, self.time_s)

    def apart(self, east_a: npt.NDArray[Any], north_a: npt.NDArray[Any], east_b: npt.NDArray[Any],
              north_b: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
        """Whether two (sums of) directions of travel are more than ``max_heading_deg`` apart (never
        when either is unknown: a zero vector)."""
        apart: npt.NDArray[np.bool_] = (east_a * east_b + north_a * north_b
                                        < self.cos_max * np.hypot(east_a, north_a) * np.hypot(east_b, north_b))
        return apart

    def costs(self, label: IntArray, i: IntArray, j: IntArray) -> tuple[IntArray, IntArray, FloatArray]:
        """The clusters (lo < hi) holding a candidate pair, each pair once, and their merge test
        (infinite where the time window or the directions forbid the merge)."""
        n = len(label)
        lo, hi = np.minimum(label[i], label[j]), np.maximum(label[i], label[j])
        key = np.unique(lo[lo != hi] * n + hi[lo != hi])
        lo, hi = key // n, key % n
        self.tally(label)
        size_lo, size_hi = self.size[lo], self.size[hi]
        dx = self.sum_x[lo] / size_lo - self.sum_x[hi] / size_hi
        dy = self.sum_y[lo] / size_lo - self.sum_y[hi] / size_hi
        h = size_lo * size_hi / (size_lo + size_hi)
        cost = (dx * dx + dy * dy) * h * self.scale[lo] - np.log(h)
        span = np.maximum(self.last[lo], self.last[hi]) - np.minimum(self.first[lo], self.first[hi])
        apart = self.apart(self.sum_east[lo], self.sum_north[lo], self.sum_east[hi], self.sum_north[hi])
        cost[(span > self.window_s) | apart] = np.inf
        return lo, hi, cost


def _merge(state: _State, i: IntArray, j: IntArray, threshold: float) -> IntArray:
    """Agglomeration while a merge costs less than ``threshold`` (the merge test of the module
    docstring); returns the root report of each report's cluster.

    Clusters only merge with neighbours: clusters holding a candidate pair (i, j). In rounds, all
    at once (numpy), every two clusters that are each other's cheapest merge merge; the globally
    cheapest merge is always among them, so this is the greedy cheapest-first agglomeration as far
    as the merge test is reducible (it nearly is: a merged centre lies between the two). After
    ``_MUTUAL_ROUNDS`` rounds (a long chain of reports) what is left is merged cheapest first
    with a heap.
    """
    label = np.arange(len(state.x))
    for _round in range(_MUTUAL_ROUNDS):
        lo, hi, cost = state.costs(label, i, j)
        cheap = cost < threshold
        if not cheap.any():
            return label
        lo, hi, cost = lo[cheap], hi[cheap], cost[cheap]
        node, partner = np.concatenate((lo, hi)), np.concatenate((hi, lo))
        order = np.lexsort((partner, np.concatenate((cost, cost)), node))  # cheapest first, ties by id
        node, partner = node[order], partner[order]
        first = np.ones(len(node), dtype=bool)
        first[1:] = node[1:] != node[:-1]
        best = np.full(len(label), -1, dtype=np.int64)
        best[node[first]] = partner[first]
        mutual = (best[lo] == hi) & (best[hi] == lo)
        mapping = np.arange(len(label))
        mapping[hi[mutual]] = lo[mutual]  # mutual pairs are disjoint: one step
        label = mapping[label]
    return _greedy(state, label, i, j, threshold)


#: rounds of mutual cheapest merges before the rest goes to the heap
_MUTUAL_ROUNDS = 16


def _greedy(state: _State, label: IntArray, i: IntArray, j: IntArray, threshold: float) -> IntArray:
    """Cheapest merge first with a heap, from the clusters in ``label``; plain lists, the loop is
    scalar work."""
    lo, hi, initial = state.costs(label, i, j)
    n = len(label)
    count: list[float] = state.size.tolist()
    sum_x: list[float] = state.sum_x.tolist()
    sum_y: list[float] = state.sum_y.tolist()
    first: list[float] = state.first.tolist()
    last: list[float] = state.last.tolist()
    east: list[float] = state.sum_east.tolist()
    north: list[float] = state.sum_north.tolist()
    scale: list[float] = state.scale.tolist()
    window_s, cos_max = state.window_s, state.cos_max
    log, hypot = math.log, math.hypot
    neighbours: list[set[int]] = [set() for _ in range(n)]
    for a, b in zip(lo.tolist(), hi.tolist(), strict=True):
        neighbours[a].add(b)
        neighbours[b].add(a)
    cheap = np.flatnonzero(initial < threshold)
    zeros = [0] * len(cheap)
    # (cost, a, b, version of a, version of b) with a < b; an entry is valid while neither changed
    heap = list(zip(initial[cheap].tolist(), lo[cheap].tolist(), hi[cheap].tolist(), zeros, zeros, strict=True))
    heapq.heapify(heap)
    version = [0] * n
    parent = list(range(n))
    pop, push = heapq.heappop, heapq.heappush
    while heap:
        _cost, a, b, version_a, version_b = pop(heap)
        if version[a] != version_a or version[b] != version_b:
            continue  # stale: one of them changed, or was absorbed, since
        parent[b] = a  # a < b: the cluster keeps its first report as root
        size = count[a] = count[a] + count[b]
        sum_x[a] += sum_x[b]
        sum_y[a] += sum_y[b]
        centre_x, centre_y = sum_x[a] / size, sum_y[a] / size
        start = first[a] = min(first[a], first[b])
        end = last[a] = max(last[a], last[b])
        ea = east[a] = east[a] + east[b]
        na = north[a] = north[a] + north[b]
        reach = cos_max * hypot(ea, na)
        version_a = version[a] = version[a] + 1
        version[b] = -1
        absorbed = neighbours[b]
        neighbours[b] = set()
        for other in absorbed:
            neighbours[other].discard(b)
            neighbours[other].add(a)
        mine = neighbours[a]
        mine |= absorbed
        mine.discard(a)
        mine.discard(b)
        for other in mine:  # the merge test against each neighbour (inline: the hot loop)
            if max(end, last[other]) - min(start, first[other]) > window_s:
                continue
            eo, no = east[other], north[other]
            if ea * eo + na * no < reach * hypot(eo, no):
                continue  # directions of travel too far apart
            size_o = count[other]
            dx = centre_x - sum_x[other] / size_o
            dy = centre_y - sum_y[other] / size_o
            h = size * size_o / (size + size_o)
            c = (dx * dx + dy * dy) * h * scale[a] - log(h)
            if c < threshold:
                if a < other:
                    push(heap, (c, a, other, version_a, version[other]))
                else:
                    push(heap, (c, other, a, version[other], version_a))
    return np.array([_find(parent, k) for k in label.tolist()], dtype=np.int64)


def _refine(state: _State, label: IntArray, i: IntArray, j: IntArray, threshold: float) -> IntArray:
    """Cluster roots after Lloyd rounds on the merged clusters (``label``: root report per report).

    Each round, from the current centres: each report moves to the neighbouring cluster (one that
    holds a candidate pair with it, within the time window and of a compatible direction) that
    takes it cheapest, when that passes the merge test and costs less than staying (the test
    against its own cluster's centre without it; the threshold when it is alone). All reports move
    at once (but one at most into each cluster, so the time window and direction checked hold, and
    none into a lone report's cluster that report leaves, which would leave it alone), then
    the centres follow; at most ``_REFINE_ROUNDS`` rounds, fewer when nothing moves, and a report
    moves once at most (two reports that each fit the other's cluster would otherwise swap back and
    forth).
    The labels stay cluster ids: when a cluster's root report moves, the rest keep its label."""
    n = len(label)
    label = label.copy()
    report_all = np.concatenate((i, j))
    neighbour_all = np.concatenate((j, i))
    moved = np.zeros(n, dtype=bool)
    for _round in range(_REFINE_ROUNDS):
        state.tally(label)
        size, sum_x, sum_y, first, last = state.size, state.sum_x, state.sum_y, state.first, state.last
        own_all = label[report_all]
        other_all = label[neighbour_all]
        keep = other_all != own_all
        key = np.unique(report_all[keep] * n + other_all[keep])
        report, other = key // n, key % n
        if len(report) == 0:
            break
        m = size[other]
        h = m / (m + 1.0)
        dx = state.x[report] - sum_x[other] / m
        dy = state.y[report] - sum_y[other] / m
        join = (dx * dx + dy * dy) * h * state.scale[report] - np.log(h)
        fits = np.maximum(last[other], state.time_s[report]) - np.minimum(first[other], state.time_s[report])
        ok = fits <= state.window_s
        ok &= ~state.apart(state.east[report], state.north[report], state.sum_east[other], state.sum_north[other])
        join[~ok] = np.inf
        own = label[report]
        rest = size[own] - 1.0
        safe = np.maximum(rest, 1.0)
        rx = (sum_x[own] - state.x[report]) / safe
        ry = (sum_y[own] - state.y[report]) / safe
        ho = rest / (rest + 1.0)
        stay = np.where(rest > 0, ((state.x[report] - rx) ** 2 + (state.y[report] - ry) ** 2) * ho * state.scale[report]
                        - np.log(np.maximum(ho, 1e-12)), threshold)
        order = np.lexsort((other, join, report))
        report, other, join, stay = report[order], other[order], join[order], stay[order]
        head = np.ones(len(report), dtype=bool)
        head[1:] = report[1:] != report[:-1]
        move = np.flatnonzero(head & (join < stay) & (join < threshold) & ~moved[report])
        if len(move) == 0:
            break
        move = move[np.lexsort((report[move], join[move], other[move]))]  # per cluster, cheapest first
        single = np.ones(len(move), dtype=bool)
        single[1:] = other[move][1:] != other[move][:-1]
        move = move[single]  # one report joins a cluster per round: its time window and direction hold
        leaving = label[report[move]]
        move = move[~np.isin(other[move], leaving[size[leaving] == 1.0])]  # nor one whose only report leaves it
        label[report[move]] = other[move]
        moved[report[move]] = True
    return label


#: Lloyd rounds after the merge (on the issue 12 networks nearly all moves happen in the first)
_REFINE_ROUNDS = 3


def _detach_contested(state: _State, root: IntArray, i: IntArray, j: IntArray, threshold: float) -> IntArray:
    """Labels after taking out of its cluster each report that a neighbouring cluster of two or
    more reports would take (merge test below ``threshold``) at a cost not more than
    ``_CONTEST_MARGIN`` above that of staying (its own cluster's centre without it)."""
    n = len(root)
    x, y, time_s = state.x, state.y, state.time_s
    state.tally(root)
    size, first, last = state.size, state.first, state.last
    centre_x = state.sum_x / np.maximum(size, 1.0)
    centre_y = state.sum_y / np.maximum(size, 1.0)
    report = np.concatenate((i, j))
    other = root[np.concatenate((j, i))]
    own = root[report]
    keep = (other != own) & (size[own] >= 2) & (size[other] >= 2)
    report, other, own = report[keep], other[keep], own[keep]
    h_other = size[other] / (size[other] + 1.0)
    join = (((x[report] - centre_x[other]) ** 2 + (y[report] - centre_y[other]) ** 2) * h_other * state.scale[report]
            - np.log(h_other))
    rest = size[own] - 1.0
    rest_x = (centre_x[own] * size[own] - x[report]) / rest
    rest_y = (centre_y[own] * size[own] - y[report]) / rest
    h_own = rest / size[own]
    stay = ((x[report] - rest_x) ** 2 + (y[report] - rest_y) ** 2) * h_own * state.scale[report] - np.log(h_own)
    fits = np.maximum(last[other], time_s[report]) - np.minimum(first[other], time_s[report]) <= state.window_s
    contested = (join < threshold) & (join - stay < _CONTEST_MARGIN) & fits
    labels = root.copy()
    labels[report[contested]] = n + report[contested]  # alone (a label no cluster has, even for its root)
    return labels


#: a report leaves its cluster when joining a neighbouring one would cost less than this more
_CONTEST_MARGIN = 1.0


def _find(parent: list[int], k: int) -> int:
    root = k
    while parent[root] != root:
        root = parent[root]
    while parent[k] != root:  # path compression
        parent[k], k = root, parent[k]
    return root


def assign_cluster_ids(
    members: Sequence[str], labels: IntArray, previous: Mapping[str, str]
) -> list[str]:
    """Stable cluster ids: each cluster inherits the id most of its members had, once.

    Parameters
    ----------
    members
        Report (event) ids, aligned with ``labels``.
    labels
        Cluster labels from :func:`cluster_reports`.
    previous
        Report id -> cluster id from the last poll.

    Returns
    -------
    The cluster id of each report. A cluster with no known member gets a new id derived from its
    smallest member id, so replaying the same input gives the same ids.

    >>> assign_cluster_ids(["a", "b", "c"], np.array([0, 0, 1]), {"a": "c-1", "b": "c-1"})[1:]
    ['c-1', 'c-ff08fffb1947']
    """
    groups: dict[int, list[int]] = {}
    for index, label in enumerate(labels.tolist()):
        groups.setdefault(label, []).append(index)
    votes: list[tuple[int, str, int]] = []
    for label, indexes in groups.items():
        counts = Counter(previous[members[k]] for k in indexes if members[k] in previous)
        votes.extend((count, old, label) for old, count in counts.items())
    votes.sort(key=lambda vote: (-vote[0], vote[1], vote[2]))
    chosen: dict[int, str] = {}
    taken: set[str] = set()
    for _count, old, label in votes:
        if label not in chosen and old not in taken:
            chosen[label] = old
            taken.add(old)
    result = [""] * len(members)
    for label, indexes in groups.items():
        cluster_id = chosen.get(label)
        if cluster_id is None:
            seed = min(members[k] for k in indexes)
            attempt = 0
            while cluster_id is None or cluster_id in taken:  # a split-off part must not reuse an id
                text = seed if attempt == 0 else f"{seed}#{attempt}"
                cluster_id = "c-" + hashlib.blake2b(text.encode(), digest_size=6).hexdigest()
                attempt += 1
            taken.add(cluster_id)
        for k in indexes:
            result[k] = cluster_id
    return result
