"""Road network readers: OSM XML and PBF, a city's GeoJSON centerline, an osmnx GraphML.

Each reader turns a file into :class:`RoadData` -- node coordinates and :class:`geo.types.WayInput`
values in OSM tag vocabulary -- which ``geo/`` builds a network from without ever opening a file.

Invariants of every :class:`RoadData`:

* ``nodes`` holds exactly the nodes the ways reference, as ``id -> (lon, lat)`` in WGS84;
* every way has at least two nodes, and no node repeats consecutively;
* way ids are unique. When a source cannot provide a unique integer id, a negative synthetic id
  (-1, -2, ...) is assigned in file order, so the same file always yields the same ids. Synthetic
  *node* ids are negative too; the two counters are independent (nodes and ways are separate
  namespaces, as in OSM).

Errors are the project's own (:mod:`exchange.errors`), never a foreign exception:
:class:`~exchange.errors.NotFound` for a missing file, :class:`~exchange.errors.UsageError` for an
unknown suffix or an unreadable path (a directory, no permission),
:class:`~exchange.errors.MalformedPayload` for a file that cannot be read as its format (broken
XML with its line number, a corrupt ``.bz2``/``.gz``, broken JSON, a DOCTYPE/ENTITY declaration),
and :class:`~exchange.errors.ConfigError` when pyosmium is needed but not installed.

Compression is chosen by the last suffix: ``.bz2`` or ``.gz`` wraps any text format
(``.osm.bz2``, ``.geojson.gz``, ``.graphml.gz``); PBF is compressed by itself.
"""

from __future__ import annotations

import ast
import bz2
import gzip
import hashlib
import math
import re
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import numpy.typing as npt
import orjson
from lxml import etree
from pydantic import BaseModel, ConfigDict, ValidationError

from exchange.errors import ConfigError, ExchangeError, MalformedPayload, NotFound, UsageError
from exchange.model import first_problem
from feeds.xmlsafe import declares_a_dtd, syntax_error_text
from geo.network import NodeTable
from geo.types import WayInput

__all__ = [
    "DRIVABLE",
    "CenterlineMapping",
    "RoadData",
    "input_digest",
    "read_geojson_centerline",
    "read_osm_pbf",
    "read_osm_xml",
    "read_osmnx_graphml",
    "read_road_network",
]

_MAJOR = ("motorway", "trunk", "primary", "secondary", "tertiary")

#: OSM ``highway`` classes kept by default: roads a car may drive on. Left out on purpose:
#: footway, path, cycleway, steps, pedestrian, track, bridleway, construction, proposed, platform,
#: corridor, bus_guideway, raceway, escape (and anything else not listed).
DRIVABLE: frozenset[str] = frozenset(
    (*_MAJOR, *(f"{c}_link" for c in _MAJOR), "unclassified", "residential", "living_street", "service", "road")
)

#: Bumped when a reader's output changes for the same input, so cached networks are rebuilt.
_READER_VERSION = "osm-readers-2"  # 2: GraphML edges filtered by class
_CHUNK = 1 << 20
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1  # ids must fit the network's int64 arrays
_ROUND = 7  # decimals of a degree (~1 cm) under which two vertices are the same node
_MAX_LITERAL = 10_000
_LIST_LITERAL = re.compile(r"^\s*\[.*\]\s*$", re.DOTALL)
_INT = re.compile(r"^[+-]?\d{1,18}$")
_WKT_LINESTRING = re.compile(r"^\s*LINESTRING\s*(?:Z|M|ZM)?\s*\((.*)\)\s*$", re.IGNORECASE | re.DOTALL)


@dataclass(slots=True)
class RoadData:
    """What a reader hands to ``geo``: node coordinates (``id -> (lon, lat)``) and the ways.

    The OSM readers give ``nodes`` as a :class:`geo.network.NodeTable` (compact arrays a city's
    worth of nodes fits in), the others as a dict.
    """

    nodes: Mapping[int, tuple[float, float]]
    ways: list[WayInput]


