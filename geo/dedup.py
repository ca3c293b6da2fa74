"""Deduplication: reports of one incident form one cluster, and a cluster keeps its id between polls.

Two reports are linked when all of these hold:

* same category family (a crash and a hazard are different incidents);
* close in time: at most ``window_s`` apart (Waze users report up to 30 minutes late);
* close along the road: on the same directed edge, or on consecutive ones, within
  ``radius_m`` — never on the two directions of one street; reports without a match fall back
  to straight-line distance with compatible headings.

Candidates come from one STRtree query over all reports and are joined with union-find,
closest pairs first, so the whole step is O(n log n).
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

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


def _travel_direction(network: RoadNetwork | None, reports: Reports, edge_bearing: FloatArray) -> FloatArray:
    """The direction of travel of each report: its heading when known, else the bearing of its
    matched edge when that is a one-way street; NaN when unknown (either way of a two-way street)."""
    heading = reports.heading
    direction = np.where(np.isfinite(heading) & (heading != 0), heading % 360.0, np.nan)
    if network is None:
        return direction
    matched = reports.edge >= 0
    oneway = np.zeros(len(reports), dtype=bool)
    oneway[matched] = network.link_oneway[network.edge_link[reports.edge[matched]]] != 0
    use_edge = np.isnan(direction) & oneway
    direction[use_edge] = edge_bearing[use_edge]
    return direction


def cluster_reports(
    reports: Reports,
    network: RoadNetwork | None = None,
    *,
    radius_m: float = 25.0,
    window_s: float = 1800.0,
    max_heading_deg: float = 90.0,
    max_extent_m: float = 55.0,
) -> IntArray:
    """Cluster labels (0..k-1, in order of each cluster's first report) for the reports.

    Parameters
    ----------
    reports
        Positions in a metric CRS, times in seconds, category families, match results.
    network
        The network the edges refer to; without it reports are compared where they were reported.
    radius_m
        How far apart two linked reports may be, once snapped to their matched roads.
    window_s
        How far apart in time two linked reports may be (30 minutes by default); a cluster never
        spans more than this either, so a chain of reports cannot join an incident with a new one
        at the same place an hour later.
    max_heading_deg
        Reports whose directions of travel differ more than this are not linked (opposite
        directions of a street, the other carriageway).
    max_extent_m
        A cluster never grows wider than this (bounding-box diagonal of the snapped positions),
        so a chain of reports cannot creep along a road and fuse two incidents a few dozen metres apart.

    Notes
    -----
    The direction of travel of a report is its heading, or the direction of its one-way street.
    Reports whose direction is known are joined first, closest pairs first (Kruskal with the extent
    and time caps). A report whose direction is unknown (Waze heading 0 on a two-way street) then
    joins the cluster of its nearest compatible neighbour but never bridges two clusters: it could
    belong to either direction of the street. Distances are measured between the snapped positions
    and not along the network, so reports of one incident on two short consecutive edges, across a
    junction, or one of them matched to the cross street, still meet.
    """
    n = len(reports)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    x, y, edge_bearing = _road_points(network, reports)
    finite = np.isfinite(x) & np.isfinite(y)
    points = shapely.points(np.where(finite, x, 0.0), np.where(finite, y, 0.0))
    points[~finite] = None  # no position, no neighbours
    i, j = shapely.STRtree(points).query(points, predicate="dwithin", distance=radius_m)
    keep = i < j
    i, j = i[keep].astype(np.int64), j[keep].astype(np.int64)
    family = np.asarray(reports.family, dtype=object)
    time_s = reports.time_s
    keep = (family[i] == family[j]) & (np.abs(time_s[i] - time_s[j]) <= window_s)
    i, j = i[keep], j[keep]

    direction = _travel_direction(network, reports, edge_bearing)
    certain = np.isfinite(direction)
    both = certain[i] & certain[j]
    heading_ok = ~both | (heading_difference(np.nan_to_num(direction[i]), np.nan_to_num(direction[j]))
                          <= max_heading_deg)
    distance = np.hypot(x[i] - x[j], y[i] - y[j])

    parent = list(range(n))  # a plain list: the union-find loop is scalar work
    box: list[Box] = np.column_stack((x, y, x, y, time_s, time_s)).tolist()
    strong = both & heading_ok
    caps = (max_extent_m, window_s)
    _join(parent, box, i[strong], j[strong], distance[strong], caps)

    # reports of unknown direction: attach to the cluster of their certain neighbours, only when
    # those all agree on one
    loose = (~certain[i] | ~certain[j]) & heading_ok
    li, lj, ld = i[loose], j[loose], distance[loose]
    options: dict[int, set[int]] = {}
    for a, b in zip(li.tolist(), lj.tolist(), strict=True):
        for weak, other in ((a, b), (b, a)):
            if not certain[weak] and certain[other]:
                options.setdefault(weak, set()).add(_find(parent, other))
    attached = np.zeros(n, dtype=bool)
    for weak, roots in options.items():
        if len(roots) == 1:
            (root,) = roots
            if _fits(box[root], box[weak], caps):
                parent[weak] = root
                _grow(box, root, weak)
                attached[weak] = True
    # what is left of unknown direction clusters among itself
    rest = ~certain[li] & ~certain[lj] & ~attached[li] & ~attached[lj]
    _join(parent, box, li[rest], lj[rest], ld[rest], caps)

    order: dict[int, int] = {}
    return np.array([order.setdefault(_find(parent, k), len(order)) for k in range(n)], dtype=np.int64)


def _find(parent: list[int], k: int) -> int:
    root = k
    while parent[root] != root:
        root = parent[root]
    while parent[k] != root:  # path compression
        parent[k], k = root, parent[k]
    return root


Box = list[float]  # x0, y0, x1, y1, t0, t1: plain floats, the union-find loop is scalar work


def _fits(a: Box, b: Box, caps: tuple[float, float]) -> bool:
    """Whether two clusters' boxes together stay within the extent and time caps."""
    max_extent, max_span = caps
    width = max(a[2], b[2]) - min(a[0], b[0])
    height = max(a[3], b[3]) - min(a[1], b[1])
    span = max(a[5], b[5]) - min(a[4], b[4])
    return span <= max_span and math.hypot(width, height) <= max_extent


def _grow(box: list[Box], root: int, other: int) -> None:
    mine, theirs = box[root], box[other]
    box[root] = [min(mine[0], theirs[0]), min(mine[1], theirs[1]), max(mine[2], theirs[2]),
                 max(mine[3], theirs[3]), min(mine[4], theirs[4]), max(mine[5], theirs[5])]


def _join(parent: list[int], box: list[Box], i: IntArray, j: IntArray, cost: FloatArray,
          caps: tuple[float, float]) -> None:
    """Union-find over pairs, cheapest first, refusing merges that would exceed the caps."""
    order = np.argsort(cost, kind="stable")
    for first, second in zip(i[order].tolist(), j[order].tolist(), strict=True):
        a, b = _find(parent, first), _find(parent, second)
        if a == b or not _fits(box[a], box[b], caps):
            continue
        if b < a:
            a, b = b, a
        parent[b] = a
        _grow(box, a, b)


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
