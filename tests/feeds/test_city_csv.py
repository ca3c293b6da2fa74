"""The city CSV codec on its own: WKT read by GEOS, and rows read and converted without a source."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from exchange.errors import ItemRejected
from feeds.city_csv import CsvFormat, parse_wkt, read_csv_snapshot, row_event

NOT_WKT = "is not WKT POINT, LINESTRING or MULTILINESTRING (lon lat)"


def test_wkt_reader() -> None:
    assert parse_wkt("linestring(1 2,3 4)") == [(1.0, 2.0), (3.0, 4.0)]
    assert parse_wkt("LINESTRING ZM (1 2 3 4, 3 4 5 6)") == [(1.0, 2.0), (3.0, 4.0)]
    assert parse_wkt("MULTILINESTRING ((1 2, 3 4))") == [(1.0, 2.0), (3.0, 4.0)]
    for text, message in [
        ("SRID=2263;POINT (980000 200000)", "SRID=2263 is not WGS84"),
        ("POINT EMPTY", "POINT EMPTY has no coordinates"),
        ("POINT (1 2, 3 4)", "a POINT has one position"),
        ("LINESTRING (1 2, 3 4", "is not WKT"),
        ("MULTILINESTRING ((0 0, 1 0), (2 0, 3 0))", "part 2 does not start where part 1 ends"),
        ("LINESTRING (1)", "is not a position 'lon lat'"),
    ]:
        with pytest.raises(ItemRejected, match=message):
            parse_wkt(text)


@pytest.mark.parametrize(
    ("text", "positions"),
    [
        ("LINESTRING Z (-104.99 39.74 1600, -104.98 39.74 1601)", [(-104.99, 39.74), (-104.98, 39.74)]),
        ("POINT (-104.99 39.74 1600)", [(-104.99, 39.74)]),
        ("MULTILINESTRING M ((1 2 0, 3 4 1), (3 4 1, 5 6 2))", [(1.0, 2.0), (3.0, 4.0), (5.0, 6.0)]),
        ("srid=4326; POINT ZM (-104.99 39.74 1600 7)", [(-104.99, 39.74)]),
    ],
    ids=["linestring-z", "point-3d", "multilinestring-m", "srid-point-zm"],
)
def test_wkt_z_and_m_ordinates_are_dropped(text: str, positions: list[tuple[float, float]]) -> None:
    assert parse_wkt(text) == positions


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("POLYGON ((0 0, 1 0, 1 1, 0 0))", f"'POLYGON ((0 0, 1 0, 1 1, 0 0))' {NOT_WKT}"),
        ("MULTIPOINT ((1 2))", f"'MULTIPOINT ((1 2))' {NOT_WKT}"),
        ("GEOMETRYCOLLECTION (POINT (1 2))", f"'GEOMETRYCOLLECTION (POINT (1 2))' {NOT_WKT}"),
        ("garbage", f"'garbage' {NOT_WKT}"),
        ("POINT (1 2) trailing", f"'POINT (1 2) trailing' {NOT_WKT}"),
        ("SRID=4326;", f"'SRID=4326;' {NOT_WKT}"),
        ("LINESTRING EMPTY", "LINESTRING EMPTY has no coordinates"),
        ("MULTILINESTRING EMPTY", "MULTILINESTRING EMPTY has no coordinates"),
        ("MULTILINESTRING ((1 2, 3 4), EMPTY)", "MULTILINESTRING needs ((lon lat, ...), (lon lat, ...))"),
        ("MULTILINESTRING (1 2, 3 4)", "MULTILINESTRING needs ((lon lat, ...), (lon lat, ...))"),
        ("SRID=2263;LINESTRING (1 abc, 2 3)", "SRID=2263 is not WGS84 lon/lat (SRID=4326)"),
        ("POINT (1 2, 3 4)", "a POINT has one position, got 2"),
        ("LINESTRING (-104.99 abc, -104.98 39.74)", "'-104.99 abc' holds something that is not a number"),
        ("LINESTRING (1 2,,3 4)", "'' is not a position 'lon lat'"),
        ("POINT (1 2 3 4 5)", "'1 2 3 4 5' is not a position 'lon lat'"),
        ("LINESTRING (1 2, (3 4))", "unbalanced parentheses in '1 2, (3 4)'"),
        # what a lax reader took but GEOS does not: one position in a line, a Z tag on 2-D positions
        ("LINESTRING (-104.99 39.74)", f"'LINESTRING (-104.99 39.74)' {NOT_WKT}"),
        ("POINT Z (-104.99 39.74)", f"'POINT Z (-104.99 39.74)' {NOT_WKT}"),
        ("LINESTRING (1 2, 3 4 5)", f"'LINESTRING (1 2, 3 4 5)' {NOT_WKT}"),
        ("POINT (1 2)\x00", f"'POINT (1 2)\\x00' {NOT_WKT}"),
    ],
    ids=[
        "polygon", "multipoint", "collection", "garbage", "trailing-text", "srid-only", "linestring-empty",
        "multilinestring-empty", "empty-part", "flat-multilinestring", "projected-srid", "point-of-two",
        "not-a-number", "empty-position", "five-numbers", "nested-parentheses", "one-position-line",
        "z-without-z", "mixed-dimensions", "nul",
    ],
)
def test_wkt_refusals_are_one_line_naming_the_column(text: str, message: str) -> None:
    with pytest.raises(ItemRejected) as caught:
        parse_wkt(text, "geom")
    assert caught.value.message == f"geom: {message}"


def test_rows_are_read_and_converted_without_a_source() -> None:
    settings = CsvFormat.model_validate({
        "mapping": {"id": "id", "street": "name"}, "geometry": {"type": "wkt", "column": "geom"}, "delimiter": ";",
    })
    body = b"id;name;start;geom\nC-1;Main St;2026-03-02 08:00;LINESTRING (-104.99 39.74, -104.98 39.74)\n"
    snapshot = read_csv_snapshot(body, settings)
    assert [item.source_id for item in snapshot.items] == ["C-1"] and snapshot.errors == []
    event = row_event(snapshot.items[0], "city", settings, ZoneInfo("America/Denver"))
    assert (event.street, event.source_id, event.attributes) == ("Main St", "C-1", {
        "id": "C-1", "name": "Main St", "start": "2026-03-02 08:00",
    })
    assert event.start_time is not None and event.start_time.isoformat() == "2026-03-02T08:00:00-07:00"
