"""The road network: directed edges from junction to junction, a spatial index and a graph.

``build_network`` takes plain nodes and ways (``geo.types``), splits every way at junctions (a
node shared by two or more ways, used twice by one way, or a way's end) into *links*, and gives
each link one directed edge per allowed direction. Everything is stored in numpy arrays, so the
network pickles compactly for the on-disk cache and the hot paths stay vectorized.

A directed edge is known to the outside as ``(way_id, from_node, to_node)`` with OSM ids.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from shapely import STRtree

from geo.crs import MetricFrame, clean_line
from geo.names import normalize_street
from geo.types import WayInput

__all__ = ["EdgeKey", "NodeTable", "RoadNetwork", "bearing_deg", "build_network", "heading_difference", "oneway_of"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
EdgeKey = tuple[int, int, int]

_FORWARD_WORDS = frozenset({"yes", "true", "1"})
_BACKWARD_WORDS = frozenset({"-1", "reverse"})
_NAME_TAGS = ("name", "alt_name", "official_name", "old_name", "short_name", "loc_name", "ref")
_IMPLIED_ONEWAY = frozenset({"motorway"})


def oneway_of(tags: Mapping[str, str]) -> int:
    """1 travel only along the way's node order, -1 only against it, 0 both ways.

    >>> oneway_of({"oneway": "yes"}), oneway_of({"oneway": "-1"}), oneway_of({"junction": "roundabout"})
    (1, -1, 1)
    >>> oneway_of({"highway": "motorway"}), oneway_of({"highway": "motorway", "oneway": "no"})
    (1, 0)
    """
    value = tags.get("oneway", "").strip().lower()
    if value in _FORWARD_WORDS:
        return 1
    if value in _BACKWARD_WORDS:
        return -1
    if value == "no":
        return 0
    if tags.get("junction") in ("roundabout", "circular") or tags.get("highway") in _IMPLIED_ONEWAY:
        return 1
    return 0


def _names(tags: Mapping[str, str]) -> tuple[str, ...]:
    names: list[str] = []
    for key in _NAME_TAGS:
        for part in tags.get(key, "").split(";"):
            part = part.strip()
            if part and part not in names:
                names.append(part)
    return tuple(names)


class NodeTable(Mapping[int, tuple[float, float]]):
    """Node id -> (lon, lat), held in three numpy arrays sorted by id.

    What the OSM readers hand to :func:`build_network`: 24 bytes a node where a dict of tuples
    costs about 200, and looked up for all references at once. A node id given more than once
    keeps its last coordinates, as assigning into a dict would.

    >>> table = NodeTable([3, 1, 3], [10.0, 11.0, 12.0], [50.0, 51.0, 52.0])
    >>> len(table), table[3], 2 in table, list(table)
    (2, (12.0, 52.0), False, [1, 3])
    """

    __slots__ = ("ids", "lat", "lon")

    def __init__(self, ids: Iterable[int] | IntArray, lon: Iterable[float] | FloatArray,
                 lat: Iterable[float] | FloatArray) -> None:
        id_array = np.asarray(ids, dtype=np.int64).reshape(-1)
        order = np.argsort(id_array, kind="stable")
        sorted_ids = id_array[order]
        last = np.ones(len(sorted_ids), dtype=bool)
        last[:-1] = sorted_ids[1:] != sorted_ids[:-1]
        rows = order[last]
        self.ids: IntArray = sorted_ids[last]
        self.lon: FloatArray = np.asarray(lon, dtype=np.float64).reshape(-1)[rows]
        self.lat: FloatArray = np.asarray(lat, dtype=np.float64).reshape(-1)[rows]

    def rows(self, ids: IntArray) -> IntArray:
        """The row of each of ``ids``, -1 for an id not in the table."""
        at = np.searchsorted(self.ids, ids)
        found = at < len(self.ids)
        found[found] = self.ids[at[found]] == ids[found]
        return np.where(found, at, -1)

    def subset(self, ids: IntArray) -> NodeTable:
        """The table of those ``ids`` it holds."""
        rows = self.rows(np.unique(ids))
        rows = rows[rows >= 0]
        return NodeTable(self.ids[rows], self.lon[rows], self.lat[rows])

    def __getitem__(self, node: int) -> tuple[float, float]:
        row = int(self.rows(np.array([node], dtype=np.int64))[0]) if _is_int64(node) else -1
        if row < 0:
            raise KeyError(node)
        return (float(self.lon[row]), float(self.lat[row]))

    def __contains__(self, node: object) -> bool:
        return _is_int64(node) and bool(self.rows(np.array([node], dtype=np.int64))[0] >= 0)

    def __iter__(self) -> Iterator[int]:
        return iter(self.ids.tolist())

    def __len__(self) -> int:
        return len(self.ids)


def _is_int64(value: object) -> bool:
    return isinstance(value, int | np.integer) and -(2**63) <= int(value) < 2**63


@dataclass
class RoadNetwork:
    """Links (undirected pieces between junctions) and the directed edges over them.

    Arrays indexed by link: ``link_way``, ``link_a``/``link_b`` (OSM node ids at the link's
    start and end in way order), ``link_len`` (metres), ``link_oneway`` (1, -1, 0),
    ``link_class``, ``link_names`` (all names, primary first), ``link_coord_ptr`` into
    ``coords`` (metric x, y). Arrays indexed by directed edge: ``edge_link``, ``edge_forward``.
    """

    crs: str
    coords: FloatArray
    link_coord_ptr: IntArray
    link_way: IntArray
    link_a: IntArray
    link_b: IntArray
    link_len: FloatArray
    link_oneway: npt.NDArray[np.int8]
    link_class: list[str]
    link_names: list[tuple[str, ...]]
    edge_link: IntArray
    edge_forward: npt.NDArray[np.bool_]
    junction_ids: IntArray
    edge_u: IntArray
    edge_v: IntArray
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # -- sizes and identities

    @property
    def link_count(self) -> int:
        return len(self.link_way)

    @property
    def edge_count(self) -> int:
        return len(self.edge_link)

    @property
    def frame(self) -> MetricFrame:
        if "frame" not in self._cache:
            self._cache["frame"] = MetricFrame(self.crs)
        frame: MetricFrame = self._cache["frame"]
        return frame

    def edge_key(self, edge: int) -> EdgeKey:
        link = int(self.edge_link[edge])
        a, b = int(self.link_a[link]), int(self.link_b[link])
        return (int(self.link_way[link]), a, b) if self.edge_forward[edge] else (int(self.link_way[link]), b, a)

    def edge_keys(self, edges: Iterable[int]) -> list[EdgeKey]:
        return [self.edge_key(int(edge)) for edge in edges]

    def edge_index(self) -> dict[EdgeKey, int]:
        """``(way_id, from_node, to_node)`` -> directed edge number."""
        if "edge_index" not in self._cache:
            self._cache["edge_index"] = {self.edge_key(edge): edge for edge in range(self.edge_count)}
        index: dict[EdgeKey, int] = self._cache["edge_index"]
        return index

    def edge_name(self, edge: int) -> str:
        names = self.link_names[int(self.edge_link[edge])]
        return names[0] if names else ""

    def edge_length(self, edge: int) -> float:
        return float(self.link_len[int(self.edge_link[edge])])

    def edge_oneway(self, edge: int) -> bool:
        return bool(self.link_oneway[int(self.edge_link[edge])] != 0)

    def link_coords(self, link: int) -> FloatArray:
        start, end = self.link_coord_ptr[link], self.link_coord_ptr[link + 1]
        return self.coords[start:end]

    def edge_coords(self, edge: int) -> FloatArray:
        """Metric coordinates of a directed edge in travel order."""
        coords = self.link_coords(int(self.edge_link[edge]))
        return coords if self.edge_forward[edge] else coords[::-1]

    def edge_lonlat(self, edge: int) -> FloatArray:
        xy = self.edge_coords(edge)
        lon, lat = self.frame.to_lonlat(xy[:, 0], xy[:, 1])
        return np.column_stack((lon, lat))

    def twin(self, edge: int) -> int:
        """The directed edge over the same link the other way, or -1 on a one-way link."""
        twins = self._twins()
        return int(twins[edge])

    def _twins(self) -> IntArray:
        if "twins" not in self._cache:
            twins = np.full(self.edge_count, -1, dtype=np.int64)
            first = np.full(self.link_count, -1, dtype=np.int64)
            for edge, link in enumerate(self.edge_link):
                if first[link] < 0:
                    first[link] = edge
                else:
                    twins[edge], twins[first[link]] = first[link], edge
            self._cache["twins"] = twins
        result: IntArray = self._cache["twins"]
        return result

    # -- normalized names, for matching

    def name_ids(self) -> tuple[dict[str, int], list[frozenset[int]]]:
        """A number per distinct normalized name, and the set of name numbers of each link."""
        if "name_ids" not in self._cache:
            numbers: dict[str, int] = {}
            per_link: list[frozenset[int]] = []
            for names in self.link_names:
                ids = []
                for name in names:
                    normalized = normalize_street(name)
                    ids.append(numbers.setdefault(normalized, len(numbers)))
                per_link.append(frozenset(ids))
            self._cache["name_ids"] = (numbers, per_link)
        result: tuple[dict[str, int], list[frozenset[int]]] = self._cache["name_ids"]
        return result

    def name_table(self) -> tuple[npt.NDArray[np.bool_], IntArray]:
        """Per link whether it has a name, and the sorted keys ``link * (names + 1) + name id``.

        With them, "does link k carry name n" is one ``searchsorted`` for a whole batch.
        """
        if "name_table" not in self._cache:
            numbers, per_link = self.name_ids()
            width = len(numbers) + 1
            keys = np.array(
                sorted(link * width + name for link, names in enumerate(per_link) for name in names), dtype=np.int64
            )
            named = np.fromiter((bool(names) for names in per_link), dtype=bool, count=len(per_link))
            self._cache["name_table"] = (named, keys)
        result: tuple[npt.NDArray[np.bool_], IntArray] = self._cache["name_table"]
        return result

    # -- segments and the spatial index (built once per network, on first use)

    def segments(self) -> dict[str, Any]:
        """Every straight piece of every link, with its link, offset along the link and length."""
        if "segments" not in self._cache:
            counts = np.diff(self.link_coord_ptr) - 1
            starts = np.repeat(self.link_coord_ptr[:-1], counts) + _ranges(counts)
            p0 = self.coords[starts]
            p1 = self.coords[starts + 1]
            seg_len = np.hypot(*(p1 - p0).T)
            seg_link = np.repeat(np.arange(self.link_count, dtype=np.int64), counts)
            cumulative = np.cumsum(seg_len)
            link_first_segment = np.concatenate(([0], np.cumsum(counts)[:-1]))
            before = np.where(link_first_segment > 0, cumulative[link_first_segment - 1], 0.0)
            seg_offset = cumulative - seg_len - np.repeat(before, counts)
            direction = p1 - p0
            self._cache["segments"] = {
                "link": seg_link, "p0": p0, "p1": p1, "len": seg_len, "offset": seg_offset,
                # what point matching gathers per (point, segment) pair, as columns
                "x0": p0[:, 0].copy(), "y0": p0[:, 1].copy(),
                "dx": direction[:, 0].copy(), "dy": direction[:, 1].copy(),
                "inverse_square": 1.0 / np.maximum(seg_len * seg_len, 1e-12),
                "bearing": bearing_deg(direction[:, 0], direction[:, 1]),
            }
        segments: dict[str, Any] = self._cache["segments"]
        return segments

    def segment_tree(self) -> STRtree:
        if "tree" not in self._cache:
            segments = self.segments()
            lines = shapely.linestrings(
                np.stack((segments["p0"], segments["p1"]), axis=1).reshape(-1, 2),
                indices=np.repeat(np.arange(len(segments["len"])), 2),
            )
            self._cache["tree"] = STRtree(lines)
        tree: STRtree = self._cache["tree"]
        return tree

    def link_edges(self) -> npt.NDArray[np.int64]:
        """(links, 2): the forward and backward directed edge of each link, -1 where not allowed."""
        if "link_edges" not in self._cache:
            table = np.full((self.link_count, 2), -1, dtype=np.int64)
            table[self.edge_link, np.where(self.edge_forward, 0, 1)] = np.arange(self.edge_count)
            self._cache["link_edges"] = table
        result: npt.NDArray[np.int64] = self._cache["link_edges"]
        return result

    # -- graph

    def adjacency(self) -> tuple[IntArray, IntArray]:
        """CSR of the directed graph: edges leaving junction ``j`` are ``out[ptr[j]:ptr[j+1]]``."""
        if "adjacency" not in self._cache:
            order = np.argsort(self.edge_u, kind="stable")
            ptr = np.zeros(len(self.junction_ids) + 1, dtype=np.int64)
            np.add.at(ptr, self.edge_u + 1, 1)
            self._cache["adjacency"] = (np.cumsum(ptr), order.astype(np.int64))
        result: tuple[IntArray, IntArray] = self._cache["adjacency"]
        return result

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = {}
        return state

    def fingerprint(self) -> str:
        """A digest of what routing sees (edges, their ids, shapes, directions and names): equal for
        the same roads however the file was read or cached, different when any road changed."""
        if "fingerprint" not in self._cache:
            digest = hashlib.sha256(self.crs.encode())
            for array in (self.coords, self.link_coord_ptr, self.link_way, self.link_a, self.link_b,
                          self.link_oneway, self.edge_link, self.edge_forward):
                digest.update(np.ascontiguousarray(array).tobytes())
            digest.update("\x1f".join("\x1e".join(names) for names in self.link_names).encode())
            self._cache["fingerprint"] = digest.hexdigest()
        found: str = self._cache["fingerprint"]
        return found

    def lonlat_bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) of the network's roads, in degrees."""
        if "lonlat_bounds" not in self._cache:
            lon, lat = self.frame.to_lonlat(self.coords[:, 0], self.coords[:, 1])
            self._cache["lonlat_bounds"] = (float(np.min(lon)), float(np.min(lat)), float(np.max(lon)),
                                            float(np.max(lat)))
        bounds: tuple[float, float, float, float] = self._cache["lonlat_bounds"]
        return bounds

    def km_outside(self, positions: Sequence[tuple[float, float]]) -> float:
        """How far the nearest of ``positions`` (lon, lat) lies outside the network's extent, in km (0 inside;
        an equirectangular estimate, good to a few per cent at a city's scale)."""
        west, south, east, north = self.lonlat_bounds()
        nearest = math.inf
        for lon, lat in positions:
            dlat = max(south - lat, 0.0, lat - north)
            dlon = max(west - lon, 0.0, lon - east)
            nearest = min(nearest, 111.2 * math.hypot(dlat, dlon * math.cos(math.radians(lat))))
        return nearest

    def summary(self) -> dict[str, Any]:
        classes: dict[str, int] = {}
        for name in self.link_class:
            classes[name] = classes.get(name, 0) + 1
        return {
            "crs": self.crs,
            "junctions": len(self.junction_ids),
            "links": self.link_count,
            "directed_edges": self.edge_count,
            "oneway_links": int(np.count_nonzero(self.link_oneway)),
            "named_links": sum(1 for names in self.link_names if names),
            "length_km": round(float(self.link_len.sum()) / 1000.0, 3),
            "classes": dict(sorted(classes.items(), key=lambda item: -item[1])),
        }


