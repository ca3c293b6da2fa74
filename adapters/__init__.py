"""Adapters: I/O at the edges, one class per kind of source, registered by name.

``ADAPTERS`` maps a short name (the ``kind`` of a ``[[sources]]`` entry) to a dotted path, so a
heavy dependency is imported only when a config uses it. A dotted path in ``kind`` loads a city's
own ``Source`` subclass without forking the project.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import UTC, tzinfo
from typing import TYPE_CHECKING

from pydantic import ValidationError

from exchange.errors import ConfigError
from exchange.model import first_problem

if TYPE_CHECKING:
    from adapters.base import Source
    from exchange.config import HttpConfig, SourceConfig

__all__ = ["ADAPTERS", "adapter_class", "build_source", "validate_source_settings"]

ADAPTERS: dict[str, str] = {
    "waze-feed": "adapters.waze.WazeFeedAdapter",
    "csv": "adapters.csv_.CsvAdapter",
    "geojson": "adapters.geojson.GeoJsonAdapter",
    "arcgis": "adapters.arcgis.ArcGisAdapter",
    "wzdx": "adapters.wzdx.WzdxAdapter",
    "cifs": "adapters.cifs.CifsAdapter",
    "datex2": "adapters.datex2.Datex2Adapter",
}


def adapter_class(kind: str) -> type[Source]:
    from adapters.base import Source

    path = ADAPTERS.get(kind, kind)
    if "." not in path:
        known = ", ".join(sorted(ADAPTERS))
        raise ConfigError(f"unknown source kind {kind!r} (known: {known}, or a dotted path to a Source class)")
    module_name, _, class_name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"source kind {kind!r}: cannot load {path}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Source)):
        raise ConfigError(f"source kind {kind!r}: {path} is not a Source subclass")
    return cls


def validate_source_settings(source: SourceConfig) -> None:
    """Check the adapter's own keys now, so a typo is named before any run."""
    cls = adapter_class(source.kind)
    try:
        cls.settings_model.model_validate(source.settings)
    except ValidationError as exc:
        raise ConfigError(f"source {source.name!r}: {first_problem(exc)}") from exc


def build_source(
    source: SourceConfig,
    *,
    zone: tzinfo = UTC,
    http: HttpConfig | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Source:
    """The adapter of one ``[[sources]]`` entry; ``http`` is the config's ``[http]`` section (proxy, CA
    bundle) and ``should_stop`` the process's stop flag (``exchange.runtime.stop_requested``): a fetch
    gives up within a fraction of a second once it turns true."""
    built = adapter_class(source.kind)(source.name, source.settings, zone=zone)
    # set after construction: a city's own Source subclass keeps its constructor's signature
    built.match_key, built.priority = source.match_key, source.priority
    built.http, built.should_stop = http, should_stop
    return built
