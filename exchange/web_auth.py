"""Who may open the operator map and the events API: operator tokens, HTTP Basic, a sign-in cookie.

With ``[web] access = "operator"`` (the default) ``/map`` and ``/api/*`` need an operator token
(``exchange operator add``); Waze's terms do not allow republishing crowd data to the public.
A request offers it as

- ``Authorization: Bearer <token>`` (scripts),
- HTTP Basic with the token as the password, any user name (a browser, curl ``-u x:TOKEN``),
- the ``exchange_operator`` cookie that ``POST /login`` sets (HttpOnly, Secure, SameSite=Strict).

Never in a URL: a query-string token would end in browser history, proxy logs and Referer
headers, so ``?token=`` (which partners may use on the feeds) is not read here.

The cookie is not the token: it is ``name.issued_ms.mac``, the MAC an HMAC-SHA256 keyed with the
operator's stored token hash. Only someone holding the token (or the store) can make one; any
server of the store can check one; it is refused after twelve hours (checked here, not only by the
browser), after the operator signs out (``operators.signed_out_ms``: every cookie issued before),
and once the operator is revoked or given a new token (the key changes).

The operators in force are the feed server's copy of the ``operators`` table, re-read every
``refresh_s`` (one second by default): a revocation is in force within a second, also for a
browser already signed in.

An API request without a valid token gets 401 with ``WWW-Authenticate: Bearer`` (RFC 6750; a
browser does not prompt for it, so the map's own requests never raise a password dialog); a page
(``/map``) gets 401 with the sign-in form, and a ``WWW-Authenticate`` challenge of a scheme the
browser does not act on, so the form shows rather than the browser's own password dialog.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import logging
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qs

from fastapi import HTTPException, Request
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from exchange.db import db_error_message
from exchange.errors import ExchangeError
from exchange.partners import hash_token
from exchange.runtime import now_ms

if TYPE_CHECKING:
    from collections.abc import Iterable

    from exchange.config import WebConfig

__all__ = [
    "COOKIE",
    "OPEN_ACCESS",
    "OperatorAccess",
    "login_routes",
    "may_carry_token",
    "offered_tokens",
    "require_operator",
]

log = logging.getLogger("exchange.web_auth")

#: the sign-in cookie's name
COOKIE = "exchange_operator"
#: the operator name given to requests when ``[web] access = "open"``
OPEN_ACCESS = "-"
_REALM = "traffic-exchange operators"
_COOKIE_MAX_AGE_S = 12 * 3600  # a working day: a shared browser does not stay signed in for ever


class OperatorTokens(Protocol):
    """What holds the operator tokens in force (the feed server's copy of the table)."""

    def operator_for(self, candidates: Iterable[str]) -> str | None: ...

    def operator_session(self, name: str) -> tuple[str, int | None] | None: ...

    def sign_out(self, name: str, at_ms: int) -> None: ...


class OperatorAccess:
    """The operator check of one app: its feed server's token copy and the ``[web]`` settings."""

    def __init__(self, server: OperatorTokens, web: WebConfig) -> None:
        self.server = server
        self.open = web.access == "open"
        self.secure_cookie = web.secure_cookie

    def operator(self, request: Request) -> str | None:
        """The operator the request is signed in as, :data:`OPEN_ACCESS` when none is needed, or None."""
        if self.open:
            return OPEN_ACCESS
        offered = offered_tokens(request.headers.get("authorization"), None, b"")
        found = self.server.operator_for(offered) if offered else None
        if found is None and (cookie := request.cookies.get(COOKIE)):
            found = self.session_operator(cookie)
        return found

    def session_cookie(self, name: str, token: str, issued_ms: int) -> str:
        return f"{name}.{issued_ms}.{_mac(hash_token(token), name, issued_ms)}"

    def session_operator(self, cookie: str) -> str | None:
        """The operator a sign-in cookie names, if it is still good (see the module's text)."""
        parts = cookie.rsplit(".", 2)  # the name may hold dots; the time and the MAC do not
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        name, issued_text, mac = parts
        issued_ms = int(issued_text)
        session = self.server.operator_session(name)
        if session is None:
            return None
        token_hash, signed_out_ms = session
        at = now_ms()
        if not at - _COOKIE_MAX_AGE_S * 1000 <= issued_ms <= at + 60_000:  # a minute of clock skew
            return None
        if signed_out_ms is not None and issued_ms <= signed_out_ms:
            return None
        return name if hmac.compare_digest(mac, _mac(token_hash, name, issued_ms)) else None

    def require(self, request: Request) -> str:
        """The operator, or HTTP 401 with a Bearer challenge (the API's way)."""
        name = self.operator(request)
        if name is None:
            offered = offered_tokens(request.headers.get("authorization"), None, b"")
            raise HTTPException(
                status_code=401,
                # a mistyped or revoked token is told apart from a missing one
                detail="the operator token given is not valid (unknown or revoked)" if offered else
                "an operator token is required: Authorization: Bearer <token>, HTTP Basic with the "
                "token as password, or sign in at /login",
                headers={"WWW-Authenticate": f'Bearer realm="{_REALM}"', "Cache-Control": "no-store"},
            )
        return name

    def sign_in_page(self, request: Request, message: str | None = None, status_code: int = 401,
                     kind: str = "error") -> HTMLResponse:
        """The sign-in form, answering a page the request may not see yet; ``message`` an error or a note."""
        target = _safe_next(request.url.path if request.url.path != "/login" else
                            request.query_params.get("next", "/map"))
        return HTMLResponse(
            _FORM.format(next=html.escape(target, quote=True),
                         message=(f'<p class="{kind}" id="message"{_ROLE.get(kind, "")}>{html.escape(message)}</p>'
                                  if message else ""),
                         described=' aria-describedby="message"' if message else ""),
            status_code=status_code,
            headers={
                # a scheme browsers do not prompt for: the form is the way in, Basic still works when sent
                "WWW-Authenticate": f'Form realm="{_REALM}", action="/login"',
                "Cache-Control": "no-store",
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                "frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff",
            },
        )

    # ------------------------------------------------------------------ /login, /logout

    async def login_form(self, request: Request) -> Response:
        """The form; ``?method=basic`` asks the browser's own password dialog (HTTP Basic) instead."""
        if self.operator(request) is not None:
            return RedirectResponse(_safe_next(request.query_params.get("next", "/map")), status_code=303)
        if request.query_params.get("method") == "basic":
            # /login sits at the server's root, so the browser sends the credentials it caches for
            # this realm with every later request of this server (RFC 7617, section 2.2)
            return Response("sign in with any user name and the operator token as the password\n",
                            status_code=401, media_type="text/plain",
                            headers={"WWW-Authenticate": f'Basic realm="{_REALM}", charset="UTF-8"',
                                     "Cache-Control": "no-store"})
        if request.query_params.get("signed_out"):
            return self.sign_in_page(
                request, "Signed out. If you signed in with the browser's password dialog, close the browser too: "
                "it keeps sending that token until then.", status_code=200, kind="note")
        return self.sign_in_page(request, status_code=200)

    async def login(self, request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0].strip()
        target = _safe_next((form.get("next") or ["/map"])[0])
        if self.open:
            return RedirectResponse(target, status_code=303)
        name = self.server.operator_for([token]) if token else None
        if name is None:
            return self.sign_in_page(request, "That token is not an active operator token.")
        if self.secure_cookie and request.url.scheme == "http" and not _loopback(request.url.hostname):
            # the browser would drop a Secure cookie set over plain HTTP and show this form again, silently
            return self.sign_in_page(
                request, "Your token is right, but this page is plain HTTP: browsers keep the sign-in cookie only "
                "over HTTPS. Open it over HTTPS, or (a test install only) set [web] secure_cookie = false.",
                status_code=400)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, self.session_cookie(name, token, now_ms()), max_age=_COOKIE_MAX_AGE_S,
                            path="/", httponly=True, secure=self.secure_cookie, samesite="strict")
        response.headers["Cache-Control"] = "no-store"
        return response

    async def logout(self, request: Request) -> Response:
        """Forget this browser's cookie, and refuse every cookie of this operator issued until now."""
        cookie = request.cookies.get(COOKIE)
        name = self.session_operator(cookie) if cookie and not self.open else None
        if name is not None:
            try:
                await run_in_threadpool(self.server.sign_out, name, now_ms())
            except (SQLAlchemyError, ExchangeError) as exc:  # this server refuses it already; the others may not
                log.warning("cannot record the sign-out of operator %r in the store: %s", name, db_error_message(exc))
        response = RedirectResponse("/login?signed_out=1", status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, secure=self.secure_cookie, samesite="strict")
        return response


