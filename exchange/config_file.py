"""Reading the configuration: the TOML file, ``EXCHANGE_*`` environment overrides, validation.

The types live in :mod:`exchange.config` (adapters import them); this module checks each
source's own keys against its adapter as well, so a typo is named before any run. The file is
read only from ``--config`` or ``$EXCHANGE_CONFIG``, never searched for.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from adapters import validate_source_settings
from exchange.config import Config
from exchange.errors import ConfigError
from exchange.model import first_problem
from exchange.redaction import register_config_secrets

__all__ = ["default_config", "load_config"]


def default_config() -> Config:
    """What runs without a file: the embedded SQLite store and one Waze source named ``waze``."""
    return _validate(_environment_overrides({"sources": [{"name": "waze", "kind": "waze-feed", "url": ""}]}), None)


def load_config(path: Path | None) -> Config:
    """Read ``path`` (or ``$EXCHANGE_CONFIG``), apply environment overrides, validate."""
    if path is None and os.environ.get("EXCHANGE_CONFIG"):
        path = Path(os.environ["EXCHANGE_CONFIG"])
    if path is None:
        return default_config()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    _resolve_relative_paths(raw, path.parent)
    return _validate(_environment_overrides(raw), path)


def _validate(raw: dict[str, Any], path: Path | None) -> Config:
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        origin = f"{path}: " if path else "configuration: "
        raise ConfigError(origin + first_problem(exc, default_location="(top level)")) from exc
    config.path = path
    for source in config.sources:
        validate_source_settings(source)
    register_config_secrets(config)  # the tokens its sources name are masked in every log line
    return config


def _resolve_relative_paths(raw: dict[str, Any], base: Path) -> None:
    """Local feed paths and the data dir in a config file are relative to that file, not the cwd."""
    if isinstance(raw.get("data_dir"), str) and not Path(raw["data_dir"]).expanduser().is_absolute():
        raw["data_dir"] = str((base / raw["data_dir"]).resolve())
    network = raw.get("network")
    path = network.get("path") if isinstance(network, dict) else None
    if isinstance(network, dict) and isinstance(path, str) and not Path(path).expanduser().is_absolute():
        network["path"] = str((base / path).resolve())
    for source in raw.get("sources") or []:
        url = source.get("url") if isinstance(source, dict) else None
        if isinstance(url, str) and url and "://" not in url and not Path(url).is_absolute():
            source["url"] = str((base / url).resolve())


def _environment_overrides(raw: dict[str, Any]) -> dict[str, Any]:
    flat = {
        "EXCHANGE_DATABASE_URL": ("database", "url"),
        "EXCHANGE_TIMEZONE": ("timezone",),
        "EXCHANGE_LOG_LEVEL": ("log_level",),
    }
    for name, value in os.environ.items():
        if not name.startswith("EXCHANGE_"):
            continue
        if name in flat:
            keys: tuple[str, ...] = flat[name]
        elif "__" in name:
            keys = tuple(part.lower() for part in name.removeprefix("EXCHANGE_").split("__"))
        else:
            continue
        target = raw
        for key in keys[:-1]:
            target = target.setdefault(key, {})
            if not isinstance(target, dict):
                raise ConfigError(f"{name}: {key} is not a section")
        target[keys[-1]] = value
    return raw