def _ranges(counts: IntArray) -> IntArray:
    """Concatenated ``arange(c)`` for each count, vectorized."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(counts)
    starts = np.repeat(ends - counts, counts)
    return np.arange(total, dtype=np.int64) - starts


def build_network(
    nodes: Mapping[int, tuple[float, float]], ways: Iterable[WayInput], *, crs: str | None = None
) -> RoadNetwork:
    """Build the directed road network.

    Parameters
    ----------
    nodes
        Node id -> (lon, lat), WGS84: a dict, or a :class:`NodeTable` (read vectorized).
    ways
        Roads with their node ids in order and OSM tags; references to unknown nodes are dropped.
    crs
        Metric CRS for distances; default: the UTM zone of the nodes' mean position.

    >>> from geo.types import WayInput
    >>> nodes = {1: (-122.28, 37.80), 2: (-122.279, 37.80), 3: (-122.278, 37.80), 4: (-122.279, 37.801)}
    >>> net = build_network(nodes, [WayInput(10, [1, 2, 3], {"name": "A St"}),
    ...                             WayInput(11, [2, 4], {"name": "B St", "oneway": "yes"})])
    >>> net.link_count, net.edge_count
    (3, 5)
    >>> sorted(net.edge_keys(range(net.edge_count)))[:3]
    [(10, 1, 2), (10, 2, 1), (10, 2, 3)]
    """
    way_list = [way for way in ways if len(way.nodes) >= 2]
    refs = _references(way_list, nodes)
    if crs is None:
        if not len(refs.known_ids):
            raise ValueError("no way has known nodes: the network would be empty")
        crs = MetricFrame.around(float(np.mean(refs.first_seen_lon)), float(np.mean(refs.first_seen_lat))).crs
    links = _links(refs, np.column_stack(MetricFrame(crs).to_metric(refs.lon, refs.lat)))
    if not len(links.way_index):
        raise ValueError("no way yields a road segment: the network would be empty")

    per_way_oneway = np.fromiter((oneway_of(way.tags) for way in way_list), dtype=np.int8, count=len(way_list))
    per_way_names = [_names(way.tags) for way in way_list]
    per_way_class = [way.tags.get("highway", "road") for way in way_list]
    link_ways = links.way_index.tolist()
    link_oneway_array = per_way_oneway[links.way_index]
    forward_links = np.flatnonzero(link_oneway_array >= 0)
    backward_links = np.flatnonzero(link_oneway_array <= 0)
    edge_link = np.concatenate((forward_links, backward_links)).astype(np.int64)
    edge_forward = np.concatenate((np.ones(len(forward_links), bool), np.zeros(len(backward_links), bool)))
    order = np.lexsort((~edge_forward, edge_link))
    edge_link, edge_forward = edge_link[order], edge_forward[order]

    link_a_array = refs.known_ids[links.a]
    link_b_array = refs.known_ids[links.b]
    junction_ids, inverse = np.unique(np.concatenate((link_a_array, link_b_array)), return_inverse=True)
    a_index, b_index = inverse[: len(link_a_array)], inverse[len(link_a_array) :]
    edge_u = np.where(edge_forward, a_index[edge_link], b_index[edge_link]).astype(np.int64)
    edge_v = np.where(edge_forward, b_index[edge_link], a_index[edge_link]).astype(np.int64)
    way_ids = np.fromiter((way.id for way in way_list), dtype=np.int64, count=len(way_list))

    return RoadNetwork(
        crs=crs,
        coords=links.coords,
        link_coord_ptr=links.coord_ptr,
        link_way=way_ids[links.way_index],
        link_a=link_a_array,
        link_b=link_b_array,
        link_len=links.length,
        link_oneway=link_oneway_array,
        link_class=[per_way_class[way] for way in link_ways],
        link_names=[per_way_names[way] for way in link_ways],
        edge_link=edge_link,
        edge_forward=edge_forward,
        junction_ids=junction_ids.astype(np.int64),
        edge_u=edge_u,
        edge_v=edge_v,
    )


_SPIKE_DEG = 179.0  # a link vertex turning back by more than this is a digitising spike
_MIN_STEP_M = 0.01  # consecutive link vertices closer than this are one


@dataclass(frozen=True, slots=True)
class _References:
    """The ways' node references as flat arrays, checked against the known nodes.

    ``known_ids`` (sorted) are the referenced nodes that have coordinates (``lon``, ``lat``);
    ``first_seen_lon``/``first_seen_lat`` are the same in order of first reference. ``pos`` (an
    index into ``known_ids``) and ``way`` (an index into the way list) are every reference to a
    known node, way after way, without consecutive repeats, of the ways left with two or more.
    ``usage`` counts, per known node, its references plus two for each way it ends: two or more
    make it a junction.
    """

    known_ids: IntArray
    lon: FloatArray
    lat: FloatArray
    first_seen_lon: FloatArray
    first_seen_lat: FloatArray
    pos: IntArray
    way: IntArray
    usage: IntArray


def _references(way_list: list[WayInput], nodes: Mapping[int, tuple[float, float]]) -> _References:
    sizes = np.fromiter((len(way.nodes) for way in way_list), dtype=np.int64, count=len(way_list))
    raw = np.fromiter(chain.from_iterable(way.nodes for way in way_list), dtype=np.int64, count=int(sizes.sum()))
    ptr = np.concatenate(([0], np.cumsum(sizes)))
    ids, first, inverse, counts = np.unique(raw, return_index=True, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)  # numpy 2.0.x returns it in the input's shape
    # A way's ends count twice more, so they are always junctions (used references are counted
    # before unknown nodes and repeats are dropped, as the network's junctions have always been).
    usage = (counts + np.bincount(inverse[ptr[:-1]], minlength=len(ids))
             + np.bincount(inverse[ptr[1:] - 1], minlength=len(ids)))  # fmt: skip
    if isinstance(nodes, NodeTable):
        rows = nodes.rows(ids)
        known = rows >= 0
        lon, lat = nodes.lon[rows[known]], nodes.lat[rows[known]]
    else:
        points = [nodes.get(node) for node in ids.tolist()]
        known = np.fromiter((point is not None for point in points), dtype=bool, count=len(points))
        lon = np.fromiter((point[0] for point in points if point is not None), dtype=np.float64)
        lat = np.fromiter((point[1] for point in points if point is not None), dtype=np.float64)
        del points
    first_seen = np.argsort(first[known], kind="stable")

    keep = known[inverse]
    pos = (np.cumsum(known) - 1)[inverse[keep]]
    way = np.repeat(np.arange(len(way_list), dtype=np.int64), sizes)[keep]
    repeat = np.zeros(len(pos), dtype=bool)
    repeat[1:] = (pos[1:] == pos[:-1]) & (way[1:] == way[:-1])
    pos, way = pos[~repeat], way[~repeat]
    enough = np.bincount(way, minlength=len(way_list))[way] >= 2
    return _References(
        known_ids=ids[known].astype(np.int64), lon=lon, lat=lat, first_seen_lon=lon[first_seen],
        first_seen_lat=lat[first_seen], pos=pos[enough].astype(np.int64), way=way[enough], usage=usage[known],
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Links:
    """Links in way order: their way (index), end nodes (indices into ``known_ids``), shapes and lengths."""

    way_index: IntArray
    a: IntArray
    b: IntArray
    coords: FloatArray
    coord_ptr: IntArray
    length: FloatArray


def _links(refs: _References, xy: FloatArray) -> _Links:
    """Split every way at its junctions into links, vectorized.

    A link's shape is cleaned as :func:`geo.crs.clean_line` does (repeated points and spikes
    dropped). Nearly every link has neither, and those are taken as they are with the very
    arithmetic ``clean_line`` would use to find none; the few others go through ``clean_line``.
    """
    pos, way = refs.pos, refs.way
    n = len(pos)
    is_first = np.ones(n, dtype=bool)
    is_first[1:] = way[1:] != way[:-1]
    is_last = np.ones(n, dtype=bool)
    is_last[:-1] = way[1:] != way[:-1]
    split = ~is_first & ((refs.usage[pos] >= 2) | is_last)
    starts = np.flatnonzero((is_first | split) & ~is_last)
    ends = np.flatnonzero(split)
    counts = ends - starts + 1  # points per link, the junction between two links in both
    points = xy[pos[np.repeat(starts, counts) + _ranges(counts)]]
    row_start = np.cumsum(counts) - counts

    pair_in_link = np.ones(max(len(points) - 1, 0), dtype=bool)
    pair_in_link[(row_start + counts - 1)[:-1]] = False
    diffs = (points[1:] - points[:-1])[pair_in_link]
    steps = np.hypot(*diffs.T)
    step_link = np.repeat(np.arange(len(counts)), counts - 1)
    step_start = np.cumsum(counts - 1) - (counts - 1)
    irregular = np.zeros(len(counts), dtype=bool)
    irregular[step_link[steps < _MIN_STEP_M]] = True
    turns = step_link[1:] == step_link[:-1]
    before, after = diffs[:-1][turns], diffs[1:][turns]
    with np.errstate(divide="ignore", invalid="ignore"):
        cosine = (before * after).sum(axis=1) / (np.hypot(*before.T) * np.hypot(*after.T))
    irregular[step_link[:-1][turns][cosine < math.cos(math.radians(_SPIKE_DEG))]] = True

    length = np.zeros(len(counts), dtype=np.float64)
    regular_steps = (counts - 1)[~irregular]
    for k in np.unique(regular_steps).tolist():
        # summed row by row like clean_line's caller sums one link, so lengths are the same to the bit
        chosen = np.flatnonzero(~irregular & (counts - 1 == k))
        length[chosen] = steps[step_start[chosen][:, None] + np.arange(k)].sum(axis=1)

    sizes, kept, chunks, done = counts.copy(), np.ones(len(counts), dtype=bool), [], 0
    for link in np.flatnonzero(irregular).tolist():
        begin, stop = int(row_start[link]), int(row_start[link] + counts[link])
        chunks.append(points[done:begin])
        done = stop
        cleaned = clean_line(points[begin:stop], spike_deg=_SPIKE_DEG, min_step_m=_MIN_STEP_M)
        link_length = float(np.hypot(*np.diff(cleaned, axis=0).T).sum()) if len(cleaned) >= 2 else 0.0
        if link_length <= 0.0:
            kept[link] = False
            continue
        chunks.append(cleaned)
        sizes[link], length[link] = len(cleaned), link_length
    coords = np.concatenate([*chunks, points[done:]]) if chunks else points
    sizes = sizes[kept]
    return _Links(
        way_index=way[starts][kept], a=pos[starts][kept], b=pos[ends][kept], coords=coords,
        coord_ptr=np.concatenate(([0], np.cumsum(sizes))).astype(np.int64), length=length[kept],
    )  # fmt: skip


def bearing_deg(dx: FloatArray, dy: FloatArray) -> FloatArray:
    """Compass bearing (degrees clockwise from north) of metric direction vectors."""
    return np.degrees(np.arctan2(dx, dy)) % 360.0


def heading_difference(a: FloatArray, b: FloatArray) -> FloatArray:
    """Smallest absolute angle between two bearings, 0..180 degrees.

    >>> heading_difference(np.array([350.0, 10.0]), np.array([10.0, 190.0])).tolist()
    [20.0, 180.0]
    """
    diff = np.abs((np.asarray(a) - np.asarray(b)) % 360.0)
    return np.minimum(diff, 360.0 - diff)
