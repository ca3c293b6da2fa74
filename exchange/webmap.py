"""The live operator map, ``GET /map``, and the package's static files at ``/static``.

The page is one HTML document made here (the ``[web]`` settings it needs go in a
``<script type="application/json">`` block), plus ``static/map.js`` and ``static/map.css`` and
Leaflet, vendored in ``static/vendor/leaflet/`` (see ``static/vendor/README.md``): nothing is
fetched from a CDN, and there is no build step. The script reads the events from the events API
(``/api/events``, ``/api/events/{id}``) with the browser's sign-in cookie, so the page holds no
token and no data of its own.

``/map`` needs an operator (:class:`exchange.web_auth.OperatorAccess`); without one it answers
401 with the sign-in form. ``/static`` is public: it holds code and pictures, never data (the
events API's Swagger UI files live there too, under ``static/vendor/swagger-ui/``).

The page sends a strict Content-Security-Policy: scripts, styles and requests of this server
only, images of this server, of the tile server and ``data:``. With ``tile_url`` unset, or a tile
server out of reach, the events are drawn on a plain background.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from exchange.web_auth import OPEN_ACCESS

if TYPE_CHECKING:
    from exchange.config import Config
    from exchange.web_auth import OperatorAccess

__all__ = ["REFRESH_S", "content_security_policy", "map_routes", "tile_source"]

#: how often the page reloads the events
REFRESH_S = 60


def tile_source(tile_url: str | None) -> str | None:
    """The CSP source of a tile URL template: its scheme, host (``{s}`` subdomains as ``*``) and port.

    >>> tile_source("https://tile.openstreetmap.org/{z}/{x}/{y}.png")
    'https://tile.openstreetmap.org'
    >>> tile_source("https://{s}.tiles.example.org:8443/osm/{z}/{x}/{y}.png")
    'https://*.tiles.example.org:8443'
    >>> tile_source("/tiles/{z}/{x}/{y}.png"), tile_source(None), tile_source("javascript:alert(1)")
    ("'self'", None, None)
    """
    if not tile_url:
        return None
    parts = urlsplit(tile_url.replace("{s}", "subdomain-placeholder"))
    if not parts.scheme and not parts.netloc and tile_url.startswith("/"):
        return "'self'"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.replace("subdomain-placeholder", "*")
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def content_security_policy(tile_url: str | None) -> str:
    """Only this server's scripts, styles and API; images of this server, the tile server and ``data:``.

    >>> "script-src 'self';" in content_security_policy(None)
    True
    >>> "img-src 'self' data: https://tile.openstreetmap.org;" in content_security_policy(
    ...     "https://tile.openstreetmap.org/{z}/{x}/{y}.png")
    True
    """
    images = " ".join(["'self'", "data:", *([source] if (source := tile_source(tile_url)) not in (None, "'self'")
                                            else [])])
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src {images}; connect-src 'self'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    )


def _settings(config: Config, operator: str) -> str:
    """The page's settings as JSON that is safe inside a ``<script>`` block."""
    web = config.web
    tiles = web.tile_url if tile_source(web.tile_url) is not None else None
    text = json.dumps({
        "tile_url": tiles,
        "tile_attribution": web.tile_attribution,
        "timezone": config.timezone,
        "refresh_s": REFRESH_S,
        "operator": operator,
    })
    # "</script>" or "<!--" in a value must not end the block: JSON allows \u003c for "<"
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _who(operator: str) -> str:
    """Who is signed in, with the sign-out button; with ``[web] access = "open"`` nobody is."""
    if operator == OPEN_ACCESS:
        return '<span class="who">Open access (<code>[web] access = "open"</code>)</span>'
    return ('<form method="post" action="/logout" class="signout">\n'
            f'    <span class="who">Signed in as <strong>{html.escape(operator)}</strong></span>\n'
            '    <button type="submit">Sign out</button>\n  </form>')


def map_routes(config: Config) -> list[BaseRoute]:
    """``GET /map`` and the ``/static`` mount, for :func:`exchange.server.create_app`."""
    policy = content_security_policy(config.web.tile_url)

    async def operator_map(request: Request) -> Response:
        access: OperatorAccess = request.app.state.operator_access
        operator = access.operator(request)
        if operator is None:
            return access.sign_in_page(request)
        return HTMLResponse(
            _PAGE.format(settings=_settings(config, operator), who=_who(operator)),
            headers={
                "Content-Security-Policy": policy,
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "same-origin",
            },
        )

    return [
        Route("/map", operator_map, methods=["GET"], name="map"),
        Mount("/static", app=StaticFiles(packages=[("exchange", "static")]), name="static"),
    ]


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Live map - traffic-exchange</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/vendor/leaflet/leaflet.css">
<link rel="stylesheet" href="/static/map.css">
<script type="application/json" id="map-settings">{settings}</script>
</head>
<body>
<header class="topbar">
  <h1>traffic-exchange <span class="subtitle">live operator map</span></h1>
  <p id="counter" class="counter" role="status" aria-live="polite">Loading events…</p>
  <p id="updated" class="updated"></p>
  {who}
</header>
<div class="layout">
  <aside class="sidebar" aria-label="Filters and city closures">
    <form id="filters" class="filters">
      <fieldset>
        <legend>Source</legend>
        <label for="origin">Origin</label>
        <select id="origin" name="origin">
          <option value="">Waze and city</option>
          <option value="crowd">Waze (crowd) only</option>
          <option value="city">City closures only</option>
        </select>
        <label for="status">Status</label>
        <select id="status" name="status">
          <option value="active" selected>Active</option>
          <option value="planned">Planned (city, not started)</option>
          <option value="ended">Ended</option>
          <option value="cancelled">Cancelled</option>
          <option value="">Any</option>
        </select>
        <label for="window">Updated within</label>
        <select id="window" name="window">
          <option value="3600">last hour</option>
          <option value="21600">last 6 hours</option>
          <option value="86400">last 24 hours</option>
          <option value="" selected>any time</option>
        </select>
      </fieldset>
      <fieldset id="categories">
        <legend>Categories</legend>
      </fieldset>
    </form>
    <section class="closures" aria-labelledby="closures-title">
      <h2 id="closures-title">City closures</h2>
      <ul id="closures"></ul>
    </section>
  </aside>
  <main class="mapwrap">
    <div id="map" role="region" aria-label="Map of traffic events"></div>
    <details class="legend" open>
      <summary>Legend</summary>
      <ul id="legend"></ul>
    </details>
    <p id="notice" class="notice" hidden></p>
  </main>
  <aside id="detail" class="detail" aria-label="Event details" aria-live="polite" hidden>
    <button type="button" id="detail-close" class="close" aria-label="Close the details">×</button>
    <div id="detail-body"></div>
  </aside>
</div>
<script src="/static/vendor/leaflet/leaflet.js"></script>
<script src="/static/map.js"></script>
</body>
</html>
"""
