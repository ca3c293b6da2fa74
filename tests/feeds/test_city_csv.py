"""The city CSV codec on its own: WKT, and rows read and converted without a source."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from exchange.errors import ItemRejected
from feeds.city_csv import CsvFormat, parse_wkt, read_csv_snapshot, row_event


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