class CenterlineMapping(BaseModel):
    """Which properties of a city's GeoJSON centerline mean what.

    ``id``
        Property holding the segment id (an integer, or a numeric string). ``None`` uses the
        feature's index in the file. A non-numeric id becomes a stable 48-bit integer (a blake2b
        hash of the string); a missing or repeated id, or one beyond int64, gets a negative
        synthetic id. The original value is kept in the ``source:id`` tag.
    ``name``, ``ref``, ``alt_names``
        Properties for the street name, the route number, and other names (``alt_name``, joined
        with ``;``).
    ``road_class``
        Property holding an OSM ``highway`` value (``highway``, as an OSM export names it);
        ``default_class`` where it is absent or empty. The city's own class vocabulary must be mapped
        to OSM values before reading. ``None``: every road is ``default_class``.
    ``oneway``
        Property telling the direction of travel (``oneway``), case-insensitive: ``FT``/``yes``/
        ``true``/``1`` (along the digitised direction) -> ``oneway=yes``; ``TF``/``-1``/``reverse``
        (against it) -> ``oneway=-1``; ``B``/``no``/``both``/``0``/``false``/empty/null/absent ->
        ``oneway=no``. Any other value leaves the tag out (two-way, ``geo``'s default). ``None``:
        no ``oneway`` tag.

    The defaults read an OSM export as it is: a file with ``highway`` and ``oneway`` properties keeps
    its classes and one-way streets without a mapping.
    """

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    name: str = "name"
    road_class: str | None = "highway"
    oneway: str | None = "oneway"
    alt_names: list[str] = []
    ref: str | None = None
    default_class: str = "residential"


# --------------------------------------------------------------------------------------- dispatch


def read_road_network(path: Path, **kwargs: Any) -> RoadData:
    """Read a road network, choosing the reader by suffix.

    ``.osm`` (also ``.osm.bz2``, ``.osm.gz``) -> :func:`read_osm_xml`; ``.pbf`` ->
    :func:`read_osm_pbf`; ``.geojson``/``.json`` (optionally compressed) ->
    :func:`read_geojson_centerline` (``mapping`` is a :class:`CenterlineMapping` or a plain
    mapping of its fields, default ``CenterlineMapping()``); ``.graphml`` -> :func:`read_osmnx_graphml`.
    ``classes`` applies to the OSM formats and GraphML (whose edges carry OSM ``highway`` tags),
    not to a GeoJSON centerline.

    Raises
    ------
    UsageError
        An unknown suffix, or a keyword the chosen reader does not take.
    NotFound, MalformedPayload, ConfigError
        As the readers do.
    """
    kind = _kind_of(path)
    allowed = {"xml": {"classes"}, "pbf": {"classes"}, "geojson": {"mapping"}, "graphml": {"classes"}}[kind]
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise UsageError(f"{path.name}: {', '.join(unknown)} does not apply to a {kind} road network")
    if kind == "xml":
        return read_osm_xml(path, **kwargs)
    if kind == "pbf":
        return read_osm_pbf(path, **kwargs)
    if kind == "graphml":
        return read_osmnx_graphml(path, **kwargs)
    mapping = kwargs.get("mapping")
    if mapping is None:
        mapping = CenterlineMapping()
    elif not isinstance(mapping, CenterlineMapping):
        try:
            mapping = CenterlineMapping.model_validate(mapping)
        except ValidationError as exc:
            raise ConfigError(f"centerline mapping: {first_problem(exc, default_location='mapping')}") from exc
    return read_geojson_centerline(path, mapping=mapping)


def is_centerline(path: Path) -> bool:
    """Whether ``path`` names a GeoJSON centerline (``.geojson``, ``.json``, compressed or not), by its name."""
    try:
        return _kind_of(path) == "geojson"
    except UsageError:
        return False


