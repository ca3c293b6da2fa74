"""A seeded synthetic city with ground truth, for tests and benchmarks of the network and the matchers.

A test and benchmark kit (``tests.support.synthetic``): it is not part of the installed ``geo`` package,
which never imports it.

``make_city`` lays out a ``blocks x blocks`` street grid around an origin in a local metric frame
(x metres east, y metres north) and hands it out as OSM-like nodes (lon, lat) and ways. It holds the
awkward cases of real data: ways that span several junctions, shape vertices, one-way streets (some
tagged ``oneway=-1``), dual carriageways, curved streets, roundabouts, dead-end service roads, and
``alt_name``/``ref`` tags. ``SyntheticCity.directed_edges`` is the ground truth of the directed edges
a builder must produce: every way is split at each node used two or more times over all ways (shared
by ways, or twice by one way) and at the way's ends, and each piece gives a forward edge, a backward
edge or both as its tags say (``oneway`` yes/1/true, -1/reverse, no; ``junction=roundabout`` is
one-way forward).

``make_alerts``, ``make_jams`` and ``make_report_clusters`` draw noisy Waze-like observations with the
edge(s) they came from; ``pairwise_f1``, ``fused_fraction`` and ``jaccard`` score a matcher or a
clusterer against that truth. Everything is deterministic in the seed. ``blocks=20`` gives about two
thousand directed edges; ``blocks=BENCHMARK_BLOCKS`` (173) gives about 123 thousand in under two seconds.
"""

from __future__ import annotations

import math
import uuid
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from functools import cache
from itertools import pairwise
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import numpy.typing as npt
import shapely

from geo.types import WayInput

if TYPE_CHECKING:
    from geo.network import RoadNetwork

SQRT2 = math.sqrt(2.0)

__all__ = [
    "BASE_MILLIS", "BENCHMARK_BLOCKS", "DirectedEdge", "EdgeKey", "SyntheticAlert", "SyntheticCity",
    "SyntheticIncident", "SyntheticJam", "SyntheticReport", "SyntheticReports", "directed_edges_of", "fused_fraction",
    "jaccard", "make_alerts", "make_city", "make_jams", "make_report_clusters", "pairwise_f1", "point_accuracy",
]

FloatArray = npt.NDArray[np.float64]
EdgeKey = tuple[int, int, int]

#: Epoch milliseconds the synthetic observations start from (2026-03-02T15:00:00Z).
BASE_MILLIS = 1_772_463_600_000
#: ``make_city(blocks=BENCHMARK_BLOCKS)`` has about 123k directed edges (122,960 for seed 7).
BENCHMARK_BLOCKS = 173

_NODE_ID_START = 1_000_001  # disjoint from way ids (from 1), so a mix-up of the two shows
_RING_RADIUS_M = 18.0
_MINUTE_MS = 60_000
_FAMILIES = ("ACCIDENT", "HAZARD", "JAM", "ROAD_CLOSED")
_FAMILY_P = (0.25, 0.35, 0.25, 0.15)
_WAZE_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "ACCIDENT": ("ACCIDENT", ("ACCIDENT_MINOR", "ACCIDENT_MAJOR", "")),
    "HAZARD": (
        "WEATHERHAZARD",
        ("HAZARD_ON_ROAD_OBJECT", "HAZARD_ON_ROAD_POT_HOLE", "HAZARD_ON_SHOULDER_CAR_STOPPED", "HAZARD_WEATHER_FOG"),
    ),
    "JAM": ("JAM", ("JAM_HEAVY_TRAFFIC", "JAM_STAND_STILL_TRAFFIC", "JAM_MODERATE_TRAFFIC", "")),
    "ROAD_CLOSED": ("ROAD_CLOSED", ("ROAD_CLOSED_EVENT", "ROAD_CLOSED_CONSTRUCTION", "ROAD_CLOSED_HAZARD")),
}
_TREES = (
    "Maple", "Oak", "Pine", "Cedar", "Elm", "Walnut", "Birch", "Willow", "Spruce", "Aspen", "Chestnut", "Hawthorn",
    "Magnolia", "Sycamore", "Poplar", "Juniper", "Laurel", "Alder", "Cypress", "Redwood", "Hickory", "Linden",
    "Myrtle", "Olive", "Acacia", "Beech", "Dogwood", "Hazel", "Holly", "Larch",
)  # fmt: skip
_SUFFIXES = ("Street", "Drive", "Road", "Lane", "Place", "Court", "Terrace", "Way")
_SPELLED = (
    "First", "Second", "Third", "Fourth", "Fifth", "Sixth", "Seventh", "Eighth", "Ninth", "Tenth", "Eleventh",
    "Twelfth", "Thirteenth", "Fourteenth", "Fifteenth", "Sixteenth", "Seventeenth", "Eighteenth", "Nineteenth",
    "Twentieth",
)  # fmt: skip
_ABBREV = {
    "Street": "St", "Avenue": "Ave", "Boulevard": "Blvd", "Drive": "Dr", "Road": "Rd", "Lane": "Ln", "Place": "Pl",
    "Court": "Ct", "Terrace": "Ter", "Way": "Wy", "Circle": "Cir",
}  # fmt: skip


def _bearing(p: FloatArray, q: FloatArray) -> float:
    """Compass bearing (degrees clockwise from north) from metric point p to q."""
    return math.degrees(math.atan2(float(q[0] - p[0]), float(q[1] - p[1]))) % 360.0


def _turn(a: float, b: float) -> float:
    """Absolute difference of two bearings, 0-180 degrees."""
    return abs((b - a + 180.0) % 360.0 - 180.0)


def _cumlen(coords: FloatArray) -> FloatArray:
    seg = np.hypot(*np.diff(coords, axis=0).T)
    return np.concatenate(([0.0], np.cumsum(seg)))


