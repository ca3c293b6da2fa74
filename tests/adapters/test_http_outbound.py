"""Outbound HTTP honours the city's network: a forward proxy on localhost (from the environment or
``[http] proxy``), and a local HTTPS server whose certificate comes from a test CA (trusted through
``SSL_CERT_FILE`` or ``[http] ca_bundle``, refused without them)."""

from __future__ import annotations

import base64
import logging
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest
import trustme

from adapters import build_source
from adapters.base import Watermark
from adapters.http import HttpPolicy, fetch_url, outbound_client
from exchange.config import HttpConfig, SourceConfig
from exchange.errors import ConfigError, UpstreamUnavailable
from tests.support.helpers import QuietHandler, http_server

BODY = b'{"alerts": [], "startTimeMillis": 1772463600000}'
FAST = HttpPolicy(retries=0, connect_timeout_s=2, read_timeout_s=2, deadline_s=5)
PASSWORD = "pr0xy-S3cret"
ENVIRONMENT = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test states the proxy and trust variables it means (this machine sets SSL_CERT_FILE)."""
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


class _Origin(QuietHandler):
    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.answer(200, BODY)


class _ForwardProxy(QuietHandler):
    """A forward proxy for http:// URLs: takes the absolute-URI request and relays it, directly."""

    seen: list[tuple[str, str | None]]

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Proxy-Authorization")))
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with direct.open(self.path, timeout=5) as relayed:
                status, body = relayed.status, relayed.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        except OSError:
            status, body = 502, b"bad gateway"
        self.answer(status, body, {"Via": "1.1 test-proxy"})


@pytest.fixture
def origin() -> Iterator[tuple[str, list[str]]]:
    hits: list[str] = []
    with http_server(type("Origin", (_Origin,), {"hits": hits})) as url:
        yield url, hits


@pytest.fixture
def proxy() -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    seen: list[tuple[str, str | None]] = []
    with http_server(type("Proxy", (_ForwardProxy,), {"seen": seen})) as url:
        yield url, seen


