"""Operator sign-in over real HTTP: tokens issued by the CLI, Bearer, Basic, the sign-in form's cookie,
revocation within the refresh period, and partner tokens that are not operator tokens."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import httpx
from sqlalchemy import Engine

from exchange.config import Config, WebConfig
from exchange.server import create_app
from exchange.web_auth import COOKIE
from tests.support.helpers import Run
from tests.support.serving import now_ms, serving, wait_for


def _app(engine: Engine, access: str = "operator", secure_cookie: bool = True) -> object:
    config = Config(web=WebConfig(access=access, secure_cookie=secure_cookie))  # type: ignore[arg-type]
    return create_app(engine, require_token=True, refresh_s=0.2, config=config)


def _signed_in(http: httpx.Client, **request: object) -> bool:
    """GET /login answers 303 to the map when the request is signed in, the form (200) when not."""
    response = http.get("/login", **request)  # type: ignore[arg-type]
    if response.status_code == 303:
        assert response.headers["location"] == "/map"
        return True
    assert response.status_code == 200 and 'name="token"' in response.text
    return False


def test_operator_cli(store_cli: Callable[..., Run]) -> None:
    assert json.loads(store_cli("operator", "list", "--format", "json").out) == []
    added = store_cli("operator", "add", "jane")
    assert added.code == 0 and len(added.out.strip()) >= 40 and "cannot be shown again" in added.err
    duplicate = store_cli("operator", "add", "jane")
    assert duplicate.code == 2 and duplicate.err == ("error: operator 'jane' already exists; revoke it first to "
                                                     "issue a new token\n")
    for bad in ("-", "a:b", "has space"):
        result = store_cli("operator", "add", bad)
        assert result.code == 2 and "operator name" in result.err and result.out == "", bad
    listing = json.loads(store_cli("operator", "list", "--format", "json").out)
    assert [(o["name"], o["status"], o["revoked"]) for o in listing] == [("jane", "active", None)]
    assert store_cli("operator", "revoke", "jane").code == 0
    assert "already revoked" in store_cli("operator", "revoke", "jane").err
    unknown = store_cli("operator", "revoke", "nobody")
    assert unknown.code == 3 and unknown.err == "error: no operator named 'nobody'\n"
    assert "jane" in store_cli("operator", "list").out
    assert store_cli("operator", "--help").code == 0


def test_sign_in_by_form_bearer_basic_and_revocation(engine: Engine, store_cli: Callable[..., Run]) -> None:
    token = store_cli("operator", "add", "jane").out.strip()
    partner_token = store_cli("partner", "add", "acme").out.strip()
    with serving(_app(engine)) as url, httpx.Client(base_url=url, follow_redirects=False) as http:
        wait_for(lambda: _signed_in(http, headers={"Authorization": f"Bearer {token}"}), what="operators loaded")
        assert _signed_in(http, auth=("anyone", token))
        assert not _signed_in(http)
        assert not _signed_in(http, headers={"Authorization": "Bearer wrong"})
        # a wrong token is told apart from a missing one (found in a cold trial)
        assert http.get("/api/events", headers={"Authorization": "Bearer wrong"}).json()["detail"] == (
            "the operator token given is not valid (unknown or revoked)")
        assert http.get("/api/events").json()["detail"].startswith("an operator token is required")
        assert not _signed_in(http, headers={"Authorization": f"Bearer {partner_token}"}), \
            "a partner token polls feeds; it does not open the map"
        assert not _signed_in(http, params={"token": token}), "a token in a URL is never read"
        dialog = http.get("/login", params={"method": "basic"})
        assert dialog.status_code == 401 and dialog.headers["www-authenticate"].startswith("Basic ")
        assert http.get("/login", params={"method": "basic"}, auth=("x", token)).status_code == 303

        refused = http.post("/login", data={"token": "wrong", "next": "/map"})
        assert refused.status_code == 401 and "not an active operator token" in refused.text
        # a screen reader hears it (the autofocused field would skip past a plain paragraph): a cold trial
        assert '<p class="error" id="message" role="alert">' in refused.text
        assert 'autofocus aria-describedby="message">' in refused.text
        assert "set-cookie" not in refused.headers and "basic" not in refused.headers["www-authenticate"].lower()

        accepted = http.post("/login", data={"token": token, "next": "/map?category=JAM"})
        assert accepted.status_code == 303 and accepted.headers["location"] == "/map?category=JAM"
        assert token not in accepted.headers["location"]
        http.cookies.clear()  # each request below says what it carries
        cookie = accepted.headers["set-cookie"]
        flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
        assert cookie.startswith(f"{COOKIE}=") and {"httponly", "secure", "path", "max-age"} <= flags
        assert "samesite=strict" in cookie.lower()
        session = cookie.split(";")[0].split("=", 1)[1]
        assert token not in session and session.startswith("jane."), "the cookie is not the token"
        assert _signed_in(http, headers={"Cookie": f"{COOKIE}={session}"})
        assert not _signed_in(http, headers={"Cookie": f"{COOKIE}={token}"}), "the token is no cookie"
        forged = session[:-1] + ("0" if session[-1] != "0" else "1")
        assert not _signed_in(http, headers={"Cookie": f"{COOKIE}={forged}"})

        # an open redirect is not offered: the target stays on this server
        elsewhere = http.post("/login", data={"token": token, "next": "//evil.example/"})
        assert elsewhere.headers["location"] == "/map"

        out = http.post("/logout", headers={"Cookie": f"{COOKIE}={session}"})
        assert out.status_code == 303 and f'{COOKIE}=""' in out.headers["set-cookie"]
        assert "Signed out" in http.get(out.headers["location"]).text
        # signing out refuses the cookie on the server too, a copy kept elsewhere included
        assert not _signed_in(http, headers={"Cookie": f"{COOKIE}={session}"})
        again = http.post("/login", data={"token": token}).headers["set-cookie"].split(";")[0].split("=", 1)[1]
        assert _signed_in(http, headers={"Cookie": f"{COOKIE}={again}"}), "a new sign-in works"

        assert store_cli("operator", "revoke", "jane").code == 0
        # the server re-reads operators every refresh_s (0.2 s here, 1 s by default): the cookie dies with it
        wait_for(lambda: not _signed_in(http, headers={"Cookie": f"{COOKIE}={again}"}), timeout=2.0,
                 what="revocation")
        assert not _signed_in(http, headers={"Authorization": "Basic " + base64.b64encode(
            f"jane:{token}".encode()).decode()})


def test_a_sign_in_cookie_ends_after_twelve_hours(engine: Engine, store_cli: Callable[..., Run]) -> None:
    token = store_cli("operator", "add", "jane").out.strip()
    app = _app(engine)
    access = app.state.operator_access  # type: ignore[attr-defined]
    with serving(app) as url, httpx.Client(base_url=url, follow_redirects=False) as http:
        wait_for(lambda: _signed_in(http, headers={"Authorization": f"Bearer {token}"}), what="operators loaded")
        now = now_ms()
        for hours, good in ((0, True), (11.9, True), (12.1, False), (-1, False)):
            cookie = access.session_cookie("jane", token, round(now - hours * 3_600_000))
            assert _signed_in(http, headers={"Cookie": f"{COOKIE}={cookie}"}) is good, hours


def test_the_api_challenge_raises_no_password_dialog_and_plain_http_is_explained(
        engine: Engine, store_cli: Callable[..., Run]) -> None:
    """Trial finding: a revoked operator's map got 401 with ``WWW-Authenticate: Basic`` on its own
    requests, and the browser put up its password dialog over the page; and on a plain-HTTP host
    the Secure cookie was dropped and the form came back with no word why."""
    token = store_cli("operator", "add", "jane").out.strip()
    app = _app(engine)
    from fastapi import Depends, FastAPI

    from exchange.web_auth import require_operator

    assert isinstance(app, FastAPI)
    app.add_api_route("/api/probe", lambda: {"ok": True}, dependencies=[Depends(require_operator)])
    with serving(app) as url, httpx.Client(base_url=url, follow_redirects=False) as http:
        refused = http.get("/api/probe")
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer ")
        wait_for(lambda: _signed_in(http, headers={"Authorization": f"Bearer {token}"}), what="operators loaded")
        plain = http.post("/login", data={"token": token}, headers={"Host": "traffic.city.test"})
        assert plain.status_code == 400 and "set-cookie" not in plain.headers
        assert "plain HTTP" in plain.text and "secure_cookie" in plain.text


def test_open_access_needs_no_token_and_plain_http_cookies(engine: Engine, store_cli: Callable[..., Run]) -> None:
    with serving(_app(engine, access="open")) as url, httpx.Client(base_url=url) as http:
        assert _signed_in(http)
    token = store_cli("operator", "add", "jane").out.strip()
    with serving(_app(engine, secure_cookie=False)) as url, httpx.Client(base_url=url) as http:
        wait_for(lambda: http.post("/login", data={"token": token}).status_code == 303, what="operators loaded")
        cookie = http.post("/login", data={"token": token}).headers["set-cookie"]
        assert "secure" not in cookie.lower() and "httponly" in cookie.lower()
