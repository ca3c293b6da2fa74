"""Fetching a feed: HTTP(S) with timeouts, retries, conditional GET and a size cap; local files too.

Every foreign error (httpx, OS) becomes one of ours at this boundary, with a message that holds
the redacted location only: partner tokens live in feed URLs and must never reach a log.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlencode, urlsplit, urlunsplit

from adapters.base import Fetched, Watermark
from exchange.errors import PayloadTooLarge, UpstreamRefused, UpstreamUnavailable

if TYPE_CHECKING:
    import httpx

__all__ = ["HttpPolicy", "fetch_url", "mask_secrets", "redact_location"]

_SECRET_QUERY_KEYS = frozenset({"tk", "token", "key", "apikey", "api_key", "access_token", "secret", "sig"})
_SECRET_SEGMENT_AFTER = frozenset({"waze-feeds", "partners", "feeds-tvt", "token", "tokens"})
_TOKENISH = re.compile(r"^(?=.*\d)[A-Za-z0-9_\-]{16,}$")
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class HttpPolicy:
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    retries: int = 3
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    max_bytes: int = 64 * 1024 * 1024
    user_agent: str = "traffic-exchange"


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
    sleep: Callable[[float], None] = time.sleep,
) -> Fetched:
    """Fetch ``url`` (http, https, file:// or a local path).

    Raises
    ------
    UpstreamUnavailable
        Connection errors, timeouts, 5xx and 429 once the retries are spent; a body that does not
        decode as its ``Content-Encoding`` says; a missing local file.
    UpstreamRefused
        Any other non-success status (401, 403, 404, ...).
    PayloadTooLarge
        The body passed ``policy.max_bytes``.
    """
    shown = redact_location(url, secrets)
    if url.startswith("file://"):
        return _read_file(Path(unquote(urlsplit(url).path)), shown, policy)
    if "://" not in url:
        return _read_file(Path(url), shown, policy)
    if not url.startswith(("http://", "https://")):
        raise UpstreamRefused(f"unsupported URL scheme in {shown}")
    return _fetch_http(url, shown, watermark, policy, transport, sleep)


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
) -> Fetched:
    import httpx

    headers = {"User-Agent": policy.user_agent, "Accept-Encoding": "gzip"}
    if watermark.etag:
        headers["If-None-Match"] = watermark.etag
    if watermark.last_modified:
        headers["If-Modified-Since"] = watermark.last_modified
    timeout = httpx.Timeout(policy.read_timeout_s, connect=policy.connect_timeout_s)
    with httpx.Client(timeout=timeout, transport=transport, follow_redirects=True, trust_env=False) as client:
        attempt = 0
        while True:
            try:
                response_or_delay = _attempt(client, url, headers, shown, policy)
            except httpx.DecodingError:
                raise UpstreamUnavailable(
                    f"{shown} sent a body that cannot be decoded as its Content-Encoding says (DecodingError)"
                ) from None
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}"
                if attempt >= policy.retries:
                    raise UpstreamUnavailable(
                        f"cannot reach {shown}: {problem} (after {attempt + 1} attempts)"
                    ) from None
                delay = _backoff(attempt, policy)
            else:
                if isinstance(response_or_delay, Fetched):
                    return response_or_delay
                status, retry_after = response_or_delay
                if attempt >= policy.retries:
                    raise UpstreamUnavailable(f"{shown} answered HTTP {status} (after {attempt + 1} attempts)")
                delay = retry_after if retry_after is not None else _backoff(attempt, policy)
            sleep(min(delay, policy.max_backoff_s))
            attempt += 1


def _attempt(
    client: httpx.Client, url: str, headers: dict[str, str], shown: str, policy: HttpPolicy
) -> Fetched | tuple[int, float | None]:
    """One request: the result, or (status, Retry-After seconds) when it is worth retrying."""
    with client.stream("GET", url, headers=headers) as response:
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
            received += len(chunk)
            if received > policy.max_bytes:
                raise PayloadTooLarge(f"{shown} sent more than the {policy.max_bytes}-byte cap")
            chunks.append(chunk)
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