def _kind_of(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    compressed = bool(suffixes) and suffixes[-1] in _DECOMPRESSORS
    if compressed:
        suffixes.pop()
    base = suffixes[-1] if suffixes else ""
    kinds = _TEXT_KINDS if compressed else {**_TEXT_KINDS, ".pbf": "pbf"}
    kind = kinds.get(base)
    if kind is None:
        raise UsageError(
            f"{path.name}: unknown road network format (expected .osm, .osm.bz2, .osm.gz, .pbf, .geojson, .json"
            " or .graphml)"
        )
    return kind


_TEXT_KINDS = {".osm": "xml", ".geojson": "geojson", ".json": "geojson", ".graphml": "graphml"}


def input_digest(path: Path, extra: str = "") -> str:
    """A blake2b hex digest of the file's bytes and ``extra`` (e.g. the mapping or the classes).

    Meant as the cache key of a network built from the file; it also covers the readers' version,
    so a change to how a file is read invalidates old caches.
    """
    digest = hashlib.blake2b(digest_size=32)
    with _raw_open(path) as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    for part in (_READER_VERSION, extra):
        digest.update(b"\0")
        digest.update(part.encode("utf-8"))
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------- OSM XML


def read_osm_xml(path: Path, *, classes: frozenset[str] = DRIVABLE) -> RoadData:
    """Read the ways of ``classes`` from OSM XML (``.osm``, ``.osm.bz2``, ``.osm.gz``), streaming.

    Elements are cleared as they are read, so memory holds the coordinates of every node in flat
    arrays (24 bytes a node, needed until the ways are known) and the kept ways, never the
    document; tag keys and values are shared between ways. A way is kept when its
    ``highway`` is in ``classes``, it is not ``area=yes`` and not ``access=no``; ``access=private``
    roads are kept. Objects marked deleted (``action="delete"``, ``visible="false"``) are ignored.
    References to nodes absent from the file are dropped, and a way left with fewer than two
    nodes is skipped. The order of nodes and ways in the file does not matter.
    """
    coords = _NodeTable()
    kept: list[tuple[int, array[int], dict[str, str]]] = []
    strings: dict[str, str] = {}
    with _text_stream(path) as stream:
        try:
            for element in _elements(stream, ("node", "way", "relation", "changeset"), path, "osm"):
                if element.get("action") != "delete" and element.get("visible") != "false":
                    if element.tag == "node":
                        _read_node(element, coords, path)
                    elif element.tag == "way":
                        _read_way(element, classes, kept, strings, path)
                _release(element)
        except etree.XMLSyntaxError as exc:
            raise _xml_error(path, exc) from exc
    return _collect(coords.table(), kept)


class _NodeTable:
    """Every node's id and coordinates in flat arrays: a dict would cost ~8 times the memory."""

    def __init__(self) -> None:
        self.ids: array[int] = array("q")
        self.lons: array[float] = array("d")
        self.lats: array[float] = array("d")

    def add(self, node_id: int, lon: float, lat: float) -> None:
        self.ids.append(node_id)
        self.lons.append(lon)
        self.lats.append(lat)

    def table(self) -> NodeTable:
        """Every node read, by id (the last one read wins)."""
        return NodeTable(
            np.frombuffer(self.ids, dtype=np.int64), np.frombuffer(self.lons, dtype=np.float64),
            np.frombuffer(self.lats, dtype=np.float64),
        )  # fmt: skip


def _read_node(element: etree._Element, coords: _NodeTable, path: Path) -> None:
    lat, lon = element.get("lat"), element.get("lon")
    if lat is None or lon is None:
        return
    try:
        node_id = int(element.get("id", ""))
        point = (float(lon), float(lat))
    except ValueError as exc:
        raise MalformedPayload(f"{path.name}: line {element.sourceline}: node with a bad id or coordinate") from exc
    if not _is_lon_lat(point):
        raise MalformedPayload(f"{path.name}: line {element.sourceline}: node {node_id} is not at a WGS84 lon/lat")
    try:
        coords.add(node_id, *point)
    except OverflowError as exc:
        raise MalformedPayload(f"{path.name}: line {element.sourceline}: node id {node_id} is beyond int64") from exc


def _read_way(
    element: etree._Element,
    classes: frozenset[str],
    kept: list[tuple[int, array[int], dict[str, str]]],
    strings: dict[str, str],
    path: Path,
) -> None:
    tags = {_shared(strings, str(t.get("k", ""))): _shared(strings, str(t.get("v", "")))
            for t in element.iterchildren("tag")}  # fmt: skip
    if not _drivable(tags, classes):
        return
    try:
        way_id = int(element.get("id", ""))
        refs = array("q", [int(nd.get("ref", "")) for nd in element.iterchildren("nd")])
    except (ValueError, OverflowError) as exc:
        raise MalformedPayload(f"{path.name}: line {element.sourceline}: way with a bad id or node ref") from exc
    kept.append((way_id, refs, tags))


def _release(element: etree._Element) -> None:
    """Free an element and the siblings already read before it, so memory stays flat."""
    element.clear()
    parent = element.getparent()
    if parent is not None:
        while element.getprevious() is not None:
            del parent[0]


def _drivable(tags: Mapping[str, str], classes: frozenset[str]) -> bool:
    return tags.get("highway") in classes and tags.get("area") != "yes" and tags.get("access") != "no"


def _shared(strings: dict[str, str], text: str) -> str:
    """One string object for equal tag keys and values: a city repeats a few hundred of them."""
    return strings.setdefault(text, text)


def _collect(coords: NodeTable, kept: Sequence[tuple[int, array[int], dict[str, str]]]) -> RoadData:
    every_ref = np.fromiter(
        (ref for _way_id, refs, _tags in kept for ref in refs), dtype=np.int64, count=sum(len(r) for _, r, _ in kept)
    )
    present = coords.rows(every_ref) >= 0
    ways: list[WayInput] = []
    start = 0
    for way_id, refs, tags in kept:
        known = present[start : start + len(refs)]
        start += len(refs)
        candidates = refs if known.all() else (ref for ref, ok in zip(refs, known.tolist(), strict=True) if ok)
        nodes = _dedupe_consecutive(candidates)
        if len(nodes) >= 2:
            ways.append(WayInput(id=way_id, nodes=tuple(nodes), tags=tags))
    return RoadData(nodes=coords.subset(_references(ways)), ways=ways)


def _references(ways: Sequence[WayInput]) -> npt.NDArray[np.int64]:
    return np.fromiter((ref for way in ways for ref in way.nodes), dtype=np.int64,
                       count=sum(len(way.nodes) for way in ways))  # fmt: skip


# ----------------------------------------------------------------------------------------- OSM PBF


def read_osm_pbf(path: Path, *, classes: frozenset[str] = DRIVABLE) -> RoadData:
    """Read the ways of ``classes`` from an OSM PBF file with pyosmium (same rules as :func:`read_osm_xml`).

    pyosmium keeps node locations in its own compact index, so only the kept ways' nodes reach
    Python.
    """
    try:
        import osmium
    except ImportError as exc:
        raise ConfigError("reading an OSM .pbf needs pyosmium: pip install 'osmium>=3.7'") from exc
    with _raw_open(path):
        pass  # NotFound / UsageError with our messages before pyosmium sees the path
    ids, lons, lats = array("q"), array("d"), array("d")  # the kept ways' nodes, repeats included
    ways: list[WayInput] = []
    strings: dict[str, str] = {}
    try:
        processor = (
            osmium.FileProcessor(osmium.io.File(str(path), "pbf"), osmium.osm.NODE | osmium.osm.WAY)
            .with_locations()
            .with_filter(osmium.filter.EntityFilter(osmium.osm.WAY))
            .with_filter(osmium.filter.KeyFilter("highway"))
        )
        for way in processor:
            if not isinstance(way, osmium.osm.Way) or way.deleted or not way.visible:
                continue
            tags = {_shared(strings, str(tag.k)): _shared(strings, str(tag.v)) for tag in way.tags}
            if not _drivable(tags, classes):
                continue
            refs: list[int] = []
            way_lons: list[float] = []
            way_lats: list[float] = []
            for node_ref in way.nodes:
                location = node_ref.location
                if location.valid():
                    refs.append(node_ref.ref)
                    way_lons.append(location.lon)
                    way_lats.append(location.lat)
            present = _dedupe_consecutive(refs)
            if len(present) < 2:
                continue
            ids.extend(refs)
            lons.extend(way_lons)
            lats.extend(way_lats)
            ways.append(WayInput(id=int(way.id), nodes=tuple(present), tags=tags))
    except RuntimeError as exc:  # libosmium reports every read and decode failure this way
        raise MalformedPayload(f"{path.name}: unreadable PBF: {_one_line(exc)}") from exc
    nodes = NodeTable(
        np.frombuffer(ids, dtype=np.int64), np.frombuffer(lons, dtype=np.float64), np.frombuffer(lats, dtype=np.float64)
    )  # the last location of a node wins, as it did in a dict
    return RoadData(nodes=nodes, ways=ways)


# ------------------------------------------------------------------------------ GeoJSON centerline


def read_geojson_centerline(path: Path, *, mapping: CenterlineMapping) -> RoadData:
    """Read a city's street centerline (a GeoJSON FeatureCollection in WGS84 lon/lat).

    Every LineString feature is a way. A MultiLineString with one part is one way; with n > 1
    parts, part k becomes way ``id * 1000 + k`` (k = 0..n-1). Other geometry types and features
    without geometry are skipped. Vertices are keyed by their coordinates rounded to 7 decimals,
    so lines whose ends touch share a node (a junction); node ids are -1, -2, ... in order of first
    appearance, and node coordinates are the rounded ones. Tags come out in OSM vocabulary:
    ``highway``, ``name``, ``alt_name``, ``ref``, ``oneway`` (``yes``/``-1``/``no``), ``source:id``.
    See :class:`CenterlineMapping` for how properties are read.
    """
    with _text_stream(path) as stream:
        data = stream.read()
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise MalformedPayload(f"{path.name}: malformed JSON: {_one_line(exc)}") from exc
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise MalformedPayload(f"{path.name}: not a GeoJSON FeatureCollection")
    features = document.get("features")
    if not isinstance(features, list):
        raise MalformedPayload(f"{path.name}: a FeatureCollection without a features list")

    node_ids: dict[tuple[float, float], int] = {}
    ways: list[WayInput] = []
    used: set[int] = set()
    synthetic = _Counter()
    for index, feature in enumerate(features):
        where = f"{path.name}: feature {index}"
        if not isinstance(feature, dict):
            raise MalformedPayload(f"{where}: not a GeoJSON Feature")
        geometry = feature.get("geometry")
        properties = feature.get("properties") or {}
        if not isinstance(properties, dict):
            raise MalformedPayload(f"{where}: properties is not an object")
        if geometry is None:
            continue
        if not isinstance(geometry, dict):
            raise MalformedPayload(f"{where}: geometry is not an object")
        kind = geometry.get("type")
        parts: object
        if kind == "LineString":
            parts = [geometry.get("coordinates")]
        elif kind == "MultiLineString":
            parts = geometry.get("coordinates")
            if not isinstance(parts, list):
                raise MalformedPayload(f"{where}: MultiLineString coordinates are not a list")
        else:
            continue
        raw_id = properties.get(mapping.id) if mapping.id is not None else index
        base_id = _way_id_of(raw_id)
        tags = _centerline_tags(properties, mapping, raw_id)
        for part_index, part in enumerate(parts):
            refs = _dedupe_consecutive(_vertex_id(point, node_ids) for point in _line_points(part, where))
            if len(refs) < 2:
                continue
            way_id = base_id if base_id is None or len(parts) == 1 else base_id * 1000 + part_index
            if way_id is None or way_id in used or not _INT64_MIN <= way_id <= _INT64_MAX:
                way_id = synthetic.next_free(used)
            used.add(way_id)
            ways.append(WayInput(id=way_id, nodes=tuple(refs), tags=dict(tags)))
    if features and not ways:
        kinds = sorted({str(f.get("geometry", {}).get("type")) for f in features
                        if isinstance(f, dict) and isinstance(f.get("geometry"), dict)})
        raise MalformedPayload(f"{path.name}: no road in it: a road network is LineString features "
                               f"(this file has {', '.join(kinds) or 'no geometries'})")
    nodes = {node_id: point for point, node_id in node_ids.items()}
    return RoadData(nodes=nodes, ways=ways)


def _line_points(part: object, where: str) -> Iterator[tuple[float, float]]:
    if not isinstance(part, list):
        raise MalformedPayload(f"{where}: line coordinates are not a list")
    for position in part:
        if (
            not isinstance(position, list)
            or len(position) < 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in position[:2])
        ):
            raise MalformedPayload(f"{where}: a position is not [lon, lat]")
        point = (float(position[0]), float(position[1]))
        if not _is_lon_lat(point):
            raise MalformedPayload(
                f"{where}: coordinate {list(point)} is not WGS84 lon/lat (reproject the file to EPSG:4326)"
            )
        yield point