def _dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_environment_proxy_is_used(
    origin: tuple[str, list[str]], proxy: tuple[str, list[tuple[str, str | None]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    (origin_url, hits), (proxy_url, seen) = origin, proxy
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    assert fetch_url(f"{origin_url}/feed?format=1", Watermark(), FAST).body == BODY
    assert seen == [(f"{origin_url}/feed?format=1", None)] and hits == ["/feed?format=1"]


def test_no_proxy_exempts_a_host(
    origin: tuple[str, list[str]], proxy: tuple[str, list[tuple[str, str | None]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    (origin_url, hits), (proxy_url, seen) = origin, proxy
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    monkeypatch.setenv("NO_PROXY", "example.org, 127.0.0.1")
    assert fetch_url(origin_url, Watermark(), FAST).body == BODY
    assert fetch_url(origin_url, Watermark(), FAST, http=HttpConfig(proxy=proxy_url)).body == BODY
    assert seen == [] and len(hits) == 2


def test_the_configured_proxy_wins_over_the_environment(
    origin: tuple[str, list[str]], proxy: tuple[str, list[tuple[str, str | None]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    (origin_url, hits), (proxy_url, seen) = origin, proxy
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{_dead_port()}")  # would fail if it were used
    with_password = proxy_url.replace("http://", f"http://city:{PASSWORD}@")
    source = build_source(SourceConfig(name="waze", url=f"{origin_url}/feed", retries=0),  # type: ignore[call-arg]
                          http=HttpConfig(proxy=with_password))
    assert source.fetch(Watermark()).body == BODY
    assert seen == [(f"{origin_url}/feed", "Basic " + base64.b64encode(f"city:{PASSWORD}".encode()).decode())]
    assert hits == ["/feed"]


def test_a_proxy_password_never_shows(
    proxy: tuple[str, list[tuple[str, str | None]]], caplog: pytest.LogCaptureFixture
) -> None:
    proxy_url, seen = proxy
    with_password = proxy_url.replace("http://", f"http://city:{PASSWORD}@")
    target = f"http://127.0.0.1:{_dead_port()}/feed"
    # httpx's own level too: a CLI set-up earlier in the process keeps the libraries at WARNING
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="httpx"), \
            caplog.at_level(logging.DEBUG, logger="httpcore"), pytest.raises(UpstreamUnavailable) as caught:
        fetch_url(target, Watermark(), FAST, http=HttpConfig(proxy=with_password))
    assert str(caught.value) == f"{target} answered HTTP 502 (after 1 attempts)" and len(seen) == 1
    assert caplog.records and PASSWORD not in caplog.text
    bad = HttpConfig(proxy=f"ftp://city:{PASSWORD}@proxy.example:21")
    with pytest.raises(ConfigError) as refused:
        outbound_client(bad, httpx.Timeout(1))
    assert str(refused.value) == "[http] proxy ftp://proxy.example:21 is not an http(s) or socks5 URL"


def test_outbound_client_posts_through_the_proxy(
    proxy: tuple[str, list[tuple[str, str | None]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client a webhook POST uses takes the same route (the proxy answers 501 to a POST: it only relays GET)."""
    proxy_url, _seen = proxy
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{_dead_port()}")
    with outbound_client(HttpConfig(proxy=proxy_url), httpx.Timeout(2)) as client:
        response = client.post("http://hooks.invalid/notify", json={"state": "Offline"})
    assert response.status_code == 501  # http.server's answer for a method the proxy has no handler for


# --------------------------------------------------------------------------- TLS with a private CA


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@contextmanager
def https_server(handler: type[BaseHTTPRequestHandler], ca: trustme.CA) -> Iterator[str]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    with http_server(handler, tls=context) as url:
        yield url


@pytest.fixture
def secure(ca: trustme.CA, tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    hits: list[str] = []
    pem = tmp_path / "city-ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    with https_server(type("Origin", (_Origin,), {"hits": hits}), ca) as url:
        yield url, pem, hits


def test_an_untrusted_certificate_is_one_clear_line(secure: tuple[str, Path, list[str]]) -> None:
    url, _pem, hits = secure
    policy = HttpPolicy(retries=3, backoff_s=5, connect_timeout_s=2, read_timeout_s=2)
    with pytest.raises(UpstreamUnavailable) as caught:
        fetch_url(f"{url}/feed", Watermark(), policy, sleep=lambda _s: pytest.fail("a certificate is not retried"))
    assert str(caught.value) == (
        f"cannot reach {url}/feed: TLS certificate not trusted: unable to get local issuer certificate "
        "(trust its CA with [http] ca_bundle or SSL_CERT_FILE)"
    )
    assert hits == []


def test_ssl_cert_file_is_honoured(secure: tuple[str, Path, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    url, pem, hits = secure
    monkeypatch.setenv("SSL_CERT_FILE", str(pem))
    assert fetch_url(f"{url}/feed", Watermark(), FAST).body == BODY and hits == ["/feed"]


def test_ssl_cert_dir_is_honoured(
    secure: tuple[str, Path, list[str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url, pem, _hits = secure
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed to name the certificate by its subject hash")
    subject_hash = subprocess.run([openssl, "x509", "-hash", "-noout", "-in", str(pem)], capture_output=True,
                                  text=True, check=True).stdout.strip()
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / f"{subject_hash}.0").write_text(pem.read_text())
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "certs"))
    assert fetch_url(url, Watermark(), FAST).body == BODY


def test_the_configured_ca_bundle_wins(secure: tuple[str, Path, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    url, pem, hits = secure
    monkeypatch.setenv("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")  # the system's: no test CA in it
    source = build_source(SourceConfig(name="city", url=url, retries=0), http=HttpConfig(ca_bundle=pem))  # type: ignore[call-arg]
    assert source.fetch(Watermark()).body == BODY and hits == ["/"]
    with pytest.raises(UpstreamUnavailable, match="TLS certificate not trusted"):
        fetch_url(url, Watermark(), FAST)


def test_a_ca_bundle_that_cannot_be_used_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError, match=rf"^\[http\] ca_bundle {missing}: no such file$"):
        fetch_url("https://127.0.0.1:9/", Watermark(), FAST, http=HttpConfig(ca_bundle=missing))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    monkeypatch.setenv("SSL_CERT_FILE", str(garbage))
    with pytest.raises(ConfigError, match=rf"^SSL_CERT_FILE {garbage}: not a PEM file of CA certificates"):
        fetch_url("https://127.0.0.1:9/", Watermark(), FAST)


class _SilentOrigin(QuietHandler):
    done: threading.Event

    def do_GET(self) -> None:
        self.done.wait(10)


def test_a_silent_https_upstream_is_cut_off_at_the_deadline(ca: trustme.CA, tmp_path: Path) -> None:
    """The watchdog's cut works under TLS too (it shuts the socket beneath the TLS layer down)."""
    pem = tmp_path / "city-ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    handler = type("Silent", (_SilentOrigin,), {"done": threading.Event()})
    with https_server(handler, ca) as url:
        started = time.monotonic()
        try:
            with pytest.raises(UpstreamUnavailable, match=r"0\.5-second deadline"):
                fetch_url(url, Watermark(), HttpPolicy(read_timeout_s=10, deadline_s=0.5),
                          http=HttpConfig(ca_bundle=pem))
        finally:
            handler.done.set()
    assert time.monotonic() - started < 1.5
