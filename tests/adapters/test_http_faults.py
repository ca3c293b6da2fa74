"""Upstream faults provoked with real local servers (issue 17, item 1): each is a failed fetch with a
one-line error, never a traceback, and never a partial body taken for a whole one."""

from __future__ import annotations

import gzip
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from adapters.base import Watermark
from adapters.http import HttpPolicy, fetch_url
from exchange.errors import PayloadTooLarge, UpstreamUnavailable

POLICY = HttpPolicy(retries=1, backoff_s=0.01, max_backoff_s=0.02, connect_timeout_s=2, read_timeout_s=2,
                    deadline_s=10, max_bytes=64 * 1024)


@contextmanager
def raw_server(answer: Callable[[socket.socket], None]) -> Iterator[str]:
    """A TCP server that reads one request per connection and answers with ``answer`` (raw bytes)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    answer(conn)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/feed"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def _fetch(url: str) -> bytes | None:
    return fetch_url(url, Watermark(), POLICY, sleep=lambda _: None).body


def test_a_cut_body_is_not_taken_for_a_whole_one() -> None:
    """Content-Length promises 1,000 bytes, the connection closes after 10."""
    def answer(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)

    broke_off = r"^cannot read .*: its answer broke off, or was not HTTP \(RemoteProtocolError\)"
    with raw_server(answer) as url, pytest.raises(UpstreamUnavailable, match=broke_off):
        _fetch(url)


def test_a_reset_connection_is_a_failed_fetch() -> None:
    def answer(conn: socket.socket) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close

    with raw_server(answer) as url, pytest.raises(UpstreamUnavailable, match=r"^cannot reach .*\(after 2 attempts\)$"):
        _fetch(url)


def test_a_gzip_bomb_stops_at_the_cap() -> None:
    """A 64 KiB cap, a 6 KiB gzip body that inflates to 10 MiB: refused while inflating, not after."""
    bomb = gzip.compress(b"\0" * (10 * 1024 * 1024))
    assert len(bomb) < 64 * 1024

    def answer(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(bomb) + bomb)

    with raw_server(answer) as url, pytest.raises(PayloadTooLarge, match=r"sent more than the 65536-byte cap$"):
        _fetch(url)


def test_a_body_declared_gzip_that_is_not() -> None:
    """Finding: ``httpx.DecodingError`` escaped as a traceback (27 in 45 s in the daemon)."""
    def answer(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 8\r\n\r\nnot gzip")

    with raw_server(answer) as url, pytest.raises(UpstreamUnavailable, match=r"cannot be decoded as its Content-Enc"):
        _fetch(url)


def test_garbage_instead_of_http() -> None:
    def answer(conn: socket.socket) -> None:
        conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")

    not_http = r"^cannot read .*not HTTP \(RemoteProtocolError\)"
    with raw_server(answer) as url, pytest.raises(UpstreamUnavailable, match=not_http):
        _fetch(url)