def _vertex_id(point: tuple[float, float], node_ids: dict[tuple[float, float], int]) -> int:
    key = (round(point[0], _ROUND), round(point[1], _ROUND))
    node_id = node_ids.get(key)
    if node_id is None:
        node_id = node_ids[key] = -(len(node_ids) + 1)
    return node_id


def _way_id_of(raw: object) -> int | None:
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        return int(raw) if raw.is_integer() else None
    text = str(raw).strip()
    if not text:
        return None
    if _INT.match(text):
        return int(text)
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=6).digest(), "big")


def _centerline_tags(properties: Mapping[str, Any], mapping: CenterlineMapping, raw_id: object) -> dict[str, str]:
    tags: dict[str, str] = {}
    road_class = _texts(properties.get(mapping.road_class)) if mapping.road_class is not None else []
    tags["highway"] = road_class[0] if road_class else mapping.default_class
    names = _texts(properties.get(mapping.name))
    if names:
        tags["name"] = names[0]
    alt = [n for prop in mapping.alt_names for n in _texts(properties.get(prop))] + names[1:]
    alt = [n for n in dict.fromkeys(alt) if n != tags.get("name")]
    if alt:
        tags["alt_name"] = ";".join(alt)
    if mapping.ref is not None and (refs := _texts(properties.get(mapping.ref))):
        tags["ref"] = ";".join(refs)
    if mapping.oneway is not None and (oneway := _centerline_oneway(properties.get(mapping.oneway))):
        tags["oneway"] = oneway
    if mapping.id is not None and raw_id is not None and (source_id := _texts(raw_id)):
        tags["source:id"] = source_id[0]
    return tags


