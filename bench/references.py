"""The reference tools of the geometry benchmarks, set up on exactly the network our code sees.

Shared by ``bench/geo_bench.py`` (synthetic city) and ``bench/geo_real.py`` (real networks):

* the network as *pieces*: one node sequence per directed edge, in the network's projected (UTM) frame;
* an osmnx-style projected ``MultiDiGraph`` of them (junction nodes, one u->v edge per directed edge with
  its geometry), for ``osmnx.distance.nearest_edges`` and mappymatch;
* leuvenmapmatching's ``DistanceMatcher`` on an ``InMemMap`` of every node and directed segment (one-way
  streets respected: a segment exists only in the allowed direction), with an R-tree edge index;
* mappymatch's ``LCSSMatcher`` on an ``NxMap`` built the way mappymatch's ``parse_osmnx_graph`` builds one;
* the end rule of ``match_lines`` (``trim_ends``) for a like-for-like comparison of paths.

Every reference is an optional dependency (``pip install -e '.[bench]'``), imported only when used.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from geo.network import RoadNetwork, oneway_of
from geo.types import WayInput

#: speeds (km/h) for mappymatch's travel-time routing where a way has no maxspeed (the network keeps none)
HWY_SPEEDS = {
    "motorway": 100.0, "trunk": 80.0, "primary": 50.0, "secondary": 40.0, "tertiary": 40.0, "unclassified": 30.0,
    "residential": 30.0, "living_street": 10.0, "service": 20.0, "road": 30.0, "motorway_link": 60.0,
    "trunk_link": 50.0, "primary_link": 40.0, "secondary_link": 30.0, "tertiary_link": 30.0,
}  # fmt: skip
#: leuvenmapmatching's settings (GPS noise about 8 m; 50 m search)
LEUVEN_SETTINGS = {"max_dist": 50, "obs_noise": 8, "obs_noise_ne": 10, "dist_noise": 8, "non_emitting_states": True,
                   "max_lattice_width": 5}  # fmt: skip


@dataclass(frozen=True)
class Piece:
    """One directed edge as a node sequence: what the references' graphs are made of."""

    key: Hashable
    nodes: tuple[int, ...]
    highway: str
    name: str | None


def directed_pieces(ways: Iterable[WayInput], known: Mapping[int, object]) -> list[Piece]:
    """Split ways at junctions into directed edges by the same rules as ``build_network``; keys are
    ``(way_id, from_node, to_node)``."""
    way_list = [w for w in ways if len(w.nodes) >= 2]
    usage: Counter[int] = Counter()
    for way in way_list:
        usage.update(way.nodes)
        usage[way.nodes[0]] += 1
        usage[way.nodes[-1]] += 1
    pieces = []
    for way in way_list:
        refs = [n for n in way.nodes if n in known]
        refs = [n for i, n in enumerate(refs) if i == 0 or n != refs[i - 1]]
        direction = oneway_of(way.tags)
        start = 0
        for i in range(1, len(refs)):
            if usage[refs[i]] < 2 and i != len(refs) - 1:
                continue
            piece = tuple(refs[start : i + 1])
            start = i
            hw, name = way.tags.get("highway", "road"), way.tags.get("name")
            if direction >= 0:
                pieces.append(Piece((way.id, piece[0], piece[-1]), piece, hw, name))
            if direction <= 0:
                pieces.append(Piece((way.id, piece[-1], piece[0]), piece[::-1], hw, name))
    return pieces


