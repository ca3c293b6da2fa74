"""Fetching against a real HTTP server on localhost: retries, Retry-After, ETag, size cap, redaction."""

from __future__ import annotations

import gzip
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from adapters.base import Watermark
from adapters.http import HttpPolicy, fetch_url, redact_location
from adapters.waze import WazeFeedAdapter
from exchange.errors import PayloadTooLarge, UpstreamRefused, UpstreamUnavailable
from tests.support.helpers import QuietHandler, http_server

BODY = b'{"alerts": [], "startTimeMillis": 1772463600000}'


@dataclass
class Script:
    """What the server answers, in order; the last answer repeats."""

    answers: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)


class _Handler(QuietHandler):
    script: Script

    def do_GET(self) -> None:
        self.script.requests.append(dict(self.headers))
        self.script.paths.append(self.path)
        index = min(len(self.script.requests) - 1, len(self.script.answers) - 1)
        status, headers, body = self.script.answers[index]
        if status == 200 and headers.get("ETag") and self.headers.get("If-None-Match") == headers["ETag"]:
            status, body = 304, b""
        self.answer(status, body, headers)


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()
    with http_server(type("Handler", (_Handler,), {"script": script})) as url:
        yield url, script


FAST = HttpPolicy(retries=3, backoff_s=0.01, max_backoff_s=0.05, connect_timeout_s=2, read_timeout_s=2)


def test_plain_fetch(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(200, {"ETag": '"v1"', "Last-Modified": "Mon, 02 Mar 2026 15:00:00 GMT"}, BODY)]
    fetched = fetch_url(f"{url}/feed?format=1", Watermark(), FAST)
    assert fetched.body == BODY and fetched.etag == '"v1"'
    assert fetched.last_modified == "Mon, 02 Mar 2026 15:00:00 GMT"


def test_gzip_bodies_are_decoded(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(200, {"Content-Encoding": "gzip"}, gzip.compress(BODY))]
    assert fetch_url(url, Watermark(), FAST).body == BODY


def test_conditional_get_returns_not_modified(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(200, {"ETag": '"v1"'}, BODY)]
    first = fetch_url(url, Watermark(), FAST)
    second = fetch_url(url, Watermark(etag=first.etag, last_modified="Mon, 02 Mar 2026 15:00:00 GMT"), FAST)
    assert second.body is None
    assert script.requests[1]["If-None-Match"] == '"v1"'
    assert script.requests[1]["If-Modified-Since"] == "Mon, 02 Mar 2026 15:00:00 GMT"


def test_5xx_is_retried_with_backoff(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(503, {}, b"busy"), (502, {}, b"busy"), (200, {}, BODY)]
    waits: list[float] = []
    fetched = fetch_url(url, Watermark(), FAST, sleep=waits.append)
    assert fetched.body == BODY and len(script.requests) == 3
    assert len(waits) == 2 and all(0 < wait <= FAST.max_backoff_s for wait in waits)


def test_429_honours_retry_after(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(429, {"Retry-After": "7"}, b""), (200, {}, BODY)]
    waits: list[float] = []
    policy = HttpPolicy(retries=2, backoff_s=0.01, max_backoff_s=30)
    assert fetch_url(url, Watermark(), policy, sleep=waits.append).body == BODY
    assert waits == [7.0]


def test_retries_run_out(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(500, {}, b"down")]
    with pytest.raises(UpstreamUnavailable, match=r"HTTP 500 \(after 4 attempts\)"):
        fetch_url(url, Watermark(), FAST, sleep=lambda _s: None)
    assert len(script.requests) == 4


def test_client_errors_are_not_retried(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(403, {}, b"forbidden")]
    with pytest.raises(UpstreamRefused, match="HTTP 403"):
        fetch_url(url, Watermark(), FAST)
    assert len(script.requests) == 1


def test_size_cap(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(200, {}, b"x" * 5000)]
    with pytest.raises(PayloadTooLarge, match="4096-byte cap"):
        fetch_url(url, Watermark(), HttpPolicy(max_bytes=4096))


def test_unreachable_upstream_is_retried_then_reported() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    waits: list[float] = []
    with pytest.raises(UpstreamUnavailable, match="ConnectError"):
        fetch_url(f"http://127.0.0.1:{port}/feed", Watermark(), FAST, sleep=waits.append)
    assert len(waits) == FAST.retries


