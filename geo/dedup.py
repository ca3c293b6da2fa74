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

from geo.network import RoadNetwork, heading_difference

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


def _along_gap(network: RoadNetwork | None, ea: IntArray, oa: FloatArray, eb: IntArray, ob: FloatArray) -> FloatArray:
    """Distance along the road from a to b (either order) when they share an edge or a junction; inf otherwise."""
    gap = np.full(len(ea), np.inf)
    matched = (ea >= 0) & (eb >= 0)
    same = matched & (ea == eb)
    gap[same] = np.abs(oa[same] - ob[same])
    if network is None:
        return gap
    length = network.link_len[network.edge_link]
    consecutive = matched & ~same
    idx = np.flatnonzero(consecutive)
    a, b = ea[idx], eb[idx]
    a_then_b = network.edge_v[a] == network.edge_u[b]
    b_then_a = network.edge_v[b] == network.edge_u[a]
    twins = network.edge_link[a] == network.edge_link[b]
    forward = (length[a] - oa[idx]) + ob[idx]
    backward = (length[b] - ob[idx]) + oa[idx]
    value = np.where(a_then_b & ~twins, forward, np.inf)
    value = np.minimum(value, np.where(b_then_a & ~twins, backward, np.inf))
    gap[idx] = value
    return gap


def cluster_reports(
    reports: Reports,
    network: RoadNetwork | None = None,
    *,
    radius_m: float = 25.0,
    window_s: float = 1800.0,
    max_heading_deg: float = 60.0,
    max_extent_m: float = 40.0,
) -> IntArray:
    """Cluster labels (0..k-1, in order of each cluster's first report) for the reports.

    Parameters
    ----------
    reports
        Positions in a metric CRS, times in seconds, category families, match results.
    network
        The network the edges refer to; without it only same-edge and straight-line links count.
    radius_m
        How far apart along the road two linked reports may be.
    window_s
        How far apart in time two linked reports may be (30 minutes by default).
    max_heading_deg
        Reports whose known headings differ more than this are not linked.
    max_extent_m
        A cluster never grows wider than this (bounding-box diagonal), so a chain of reports
        cannot creep along a road and fuse two incidents a few dozen metres apart.

    Notes
    -----
    Reports whose direction of travel is certain (matched, with a known heading or on a one-way
    street) are joined first, closest pairs first (Kruskal with the extent cap). A report whose
    direction is unknown (Waze heading 0 on a two-way street) then joins the cluster of its
    nearest compatible neighbour but never bridges two clusters: it could belong to either
    direction of the street.
    """
    n = len(reports)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    points = shapely.points(reports.x, reports.y)
    points[~(np.isfinite(reports.x) & np.isfinite(reports.y))] = None  # no position, no neighbours
    i, j = shapely.STRtree(points).query(points, predicate="dwithin", distance=radius_m)
    keep = i < j
    i, j = i[keep].astype(np.int64), j[keep].astype(np.int64)
    family = np.asarray(reports.family, dtype=object)
    keep = (family[i] == family[j]) & (np.abs(reports.time_s[i] - reports.time_s[j]) <= window_s)
    i, j = i[keep], j[keep]

    heading = reports.heading
    known = np.isfinite(heading) & (heading != 0)
    matched = reports.edge >= 0
    oneway = np.zeros(n, dtype=bool)
    link = np.full(n, -1, dtype=np.int64)
    if network is not None:
        link[matched] = network.edge_link[reports.edge[matched]]
        oneway[matched] = network.link_oneway[link[matched]] != 0
    certain = matched & (known | oneway)

    both_known = known[i] & known[j]
    heading_ok = ~both_known | (heading_difference(heading[i], heading[j]) <= max_heading_deg)
    distance = np.hypot(reports.x[i] - reports.x[j], reports.y[i] - reports.y[j])
    gap = _along_gap(network, reports.edge[i], reports.offset[i], reports.edge[j], reports.offset[j])

    strong = certain[i] & certain[j] & (gap <= radius_m) & heading_ok
    parent = np.arange(n, dtype=np.int64)
    box = np.column_stack((reports.x, reports.y, reports.x, reports.y))
    _join(parent, box, i[strong], j[strong], gap[strong], max_extent_m)

    # reports of unknown direction: compatible when on the same or touching links, or unmatched nearby
    if network is not None:
        ends = np.column_stack((network.link_a, network.link_b))
        li, lj = link[i], link[j]
        touching = (li >= 0) & (lj >= 0) & (
            (li == lj) | (ends[np.maximum(li, 0)][:, :, None] == ends[np.maximum(lj, 0)][:, None, :]).any(axis=(1, 2))
        )
    else:
        touching = (reports.edge[i] >= 0) & (reports.edge[i] == reports.edge[j])
    loose = (~certain[i] | ~certain[j]) & heading_ok & (touching | ~matched[i] | ~matched[j])
    li, lj, ld = i[loose], j[loose], distance[loose]
    # attach to the cluster of its certain neighbours, only when they all agree on one
    options: dict[int, set[int]] = {}
    for a, b in zip(li.tolist(), lj.tolist(), strict=True):
        for weak, other in ((a, b), (b, a)):
            if not certain[weak] and certain[other]:
                options.setdefault(weak, set()).add(_find(parent, other))
    attached = np.zeros(n, dtype=bool)
    for weak, roots in options.items():
        if len(roots) == 1:
            (root,) = roots
            if _extent(box[root], box[weak]) <= max_extent_m:
                parent[weak] = root
                _grow(box, root, weak)
                attached[weak] = True
    # what is left of unknown direction clusters among itself
    rest = ~certain[li] & ~certain[lj] & ~attached[li] & ~attached[lj]
    _join(parent, box, li[rest], lj[rest], ld[rest], max_extent_m)

    order: dict[int, int] = {}
    return np.array([order.setdefault(_find(parent, k), len(order)) for k in range(n)], dtype=np.int64)


def _find(parent: IntArray, k: int) -> int:
    root = k
    while parent[root] != root:
        root = int(parent[root])
    while parent[k] != root:  # path compression
        parent[k], k = root, int(parent[k])
    return root


def _extent(a: FloatArray, b: FloatArray) -> float:
    return float(math.hypot(max(a[2], b[2]) - min(a[0], b[0]), max(a[3], b[3]) - min(a[1], b[1])))


def _grow(box: FloatArray, root: int, other: int) -> None:
    box[root, 0] = min(box[root, 0], box[other, 0])
    box[root, 1] = min(box[root, 1], box[other, 1])
    box[root, 2] = max(box[root, 2], box[other, 2])
    box[root, 3] = max(box[root, 3], box[other, 3])


def _join(parent: IntArray, box: FloatArray, i: IntArray, j: IntArray, cost: FloatArray, max_extent: float) -> None:
    """Union-find over pairs, cheapest first, refusing merges that would exceed ``max_extent``."""
    for k in np.argsort(cost, kind="stable").tolist():
        a, b = _find(parent, int(i[k])), _find(parent, int(j[k]))
        if a == b or _extent(box[a], box[b]) > max_extent:
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
