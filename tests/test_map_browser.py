"""The operator map (``/map``) end to end: a real Chromium on the real server and the demo store.

Debian's ``/usr/bin/chromium`` runs the page (Playwright's own browser downloads are not used);
without it the browser tests are skipped, and with ``CI=true`` they fail. The base map's tile URL
points at a closed port on this machine, so nothing leaves it: the map must still draw every event.

Every count is the events API's answer to the query the page itself made (``data-query`` on the
counter): the browser signs in through the form (the cookie), the test asks the API with the
operator's token.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from exchange.operators import add_operator
from exchange.server import create_app
from tests.conftest import _unavailable
from tests.support.paths import ROOT
from tests.support.serving import serving
from tests.support.webdata import DemoSite, demo_site

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / ".artifacts"
TIMEOUT_MS = 10_000


def _closed_port() -> int:
    """A local port nothing listens on: tile requests to it are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoSite, str]]:
    """The demo store, plus a city closure whose lint has a finding: a ROAD_CLOSED with an open lane
    (on a street no other closure covers, so the test can click it)."""
    tiles = f"http://127.0.0.1:{_closed_port()}/{{z}}/{{x}}/{{y}}.png"
    with demo_site(tmp_path_factory.mktemp("map"), f'[web]\ntile_url = "{tiles}"\n') as demo:
        now = datetime.now(UTC).replace(microsecond=0)
        code, out, err = demo.cli(
            "closure", "add", "--street", "Willow Street", "--from", "37.814674 -122.294913",
            "--to", "37.813304 -122.29601", "--type", "ROAD_CLOSED", "--lane-impact", "1:RIGHT",
            "--direction", "ONE_DIRECTION", "--start", (now - timedelta(hours=2)).isoformat(),
            "--end", (now + timedelta(days=20)).isoformat(), "--operator", "map-test",
        )  # fmt: skip
        assert code == 0, err
        # a second revision: its changes are shown as `inspect event` shows them (a cold trial read raw
        # epoch milliseconds and whole `details` objects on the map)
        code, _, err = demo.cli("closure", "update", out.strip(), "--end", (now + timedelta(days=21)).isoformat(),
                                "--description", "Sewer works", "--operator", "map-test")
        assert code == 0, err
        yield demo, out.strip()


@pytest.fixture(scope="module")
def server(site: tuple[DemoSite, str]) -> Iterator[tuple[str, str]]:
    """The real server (uvicorn) on the demo store: (base URL, an operator token)."""
    demo, _closure = site
    token = add_operator(demo.engine, "map-test")
    with serving(create_app(demo.engine, require_token=False, config=demo.config, refresh_s=0.2)) as url:
        yield url, token


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # root in a container: Chromium's sandbox needs user namespaces it may not have
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def _api_events(url: str, token: str, query: str, **extra: str) -> list[dict[str, Any]]:
    """Every event the API gives for a query, all pages."""
    params = [*parse_qsl(query), *extra.items()]
    features: list[dict[str, Any]] = []
    cursor: str | None = None
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
        while True:
            response = client.get("/api/events", params=[*params, ("limit", "1000"),
                                                          *([("cursor", cursor)] if cursor else [])])
            assert response.status_code == 200, response.text
            body = response.json()
            features.extend(body["features"])
            cursor = body["next_cursor"]
            if cursor is None:
                return features


def _drawn(page: Any) -> dict[str, set[str]]:
    """The event ids of the paths on the map, by shape."""
    return {
        shape: set(page.eval_on_selector_all(f"path.ev-{shape}", "nodes => nodes.map(n => n.dataset.eventId)"))
        for shape in ("point", "line")
    }


def _expected(features: list[dict[str, Any]]) -> dict[str, set[str]]:
    return {
        "point": {f["id"] for f in features if f["geometry"]["type"] == "Point"},
        "line": {f["id"] for f in features if f["geometry"]["type"] != "Point"},
    }


def _counts(page: Any) -> tuple[int, int]:
    return page.locator("path.ev-point").count(), page.locator("path.ev-line").count()


# --------------------------------------------------------------------------- without a browser


