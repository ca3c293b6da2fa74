"""Putting events on the road network: matching (points and lines) and clustering of reports.

This is the glue between the pure geometry layer (``geo/``) and the domain model: it turns events
into coordinate arrays, calls the batch matchers once per poll, and turns the results back into
``RoadMatch`` values. Bad geometry never raises here: it becomes an unmatched result with a reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from exchange.config import Config, NetworkConfig
from exchange.model import Event, Kind, LineString, Origin, Point, RoadMatch, to_millis
from geo.crs import looks_swapped
from geo.dedup import CATEGORY_FAMILY, Reports, assign_cluster_ids, cluster_reports
from geo.imported import LineToPlace, place_lines
from geo.linematch import match_lines
from geo.match import match_points, road_names_at
from geo.network import RoadNetwork

if TYPE_CHECKING:
    from adapters.osm import CenterlineMapping

__all__ = ["OUTSIDE_THE_NETWORK", "AlertRow", "Placement", "reader_options"]

log = logging.getLogger("exchange.placement")

#: the match reason of an event beyond the network's area
OUTSIDE_THE_NETWORK = "outside the road network's area"
#: how far outside the network's bounding box a point may lie and still be looked up (degrees, ~1 km)
_AREA_MARGIN_DEG = 0.01


@dataclass(frozen=True, slots=True)
class AlertRow:
    """What clustering needs of one stored alert."""

    id: str
    lon: float
    lat: float
    time_ms: int
    category: str
    magvar: int | None
    road_match: dict[str, Any] | None
    cluster_id: str | None


class Placement:
    def __init__(self, network: RoadNetwork, settings: NetworkConfig) -> None:
        self.network = network
        self.settings = settings
        self._bbox = self._area()

    @classmethod
    def from_config(cls, config: Config) -> Placement | None:
        """The configured network (through the on-disk cache in the data directory), or None.

        Only what the config states is passed on: each reader applies its own defaults (the
        drivable classes for OSM and GraphML, the default centerline mapping for GeoJSON), so a
        format is never handed an option it does not take unless the config names one for it.
        """
        if config.network is None:
            return None
        from adapters.network_cache import load_network

        settings = config.network
        mapping, classes = reader_options(settings, Path(settings.path))
        loaded = load_network(
            Path(settings.path), cache_dir=config.resolved_data_dir / "networks", mapping=mapping, classes=classes,
        )
        log.debug("network %s (%s)", settings.path, "from cache" if loaded.from_cache else "built")
        return cls(loaded.network, settings)

    @classmethod
    def for_file(cls, path: Path, settings: NetworkConfig | None) -> Placement:
        """A placement on the network in ``path`` (a cache or a source file, not cached), for ``exchange match``."""
        from adapters.network_cache import load_network

        mapping, classes = reader_options(settings, path)
        loaded = load_network(path, mapping=mapping, classes=classes)
        return cls(loaded.network, settings or NetworkConfig(path=path))

    def _area(self) -> tuple[float, float, float, float]:
        """The network's bounding box widened by the margin: what counts as inside its area."""
        lon, lat = self.network.frame.to_lonlat(self.network.coords[:, 0], self.network.coords[:, 1])
        m = _AREA_MARGIN_DEG
        return float(lon.min()) - m, float(lat.min()) - m, float(lon.max()) + m, float(lat.max()) + m

    def outside(self, lon: np.ndarray[Any, Any], lat: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        min_lon, min_lat, max_lon, max_lat = self._bbox
        return (lon < min_lon) | (lon > max_lon) | (lat < min_lat) | (lat > max_lat)

    # -- matching

    def street_at(self, lon: float, lat: float) -> str | None:
        """The network's name of the road at a position (within ``point_radius_m``), or None: for a
        city source whose format requires a street that an item lacks (an iCone device, issue 16)."""
        return road_names_at(self.network, np.array([lon]), np.array([lat]), radius_m=self.settings.point_radius_m)[0]

    def match(self, events: Sequence[Event]) -> None:
        """Set ``road_match`` on every event (in place), points and lines each in one batch."""
        points = [event for event in events if event.geometry.type == "Point"]
        lines = [event for event in events if isinstance(event.geometry, LineString)]
        self._isolated(points, self._match_points)
        self._isolated([event for event in lines if event.origin is Origin.CITY], self.place_city_lines)
        self._isolated([event for event in lines if event.origin is not Origin.CITY], self._match_crowd_lines)

    def _isolated(self, events: list[Event], place: Callable[[list[Event]], None]) -> None:
        """``place`` the events in one batch; where that raises (a geometry fault some event's shape
        trips), each event alone, so that only the events that trip it go unmatched, with the error as
        their reason, and a poll is never lost to one of its items."""
        if not events:
            return
        try:
            place(events)
            return
        except Exception as error:  # any fault: isolated below
            log.error("matching %d event(s) in one batch failed (%s: %s); matching them one at a time",
                      len(events), type(error).__name__, error)
        for event in events:
            try:
                place([event])
            except Exception as error:
                log.error("matching %s failed: %s: %s", event.id, type(error).__name__, error)
                event.road_match = RoadMatch(reason=f"matching failed ({type(error).__name__}: {error})")

    def _match_points(self, events: list[Event]) -> None:
        lon = np.array([e.geometry.coordinates[0] for e in events], dtype=np.float64)
        lat = np.array([e.geometry.coordinates[1] for e in events], dtype=np.float64)
        heading = np.array([e.magvar if e.magvar is not None else np.nan for e in events], dtype=np.float64)
        road_type = np.array([e.road_type if e.road_type is not None else 0 for e in events], dtype=np.int64)
        result = match_points(
            self.network, lon, lat, heading=heading, streets=[e.street for e in events],
            road_type=road_type, radius_m=self.settings.point_radius_m,
        )
        swapped = looks_swapped(lon, lat, self._bbox)
        outside = self.outside(lon, lat)
        for i, event in enumerate(events):
            edge = int(result.edge[i])
            if edge >= 0:
                event.road_match = RoadMatch(
                    edges=[self.network.edge_key(edge)], distance_m=round(float(result.distance_m[i]), 2),
                    confidence=round(float(result.confidence[i]), 4), offset_m=round(float(result.offset_m[i]), 2),
                )
            else:
                event.road_match = RoadMatch(reason=_why(bool(swapped[i]), bool(outside[i]), result.reason[i]))

    def _match_crowd_lines(self, crowd: list[Event]) -> None:
        lines = [np.asarray(e.geometry.coordinates, dtype=np.float64) for e in crowd]
        results = match_lines(self.network, lines, radius_m=self.settings.line_radius_m)
        for event, line, result in zip(crowd, lines, results, strict=True):
            if result.matched:
                event.road_match = RoadMatch(
                    edges=self.network.edge_keys(result.edges), distance_m=round(result.distance_m, 2),
                    confidence=round(result.confidence, 4), offset_m=round(result.start_offset_m, 2),
                    covered_fraction=round(result.covered_fraction, 4), reason=result.reason,
                )
            else:
                swapped = bool(looks_swapped(line[:, 0], line[:, 1], self._bbox).all())
                outside = bool(self.outside(line[:, 0], line[:, 1]).all())
                event.road_match = RoadMatch(reason=_why(swapped, outside, result.reason))

    def place_city_lines(self, events: Sequence[Event]) -> None:
        """Place the city's line events (in place) as a closure must go out (:mod:`geo.imported`):
        reversed when the network proves it was drawn backwards, two-point chords routed along the
        street, full closures extended to whole segments; ``road_match.note`` says what changed."""
        from feeds.lint import is_full_closure

        lines = [
            LineToPlace(np.asarray(e.geometry.coordinates, dtype=np.float64), e.street,
                        e.direction == "ONE_DIRECTION", is_full_closure(e))
            for e in events
        ]
        placed = place_lines(self.network, lines, radius_m=self.settings.line_radius_m)
        for event, line, result in zip(events, lines, placed, strict=True):
            if not result.edges:
                outside = bool(self.outside(line.points[:, 0], line.points[:, 1]).all())
                swapped = bool(looks_swapped(line.points[:, 0], line.points[:, 1], self._bbox).all())
                event.road_match = RoadMatch(reason=_why(swapped, outside, result.reason))
                continue
            if result.one_way:
                event.direction = "ONE_DIRECTION"
            if result.polyline is not None:
                event.geometry = LineString(coordinates=[(round(float(lon), 6), round(float(lat), 6))
                                                         for lon, lat in result.polyline])
            event.road_match = RoadMatch(
                edges=self.network.edge_keys(result.edges), distance_m=round(result.distance_m, 2),
                confidence=round(result.confidence, 4), offset_m=round(result.start_offset_m, 2),
                covered_fraction=round(result.covered_fraction, 4), reason=result.reason, note=result.note,
            )

    # -- clustering

    def cluster_events(self, events: Sequence[Event]) -> dict[str, str]:
        """Cluster ids for the alerts among ``events`` (matched already), none of them seen before."""
        alerts = [
            AlertRow(e.id, *e.geometry.coordinates, to_millis(e.start_time) if e.start_time else 0, e.category.value,
                     e.magvar, e.road_match.model_dump() if e.road_match else None, None)
            for e in events if e.kind is Kind.ALERT and isinstance(e.geometry, Point)
        ]
        return self.cluster(alerts)

    def cluster(self, alerts: Sequence[AlertRow]) -> dict[str, str]:
        """Cluster ids for the alerts, stable against each alert's previous cluster id."""
        if not alerts:
            return {}
        lon = np.array([a.lon for a in alerts], dtype=np.float64)
        lat = np.array([a.lat for a in alerts], dtype=np.float64)
        x, y = self.network.frame.to_metric(lon, lat)
        index = self.network.edge_index()
        edges = np.full(len(alerts), -1, dtype=np.int64)
        offsets = np.full(len(alerts), np.nan)
        for i, alert in enumerate(alerts):
            match = alert.road_match or {}
            if match.get("edges"):
                edges[i] = index.get(tuple(match["edges"][0]), -1)
                offsets[i] = match.get("offset_m") or 0.0
        reports = Reports(
            x=x, y=y,
            time_s=np.array([a.time_ms / 1000.0 for a in alerts], dtype=np.float64),
            family=[CATEGORY_FAMILY.get(a.category, a.category) for a in alerts],
            edge=edges, offset=offsets,
            heading=np.array([a.magvar if a.magvar is not None else np.nan for a in alerts], dtype=np.float64),
        )
        labels = cluster_reports(
            reports, self.network, radius_m=self.settings.cluster_radius_m,
            window_s=self.settings.cluster_window_min * 60.0,
        )
        previous = {a.id: a.cluster_id for a in alerts if a.cluster_id}
        ids = assign_cluster_ids([a.id for a in alerts], labels, previous)
        return dict(zip((a.id for a in alerts), ids, strict=True))


def reader_options(
    settings: NetworkConfig | None, path: Path
) -> tuple[CenterlineMapping | None, frozenset[str] | None]:
    """What the ``[network]`` config says about reading ``path``: its centerline mapping (for a GeoJSON
    centerline only) and its classes. Only what the config states: each reader has its own defaults."""
    from adapters.osm import CenterlineMapping, is_centerline

    mapping = None
    if settings is not None and settings.centerline and is_centerline(path):
        mapping = CenterlineMapping.model_validate(settings.centerline)
    classes = frozenset(settings.classes) if settings is not None and settings.classes else None
    return mapping, classes


def _why(swapped: bool, outside: bool, reason: str | None) -> str:
    if swapped:
        return "coordinates look swapped (lat/lon): they fall in the network's area only when exchanged"
    if outside:
        return OUTSIDE_THE_NETWORK
    return reason or "no match"
