"""Geometry, pure: CRS, normalization, road network, matching, dedup. Imports nothing of the project."""

__all__: list[str] = []
