"""Coordinate reference systems and coordinate hygiene.

Distances are computed in a local metric CRS (the UTM zone of the area, chosen automatically);
the edges of the program speak WGS84 lon/lat. Transformers are cached and always ``always_xy``,
so every array here is (x, y) = (lon, lat) or (easting, northing), never lat-first.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from pyproj import CRS, Transformer

__all__ = [
    "MetricFrame",
    "clean_line",
    "looks_swapped",
    "transformer",
    "utm_epsg",
    "valid_lonlat",
]

FloatArray = npt.NDArray[np.float64]


@lru_cache(maxsize=64)
def transformer(source: str, target: str) -> Transformer:
    """A cached ``always_xy`` transformer between two CRS given as strings (``"EPSG:4326"``)."""
    return Transformer.from_crs(CRS.from_user_input(source), CRS.from_user_input(target), always_xy=True)


def utm_epsg(lon: float, lat: float) -> str:
    """The EPSG code of the UTM zone holding a point.

    >>> utm_epsg(-122.28, 37.80)
    'EPSG:32610'
    >>> utm_epsg(106.8, -6.2)
    'EPSG:32748'
    """
    zone = min(60, max(1, math.floor((lon + 180.0) / 6.0) + 1))
    return f"EPSG:{32600 + zone if lat >= 0 else 32700 + zone}"


class MetricFrame:
    """Forward and back between WGS84 lon/lat and one local metric CRS.

    >>> frame = MetricFrame.around(-122.28, 37.80)
    >>> x, y = frame.to_metric(np.array([-122.28]), np.array([37.80]))
    >>> lon, lat = frame.to_lonlat(x, y)
    >>> round(float(lon[0]), 6), round(float(lat[0]), 6)
    (-122.28, 37.8)
    """

    def __init__(self, crs: str) -> None:
        self.crs = crs
        self._forward = transformer("EPSG:4326", crs)
        self._back = transformer(crs, "EPSG:4326")

    @classmethod
    def around(cls, lon: float, lat: float) -> MetricFrame:
        return cls(utm_epsg(lon, lat))

    def to_metric(self, lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
        x, y = self._forward.transform(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

    def to_lonlat(self, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        lon, lat = self._back.transform(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
        return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def valid_lonlat(lon: FloatArray, lat: FloatArray) -> npt.NDArray[np.bool_]:
    """True where a coordinate is finite and within WGS84 ranges.

    >>> valid_lonlat(np.array([-73.9, np.nan, 200.0]), np.array([40.7, 1.0, 1.0])).tolist()
    [True, False, False]
    """
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180.0) & (np.abs(lat) <= 90.0)


def looks_swapped(
    lon: FloatArray, lat: FloatArray, area: tuple[float, float, float, float]
) -> npt.NDArray[np.bool_]:
    """True where a point lies outside ``area`` but would lie inside it with lon and lat exchanged.

    ``area`` is (min_lon, min_lat, max_lon, max_lat).

    >>> looks_swapped(np.array([37.80]), np.array([-122.28]), (-123.0, 37.0, -122.0, 38.0)).tolist()
    [True]
    """
    min_lon, min_lat, max_lon, max_lat = area
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    inside = (lon >= min_lon) & (lon <= max_lon) & (lat >= min_lat) & (lat <= max_lat)
    flipped = (lat >= min_lon) & (lat <= max_lon) & (lon >= min_lat) & (lon <= max_lat)
    return ~inside & flipped


def clean_line(xy: FloatArray, *, spike_deg: float = 170.0, min_step_m: float = 0.01) -> FloatArray:
    """Clean a metric line: drop repeated points and spikes (a vertex where the line turns back).

    Parameters
    ----------
    xy
        (n, 2) metric coordinates in order.
    spike_deg
        A vertex whose turn angle exceeds this (degrees) is a spike and is removed.
    min_step_m
        Consecutive points closer than this are one point.

    Returns
    -------
    The cleaned (m, 2) array; fewer than 2 rows means the line has no length.

    >>> clean_line(np.array([[0, 0], [0, 0], [10, 0], [10, 25], [10.5, 0.2], [30, 0]], dtype=float)).tolist()
    [[0.0, 0.0], [10.0, 0.0], [10.5, 0.2], [30.0, 0.0]]
    """
    points = np.asarray(xy, dtype=np.float64)
    if len(points) < 2:
        return points
    steps = np.hypot(*np.diff(points, axis=0).T)
    keep = np.concatenate(([True], steps >= min_step_m))
    points = points[keep]
    changed = True
    while changed and len(points) >= 3:
        changed = False
        before = points[1:-1] - points[:-2]
        after = points[2:] - points[1:-1]
        cosine = (before * after).sum(axis=1) / (np.hypot(*before.T) * np.hypot(*after.T))
        spikes = np.flatnonzero(cosine < math.cos(math.radians(spike_deg)))
        if len(spikes):
            points = np.delete(points, spikes[0] + 1, axis=0)
            changed = True
    return points