def may_carry_token(query: bytes) -> bool:
    """Whether a query string may hold ``token=``: written plainly, or with its name percent-encoded
    (parse_qs decodes names: ``%74oken=`` is ``token=``). A cheap test before parsing, on every poll.

    >>> may_carry_token(b"format=1"), may_carry_token(b"token=x"), may_carry_token(b"%74oken=x")
    (False, True, True)
    """
    return b"=" in query and (b"token" in query or b"%" in query)


def offered_tokens(authorization: str | None, header_token: str | None, query: bytes) -> list[str]:
    """Every token a request offers: Bearer, Basic (password; user name free), header, query (feeds only)."""
    found: list[str] = []
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "bearer" and value:
            found.append(value)
        elif scheme == "basic" and value:
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            _, colon, password = decoded.partition(":")
            if colon and password:
                found.append(password)
    if header_token:
        found.append(header_token.strip())
    if may_carry_token(query):
        found.extend(t for t in parse_qs(query.decode("latin-1")).get("token", []) if t)
    return found


def require_operator(request: Request) -> str:
    """FastAPI dependency of every ``/api`` route: the operator, or 401."""
    access: OperatorAccess = request.app.state.operator_access
    return access.require(request)


def login_routes(access: OperatorAccess) -> list[Route]:
    return [
        Route("/login", access.login_form, methods=["GET"]),
        Route("/login", access.login, methods=["POST"]),
        Route("/logout", access.logout, methods=["POST"]),
    ]