_FORWARD = frozenset({"ft", "yes", "true", "1"})
_BACKWARD = frozenset({"tf", "-1", "reverse"})
_TWO_WAY = frozenset({"b", "no", "both", "0", "false", ""})


def _centerline_oneway(value: object) -> str | None:
    if value is None:
        return "no"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip().lower()
    if text in _FORWARD:
        return "yes"
    if text in _BACKWARD:
        return "-1"
    if text in _TWO_WAY:
        return "no"
    return None


def _texts(value: object) -> list[str]:
    """A property as a list of non-empty strings; osmnx-style ``"['a', 'b']"`` strings are lists."""
    if value is None:
        return []
    if isinstance(value, list):
        return [t for item in value for t in _texts(item)]
    if isinstance(value, bool):
        return ["yes" if value else "no"]
    if isinstance(value, float) and value.is_integer():
        return [str(int(value))]
    text = str(value).strip()
    if len(text) <= _MAX_LITERAL and _LIST_LITERAL.match(text):
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            parsed = None
        if isinstance(parsed, list):
            return _texts(parsed)
    return [text] if text else []


# ----------------------------------------------------------------------------------- osmnx GraphML


def read_osmnx_graphml(path: Path, *, classes: frozenset[str] = DRIVABLE) -> RoadData:
    """Read the edges of ``classes`` from an osmnx GraphML graph (as saved by ``ox.save_graphml``), streaming.

    An edge is kept under the rules of :func:`read_osm_xml` applied to its tags: its ``highway``
    is in ``classes`` (an edge osmnx merged from ways of several classes, ``highway`` a list, is
    kept when one of them is, and tagged with the first such), it is not ``area=yes`` and not
    ``access=no`` (for a list: when every value says so). An edge without any ``highway`` is kept
    untagged: every edge of a road graph is a road, and there is no class to judge it by (osmnx
    always writes ``highway``, so this concerns GraphML from other tools).

    Nodes carry ``x`` (lon) and ``y`` (lat). Every edge u -> v becomes a way from u to v: its
    ``geometry`` (WKT LINESTRING), when present, gives intermediate vertices, which get negative
    synthetic node ids in order of first appearance, shared by an edge and its reverse. The way id
    is the edge's ``osmid`` when that is a single integer not used yet, else a negative synthetic id;
    the ``osmid`` tag keeps the original (lists joined with ``;``). Tags: ``highway`` (first of a
    list), ``name`` (others of a list go to ``alt_name``), ``ref``, ``junction``, ``maxspeed``,
    ``lanes``, and ``oneway`` = ``yes`` for a one-way edge, else ``no``.

    osmnx stores a two-way street as two edges u -> v and v -> u. Such a reverse pair collapses
    into one way with ``oneway=no`` (the tags of the first edge in the file win), and an exact
    duplicate of an edge (same node sequence) is dropped, so ``geo`` never gets a road twice.
    Non-integer GraphML node ids get negative synthetic ids.
    """
    keys: dict[str, str] = {}
    raw_nodes: dict[str, tuple[float, float]] = {}
    raw_edges: list[tuple[str, str, dict[str, str], int | None]] = []
    with _text_stream(path) as stream:
        try:
            for element in _elements(stream, ("{*}key", "{*}node", "{*}edge"), path, "graphml"):
                local = etree.QName(element).localname
                if local == "key":
                    keys[str(element.get("id", ""))] = str(element.get("attr.name", ""))
                else:
                    data = {
                        keys.get(str(d.get("key", "")), str(d.get("key", ""))): d.text or ""
                        for d in element.iterchildren("{*}data")
                    }
                    if local == "node":
                        raw_nodes[str(element.get("id", ""))] = _graphml_point(data, element, path)
                    else:
                        source, target = element.get("source"), element.get("target")
                        if source is None or target is None:
                            raise MalformedPayload(
                                f"{path.name}: line {element.sourceline}: edge without source/target"
                            )
                        raw_edges.append((str(source), str(target), data, element.sourceline))
                _release(element)
        except etree.XMLSyntaxError as exc:
            raise _xml_error(path, exc) from exc
    return _graphml_network(raw_nodes, raw_edges, path, classes)


