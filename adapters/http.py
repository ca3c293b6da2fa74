"""Fetching a feed: HTTP(S) with timeouts, retries, conditional GET, a size cap and a total
deadline; local files too. And the one outbound client (:func:`outbound_client`) every fetch and
webhook POST uses, honouring the proxy and CA settings of ``[http]`` and of the environment.

Every foreign error (httpx, OS) becomes one of ours at this boundary, with a message that holds
the redacted location only: partner tokens live in feed URLs and must never reach a log, nor
does a proxy's password.

A per-read timeout never ends an upstream that trickles a byte a second, so each fetch has a
deadline (``HttpPolicy.deadline_s``) bounding it whole, retries and backoff waits included, and
gives up within a fraction of a second when the process is asked to stop (``should_stop``, the
daemon's SIGTERM): :mod:`adapters.deadline`.
"""

from __future__ import annotations

import functools
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, parse_qsl, quote, quote_plus, unquote, urlencode, urljoin, urlsplit, urlunsplit

from adapters.base import Fetched, Watermark
from adapters.deadline import Guard
from exchange.errors import ConfigError, PayloadTooLarge, UpstreamRefused, UpstreamUnavailable

if TYPE_CHECKING:
    import ssl

    import httpx

    from exchange.config import HttpConfig

__all__ = ["HttpPolicy", "fetch_url", "mask_secrets", "outbound_client", "redact_location"]

