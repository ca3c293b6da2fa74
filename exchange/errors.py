"""The project's errors, one tree. This module is a leaf: it imports nothing of the project.

    ExchangeError                      exit 1 unless a branch says otherwise
    +-- UsageError                     exit 2: bad command-line input
    +-- ConfigError                    exit 2: the configuration file or an EXCHANGE_* variable is invalid
    |   +-- NetworkElsewhere           the road network is of another place than the store's events
    +-- NotFound                       exit 3: an event, run or source that does not exist
    +-- FetchError                     an upstream could not be read
    |   +-- UpstreamUnavailable        connection refused, timeout, DNS, 5xx after retries, deadline
    |   |   +-- FetchStopped           the process is shutting down (SIGTERM): the fetch gave up
    |   +-- UpstreamRefused            4xx other than 304/429: bad token, wrong URL
    |   +-- PayloadTooLarge            the body passed the size cap
    +-- FeedError                      a payload that cannot be read as a feed at all
    |   +-- MalformedPayload           broken JSON/XML, wrong envelope, refused XML constructs
    +-- ItemRejected                   one item of a readable feed is unusable (never aborts a batch)
    +-- StoreError                     the database failed or is not usable
    |   +-- SchemaOutdated             the schema is behind the code: run `exchange db upgrade`
    |   +-- UnreadableEvent            a stored event the program cannot read (a time out of range,
    |                                  text that is not UTF-8, a value the model refuses)
    +-- InternalError                  an exception nothing foresaw (a bug), caught where a run is
                                       recorded: the run is failed, the message names the exception

Each error carries a one-line public ``message`` that never holds upstream secrets, and the exit
code the CLI returns for it. Foreign exceptions are wrapped ``from exc`` where they enter.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ExchangeError",
    "FeedError",
    "FetchError",
    "FetchStopped",
    "InternalError",
    "ItemOutOfScope",
    "ItemRejected",
    "MalformedPayload",
    "NetworkElsewhere",
    "NotFound",
    "PayloadTooLarge",
    "SchemaOutdated",
    "StoreError",
    "UnreadableEvent",
    "UpstreamRefused",
    "UpstreamUnavailable",
    "UsageError",
]


class ExchangeError(Exception):
    """Base of every error the broker raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(ExchangeError, ValueError):
    exit_code = 2


class ConfigError(ExchangeError, ValueError):
    exit_code = 2


class NetworkElsewhere(ConfigError):
    """The configured road network is of another place than the store's events (a wrong file)."""


class NotFound(ExchangeError, LookupError):
    exit_code = 3


class FetchError(ExchangeError, OSError):
    """An upstream feed could not be fetched."""


class UpstreamUnavailable(FetchError):
    """``retry_after_s``: how long the upstream asked to be left alone (its ``Retry-After``), when it did."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class FetchStopped(UpstreamUnavailable):
    """A fetch given up because the process is stopping; not a sign the upstream is unwell."""


class UpstreamRefused(FetchError):
    pass


class PayloadTooLarge(FetchError):
    pass


class FeedError(ExchangeError, ValueError):
    """A whole payload is unusable."""


class MalformedPayload(FeedError):
    pass


class ItemRejected(ExchangeError, ValueError):
    """One item of a feed is unusable; the reason is the message."""

    def __init__(self, reason: str, *, source_id: str | None = None, kind: str | None = None) -> None:
        super().__init__(reason)
        self.source_id = source_id
        self.kind = kind


class ItemOutOfScope(ItemRejected):
    """One item of a kind the reader does not take (a detour, a weather record): not read, and not a
    sign that the feed is broken (a feed of nothing else is not suspect)."""


class StoreError(ExchangeError):
    pass


class SchemaOutdated(StoreError):
    pass


class UnreadableEvent(StoreError):
    """One stored event cannot be read; lists skip it with a warning, a command about it alone fails."""


class InternalError(ExchangeError):
    """An exception nothing foresaw, in one line: ``<ExceptionType>: <message>``. A bug; the log has
    the traceback at DEBUG level (``-v``)."""
