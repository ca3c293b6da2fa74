"""A store filled the way the demo fills it, for the web face's tests (map, events API, catalogue).

:func:`demo_site` copies ``config/demo.toml`` into a directory of the test's (paths made
absolute, the store in that directory, extra TOML appended), then replays the shipped Waze
snapshots, syncs the city's closures and publishes, through the real CLI in a subprocess-free
way (``exchange.cli.main.main``). Module- or session-scoped fixtures build it once.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from exchange.config import Config
from tests.support.paths import DEMO, POLLS, ROOT


@dataclass
class DemoSite:
    config_path: Path
    config: Config
    engine: Engine

    def cli(self, *args: str) -> tuple[int, str, str]:
        """``exchange -c <this config> ARGS`` in-process: (exit code, stdout, stderr)."""
        return run_cli("--config", str(self.config_path), *args)


def demo_config_text(directory: Path, extra: str = "") -> str:
    text = re.sub(r"(?m)^data_dir = .*$", "", DEMO.read_text(encoding="utf-8"))
    text = text.replace('"../', f'"{ROOT}/')
    return f'data_dir = "{directory / "data"}"\n{text}\n{extra}\n'


@contextlib.contextmanager
def demo_site(directory: Path, extra: str = "", polls: int = len(POLLS)) -> Iterator[DemoSite]:
    """The demo store in ``directory``: ``polls`` Waze snapshots replayed, closures synced, published."""
    from exchange.config_file import load_config
    from exchange.db import open_store

    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / "exchange.toml"
    config_path.write_text(demo_config_text(directory, extra), encoding="utf-8")
    with _clean_environment():
        for args in (["replay", *map(str, POLLS[:polls])], ["sync"], ["publish"]):
            code, _out, err = run_cli("--config", str(config_path), *args)
            assert code == 0, f"exchange {args[0]} failed ({code}): {err}"
        config = load_config(config_path)
    engine = open_store(config.database_url, auto_upgrade=False)
    try:
        yield DemoSite(config_path, config, engine)
    finally:
        engine.dispose()


def run_cli(*args: str) -> tuple[int, str, str]:
    """The CLI in-process, capturing its output: (exit code, stdout, stderr)."""
    from exchange.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return code, out.getvalue(), err.getvalue()


@contextlib.contextmanager
def _clean_environment() -> Iterator[None]:
    """No stray EXCHANGE_* of the caller's shell decides where the demo store goes."""
    saved = {name: value for name, value in os.environ.items() if name.startswith("EXCHANGE_")}
    for name in saved:
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.update(saved)