def _graphml_point(data: Mapping[str, str], element: etree._Element, path: Path) -> tuple[float, float]:
    try:
        point = (float(data["x"]), float(data["y"]))
    except (KeyError, ValueError) as exc:
        raise MalformedPayload(f"{path.name}: line {element.sourceline}: node without numeric x/y") from exc
    if not _is_lon_lat(point):
        raise MalformedPayload(f"{path.name}: line {element.sourceline}: node x/y is not WGS84 lon/lat")
    return point


def _graphml_network(
    raw_nodes: Mapping[str, tuple[float, float]],
    raw_edges: Sequence[tuple[str, str, dict[str, str], int | None]],
    path: Path,
    classes: frozenset[str],
) -> RoadData:
    node_synthetic = _Counter()
    node_ids: dict[str, int] = {}
    for name in raw_nodes:
        node_ids[name] = int(name) if _INT.match(name) else node_synthetic.next()
    vertex_ids: dict[tuple[int, int, float, float], int] = {}
    nodes: dict[int, tuple[float, float]] = {}
    pending: list[tuple[tuple[int, ...], dict[str, str], str]] = []  # node sequence, tags, osmid text
    by_sequence: dict[tuple[int, ...], int] = {}  # node sequence -> index in pending
    for source, target, data, line in raw_edges:
        if source not in raw_nodes or target not in raw_nodes:
            raise MalformedPayload(f"{path.name}: line {line}: edge {source}->{target} names an unknown node")
        road_class = _graphml_class(data, classes)
        if road_class is None:
            continue
        u, v = node_ids[source], node_ids[target]
        u_point, v_point = raw_nodes[source], raw_nodes[target]
        interior: list[tuple[float, float]] = []
        if geometry := data.get("geometry", "").strip():
            try:
                line_points = _parse_wkt_linestring(geometry)
            except ValueError as exc:
                raise MalformedPayload(f"{path.name}: line {line}: edge geometry is not a WKT LINESTRING") from exc
            if _sq_dist(line_points[0], v_point) < _sq_dist(line_points[0], u_point):
                line_points.reverse()  # osmnx draws u -> v; be lenient about the other order
            interior = line_points[1:-1]
        pair = (min(u, v), max(u, v))
        refs = [u]
        for point in interior:
            key = (*pair, round(point[0], _ROUND), round(point[1], _ROUND))
            vertex = vertex_ids.get(key)
            if vertex is None:
                vertex = vertex_ids[key] = node_synthetic.next()
                nodes[vertex] = (key[2], key[3])
            refs.append(vertex)
        refs.append(v)
        sequence = tuple(_dedupe_consecutive(refs))
        if len(sequence) < 2 or sequence in by_sequence:
            continue
        twin = by_sequence.get(sequence[::-1])
        if twin is not None:
            pending[twin][1]["oneway"] = "no"
            continue
        nodes.setdefault(u, u_point)
        nodes.setdefault(v, v_point)
        by_sequence[sequence] = len(pending)
        pending.append((sequence, _graphml_tags(data, road_class), data.get("osmid", "")))

    used: set[int] = set()
    way_synthetic = _Counter()
    ways: list[WayInput] = []
    for sequence, tags, osmid in pending:
        osm_ids = _texts(osmid)
        way_id = int(osm_ids[0]) if len(osm_ids) == 1 and _INT.match(osm_ids[0]) else None
        if way_id is None or way_id in used or not _INT64_MIN <= way_id <= _INT64_MAX:
            way_id = way_synthetic.next_free(used)
        used.add(way_id)
        if osm_ids:
            tags["osmid"] = ";".join(osm_ids)
        ways.append(WayInput(id=way_id, nodes=sequence, tags=tags))
    referenced = {ref for way in ways for ref in way.nodes}
    return RoadData(nodes={k: p for k, p in nodes.items() if k in referenced}, ways=ways)


