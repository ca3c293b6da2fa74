"""The deadline and the stop of one fetch: what ends a fetch a per-read timeout never ends.

A per-read timeout never ends an upstream that trickles a byte a second, nor one that trickles its
headers. :class:`Guard` bounds one whole fetch, retries and backoff waits included, and gives up
within a fraction of a second when the process is asked to stop (the daemon's SIGTERM). Its
watchdog thread shuts the connection's socket down when either comes, which wakes a read blocked
on a silent upstream at once; httpcore's ``trace`` extension (:meth:`Guard.trace`) hands it the
socket as soon as the connection, or its TLS layer, is made.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from exchange.errors import FetchError, FetchStopped, UpstreamUnavailable

__all__ = ["TICK_S", "Guard"]

#: how often the watchdog looks at the deadline and the stop flag, seconds
TICK_S = 0.1




class Guard:
    """The deadline and the stop of one fetch.

    A watchdog thread shuts the connection's socket down when either comes, so a read blocked on a
    silent or trickling upstream returns at once; :meth:`check` then raises the reason, and
    :meth:`sleep` is a backoff wait that wakes for it.
    """

    def __init__(
        self, shown: str, deadline_s: float, should_stop: Callable[[], bool] | None, until: float | None
    ) -> None:
        self.shown, self.deadline_s = shown, deadline_s
        self.until = until if until is not None else time.monotonic() + deadline_s
        self.should_stop = should_stop
        self.reason: FetchError | None = None
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="fetch-watchdog", daemon=True)

    def __enter__(self) -> Guard:
        self._watchdog.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._watchdog.join()

    def remaining(self) -> float:
        return self.until - time.monotonic()

    def check(self) -> None:
        """Raise the reason the fetch must end now (a stop, the deadline), if there is one."""
        if self.reason is None:
            self._trip(self._due())
        if self.reason is not None:
            raise self.reason

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (a backoff), giving up at once when a stop is requested."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.check()
            self._done.wait(min(left, TICK_S))

    def trace(self, name: str, info: dict[str, Any]) -> None:
        """httpcore's ``trace`` extension: keep the socket of the connection (or its TLS layer) just made."""
        if not name.endswith(("connect_tcp.complete", "start_tls.complete")):
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        with self._lock:
            self._socket = sock if isinstance(sock, socket.socket) else self._socket
            tripped = self.reason is not None
        if tripped:
            self._cut()

    def _due(self) -> FetchError | None:
        if self.should_stop is not None and self.should_stop():
            return FetchStopped(f"gave up on {self.shown}: stopped: shutting down")
        if time.monotonic() >= self.until:
            return UpstreamUnavailable(
                f"cannot read {self.shown}: no complete answer within the {self.deadline_s:g}-second deadline "
                "(deadline_s)"
            )
        return None

    def _watch(self) -> None:
        while not self._done.wait(TICK_S):
            reason = self._due()
            if reason is not None:
                self._trip(reason)
                return

    def _trip(self, reason: FetchError | None) -> None:
        if reason is None:
            return
        with self._lock:
            if self.reason is None:
                self.reason = reason
        self._cut()

    def _cut(self) -> None:
        with self._lock:
            sock = self._socket
        if sock is None:
            return
        # the plain socket's shutdown, also under TLS: it wakes a blocked read with end-of-file
        with contextlib.suppress(OSError):  # already closed
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
