"""No DTD sneaks in, whatever the encoding (issue 17, item 2).

Finding: the DOCTYPE refusal searched the raw bytes for ``<!DOCTYPE``, so the same document in
UTF-16 without a BOM or in UTF-32 passed: lxml parsed its DTD, a CIFS incident silently lost the
field that held the entity, and `exchange validate` crashed with ``XMLSchemaValidateError:
Internal error``. Now every XML entry point refuses a parsed document that has a DOCTYPE."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from adapters.osm import read_osm_xml
from exchange.errors import MalformedPayload
from exchange.validation import validate_cifs_xml, validate_feed
from feeds.cifs import parse_cifs
from feeds.georss import georss_to_document
from feeds.xmlsafe import REFUSED, parse_untrusted

CIFS = """<?xml version="1.0" encoding="{encoding}"?>
<!DOCTYPE incidents [<!ENTITY street "Main Street">]>
<incidents timestamp="2026-03-02T15:00:00Z"><incident id="1"><type>ROAD_CLOSED</type>
<location><street>&street;</street><polyline>37.8 -122.3 37.81 -122.31</polyline></location>
<starttime>2026-03-02T15:00:00Z</starttime><description>x</description></incident></incidents>
"""
GEORSS = """<?xml version="1.0" encoding="{encoding}"?>
<!DOCTYPE rss [<!ENTITY boom "boom">]>
<rss version="2.0"><channel><item><title>&boom;</title></item></channel></rss>
"""
OSM = """<?xml version="1.0" encoding="{encoding}"?>
<!DOCTYPE osm [<!ENTITY name "Main Street">]>
<osm version="0.6"><node id="1" lat="37.8" lon="-122.3"/></osm>
"""
# (codec, the encoding declared): no BOM in any of them, so a byte search for "<!DOCTYPE" fails
ENCODINGS = [("utf-16-le", "UTF-16"), ("utf-16-be", "UTF-16"), ("utf-32-le", "UTF-32"), ("utf-8", "UTF-8")]


def _encoded(template: str, codec: str, declared: str) -> bytes:
    data = template.format(encoding=declared).encode(codec)
    assert codec == "utf-8" or b"<!DOCTYPE" not in data
    return data


@pytest.mark.parametrize(("codec", "declared"), ENCODINGS)
def test_every_xml_reader_refuses_a_dtd_in_any_encoding(codec: str, declared: str, tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    cifs = _encoded(CIFS, codec, declared)
    with pytest.raises(MalformedPayload, match=re.escape(REFUSED)):
        parse_untrusted(cifs)
    with pytest.raises(MalformedPayload, match=re.escape(REFUSED)):
        parse_cifs(cifs, zone=ZoneInfo("UTC"))
    problems = validate_cifs_xml(cifs)
    assert [p.message for p in problems] == [REFUSED]
    kind, problems = validate_feed(cifs)
    assert problems and REFUSED in problems[0].message, kind
    with pytest.raises(MalformedPayload, match=re.escape(REFUSED)):
        georss_to_document(_encoded(GEORSS, codec, declared))
    osm = tmp_path / "city.osm"
    osm.write_bytes(_encoded(OSM, codec, declared))
    with pytest.raises(MalformedPayload, match="DOCTYPE or ENTITY declaration is refused"):
        read_osm_xml(osm)


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig"])
def test_a_document_without_a_dtd_still_reads_in_any_encoding(codec: str) -> None:
    """Trial finding: valid CIFS in UTF-16 with a BOM, or UTF-16BE, was refused as "neither XML nor JSON"."""
    from zoneinfo import ZoneInfo

    declared = {"utf-8-sig": "UTF-8", "utf-32": "UTF-32"}.get(codec, "UTF-16")
    text = CIFS.replace('<!DOCTYPE incidents [<!ENTITY street "Main Street">]>\n', "").replace("&street;", "Main")
    data = text.format(encoding=declared).encode(codec)
    assert parse_untrusted(data).tag == "incidents"
    assert len(parse_cifs(data, zone=ZoneInfo("UTC")).items) == 1