def _mac(token_hash: str, name: str, issued_ms: int) -> str:
    return hmac.new(token_hash.encode("ascii"), f"{name}.{issued_ms}".encode(), hashlib.sha256).hexdigest()


def _loopback(host: str | None) -> bool:
    """Browsers keep Secure cookies from http://localhost (a secure context) but not from other plain-HTTP hosts."""
    return host in ("localhost", "127.0.0.1", "::1") or bool(host and host.endswith(".localhost"))


def _safe_next(target: str) -> str:
    """Where to go after signing in: a path of this server only (no open redirect).

    >>> _safe_next("/map?category=JAM"), _safe_next("//evil.example/"), _safe_next("https://evil.example/")
    ('/map?category=JAM', '/map', '/map')
    """
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/map"


#: how a screen reader hears the form's message: an error at once (the focused field would skip past it)
_ROLE = {"error": ' role="alert"', "note": ' role="status"'}

_FORM = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in - traffic-exchange</title>
<style>
body {{ font: 16px system-ui, sans-serif; background: #f4f5f7; margin: 0; }}
main {{ max-width: 26rem; margin: 12vh auto; background: #fff; padding: 2rem; border-radius: 8px;
        box-shadow: 0 1px 4px rgba(0,0,0,.15); }}
h1 {{ font-size: 1.3rem; margin-top: 0; }}
label {{ display: block; margin: 1rem 0 .3rem; }}
input[type=password] {{ width: 100%; box-sizing: border-box; padding: .5rem; font: inherit; }}
button {{ margin-top: 1rem; padding: .5rem 1.2rem; font: inherit; }}
.error {{ color: #b00020; }}
.note {{ color: #1b5e20; }}
.hint {{ color: #555; font-size: .9rem; }}
</style>
</head>
<body>
<main>
<h1>traffic-exchange: operator sign-in</h1>
{message}
<form method="post" action="/login">
<input type="hidden" name="next" value="{next}">
<label for="token">Operator token</label>
<input type="password" id="token" name="token" autocomplete="current-password" required autofocus{described}>
<button type="submit">Sign in</button>
</form>
<p class="hint">City IT issues tokens with <code>exchange operator add NAME</code>.
Or sign in with <a href="/login?method=basic">the browser's password dialog</a>
(any user name, the token as password).</p>
</main>
</body>
</html>
"""
