from __future__ import annotations

import re
from pathlib import Path

import pytest

from adapters.waze import WazeFeedSettings
from exchange.config import (
    Config,
    HttpConfig,
    LifecycleConfig,
    NetworkConfig,
    NotifyConfig,
    PublishConfig,
    RetentionConfig,
    ServeConfig,
    SourceConfig,
)
from exchange.config_file import load_config
from exchange.errors import ConfigError
from tests.support.paths import ROOT

EXAMPLE = ROOT / "config" / "exchange.example.toml"


def test_example_and_demo_configs_load(data_dir: Path) -> None:
    example = load_config(EXAMPLE)
    assert example.timezone == "America/New_York" and example.sources[0].settings["token_env"] == "WAZE_FEED_TOKEN"
    demo = load_config(ROOT / "config" / "demo.toml")
    assert Path(demo.sources[0].settings["url"]).is_file(), "demo paths resolve relative to the config file"


@pytest.mark.parametrize(
    "model", [Config, LifecycleConfig, NetworkConfig, PublishConfig, ServeConfig, NotifyConfig, HttpConfig,
              RetentionConfig, SourceConfig, WazeFeedSettings]
)
def test_every_setting_is_documented_in_the_example(model: type) -> None:
    text = EXAMPLE.read_text()
    for name in model.model_fields:  # type: ignore[attr-defined]
        if model is Config and name == "path":
            continue
        section = {"sources": "sources", "database": "database", "lifecycle": "lifecycle", "network": "network",
                   "centerline": "network.centerline", "publish": "publish", "serve": "serve",
                   "notify": "notify", "http": "http", "retention": "retention"}.get(name)
        if section:
            assert re.search(rf"^#? ?\[\[?{re.escape(section)}\]\]?$", text, re.MULTILINE), f"no [{section}]"
            continue
        assert re.search(rf"^#? ?{name} =", text, re.MULTILINE), f"{model.__name__}.{name} is not in {EXAMPLE.name}"


def test_no_config_means_the_embedded_default(data_dir: Path) -> None:
    config = load_config(None)
    assert config.database_url == f"sqlite:///{data_dir / 'exchange.db'}"
    assert [s.name for s in config.sources] == ["waze"]


def test_exchange_config_variable_is_used(data_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('timezone = "Europe/Paris"\n')
    monkeypatch.setenv("EXCHANGE_CONFIG", str(path))
    assert load_config(None).timezone == "Europe/Paris"


def test_missing_file_is_named(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_nested_environment_override_is_validated(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXCHANGE_LIFECYCLE__SUSPECT_RATIO", "lots")
    with pytest.raises(ConfigError, match=r"lifecycle\.suspect_ratio"):
        load_config(None)