def test_map_without_a_token_is_the_sign_in_form(server: tuple[str, str]) -> None:
    url, token = server
    with httpx.Client(base_url=url, timeout=10) as client:
        refused = client.get("/map")
        assert refused.status_code == 401
        assert '<form method="post" action="/login">' in refused.text and 'name="token"' in refused.text
        assert "map.js" not in refused.text
        assert client.get("/map", params={"token": token}).status_code == 401, "a token in the URL is never read"
        assert client.get("/api/events").status_code == 401
        # the code and pictures are public: no data in them
        leaflet = client.get("/static/vendor/leaflet/leaflet.js")
        assert leaflet.status_code == 200 and "javascript" in leaflet.headers["content-type"]
        assert client.get("/static/map.js").status_code == 200
        assert client.get("/static/vendor/leaflet/images/layers.png").status_code == 200

        page = client.get("/map", headers={"Authorization": f"Bearer {token}"})
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "default-src 'none'" in policy and "unsafe-inline" not in policy
    tile_origin = url.rsplit(":", 1)[0]  # http://127.0.0.1: the tile server is another port of it
    assert f"img-src 'self' data: {tile_origin}:" in policy
    assert token not in page.text, "the page never carries the token"


# --------------------------------------------------------------------------- in Chromium


def test_the_operator_map_in_a_browser(server: tuple[str, str], site: tuple[DemoSite, str], browser: Any) -> None:
    url, token = server
    _demo, closure_id = site
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    page.on("console", lambda message: problems.append(f"console: {message.text}")
            if "Content Security Policy" in message.text else None)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    try:
        # ---- sign in through the form: the cookie is the way in, the token never in a URL
        first = page.goto(f"{url}/map")
        assert first is not None and first.status == 401
        page.fill("#token", token)
        page.click("form[action='/login'] button[type=submit]")
        page.wait_for_url(f"{url}/map")
        assert token not in page.url and all(token not in seen for seen in requested)
        cookie = next(c for c in context.cookies() if c["name"] == "exchange_operator")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

        # ---- the first load: every event of the page's query, points and lines, on a plain background
        page.wait_for_function("() => document.getElementById('counter').dataset.query !== undefined")
        counter = page.locator("#counter")
        query = counter.get_attribute("data-query") or ""
        assert dict(parse_qsl(query)) == {"status": "active"}, query
        everything = _api_events(url, token, query)
        expected = _expected(everything)
        assert expected["point"] and expected["line"], "the demo has alerts and jams"
        assert _drawn(page) == expected
        assert counter.get_attribute("data-points") == str(len(expected["point"]))
        assert counter.get_attribute("data-lines") == str(len(expected["line"]))
        assert f"{len(everything)} events shown" in (counter.text_content() or "")
        page.wait_for_selector("#notice:not([hidden])")
        assert "Base map unavailable" in (page.text_content("#notice") or "")
        attribution = page.locator(".leaflet-control-attribution")
        assert "Crowd data © Waze" in (attribution.text_content() or "")
        # the map fitted the data: the events' paths lie inside the map's box
        map_box = page.locator("#map").bounding_box()
        closure_box = page.locator(f'path[data-event-id="{closure_id}"]').bounding_box()
        assert map_box and closure_box
        assert map_box["x"] <= closure_box["x"] <= map_box["x"] + map_box["width"]
        assert map_box["y"] <= closure_box["y"] <= map_box["y"] + map_box["height"]

        # ---- a category unchecked: re-filtered in the page, the same as asking the API for the others
        jams = sum(1 for f in everything if f["properties"]["category"] == "JAM")
        assert jams, "the demo has jams"
        page.click("label[for='cat-JAM']")
        others = page.eval_on_selector_all("input[name=category]:checked", "boxes => boxes.map(b => b.value)")
        assert others and "JAM" not in others
        without_jams = _expected(_api_events(url, token, query, category=",".join(others)))
        assert _drawn(page) == without_jams
        assert sum(_counts(page)) == len(everything) - jams
        page.click("label[for='cat-JAM']")
        assert _drawn(page) == expected

        # ---- any status: ended reports too; reports of one incident (cluster_id) get one ring and a count
        page.select_option("#status", "")
        page.wait_for_function("() => document.getElementById('counter').dataset.query === ''")
        every_status = _api_events(url, token, "")
        assert _drawn(page) == _expected(every_status)
        members: dict[str, int] = {}
        for feature in every_status:
            if feature["properties"]["cluster_id"]:
                members[feature["properties"]["cluster_id"]] = members.get(feature["properties"]["cluster_id"], 0) + 1
        badges = dict(page.eval_on_selector_all(
            ".cluster-count", "nodes => nodes.map(n => [n.dataset.clusterId, Number(n.textContent)])"))
        assert badges == {cluster: n for cluster, n in members.items() if n > 1}
        assert page.locator("path.cluster-ring").count() == len(badges)
        page.select_option("#status", "active")
        page.wait_for_function("() => document.getElementById('counter').dataset.query === 'status=active'")
        assert _drawn(page) == expected

        # ---- origin: city only, fetched again; no crowd data shown, so no Waze attribution
        page.select_option("#origin", "city")
        page.wait_for_function("() => document.getElementById('counter').dataset.query.includes('origin=city')")
        city_query = counter.get_attribute("data-query") or ""
        city = _expected(_api_events(url, token, city_query))
        assert closure_id in city["line"]
        assert _drawn(page) == city and sum(_counts(page)) < len(everything)
        assert "Waze" not in (attribution.text_content() or "")
        closures = page.locator("#closures button.closure")
        assert closures.count() == len(city["line"]) + len(city["point"])

        # ---- the time window: the last hour (every demo event changed just now) and a window in the past
        page.select_option("#window", "3600")
        page.wait_for_function("() => document.getElementById('counter').dataset.query.includes('since=')")
        windowed = counter.get_attribute("data-query") or ""
        assert _drawn(page) == _expected(_api_events(url, token, windowed))

        # ---- the closure with a lint finding: clicked on the map, the panel says why Waze would object
        detail = httpx.get(f"{url}/api/events/{closure_id}", headers={"Authorization": f"Bearer {token}"}).json()
        findings = [finding["message"] for finding in detail["properties"]["lint"]]
        assert any("every lane" in message for message in findings), findings  # the fixture's lane impact
        assert _click_event(page, closure_id) == "mouse", "the closure is clickable somewhere along it"
        page.wait_for_function(
            "id => document.getElementById('detail-body').dataset.eventId === id", arg=closure_id)
        panel = page.locator("#detail")
        assert panel.is_visible()
        text = panel.text_content() or ""
        for message in findings:
            assert message in text
        assert "Willow Street" in text and "Waze status" in text and "Road match" in text
        assert "Revisions" in text and "map-test" in text  # the operator who added it
        assert 'details.description: null → "Sewer works"' in text or 'details.description: — → "Sewer works"' in text
        assert "end: " in text and not re.search(r"\d{13}", text) and '{"' not in text, text

        ARTIFACTS.mkdir(exist_ok=True)
        page.select_option("#origin", "")
        page.select_option("#window", "")
        page.wait_for_function("() => !document.getElementById('counter').dataset.query.includes('origin=')")
        page.screenshot(path=str(ARTIFACTS / "map.png"))

        # ---- signing out: the cookie goes, the map asks for the token again
        page.click("form[action='/logout'] button[type=submit]")
        page.wait_for_url(f"{url}/login?signed_out=1")
        assert not [c for c in context.cookies() if c["name"] == "exchange_operator"]
        again = page.goto(f"{url}/map")
        assert again is not None and again.status == 401
        assert page.locator("#token").is_visible()
        assert all(token not in seen for seen in requested)
        assert not problems, problems
    finally:
        context.close()


