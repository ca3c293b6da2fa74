"""Property-based tests over every reader of outside data (issue 17, item 6).

For any payload shaped like its format (real payloads with fields replaced by arbitrary values,
and arbitrary documents), a reader either refuses the whole document with a clean
:class:`~exchange.errors.FeedError` (a one-line reason) or reads it; each item then converts or is
rejected with :class:`~exchange.errors.ItemRejected`. Anything else (a KeyError, a TypeError, an
OverflowError...) is a bug: the sync would catch it as "cannot be converted", but no reader may
rely on that net. Fixed example counts, no deadline, derandomized: the run is the same every time.
"""

from __future__ import annotations

import copy
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from adapters import adapter_class
from adapters.base import Source
from exchange.errors import ConfigError, FeedError, ItemRejected
from tests.support.paths import FIXTURES, TESTDATA

#: bench/fuzz_readers.py runs these same properties long and at random (EXCHANGE_FUZZ_EXAMPLES)
_FUZZ_EXAMPLES = int(os.environ.get("EXCHANGE_FUZZ_EXAMPLES", "0"))
SETTINGS = settings(max_examples=_FUZZ_EXAMPLES or 120, deadline=None, derandomize=not _FUZZ_EXAMPLES,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

JSON_SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)


def _source(kind: str, **settings: Any) -> Source:
    return adapter_class(kind)("property", {"url": "unused", **settings})


def _read_all(source: Source, body: bytes) -> None:
    """The contract: the document is read or refused cleanly; each item converts or is rejected cleanly."""
    try:
        snapshot = source.read(body)
    except FeedError as exc:
        assert exc.message and "\n" not in exc.message
        return
    for item in snapshot.items:
        try:
            source.convert(item, values_checked=snapshot.values_checked)
        except ItemRejected as exc:
            assert exc.message and "\n" not in exc.message


def _mutated_json(document: Any, paths: list[list[Any]]) -> Callable[[st.DataObject], bytes]:
    """A strategy body: a real JSON document with some of its values replaced by arbitrary JSON."""

    def draw(data: st.DataObject) -> bytes:
        mutated = copy.deepcopy(document)
        candidates = paths
        for _ in range(data.draw(st.integers(1, 4))):
            if not candidates:
                break
            path = data.draw(st.sampled_from(candidates))
            parent = mutated
            for key in path[:-1]:
                parent = parent[key]
            if data.draw(st.booleans()) and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = data.draw(JSON_VALUES)
            candidates = _paths(mutated)
        return json.dumps(mutated, allow_nan=True).encode()

    return draw


def _paths(value: Any, prefix: list[Any] | None = None, limit: int = 4000) -> list[list[Any]]:
    prefix = prefix or []
    found: list[list[Any]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        found.append([*prefix, key])
        if len(found) < limit:
            found.extend(_paths(child, [*prefix, key], limit - len(found)))
    return found[:limit]


# --------------------------------------------------------------------------- the Waze partner feed

_WAZE = json.loads((FIXTURES / "waze" / "poll-001.json").read_bytes())
_WAZE_SMALL = {key: value[:6] if isinstance(value, list) else value for key, value in _WAZE.items()}


@SETTINGS
@given(st.data())
def test_waze_feed_reader(data: st.DataObject) -> None:
    _read_all(_source("waze-feed"), _mutated_json(_WAZE_SMALL, _paths(_WAZE_SMALL))(data))


@SETTINGS
@given(st.dictionaries(st.sampled_from(["alerts", "jams", "irregularities", "startTimeMillis", "endTimeMillis"]),
                       st.lists(st.dictionaries(st.sampled_from(
                           ["uuid", "id", "type", "subtype", "location", "line", "street", "pubMillis", "speed",
                            "level", "delay", "length", "reliability", "confidence", "roadType", "magvar"]),
                           JSON_VALUES, max_size=8), max_size=3) | JSON_VALUES, max_size=5)
       | st.binary(max_size=200))
def test_waze_feed_reader_on_arbitrary_documents(document: Any) -> None:
    body = document if isinstance(document, bytes) else json.dumps(document, allow_nan=True).encode()
    _read_all(_source("waze-feed"), body)


# --------------------------------------------------------------------------- CIFS and WZDx imports

_CIFS = TESTDATA / "cifs" / "london_on_cifs_example.xml"
_WZDX = TESTDATA / "wzdx" / "cdot_prod_wzdx_v42_20230522.json"


def _xml_variants(path: Path, data: st.DataObject) -> bytes:
    """A real XML document with some elements' text replaced, some dropped, some ids changed."""
    root = etree.fromstring(path.read_bytes())
    elements = [element for element in root.iter() if isinstance(element.tag, str)][1:]
    for _ in range(data.draw(st.integers(1, 4))):
        element = data.draw(st.sampled_from(elements))
        action = data.draw(st.sampled_from(["text", "drop", "attribute"]))
        if action == "text":
            element.text = data.draw(st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), max_size=40))
        elif action == "drop" and element.getparent() is not None:
            element.getparent().remove(element)  # type: ignore[union-attr]
            elements = [e for e in root.iter() if isinstance(e.tag, str)][1:] or elements
        else:
            element.set("id", data.draw(st.text(alphabet="abc123-:", max_size=8)))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