@dataclass(frozen=True, slots=True, eq=False)
class DirectedEdge:
    """One ground-truth directed edge: a way's piece between two junctions, in one travel direction.

    ``coords_m`` (read-only, N x 2) is in the city's metric frame in travel order; ``oneway`` says the
    piece carries no edge the other way.
    """

    way_id: int
    from_node: int
    to_node: int
    name: str | None
    coords_m: FloatArray
    length_m: float
    oneway: bool
    highway: str = ""

    @property
    def key(self) -> EdgeKey:
        """``(way_id, from_node, to_node)``."""
        return (self.way_id, self.from_node, self.to_node)


@dataclass(eq=False)
class SyntheticCity:
    """Nodes, ways and ground-truth directed edges, with frame conversions and lookups.

    ``features`` maps ``oneway``, ``oneway_reverse``, ``dual_carriageway``, ``curved``, ``roundabout``,
    ``service`` and ``shape_vertices`` to way ids; ``carriageways`` maps ``(axis, street, side)`` of a
    dual carriageway (axis ``"h"`` east-west or ``"v"`` north-south) to its way ids.
    """

    nodes: dict[int, tuple[float, float]]
    ways: list[WayInput]
    directed_edges: list[DirectedEdge]
    nodes_m: dict[int, tuple[float, float]]
    origin: tuple[float, float]
    features: dict[str, list[int]]
    carriageways: dict[tuple[str, int, int], list[int]]
    seed: int
    blocks: int
    block_m: float
    _by_key: dict[EdgeKey, DirectedEdge] = field(init=False, repr=False)
    _out: dict[int, list[DirectedEdge]] = field(init=False, repr=False)
    _cw: dict[int, tuple[str, int, int]] = field(init=False, repr=False)
    _by_way: dict[int, list[DirectedEdge]] = field(init=False, repr=False)
    _scale: tuple[float, float] = field(init=False, repr=False)
    _tree: Any = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        self._by_key = {e.key: e for e in self.directed_edges}
        self._out, self._by_way = defaultdict(list), defaultdict(list)
        for e in self.directed_edges:
            self._out[e.from_node].append(e)
            self._by_way[e.way_id].append(e)
        self._cw = {w: key for key, ways in self.carriageways.items() for w in ways}
        phi = math.radians(self.origin[1])  # WGS84 metres per degree at the origin's latitude
        m_lon = 111412.84 * math.cos(phi) - 93.5 * math.cos(3 * phi) + 0.118 * math.cos(5 * phi)
        m_lat = 111132.92 - 559.82 * math.cos(2 * phi) + 1.175 * math.cos(4 * phi) - 0.0023 * math.cos(6 * phi)
        self._scale = (m_lon, m_lat)

    def to_lonlat(self, x: float, y: float) -> tuple[float, float]:
        """Metric (x east, y north of the origin) to (lon, lat): equirectangular at the origin's latitude."""
        return (self.origin[0] + x / self._scale[0], self.origin[1] + y / self._scale[1])

    def to_metric(self, lon: float, lat: float) -> tuple[float, float]:
        """(lon, lat) to metric, the exact inverse of ``to_lonlat``."""
        return ((lon - self.origin[0]) * self._scale[0], (lat - self.origin[1]) * self._scale[1])

    def to_lonlat_array(self, xy: FloatArray) -> FloatArray:
        """``to_lonlat`` over an N x 2 array."""
        out: FloatArray = np.asarray(xy, dtype=np.float64) / np.array(self._scale) + np.array(self.origin)
        return out

    def edge(self, key: EdgeKey) -> DirectedEdge:
        """The directed edge ``(way_id, from_node, to_node)``; KeyError when there is none."""
        return self._by_key[key]

    def has_edge(self, key: EdgeKey) -> bool:
        """Whether ``key`` is a legal directed edge."""
        return key in self._by_key

    def out_edges(self, node: int) -> list[DirectedEdge]:
        """Directed edges leaving a junction node."""
        return self._out.get(node, [])

    def carriageway_of(self, way_id: int) -> tuple[str, int, int] | None:
        """``(axis, street, side)`` when the way is one carriageway of a dual carriageway."""
        return self._cw.get(way_id)

    def point_at(self, key: EdgeKey, offset_m: float) -> tuple[float, float, float]:
        """Metric (x, y) and travel bearing (degrees) at ``offset_m`` along a directed edge."""
        c = self._by_key[key].coords_m
        cum = _cumlen(c)
        s = min(max(offset_m, 0.0), float(cum[-1]))
        i = min(int(np.searchsorted(cum, s, side="right")) - 1, len(c) - 2)
        t = (s - cum[i]) / max(cum[i + 1] - cum[i], 1e-12)
        p = c[i] + t * (c[i + 1] - c[i])
        return float(p[0]), float(p[1]), _bearing(c[i], c[i + 1])

    def project(self, key: EdgeKey, x: float, y: float) -> tuple[float, float]:
        """Distance (m) from a metric point to a directed edge's line, and the offset of the nearest point."""
        c = self._by_key[key].coords_m
        a, d = c[:-1], np.diff(c, axis=0)
        seg2 = (d * d).sum(axis=1)
        t = np.clip(((np.array([x, y]) - a) * d).sum(axis=1) / np.where(seg2 > 0, seg2, 1.0), 0.0, 1.0)
        dist = np.hypot(*(a + t[:, None] * d - np.array([x, y])).T)
        i = int(np.argmin(dist))
        return float(dist[i]), float(_cumlen(c)[i] + t[i] * math.sqrt(seg2[i]))

    def distance_to_network(self, x: float, y: float) -> float:
        """Distance (m) from a metric point to the nearest road of the whole city (STRtree, built once)."""
        if self._tree is None:
            coords = np.vstack([e.coords_m for e in self.directed_edges])
            index = np.repeat(np.arange(len(self.directed_edges)), [len(e.coords_m) for e in self.directed_edges])
            self._tree = shapely.STRtree(shapely.linestrings(coords, indices=index))
        _, dist = self._tree.query_nearest(shapely.Point(x, y), return_distance=True)
        return float(dist[0])

    def straightest_next(self, edge: DirectedEdge, max_turn_deg: float = 100.0) -> DirectedEdge | None:
        """The continuation of ``edge`` at its end with the smallest turn (no U-turn), if within ``max_turn_deg``."""
        heading = _bearing(edge.coords_m[-2], edge.coords_m[-1])
        best, best_turn = None, max_turn_deg
        for nxt in self.out_edges(edge.to_node):
            turn = _turn(heading, _bearing(nxt.coords_m[0], nxt.coords_m[1]))
            if nxt.to_node != edge.from_node and turn <= best_turn:
                best, best_turn = nxt, turn
        return best

    def advance(self, key: EdgeKey, offset_m: float, distance_m: float) -> tuple[EdgeKey, float] | None:
        """The point ``distance_m`` further along the road, following the straightest continuation."""
        edge, rest, seen = self._by_key[key], offset_m + distance_m, {key}
        while rest > edge.length_m:
            rest -= edge.length_m
            nxt = self.straightest_next(edge)
            if nxt is None or nxt.key in seen:
                return None
            edge = nxt
            seen.add(edge.key)
        return edge.key, rest

    def opposite_at(self, key: EdgeKey, offset_m: float) -> tuple[EdgeKey, float] | None:
        """The same place in the opposite direction: the reverse edge, or the other carriageway."""
        way, a, b = key
        rev = self._by_key.get((way, b, a))
        if rev is not None:
            return rev.key, rev.length_m - offset_m
        cw = self._cw.get(way)
        if cw is None:
            return None
        x, y, _ = self.point_at(key, offset_m)
        twins = [e for w in self.carriageways.get((cw[0], cw[1], 1 - cw[2]), []) for e in self._by_way.get(w, [])]
        best = min(((self.project(e.key, x, y), e.key) for e in twins), default=None)
        return None if best is None or best[0][0] > 25.0 else (best[1], best[0][1])


