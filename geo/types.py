"""Plain inputs of the geometry layer: what a reader hands to ``build_network``.

Readers (OSM XML/PBF, a city's GeoJSON centerline) live in ``adapters/``; they produce these
values and never touch ``geo/`` internals, and ``geo/`` never opens a file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["WayInput"]


@dataclass(frozen=True, slots=True)
class WayInput:
    """One road as the source describes it: an id, its node ids in order, and OSM-style tags.

    Tags that matter: ``highway`` (road class), ``name``, ``alt_name``, ``old_name``, ``official_name``,
    ``ref``, ``oneway`` (``yes``/``1``/``true``, ``-1``/``reverse``, ``no``), ``junction``
    (``roundabout``/``circular`` imply one-way).
    """

    id: int
    nodes: Sequence[int]
    tags: Mapping[str, str] = field(default_factory=dict)
