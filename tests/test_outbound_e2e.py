"""End to end: an operator adds a closure with the CLI; a partner fetches it over real HTTP."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from lxml import etree
from sqlalchemy import Engine

from exchange.validation import validate_cifs_xml, validate_wzdx
from tests.support.helpers import Run
from tests.support.paths import DEMO
from tests.support.serving import GZIP, PLAIN, running, wait_for

NINTH = "37.809578 -122.300788 37.810233 -122.302087"


def _time(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat(timespec="seconds")


def test_closure_reaches_a_partner_over_http(engine: Engine, store_cli: Callable[..., Run]) -> None:
    token = store_cli("partner", "add", "waze").out.strip()
    added = store_cli("--config", str(DEMO), "closure", "add", "--street", "9th Street", "--polyline", NINTH,
                "--type", "ROAD_CLOSED", "--subtype", "ROAD_CLOSED_CONSTRUCTION", "--direction", "BOTH_DIRECTIONS",
                "--start", _time(-1), "--end", _time(48), "--description", "Water main & <valve> \"B\" ]]>")
    assert added.code == 0, added
    closure_id = added.out.strip()
    with running(engine, require_token=True, refresh_s=0.2) as url, httpx.Client(base_url=url) as client:
        assert client.get("/feeds/cifs.xml", headers=PLAIN).status_code == 401
        auth = {"Authorization": f"Bearer {token}", **PLAIN}
        first = client.get("/feeds/cifs.xml", headers=auth)
        assert first.status_code == 200, first.text
        assert first.headers["content-type"].startswith("application/xml")
        assert validate_cifs_xml(first.content) == []
        incident = etree.fromstring(first.content).find("incident")
        assert incident is not None and incident.get("id") == closure_id
        assert incident.findtext("description") == "Water main & <valve> \"B\" ]]>"
        assert incident.findtext("type") == "ROAD_CLOSED"
        etag = first.headers["etag"]
        again = client.get("/feeds/cifs.xml", headers={**auth, "If-None-Match": etag})
        assert again.status_code == 304 and again.headers["etag"] == etag
        zipped = client.get("/feeds/cifs.xml", headers={"Authorization": f"Bearer {token}", **GZIP})
        assert zipped.headers["content-encoding"] == "gzip"
        assert zipped.content == first.content  # httpx decodes; the bytes are the same feed
        raw = client.get("/feeds/wzdx.geojson", headers=auth)
        assert raw.status_code == 200 and validate_wzdx(raw.content) == []
        assert closure_id in raw.text
        assert store_cli("partner", "revoke", "waze").code == 0
        wait_for(lambda: client.get("/feeds/cifs.xml", headers=auth).status_code == 401, what="revocation")


def test_ended_closures_stay_with_their_end_time(engine: Engine, store_cli: Callable[..., Run]) -> None:
    closure_id = store_cli("--config", str(DEMO), "closure", "add", "--street", "9th Street", "--polyline", NINTH,
                                 "--type", "ROAD_CLOSED", "--start", _time(-5)).out.strip()
    assert store_cli("--config", str(DEMO), "closure", "end", closure_id).code == 0
    with running(engine, require_token=False, refresh_s=0.2) as url:
        body = httpx.get(f"{url}/feeds/cifs.xml", headers=PLAIN).content
    incident = etree.fromstring(body).find("incident")
    assert incident is not None and incident.get("id") == closure_id and incident.findtext("endtime")
    cancelled = store_cli("--config", str(DEMO), "closure", "add", "--street", "9th Street", "--polyline", NINTH,
                          "--type", "ROAD_CLOSED", "--start", _time(-5)).out.strip()
    assert store_cli("--config", str(DEMO), "closure", "end", cancelled, "--cancel").code == 0
    with running(engine, require_token=False, refresh_s=0.2) as url:
        body = httpx.get(f"{url}/feeds/cifs.xml", headers=PLAIN).content
    assert cancelled.encode() not in body and closure_id.encode() in body
