"""What every part of the application shares about the running process: the clock, the pause of
the garbage collector while a payload is in memory, and the fault points the atomicity tests use.

``sync``, ``closures``, ``publish``, ``partners`` and the feed server take the time from here, so
``EXCHANGE_NOW`` pins it for all of them at once.
"""

from __future__ import annotations

import gc
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from exchange.errors import ExchangeError

__all__ = [
    "InjectedFault", "clear_degraded", "collector_paused", "degraded", "duration_ms", "fault_point",
    "note_degraded", "now_ms", "pinned_now_problem", "request_stop", "stop_requested",
]

#: set by SIGTERM/SIGINT in ``exchange run``: long work (a fetch that trickles) gives up at once
_stop = threading.Event()


def request_stop() -> None:
    """Ask every running job of this process to give up as soon as it can (shutdown)."""
    _stop.set()


def stop_requested() -> bool:
    return _stop.is_set()


def now_ms() -> int:
    """Now in epoch milliseconds; ``EXCHANGE_NOW`` (ISO 8601 or millis) pins it for tests and demos.

    >>> import os; os.environ["EXCHANGE_NOW"] = "2026-03-02T15:00:00+00:00"; now_ms()
    1772463600000
    >>> del os.environ["EXCHANGE_NOW"]; now_ms() > 1772463600000
    True
    """
    pinned = os.environ.get("EXCHANGE_NOW")
    return _pinned_ms(pinned) if pinned else time.time_ns() // 1_000_000


def _pinned_ms(pinned: str) -> int:
    """``EXCHANGE_NOW`` as epoch milliseconds: digits are milliseconds, anything else ISO 8601."""
    return int(pinned) if pinned.isdigit() else round(datetime.fromisoformat(pinned).timestamp() * 1000)


def pinned_now_problem() -> str | None:
    """What is wrong with ``EXCHANGE_NOW``, when it is set and is not a time :func:`now_ms` can read
    (the CLI refuses it in one line before anything reads the clock).

    >>> import os; os.environ["EXCHANGE_NOW"] = "yesterday"; print(pinned_now_problem()[:60])
    environment variable EXCHANGE_NOW: 'yesterday' is neither an
    >>> del os.environ["EXCHANGE_NOW"]; pinned_now_problem() is None
    True
    """
    pinned = os.environ.get("EXCHANGE_NOW")
    if not pinned:
        return None
    try:
        at = _pinned_ms(pinned)
    except (ValueError, OverflowError, OSError):
        at = -1
    if 0 <= at < 253_402_300_800_000:  # up to the year 9999
        return None
    return (f"environment variable EXCHANGE_NOW: {pinned[:40]!r} is neither an ISO 8601 time (2026-03-02T15:00:00Z) "
            "nor epoch milliseconds")


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a payload is in memory.

    A parsed feed is a tree of thousands of small dicts and lists without reference cycles;
    building it triggers full collections that cost more than parsing it (about a quarter of a
    replay). Reference counting frees the tree all the same; the collector runs again afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class InjectedFault(ExchangeError):
    """Raised at a named point when ``EXCHANGE_INJECT_FAULT`` names it (tests of atomicity)."""


def fault_point(name: str) -> None:
    """``EXCHANGE_INJECT_FAULT=<point>`` raises here; ``<point>:hang`` blocks (to test a killed process)."""
    wanted = os.environ.get("EXCHANGE_INJECT_FAULT")
    if not wanted:
        return
    point, _, action = wanted.partition(":")
    if point != name:
        return
    if action == "hang":
        print(f"fault point {name}: hanging", flush=True)
        while True:
            time.sleep(3600)
    raise InjectedFault(f"injected fault at {name}")


def duration_ms(text: str) -> int | None:
    """A duration as people write it (``30m``, ``2h``, ``7d``, ``1w``, ``90s``) in milliseconds; None for
    anything else.

    >>> duration_ms("2h"), duration_ms(" 30 m"), duration_ms("2026-03-02")
    (7200000, 1800000, None)
    """
    found = _DURATION.fullmatch(text.strip())
    return int(found.group(1)) * _UNIT_MS[found.group(2)] if found else None


_DURATION = re.compile(r"(\d{1,9})\s*([smhdw])")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


#: what this process runs without, and why (``exchange run`` on a network file it cannot use): monitoring
#: hears of it through ``/health/sources``
_degraded: dict[str, str] = {}


def note_degraded(what: str, why: str) -> None:
    """Say that this process runs without ``what`` (``network``), and why."""
    _degraded[what] = why


def clear_degraded(what: str) -> None:
    """``what`` works again (the feeds' directory is writable again)."""
    _degraded.pop(what, None)


def degraded() -> dict[str, str]:
    """What this process runs without, and why."""
    return dict(_degraded)