def network_pieces(network: RoadNetwork) -> tuple[list[Piece], dict[int, tuple[float, float]]]:
    """The directed edges of a built network as pieces keyed by edge number, and every node's metric x, y.

    Node ids: a junction keeps its index (>= 0); a shape vertex of a link gets a negative id shared by
    both directions of that link, so the references see exactly the shapes (after cleaning) our code sees.
    """
    xy: dict[int, tuple[float, float]] = {}
    pieces = []
    for edge in range(network.edge_count):
        link = int(network.edge_link[edge])
        start = int(network.link_coord_ptr[link])
        coords = network.link_coords(link)
        a, b = (int(network.edge_u[edge]), int(network.edge_v[edge]))
        if not network.edge_forward[edge]:
            a, b = b, a  # a, b: the junctions at the link's first and last vertex
        ids = [a, *(-(start + k) for k in range(1, len(coords) - 1)), b]
        for node, (x, y) in zip(ids, coords.tolist(), strict=True):
            xy.setdefault(node, (x, y))
        nodes = tuple(ids) if network.edge_forward[edge] else tuple(reversed(ids))
        pieces.append(Piece(edge, nodes, network.link_class[link], network.edge_name(edge) or None))
    return pieces, xy


def projected_nodes(network: RoadNetwork, nodes: Mapping[int, tuple[float, float]]) -> dict[int, tuple[float, float]]:
    ids = list(nodes)
    lonlat = np.array([nodes[i] for i in ids])
    x, y = network.frame.to_metric(lonlat[:, 0], lonlat[:, 1])
    return dict(zip(ids, zip(x.tolist(), y.tolist(), strict=True), strict=True))


def osmnx_graph(
    pieces: Sequence[Piece], xy: Mapping[int, tuple[float, float]], crs: str
) -> tuple[Any, dict[Any, Hashable]]:
    """A projected osmnx-style MultiDiGraph (junction nodes, u->v edges with geometry and osmid), and
    (u, v, key) -> the piece's key."""
    import networkx as nx
    import pyproj
    from shapely import LineString

    graph = nx.MultiDiGraph(crs=pyproj.CRS(crs))
    for piece in pieces:
        for node in (piece.nodes[0], piece.nodes[-1]):
            if node not in graph:
                graph.add_node(node, x=xy[node][0], y=xy[node][1])
    back: dict[Any, Hashable] = {}
    for piece in pieces:
        line = LineString([xy[n] for n in piece.nodes])
        u, v = piece.nodes[0], piece.nodes[-1]
        osmid = piece.key[0] if isinstance(piece.key, tuple) else piece.key
        key = graph.add_edge(u, v, osmid=osmid, geometry=line, length=line.length, highway=piece.highway,
                             name=piece.name, oneway=False, reversed=False)
        back[(u, v, key)] = piece.key
    return graph, back


def osmnx_nearest(graph: Any, back: Mapping[Any, Hashable], x: np.ndarray, y: np.ndarray) -> list[Hashable]:
    """``osmnx.distance.nearest_edges`` on projected points, mapped back to piece keys."""
    import osmnx as ox

    found = ox.distance.nearest_edges(graph, x, y)
    return [back[tuple(int(v) for v in uvk)] for uvk in found]


def ordered(keys: Iterable[Hashable | None]) -> list[Hashable]:
    """Keys in path order, consecutive repeats and unknowns dropped."""
    out: list[Hashable] = []
    for key in keys:
        if key is not None and (not out or out[-1] != key):
            out.append(key)
    return out


def trim_ends(coords_of: Callable[[Hashable], np.ndarray], path: Sequence[Hashable], x: np.ndarray,
              y: np.ndarray) -> list[Hashable]:
    """Drop a first (last) edge the line only grazes, by the rule ``match_lines`` applies to its own paths.

    A jam covers whole edges; when the first point projects within ``min(15 m, half the edge)`` of the
    first edge's end, that edge is GPS noise across a junction (and likewise the last edge's start).
    """
    from shapely import LineString, Point

    trimmed = list(path)
    if len(trimmed) > 1:
        line = LineString(coords_of(trimmed[0]))
        if line.length - line.project(Point(x[0], y[0])) < min(15.0, 0.5 * line.length):
            trimmed = trimmed[1:]
    if len(trimmed) > 1:
        line = LineString(coords_of(trimmed[-1]))
        if line.project(Point(x[-1], y[-1])) < min(15.0, 0.5 * line.length):
            trimmed = trimmed[:-1]
    return trimmed


