"""Pin each package's public surface, so a change to it is a decision, not an accident."""

from __future__ import annotations

import adapters
import exchange.errors
import exchange.model
import feeds


def test_public_names() -> None:
    assert sorted(feeds.__all__) == ["FeedItem", "WazeSnapshot", "parse_waze_feed", "read_waze_snapshot", "to_event"]
    assert sorted(adapters.__all__) == ["ADAPTERS", "adapter_class", "build_source", "validate_source_settings"]
    assert "ExchangeError" in exchange.errors.__all__ and "Event" in exchange.model.__all__
    for module in (feeds, adapters, exchange.errors, exchange.model):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_every_error_has_an_exit_code() -> None:
    codes = {name: getattr(exchange.errors, name).exit_code for name in exchange.errors.__all__}
    assert codes["UsageError"] == codes["ConfigError"] == 2 and codes["NotFound"] == 3
    assert codes["MalformedPayload"] == codes["UpstreamUnavailable"] == codes["StoreError"] == 1
