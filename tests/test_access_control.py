"""Every route access-controlled (issue 17, item 5).

The routes are read from the app itself, so a route added later is covered without a change here:
each one is either on the list of open routes below (with why it is open) or must refuse a request
without a token in every way a request can be made: GET, HEAD, a ranged request, a compressed one, a
CORS request and preflight, and with a token in the wrong place (a partner token for operator
routes, an operator token for partner feeds). Refusals must not carry the protected data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence

import httpx
import pytest
from starlette.routing import BaseRoute, Mount, Route

from exchange.server import create_app
from tests.support.serving import serving
from tests.support.webdata import DemoSite, demo_site

#: path -> why it is open without a token
OPEN = {
    "/": "redirects to the catalogue",
    "/feeds": "the catalogue lists open feeds only (restricted ones only with list_restricted, without data)",
    "/feeds/": "the catalogue",
    "/feeds/catalog.html": "the catalogue",
    "/feeds/catalog.json": "the catalogue",
    "/feeds/catalog.jsonld": "the catalogue",
    "/health": "a load balancer's readiness check: when each feed was published, no event",
    "/health/sources": "monitoring: source states, no event",
    "/metrics": "monitoring: counts, no event (nginx keeps it inside)",
    "/openapi.json": "the API's schema, no data",
    "/docs": "Swagger UI, no data",
    "/docs/{name}": "Swagger UI's files",
    "/login": "the sign-in form",
    "/logout": "signing out",
    "/static": "the map's script, styles and vendored libraries",
    "/favicon.ico": "no icon: an empty 204, so browsers log no 404",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoSite]:
    with demo_site(tmp_path_factory.mktemp("access") / "site", "[serve]\ntokens = true\n") as built:
        yield built


@pytest.fixture(scope="module")
def tokens(site: DemoSite) -> dict[str, str]:
    return {"partner": site.cli("partner", "add", "acme")[1].strip(),
            "operator": site.cli("operator", "add", "jane")[1].strip()}


def _paths(routes: Sequence[BaseRoute], event_id: str) -> list[str]:
    return sorted({re.sub(r"\{event_id(:path)?\}", event_id, path) for path in _route_paths(routes, "")})


def _route_paths(routes: Sequence[BaseRoute], prefix: str) -> Iterator[str]:
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI's include_router
        if included is not None:
            yield from _route_paths(included.routes, prefix + route.include_context.prefix)  # type: ignore[attr-defined]
        elif isinstance(route, Mount | Route):  # FastAPI's APIRoute is a Route
            yield prefix + route.path
        else:
            raise AssertionError(f"unclassified route {route!r}: decide whether it is open")


def test_every_protected_route_refuses_without_its_token(site: DemoSite, tokens: dict[str, str]) -> None:
    app = create_app(site.engine, require_token=True, refresh_s=0.2, config=site.config)
    event_id = json.loads(site.cli("inspect", "events", "--format", "json", "--limit", "1")[1])[0]["id"]
    street_names = {"9th Street", "Campbell Street", "7th Street"}
    paths = _paths(app.routes, event_id)
    protected = [p for p in paths if p not in OPEN and not p.startswith("/docs/")]
    assert {"/map", "/api/events", "/api/stats", f"/api/events/{event_id}", "/feeds/cifs.xml"} <= set(protected)
    with serving(app) as url, httpx.Client(base_url=url) as http:
        for path in protected:
            wrong = tokens["partner"] if path.startswith(("/map", "/api")) else tokens["operator"]
            attempts = {
                "GET": http.get(path),
                "HEAD": http.head(path),
                "ranged": http.get(path, headers={"Range": "bytes=0-99"}),
                "gzip": http.get(path, headers={"Accept-Encoding": "gzip"}),
                "CORS": http.get(path, headers={"Origin": "https://portal.example"}),
                "wrong token": http.get(path, headers={"Authorization": f"Bearer {wrong}"}),
                "token in query": http.get(path, params={"token": wrong}),
            }
            for how, response in attempts.items():
                # FastAPI's GET routes answer HEAD 405, with or without a token: refused all the same
                refused = (401, 405) if how == "HEAD" and path.startswith("/api/") else (401,)
                assert response.status_code in refused, (path, how, response.status_code)
                assert "access-control-allow-origin" not in response.headers, (path, how)
                assert not any(name in response.text for name in street_names), (path, how)
            preflight = http.options(path, headers={"Origin": "https://portal.example",
                                                    "Access-Control-Request-Method": "GET"})
            assert "access-control-allow-origin" not in preflight.headers, path
            assert preflight.status_code in (401, 405), (path, preflight.status_code)
        # and each opens with the right token (a feed whose target is off says so: 404 with the reason)
        from exchange.targets import off_feeds

        off = {f"/feeds/{name}" for name in off_feeds(site.config)}
        assert "/feeds/cwz.geojson" in off, "the demo's CWZ is off (OpenStreetMap geometry is not CC0)"
        for path in protected:
            token = tokens["operator"] if path.startswith(("/map", "/api")) else tokens["partner"]
            opened = http.get(path, headers={"Authorization": f"Bearer {token}"})
            assert opened.status_code == (404 if path in off else 200), path


def test_open_routes_carry_no_event_data(site: DemoSite, tokens: dict[str, str]) -> None:
    app = create_app(site.engine, require_token=True, refresh_s=0.2, config=site.config)
    with serving(app) as url, httpx.Client(base_url=url, follow_redirects=True) as http:
        for path in ("/", "/feeds", "/feeds/catalog.json", "/feeds/catalog.jsonld", "/health", "/health/sources",
                     "/metrics", "/openapi.json", "/docs", "/login"):
            response = http.get(path)
            assert response.status_code in (200, 503), path
            body = response.text
            assert "9th Street" not in body and "Campbell Street" not in body, path
            assert tokens["partner"] not in body and tokens["operator"] not in body, path
        # restricted feeds are not in the catalogue (list_restricted is off)
        assert "/feeds/cifs.xml" not in http.get("/feeds/catalog.json").text
        not_found = http.get("/api/events/nope:nope")
        assert not_found.status_code == 401, "an unknown id is not told apart from a known one without a token"


def test_the_open_routes_are_the_ones_listed(site: DemoSite) -> None:
    app = create_app(site.engine, require_token=True, config=site.config)
    listed = set(OPEN) | {"/map", "/api/events", "/api/stats", "/api/events/x"}
    paths = {p for p in _paths(app.routes, "x") if not p.startswith("/feeds/") or p in OPEN}
    assert paths <= listed, f"a new route needs a decision here: {sorted(paths - listed)}"
