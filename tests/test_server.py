"""The feed server over real HTTP: uvicorn on a free port, httpx as the partner.

Publications are written the way the publish step writes them (``publication_row`` +
``save_publications`` in one transaction); partners are managed through the CLI.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine

from adapters.sinks import FileSink
from exchange.db import open_store
from exchange.errors import UsageError
from exchange.publications import (
    FEED_CONTENT_TYPES,
    FEEDS,
    etag_for,
    gzip_body,
    publication_row,
)
from exchange.redaction import redact_query_tokens
from exchange.server import accepts_gzip, create_app
from tests.support.helpers import Run
from tests.support.paths import ROOT
from tests.support.serving import (
    GZIP,
    PLAIN,
    bodies,
    now_ms,
    publish,
    running,
    serving,
    stored_counts,
    stored_downloads,
    stored_last_ms,
    wait_for,
)

# --------------------------------------------------------------------------- publication rows


def test_publication_row_renders_once_and_deterministically() -> None:
    body = b"<incidents/>" * 100
    row = publication_row("cifs.xml", body, FEED_CONTENT_TYPES["cifs.xml"], 3, 1_772_463_600_000)
    assert row["etag"] == etag_for(body) and row["etag"].startswith('"') and len(row["etag"]) <= 80
    assert gzip.decompress(row["body_gzip"]) == body
    again = publication_row("cifs.xml", body, FEED_CONTENT_TYPES["cifs.xml"], 3, 1_772_463_700_000)
    assert again["body_gzip"] == row["body_gzip"] and again["etag"] == row["etag"], "same bytes, same validators"
    assert publication_row("cifs.xml", body + b" ", "x", 3, 0)["etag"] != row["etag"]
    with pytest.raises(ValueError, match="unknown feed"):
        publication_row("cifs.csv", body, "text/csv", 1, 0)
    assert set(FEEDS) == {"cifs.xml", "cifs.json", "wzdx.geojson", "datex2.xml", "cwz.geojson"}


def test_header_helpers() -> None:
    assert accepts_gzip("gzip") and accepts_gzip("deflate, gzip;q=0.5") and accepts_gzip("*")
    assert not accepts_gzip("identity") and not accepts_gzip("gzip;q=0") and not accepts_gzip("br, *;q=0")
    assert redact_query_tokens("/feeds/cifs.xml?token=abc") == "/feeds/cifs.xml?token=***"


# --------------------------------------------------------------------------- serving


def test_feeds_validators_gzip_and_head(engine: Engine) -> None:
    published_ms = now_ms() - 120_000
    content = bodies(1)
    etags = publish(engine, content, at_ms=published_ms)
    with running(engine, require_token=False, refresh_s=0.05) as url, httpx.Client(base_url=url) as http:
        for name in FEEDS:
            response = http.get(f"/feeds/{name}", headers=PLAIN)
            assert response.status_code == 200, response
            assert response.content == content[name]
            assert response.headers["content-type"] == FEED_CONTENT_TYPES[name]
            assert response.headers["etag"] == etags[name]
            assert response.headers["last-modified"] == formatdate(published_ms // 1000, usegmt=True)
            assert response.headers["cache-control"] == "public, max-age=60"
            assert response.headers["vary"] == "Accept-Encoding"
            assert response.headers["content-length"] == str(len(content[name]))
            assert "content-encoding" not in response.headers
        assert FEED_CONTENT_TYPES == {"cifs.xml": "application/xml; charset=utf-8", "cifs.json": "application/json",
                                      "wzdx.geojson": "application/geo+json",
                                      "datex2.xml": "application/xml; charset=utf-8",
                                      "cwz.geojson": "application/geo+json"}

        path, etag = "/feeds/cifs.xml", etags["cifs.xml"]
        last_modified = formatdate(published_ms // 1000, usegmt=True)
        for tags in (etag, f"W/{etag}", f'"nope", {etag}', "*", etag[:-1] + '-gzip"'):
            response = http.get(path, headers={**PLAIN, "If-None-Match": tags})
            assert response.status_code == 304, tags
            assert response.content == b"" and response.headers["etag"] == etag
            assert response.headers["last-modified"] == last_modified
            assert response.headers["cache-control"] == "public, max-age=60"
        assert http.get(path, headers={**PLAIN, "If-None-Match": '"other"'}).status_code == 200
        # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2)
        future = formatdate(time.time() + 3600, usegmt=True)
        assert http.get(path, headers={**PLAIN, "If-None-Match": '"other"', "If-Modified-Since": future}
                        ).status_code == 200

        assert http.get(path, headers={**PLAIN, "If-Modified-Since": last_modified}).status_code == 304
        assert http.get(path, headers={**PLAIN, "If-Modified-Since": future}).status_code == 304
        earlier = formatdate(published_ms // 1000 - 1, usegmt=True)
        assert http.get(path, headers={**PLAIN, "If-Modified-Since": earlier}).status_code == 200
        assert http.get(path, headers={**PLAIN, "If-Modified-Since": "yesterday"}).status_code == 200

        with http.stream("GET", path, headers=GZIP) as response:
            raw = b"".join(response.iter_raw())
        assert response.status_code == 200 and response.headers["content-encoding"] == "gzip"
        assert gzip.decompress(raw) == content["cifs.xml"] and len(raw) < len(content["cifs.xml"])
        assert response.headers["etag"] == etag[:-1] + '-gzip"' and response.headers["content-length"] == str(len(raw))
        gz = http.get(path, headers={"Accept-Encoding": "br, gzip;q=0.5"})
        assert gz.content == content["cifs.xml"] and gz.headers["content-encoding"] == "gzip"
        assert "content-encoding" not in http.get(path, headers={"Accept-Encoding": "gzip;q=0"}).headers
        not_modified = http.get(path, headers={**GZIP, "If-None-Match": etag})
        assert not_modified.status_code == 304 and not_modified.headers["etag"] == etag[:-1] + '-gzip"'

        head = http.head(path, headers=PLAIN)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(content["cifs.xml"])) and head.headers["etag"] == etag
        head_gz = http.head(path, headers=GZIP)
        assert head_gz.headers["content-encoding"] == "gzip" and head_gz.headers["content-length"] == str(len(raw))

        assert http.post(path).status_code == 405
        assert http.get("/feeds/other.xml").status_code == 404

        health = http.get("/health")
        assert health.status_code == 200 and health.headers["cache-control"] == "no-store"
        report = health.json()
        assert report["status"] == "ok" and report["tokens_required"] is False
        assert report["feeds"]["cifs.xml"] == {
            "etag": etag, "published_ms": published_ms, "published": report["feeds"]["cifs.xml"]["published"],
            "events": 7, "bytes": len(content["cifs.xml"]), "gzip_bytes": len(raw),
        }


def test_unpublished_then_published(engine: Engine) -> None:
    with running(engine, require_token=False, refresh_s=0.05) as url, \
            httpx.Client(base_url=url, headers=PLAIN) as http:
        health = http.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "unpublished"
        assert health.json()["feeds"] == dict.fromkeys(FEEDS)
        missing = http.get("/feeds/cifs.xml")
        assert missing.status_code == 503 and missing.headers["retry-after"] == "60"

        etags = publish(engine, bodies(1))
        wait_for(lambda: http.get("/feeds/cifs.xml").status_code == 200, what="first publication")
        assert http.get("/health").status_code == 200
        etags2 = publish(engine, bodies(2))
        assert etags2 != etags
        wait_for(lambda: http.get("/feeds/wzdx.geojson").headers["etag"] == etags2["wzdx.geojson"],
                 what="second publication")
        assert http.get("/feeds/cifs.json").content == bodies(2)["cifs.json"]
    assert stored_downloads(engine)[("-", "cifs.xml")] >= 1, "unpublished polls are not counted, served ones are"


def test_tokens_revocation_and_counts(engine: Engine, store_cli: Callable[..., Run]) -> None:
    publish(engine, bodies(1))
    added = store_cli("partner", "add", "acme")
    assert added.code == 0, added
    token = added.out.strip()
    assert len(token) >= 40 and added.out == token + "\n" and "cannot be shown again" in added.err
    assert "take it within their refresh period" in added.err  # a new token is refused for up to a second
    assert token not in json.dumps(store_cli("partner", "list", "--format", "json").out)

    refresh_s = 0.1
    with running(engine, require_token=True, refresh_s=refresh_s, flush_s=0.2) as url, \
            httpx.Client(base_url=url, headers=PLAIN) as http:
        path = "/feeds/cifs.xml"
        refused = http.get(path)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == 'Basic realm="traffic-exchange"'
        assert refused.text.startswith("a partner token is required")
        wrong = http.get(path, headers={"Authorization": "Bearer wrong"})
        # a mistyped or revoked token is told apart from a missing one (found in a cold trial)
        assert wrong.status_code == 401 and wrong.text.startswith("the partner token given is not valid")
        assert http.get(path, params={"token": "wrong"}).status_code == 401
        assert http.get(path, auth=("acme", "wrong")).status_code == 401

        ok = http.get(path, headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and ok.content == bodies(1)["cifs.xml"]
        assert ok.headers["cache-control"] == "private, max-age=60", "token-protected feeds stay out of shared caches"
        assert http.get(path, headers={"X-Partner-Token": token}).status_code == 200
        assert http.get(path, params={"token": token}).status_code == 200
        assert http.get(path, auth=("acme", token)).status_code == 200
        assert http.get(path, auth=("anyone", token)).status_code == 200
        assert http.get(path, headers={"Authorization": f"Bearer {token}", "If-None-Match": ok.headers["etag"]}
                        ).status_code == 304
        assert http.get("/feeds/cifs.json", headers={"X-Partner-Token": token}).status_code == 200
        health = http.get("/health")
        assert health.status_code == 200, "health needs no token"
        feed = health.json()["feeds"]["cifs.xml"]
        assert feed == {"published": feed["published"], "published_ms": feed["published_ms"]}, \
            "no ETag, event count or size of a partner-only feed to anyone without a token"

        # five 200s and one 304 of cifs.xml; refused polls are not counted (no '-' row)
        expected = {("acme", "cifs.xml"): (5, 1), ("acme", "cifs.json"): (1, 0)}
        wait_for(lambda: stored_counts(engine) == expected, what="flushed counts")
        listing = json.loads(store_cli("partner", "list", "--format", "json").out)
        assert listing[0]["name"] == "acme" and listing[0]["status"] == "active"
        assert listing[0]["downloads"] == {"cifs.json": 1, "cifs.xml": 5}
        assert listing[0]["polls"] == {"cifs.json": 0, "cifs.xml": 1}

        revoked = store_cli("partner", "revoke", "acme")
        assert revoked.code == 0 and "revoked partner 'acme'" in revoked.err
        time.sleep(refresh_s * 4)
        assert http.get(path, headers={"Authorization": f"Bearer {token}"}).status_code == 401
        assert "partner 'acme' was already revoked" in store_cli("partner", "revoke", "acme").err

        again = store_cli("partner", "add", "acme")
        assert again.code == 0 and again.out.strip() != token
        new_token = again.out.strip()
        wait_for(lambda: http.get(path, auth=("acme", new_token)).status_code == 200, what="re-added partner")
        assert http.get(path, auth=("acme", token)).status_code == 401, "the old token stays dead"
    table = store_cli("partner", "list")
    assert table.code == 0 and "acme" in table.out and "active" in table.out


def test_partner_cli_errors(store_cli: Callable[..., Run]) -> None:
    assert store_cli("partner", "list", "--format", "json").out.strip() in ("[]", "[\n]")
    assert store_cli("partner", "add", "acme").code == 0
    duplicate = store_cli("partner", "add", "acme")
    assert duplicate.code == 2 and duplicate.err == "error: partner 'acme' already exists; revoke it first to " \
        "issue a new token\n" and duplicate.out == ""
    unknown = store_cli("partner", "revoke", "nobody")
    assert unknown.code == 3 and unknown.err == "error: no partner named 'nobody'\n"
    for bad in ("-", "a:b", "has space", ""):
        result = store_cli("partner", "add", bad)
        assert result.code == 2 and "partner name" in result.err and result.out == "", bad
    assert store_cli("partner", "list", "--format", "csv").code == 2


def test_a_poll_never_sees_a_mix(engine: Engine) -> None:
    """50 publications while 4 clients poll: every body is exactly the publication its ETag names."""
    published: dict[str, bytes] = {}
    first = bodies(0)
    for name, etag in publish(engine, first).items():
        published[etag] = first[name]
    seen: list[tuple[str, str, str, str | None, bytes]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def poll(url: str, worker: int) -> None:
        try:
            with httpx.Client(base_url=url) as http:
                i = 0
                while not stop.is_set():
                    name = FEEDS[(worker + i) % len(FEEDS)]
                    headers = GZIP if (worker + i) % 2 else PLAIN
                    response = http.get(f"/feeds/{name}", headers=headers)
                    seen.append((name, response.headers["etag"], headers["Accept-Encoding"],
                                 response.headers.get("content-encoding"), response.content))
                    i += 1
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    with running(engine, require_token=False, refresh_s=0.01) as url:
        pollers = [threading.Thread(target=poll, args=(url, n)) for n in range(4)]
        for thread in pollers:
            thread.start()
        try:
            for n in range(1, 51):
                content = bodies(n)
                for name, etag in publish(engine, content).items():
                    published[etag] = content[name]
                time.sleep(0.03)
        finally:
            time.sleep(0.2)
            stop.set()
            for thread in pollers:
                thread.join(10)
    assert not errors, errors
    distinct = set()
    for name, etag, accepted, encoding, body in seen:
        plain_etag = etag.removesuffix('-gzip"') + '"' if etag.endswith('-gzip"') else etag
        assert (encoding == "gzip") == (accepted == "gzip") == etag.endswith('-gzip"')
        assert published.get(plain_etag) == body, f"{name}: body does not match its ETag {etag}"
        assert etag_for(body) == plain_etag
        distinct.add(plain_etag)
    assert len(seen) > 100 and len(distinct) >= 10, (len(seen), len(distinct))


def test_counts_are_flushed_at_shutdown(engine: Engine) -> None:
    publish(engine, bodies(1))
    with running(engine, require_token=False, flush_s=3600) as url, httpx.Client(base_url=url) as http:
        etag = http.get("/feeds/cifs.xml").headers["etag"]
        for _ in range(3):
            assert http.get("/feeds/cifs.xml", headers={"If-None-Match": etag}).status_code == 304
        assert http.head("/feeds/wzdx.geojson").status_code == 200
        assert stored_counts(engine) == {}, "no write per poll"
    # anonymous requests count as '-': one download and three polls of cifs.xml, a HEAD of wzdx.geojson
    assert stored_counts(engine) == {("-", "cifs.xml"): (1, 3), ("-", "wzdx.geojson"): (0, 1)}
    with running(engine, require_token=False, flush_s=3600) as url, httpx.Client(base_url=url) as http:
        http.get("/feeds/cifs.xml")
        http.get("/feeds/cifs.xml", headers={"If-None-Match": etag})
    assert stored_counts(engine)[("-", "cifs.xml")] == (2, 4), "counts add up across runs"


def test_downloads_and_polls_are_counted_apart(engine: Engine, store_cli: Callable[..., Run]) -> None:
    """A 200 GET is a download; a 304 revalidation and a HEAD are polls (per partner and feed)."""
    publish(engine, bodies(1))
    token = store_cli("partner", "add", "acme").out.strip()
    auth = {"Authorization": f"Bearer {token}"}
    with running(engine, require_token=True, refresh_s=0.05, flush_s=0.1) as url, \
            httpx.Client(base_url=url, headers=auth) as http:
        path = "/feeds/cifs.xml"
        ok = http.get(path, headers=PLAIN)
        assert ok.status_code == 200 and ok.content == bodies(1)["cifs.xml"]
        assert http.get(path, headers={**PLAIN, "If-None-Match": ok.headers["etag"]}).status_code == 304
        head = http.head(path, headers=PLAIN)
        assert head.status_code == 200 and head.content == b""
        zipped = http.get(path, headers=GZIP)
        assert zipped.status_code == 200 and zipped.headers["content-encoding"] == "gzip"
        # a HEAD that revalidates is one poll, not two
        json_etag = http.head("/feeds/cifs.json", headers=PLAIN).headers["etag"]
        before_last = now_ms()
        assert http.head("/feeds/cifs.json", headers={**PLAIN, "If-None-Match": json_etag}).status_code == 304
        expected = {("acme", "cifs.xml"): (2, 2), ("acme", "cifs.json"): (0, 2)}
        wait_for(lambda: stored_counts(engine) == expected, what="flushed counts")
    assert stored_counts(engine) == expected, "nothing more at shutdown"
    assert stored_last_ms(engine)[("acme", "cifs.json")] >= before_last, "last_ms: the last request, a poll too"

    listing = json.loads(store_cli("partner", "list", "--format", "json").out)
    assert [(p["name"], p["downloads"], p["polls"]) for p in listing] == [
        ("acme", {"cifs.json": 0, "cifs.xml": 2}, {"cifs.json": 2, "cifs.xml": 2})]
    assert listing[0]["last_request"] is not None and "last_download" not in listing[0]
    table = store_cli("partner", "list")
    assert table.code == 0 and "downloads/polls per feed" in table.out
    row = next(line for line in table.out.splitlines() if line.startswith("acme"))
    assert row.split()[2:5] == ["2/2", "0/2", "0/0"], row  # cifs.xml, cifs.json, wzdx.geojson


def test_counts_survive_a_failed_flush(engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Counts a flush could not write are kept, added to later ones, and written once the store is back."""
    caplog.set_level(logging.WARNING, logger="exchange.server")
    publish(engine, bodies(1))
    app = create_app(engine, require_token=False, refresh_s=0.05, flush_s=0.1)
    feed_server = app.state.feed_server
    path = "/feeds/cifs.xml"
    with serving(app) as url, httpx.Client(base_url=url, headers=PLAIN) as http:
        feed_server.engine = create_engine(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")  # cannot be opened
        etag = http.get(path).headers["etag"]
        assert http.get(path, headers={"If-None-Match": etag}).status_code == 304
        wait_for(lambda: "cannot write download and poll counts (kept for the next try" in caplog.text,
                 what="a failed flush")
        before_last = now_ms()
        assert http.head(path).status_code == 200
        time.sleep(0.3)  # more failed flushes
        assert stored_counts(engine) == {}
        # found in a cold trial: said at every flush (720 lines an hour); once per outage
        assert caplog.text.count("cannot write download and poll counts") == 1, caplog.text
        feed_server.engine = engine
        wait_for(lambda: stored_counts(engine) == {("-", "cifs.xml"): (1, 2)}, what="the kept counts written")
    assert stored_counts(engine) == {("-", "cifs.xml"): (1, 2)}, "written once, not again at shutdown"
    assert stored_last_ms(engine)[("-", "cifs.xml")] >= before_last


def test_store_outage_keeps_the_last_copy(tmp_path: Path) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 'exchange.db'}")
    publish(engine, bodies(1))
    app = create_app(engine, require_token=False, refresh_s=0.05)
    feed_server = app.state.feed_server
    with serving(app) as url, httpx.Client(base_url=url, headers=PLAIN) as http:
        assert http.get("/feeds/cifs.xml").status_code == 200
        feed_server.engine = create_engine(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")  # cannot be opened
        wait_for(lambda: http.get("/health").json()["store"] == "unreachable", what="refresh error")
        response = http.get("/feeds/cifs.xml")
        assert response.status_code == 200 and response.content == bodies(1)["cifs.xml"]
        feed_server.engine = engine
        wait_for(lambda: http.get("/health").json()["store"] == "ok", what="recovery")


# --------------------------------------------------------------------------- exchange serve


def test_serve_command(tmp_path: Path) -> None:
    """The console command: prints its URL, serves, flushes counts and exits 0 on SIGTERM."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
    env["EXCHANGE_DATA_DIR"] = str(tmp_path / "data")
    engine = open_store(f"sqlite:///{tmp_path / 'data' / 'exchange.db'}")
    publish(engine, bodies(1))
    # the access log is uvicorn's INFO chatter, shown when asked for
    command = [sys.executable, "-m", "exchange", "serve", "--port", "0", "--no-tokens", "--refresh-s", "0.1",
               "--access-log"]
    with subprocess.Popen(command, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                          cwd=ROOT) as server:
        try:
            url = None
            assert server.stderr is not None
            for line in server.stderr:
                if line.startswith("serving http://"):
                    url = line.split()[1].removesuffix("/feeds/")
                    break
            assert url, "no URL announced"
            response = httpx.get(f"{url}/feeds/cifs.xml?token=secret-in-url", headers=PLAIN)
            assert response.status_code == 200 and response.content == bodies(1)["cifs.xml"]
        finally:
            server.send_signal(signal.SIGTERM)
            _, err = server.communicate(timeout=20)
    assert server.returncode == 0, err
    assert "secret-in-url" not in err and "token=***" in err, "tokens never reach the access log"
    assert stored_downloads(engine) == {("-", "cifs.xml"): 1}


def test_serve_refuses_a_busy_port(store_cli: Callable[..., Run]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = store_cli("serve", "--port", str(busy.getsockname()[1]))
    assert result.code == 1 and result.err.startswith("error: cannot listen on 127.0.0.1:"), result
    assert result.err.count("\n") == 1


# --------------------------------------------------------------------------- file sink


def test_file_sink(tmp_path: Path) -> None:
    target = tmp_path / "www" / "feeds"
    sink = FileSink(target, gzip=True)
    sink.push(bodies(1), gzipped={name: gzip_body(body) for name, body in bodies(1).items()},
              mtime_ms=1_772_463_600_000)
    for name, body in bodies(1).items():
        assert (target / name).read_bytes() == body
        assert gzip.decompress((target / f"{name}.gz").read_bytes()) == body
        assert (target / name).stat().st_mtime == 1_772_463_600
        assert (target / name).stat().st_mode & 0o777 == 0o644
    sink.push({"cifs.xml": b"<new/>"}, gzipped={"cifs.xml": gzip_body(b"<new/>")})
    assert (target / "cifs.xml").read_bytes() == b"<new/>"
    FileSink(target).push({"cifs.xml": b"<plain/>"})
    assert not (target / "cifs.xml.gz").exists(), "a stale .gz would be served by gzip_static"
    assert sorted(p.name for p in target.iterdir() if p.name.startswith(".")) == [], "no temp files left"
    for bad in ("../x", ".hidden", "a/b", ""):
        with pytest.raises(UsageError):
            sink.push({bad: b"x"}, gzipped={bad: b"x"})


def test_file_sink_readers_never_see_a_partial_file(tmp_path: Path) -> None:
    sink = FileSink(tmp_path)
    versions = {hashlib.sha256(bytes([n]) * 200_000).hexdigest() for n in range(20)}
    sink.push({"cifs.xml": bytes([0]) * 200_000})
    stop = threading.Event()
    bad: list[int] = []

    def read() -> None:
        while not stop.is_set():
            data = (tmp_path / "cifs.xml").read_bytes()
            if hashlib.sha256(data).hexdigest() not in versions:
                bad.append(len(data))

    reader = threading.Thread(target=read)
    reader.start()
    for n in range(1, 20):
        sink.push({"cifs.xml": bytes([n]) * 200_000})
    stop.set()
    reader.join()
    assert not bad


def test_basic_auth_header_forms_are_parsed() -> None:
    from exchange.web_auth import offered_tokens

    basic = "Basic " + base64.b64encode(b"acme:s3cret").decode()
    assert offered_tokens(basic, None, b"") == ["s3cret"]
    assert offered_tokens("bearer abc", "def", b"x=1&token=ghi") == ["abc", "def", "ghi"]
    assert offered_tokens("Basic !!!", None, b"") == []
    # issue 17 item 5: the name is read after percent-decoding, and redacted however it is spelled
    assert offered_tokens(None, None, b"%74oken=ghi&%54oken=no") == ["ghi"]
    logged = "GET /feeds/cifs.xml?%74o%6Ben=ghi HTTP/1.1"
    assert redact_query_tokens(logged) == "GET /feeds/cifs.xml?%74o%6Ben=*** HTTP/1.1"
    assert offered_tokens("Basic " + base64.b64encode(b"no-colon").decode(), None, b"") == []
