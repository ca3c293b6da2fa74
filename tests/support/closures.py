"""What the closure and publishing tests share: their clock and a closure line on a real street.

``LINE`` lies on 9th Street in West Oakland (the network of ``fixtures/``); ``T0`` is the clock
``frozen_config`` sets (``EXCHANGE_NOW``).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from exchange.config import Config

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)
LINE = [(-122.300788, 37.809578), (-122.302087, 37.810233)]


def frozen_config(monkeypatch: pytest.MonkeyPatch) -> Config:
    """The default configuration with the exchange's clock stopped at ``T0``."""
    monkeypatch.setenv("EXCHANGE_NOW", str(T0_MS))
    return Config()