def test_a_closure_another_source_reports_says_which_goes_out(
    server: tuple[str, str], site: tuple[DemoSite, str], browser: Any,
) -> None:
    """Found in a cold trial: two reports of one closure showed as two identical cards, one without "In the
    feeds" and no reason; the panel never said which one goes out. And Escape did not close the panel,
    nor did closing it give the focus back to the closure that opened it."""
    from sqlalchemy import select, update

    from exchange.schema import events

    url, token = server
    demo, closure_id = site
    with demo.engine.begin() as conn:
        other = conn.execute(select(events.c.id).where(events.c.origin == "city", events.c.id != closure_id,
                                                      events.c.status == "active").order_by(events.c.id)).scalar()
        assert other is not None
        conn.execute(update(events).where(events.c.id == other).values(same_as=closure_id))
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(f"{url}/map")
        page.fill("#token", token)
        page.click("form[action='/login'] button[type=submit]")
        page.wait_for_url(f"{url}/map")
        card = page.locator(f'#closures button.closure[data-event-id="{other}"]')
        card.wait_for()
        assert f"Out of the feeds: {closure_id} goes out in its place" in (card.text_content() or "")
        card.click()
        page.wait_for_function("id => document.getElementById('detail-body').dataset.eventId === id", arg=other)
        banner = page.locator("#detail .banner.same")
        banner.wait_for()
        assert f"The same closure as {closure_id}" in (banner.text_content() or "")
        page.keyboard.press("Escape")
        page.wait_for_selector("#detail", state="hidden")
        assert page.evaluate("() => document.activeElement.dataset.eventId") == other
    finally:
        context.close()
        with demo.engine.begin() as conn:
            conn.execute(update(events).where(events.c.id == other).values(same_as=None))


