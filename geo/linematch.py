"""Line matching: a jam or a closure line to a connected path of directed edges (HMM / Viterbi).

In the manner of Newson & Krumm (2009): the hidden states of each line point are the directed
edges within reach; emission scores distance (Gaussian) and heading against the line's own
direction, taken as a chord over a few noise widths (neighbouring points of a dense line are closer
than their noise); transitions score ``|route distance - straight distance|`` (exponential), both
between the two states' places on their edges: the raw points' straight line also carries their
noise across the road, so the steps of a dense noisy line look longer than the path (8 m of noise
makes a true 5 m step look 14 m), and a detour round a triangle of short edges fits them better
than the road itself. Route distances come from a bounded Dijkstra over the directed graph, so
one-way streets and the opposite carriageway are respected, and consecutive points far apart (Waze
keeps a vertex every ~74 m, skipping junctions) are joined by as many edges as the route takes.

The emission's noise is ``sigma_m`` (GPS-like lines), or the line's own where the line is clearly
more precise (a Waze line lies 3-4 m off OpenStreetMap): the RMS of its points' distances to their
nearest edges and to their nearest edges along the line both small (``_line_noise``). A precise
line's extreme points get no heading term: their one-sided chord may cut across the line's last
turn (a hook onto a short side street), and their position says enough.

Real lines are noisy and Waze's are sparse, so the path is kept to what a jam is:

* a point may fall back along its edge within its noise (three sigmas) of the furthest point the
  line reached there: a step backwards, costed as such, not a loop around the block;
* the path is simple: no U-turn onto the twin edge, no junction entered twice (a state remembers
  the last junctions of its path), so no spur down a side street and back, no loop;
* an end edge may be noise across the junction before it (a noisy point is matched to whichever
  edge of the junction lies nearest, so its offset there is its whole distance from the junction).
  Unless the line's extreme point lies beyond the radius the noise reaches around that junction
  (about 3.5 noise widths) and within the one around the edge's far junction (then it is that
  junction's copy), the end edge is dropped where the path fits the line's points on it better
  ending at the near junction than at the edge's far junction (a short edge: all those points weigh
  in, with the Gaussian of the line's noise) or somewhere along the edge (a mid-block end, anywhere
  on the edge alike). A point well inside a long edge is no proof of coverage: a source that ends
  its lines at junctions puts one there by its noise's tail, and the next points tell (below).
  The noise is the line's own (the RMS of its points' distances to the path, at least 3 m), pooled
  with the typical noise of the call's lines: they come from one source, and a line of a few points
  cannot tell its noise (a call of a few lines is pooled with 5 m in turn). How often a source ends
  its lines mid-block is its own too (Waze cuts jams where the traffic slows, a line drawn from
  junction to junction never): that share is estimated from the ends of the call's lines
  (expectation-maximisation) and weighs the mid-block end. The line's points next to its extreme
  one weigh in too: a jam line is drawn from its path's shape (Waze sends its map's shape points,
  some dropped), so they are noisy copies of the path's vertices before its end, in order, some
  skipped where vertices were dropped, each kept with the share of their paths' vertices the call's
  lines keep (their median): which vertices a line keeps is its source's way (Waze drops shape
  points by distance, a line drawn vertex by vertex keeps them all), and a line's own share,
  measured on the path whose end edges are in question, counts a spurious end edge's vertex as one
  it dropped (a line with more points than its path has vertices is no such copy and says nothing
  here). Ending at the far junction puts the near junction and the end edge's vertices before the
  rest: the next points line up with the one path or the other (one point alone cannot tell two
  junctions a few metres apart; the line's next points sit on the near junction where the edge
  is short and real), a likelihood ratio over their alignments (``_junction_evidence``). Once an
  end edge is dropped, the next one is judged the same way with the extreme point projected onto
  it (the Viterbi path may carry a noisy end point across a short edge onto the next).
* an end edge kept says that the path goes on from the junction before it, not which way: where the
  extreme point lies within that junction's noise radius, the way on that best explains it (at its
  far end or inside it) takes the end edge's place where it is kept as an end edge would be
  (``_switch_end``): the Viterbi path took the way the point's position and one-sided heading fit,
  and the short way on whose far end is the point's copy may lie beside it.
* an end the Viterbi path stops at a junction (the extreme point matched back onto the edge before
  it, or onto the side of a crossing road: the heading of a one-sided chord cuts across a turn onto
  a short end edge) is judged the same way against the edges on from that junction among the
  extreme point's candidates (``_extend_end``): the one whose far end or inside best explains the
  extreme point is added where it wins, its prior shared among the junction's ways on.

Where no candidate of a point can be reached from the previous point (a gap, a stretch off the
network, a disconnected part), the line is split and matching starts again; each part is
reported. A part that starts again at a junction the previous part passed has not left it (a
knot of short edges, more than a point's best candidates, split the line): the two are one simple
path, the previous part's detour beyond that junction dropped. Parts are joined so again once their
ends are judged (an end edge judged away, a self-loop at the line's start, may have kept them apart).

Candidates for all points of all lines come from one bulk spatial query (``point_candidates``).
"""

from __future__ import annotations

import heapq
import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from geo.match import Candidates, best_first, point_candidates
from geo.network import RoadNetwork, bearing_deg, heading_difference

__all__ = ["LineMatch", "match_lines", "project_on_line"]

FloatArray = npt.NDArray[np.float64]


@dataclass
class LineMatch:
    """The matched path of one line.

    ``edges`` are directed edge numbers in travel order (all parts concatenated); ``parts`` has
    one edge list per connected part; ``covered_fraction`` is the share of the input line's
    length explained by the matched parts; ``reason`` says why nothing (or not all) matched.
    """

    edges: list[int] = field(default_factory=list)
    parts: list[list[int]] = field(default_factory=list)
    covered_fraction: float = 0.0
    confidence: float = 0.0
    distance_m: float = math.nan
    start_offset_m: float = 0.0
    end_offset_m: float = 0.0
    reason: str | None = None

    @property
    def matched(self) -> bool:
        return bool(self.edges)


class _State(NamedTuple):
    """A candidate place of a line point: a named tuple, as there are many (made in bulk from columns)."""

    edge: int
    offset: float
    emission: float
    distance: float
    x: float  # where on the edge (metric)
    y: float


class _Router:
    """Bounded shortest paths over the directed graph, cached per start junction and bound."""

    def __init__(self, network: RoadNetwork) -> None:
        ptr, out = network.adjacency()
        self.ptr = ptr.tolist()
        self.out = out.tolist()
        self.v = network.edge_v.tolist()
        self.length = network.link_len[network.edge_link].tolist()
        self.cache: dict[int, tuple[float, dict[int, float], dict[int, int]]] = {}

    def search(self, start: int, bound: float) -> dict[int, float]:
        """Route lengths from ``start`` to every junction within ``bound`` metres (maybe beyond)."""
        cached = self.cache.get(start)
        if cached is not None and cached[0] >= bound:
            return cached[1]
        # search further than asked: the next points of the line ask again from the same junctions
        bound = max(1.5 * bound, _MIN_SEARCH_M, cached[0] * 2.0 if cached is not None else 0.0)
        dist: dict[int, float] = {start: 0.0}
        via: dict[int, int] = {}
        heap = [(0.0, start)]
        ptr, out, v, length = self.ptr, self.out, self.v, self.length
        while heap:
            d, node = heapq.heappop(heap)
            if d > dist.get(node, math.inf) or d > bound:
                continue
            for k in range(ptr[node], ptr[node + 1]):
                edge = out[k]
                nd = d + length[edge]
                target = v[edge]
                if nd < dist.get(target, math.inf) and nd <= bound:
                    dist[target] = nd
                    via[target] = edge
                    heapq.heappush(heap, (nd, target))
        self.cache[start] = (bound, dist, via)
        return dist

    def path(self, start: int, goal: int, u: list[int]) -> list[int]:
        """The edges of the shortest route ``start`` -> ``goal`` (after ``search`` found it)."""
        via = self.cache[start][2]
        edges: list[int] = []
        node = goal
        while node != start:
            edge = via[node]
            edges.append(edge)
            node = u[edge]
        edges.reverse()
        return edges


