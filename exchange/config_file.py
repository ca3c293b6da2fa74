"""Reading the configuration: the TOML file, ``EXCHANGE_*`` environment overrides, validation.

The types live in :mod:`exchange.config` (adapters import them); this module checks each
source's own keys against its adapter as well, so a typo is named before any run. The file is
read only from ``--config`` or ``$EXCHANGE_CONFIG``, never searched for.

The environment is read by pydantic-settings (``EXCHANGE_`` prefix, ``__`` between nested keys,
any case, JSON for a whole section, an empty variable as unset): ``EXCHANGE_TIMEZONE``, ``EXCHANGE_LOG_LEVEL``,
``EXCHANGE_DATA_DIR``, ``EXCHANGE_<SECTION>__<KEY>``, and ``EXCHANGE_DATABASE_URL`` for
``database.url``. It wins over the file, and a value it brought that does not validate is blamed
on its variable, not on the file.

Validation collects every problem (:class:`Problem`) rather than stopping at the first: the
file's, the environment's and each source's adapter settings, an unknown key with the nearest
known one (``did you mean 'interval_s'?``). :func:`load_config` raises the first as a one-line
:class:`ConfigProblems`; ``exchange config check`` prints them all.
"""

from __future__ import annotations

import difflib
import os
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_settings import EnvSettingsSource, SettingsError

from adapters import adapter_class
from exchange.config import Config, SourceConfig, names_used_twice
from exchange.errors import ConfigError
from exchange.redaction import register_config_secrets

__all__ = ["ConfigProblems", "Problem", "check_config", "default_config", "load_config"]

