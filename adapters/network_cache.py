"""Loading a road network: from its source file, or from the on-disk cache of a previous build.

Building a city network takes seconds; loading the cached arrays takes a fraction of that, so the
daemon starts fast. The cache is keyed by a digest of the source file and the reader options, so
an edited extract is rebuilt. Cache files are pickles written by this program: load only caches
you wrote (the default cache directory is the data directory).

A cache is recognised by its first bytes, not by its name: every cache starts with
:data:`SIGNATURE` followed by its format version and a newline (:data:`MAGIC`), so
``exchange network build roads.osm --out anything.bin`` writes a file that ``exchange match``,
``exchange network info`` and ``[network] path`` all load. ``.network`` is only the default name.
A file that does not start with the signature is read as a source file (format by suffix). A cache
of another format version, or one whose pickled network lacks fields of this version's
:class:`~geo.network.RoadNetwork`, is refused with a one-line "rebuild it" message; a cache in the
cache directory is rebuilt instead.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from adapters.osm import CenterlineMapping, input_digest, read_road_network
from exchange.errors import ExchangeError, MalformedPayload, NotFound, UsageError
from geo.network import RoadNetwork, build_network

__all__ = [
    "CACHE_SUFFIX",
    "FORMAT_VERSION",
    "MAGIC",
    "LoadedNetwork",
    "build_cache",
    "default_cache_path",
    "is_cache_file",
    "load_network",
]

#: Every cache, of any format version, starts with these bytes.
SIGNATURE = b"traffic-exchange road network v"
#: Bumped when the cache layout changes; a cache of another version is refused (or rebuilt).
FORMAT_VERSION = 1
#: The first line of a cache this version writes and reads.
MAGIC = SIGNATURE + b"%d\n" % FORMAT_VERSION
#: The default name of a cache (``exchange network build`` without ``--out``, the cache directory).
CACHE_SUFFIX = ".network"
_HEADER_MAX = 64  # a header line longer than this is not ours
_REBUILD = "rebuild it with `exchange network build SOURCE --out FILE`"


@dataclass
class LoadedNetwork:
    network: RoadNetwork
    source: Path
    from_cache: bool
    cache_path: Path | None


#: the endings of road network sources, dropped to name their cache
_SOURCE_SUFFIXES = frozenset({".osm", ".pbf", ".geojson", ".json", ".graphml", ".bz2", ".gz"})


def default_cache_path(source: Path) -> Path:
    """Where ``exchange network build`` writes by default: beside the source, its format endings
    replaced by ``.network`` (``city.v2.osm.bz2`` -> ``city.v2.network``; other dots are kept).

    >>> default_cache_path(Path("maps/planet_10.068_53.osm.pbf")).as_posix()
    'maps/planet_10.068_53.network'
    """
    name = source.name
    while Path(name).suffix.lower() in _SOURCE_SUFFIXES and Path(name).stem:
        name = Path(name).stem
    return source.with_name(name + CACHE_SUFFIX)


def is_cache_file(path: Path) -> bool:
    """Whether ``path`` starts with a network cache's signature (of any format version), whatever its name."""
    try:
        with path.open("rb") as handle:
            return handle.read(len(SIGNATURE)) == SIGNATURE
    except OSError:
        return False


def _read_cache(path: Path) -> RoadNetwork:
    try:
        with path.open("rb") as handle:
            _check_header(path, handle.readline(_HEADER_MAX))
            try:
                network = pickle.load(handle)
            except Exception as exc:  # unpickling can raise nearly anything on a damaged or foreign file
                raise MalformedPayload(f"{path}: unreadable network cache ({type(exc).__name__}); {_REBUILD}") from exc
    except FileNotFoundError:
        raise NotFound(f"{path} does not exist") from None
    except OSError as exc:
        raise MalformedPayload(f"{path}: cannot read the network cache: {exc.strerror or type(exc).__name__}") from exc
    if not isinstance(network, RoadNetwork):
        raise MalformedPayload(f"{path} does not hold a road network; {_REBUILD}")
    missing = [f.name for f in fields(RoadNetwork) if f.name not in vars(network)]
    if missing:
        raise MalformedPayload(f"{path}: network cache written by an older traffic-exchange; {_REBUILD}")
    return network


