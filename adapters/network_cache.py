"""Loading a road network: from its source file, or from the on-disk cache of a previous build.

Building a city network takes seconds; loading the cached arrays takes a fraction of that, so the
daemon starts fast. The cache is keyed by a digest of the source file and the reader options, so
an edited extract is rebuilt. Cache files are pickles written by this program: load only caches
you wrote (the default cache directory is the data directory).
"""

from __future__ import annotations

import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.osm import CenterlineMapping, input_digest, read_road_network
from exchange.errors import MalformedPayload, NotFound
from geo.network import RoadNetwork, build_network

__all__ = ["LoadedNetwork", "build_cache", "is_cache_file", "load_network"]

MAGIC = b"traffic-exchange road network v1\n"
CACHE_SUFFIX = ".network"


@dataclass
class LoadedNetwork:
    network: RoadNetwork
    source: Path
    from_cache: bool
    cache_path: Path | None


def is_cache_file(path: Path) -> bool:
    if path.suffix != CACHE_SUFFIX:
        return False
    try:
        with path.open("rb") as handle:
            return handle.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def _read_cache(path: Path) -> RoadNetwork:
    try:
        with path.open("rb") as handle:
            if handle.read(len(MAGIC)) != MAGIC:
                raise MalformedPayload(f"{path} is not a traffic-exchange network cache")
            network = pickle.load(handle)
    except FileNotFoundError:
        raise NotFound(f"{path} does not exist") from None
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError) as exc:
        raise MalformedPayload(f"{path}: unreadable network cache ({type(exc).__name__}); rebuild it") from exc
    if not isinstance(network, RoadNetwork):
        raise MalformedPayload(f"{path} does not hold a road network")
    return network


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
    """Read ``source``, build the network and write it to ``out``."""
    kwargs, _ = _options(mapping, classes)
    data = read_road_network(source, **kwargs)
    try:
        network = build_network(data.nodes, data.ways)
    except ValueError as exc:
        raise MalformedPayload(f"{source}: {exc}") from exc
    _write_cache(network, out)
    return network


def load_network(
    source: Path,
    *,
    cache_dir: Path | None = None,
    mapping: CenterlineMapping | None = None,
    classes: frozenset[str] | None = None,
) -> LoadedNetwork:
    """A network from a cache file, or from a source file through the cache in ``cache_dir``."""
    if is_cache_file(source):
        return LoadedNetwork(_read_cache(source), source, True, source)
    if not source.exists():
        raise NotFound(f"{source} does not exist")
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
    return LoadedNetwork(build_cache(source, cache, mapping=mapping, classes=classes), source, False, cache)