@pytest.fixture(scope="module")
def cifs_file(testdata: Path) -> Path:
    return _CIFS


@SETTINGS
@given(st.data())
def test_cifs_reader(cifs_file: Path, data: st.DataObject) -> None:
    _read_all(_source("cifs"), _xml_variants(_CIFS, data))


_DATEX2 = TESTDATA / "datex2" / "samples" / "svv_GetSituations_Datex3.xml"


@SETTINGS
@given(st.data())
def test_datex2_reader(testdata: Path, data: st.DataObject) -> None:
    _read_all(_source("datex2"), _xml_variants(_DATEX2, data))


@pytest.fixture(scope="module")
def wzdx_document(testdata: Path) -> dict[str, Any]:
    document = json.loads(_WZDX.read_bytes())
    document["features"] = document["features"][:5]
    return document


@SETTINGS
@given(st.data())
def test_wzdx_reader(wzdx_document: dict[str, Any], data: st.DataObject) -> None:
    _read_all(_source("wzdx"), _mutated_json(wzdx_document, _paths(wzdx_document))(data))


# --------------------------------------------------------------------------- the city's CSV and GeoJSON

_CSV_SETTINGS = {"geometry": {"type": "wkt", "column": "wkt"}, "mapping": {"id": "id"}}
_CSV_COLUMNS = ["id", "type", "subtype", "street", "start", "end", "direction", "description", "wkt", "lanes"]
CELLS = (st.text(max_size=25) | st.sampled_from(["LINESTRING (-122.3 37.8, -122.31 37.81)", "POINT (-122.3 37.8)",
                                                  "LINESTRING (200 100, 1 1)", "2026-03-02T15:00:00Z", "ROAD_CLOSED",
                                                  "BOTH_DIRECTIONS", "", "1e400", "-0"]))


@SETTINGS
@given(st.lists(st.lists(CELLS, min_size=0, max_size=len(_CSV_COLUMNS) + 2), max_size=6),
       st.sampled_from([",", ";"]))
def test_city_csv_reader(rows: list[list[str]], delimiter: str) -> None:
    import csv

    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter)
    writer.writerow(_CSV_COLUMNS)
    writer.writerows(rows)
    _read_all(_source("csv", **_CSV_SETTINGS), out.getvalue().encode())


GEOMETRIES = (st.fixed_dictionaries({"type": st.sampled_from(["Point", "LineString", "Polygon", "Bogus"]),
                                     "coordinates": JSON_VALUES})
              | st.builds(lambda points: {"type": "LineString", "coordinates": points},
                          st.lists(st.lists(st.floats(allow_nan=True), min_size=2, max_size=3), max_size=4))
              | JSON_VALUES)


@SETTINGS
@given(st.lists(st.fixed_dictionaries({"type": st.just("Feature"), "geometry": GEOMETRIES,
                                       "properties": st.dictionaries(st.sampled_from(_CSV_COLUMNS), CELLS | JSON_VALUES,
                                                                     max_size=8)}), max_size=5)
       | JSON_VALUES)
def test_city_geojson_reader(features: Any) -> None:
    document = {"type": "FeatureCollection", "features": features}
    _read_all(_source("geojson", mapping={"id": "id"}), json.dumps(document, allow_nan=True).encode())


# --------------------------------------------------------------------------- the config loader

_SECTIONS = {
    "": ["timezone", "data_dir", "log_level", "log_format"],
    "publish": ["keep_ended_h", "interval_s", "max_age_s", "publisher", "license", "hold_back_failing"],
    "serve": ["host", "port", "tokens"],
    "web": ["access", "tile_url", "secure_cookie"],
    "retention": ["ended_crowd_days", "batch_rows"],
    "catalogue": ["title", "coverage_bbox", "keywords"],
}
TOML_VALUES = (st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=True) | st.booleans()
               | st.text(max_size=20) | st.lists(st.integers(-5, 400) | st.floats(-200, 200), max_size=5))


@SETTINGS
@given(st.dictionaries(st.sampled_from(sorted(_SECTIONS)), st.data(), max_size=4), st.data())
def test_config_loader(sections: dict[str, st.DataObject], data: st.DataObject) -> None:
    """Any value in any known key: loaded, or refused with ConfigError (exit 2) naming the key."""
    import tempfile

    import tomli_w

    from exchange.config_file import load_config

    document: dict[str, Any] = {}
    for section in sections:
        values = data.draw(st.dictionaries(st.sampled_from(_SECTIONS[section]), TOML_VALUES, max_size=3))
        (document if section == "" else document.setdefault(section, {})).update(values)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "exchange.toml"
        path.write_bytes(tomli_w.dumps(document).encode())
        try:
            load_config(path)
        except ConfigError as exc:
            assert exc.message and "\n" not in exc.message.strip()