def test_the_partner_token_never_shows(server: tuple[str, Script], monkeypatch: pytest.MonkeyPatch) -> None:
    url, script = server
    token = "s3cr3t-T0KEN-value-42"
    monkeypatch.setenv("WAZE_TOKEN", token)
    script.answers = [(401, {}, b"bad token")]
    source = WazeFeedAdapter("waze", {
        "url": f"{url}/partnerhub-api/partners/11/waze-feeds/{{token}}?format=1", "token_env": "WAZE_TOKEN",
        "retries": 0,
    })
    with pytest.raises(UpstreamRefused) as caught:
        source.fetch(Watermark())
    assert token in script.paths[0], "the real token was sent"
    assert token not in str(caught.value) and "***" in str(caught.value)
    assert token not in source.location


def test_redaction_of_legacy_and_query_tokens() -> None:
    assert "ccp_partner" not in redact_location("https://na-georss.waze.com/rtserver/web/TGeoRSS?tk=ccp_partner&format=JSON")
    assert redact_location("https://x.org/f?token=abc&format=1") == "https://x.org/f?token=***&format=1"
    assert redact_location("https://user:pw@x.org/feed") == "https://x.org/feed"


def test_local_files_and_file_urls(tmp_path: Path) -> None:
    path = tmp_path / "poll.json"
    path.write_bytes(BODY)
    assert fetch_url(str(path), Watermark(), FAST).body == BODY
    assert fetch_url(path.as_uri(), Watermark(), FAST).body == BODY
    with pytest.raises(UpstreamUnavailable, match="no such file"):
        fetch_url(str(tmp_path / "missing.json"), Watermark(), FAST)
    with pytest.raises(PayloadTooLarge):
        fetch_url(str(path), Watermark(), HttpPolicy(max_bytes=10))


def test_a_body_that_does_not_decode_is_a_failed_fetch() -> None:
    """``httpx.DecodingError`` through the ``transport=`` seam: a body declared gzip that is not."""
    import httpx

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=b"this is not gzip")

    policy = HttpPolicy(retries=2)
    with pytest.raises(UpstreamUnavailable, match=r"^https://feed\.example/x sent a body that cannot be decoded"):
        fetch_url("https://feed.example/x", Watermark(), policy, transport=httpx.MockTransport(handler),
                  sleep=lambda _: pytest.fail("a body that does not decode is not retried"))


# --------------------------------------------------------------------------- redirects (issue 17, item 1)


def _redirecting(location: str) -> tuple[int, dict[str, str], bytes]:
    return 302, {"Location": location}, b""


def test_a_redirect_loop_is_a_failed_fetch(server: tuple[str, Script]) -> None:
    """Finding: a redirect loop escaped as ``httpx.TooManyRedirects``, a traceback with no run recorded."""
    url, script = server
    script.answers = [_redirecting("/feed")]
    with pytest.raises(UpstreamRefused, match=r"redirected more than 5 times \(a loop\?\)$"):
        fetch_url(f"{url}/feed", Watermark(), FAST)
    assert len(script.paths) == 6