ENV_PREFIX = "EXCHANGE_"
#: variables named apart from the ``<SECTION>__<KEY>`` rule
FLAT_VARIABLES: Mapping[str, tuple[str, ...]] = {"DATABASE_URL": ("database", "url")}
DEFAULT_SOURCES = [{"name": "waze", "kind": "waze-feed", "url": ""}]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a configuration: where (``lifecycle.suspect_ratio``, ``sources[1].intervl_s``,
    ``environment variable EXCHANGE_SERVE__PORT``) and what."""

    location: str
    message: str
    #: the ``[[sources]]`` entry it is in, when it is in one that has a name
    source: str | None = None

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        return f"{where}{self.message}" + (f" (source {self.source!r})" if self.source else "")


class ConfigProblems(ConfigError):
    """Every problem of a configuration; the message is the first, with the count of the others."""

    def __init__(self, problems: list[Problem], origin: str) -> None:
        first = problems[0]
        # a problem of the file as a whole names it already; one of the environment is not the file's
        prefix = "" if not first.location or first.location.startswith("environment variable") else origin
        more = f" (and {len(problems) - 1} more: `exchange config check` lists them)" if len(problems) > 1 else ""
        super().__init__(f"{prefix}{first}{more}")
        self.problems = problems


def default_config() -> Config:
    """What runs without a file: the embedded SQLite store and one Waze source named ``waze``."""
    config, problems = check_config(None)
    if problems:
        raise ConfigProblems(problems, "configuration: ")
    assert config is not None
    return config


def load_config(path: Path | None) -> Config:
    """Read ``path`` (or ``$EXCHANGE_CONFIG``), apply environment overrides, validate.

    Raises
    ------
    ConfigProblems
        The file is missing or unreadable, or anything in it or in the environment is invalid.
    """
    config, problems = check_config(path)
    if problems:
        raise ConfigProblems(problems, f"{config_path(path) or 'configuration'}: ")
    assert config is not None
    return config


def config_path(path: Path | None) -> Path | None:
    """The file a command reads: ``path``, else ``$EXCHANGE_CONFIG``, else none (the defaults)."""
    if path is None and os.environ.get("EXCHANGE_CONFIG"):
        return Path(os.environ["EXCHANGE_CONFIG"])
    return path


def check_config(path: Path | None) -> tuple[Config | None, list[Problem]]:
    """The configuration and every problem found in it: the config only when there are none.

    A file that cannot be read or parsed is the one problem reported (nothing else can be checked).
    """
    path = config_path(path)
    if path is None:
        raw: dict[str, Any] = {"sources": [dict(source) for source in DEFAULT_SOURCES]}
    else:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None, [Problem("", f"config file {path} does not exist")]
        except (OSError, UnicodeDecodeError) as exc:
            return None, [Problem("", f"cannot read config file {path}: {exc}")]
        except tomllib.TOMLDecodeError as exc:
            return None, [Problem("", f"{path}: invalid TOML: {exc}")]
        nul = _first_nul(raw)
        if nul is not None:  # no path, URL or name holds one; the OS would refuse it with a traceback
            return None, [Problem(nul, "contains a NUL character")]
        _resolve_relative_paths(raw, path.parent)
    try:
        environment, origins = environment_overrides()
    except ConfigError as exc:  # "environment variable NAME: problem"
        variable, _, problem = exc.message.partition(": ")
        return None, [Problem(variable, problem)]
    merged = _merge(raw, environment)
    problems: list[Problem] = []
    config: Config | None = None
    try:
        config = Config.model_validate(merged)
    except ValidationError as exc:
        problems.extend(_problems(exc, Config, (), merged, environment, origins))
        # the model's own check of names runs only once every field is valid: said with the others
        said = {problem.message for problem in problems}
        entries = merged.get("sources")
        names = [entry.get("name") if isinstance(entry, Mapping) else None
                 for entry in (entries if isinstance(entries, list) else ())]
        for index, name in names_used_twice(names):
            twice = Problem(f"sources[{index}].name", f"source name {name!r} is used twice")
            if twice.message not in said:
                problems.append(twice)
    problems.extend(_adapter_problems(merged.get("sources"), environment, origins))
    if problems or config is None:
        return None, problems
    config.path = path
    register_config_secrets(config)  # the tokens its sources name are masked in every log line
    return config, []


def environment_overrides() -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """The ``EXCHANGE_*`` variables as nested config values (read by pydantic-settings), and which
    variable set each path (to blame it for a value that does not validate).

    Raises
    ------
    ConfigError
        A variable holding a whole section is not valid JSON.
    """
    origins: dict[tuple[str, ...], str] = {}
    flat: dict[tuple[str, ...], str] = {}
    for name in os.environ:
        if not name.upper().startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX):].upper()
        if rest in FLAT_VARIABLES:
            flat[FLAT_VARIABLES[rest]] = name
            continue
        keys = tuple(part.lower() for part in rest.split("__"))
        if keys[0] == "sources" and len(keys) > 1 and os.environ[name]:
            # a list has no keys to reach one entry by: pydantic-settings would say "sources: not a valid list"
            raise ConfigError(f"environment variable {name}: a [[sources]] entry cannot be set one key at a time; "
                              "set the whole list as JSON in EXCHANGE_SOURCES, or edit the file (a source's token "
                              "goes in the variable its token_env names)")
        if keys[0] in Config.model_fields and keys[0] != "path":
            origins[keys] = name
    source = EnvSettingsSource(
        Config,  # type: ignore[arg-type]  # only its fields are read: the type of each variable
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", case_sensitive=False,
        env_ignore_empty=True,  # an empty variable is not set (EXCHANGE_DATA_DIR="" is not the cwd)
    )
    try:
        values: dict[str, Any] = source()
    except SettingsError as exc:
        field = str(exc).split('"')[1] if '"' in str(exc) else ""
        name = origins.get((field,), f"{ENV_PREFIX}{field.upper()}")
        raise ConfigError(f"environment variable {name}: not valid JSON for [{field}] ({exc.__cause__})") from None
    values.pop("path", None)  # where the file was read from is not a setting
    for keys, name in flat.items():  # EXCHANGE_DATABASE_URL wins over EXCHANGE_DATABASE__URL
        if os.environ[name]:
            _merge(values, _nested(keys, os.environ[name]))
            origins[keys] = name
    return values, origins


def _nested(keys: tuple[str, ...], value: Any) -> dict[str, Any]:
    for key in reversed(keys):
        value = {key: value}
    return typing.cast(dict[str, Any], value)


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` into ``base``, section by section (a value replaces; two tables merge)."""
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def _problems(
    exc: ValidationError,
    model: type[BaseModel],
    prefix: tuple[str | int, ...],
    merged: Mapping[str, Any],
    environment: Mapping[str, Any],
    origins: Mapping[tuple[str, ...], str],
    *,
    also_known: Iterable[str] = (),
) -> list[Problem]:
    """One problem per pydantic error of ``model``, whose values sit at ``prefix`` of the whole config."""
    found = []
    for error in exc.errors():
        inner = tuple(error.get("loc", ()))
        if error.get("type") == "extra_forbidden":
            known = _known_keys(model, inner[:-1], also_known if len(inner) == 1 else ())
            message = "unknown key" + _did_you_mean(str(inner[-1]), known)
        else:
            message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        found.append(_locate((*prefix, *inner), message, merged, environment, origins, by_name=bool(also_known)))
    return found


