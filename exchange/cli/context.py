"""What every command shares: the state of one invocation (config, store, road network), reading
a file named on the command line, and the logging set-up.

Command modules import this module and nothing else of ``exchange.cli``; the root app
(:mod:`exchange.cli.main`) imports the command modules. So there is no import cycle.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from exchange.config import Config
from exchange.errors import ExchangeError, NotFound, UsageError
from exchange.logs import setup_logging

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from exchange.placement import Placement
    from exchange.store import Unreadable

__all__ = ["State", "engine", "placement", "read_input", "setup_logging", "skipped", "state"]


class State:
    """One invocation: the options of the root command, and what they open, each opened once."""

    config_path: Path | None = None
    verbose: int = 0
    #: ``--log-format`` (or $EXCHANGE_LOG_FORMAT); None: the config's ``log_format``
    log_format: str | None = None
    engine: Engine | None = None
    placement: Placement | None = None
    rerouted: bool = False
    _config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            from exchange.config_file import load_config

            self._config = load_config(self.config_path)
            setup_logging(self._config.log_level, self.verbose, log_format=self.log_format or self._config.log_format)
        return self._config

    def reset(self, config_path: Path | None, verbose: int, log_format: str | None = None) -> None:
        self.config_path, self.verbose, self.log_format, self._config = config_path, verbose, log_format, None
        self.placement, self.rerouted = None, False

    def close(self) -> None:
        """Release the store's pooled connections (tests run many commands in one process)."""
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None


state = State()


def engine() -> Engine:
    """The store of this invocation, opened once; ``main`` releases its connections at the end."""
    if state.engine is None:
        from exchange.db import open_store

        state.engine = open_store(state.config.database_url)
    return state.engine


def placement(*, reroute: bool = True) -> Placement | None:
    """The configured road network for matching and clustering, or None (nothing is matched); loaded once.

    With ``reroute``, when it is not the network the store's live city events were placed on (a
    refreshed extract), they are all placed again on it first, and what changed is said on stderr
    (:mod:`exchange.reroute`). Read-only commands pass ``reroute=False``.
    """
    if state.config.network is None:
        return None  # and the geometry stack (numpy, shapely, pyproj) is never imported
    loaded = state.placement
    if loaded is None:
        from exchange.placement import Placement

        loaded = state.placement = Placement.from_config(state.config)
        if loaded is None:
            return None
    if reroute and not state.rerouted:
        from exchange.reroute import describe_reroute, reroute_if_network_changed

        state.rerouted = True
        report = reroute_if_network_changed(engine(), loaded)
        if report:
            print("\n".join(describe_reroute(report, only_changes=True)), file=sys.stderr)
    return loaded


def read_input(path: Path) -> bytes:
    """A file named on the command line: a missing one is NotFound (exit 3), an unreadable one exit 1."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"{path} does not exist") from None
    except OSError as exc:
        raise ExchangeError(f"cannot read {path}: {exc.strerror or exc}") from exc



def skipped(item: Unreadable) -> None:
    """A stored event a list cannot show: one line on stderr with its id and why, and the list goes on."""
    print(item.warning(), file=sys.stderr)


def category_option(value: str | None) -> str | None:
    """A ``--category`` as stored (upper case); a usage error naming the known ones for any other
    (a typo would otherwise match nothing and print no event, silently)."""
    if value is None:
        return None
    from exchange.model import Category

    known = [category.value for category in Category]
    if value.upper() not in known:
        raise UsageError(f"--category: {value!r} is not one of {', '.join(known)}")
    return value.upper()