_SECRET_QUERY_KEYS = frozenset({"tk", "token", "key", "apikey", "api_key", "access_token", "secret", "sig"})
_SECRET_SEGMENT_AFTER = frozenset({"waze-feeds", "partners", "feeds-tvt", "token", "tokens"})
_TOKENISH = re.compile(r"^(?=.*\d)[A-Za-z0-9_\-]{16,}$")
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True)
class HttpPolicy:
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    retries: int = 3
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    max_bytes: int = 64 * 1024 * 1024
    user_agent: str = "traffic-exchange"
    #: one whole fetch, retries and backoff waits included
    deadline_s: float = 60.0
    #: hosts besides the URL's own that a redirect may lead to (the token is never carried there)
    allow_redirect_hosts: tuple[str, ...] = ()
    max_redirects: int = 5


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each secret masked, raw and in the forms a URL gives it (percent- and form-encoded).

    >>> mask_secrets("token=a%2Fb+c, a/b c", ["a/b c"])
    'token=***, ***'
    """
    for secret in secrets:
        if secret:
            for form in sorted({secret, quote(secret), quote(secret, safe=""), quote_plus(secret)}, key=len,
                               reverse=True):
                text = text.replace(form, "***")
    return text


def redact_location(location: str, secrets: Iterable[str] = ()) -> str:
    """A URL safe to log: known secrets, token-like path segments and secret query values masked.

    >>> redact_location("https://www.waze.com/partnerhub-api/partners/123/waze-feeds/abc?format=1")
    'https://www.waze.com/partnerhub-api/partners/***/waze-feeds/***?format=1'
    """
    location = mask_secrets(location, secrets)
    if "://" not in location or location.startswith("file://"):
        return location
    parts = urlsplit(location)
    segments = parts.path.split("/")
    for position, segment in enumerate(segments):
        previous = segments[position - 1] if position else ""
        if segment and (previous in _SECRET_SEGMENT_AFTER or _TOKENISH.match(unquote(segment))):
            segments[position] = "***"
    query = urlencode(
        [
            (key, "***" if key.lower() in _SECRET_QUERY_KEYS else value)
            for key, value in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*,",
    )
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, "/".join(segments), query, ""))


def fetch_url(
    url: str,
    watermark: Watermark,
    policy: HttpPolicy,
    *,
    secrets: Iterable[str] = (),
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] | None = None,
    http: HttpConfig | None = None,
    should_stop: Callable[[], bool] | None = None,
    until: float | None = None,
) -> Fetched:
    """Fetch ``url`` (http, https, file:// or a local path).

    Parameters
    ----------
    sleep
        How to wait between attempts (tests); default: a wait that wakes when ``should_stop`` turns true.
    http
        The ``[http]`` section: proxy and CA bundle (:func:`outbound_client`).
    should_stop
        Polled about ten times a second during the fetch: true gives up at once (:class:`FetchStopped`).
    until
        ``time.monotonic()`` by which a larger fetch this one is part of must end (ArcGIS pages);
        default: now plus ``policy.deadline_s``.

    Raises
    ------
    UpstreamUnavailable
        Connection errors, timeouts, 5xx and 429 once the retries are spent; the deadline passed;
        an untrusted TLS certificate; a body that does not decode as its ``Content-Encoding``
        says; a missing local file.
    FetchStopped
        ``should_stop()`` turned true.
    UpstreamRefused
        Any other non-success status (401, 403, 404, ...).
    PayloadTooLarge
        The body passed ``policy.max_bytes``.
    ConfigError
        The CA bundle or the proxy URL cannot be used.
    """
    shown = redact_location(url, secrets)
    if url.startswith("file://"):
        return _read_file(Path(unquote(urlsplit(url).path)), shown, policy)
    if "://" not in url:
        return _read_file(Path(url), shown, policy)
    if not url.startswith(("http://", "https://")):
        raise UpstreamRefused(f"unsupported URL scheme in {shown}")
    guard = Guard(shown, policy.deadline_s, should_stop, until)
    with guard:
        return _fetch_http(url, shown, watermark, policy, transport, sleep or guard.sleep, http, guard, tuple(secrets))


def outbound_client(
    http: HttpConfig | None,
    timeout: httpx.Timeout,
    *,
    transport: httpx.BaseTransport | None = None,
    follow_redirects: bool = False,
    headers: Mapping[str, str] | None = None,
) -> httpx.Client:
    """The httpx client of every outbound request (source fetches, webhook POSTs).

    Proxy: ``http.proxy`` when set, else ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` from the
    environment; ``NO_PROXY`` exempts hosts from either. Trust: ``http.ca_bundle`` when set, else
    ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``, else the certifi bundle. A ``transport`` (tests) is
    the whole network: no proxy then.

    Raises
    ------
    ConfigError
        The CA bundle cannot be read, or the proxy URL cannot be used (its password never shown).
    """
    import httpx

    verify = _ssl_context(http)
    proxy = http.proxy if http is not None and transport is None else None
    mounts: dict[str, httpx.BaseTransport | None] | None = None
    if proxy:
        mounts = {pattern: httpx.HTTPTransport(verify=verify) for pattern in _no_proxy_patterns()}
    try:
        return httpx.Client(
            timeout=timeout, transport=transport, proxy=proxy, mounts=mounts, verify=verify, trust_env=True,
            follow_redirects=follow_redirects, headers=headers,
        )
    except (ValueError, ImportError) as exc:
        origin = "[http] proxy" if proxy else "the proxy named by HTTPS_PROXY / HTTP_PROXY / ALL_PROXY"
        reason = "needs the socksio package" if isinstance(exc, ImportError) else "is not an http(s) or socks5 URL"
        raise ConfigError(f"{origin} {_proxy_shown(proxy)}{reason}") from None


def _proxy_shown(proxy: str | None) -> str:
    return f"{redact_location(proxy)} " if proxy else ""


def _ssl_context(http: HttpConfig | None) -> ssl.SSLContext:
    import ssl

    import certifi

    if http is not None and http.ca_bundle is not None:
        origin, where, is_dir = "[http] ca_bundle", str(http.ca_bundle.expanduser()), False
    elif os.environ.get("SSL_CERT_FILE"):
        origin, where, is_dir = "SSL_CERT_FILE", os.environ["SSL_CERT_FILE"], False
    elif os.environ.get("SSL_CERT_DIR"):
        origin, where, is_dir = "SSL_CERT_DIR", os.environ["SSL_CERT_DIR"], True
    else:
        origin, where, is_dir = "the certifi bundle", certifi.where(), False
    try:
        stamp = Path(where).stat()
        return _trust(where, is_dir, (stamp.st_mtime_ns, stamp.st_size))
    except FileNotFoundError:
        raise ConfigError(f"{origin} {where}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{origin} {where}: is a directory, not a PEM file") from None
    except ssl.SSLError as exc:
        raise ConfigError(f"{origin} {where}: not a PEM file of CA certificates ({exc.reason or exc})") from None
    except OSError as exc:
        raise ConfigError(f"{origin} {where}: cannot be read: {exc.strerror or exc}") from None


@functools.lru_cache(maxsize=8)
def _trust(where: str, is_dir: bool, _stamp: tuple[int, int]) -> ssl.SSLContext:
    """One TLS context per CA file or directory as it is now (loading a bundle costs 50-100 ms a fetch)."""
    import ssl

    return ssl.create_default_context(capath=where) if is_dir else ssl.create_default_context(cafile=where)


def _no_proxy_patterns() -> list[str]:
    """httpx mount patterns of the hosts ``NO_PROXY`` exempts (as httpx reads it for the environment's proxies)."""
    value = os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or ""
    patterns = []
    for host in (part.strip() for part in value.split(",")):
        if host == "*":
            return ["all://"]
        if not host:
            continue
        if "://" in host:
            patterns.append(host)
        elif host.lower() == "localhost" or re.fullmatch(r"[\d.]+", host):
            patterns.append(f"all://{host}")
        elif ":" in host:
            patterns.append(f"all://[{host}]")
        else:
            patterns.append(f"all://*{host}")
    return patterns


def _read_file(path: Path, shown: str, policy: HttpPolicy) -> Fetched:
    try:
        size = path.stat().st_size
        body = path.read_bytes() if size <= policy.max_bytes else b""
    except FileNotFoundError:
        raise UpstreamUnavailable(f"cannot read {shown}: no such file") from None
    except IsADirectoryError:
        raise UpstreamUnavailable(f"cannot read {shown}: it is a directory") from None
    except OSError as exc:
        raise UpstreamUnavailable(f"cannot read {shown}: {exc.strerror or exc}") from exc
    if size > policy.max_bytes:
        raise PayloadTooLarge(f"{shown} is {size} bytes, over the {policy.max_bytes}-byte cap")
    return Fetched(body=body, location=shown)


def _fetch_http(
    url: str,
    shown: str,
    watermark: Watermark,
    policy: HttpPolicy,
    transport: httpx.BaseTransport | None,
    sleep: Callable[[float], None],
    http: HttpConfig | None,
    guard: Guard,
    secrets: tuple[str, ...],
) -> Fetched:
    import httpx

    headers = {"User-Agent": policy.user_agent, "Accept-Encoding": "gzip"}
    if watermark.etag:
        headers["If-None-Match"] = watermark.etag
    if watermark.last_modified:
        headers["If-Modified-Since"] = watermark.last_modified
    timeout = httpx.Timeout(policy.read_timeout_s, connect=policy.connect_timeout_s)
    with outbound_client(http, timeout, transport=transport, follow_redirects=False) as client:
        attempt = redirects = 0
        while True:
            guard.check()
            retry_after: float | None = None  # what the upstream asked for, with a 429 or 503
            try:
                response_or_delay = _attempt(client, url, headers, shown, policy, guard)
            except httpx.DecodingError:
                guard.check()
                raise UpstreamUnavailable(
                    f"{shown} sent a body that cannot be decoded as its Content-Encoding says (DecodingError)"
                ) from None
            except httpx.InvalidURL:
                raise UpstreamRefused(f"{shown} is not a valid URL") from None
            except httpx.UnsupportedProtocol:
                raise UpstreamRefused(f"unsupported URL scheme in {shown}") from None
            except httpx.TransportError as exc:
                guard.check()  # the watchdog cut the connection: say why
                problem, worth_retrying = _transport_problem(exc)
                if attempt >= policy.retries or not worth_retrying:
                    after = f" (after {attempt + 1} attempts)" if attempt else ""
                    # reached, and then its answer broke off or was no HTTP at all
                    verb = "cannot read" if isinstance(exc, httpx.RemoteProtocolError) else "cannot reach"
                    raise UpstreamUnavailable(f"{verb} {shown}: {problem}{after}") from None
                delay = _backoff(attempt, policy)
            except httpx.HTTPError as exc:  # every other httpx error: one line, never a traceback
                guard.check()
                raise UpstreamUnavailable(f"cannot read {shown}: {type(exc).__name__}") from None
            else:
                if isinstance(response_or_delay, Fetched):
                    return response_or_delay
                if isinstance(response_or_delay, _Redirect):
                    redirects += 1
                    if redirects > policy.max_redirects:
                        raise UpstreamRefused(f"{shown} redirected more than {policy.max_redirects} times (a loop?)")
                    url, same_host = _redirect_target(url, response_or_delay.location, shown, policy, secrets)
                    if not same_host:  # validators belong to the first host's representation
                        headers.pop("If-None-Match", None)
                        headers.pop("If-Modified-Since", None)
                    shown = redact_location(url, secrets)
                    continue
                status, retry_after = response_or_delay
                problem = f"HTTP {status}"
                if attempt >= policy.retries:
                    raise UpstreamUnavailable(f"{shown} answered HTTP {status} (after {attempt + 1} attempts)",
                                              retry_after)
                delay = retry_after if retry_after is not None else _backoff(attempt, policy)
            wait = min(delay, policy.max_backoff_s)
            if wait >= guard.remaining():
                raise UpstreamUnavailable(
                    f"cannot read {shown}: {problem} (after {attempt + 1} attempts), and the next try in {wait:.3g} s "
                    f"would pass the {policy.deadline_s:g}-second deadline (deadline_s)",
                    retry_after,
                )
            sleep(wait)
            attempt += 1


@dataclass(frozen=True)
class _Redirect:
    location: str


def _redirect_target(
    current: str, location: str, shown: str, policy: HttpPolicy, secrets: tuple[str, ...]
) -> tuple[str, bool]:
    """Where a redirect may lead, and whether it stays on the same host; UpstreamRefused when it may not.

    Only http(s). The same host is followed (http to https included, https to http refused: the
    token would travel in clear). Another host only when ``allow_redirect_hosts`` lists it, and
    then without the secrets: a query parameter holding one is dropped, so the token stays with
    the host it was issued for.
    """
    target = urljoin(current, location.strip())
    here, there = urlsplit(current), urlsplit(target)
    if there.scheme not in ("http", "https"):
        raise UpstreamRefused(f"{shown} redirected to a {there.scheme or 'relative'}: URL; only http(s) is followed")
    if here.scheme == "https" and there.scheme == "http":
        raise UpstreamRefused(f"{shown} redirected from https to http; refused")
    # the same server: the same host and port (http to https moves the default port with it); another
    # port of one host may be another service, so it is another host here
    same_host = (here.hostname or "").lower() == (there.hostname or "").lower() and (
        _port(here) == _port(there) or ((here.scheme, there.scheme) == ("http", "https")
        and here.port is None and there.port is None))
    if same_host:
        return target, True
    allowed = {host.lower() for host in policy.allow_redirect_hosts}
    if (there.hostname or "").lower() not in allowed:
        raise UpstreamRefused(
            f"{shown} redirected to another host ({there.hostname}); list it in allow_redirect_hosts to follow"
        )
    kept = [(key, value) for key, value in parse_qsl(there.query, keep_blank_values=True)
            if not any(secret and secret in value for secret in secrets)]
    if any(secret and secret in unquote(there.path) for secret in secrets):
        raise UpstreamRefused(f"{shown} redirected to another host ({there.hostname}) with the token in the path; "
                              "refused")
    return urlunsplit((there.scheme, there.netloc, there.path, urlencode(kept), "")), False


def _port(parts: SplitResult) -> int | None:
    return parts.port or {"http": 80, "https": 443}.get(parts.scheme)


def _transport_problem(exc: Exception) -> tuple[str, bool]:
    """What went wrong, in words safe to show, and whether trying again may help."""
    import ssl

    import httpx

    link: BaseException | None = exc
    while link is not None:
        if isinstance(link, ssl.SSLCertVerificationError):
            detail = link.verify_message or link.reason or "certificate verify failed"
            return (f"TLS certificate not trusted: {detail} (trust its CA with [http] ca_bundle or SSL_CERT_FILE)",
                    False)
        link = link.__cause__ or link.__context__
    if isinstance(exc, httpx.ProxyError):
        return f"ProxyError: the proxy answered {exc}", True
    if isinstance(exc, httpx.RemoteProtocolError):
        return "its answer broke off, or was not HTTP (RemoteProtocolError)", True
    return type(exc).__name__, True


def _attempt(
    client: httpx.Client, url: str, headers: dict[str, str], shown: str, policy: HttpPolicy, guard: Guard
) -> Fetched | _Redirect | tuple[int, float | None]:
    """One request: the result, a redirect, or (status, Retry-After seconds) when it is worth retrying."""
    import httpx

    connect = max(0.001, min(policy.connect_timeout_s, guard.remaining()))
    timeout = httpx.Timeout(policy.read_timeout_s, connect=connect)
    with client.stream("GET", url, headers=headers, timeout=timeout, extensions={"trace": guard.trace}) as response:
        if response.status_code in _REDIRECT_STATUSES and response.headers.get("Location"):
            return _Redirect(response.headers["Location"])
        if response.status_code == 304:
            return Fetched(body=None, location=shown, etag=response.headers.get("ETag"),
                           last_modified=response.headers.get("Last-Modified"))
        if response.status_code in _RETRY_STATUSES:
            return response.status_code, _retry_after(response.headers.get("Retry-After"))
        if response.status_code >= 400:
            raise UpstreamRefused(f"{shown} answered HTTP {response.status_code}")
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > policy.max_bytes:
            raise PayloadTooLarge(f"{shown} sent {declared} bytes, over the {policy.max_bytes}-byte cap")
        chunks: list[bytes] = []
        received = 0
        for chunk in response.iter_bytes():
            guard.check()
            received += len(chunk)
            if received > policy.max_bytes:
                raise PayloadTooLarge(f"{shown} sent more than the {policy.max_bytes}-byte cap")
            chunks.append(chunk)
        # a body that ends where the connection closes (HTTP/1.0, no Content-Length) also "ends" where the
        # watchdog cut it: that is the deadline, not the whole payload
        guard.check()
        return Fetched(
            body=b"".join(chunks),
            location=shown,
            etag=response.headers.get("ETag"),
            last_modified=response.headers.get("Last-Modified"),
        )


def _backoff(attempt: int, policy: HttpPolicy) -> float:
    """Exponential backoff with full jitter between half and all of the step."""
    step = min(policy.max_backoff_s, policy.backoff_s * 2.0**attempt)
    return step * random.uniform(0.5, 1.0)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())