def test_redirects_on_the_same_host_are_followed_elsewhere_only_when_allowed(server: tuple[str, Script]) -> None:
    """Finding: httpx followed any redirect to any host, with the query token the Location carried."""
    url, script = server
    port = url.rsplit(":", 1)[1]
    script.answers = [_redirecting("/moved?format=1&token=s3cret"), (200, {}, BODY)]
    assert fetch_url(f"{url}/feed?token=s3cret", Watermark(), FAST, secrets=["s3cret"]).body == BODY
    assert script.paths == ["/feed?token=s3cret", "/moved?format=1&token=s3cret"]

    # localhost is another host name than 127.0.0.1: refused unless listed, and then without the token
    script.answers, script.paths = [_redirecting(f"http://localhost:{port}/cdn?format=1&token=s3cret"),
                                    (200, {}, BODY)], []
    script.requests = []
    with pytest.raises(UpstreamRefused, match=r"redirected to another host \(localhost\); list it in "
                                              r"allow_redirect_hosts"):
        fetch_url(f"{url}/feed?token=s3cret", Watermark(), FAST, secrets=["s3cret"])
    assert len(script.paths) == 1

    script.answers, script.paths = [_redirecting(f"http://localhost:{port}/cdn?format=1&token=s3cret"),
                                    (200, {}, BODY)], []
    script.requests = []
    allowed = HttpPolicy(retries=0, allow_redirect_hosts=("LOCALHOST",))
    assert fetch_url(f"{url}/feed?token=s3cret", Watermark(), allowed, secrets=["s3cret"]).body == BODY
    assert script.paths == ["/feed?token=s3cret", "/cdn?format=1"], "the token stays with its own host"

    script.answers, script.paths, script.requests = [_redirecting(f"http://localhost:{port}/s3cret/feed")], [], []
    with pytest.raises(UpstreamRefused, match="with the token in the path"):
        fetch_url(f"{url}/feed", Watermark(), allowed, secrets=["s3cret"])

    # trial finding: another port of the same host was taken for the same server, the token carried there
    script.answers, script.paths, script.requests = [_redirecting("http://127.0.0.1:9/feed?token=s3cret")], [], []
    with pytest.raises(UpstreamRefused, match=r"redirected to another host \(127\.0\.0\.1\)"):
        fetch_url(f"{url}/feed?token=s3cret", Watermark(), FAST, secrets=["s3cret"])


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://127.0.0.1/feed", "gopher://x/"])
def test_a_redirect_to_another_scheme_is_refused(server: tuple[str, Script], location: str) -> None:
    """Finding: a redirect to ``file://`` escaped as an httpx error (UnsupportedProtocol), retried, no clear line."""
    url, script = server
    script.answers = [_redirecting(location)]
    with pytest.raises(UpstreamRefused, match=r"redirected to a \w+: URL; only http\(s\) is followed"):
        fetch_url(f"{url}/feed", Watermark(), FAST)


def test_https_to_http_and_http_to_https_on_one_host() -> None:
    """http to https on one host is followed; https to http (the token in clear) was followed too, now refused."""
    import httpx

    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.scheme == "http":
            return httpx.Response(301, headers={"Location": "https://feed.example/x"})
        if request.url.path == "/down":
            return httpx.Response(302, headers={"Location": "http://feed.example/x"})
        return httpx.Response(200, content=BODY)

    transport = httpx.MockTransport(handler)
    assert fetch_url("http://feed.example/x", Watermark(), FAST, transport=transport).body == BODY
    assert seen == ["http://feed.example/x", "https://feed.example/x"]
    with pytest.raises(UpstreamRefused, match="redirected from https to http; refused"):
        fetch_url("https://feed.example/down", Watermark(), FAST, transport=transport)


@pytest.mark.parametrize("error", ["ReadError", "RemoteProtocolError", "LocalProtocolError", "ProxyError",
                                   "WriteError", "PoolTimeout", "UnsupportedProtocol", "InvalidURL",
                                   "TooManyRedirects", "DecodingError"])
def test_every_httpx_error_is_one_line(error: str) -> None:
    """Every httpx error class through the ``transport=`` seam: a failed fetch with one line, no traceback."""
    import httpx

    def handler(request: httpx.Request) -> httpx.Response:
        cls = getattr(httpx, error)
        if issubclass(cls, httpx.RequestError) or cls is httpx.TooManyRedirects:
            raise cls("boom", request=request)
        raise cls("boom")

    with pytest.raises((UpstreamUnavailable, UpstreamRefused)) as caught:
        fetch_url("https://feed.example/x", Watermark(), HttpPolicy(retries=0), transport=httpx.MockTransport(handler))
    assert "\n" not in str(caught.value) and "feed.example" in str(caught.value)


def test_the_token_is_encoded_where_it_goes_in_the_url() -> None:
    """Trial finding: ``{token}`` was put in the URL as it was: '+' became a space, '&' split the
    parameter and '/' added a path segment."""
    source = WazeFeedAdapter("w", {"url": "https://feed.example/{token}/x?token={token}", "token_env": "T"})
    assert source.url("S3cr+t/Tok=en&x") == "https://feed.example/S3cr%2Bt%2FTok%3Den%26x/x?token=S3cr%2Bt%2FTok%3Den%26x"
