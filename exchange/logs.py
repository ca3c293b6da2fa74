"""Log lines an operator and a log shipper can use: a time, a level and a logger on every line.

Two formats (``log_format`` in the config, ``--log-format`` or ``$EXCHANGE_LOG_FORMAT``):

- ``text``: ``2026-11-27T10:15:02.123Z INFO exchange.daemon: message`` (UTC, milliseconds), the
  traceback, if any, on the lines after it;
- ``json``: one object per line, ``{"time": ..., "level": ..., "logger": ..., "message": ...}``,
  with ``exc_info`` (the traceback as text) and ``stack_info`` when the record has them.

Levels: our own loggers (``exchange``, ``adapters``, ``feeds``, ``geo``) and any other library's
follow ``log_level``; the chatty third parties (APScheduler's "Running job" / "executed
successfully", httpx's line per request, httpcore, uvicorn's access and start-up lines, Alembic's
migration steps) stay at WARNING. ``-v`` shows our DEBUG lines and their INFO lines (but for
APScheduler's two lines per job run: the daemon runs one every second); ``-vv``, or
``log_level = "DEBUG"``, shows everything at DEBUG.

The handler writes to whatever ``sys.stderr`` is when a record is emitted, never to a stream saved
at set-up time: a program (or a test run) that swaps or closes ``sys.stderr`` between commands
gets no "--- Logging error ---" from a handler left holding a closed stream. Setting up again
replaces only the handler installed here, so handlers added by an embedding program (or pytest)
stay. The redaction filter (:mod:`exchange.redaction`) goes on the handler and every logger
whatever the format, so neither format ever prints a secret.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from exchange.output import terminal_safe
from exchange.redaction import install_log_redaction

__all__ = [
    "FORMATS",
    "JOB_RUNS_LOGGER",
    "OWN_LOGGERS",
    "THIRD_PARTY_LOGGERS",
    "JsonFormatter",
    "TextFormatter",
    "installed_handler",
    "setup_logging",
    "show_access_log",
]

FORMATS = ("text", "json")

#: the project's loggers: DEBUG from ``-v`` on
OWN_LOGGERS = ("exchange", "adapters", "feeds", "geo")

#: libraries whose INFO lines are noise for an operator: WARNING unless ``-v`` (INFO) or ``-vv`` (DEBUG)
#: APScheduler's "Running job" / "executed successfully" lines: only with ``-vv``
JOB_RUNS_LOGGER = "apscheduler.executors.default"
THIRD_PARTY_LOGGERS = ("apscheduler", JOB_RUNS_LOGGER, "httpx", "httpcore", "uvicorn", "uvicorn.access",
                       "uvicorn.error", "uvicorn.asgi", "alembic")


def _utc(created: float) -> str:
    """``2026-11-27T10:15:02.123Z``: ISO 8601 in UTC, milliseconds.

    >>> _utc(1_795_774_502.1234)
    '2026-11-27T10:15:02.123Z'
    """
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER: MESSAGE``, the time in UTC (see :func:`_utc`)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _utc(record.created)

    def format(self, record: logging.LogRecord) -> str:
        # upstream text (a Waze street, a rejected id) is shown, never obeyed by the terminal
        return terminal_safe(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: time, level, logger, message (and exc_info, stack_info)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # the redaction filter may have replaced the exception by its masked text (exc_text)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler on the current ``sys.stderr`` (looked up per record), unless given a stream."""

    def __init__(self) -> None:
        self._own: IO[str] | None = None
        super().__init__()

    @property
    def stream(self) -> IO[str]:
        return self._own if self._own is not None else sys.stderr

    @stream.setter
    def stream(self, value: IO[str] | None) -> None:
        # StreamHandler.__init__ sets sys.stderr as it is now: keep following it instead
        self._own = None if value is sys.stderr or value is sys.__stderr__ else value


#: marks the handler :func:`setup_logging` installed, so that setting up again replaces only it
_MARK = "_exchange_handler"


def setup_logging(level: str = "INFO", verbose: int = 0, log_format: str = "text") -> None:
    """Log to stderr in ``log_format`` at ``level``, third parties quieter (see the module doc).

    ``verbose``: 1 = our loggers at DEBUG and the third parties at INFO; 2 or more = all at DEBUG
    (as ``level="DEBUG"``).
    """
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {log_format!r}")
    chosen = getattr(logging, level.upper())
    everything = verbose >= 2 or chosen <= logging.DEBUG
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(handler)
        handler.close()
    handler = _StderrHandler()
    setattr(handler, _MARK, True)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if everything else min(chosen, logging.INFO) if verbose else chosen)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose or everything else logging.NOTSET)
    for name in THIRD_PARTY_LOGGERS:
        third = logging.DEBUG if everything else logging.INFO if verbose else max(chosen, logging.WARNING)
        logging.getLogger(name).setLevel(third)
    # two lines a second from the daemon's one-second dispatch job would bury the rest of -v
    logging.getLogger(JOB_RUNS_LOGGER).setLevel(logging.DEBUG if everything else max(chosen, logging.WARNING))
    # after the handler: the filter goes on it (and on every logger)
    install_log_redaction()


def show_access_log() -> None:
    """Show uvicorn's access lines, asked for without ``-v``: they are INFO, which :func:`setup_logging`
    keeps the third parties above."""
    access = logging.getLogger("uvicorn.access")
    access.setLevel(min(access.level or logging.WARNING, logging.INFO))


def installed_handler() -> logging.StreamHandler | None:  # type: ignore[type-arg]
    """The handler :func:`setup_logging` put on the root, if any (tests point it at a stream)."""
    for handler in logging.getLogger().handlers:
        if getattr(handler, _MARK, False) and isinstance(handler, logging.StreamHandler):
            return handler
    return None