def _graphml_class(data: Mapping[str, str], classes: frozenset[str]) -> str | None:
    """The edge's ``highway`` class among ``classes`` ("" when it has none), or None when it is not kept."""
    highways = _texts(data.get("highway"))
    road_class = next((c for c in highways if c in classes), None) if highways else ""
    if road_class is None:
        return None
    area, access = _texts(data.get("area")), _texts(data.get("access"))
    if (area and all(a == "yes" for a in area)) or (access and all(a == "no" for a in access)):
        return None
    return road_class


def _graphml_tags(data: Mapping[str, str], road_class: str) -> dict[str, str]:
    tags: dict[str, str] = {"highway": road_class} if road_class else {}
    names = list(dict.fromkeys(_texts(data.get("name"))))
    if names:
        tags["name"] = names[0]
        if len(names) > 1:
            tags["alt_name"] = ";".join(names[1:])
    if refs := _texts(data.get("ref")):
        tags["ref"] = ";".join(refs)
    for key in ("junction", "maxspeed", "lanes"):
        values = _texts(data.get(key))
        if len(values) == 1:
            tags[key] = values[0]
    oneway = data.get("oneway", "").strip().lower() in ("true", "yes", "1")
    tags["oneway"] = "yes" if oneway else "no"
    return tags


def _parse_wkt_linestring(text: str) -> list[tuple[float, float]]:
    match = _WKT_LINESTRING.match(text)
    if match is None:
        raise ValueError("not a LINESTRING")
    points = []
    for position in match.group(1).split(","):
        values = position.split()
        if len(values) < 2:
            raise ValueError("a position without x and y")
        point = (float(values[0]), float(values[1]))
        if not _is_lon_lat(point):
            raise ValueError("not lon/lat")
        points.append(point)
    if len(points) < 2:
        raise ValueError("fewer than two positions")
    return points