#: the least radius of a route search (metres): a few city blocks
_MIN_SEARCH_M = 300.0


def match_lines(
    network: RoadNetwork,
    lines: Sequence[FloatArray],
    *,
    radius_m: float = 35.0,
    sigma_m: float = 8.0,
    beta_m: float = 12.0,
    kappa: float = 2.0,
    max_candidates: int = 6,
) -> list[LineMatch]:
    """Match lines given as (n, 2) arrays of WGS84 (lon, lat) to edge paths.

    Parameters
    ----------
    radius_m
        Candidate edges per point lie within this distance.
    sigma_m
        GPS noise of the line's points (emission).
    beta_m
        Scale of the transition term: how much longer than the straight line a route may be.
    kappa
        Weight of the heading term (line direction vs edge bearing).
    max_candidates
        Best candidates kept per point.

    A call of at least 10 lines is matched with its own noise where that clearly differs from
    ``sigma_m`` (``_call_sigma``), measured on an even sample of its lines (``_PILOT_LINES`` to twice
    as many; a smaller call is its own sample, kept as it is when its noise is ``sigma_m``'s). Noisier
    lines held to ``sigma_m`` pull paths off their roads; quieter ones let a point far off the line's
    road stand on a nearer junction, and the line's end is then judged with the noise that point
    made up (Waze's own lines, about 3 m: Jaccard 0.970 to 0.979 on the Cambridge centerline).
    """
    if len(lines) < _NOISE_MIN_LINES:
        return _match_lines(network, lines, radius_m, sigma_m, beta_m, kappa, max_candidates)
    step = max(1, len(lines) // _PILOT_LINES)
    sample = _match_lines(network, lines[::step], radius_m, sigma_m, beta_m, kappa, max_candidates)
    own = _call_sigma(sample, sigma_m)
    if own is None and step == 1:
        return sample
    return _match_lines(network, lines, radius_m, own or sigma_m, beta_m, kappa, max_candidates)


def _call_sigma(results: Sequence[LineMatch], sigma_m: float) -> float | None:
    """The noise of a call's lines, when it clearly differs from ``sigma_m``: else None.

    A matched line's ``distance_m`` is its points' mean distance from the path: 0.8 sigma for
    Gaussian noise across the road. Its median over the call is within 5 % of the true noise from
    5 to 15 m on the issue 12 networks; at least ``_MIN_NOISE_M`` (Waze's own lines: about 3 m).
    """
    distances = [result.distance_m for result in results if result.matched and math.isfinite(result.distance_m)]
    if len(distances) < _NOISE_MIN_LINES:
        return None
    sigma = max(statistics.median(distances) / 0.8, _MIN_NOISE_M)
    return sigma if sigma > _NOISE_MARGIN * sigma_m or sigma * _NOISE_MARGIN < sigma_m else None


#: fewer matched lines than this: their noise is not estimated
_NOISE_MIN_LINES = 10
#: a call whose noise is estimated at more than this times ``sigma_m``, or less than its share, is matched with it
_NOISE_MARGIN = 1.15
#: about this many lines of a call are matched first to measure its noise
_PILOT_LINES = 32


def _match_lines(network: RoadNetwork, lines: Sequence[FloatArray], radius_m: float, sigma_m: float, beta_m: float,
                 kappa: float, max_candidates: int) -> list[LineMatch]:
    """``match_lines`` with the given noise."""
    counts = [len(line) for line in lines]
    results = [LineMatch() for _ in lines]
    if not lines or sum(counts) == 0:
        for result in results:
            result.reason = "empty line"
        return results
    lonlat = np.concatenate([np.asarray(line, dtype=np.float64).reshape(-1, 2) for line in lines])
    valid = np.isfinite(lonlat).all(axis=1) & (np.abs(lonlat[:, 0]) <= 180) & (np.abs(lonlat[:, 1]) <= 90)
    x, y = network.frame.to_metric(np.where(valid, lonlat[:, 0], 0.0), np.where(valid, lonlat[:, 1], 0.0))
    x[~valid], y[~valid] = np.nan, np.nan
    starts = np.concatenate(([0], np.cumsum(counts)))

    heading = _line_headings(x, y, starts, window_m=3.0 * sigma_m)

    candidates = point_candidates(network, x, y, radius_m)
    delta = heading_difference(heading[candidates.point], candidates.bearing)
    noise = _line_noise(candidates, delta < _ALONG_DEG, starts, sigma_m)
    point_noise = np.repeat(noise, counts)
    emission = -0.5 * (candidates.distance / point_noise[candidates.point]) ** 2
    # the extreme points of a precise line: their one-sided chord may cut across the line's last turn
    # (a hook onto a side street), and their position alone says where they are
    weight = np.ones(len(x))
    has_points = np.asarray(counts) > 0
    weight[starts[:-1][has_points & (noise < sigma_m)]] = 0.0
    weight[(starts[1:] - 1)[has_points & (noise < sigma_m)]] = 0.0
    emission += kappa * weight[candidates.point] * (np.cos(np.radians(delta)) - 1.0)
    # each point's best candidates, best first: at most max_candidates, none _UNLIKELY below its best
    order = best_first(candidates.point, emission)
    point_sorted = candidates.point[order]
    group = np.ones(len(order), dtype=bool)
    group[1:] = point_sorted[1:] != point_sorted[:-1]
    first = np.maximum.accumulate(np.where(group, np.arange(len(order)), 0))
    kept = order[(np.arange(len(order)) - first < max_candidates)
                 & (emission[order] > emission[order[first]] - _UNLIKELY) | group]
    columns = [candidates.edge[kept].tolist(), candidates.offset[kept].tolist(), emission[kept].tolist(),
               candidates.distance[kept].tolist(), candidates.x[kept].tolist(), candidates.y[kept].tolist()]
    # ``kept`` runs point after point: each point's states are one slice
    bounds = np.searchsorted(candidates.point[kept], np.arange(len(x) + 1)).tolist()

    def states_of(s: int, e: int) -> list[list[_State]]:
        """The states of points ``s`` to ``e``, made line by line: made all at once, they would all live
        through the call, and the garbage collector would walk them again and again."""
        made = list(map(tuple.__new__, itertools.repeat(_State),
                        zip(*(column[bounds[s]:bounds[e]] for column in columns), strict=True)))
        return [made[a - bounds[s]:b - bounds[s]] for a, b in itertools.pairwise(bounds[s:e + 1])]

    transitions = _Transitions(network, _Router(network), network.edge_u.tolist(), beta_m, 3.0 * sigma_m)
    # one point at a time from here: Python floats are cheaper than numpy's scalars; ``along`` is the
    # distance along the lines (an invalid point's steps count nothing)
    xs, ys = x.tolist(), y.tolist()
    along = np.concatenate(([0.0], np.cumsum(np.nan_to_num(np.hypot(np.diff(x), np.diff(y)), nan=0.0)))).tolist()
    # per matched line: its parts, and the states of their extreme points (``_extend_end`` looks at them)
    matched: list[tuple[int, list[_Piece], dict[int, list[_State]]]] = []
    for i, result in enumerate(results):
        s, e = int(starts[i]), int(starts[i + 1])
        if e - s < 2:
            result.reason = "a line needs at least 2 points"
            continue
        transitions.jitter = 3.0 * float(noise[i])
        states = states_of(s, e)
        pieces = _viterbi(transitions, xs[s:e], ys[s:e], along[s:e], states, result)
        if pieces:
            matched.append((i, pieces, {t: states[t] for piece in pieces for t in (piece.first, piece.last)}))
    typical = _typical_noise([[state.distance for piece in pieces for state in piece.chain]
                              for _i, pieces, _ends in matched])
    mid_block = _mid_block_odds(transitions, [piece for _i, pieces, _ends in matched for piece in pieces], typical)
    # the vertex of its edge each part's first and last point lies nearest, all parts at once
    extremes = [state for _i, pieces, _ends in matched for piece in pieces
                for state in (piece.chain[0], piece.chain[-1])]
    nearest = _nearest_vertex(network, np.array([state.edge for state in extremes], dtype=np.int64),
                              np.array([state.offset for state in extremes])).tolist()
    pairs = iter(zip(nearest[0::2], nearest[1::2], strict=True))
    shares = [[_vertex_share(transitions, piece, *next(pairs)) for piece in pieces] for _i, pieces, _ends in matched]
    source_share = _source_share([share for line in shares for share in line])
    for (i, pieces, ends), line in zip(matched, shares, strict=True):
        s, e = int(starts[i]), int(starts[i + 1])
        # a line with more points than its path has vertices is no copy of them (``_vertex_share``: 0)
        _finish(transitions, xs[s:e], ys[s:e], ends, pieces, results[i], typical, mid_block,
                [source_share if share > 0.0 else 0.0 for share in line])
    return results


def _nearest_vertex(network: RoadNetwork, edge: npt.NDArray[np.int64],
                    offset: FloatArray) -> npt.NDArray[np.int64]:
    """The vertex of each directed ``edge`` nearest the place ``offset`` metres along it (its index in travel order)."""
    segments = network.segments()
    link = network.edge_link[edge]
    along = np.where(network.edge_forward[edge], offset, network.link_len[link] - offset)
    # the segments lie link after link, each link's in order: one global key orders them all
    seg_len = segments["len"]
    seg_start = np.cumsum(seg_len) - seg_len
    first = np.searchsorted(segments["link"], link, side="left")
    last = np.searchsorted(segments["link"], link, side="right") - 1
    seg = np.clip(np.searchsorted(seg_start, seg_start[first] + along, side="right") - 1, first, last)
    t = np.clip((along - segments["offset"][seg]) / np.maximum(seg_len[seg], 1e-12), 0.0, 1.0)
    index = seg - first + (t > 0.5)
    nearest: npt.NDArray[np.int64] = np.where(network.edge_forward[edge], index, last - first + 1 - index)
    return nearest


def _line_noise(candidates: Candidates, along: npt.NDArray[np.bool_], starts: npt.NDArray[np.int64],
                sigma_m: float) -> FloatArray:
    """The noise each line is matched with: its own where it is clearly precise, else ``sigma_m``.

    A Waze line is drawn on Waze's map, a few metres off OpenStreetMap; a GPS-like line carries
    ``sigma_m`` of noise. Scoring a precise line with a GPS noise lets a point 10 m off its road stay
    on the wrong one (a hook onto a short side street at the line's end is cut off). The estimate is
    the RMS of each point's distance to its nearest edge, pooled with a prior; near junctions and
    parallel roads that nearest edge is often another road, which makes a noisy line look precise,
    so a line counts as precise only when the nearest edges running along the line (``along``: the
    bearing within ``_ALONG_DEG`` of the line's direction) say so too.
    """
    lines = len(starts) - 1
    total = int(starts[-1])
    point_line = np.repeat(np.arange(lines), np.diff(starts))

    def rms(mask: npt.NDArray[np.bool_]) -> FloatArray:
        nearest = np.full(total, np.inf)
        np.minimum.at(nearest, candidates.point[mask], candidates.distance[mask])
        seen = np.isfinite(nearest)
        sums = np.bincount(point_line, weights=np.where(seen, nearest * nearest, 0.0), minlength=lines)
        count = np.bincount(point_line, weights=seen.astype(np.float64), minlength=lines)
        return np.sqrt((sums + _PRIOR_SAMPLES * _PRIOR_NOISE_M**2) / (count + _PRIOR_SAMPLES))

    nearest_any = np.clip(rms(np.ones(len(candidates.point), dtype=bool)), _MIN_NOISE_M, sigma_m)
    precise = (nearest_any < _PRECISE_M) & (rms(along) < _PRECISE_ALONG_M)
    return np.where(precise, nearest_any, sigma_m)


def _chord_headings(xs: FloatArray, ys: FloatArray, window_m: float) -> FloatArray:
    """``_line_headings`` of one line of at least 2 points."""
    n = len(xs)
    along = np.concatenate(([0.0], np.cumsum(np.hypot(np.diff(xs), np.diff(ys)))))
    along = np.nan_to_num(along, nan=0.0)
    behind = np.searchsorted(along, along - window_m, side="right") - 1
    ahead = np.searchsorted(along, along + window_m, side="left")
    behind = np.clip(np.minimum(behind, np.arange(n) - 1), 0, n - 1)
    ahead = np.clip(np.maximum(ahead, np.arange(n) + 1), 0, n - 1)
    return bearing_deg(xs[ahead] - xs[behind], ys[ahead] - ys[behind])


def _line_headings(x: FloatArray, y: FloatArray, starts: npt.NDArray[np.int64], window_m: float) -> FloatArray:
    """The line's own direction at each point: the chord from ``window_m`` behind to ``window_m`` ahead.

    Neighbouring points of a dense line lie closer together than their noise, so their difference
    points anywhere; a chord over a few noise widths points along the road.
    """
    heading = np.full(len(x), np.nan)
    counts = np.diff(starts)
    line = np.repeat(np.arange(len(counts)), counts)
    step = np.zeros(len(x))
    if len(x) > 1:
        step[1:] = np.hypot(np.diff(x), np.diff(y))
    step[starts[:-1][counts > 0]] = 0.0
    broken = np.isnan(step)
    if broken.any():  # a line with an invalid point: its distances along stop there (one line at a time)
        for i in np.unique(line[broken]).tolist():
            s, e = int(starts[i]), int(starts[i + 1])
            heading[s:e] = _chord_headings(x[s:e], y[s:e], window_m)
    whole = (counts >= 2) & ~np.bincount(line[broken], minlength=len(counts)).astype(bool)
    if not whole.any():
        return heading
    # all the other lines at once: their distances along, each line shifted past the one before by
    # more than its length and the window, so that no search leaves its line
    total = np.cumsum(np.where(broken, 0.0, step))
    along = total - np.repeat(total[starts[:-1]], counts)
    room = float(along.max()) + 2.0 * window_m + 1.0
    key = along + line * room
    first = np.repeat(starts[:-1], counts)
    size = np.repeat(counts, counts)
    local = np.arange(len(x)) - first
    behind = np.searchsorted(key, key - window_m, side="right") - 1 - first
    ahead = np.searchsorted(key, key + window_m, side="left") - first
    behind = np.clip(np.minimum(behind, local - 1), 0, size - 1) + first
    ahead = np.clip(np.maximum(ahead, local + 1), 0, size - 1) + first
    use = whole[line]
    heading[use] = bearing_deg(x[ahead[use]] - x[behind[use]], y[ahead[use]] - y[behind[use]])
    return heading


#: a candidate this much less likely than a point's best (log-likelihood) is not worth a route
_UNLIKELY = 8.0

#: an end edge entered less than the noise radius may be noise across its junction (then the points
#: on it decide): the radius 2-D noise exceeds this rarely (3.5 noise widths)
_SLIVER_TAIL = 0.002
#: a line of a few points cannot tell its own noise: its distances are pooled with this many
#: samples of its source's typical noise (``_typical_noise``), and a call's few lines with this many
#: of this noise (metres), between Waze's few metres off OpenStreetMap and GPS's 8 m
_PRIOR_SAMPLES = 2
_PRIOR_NOISE_M = 5.0
#: the least noise assumed of a line (metres): Waze draws its lines on its own map, a few metres
#: off OpenStreetMap, and a line of a few points cannot tell its noise better
_MIN_NOISE_M = 3.0

#: a line is precise (matched with its own noise) when its points lie this close to their nearest edges
#: (RMS, metres) and this close to the nearest edges along the line; a GPS-like line with 8 m of noise
#: gives 5-8 m and 6-8 m, a Waze line 3-4.5 m and 3-4.5 m (a few more at sharp turns)
_PRECISE_M = 4.2
_PRECISE_ALONG_M = 6.0
#: an edge "along" the line: its bearing within this of the line's direction (degrees)
_ALONG_DEG = 45.0
#: the path's vertices the line's point next to its extreme one may copy: within its distance of the
#: extreme point along the path and this many noise widths more (further back, it is no copy)
_VERTEX_REACH_WIDTHS = 6.5
#: the line's points next to its extreme one that weigh its end as copies of the path's vertices
_INWARD_POINTS = 3

#: what a step along one edge adds to the path (shared: read only)
_NO_EDGES: Sequence[int] = ()

#: junctions of its path a state remembers to keep the path simple (a GPS trace may pass a place twice)
_MEMORY = 16


@dataclass(slots=True)
class _Layer:
    """The Viterbi column of one line point: its states, their scores, and how each was reached."""

    point: int
    states: list[_State]
    scores: list[float]
    visited: list[tuple[int, ...]]
    reach: list[float]
    back: list[int] | None = None
    links: list[Sequence[int]] | None = None


class _Transitions:
    """Route distance between two states: along one edge, or edge end -> Dijkstra -> edge start."""

    def __init__(self, network: RoadNetwork, router: _Router, u_list: list[int], beta: float,
                 jitter: float) -> None:
        self.jitter = jitter
        self.network = network
        self.edge_v = network.edge_v.tolist()
        table = network.link_edges()
        self.twin = np.where(network.edge_forward, table[network.edge_link, 1], table[network.edge_link, 0]).tolist()
        self.edge_len = network.link_len[network.edge_link].tolist()
        self.router = router
        self.u_list = u_list
        self.beta = beta
        self.into: tuple[list[int], list[int]] | None = None
        self.vertex_count = np.diff(network.link_coord_ptr)[network.edge_link].tolist()
        self.shapes: dict[int, list[list[float]]] = {}

    def neighbours(self, node: int, *, incoming: bool) -> list[int]:
        """The directed edges leaving ``node`` (or entering it)."""
        if incoming:
            if self.into is None:
                order = np.argsort(np.asarray(self.edge_v), kind="stable")
                ptr = np.searchsorted(np.asarray(self.edge_v)[order], np.arange(len(self.router.ptr)))
                self.into = (ptr.tolist(), order.tolist())
            ptr_list, edge_list = self.into
        else:
            ptr_list, edge_list = self.router.ptr, self.router.out
        return edge_list[ptr_list[node]:ptr_list[node + 1]]

    def shape(self, edge: int) -> list[list[float]]:
        """The edge's vertices in travel order (metric), as Python lists."""
        shape = self.shapes.get(edge)
        if shape is None:
            shape = self.shapes[edge] = self.network.edge_coords(edge).tolist()
        return shape

    def step(self, previous: _Layer, point: int, states: list[_State], straight: float) -> _Layer | None:
        """The next column, or None when no state of ``point`` is reachable from ``previous``.

        A transition's route runs along one edge, or from the end of ``a``'s edge through a bounded
        Dijkstra to the start of ``b``'s; it is scored by ``|route - straight|`` between the states'
        places. This is the hot loop of line matching (a state per candidate, a pair per two): what
        depends on the predecessor alone is taken out of the pair loop, and the route is computed
        in line (a call per pair costs more than its arithmetic).
        """
        scores: list[float] = []
        back: list[int] = []
        links: list[Sequence[int]] = []
        visited: list[tuple[int, ...]] = []
        reach: list[float] = []
        edge_v, u_list, twin, edge_len = self.edge_v, self.u_list, self.twin, self.edge_len
        jitter, beta, hypot = self.jitter, self.beta, math.hypot
        cache, search, path = self.router.cache, self.router.search, self.router.path
        prior_scores, prior_visited, prior_reach = previous.scores, previous.visited, previous.reach
        # a route longer than this is no step between consecutive points of the line
        bound = straight * 2.0 + 4.0 * beta + 50.0
        # best predecessors first: a transition costs >= 0, so the rest are skipped once beaten (the
        # unreachable ones, -inf, last; a stable sort: equal scores keep their order)
        order = sorted(range(len(prior_scores)), key=prior_scores.__getitem__, reverse=True)
        before = [(index, prior_scores[index], a_edge, a_offset, edge_len[a_edge] - a_offset, edge_v[a_edge], ax, ay,
                   twin[a_edge]) for index in order for a_edge, a_offset, _, _, ax, ay in (previous.states[index],)]
        for b_edge, b_offset, b_emission, _, bx, by in states:
            best, best_from, best_link, best_ahead = -math.inf, -1, _NO_EDGES, _NO_EDGES
            goal = u_list[b_edge]
            for index, score_a, a_edge, a_offset, rest, start, ax, ay, back_edge in before:
                prior = score_a + b_emission
                if prior <= best:
                    break
                if b_edge == back_edge:
                    continue  # a U-turn (the opposite direction of a two-way road is the nearest state of many points)
                if a_edge == b_edge and b_offset >= a_offset - jitter:
                    # noise moves consecutive points of a dense line back a little: a step backwards
                    # along the edge, costed as such, rather than a loop around the block
                    moved, along = b_offset - a_offset, True
                else:
                    moved, along = rest + b_offset, False
                    if moved > bound:
                        continue
                    if start != goal:
                        need = bound - rest - b_offset
                        cached = cache.get(start)
                        dist = cached[1] if cached is not None and cached[0] >= need else search(start, need)
                        between = dist.get(goal)
                        if between is None:
                            continue
                        moved = rest + between + b_offset
                        if moved > bound:
                            continue
                score = prior - abs(moved - hypot(bx - ax, by - ay)) / beta
                if score <= best:
                    continue
                if not along:
                    # the edges the route adds to the path, b's edge last
                    link: Sequence[int] = [*path(start, goal, u_list), b_edge] if start != goal else [b_edge]
                    # a jam is a simple path: no U-turn, no loop around a block, no spur and back
                    seen = prior_visited[index]
                    ahead: Sequence[int] = [edge_v[edge] for edge in link]
                    nodes = set(ahead)
                    if link[0] == back_edge or len(nodes) < len(ahead) or not nodes.isdisjoint(seen):
                        # (the last: the route passes the far end of b's edge, then b's edge comes back to it)
                        continue
                elif b_offset < prior_reach[index] - jitter:
                    # the line may wobble back within its noise of the furthest point it reached
                    # on an edge, not walk backwards along it (drawn against a one-way street)
                    continue
                else:
                    link, ahead = _NO_EDGES, _NO_EDGES
                best, best_from, best_link, best_ahead = score, index, link, ahead
            scores.append(best)
            back.append(best_from)
            links.append(best_link)
            if best_from < 0:
                visited.append(())
                reach.append(b_offset)
            elif best_link:
                visited.append((*prior_visited[best_from], *best_ahead)[-_MEMORY:])
                reach.append(b_offset)
            else:
                visited.append(prior_visited[best_from])
                furthest = prior_reach[best_from]
                reach.append(furthest if furthest > b_offset else b_offset)
        if max(back) < 0:  # no state reached
            return None
        return _Layer(point, states, scores, visited, reach, back, links)


def _end_edge_kept(past: list[float], lateral: list[float], length: float, noise: float, evidence: float = 0.0,
                   mid_block: float = math.inf, prior: float = 0.0) -> bool:
    """Whether the points matched to an end edge show that the path runs along it.

    ``past`` is how far each point lies along the edge beyond the junction it shares with the rest
    of the path, ``lateral`` its distance to the edge, the line's extreme point last. An extreme
    point that is the far junction's copy is coverage (``_covered``). Elsewhere, three ends
    compete by likelihood under the line's noise: the path stops at the near junction (each point on
    the edge is then a noisy copy of it, so its whole distance from it counts), at the far junction
    (the extreme point is that junction's copy), or somewhere along the edge (``_mid_block_cost``,
    plus ``mid_block``: the log-odds of a source's line end at a junction against one mid-block).
    With one point this is "the nearer junction" or a clear way along; every further point the line
    has on a short edge adds its evidence, where one point cannot tell two junctions a few metres
    apart. ``evidence`` is the log-odds the line's other points give the far end against the near
    junction (``_junction_evidence``), ``prior`` the far end's prior log-odds against (an edge added
    beyond the path's end: one of the junction's ways on).
    """
    return _end_edge_odds(past, lateral, length, noise, mid_block, prior) + evidence > 0.0


def _end_edge_odds(past: list[float], lateral: list[float], length: float, noise: float, mid_block: float,
                   prior: float) -> float:
    """The log-odds of ``_end_edge_kept``'s path along the end edge against its ending at the near junction,
    the line's next points aside (infinite where the edge is covered)."""
    if _covered(past[-1], length, noise):
        return math.inf
    scale = 2.0 * noise * noise
    at_near_junction = sum(a * a + d * d for a, d in zip(past, lateral, strict=True)) / scale
    along = sum(d * d for d in lateral) / scale
    return at_near_junction - along - _beyond_near_cost(past[-1], length, noise, mid_block) - prior


def _covered(past: float, length: float, noise: float) -> bool:
    """Whether an extreme point ``past`` metres beyond an end edge's near junction is the copy of its far
    junction: beyond the near junction's noise radius and within the far one's.

    Only there is the near junction out of the question whatever the line's other points say; a point
    well inside a long edge is a mid-block end or the near junction's copy by the noise's tail, and
    which is for the source's mid-block odds and the line's next points to tell (``_end_edge_kept``).
    """
    radius = _noise_radius() * noise
    return past >= radius and length - past < radius


def _beyond_near_cost(past: float, length: float, noise: float, mid_block: float) -> float:
    """The along-edge cost (``_end_edge_kept``'s units) of a line whose extreme point lies ``past`` metres
    beyond an edge's near junction ending at the edge's far junction or inside it, whichever fits better."""
    return min((length - past) ** 2 / (2.0 * noise * noise), _mid_block_cost(past, length, noise) + mid_block)


def _mid_block_cost(past: float, length: float, noise: float) -> float:
    """-log of the extreme point's along-edge density where the line ends anywhere on the edge (1/length a
    metre), relative to its density at a junction (in ``_end_edge_kept``'s units; its lateral part aside)."""
    spread = noise * math.sqrt(2.0)
    inside = 0.5 * (math.erf((length - past) / spread) + math.erf(past / spread))
    return math.log(length / (math.sqrt(2.0 * math.pi) * noise)) - math.log(max(inside, 1e-12))


def _mid_block_odds(transitions: _Transitions, pieces: list[_Piece], typical: float) -> float:
    """The log-odds of a line end at a junction against one mid-block, from the ends of a call's lines.

    How often a source cuts its lines mid-block is the source's own (Waze cuts jams where the traffic
    slows; a line drawn from junction to junction never), so it is estimated from the call's line ends
    by expectation-maximisation: each end's extreme point weighs the two (a junction's noisy copy, or a
    place anywhere along its edge), and the share is their mean, pooled with ``_PRIOR_SAMPLES`` ends
    at junctions (a call of a few lines says little).
    """
    odds: list[float] = []  # per end: log(likelihood at a junction / likelihood mid-block)
    for piece in pieces:
        noise = _noise([state.distance for state in piece.chain], typical)
        scale = 2.0 * noise * noise
        for state, at_start in ((piece.chain[0], True), (piece.chain[-1], False)):
            length = transitions.edge_len[state.edge]
            if length <= 0.0:
                continue
            past = min(max(length - state.offset if at_start else state.offset, 0.0), length)
            junction = min(past, length - past) ** 2 / scale
            odds.append(_mid_block_cost(past, length, noise) - junction)
    if not odds:
        return math.inf
    weights = np.clip(np.asarray(odds), -50.0, 50.0)
    share = 0.5
    for _ in range(50):
        posterior = 1.0 / (1.0 + (1.0 - share) / share * np.exp(weights))
        share = min(max(float(posterior.sum()) / (len(odds) + _PRIOR_SAMPLES), 1e-4), 0.5)
    return math.log((1.0 - share) / share)


def _vertex_share(transitions: _Transitions, piece: _Piece, first_vertex: int, last_vertex: int) -> float:
    """The share of its path's vertices a part of a line keeps: its points over the path's vertices from
    the one nearest its first point's place (``first_vertex`` of its edge, in travel order) to the one
    nearest its last's (``last_vertex``): its extreme points are their copies, and the Viterbi path's end
    edges may run on beyond them. 0 for a part with more points than two beyond those vertices (a trace,
    a resampled line: no copy of them) or whose last point lies nearer an earlier vertex than its first's."""
    vertices = 1 + sum(transitions.vertex_count[edge] - 1 for edge in piece.edges)
    first, last = piece.chain[0].edge, piece.chain[-1].edge
    # (a part rejoined at a junction may have dropped the edge its first point lies on: all its vertices count)
    if first == piece.edges[0]:
        vertices -= first_vertex
    if last == piece.edges[-1]:
        vertices -= transitions.vertex_count[last] - 1 - last_vertex
    points = piece.last - piece.first + 1
    if vertices < 1:  # its points step back within one edge (noise along the road): no copy of its vertices
        return 0.0
    return min(1.0, points / vertices) if points <= vertices + 2 else 0.0


def _source_share(shares: list[float]) -> float:
    """The share of their paths' vertices the lines of a call keep: the median of their own (``_vertex_share``).

    Which vertices a line keeps is its source's way (Waze drops its map's shape points by distance, a
    line drawn vertex by vertex keeps them all), so the call's lines tell it. A line's own share is
    measured on its untrimmed path, whose end edges are the question: a line that keeps every vertex
    and whose path runs on along a spurious end edge looks as if it had dropped one (n of n + 1),
    and judged by that share, it would let the end edge stand for the vertex it "dropped".
    """
    return float(np.median(shares)) if shares else 0.0


def _trim_end(transitions: _Transitions, edges: list[int], chain: list[_State], x: list[float], y: list[float],
              extreme: int, noise: float, mid_block: float, kept: float, *, at_start: bool) -> tuple[list[int], bool]:
    """Drop the end edges the line only grazes (``_end_edge_kept``), one after the other.

    ``chain`` is the matched states from the line's extreme point inwards. An end edge is judged by
    its points and the extreme point, projected onto it where it was matched beyond it: the Viterbi
    path may run a noisy end point across a short edge onto the next one, and dropping that one
    leaves the short edge to judge the same way. Returns the edges and whether any was dropped.
    """
    peeled = False
    k = 0
    while len(edges) > 1:
        edge = edges[0] if at_start else edges[-1]
        length = transitions.edge_len[edge]
        on: list[_State] = []
        while k < len(chain) and chain[k].edge == edge:
            on.append(chain[k])
            k += 1
        if not on and not peeled:
            break  # the extreme point lies on an edge already judged (cannot happen: kept for safety)
        past = [length - state.offset if at_start else state.offset for state in reversed(on)]
        lateral = [state.distance for state in reversed(on)]
        if on and on[0] is chain[0] and _covered(past[-1], length, noise):
            break
        shape = transitions.shape(edge)
        if not on or on[0] is not chain[0]:
            offset, distance = project_on_line(shape, x[extreme], y[extreme])
            past.append(length - offset if at_start else offset)
            lateral.append(distance)
        if _covered(past[-1], length, noise):
            break  # no need to look for the junction's points
        rest = edges[1:] if at_start else edges[:-1]
        if _way_kept(transitions, x, y, extreme, noise, kept, rest, edge, past, lateral, mid_block, at_start=at_start):
            break
        edges = edges[1:] if at_start else edges[:-1]
        peeled = True
    return edges, peeled


def _extend_end(transitions: _Transitions, edges: list[int], x: list[float], y: list[float], extreme: int,
                candidates: list[_State], noise: float, mid_block: float, kept: float, *,
                at_start: bool) -> tuple[list[int], bool]:
    """Add the edge beyond the path's end junction that the line's extreme point shows (``_end_edge_kept``).

    The Viterbi path may stop at a junction the line passes: a noisy extreme point a few metres past
    it lies as near the edge before it (a step back within the noise) or a crossing road. Where the
    extreme point lies within the noise radius of that junction, the edge beyond it that best explains
    the point (``_way_on``) is judged as an end edge of the path would be, the prior of going on shared
    among the junction's ways on.
    """
    end = edges[0] if at_start else edges[-1]
    px, py = x[extreme], y[extreme]
    if not _near(transitions.shape(end)[0 if at_start else -1], px, py, noise):
        return edges, False
    found = _way_on(transitions, edges, px, py, candidates, noise, mid_block, at_start=at_start)
    if found is None:
        return edges, False
    best, past, lateral, ways = found
    if not _way_kept(transitions, x, y, extreme, noise, kept, edges, best, [past], [lateral], mid_block,
                     math.log(ways), at_start=at_start):
        return edges, False
    return ([best, *edges] if at_start else [*edges, best]), True


def _switch_end(transitions: _Transitions, edges: list[int], x: list[float], y: list[float], extreme: int,
                candidates: list[_State], noise: float, mid_block: float, kept: float, *,
                at_start: bool) -> tuple[list[int], bool]:
    """Put in place of the end edge the way on from its near junction that explains the line's end better.

    An end edge kept (``_trim_end``) says the path goes on from that junction, not which way: where
    the extreme point lies within the junction's noise radius, the Viterbi path took the way its
    position and one-sided heading fit, and a short way on whose far end is the point's copy may lie
    beside it. The way that best explains the extreme point (``_way_on``, the end edge among the
    ways) replaces the end edge where it is kept as an end edge (no prior: the path goes on).
    """
    end = edges[0] if at_start else edges[-1]
    px, py = x[extreme], y[extreme]
    if len(edges) < 2 or not _near(transitions.shape(end)[-1 if at_start else 0], px, py, noise):
        return edges, False
    rest = edges[1:] if at_start else edges[:-1]
    found = _way_on(transitions, rest, px, py, candidates, noise, mid_block, at_start=at_start, also=end)
    if found is None or found[0] == end:
        return edges, False
    best, past, lateral, _ways = found
    if not _way_kept(transitions, x, y, extreme, noise, kept, rest, best, [past], [lateral], mid_block,
                     at_start=at_start):
        return edges, False
    return ([best, *rest] if at_start else [*rest, best]), True


def _near(junction: list[float], px: float, py: float, noise: float) -> bool:
    """Whether the point (px, py) lies within the junction's noise radius."""
    return math.hypot(px - junction[0], py - junction[1]) < _noise_radius() * noise


def _way_on(transitions: _Transitions, edges: list[int], px: float, py: float, candidates: list[_State],
            noise: float, mid_block: float, *, at_start: bool,
            also: int | None = None) -> tuple[int, float, float, int] | None:
    """The edge on from the path's end junction that best explains the extreme point (px, py) near it
    (``_near``), at its far end or inside it: among the point's candidates (and ``also``) and the
    junction's ways on (no U-turn, no junction of the path twice). Returns the edge, how far along it
    beyond the junction the point lies, its distance to it, and the number of ways on; None where no
    way on is a candidate."""
    edge = edges[0] if at_start else edges[-1]
    node = transitions.u_list[edge] if at_start else transitions.edge_v[edge]
    nodes = {transitions.u_list[e] for e in edges} | {transitions.edge_v[edges[-1]]}
    ways = [f for f in transitions.neighbours(node, incoming=at_start) if f != transitions.twin[edge]
            and (transitions.u_list[f] if at_start else transitions.edge_v[f]) not in nodes]
    near = {state.edge for state in candidates}
    scale = 2.0 * noise * noise
    found, best_cost = None, math.inf
    for f in ways:
        if f not in near and f != also:
            continue
        length = transitions.edge_len[f]
        offset, distance = project_on_line(transitions.shape(f), px, py)
        past = length - offset if at_start else offset
        cost = distance * distance / scale + _beyond_near_cost(past, length, noise, mid_block)
        if cost < best_cost:
            found, best_cost = (f, past, distance, len(ways)), cost
    return found


def _way_kept(transitions: _Transitions, x: list[float], y: list[float], extreme: int, noise: float, kept: float,
              path: list[int], way: int, past: list[float], lateral: list[float], mid_block: float,
              prior: float = 0.0, *, at_start: bool) -> bool:
    """``_end_edge_kept`` for ``way`` as the end edge of ``path``, the line's next points heard
    (``_junction_evidence``) where they can change the answer: they lower the far end's odds by no
    more than the way's vertices before its far end all dropped would (its alignments include
    those of the path ending at the near junction, each such vertex skipped)."""
    shape = transitions.shape(way)
    odds = _end_edge_odds(past, lateral, transitions.edge_len[way], noise, mid_block, prior)
    least = (len(shape) - 1) * math.log(1.0 - kept) if kept < 1.0 else -math.inf
    if odds == math.inf or odds + least > 0.0:
        return True
    evidence = _junction_evidence(transitions, x, y, extreme, noise, kept, path,
                                  shape[1:] if at_start else shape[-2::-1], at_start=at_start)
    return odds + evidence > 0.0


def project_on_line(coords: FloatArray | list[list[float]], px: float, py: float) -> tuple[float, float]:
    """The offset along a polyline of its point nearest (px, py), and the distance to it (a few vertices:
    plain Python beats numpy's per-call cost)."""
    points = coords.tolist() if isinstance(coords, np.ndarray) else coords
    best, best_offset, before = math.inf, 0.0, 0.0
    for (ax, ay), (bx, by) in itertools.pairwise(points):
        dx, dy = bx - ax, by - ay
        squared = dx * dx + dy * dy
        t = min(1.0, max(0.0, ((px - ax) * dx + (py - ay) * dy) / squared)) if squared > 0 else 0.0
        gap = math.hypot(ax + dx * t - px, ay + dy * t - py)
        step = math.sqrt(squared)
        if gap < best:
            best, best_offset = gap, before + t * step
        before += step
    return best_offset, best


def _path_vertices(transitions: _Transitions, edges: list[int], reach: float, *,
                   at_start: bool) -> list[list[float]]:
    """The shape vertices of a path within ``reach`` metres along it from one of its ends (and those of
    the edge that reaches there), from that end on, the end junction itself left out."""
    vertices: list[list[float]] = []
    along = 0.0
    for edge in edges if at_start else reversed(edges):
        shape = transitions.shape(edge)
        vertices.extend(shape[1:] if at_start else shape[-2::-1])
        along += transitions.edge_len[edge]
        if along > reach:
            break
    return vertices


def _junction_evidence(transitions: _Transitions, x: list[float], y: list[float], extreme: int, noise: float,
                       kept: float, path: list[int], far: list[list[float]], *, at_start: bool) -> float:
    """The log-odds the line's points next to its extreme one give a path ending at the far end of an
    end edge against one ending at its near junction.

    A jam line is drawn from its path's shape (Waze sends the shape points of its map, some dropped):
    its points are noisy copies of the path's vertices in order, a share ``kept`` of them. The extreme
    point is the copy of the path's end; the next ``_INWARD_POINTS`` copy the vertices before it, in
    order, some skipped (``_alignment``). Ending at the far end puts the end edge's vertices and its
    near junction (``far``, from the end inwards) before those of the rest of the path (``path``):
    points that line up with the one sequence and not the other tell which end the line has.
    """
    step = 1 if at_start else -1
    points = [(x[i], y[i]) for i in range(extreme + step, extreme + step * (_INWARD_POINTS + 1), step)
              if 0 <= i < len(x) and math.isfinite(x[i])]
    if kept <= 0.0 or not points:
        return 0.0
    ex, ey = x[extreme], y[extreme]
    # the vertices those points may copy lie within their distance of the extreme point, and their noise
    reach = max(math.hypot(px - ex, py - ey) for px, py in points) + _VERTEX_REACH_WIDTHS * noise
    near = _path_vertices(transitions, path, reach if math.isfinite(reach) else 0.0, at_start=at_start)
    through, ending = _alignment(points, far, near, noise, kept)
    return math.log(through / ending)


def _alignment(points: list[tuple[float, float]], far: list[list[float]], near: list[list[float]], noise: float,
               kept: float) -> tuple[float, float]:
    """The likelihoods of points as noisy copies of a path's vertices in order, the path's ``far``
    vertices then its ``near`` ones, and its ``near`` ones alone (each vertex kept with probability
    ``kept``; a point may copy none, at the noise's tail density): forward passes over the vertices,
    from the end inwards (the path's end is the extreme point's, before the first; a few points and
    vertices: plain Python beats numpy's per-call cost)."""
    scale = 0.5 / (noise * noise)
    dropped, tail, exp = 1.0 - kept, _SLIVER_TAIL, math.exp
    vertices = far + near
    count, skip = len(vertices), len(far)
    copies = []
    for px, py in points:
        row = []
        for vx, vy in vertices:
            exponent = ((px - vx) ** 2 + (py - vy) ** 2) * scale
            row.append(kept * exp(-exponent) if exponent < 50.0 else 0.0)
        copies.append(row)
    # the path through the far end (all vertices), then the path ending at the near junction (``near`` only)
    through = ending = 0.0
    for first in (0, skip):
        start = 1.0  # no point has copied a vertex yet
        forward = [0.0] * count
        for row in copies:
            carry = start  # what may go on to the next vertex: kept there with probability ``kept``
            for j in range(first, count):
                before = forward[j]
                forward[j] = before * tail + carry * row[j]
                carry = carry * dropped + before
            start *= tail
        if first == 0:
            through = start + sum(forward)
        else:
            ending = start + sum(forward)
    return through, ending


def _noise_radius() -> float:
    """How many noise widths from a junction its noisy copy may lie.

    The noise scatters a point around the junction in any direction, and the point is matched to
    whichever edge there lies nearest: its offset on that edge is its whole distance from the
    junction, not one axis of it. So the bound is the radius that 2-D Gaussian noise exceeds with
    probability ``_SLIVER_TAIL`` (Rayleigh), not a one-axis quantile.
    """
    return math.sqrt(-2.0 * math.log(_SLIVER_TAIL))


def _typical_noise(lines: list[list[float]]) -> float:
    """The noise of the source of a call's lines: the median of their own (``_noise``), pooled with the prior.

    The lines of one call come from one source (a feed, a closure), and one source has one noise; a
    short line's own estimate is a handful of samples (the RMS of seven falls below 0.56 of the
    truth one time in twenty: chi-square, 7 degrees of freedom), so the source's typical noise is
    each line's prior. A call with a few lines tells little of its source: their median is pooled
    with ``_PRIOR_NOISE_M`` as a line is.
    """
    if not lines:
        return _PRIOR_NOISE_M
    median = float(np.median([_noise(distances, _PRIOR_NOISE_M) for distances in lines]))
    n = len(lines)
    return math.sqrt((n * median**2 + _PRIOR_SAMPLES * _PRIOR_NOISE_M**2) / (n + _PRIOR_SAMPLES))


def _noise(distances: list[float], prior: float) -> float:
    """The line's own noise: the RMS of its points' distances to the path, pooled with ``prior``.

    Each distance is one lateral noise sample. A line of four points that happen to lie close to
    the road has not shown that its end point is as close: the prior keeps a short line's estimate
    from collapsing (the median of a few distances, used before, often came out at half the noise).
    """
    total = sum(d * d for d in distances) + _PRIOR_SAMPLES * prior**2
    return max(_MIN_NOISE_M, math.sqrt(total / (len(distances) + _PRIOR_SAMPLES)))


@dataclass(slots=True)
class _Piece:
    """A connected part of a line's path: its edges, its matched states in travel order, its end points."""

    edges: list[int]
    chain: list[_State]
    first: int
    last: int


def _rejoin(transitions: _Transitions, before: _Piece, after: _Piece) -> bool:
    """Append ``after`` to ``before`` where it starts again on the path ``before`` already took (``_joined``).

    A part ends where no candidate of the next points can be reached; in a knot of short edges (a
    few edges within the noise of a junction, more than a point's best candidates can hold) that
    happens without the line leaving the road: the next part starts at a junction the previous one
    passed. A jam is a simple path, so the two are one path.
    """
    turned = _turned_back(transitions, before, after)
    if turned is not None:
        before.edges, before.chain = turned
        before.last = after.last
        return True
    edges = _joined(transitions, before.edges, after.edges)
    if edges is None:
        return False
    before.edges = edges
    before.chain = before.chain + after.chain
    before.last = after.last
    return True


def _turned_back(transitions: _Transitions, before: _Piece, after: _Piece) -> tuple[list[int], list[_State]] | None:
    """The two parts as one path where one of them is a point or two running back over the other's end
    (the other direction of the same road), else None.

    Two points of a line a few metres apart, out of order by their noise, step backwards by more than
    the noise allows: the first is matched running the other way on the road's twin edge, and the next
    point cannot follow it without a U-turn. That part is the road the line runs, the other way: its
    points are put on the twin edges (where the line's other points lie), and the path is the other
    part's. Two points at most: a longer run the other way is no such noise."""
    twin = transitions.twin
    for short, long_part in ((before, after), (after, before)):
        count = len(short.edges)
        if len(short.chain) > _TURNED_POINTS or count > len(long_part.edges):
            continue
        overlap = long_part.edges[:count] if short is before else long_part.edges[-count:]
        if [twin[edge] for edge in reversed(short.edges)] != overlap:
            continue
        length = transitions.edge_len
        flipped = [state._replace(edge=twin[state.edge], offset=length[state.edge] - state.offset)
                   for state in short.chain]
        return long_part.edges, flipped + after.chain if short is before else before.chain + flipped
    return None


#: the most points a part running back over the next one's road may have (``_turned_back``)
_TURNED_POINTS = 2


def _joined(transitions: _Transitions, before: list[int], after: list[int]) -> list[int] | None:
    """``before`` up to the junction where ``after`` starts again on its path, then ``after`` from it (the
    latest edge of ``after`` leaving a junction of ``before``: what either ran through beyond it is the
    noise that split the line); None for parts that share no junction (a gap) or whose join would not
    be a simple path."""
    # the junctions ``before`` passes, each at the index of the edge that leaves it
    where = {transitions.u_list[edge]: k for k, edge in enumerate(before)}
    where[transitions.edge_v[before[-1]]] = len(before)
    for j in range(len(after) - 1, -1, -1):
        i = where.get(transitions.u_list[after[j]])
        if i is None:
            continue
        edges = before[:i] + after[j:]
        nodes = [transitions.u_list[edge] for edge in edges] + [transitions.edge_v[edges[-1]]]
        return edges if len(set(nodes)) == len(nodes) else None
    return None


def _viterbi(transitions: _Transitions, xs: list[float], ys: list[float], along: list[float],
             states: list[list[_State]], result: LineMatch) -> list[_Piece]:
    """The connected parts of the line's most likely path (untrimmed); sets ``covered_fraction``.

    ``along`` is the distance along the line at each point."""
    usable = [t for t, column in enumerate(states) if column]
    if not usable:
        result.reason = "no road near the line"
        return []
    total = along[-1] - along[0]

    def start(t: int) -> _Layer:
        ahead: list[tuple[int, ...]] = [(transitions.edge_v[s.edge],) for s in states[t]]
        return _Layer(t, states[t], [s.emission for s in states[t]], ahead, [s.offset for s in states[t]])

    parts: list[list[_Layer]] = [[start(usable[0])]]
    position = 1
    while position < len(usable):
        t = usable[position]
        layers = parts[-1]
        previous = layers[-1]
        straight = math.hypot(xs[t] - xs[previous.point], ys[t] - ys[previous.point])
        layer = transitions.step(previous, t, states[t], straight)
        if layer is None and position + 1 < len(usable):
            # one outlier point must not split the line: try to step over it
            skip = usable[position + 1]
            straight = math.hypot(xs[skip] - xs[previous.point], ys[skip] - ys[previous.point])
            layer = transitions.step(previous, skip, states[skip], straight)
            if layer is not None:
                position += 1
        if layer is None and position + 1 == len(usable) and len(layers) >= 2:
            # the line's last point, with nothing after it to step over to: the outlier may be the point
            # before, whose best candidates all lie on a side street it strayed 25 m towards, so that no
            # state of the last point follows them (a part of the last point alone is dropped below)
            before = layers[-2]
            straight = math.hypot(xs[t] - xs[before.point], ys[t] - ys[before.point])
            layer = transitions.step(before, t, states[t], straight)
            if layer is not None:
                layers.pop()
        if layer is None:
            parts.append([start(t)])
        else:
            layers.append(layer)
        position += 1

    kept = [layers for layers in parts if len(layers) >= 2] or parts[:1]
    pieces: list[_Piece] = []
    covered = 0.0
    for layers in kept:
        scores = layers[-1].scores
        choice = max(range(len(scores)), key=scores.__getitem__)  # the first best, as numpy's argmax
        path: list[int] = []
        chain: list[_State] = []
        for layer in reversed(layers):
            chain.append(layer.states[choice])
            if layer.back is not None and layer.links is not None:
                path[:0] = layer.links[choice]
                choice = layer.back[choice]
        path.insert(0, chain[-1].edge)
        edges = [edge for k, edge in enumerate(path) if k == 0 or edge != path[k - 1]]
        piece = _Piece(edges, chain[::-1], layers[0].point, layers[-1].point)
        covered += along[layers[-1].point] - along[layers[0].point]
        if not (pieces and _rejoin(transitions, pieces[-1], piece)):
            pieces.append(piece)
    result.covered_fraction = min(1.0, covered / total) if total > 0 else 0.0
    return pieces


def _settle_end(transitions: _Transitions, edges: list[int], chain: list[_State], x: list[float], y: list[float],
                extreme: int, candidates: list[_State], noise: float, mid_block: float, kept: float, *,
                at_start: bool) -> tuple[list[int], bool]:
    """Judge one end of a part's path: drop the end edges the line only grazes (``_trim_end``); else put
    in the end edge's place the way on that explains the end better (``_switch_end``), or add the edge
    the path stopped short of (``_extend_end``). Returns the edges and whether the end changed (it
    then lies at a junction)."""
    edges, changed = _trim_end(transitions, edges, chain, x, y, extreme, noise, mid_block, kept, at_start=at_start)
    if not changed:
        edges, changed = _switch_end(transitions, edges, x, y, extreme, candidates, noise, mid_block, kept,
                                     at_start=at_start)
    if not changed:
        edges, changed = _extend_end(transitions, edges, x, y, extreme, candidates, noise, mid_block, kept,
                                     at_start=at_start)
    return edges, changed


def _finish(transitions: _Transitions, x: list[float], y: list[float], states: dict[int, list[_State]],
            pieces: list[_Piece], result: LineMatch,
            typical: float, mid_block: float, shares: list[float]) -> None:
    """Judge the parts' ends (``_settle_end``) and fill in ``result``.

    ``states`` holds the candidates of the parts' extreme points (``_switch_end`` and ``_extend_end``
    look at them),
    ``shares`` the share of its path's vertices each part keeps (``_source_share``; 0: no copy of them)."""
    distances: list[float] = []
    for number, piece in enumerate(pieces):
        edges, chain = piece.edges, piece.chain
        start_offset, end_offset = chain[0].offset, chain[-1].offset
        # Jams and closures cover whole segments; a sliver at an end is GPS noise across a junction.
        # The points on an end edge, the line's extreme point last, go to ``_end_edge_kept``.
        noise = _noise([state.distance for state in chain], typical)
        kept = shares[number]
        edges, changed = _settle_end(transitions, edges, chain, x, y, piece.first, states[piece.first], noise,
                                     mid_block, kept, at_start=True)
        if changed:
            start_offset = 0.0
        edges, changed = _settle_end(transitions, edges, chain[::-1], x, y, piece.last, states[piece.last], noise,
                                     mid_block, kept, at_start=False)
        if changed:
            end_offset = transitions.edge_len[edges[-1]]
        result.parts.append(edges)
        distances.extend(state.distance for state in chain)
        if number == 0:
            result.start_offset_m = start_offset
        result.end_offset_m = end_offset
    # an end judged away may have been what kept two parts apart (a self-loop at the line's start makes
    # any join of the untrimmed parts loop): parts that now start again on the path before are one
    joined: list[list[int]] = []
    for part in result.parts:
        merged = _joined(transitions, joined[-1], part) if joined else None
        if merged is None:
            joined.append(part)
        else:
            joined[-1] = merged
    result.parts = joined
    result.edges = [edge for part in result.parts for edge in part]
    result.distance_m = sum(distances) / len(distances)
    result.confidence = float(math.exp(-0.5 * (result.distance_m / 8.0) ** 2)) * result.covered_fraction
    if len(result.parts) > 1:
        result.reason = f"split into {len(result.parts)} parts (gap, detour or disconnected network)"