def _oneway(tags: Mapping[str, str]) -> int:
    """1: travel only in node order, -1: only against it, 0: both (roundabouts and motorways imply 1)."""
    value = tags.get("oneway", "").strip().lower()
    if value in ("yes", "1", "true"):
        return 1
    if value in ("-1", "reverse"):
        return -1
    if value == "no":
        return 0
    return int(tags.get("junction") in ("roundabout", "circular") or tags.get("highway") == "motorway")


def directed_edges_of(nodes_m: Mapping[int, tuple[float, float]], ways: Sequence[WayInput]) -> list[DirectedEdge]:
    """Split ways at junctions (nodes used two or more times overall, and way ends) into directed edges."""
    uses = Counter(n for w in ways for n in w.nodes)
    edges: list[DirectedEdge] = []
    for w in ways:
        ns, tags = list(w.nodes), w.tags
        oneway = _oneway(tags)
        fwd, bwd = oneway >= 0, oneway <= 0
        coords = np.array([nodes_m[n] for n in ns], dtype=np.float64)
        coords.flags.writeable = False
        cum = _cumlen(coords)
        cuts = [0, *(i for i in range(1, len(ns) - 1) if uses[ns[i]] >= 2), len(ns) - 1]
        name, hw = tags.get("name"), tags.get("highway", "")
        for a, b in pairwise(cuts):
            length = float(cum[b] - cum[a])
            if fwd:
                edges.append(DirectedEdge(w.id, ns[a], ns[b], name, coords[a : b + 1], length, not bwd, hw))
            if bwd:
                edges.append(DirectedEdge(w.id, ns[b], ns[a], name, coords[a : b + 1][::-1], length, not fwd, hw))
    return edges


def _ordinal(k: int) -> str:
    suffix = "th" if 11 <= k % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


@dataclass
class _Street:
    axis: str  # "h": east-west, constant y; "v": north-south, constant x
    k: int
    name: str
    highway: str
    extra: dict[str, str]
    offsets: tuple[float, ...] = (0.0,)  # lateral offset of each carriageway
    dirs: tuple[int, ...] = (0,)  # per carriageway: 0 both ways, +1 / -1 along increasing / decreasing coordinate
    reverse_tag: bool = False
    curve: str = ""
    amp: float = 0.0
    shape: bool = False

    @property
    def plain(self) -> bool:
        return self.dirs == (0,) and not self.curve


