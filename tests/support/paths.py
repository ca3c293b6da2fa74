"""Where the tests find the checkout, the shipped fixtures and the real third-party data."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTDATA = ROOT.parent / "shared" / "testdata"
FIXTURES = ROOT / "fixtures"
DEMO = ROOT / "config" / "demo.toml"
#: the shipped OSM extract (West Oakland) the demo matches on
OSM = FIXTURES / "osm" / "west-oakland.osm.bz2"
POLLS = sorted((FIXTURES / "waze").glob("poll-*.json"))