def _adapter_problems(
    sources: Any, environment: Mapping[str, Any], origins: Mapping[tuple[str, ...], str]
) -> list[Problem]:
    """Each source's own keys against its adapter's settings, whatever else is wrong with the file."""
    if not isinstance(sources, list):
        return []
    found: list[Problem] = []
    merged = {"sources": sources}
    for index, entry in enumerate(sources):
        if not isinstance(entry, dict):
            continue
        kind = entry.get("kind", SourceConfig.model_fields["kind"].default)
        if not isinstance(kind, str):
            continue  # the source's own validation names it
        try:
            cls = adapter_class(kind)
        except ConfigError as exc:
            found.append(_locate(("sources", index, "kind"), exc.message, merged, environment, origins,
                                 by_name=True))
            continue
        settings = {key: value for key, value in entry.items() if key not in SourceConfig.model_fields}
        try:
            cls.settings_model.model_validate(settings)
        except ValidationError as exc:
            found.extend(_problems(exc, cls.settings_model, ("sources", index), merged, environment, origins,
                                   also_known=SourceConfig.model_fields))
    return found


def _locate(
    loc: tuple[Any, ...],
    message: str,
    merged: Mapping[str, Any],
    environment: Mapping[str, Any],
    origins: Mapping[tuple[str, ...], str],
    *,
    by_name: bool = False,
) -> Problem:
    """A problem at ``loc``: blamed on the environment variable that brought the value, if one did.

    With ``by_name`` (an adapter's own key), a source with a name is named in the location:
    ``source 'permits': mapping.stret``; otherwise the name follows: ``sources[1].priority``.
    """
    source = None
    if len(loc) > 1 and loc[0] == "sources" and isinstance(loc[1], int):
        entries = merged.get("sources")
        entry = entries[loc[1]] if isinstance(entries, list) and loc[1] < len(entries) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        source = name if isinstance(name, str) else None
    if _from_environment(environment, loc):
        named = [keys for keys in origins if tuple(loc[: len(keys)]) == keys]
        if named:
            keys = max(named, key=len)
            rest = _dotted(loc[len(keys):])
            return Problem(f"environment variable {origins[keys]}", f"{rest}: {message}" if rest else message,
                           source)
    if by_name and source is not None:
        return Problem(f"source {source!r}: {_dotted(loc[2:])}", message)
    return Problem(_dotted(loc) or "(top level)", message, source)


def _from_environment(environment: Any, loc: tuple[Any, ...]) -> bool:
    node = environment
    for part in loc:
        if not isinstance(node, dict):
            return True  # the environment gave a whole value above this location
        if part not in node:
            return False
        node = node[part]
    return True


def _dotted(loc: Iterable[Any]) -> str:
    """``("sources", 0, "url")`` as written: ``sources[0].url``."""
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int) and parts:
            parts[-1] = f"{parts[-1]}[{part}]"
        else:
            parts.append(str(part))
    return ".".join(parts)


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...], also_known: Iterable[str]) -> list[str]:
    """The keys the table at ``loc`` of ``model`` takes (list indexes are skipped)."""
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        field = current.model_fields.get(str(part))
        current = _model_in(field.annotation) if field is not None else None
    known = list(current.model_fields) if current is not None else []
    return [key for key in (*known, *also_known) if key != "path" or current is not Config]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds: itself, or inside ``X | None`` / ``list[X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) in (typing.Union, list):
        for argument in typing.get_args(annotation):
            found = _model_in(argument)
            if found is not None:
                return found
    return None


def _did_you_mean(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _first_nul(value: Any, where: str = "") -> str | None:
    """The key of the first string (or key) holding a NUL character, or None.

    >>> _first_nul({"publish": {"out_dir": "a\\x00b"}}), _first_nul({"sources": [{"name": "x"}]})
    ('publish.out_dir', None)
    """
    if isinstance(value, str):
        return where or "(top level)" if "\x00" in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        inner = f"{where}.{key}" if where and isinstance(key, str) else f"{where}[{key}]" if where else str(key)
        if isinstance(key, str) and "\x00" in key:
            return inner
        found = _first_nul(child, inner)
        if found is not None:
            return found
    return None


def _resolve_relative_paths(raw: dict[str, Any], base: Path) -> None:
    """Local feed paths and the data dir in a config file are relative to that file, not the cwd."""
    if isinstance(raw.get("data_dir"), str) and not Path(raw["data_dir"]).expanduser().is_absolute():
        raw["data_dir"] = str((base / raw["data_dir"]).resolve())
    network = raw.get("network")
    path = network.get("path") if isinstance(network, dict) else None
    if isinstance(network, dict) and isinstance(path, str) and not Path(path).expanduser().is_absolute():
        network["path"] = str((base / path).resolve())
    http = raw.get("http")
    bundle = http.get("ca_bundle") if isinstance(http, dict) else None
    if isinstance(http, dict) and isinstance(bundle, str) and not Path(bundle).expanduser().is_absolute():
        http["ca_bundle"] = str((base / bundle).resolve())
    for source in raw.get("sources") or []:
        url = source.get("url") if isinstance(source, dict) else None
        if isinstance(url, str) and url and "://" not in url and not Path(url).is_absolute():
            source["url"] = str((base / url).resolve())