class LeuvenMatcher:
    """leuvenmapmatching ``DistanceMatcher`` (``LEUVEN_SETTINGS``) on an ``InMemMap`` of every node
    (projected, ``use_latlon=False``) and every directed node-to-node segment, R-tree indexed. A new
    matcher per trace, as its documentation does."""

    def __init__(self, pieces: Sequence[Piece], xy: Mapping[int, tuple[float, float]]) -> None:
        from leuvenmapmatching.map.inmem import InMemMap

        logging.getLogger("be.kuleuven.cs.dtai.mapmatching").setLevel(logging.ERROR)
        self.segment_key: dict[tuple[int, int], Hashable] = {}
        graph: dict[int, tuple[tuple[float, float], list[int]]] = {}
        for piece in pieces:
            for a, b in pairwise(piece.nodes):
                self.segment_key[(a, b)] = piece.key
                for node in (a, b):
                    if node not in graph:
                        graph[node] = ((xy[node][1], xy[node][0]), [])  # leuven wants (y, x)
                if b not in graph[a][1]:
                    graph[a][1].append(b)
        self.map = InMemMap("bench", graph=graph, use_latlon=False, use_rtree=True, index_edges=True)

    def match(self, x: np.ndarray, y: np.ndarray) -> tuple[list[Hashable], bool]:
        """The path's piece keys, and whether the matcher stopped before the last point."""
        from leuvenmapmatching.matcher.distance import DistanceMatcher

        matcher = DistanceMatcher(self.map, **LEUVEN_SETTINGS)
        _states, last = matcher.match(list(zip(np.asarray(y).tolist(), np.asarray(x).tolist(), strict=True)))
        path = ordered(self.segment_key.get(pair) for pair in pairwise(matcher.path_pred_onlynodes))
        return path, bool(last < len(x) - 1)


class MappyMatcher:
    """mappymatch ``LCSSMatcher`` (defaults) on an ``NxMap`` built as mappymatch's ``parse_osmnx_graph``
    builds one: speeds per highway class (``HWY_SPEEDS``), travel times, the largest strongly connected
    component, ``compress``. The graph stays in the network's UTM CRS and traces are given in it."""

    def __init__(self, graph: Any, back: Mapping[Any, Hashable]) -> None:
        import networkx as nx
        import osmnx as ox
        from mappymatch.maps.nx.nx_map import NxMap
        from mappymatch.maps.nx.readers.osm_readers import compress
        from mappymatch.matchers.lcss.lcss import LCSSMatcher

        logging.getLogger("mappymatch").setLevel(logging.ERROR)
        self.back = back
        self.crs = graph.graph["crs"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g = graph.copy()
            for u, v, k in g.edges(keys=True):
                g.edges[u, v, k]["uvk"] = (u, v, k)
            g = ox.add_edge_speeds(g, hwy_speeds=HWY_SPEEDS)
            g = ox.add_edge_travel_times(g)
            for _u, _v, d in g.edges(data=True):
                d["kilometers"] = d["length"] / 1000
            largest = max(nx.strongly_connected_components(g), key=len)
            kept = nx.MultiDiGraph(g.subgraph(largest))
            self.edges_in_largest_scc = kept.number_of_edges()
            kept = compress(kept, additional_metadata_keys={"uvk"})
            kept.graph.update(distance_weight="kilometers", time_weight="travel_time", geometry_key="geometry")
            self.matcher = LCSSMatcher(NxMap(kept))

    def match(self, x: np.ndarray, y: np.ndarray) -> list[Hashable] | None:
        """The path's piece keys, or None when mappymatch failed on the trace."""
        import geopandas as gpd
        from mappymatch.constructs.trace import Trace

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = gpd.GeoDataFrame(geometry=gpd.points_from_xy(x, y), crs=self.crs)
            try:
                result = self.matcher.match_trace(Trace.from_geo_dataframe(frame, xy=False))
            except Exception:  # a failed trace scores 0, as it would in production
                return None
        return ordered(self.back.get(tuple(road.road_id)) for road in result.path or [])