def _check_header(path: Path, header: bytes) -> None:
    if header == MAGIC:
        return
    if not header.startswith(SIGNATURE):
        raise _not_a_cache(path)
    version = header[len(SIGNATURE):].strip().decode("ascii", "replace")[:16] or "?"
    raise MalformedPayload(
        f"{path}: network cache format v{version}, this traffic-exchange reads v{FORMAT_VERSION}; {_REBUILD}"
    )


def _not_a_cache(path: Path) -> MalformedPayload:
    return MalformedPayload(f"{path} is not a traffic-exchange network cache (no signature at its start); {_REBUILD}")


def _write_cache(network: RoadNetwork, path: Path) -> None:
    """Write atomically: a daemon starting meanwhile sees the old cache or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".network-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(MAGIC)
            pickle.dump(network, out, protocol=pickle.HIGHEST_PROTOCOL)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _options(mapping: CenterlineMapping | None, classes: frozenset[str] | None) -> tuple[dict[str, Any], str]:
    kwargs: dict[str, Any] = {}
    extra = []
    if mapping is not None:
        kwargs["mapping"] = mapping
        extra.append(mapping.model_dump_json())
    if classes is not None:
        kwargs["classes"] = classes
        extra.append(",".join(sorted(classes)))
    return kwargs, "|".join(extra)


def build_cache(
    source: Path,
    out: Path,
    *,
    mapping: CenterlineMapping | None = None,
    classes: frozenset[str] | None = None,
) -> RoadNetwork:
    """Read ``source``, build the network and write it to ``out`` (any name; ``.network`` is customary).

    ``out`` may be a new file or an existing cache, which is replaced atomically. Any other
    existing file (the source itself, a directory, a file that is not a cache) is refused with a
    :class:`~exchange.errors.UsageError`, so a slip of ``--out`` never destroys data.
    """
    if is_cache_file(source):
        raise UsageError(f"{source} is already a built network cache: build from its OSM, GeoJSON or GraphML source")
    if out.is_dir():
        example = out / (source.name.split(".")[0] + CACHE_SUFFIX)
        raise UsageError(f"{out} is a directory: name the cache file, e.g. {example}")
    if out.exists() and not is_cache_file(out):
        same = source.exists() and out.resolve() == source.resolve()
        what = "is the source itself" if same else "exists and is not a network cache"
        raise UsageError(f"{out} {what}: refusing to overwrite it; name another file")
    return _build(source, out, mapping=mapping, classes=classes)


def _build(
    source: Path, out: Path, *, mapping: CenterlineMapping | None, classes: frozenset[str] | None
) -> RoadNetwork:
    kwargs, _ = _options(mapping, classes)
    data = read_road_network(source, **kwargs)
    try:
        network = build_network(data.nodes, data.ways)
    except ValueError as exc:
        raise MalformedPayload(f"{source}: {exc}") from exc
    try:
        _write_cache(network, out)
    except OSError as exc:
        raise ExchangeError(f"cannot write the network cache {out}: {exc.strerror or type(exc).__name__}") from exc
    return network


def load_network(
    source: Path,
    *,
    cache_dir: Path | None = None,
    mapping: CenterlineMapping | None = None,
    classes: frozenset[str] | None = None,
) -> LoadedNetwork:
    """A network from a cache file, or from a source file through the cache in ``cache_dir``.

    A cache is recognised by its signature, whatever its name (``mapping`` and ``classes`` are
    then ignored: they were applied when it was built). A ``.network`` file without the
    signature is refused rather than guessed at.
    """
    if is_cache_file(source):
        return LoadedNetwork(_read_cache(source), source, True, source)
    if not source.exists():
        raise NotFound(f"{source} does not exist")
    if source.suffix == CACHE_SUFFIX and source.is_file():
        raise _not_a_cache(source)
    kwargs, extra = _options(mapping, classes)
    if cache_dir is None:
        data = read_road_network(source, **kwargs)
        try:
            return LoadedNetwork(build_network(data.nodes, data.ways), source, False, None)
        except ValueError as exc:
            raise MalformedPayload(f"{source}: {exc}") from exc
    cache = cache_dir / f"{source.stem.split('.')[0]}-{input_digest(source, extra)[:24]}{CACHE_SUFFIX}"
    if cache.exists():
        try:
            return LoadedNetwork(_read_cache(cache), source, True, cache)
        except MalformedPayload:
            pass  # a damaged cache is rebuilt below
    return LoadedNetwork(_build(source, cache, mapping=mapping, classes=classes), source, False, cache)