def _click_event(page: Any, event_id: str) -> str:
    """Click an event's path with the mouse, at a spot of it nothing is drawn over; without one (a report
    on top all along it), the keyboard: Enter on the focused path. Returns how."""
    spot = page.evaluate(
        """id => {
            const path = document.querySelector(`path[data-event-id="${CSS.escape(id)}"]`);
            const m = path.getScreenCTM(), length = path.getTotalLength();
            for (let i = 1; i < 20; i += 1) {
                const at = path.getPointAtLength(length * i / 20);
                const x = at.x * m.a + at.y * m.c + m.e, y = at.x * m.b + at.y * m.d + m.f;
                if (document.elementFromPoint(x, y) === path) return {x, y};
            }
            return null;
        }""",
        event_id,
    )
    if spot is not None:
        page.mouse.click(spot["x"], spot["y"])
        return "mouse"
    page.focus(f'path[data-event-id="{event_id}"]')
    page.keyboard.press("Enter")
    return "keyboard"


def test_the_map_without_a_base_map(site: tuple[DemoSite, str], browser: Any) -> None:
    """``tile_url`` unset: no tile is asked for, the CSP names no tile host, the events are all drawn;
    and every minute the page reloads them."""
    demo, _closure = site
    config = demo.config.model_copy(update={"web": demo.config.web.model_copy(update={"tile_url": None})})
    token = add_operator(demo.engine, "map-test-plain")
    with serving(create_app(demo.engine, require_token=False, config=config, refresh_s=0.2)) as url:
        # a script's way in this time: the Bearer header on every request the page makes
        context = browser.new_context(extra_http_headers={"Authorization": f"Bearer {token}"})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        tiles: list[str] = []
        page.on("request", lambda request: tiles.append(request.url) if request.resource_type == "image"
                and not request.url.startswith((url, "data:")) else None)
        try:
            page.clock.install()  # the page's own timers, so the 60 s refresh can be skipped to
            response = page.goto(f"{url}/map")
            assert response is not None and response.status == 200
            assert response.headers["content-security-policy"].count("img-src 'self' data:;") == 1
            page.wait_for_function("() => document.getElementById('counter').dataset.query !== undefined")
            query = page.locator("#counter").get_attribute("data-query") or ""
            assert _drawn(page) == _expected(_api_events(url, token, query))
            assert page.locator("#map.no-basemap").count() == 1 and page.locator("img.leaflet-tile").count() == 0
            assert "Base map" not in (page.text_content("#notice") or "")

            # the refresh: a closure added meanwhile is on the map a minute later, with no reload
            before = len(_api_events(url, token, query))
            now = datetime.now(UTC).replace(microsecond=0)
            code, added, err = demo.cli(
                "closure", "add", "--street", "Wood Street", "--from", "37.804063 -122.300865",
                "--to", "37.805491 -122.30292", "--type", "CONSTRUCTION", "--start",
                (now - timedelta(hours=1)).isoformat(), "--end", (now + timedelta(days=3)).isoformat(),
            )  # fmt: skip
            assert code == 0, err
            assert page.locator(f'path[data-event-id="{added.strip()}"]').count() == 0
            page.clock.fast_forward(61_000)
            page.wait_for_selector(f'path.ev-line[data-event-id="{added.strip()}"]', state="attached")
            assert _drawn(page) == _expected(_api_events(url, token, query))
            assert int(page.locator("#counter").get_attribute("data-shown") or 0) == before + 1
            # a few events: each a tab stop (with thousands none is, or the zoom and legend are out of reach)
            shown = int(page.locator("#counter").get_attribute("data-shown") or 0)
            assert page.locator("#map [data-event-id][tabindex='0']").count() == shown

            # the operator revoked while the page is open: at the next refresh it says so, and only so
            code, _out, err = demo.cli("operator", "revoke", "map-test-plain")
            assert code == 0, err
            deadline = time.monotonic() + 5  # the server takes the revocation in within its refresh (0.2 s)
            while httpx.get(f"{url}/api/stats", headers={"Authorization": f"Bearer {token}"}).status_code != 401:
                assert time.monotonic() < deadline, "the revocation never took"
                time.sleep(0.05)
            page.clock.fast_forward(61_000)
            page.wait_for_function("() => document.querySelector('.who').textContent === 'Signed out'")
            notice = page.text_content("#notice") or ""
            assert "Your sign-in has ended" in notice and "No events match" not in notice, notice
            assert _drawn(page) == {"point": set(), "line": set()}
            assert page.locator("form.signout button").is_hidden(), "no Sign out while signed out"

            # signed in again (a new token, as another tab would): the next refresh shows who again (the review)
            again = add_operator(demo.engine, "map-test-again")
            context.set_extra_http_headers({"Authorization": f"Bearer {again}"})
            deadline = time.monotonic() + 5
            while httpx.get(f"{url}/api/stats", headers={"Authorization": f"Bearer {again}"}).status_code != 200:
                assert time.monotonic() < deadline, "the new operator never took"
                time.sleep(0.05)
            page.clock.fast_forward(61_000)
            page.wait_for_function("() => document.querySelector('.who').textContent.startsWith('Signed in as')")
            assert page.locator("form.signout button").is_visible()
            assert "Your sign-in has ended" not in (page.text_content("#notice") or "")
            assert not tiles and not errors, (tiles, errors)
        finally:
            context.close()


