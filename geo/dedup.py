"""Deduplication: reports of one incident form one cluster, and a cluster keeps its id between polls.

Two reports are linked when all of these hold:

* same category family (a crash and a hazard are different incidents);
* close in time: at most ``window_s`` apart (Waze users report up to 30 minutes late);
* close along the road: on the same directed edge, or on consecutive ones, within
  ``radius_m`` — never on the two directions of one street; reports without a match fall back
  to straight-line distance with compatible headings.

Linked reports are joined with union-find; candidates come from one STRtree query over all
reports, so the whole step is O(n log n).
"""

from __future__ import annotations

import hashlib
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
) -> IntArray:
    """Cluster labels (0..k-1, in order of each cluster's first report) for the reports.

    Parameters
    ----------
    reports
        Positions in a metric CRS, times in seconds, category families, match results.
    network
        The network the edges refer to; without it only same-edge and straight-line links count.
    radius_m
        How far apart along the road two reports of one incident may be.
    window_s
        How far apart in time two linked reports may be (30 minutes by default).
    max_heading_deg
        Unmatched reports with known headings further apart than this are not linked.
    """
    n = len(reports)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    points = shapely.points(reports.x, reports.y)
    i, j = shapely.STRtree(points).query(points, predicate="dwithin", distance=radius_m)
    keep = i < j
    i, j = i[keep].astype(np.int64), j[keep].astype(np.int64)
    family = np.asarray(reports.family, dtype=object)
    keep = (family[i] == family[j]) & (np.abs(reports.time_s[i] - reports.time_s[j]) <= window_s)
    i, j = i[keep], j[keep]

    matched = (reports.edge[i] >= 0) & (reports.edge[j] >= 0)
    gap = _along_gap(network, reports.edge[i], reports.offset[i], reports.edge[j], reports.offset[j])
    on_road = matched & (gap <= radius_m)
    hi, hj = reports.heading[i], reports.heading[j]
    known = np.isfinite(hi) & np.isfinite(hj) & (hi != 0) & (hj != 0)
    heading_ok = ~known | (heading_difference(hi, hj) <= max_heading_deg)
    off_road = ~matched & heading_ok
    i, j = i[on_road | off_road], j[on_road | off_road]
    return _components(n, i, j)


def _components(n: int, i: IntArray, j: IntArray) -> IntArray:
    """Connected components by vectorized union-find (min-label propagation with pointer jumping)."""
    labels = np.arange(n, dtype=np.int64)
    while len(i):
        low = np.minimum(labels[i], labels[j])
        before = labels.copy()
        np.minimum.at(labels, i, low)
        np.minimum.at(labels, j, low)
        while True:
            jumped = labels[labels]
            if np.array_equal(jumped, labels):
                break
            labels = jumped
        if np.array_equal(labels, before):
            break
    _, dense = np.unique(labels, return_inverse=True)
    return dense.astype(np.int64)


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
            cluster_id = "c-" + hashlib.blake2b(seed.encode(), digest_size=6).hexdigest()
        for k in indexes:
            result[k] = cluster_id
    return result