class _Builder:
    def __init__(self, seed: int, n: int, block: float) -> None:
        self.rng, self.n, self.block = np.random.default_rng(seed), n, block
        self.grid = (np.arange(n + 1) - n / 2.0) * block
        self.nodes_m: dict[int, tuple[float, float]] = {}
        self.ways: list[WayInput] = []
        self.features: dict[str, list[int]] = defaultdict(list)
        self.carriageways: dict[tuple[str, int, int], list[int]] = defaultdict(list)

    def node(self, x: float, y: float) -> int:
        nid = _NODE_ID_START + len(self.nodes_m)
        self.nodes_m[nid] = (x, y)
        return nid

    def way(self, nodes: list[int], tags: dict[str, str], *kinds: str) -> int:
        wid = len(self.ways) + 1
        self.ways.append(WayInput(wid, nodes, tags))
        for kind in kinds:
            self.features[kind].append(wid)
        return wid

    def plan(self, axis: str) -> list[_Street]:
        n, rng, block = self.n, self.rng, self.block
        dual = set(range(int(rng.integers(2, 5)), n - 1, 8)) if n >= 5 else set()
        inner = [k for k in range(1, n) if k not in dual]
        curved: list[int] = []
        for k in rng.permutation(inner) if axis == "h" else []:
            if len(curved) < max(1, round(0.08 * n)) and 1 < k < n - 1 and not {k - 1, k + 1} & (dual | {*curved}):
                curved.append(int(k))
        rest = [k for k in inner if k not in curved]
        picked = sorted(int(k) for k in rng.permutation(rest)[: round(0.25 * (n + 1))])
        oneway = {k: 1 - 2 * (i % 2) for i, k in enumerate(picked)}
        streets = []
        for k in range(n + 1):
            tree = _TREES[k % len(_TREES)]
            if axis == "v":
                name = f"{_ordinal(k + 1)} Avenue"
            else:
                name = f"{tree} {'Boulevard' if k in dual else _SUFFIXES[(k // len(_TREES)) % len(_SUFFIXES)]}"
            hw = "primary" if k in dual else "secondary" if k % 5 == 0 else "residential"
            s = _Street(axis, k, name, hw, {})
            if k in dual:
                sep = float(rng.uniform(12.0, 18.0))
                s.offsets, s.dirs = (sep / 2, -sep / 2), ((1, -1) if axis == "v" else (-1, 1))
                s.extra["ref"] = f"SR {10 + k}"
            elif hw == "secondary" and rng.random() < 0.5:
                s.extra["ref"] = f"CR {100 + k}"
            if axis == "v" and k < len(_SPELLED) and rng.random() < 0.25:
                s.extra["alt_name"] = f"{_SPELLED[k]} Avenue"
            elif axis == "h" and rng.random() < 0.1:
                s.extra["alt_name"] = f"Old {_TREES[int(rng.integers(len(_TREES)))]} Road"
            if k in curved:
                s.curve = "wave" if curved.index(k) % 2 == 0 else "arc"
                s.amp = float(rng.uniform(0.10, 0.15) if s.curve == "wave" else rng.uniform(0.15, 0.22)) * block
                s.amp *= float(rng.choice([-1.0, 1.0]))
            elif k in oneway:
                s.dirs, s.reverse_tag = (oneway[k],), bool(rng.random() < 0.4)
            s.shape = not s.curve and bool(rng.random() < 0.35)
            streets.append(s)
        return streets

    def at(self, s: _Street, c: int, t: float) -> tuple[float, float]:
        """Metric point of street s, carriageway c, at axis coordinate t."""
        if s.axis == "v":
            return float(self.grid[s.k]) + s.offsets[c], t
        u, span = t - float(self.grid[0]), float(self.grid[-1] - self.grid[0])
        shift = s.amp * math.sin(math.pi * u / (self.block if s.curve == "wave" else span)) if s.curve else 0.0
        return t, float(self.grid[s.k]) + s.offsets[c] + shift

    def build(self) -> None:
        n, rng, grid, block = self.n, self.rng, self.grid, self.block
        hs, vs = self.plan("h"), self.plan("v")
        lines: dict[tuple[str, int, int], list[tuple[float, int, str]]] = {
            (s.axis, s.k, c): [] for s in hs + vs for c in range(len(s.offsets))
        }
        rb: list[tuple[int, int]] = []
        blocked: set[tuple[int, int]] = set()
        cands = [(i, j) for i in range(1, n) for j in range(1, n) if vs[i].plain and hs[j].plain]
        for idx in rng.permutation(len(cands)):
            if len(rb) >= max(1, n * n // 200):
                break
            if cands[idx] not in blocked:
                i, j = cands[idx]
                rb.append((i, j))
                blocked.update((i + a, j + b) for a in range(-2, 3) for b in range(-2, 3))
        rb_set = set(rb)
        for h in hs:
            for c, _ in enumerate(h.offsets):
                for v in vs:
                    for c2, dx in enumerate(v.offsets):
                        if (v.k, h.k) not in rb_set:
                            x, y = self.at(h, c, float(grid[v.k]) + dx)
                            nid = self.node(x, y)
                            lines[("h", h.k, c)].append((x, nid, "x"))
                            lines[("v", v.k, c2)].append((y, nid, "x"))
        for idx, (i, j) in enumerate(rb):
            cx, cy = float(grid[i]), float(grid[j])
            angles = np.radians(np.arange(0, 360, 15))
            ring = [self.node(cx + _RING_RADIUS_M * math.cos(a), cy + _RING_RADIUS_M * math.sin(a)) for a in angles]
            east, north, west, south = ring[0], ring[6], ring[12], ring[18]
            lines[("h", j, 0)] += [(cx - _RING_RADIUS_M, west, "end"), (cx + _RING_RADIUS_M, east, "start")]
            lines[("v", i, 0)] += [(cy - _RING_RADIUS_M, south, "end"), (cy + _RING_RADIUS_M, north, "start")]
            tags = {"highway": "secondary" if "secondary" in (hs[j].highway, vs[i].highway) else "residential"}
            tags["junction"] = "roundabout"
            if idx % 2 == 0:
                tags["name"] = f"{hs[j].name.split()[0]} Circle"
            self.way([*ring, ring[0]], tags, "roundabout")
        streets = {("h", s.k): s for s in hs} | {("v", s.k): s for s in vs}
        for pts in lines.values():
            pts.sort()
        slots = [
            (key, a[0], b[0])
            for key, pts in lines.items()
            if len(streets[key[:2]].offsets) == 1 and not streets[key[:2]].curve
            for a, b in pairwise(pts)
            if a[2] == b[2] == "x" and b[0] - a[0] > 0.6 * block
        ]
        for idx in sorted(rng.choice(len(slots), size=min(len(slots), max(2, n * n // 25)), replace=False)):
            key, t0, t1 = slots[idx]
            s, mid = streets[key[:2]], (t0 + t1) / 2
            x, y = self.at(s, 0, mid)
            attach, depth = self.node(x, y), float(rng.uniform(0.3, 0.4) * block * rng.choice([-1.0, 1.0]))
            end = self.node(x + depth, y) if s.axis == "v" else self.node(x, y + depth)
            lines[key].append((mid, attach, "s"))
            tags = {"highway": "service"} | ({"service": "driveway"} if rng.random() < 0.5 else {})
            self.way([attach, end], tags, "service")
        for key, pts in lines.items():
            self.emit_line(streets[key[:2]], key[2], sorted(pts))

    def emit_line(self, s: _Street, c: int, pts: list[tuple[float, int, str]]) -> None:
        runs: list[list[tuple[float, int, str]]] = [[]]
        for pt in pts:
            runs[-1].append(pt)
            if pt[2] == "end":
                runs.append([])
        for run in runs:
            dense: list[tuple[float, int, bool]] = []
            for a, b in pairwise(run):
                dense.append((a[0], a[1], a[2] == "x"))
                ts: list[float] = []
                if s.curve:
                    ts = list(np.linspace(a[0], b[0], max(2, math.ceil((b[0] - a[0]) / 6.0)) + 1)[1:-1])
                elif s.shape and b[0] - a[0] > 50.0 and self.rng.random() < 0.5:
                    ts = sorted(self.rng.uniform(a[0] + 0.25 * (b[0] - a[0]), b[0] - 0.25 * (b[0] - a[0]), 2))
                    ts = ts[: int(self.rng.integers(1, 3))]
                for t in ts:
                    x, y = self.at(s, c, float(t))
                    jitter = 0.0 if s.curve else float(np.clip(self.rng.normal(0.0, 0.6), -1.5, 1.5))
                    x, y = (x + jitter, y) if s.axis == "v" else (x, y + jitter)
                    dense.append((float(t), self.node(x, y), False))
            if run:
                dense.append((run[-1][0], run[-1][1], run[-1][2] == "x"))
            if len(dense) < 2:
                continue
            cuts, target = [0], int(self.rng.integers(3, 7))
            for p in range(1, len(dense) - 1):
                if dense[p][2] and dense[p][0] - dense[cuts[-1]][0] >= (target - 0.5) * self.block:
                    cuts.append(p)
                    target = int(self.rng.integers(3, 7))
            if len(cuts) > 1 and dense[-1][0] - dense[cuts[-1]][0] < 1.5 * self.block:
                cuts.pop()
            cuts.append(len(dense) - 1)
            for a_i, b_i in pairwise(cuts):
                self.emit_way(s, c, [d[1] for d in dense[a_i : b_i + 1]])

    def emit_way(self, s: _Street, c: int, nodes: list[int]) -> None:
        tags = {"highway": s.highway, "name": s.name, **s.extra}
        kinds = ["curved"] if s.curve else []
        d = s.dirs[c]
        if d == 0:
            nodes = nodes[::-1] if self.rng.random() < 0.3 else nodes
            if self.rng.random() < 0.1:
                tags["oneway"] = "no"
        else:
            travel = nodes if d > 0 else nodes[::-1]
            nodes, tags["oneway"] = (travel[::-1], "-1") if s.reverse_tag else (travel, "yes")
            kinds += ["dual_carriageway"] if len(s.offsets) == 2 else ["oneway"] + ["oneway_reverse"] * s.reverse_tag
        wid = self.way(nodes, tags, *kinds)
        if len(s.offsets) == 2:
            self.carriageways[(s.axis, s.k, c)].append(wid)


def make_city(
    *, seed: int = 7, blocks: int = 20, block_m: float = 110.0, origin: tuple[float, float] = (-122.30, 37.80)
) -> SyntheticCity:
    """Build a seeded synthetic street grid with its ground-truth directed edges.

    Parameters
    ----------
    seed
        Seed of ``numpy.random.default_rng``; the same seed gives the same city.
    blocks
        Blocks per side: ``blocks + 1`` streets each way. 20 gives ~2k directed edges,
        ``BENCHMARK_BLOCKS`` (173) ~123k.
    block_m
        Distance between parallel streets, metres.
    origin
        (lon, lat) of the grid's centre, the origin of the metric frame.

    Returns
    -------
    SyntheticCity
        Nodes (lon, lat), ways with OSM tags, and the directed edges a builder must produce.
    """
    if blocks < 2 or block_m < 60.0:
        raise ValueError("need blocks >= 2 and block_m >= 60")
    builder = _Builder(seed, blocks, block_m)
    builder.build()
    edges = directed_edges_of(builder.nodes_m, builder.ways)
    uses = Counter(n for w in builder.ways for n in w.nodes)
    builder.features["shape_vertices"] = [w.id for w in builder.ways if any(uses[n] == 1 for n in w.nodes[1:-1])]
    city = SyntheticCity(
        {}, builder.ways, edges, builder.nodes_m, origin, dict(builder.features), dict(builder.carriageways),
        seed, blocks, block_m,
    )  # fmt: skip
    ids = list(builder.nodes_m)
    lonlat = city.to_lonlat_array(np.array([builder.nodes_m[i] for i in ids]))
    city.nodes = {i: (float(lon), float(lat)) for i, (lon, lat) in zip(ids, lonlat.tolist(), strict=True)}
    return city


def _street_label(rng: np.random.Generator, name: str | None) -> str | None:
    """The street as a reporter's app gives it: sometimes missing, sometimes abbreviated."""
    u = rng.random()
    if name is None or u < 0.1:
        return None
    words = name.split()
    if u < 0.3 and words[-1] in _ABBREV:
        return " ".join([*words[:-1], _ABBREV[words[-1]]])
    return name


def _observe(
    city: SyntheticCity, rng: np.random.Generator, key: EdgeKey, offset: float, gps: float, heading: float
) -> tuple[float, float, int, float]:
    """Noisy (lon, lat), magvar (0 = unknown for ~10%) and the true bearing of a point on an edge."""
    x, y, bearing = city.point_at(key, offset)
    dx, dy = rng.normal(0.0, gps / SQRT2, 2)
    lon, lat = city.to_lonlat(x + float(dx), y + float(dy))
    noisy = round(bearing + float(rng.normal(0.0, heading))) % 360
    return lon, lat, (0 if rng.random() < 0.1 else int(noisy)), bearing


def _uuid(rng: np.random.Generator) -> str:
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


class _EdgeDraw:
    """Draws directed edges longer than ``min_len`` with probability proportional to their length."""

    def __init__(self, city: SyntheticCity, min_len: float) -> None:
        self.edges = [e for e in city.directed_edges if e.length_m > min_len]
        if not self.edges:
            raise ValueError(f"no directed edge is longer than {min_len} m")
        cdf = np.cumsum([e.length_m for e in self.edges])
        self.cdf = cdf / cdf[-1]

    def __call__(self, rng: np.random.Generator) -> DirectedEdge:
        return self.edges[min(int(np.searchsorted(self.cdf, rng.random(), side="right")), len(self.edges) - 1)]


@dataclass(frozen=True, slots=True)
class SyntheticAlert:
    """A Waze-like alert and where it truly is: ``edge``, ``offset_m`` along it, distance to its nearer end."""

    uuid: str
    lon: float
    lat: float
    magvar: int
    street: str | None
    type: str
    subtype: str
    pub_millis: int
    edge: EdgeKey
    offset_m: float
    dist_to_junction_m: float
    true_bearing_deg: float


def make_alerts(
    city: SyntheticCity,
    n: int,
    *,
    seed: int,
    gps_noise_m: float = 8.0,
    heading_noise_deg: float = 15.0,
    junction_clearance_m: float = 0.0,
) -> list[SyntheticAlert]:
    """Alerts on random directed edges (chosen in proportion to length) at random offsets.

    Parameters
    ----------
    city
        The city to place them in.
    n
        How many alerts.
    seed
        Seed of the generator.
    gps_noise_m
        Root-mean-square horizontal position error in metres (the usual way GPS accuracy is
        stated): each axis gets a Gaussian with sigma = gps_noise_m / sqrt(2).
    heading_noise_deg
        Standard deviation of the heading noise, degrees; ~10% of alerts get magvar 0 (unknown).
    junction_clearance_m
        Keep every true point at least this far from both ends of its edge.

    Returns
    -------
    list[SyntheticAlert]
    """
    rng = np.random.default_rng(seed)
    draw = _EdgeDraw(city, 2.0 * junction_clearance_m + 1.0)
    alerts = []
    for _ in range(n):
        e = draw(rng)
        offset = float(rng.uniform(junction_clearance_m, e.length_m - junction_clearance_m))
        lon, lat, magvar, bearing = _observe(city, rng, e.key, offset, gps_noise_m, heading_noise_deg)
        family = str(rng.choice(_FAMILIES, p=_FAMILY_P))
        waze_type, subtypes = _WAZE_TYPES[family]
        alerts.append(
            SyntheticAlert(
                _uuid(rng), lon, lat, magvar, _street_label(rng, e.name), waze_type, str(rng.choice(subtypes)),
                BASE_MILLIS + int(rng.integers(0, 86_400_000)), e.key, offset, min(offset, e.length_m - offset),
                bearing,
            )
        )
    return alerts


@dataclass(frozen=True, slots=True)
class SyntheticJam:
    """A Waze-like jam line (lon, lat) and the directed edges it truly covers, in travel order.

    ``outlier_index`` is the point moved 40+ m off the network, if any; ``gap`` tells a stretch of
    points was dropped.
    """

    jam_id: int
    line: list[tuple[float, float]]
    street: str | None
    level: int
    pub_millis: int
    edges: list[EdgeKey]
    outlier_index: int | None
    gap: bool


def _walk(city: SyntheticCity, rng: np.random.Generator, start: DirectedEdge, k: int) -> list[DirectedEdge]:
    """A random legal path of up to k edges, preferring to go straight, never revisiting a node."""
    path, seen = [start], {start.from_node, start.to_node}
    while len(path) < k:
        cur = path[-1]
        heading = _bearing(cur.coords_m[-2], cur.coords_m[-1])
        opts = [e for e in city.out_edges(cur.to_node) if e.to_node not in seen]
        if not opts:
            break
        w = np.array([6.0 if _turn(heading, _bearing(e.coords_m[0], e.coords_m[1])) < 30.0 else 1.0 for e in opts])
        nxt = opts[int(rng.choice(len(opts), p=w / w.sum()))]
        path.append(nxt)
        seen.add(nxt.to_node)
    return path


def make_jams(
    city: SyntheticCity, n: int, *, seed: int, gps_noise_m: float = 8.0, min_edges: int = 2, max_edges: int = 8
) -> list[SyntheticJam]:
    """Jams along random legal paths of ``min_edges``-``max_edges`` directed edges.

    Each edge of the path is resampled at one spacing of 20-40 m per jam (junction points kept), then
    every point gets Gaussian noise. 5% of jams get one interior point thrown 40-80 m away, to a spot
    40+ m from every road (``outlier_index``); 10% lose a stretch of interior points (``gap``).

    Parameters
    ----------
    city
        The city to place them in.
    n
        How many jams.
    seed
        Seed of the generator.
    gps_noise_m
        RMS position error per point in metres (sigma per axis = gps_noise_m / sqrt(2)).
    min_edges, max_edges
        Bounds of the path length in directed edges.

    Returns
    -------
    list[SyntheticJam]
    """
    if not 1 <= min_edges <= max_edges:
        raise ValueError("need 1 <= min_edges <= max_edges")
    rng = np.random.default_rng(seed)
    draw = _EdgeDraw(city, 0.0)
    jams = []
    for jam_id in range(1, n + 1):
        for _ in range(200):
            path = _walk(city, rng, draw(rng), int(rng.integers(min_edges, max_edges + 1)))
            if len(path) >= min_edges:
                break
        else:
            raise RuntimeError(f"found no path of {min_edges} edges")
        step, parts = float(rng.uniform(20.0, 40.0)), []
        for i, e in enumerate(path):
            s = np.linspace(0.0, e.length_m, max(1, round(e.length_m / step)) + 1)
            cum = _cumlen(e.coords_m)
            part = np.column_stack((np.interp(s, cum, e.coords_m[:, 0]), np.interp(s, cum, e.coords_m[:, 1])))
            parts.append(part if i == 0 else part[1:])
        truth = np.vstack(parts)
        line = truth + rng.normal(0.0, gps_noise_m / SQRT2, truth.shape)
        u, outlier, gap = rng.random(), None, False
        if u < 0.05 and len(line) >= 3:
            for _ in range(30):  # a GPS glitch: an interior point thrown 40-80 m, kept if 40+ m from every road
                i, angle, r = int(rng.integers(1, len(line) - 1)), rng.uniform(0, 2 * math.pi), rng.uniform(40, 80)
                moved = truth[i] + r * np.array([math.cos(angle), math.sin(angle)])
                if city.distance_to_network(float(moved[0]), float(moved[1])) >= 40.0:
                    line[i], outlier = moved, i
                    break
        elif u < 0.15 and len(line) >= 6:
            length = int(rng.integers(2, max(3, len(line) // 3) + 1))
            start = int(rng.integers(1, len(line) - length))
            line, gap = np.delete(line, range(start, start + length), axis=0), True
        by_name: dict[str | None, float] = defaultdict(float)
        for e in path:
            by_name[e.name] += e.length_m
        jams.append(
            SyntheticJam(
                jam_id, [(float(a), float(b)) for a, b in city.to_lonlat_array(line).tolist()],
                max(by_name, key=by_name.__getitem__), int(rng.integers(1, 6)),
                BASE_MILLIS + int(rng.integers(0, 86_400_000)), [e.key for e in path], outlier, gap,
            )
        )
    return jams


@dataclass(frozen=True, slots=True)
class SyntheticIncident:
    """One real-world incident: where (edge, offset, lon/lat) and when it started."""

    incident_id: int
    category: str
    edge: EdgeKey
    offset_m: float
    lon: float
    lat: float
    start_millis: int


@dataclass(frozen=True, slots=True)
class SyntheticReport:
    """One user report of an incident; ``incident_id``, ``edge`` and ``offset_m`` are the ground truth."""

    uuid: str
    lon: float
    lat: float
    magvar: int
    category: str
    subtype: str
    street: str | None
    pub_millis: int
    incident_id: int
    edge: EdgeKey
    offset_m: float


@dataclass(frozen=True)
class SyntheticReports(Sequence[SyntheticReport]):
    """Reports sorted by time (a sequence of them), their incidents, and the close-but-distinct pairs.

    ``close_pairs`` holds ``(incident_a, incident_b, kind)`` with kind ``"opposite"`` (same place, other
    direction or carriageway), ``"along"`` (40-80 m further on the same path) or ``"later"`` (same
    place, 60-90 minutes later).
    """

    reports: list[SyntheticReport]
    incidents: list[SyntheticIncident]
    close_pairs: list[tuple[int, int, str]]

    @overload
    def __getitem__(self, index: int) -> SyntheticReport: ...
    @overload
    def __getitem__(self, index: slice) -> list[SyntheticReport]: ...
    def __getitem__(self, index: int | slice) -> SyntheticReport | list[SyntheticReport]:
        return self.reports[index]

    def __len__(self) -> int:
        return len(self.reports)

    def __iter__(self) -> Iterator[SyntheticReport]:
        return iter(self.reports)

    @property
    def true_labels(self) -> list[int]:
        """The incident id of each report, in order."""
        return [r.incident_id for r in self.reports]


def make_report_clusters(
    city: SyntheticCity,
    n_incidents: int,
    *,
    seed: int,
    gps_noise_m: float = 8.0,
    heading_noise_deg: float = 15.0,
    close_fraction: float = 0.3,
) -> SyntheticReports:
    """Incidents reported 1-6 times each, with deliberately close-but-distinct incident pairs.

    Reports of one incident share its category family, lie within 15 m of it along its edge (plus
    GPS noise) and come 0-30 minutes after its start. After a fraction ``close_fraction`` of the
    incidents a partner incident is added, the kinds taken in turn (``opposite``, ``along``,
    ``later``), skipping a kind the place cannot have (``opposite`` on a one-way single carriageway).

    Parameters
    ----------
    city
        The city to place them in.
    n_incidents
        How many incidents in all, partners included.
    seed
        Seed of the generator.
    gps_noise_m, heading_noise_deg
        RMS horizontal position error in metres (sigma per axis = gps_noise_m / sqrt(2)) and the
        standard deviation of the heading noise in degrees.
    close_fraction
        Chance that an incident gets a close-but-distinct partner.

    Returns
    -------
    SyntheticReports
        A sequence of reports, with ``incidents`` and ``close_pairs``.
    """
    rng = np.random.default_rng(seed)
    draw = _EdgeDraw(city, 30.0)
    incidents: list[SyntheticIncident] = []
    reports: list[SyntheticReport] = []
    pairs: list[tuple[int, int, str]] = []
    kinds, turn = ("opposite", "along", "later"), 0

    def add(key: EdgeKey, offset: float, family: str, start: int) -> int:
        inc_id, length = len(incidents), city.edge(key).length_m
        x, y, _ = city.point_at(key, offset)
        incidents.append(SyntheticIncident(inc_id, family, key, offset, *city.to_lonlat(x, y), start))
        for r in range(int(rng.choice(6, p=[0.25, 0.25, 0.2, 0.15, 0.1, 0.05])) + 1):
            at = min(max(offset + float(rng.uniform(-15.0, 15.0)), 0.0), length)
            lon, lat, magvar, _ = _observe(city, rng, key, at, gps_noise_m, heading_noise_deg)
            when = start + (0 if r == 0 else int(rng.integers(0, 30 * _MINUTE_MS + 1)))
            label = _street_label(rng, city.edge(key).name)
            subtype = str(rng.choice(_WAZE_TYPES[family][1]))
            reports.append(SyntheticReport(_uuid(rng), lon, lat, magvar, family, subtype, label, when, inc_id, key, at))
        return inc_id

    while len(incidents) < n_incidents:
        e = draw(rng)
        offset = float(rng.uniform(0.0, e.length_m))
        family, start = str(rng.choice(_FAMILIES, p=_FAMILY_P)), BASE_MILLIS + int(rng.integers(0, 86_400_000))
        base = add(e.key, offset, family, start)
        if len(incidents) >= n_incidents or rng.random() >= close_fraction:
            continue
        for _ in range(3):
            kind, turn = kinds[turn % 3], turn + 1
            jitter = int(rng.integers(-10 * _MINUTE_MS, 10 * _MINUTE_MS + 1))
            if kind == "later":
                place: tuple[EdgeKey, float] | None = (e.key, offset)
                jitter = int(rng.integers(60 * _MINUTE_MS, 90 * _MINUTE_MS + 1))
            elif kind == "opposite":
                place = city.opposite_at(e.key, offset)
            else:
                place = city.advance(e.key, offset, float(rng.uniform(40.0, 80.0)))
            if place is not None:
                pairs.append((base, add(place[0], place[1], family, start + jitter), kind))
                break
    reports.sort(key=lambda r: r.pub_millis)
    return SyntheticReports(reports, incidents, pairs)


def pairwise_f1(true_labels: Sequence[Hashable], predicted_labels: Sequence[Hashable]) -> tuple[float, float, float]:
    """Pairwise precision, recall and F1 of a clustering, in O(n) by counting label combinations.

    A pair of items is positive when both share a label. With no predicted pairs precision is 1, with
    no true pairs recall is 1.

    Parameters
    ----------
    true_labels, predicted_labels
        One label per item, same order and length.

    Returns
    -------
    tuple[float, float, float]
        (precision, recall, f1).

    Examples
    --------
    >>> pairwise_f1([0, 0, 0, 1, 1], [0, 0, 1, 1, 1])
    (0.5, 0.5, 0.5)
    """
    if len(true_labels) != len(predicted_labels):
        raise ValueError("true_labels and predicted_labels differ in length")

    def pairs(counts: Counter[Any]) -> int:
        return sum(c * (c - 1) // 2 for c in counts.values())

    both = pairs(Counter(zip(true_labels, predicted_labels, strict=True)))
    true_pairs, predicted_pairs = pairs(Counter(true_labels)), pairs(Counter(predicted_labels))
    precision = both / predicted_pairs if predicted_pairs else 1.0
    recall = both / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def fused_fraction(
    pairs: Sequence[tuple[int, int, str]],
    true_labels: Sequence[int],
    predicted_labels: Sequence[Hashable],
    *,
    kind: str | None = None,
) -> float:
    """Fraction of close-but-distinct incident pairs that a clustering fused.

    A pair ``(a, b, kind)`` is fused when some report of incident a and some report of b got the same
    predicted label.

    Parameters
    ----------
    pairs
        ``SyntheticReports.close_pairs``.
    true_labels, predicted_labels
        Per report: its incident id, and its predicted cluster label.
    kind
        Count only pairs of this kind.

    Returns
    -------
    float
        Fused pairs / pairs (0.0 without pairs).
    """
    clusters: dict[int, set[Hashable]] = defaultdict(set)
    for incident, label in zip(true_labels, predicted_labels, strict=True):
        clusters[incident].add(label)
    chosen = [(a, b) for a, b, k in pairs if kind is None or k == kind]
    fused = sum(1 for a, b in chosen if clusters.get(a, set()) & clusters.get(b, set()))
    return fused / len(chosen) if chosen else 0.0


def jaccard(a: AbstractSet[Hashable], b: AbstractSet[Hashable]) -> float:
    """Size of the intersection over size of the union; 1.0 for two empty sets."""
    union = len(a | b)
    return len(a & b) / union if union else 1.0


def point_accuracy(
    city: SyntheticCity, alerts: Sequence[SyntheticAlert], matched: Sequence[EdgeKey | None]
) -> dict[str, float]:
    """Share of alerts matched to their true directed edge: strictly, and where it is knowable.

    ``strict`` counts the directed edge as placed. ``determinable`` differs in one case only: an
    alert with unknown heading (magvar 0) on a two-way street carries no information about its
    direction, so there the right street segment in either direction counts. ``far`` is the
    determinable share among alerts at least 20 m from a junction.
    """
    strict: list[bool] = []
    knowable: list[bool] = []
    far: list[bool] = []
    for alert, key in zip(alerts, matched, strict=True):
        exact = key == alert.edge
        reverse = key is not None and key == (alert.edge[0], alert.edge[2], alert.edge[1])
        undirected = alert.magvar == 0 and not city.edge(alert.edge).oneway
        ok = exact or (undirected and reverse)
        strict.append(exact)
        knowable.append(ok)
        if alert.dist_to_junction_m >= 20.0:
            far.append(ok)
    return {
        "strict": float(np.mean(strict)) if strict else 0.0,
        "determinable": float(np.mean(knowable)) if knowable else 0.0,
        "far": float(np.mean(far)) if far else 0.0,
    }


@cache
def city_and_network() -> tuple[SyntheticCity, RoadNetwork]:
    """The tests' standard synthetic city (seed 7, 30 blocks) and its road network, built once."""
    from geo.network import build_network

    city = make_city(seed=7, blocks=30)
    return city, build_network(city.nodes, city.ways)