def test_thousands_of_events_are_no_tab_stops(tmp_path: Path, browser: Any, testdata: Path) -> None:
    """Found in a cold trial: New York's 3,536 reports were 3,541 tab stops before the zoom and the legend, out
    of a keyboard's reach. Beyond 150 events drawn, none is a tab stop (the city's closures keep their list)."""
    with demo_site(tmp_path, "") as demo:
        code, _out, err = demo.cli("replay", str(testdata / "waze_feed" / "nyc_full_feed_20190322.json"))
        assert code == 0, err
        token = add_operator(demo.engine, "map-test-many")
        with serving(create_app(demo.engine, require_token=False, config=demo.config)) as url:
            context = browser.new_context(extra_http_headers={"Authorization": f"Bearer {token}"})
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            try:
                page.goto(f"{url}/map?status=")  # every status: the replayed reports are history
                page.select_option("#status", "")
                page.wait_for_function("() => Number(document.getElementById('counter').dataset.shown) > 150")
                shown = int(page.locator("#counter").get_attribute("data-shown") or 0)
                assert page.locator("#map [data-event-id][tabindex='0']").count() == 0
                assert page.locator("#map [data-event-id][tabindex='-1']").count() == shown
                assert page.locator(".leaflet-control-zoom-in").count() == 1
            finally:
                context.close()