# ------------------------------------------------------------------------------------------ shared


class _Counter:
    """Negative synthetic ids: -1, -2, ..."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        self._last -= 1
        return self._last

    def next_free(self, used: set[int]) -> int:
        while (candidate := self.next()) in used:
            pass
        return candidate


def _dedupe_consecutive(refs: Iterable[int]) -> list[int]:
    out: list[int] = []
    for ref in refs:
        if not out or out[-1] != ref:
            out.append(ref)
    return out


def _is_lon_lat(point: tuple[float, float]) -> bool:
    lon, lat = point
    return math.isfinite(lon) and math.isfinite(lat) and -180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0


def _sq_dist(a: tuple[float, float], b: tuple[float, float]) -> float:
    return (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2


def _elements(stream: IO[bytes], tags: tuple[str, ...], path: Path, root_name: str) -> Iterator[Any]:
    """Stream the elements named ``tags``, hardened (no DTD, no entities, no network), the document's
    root and DOCTYPE checked on the first one."""
    context = etree.iterparse(
        stream, events=("end",), tag=tags, resolve_entities=False, no_network=True, load_dtd=False,
        huge_tree=False,
    )
    checked = False
    for _event, element in context:
        if not checked:
            _check_document(element.getroottree(), path, root_name)
            checked = True
        yield element
    _check_document(context.root, path, root_name)  # also when no element matched at all


def _check_document(document: etree._ElementTree | etree._Element | None, path: Path, root_name: str) -> None:
    """Refuse a DOCTYPE (so no entity is ever declared) and a document of another kind."""
    tree = document.getroottree() if isinstance(document, etree._Element) else document
    root = tree.getroot() if tree is not None else None
    if tree is None or root is None:
        raise MalformedPayload(f"{path.name}: no root element")
    if declares_a_dtd(tree):
        raise MalformedPayload(
            f"{path.name}: XML with a DOCTYPE or ENTITY declaration is refused (entities are never expanded)"
        )
    if etree.QName(root).localname != root_name:
        kind = {"osm": "OSM XML", "graphml": "GraphML"}.get(root_name, root_name)
        raise MalformedPayload(
            f"{path.name}: not {kind}: the root element is <{etree.QName(root).localname}>, expected <{root_name}>"
        )


def _xml_error(path: Path, exc: etree.XMLSyntaxError) -> MalformedPayload:
    return MalformedPayload(f"{path.name}: malformed XML {syntax_error_text(exc)}")


def _one_line(value: object) -> str:
    lines = str(value).strip().splitlines()
    return lines[0] if lines else type(value).__name__


@contextmanager
def _raw_open(path: Path) -> Iterator[IO[bytes]]:
    """Open a file for bytes, turning OS errors into the project's own."""
    try:
        stream = path.open("rb")
    except FileNotFoundError as exc:
        raise NotFound(f"{path} does not exist") from exc
    except OSError as exc:  # a directory, no permission, ...
        raise UsageError(f"{path}: cannot read: {exc.strerror or _one_line(exc)}") from exc
    with stream:
        yield stream


_DECOMPRESSORS: dict[str, Callable[[IO[bytes]], IO[bytes]]] = {
    ".bz2": lambda raw: cast("IO[bytes]", bz2.BZ2File(raw, "rb")),
    ".gz": lambda raw: cast("IO[bytes]", gzip.GzipFile(fileobj=raw, mode="rb")),
}


@contextmanager
def _text_stream(path: Path) -> Iterator[IO[bytes]]:
    """The file's bytes, decompressed by suffix; corrupt compressed data is a MalformedPayload.

    An :class:`ExchangeError` raised by the caller inside the block passes through untouched.
    """
    with _raw_open(path) as raw:
        decompress = _DECOMPRESSORS.get(path.suffix.lower())
        try:
            if decompress is None:
                yield raw
            else:
                with decompress(raw) as stream:
                    yield stream
        except ExchangeError:
            raise
        except (OSError, EOFError, zlib.error) as exc:
            kind = path.suffix.lower().lstrip(".") or "file"
            raise MalformedPayload(f"{path.name}: corrupt or truncated {kind} data: {_one_line(exc)}") from exc
