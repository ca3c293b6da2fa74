from __future__ import annotations

import re
from pathlib import Path

import pytest

from adapters.waze import WazeFeedSettings
from exchange.config import (
    CatalogueConfig,
    CatalogueFeedConfig,
    Config,
    Datex2Settings,
    ExportConfig,
    HttpConfig,
    LifecycleConfig,
    NetworkConfig,
    NotifyConfig,
    PublishConfig,
    RetentionConfig,
    ServeConfig,
    SourceConfig,
    WebConfig,
)
from exchange.config_file import check_config, load_config
from exchange.errors import ConfigError
from exchange.redaction import redact
from tests.support.paths import ROOT

EXAMPLE = ROOT / "config" / "exchange.example.toml"


def test_example_and_demo_configs_load(data_dir: Path) -> None:
    example = load_config(EXAMPLE)
    assert example.timezone == "America/New_York" and example.sources[0].settings["token_env"] == "WAZE_FEED_TOKEN"
    demo = load_config(ROOT / "config" / "demo.toml")
    assert Path(demo.sources[0].settings["url"]).is_file(), "demo paths resolve relative to the config file"


@pytest.mark.parametrize(
    "model", [Config, LifecycleConfig, NetworkConfig, PublishConfig, ServeConfig, NotifyConfig, HttpConfig,
              RetentionConfig, SourceConfig, WazeFeedSettings, CatalogueConfig, CatalogueFeedConfig, ExportConfig,
              WebConfig, Datex2Settings]
)
def test_every_setting_is_documented_in_the_example(model: type) -> None:
    text = EXAMPLE.read_text()
    for name in model.model_fields:  # type: ignore[attr-defined]
        if model is Config and name == "path":
            continue
        section = {"sources": "sources", "database": "database", "lifecycle": "lifecycle", "network": "network",
                   "centerline": "network.centerline", "publish": "publish", "serve": "serve",
                   "notify": "notify", "http": "http", "retention": "retention", "catalogue": "catalogue", "web": "web",
                   "export": "export", "feeds": 'catalogue.feeds."cifs.xml"', "datex2": "publish.datex2"}.get(name)
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
    """The error is blamed on the variable that brought the value, not on the configuration."""
    monkeypatch.setenv("EXCHANGE_LIFECYCLE__SUSPECT_RATIO", "lots")
    with pytest.raises(ConfigError) as caught:
        load_config(None)
    assert caught.value.message == ("environment variable EXCHANGE_LIFECYCLE__SUSPECT_RATIO: Input should be a "
                                    "valid number, unable to parse string as a number")


def test_a_source_key_from_the_environment_is_named_by_its_variable(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Found in a cold trial: EXCHANGE_SOURCES__2__URL=x said "sources: Input should be a valid list"."""
    path = tmp_path / "exchange.toml"
    path.write_text('[[sources]]\nname = "waze"\nurl = "https://example.org/feed"\n')
    monkeypatch.setenv("EXCHANGE_SOURCES__2__URL", "x")
    with pytest.raises(ConfigError, match=r"^environment variable EXCHANGE_SOURCES__2__URL: a \[\[sources\]\] entry "
                                          r"cannot be set one key at a time; set the whole list as JSON"):
        load_config(path)
    monkeypatch.delenv("EXCHANGE_SOURCES__2__URL")
    monkeypatch.setenv("EXCHANGE_SOURCES", '[{"name": "other", "url": "https://example.org/other"}]')
    assert [source.name for source in load_config(path).sources] == ["other"]


def test_an_environment_error_is_not_blamed_on_the_file(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "exchange.toml"
    path.write_text("[serve]\nport = 8081\n")
    monkeypatch.setenv("EXCHANGE_SERVE__PORT", "eighty")
    with pytest.raises(ConfigError, match=r"^environment variable EXCHANGE_SERVE__PORT: Input should be a valid "
                                          r"integer"):
        load_config(path)
    monkeypatch.setenv("EXCHANGE_SERVE__PORT", "8082")
    path.write_text("[serve]\nport = 99999\n[lifecycle]\nsuspect_window = 7\n")
    monkeypatch.setenv("EXCHANGE_LIFECYCLE__SUSPECT_WINDOW", "9")
    assert load_config(path).serve.port == 8082, "the environment wins over the file"
    monkeypatch.delenv("EXCHANGE_SERVE__PORT")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: serve\.port: Input should be less than"):
        load_config(path)
    monkeypatch.setenv("EXCHANGE_SERVE", "{not json")
    with pytest.raises(ConfigError, match=r"^environment variable EXCHANGE_SERVE: not valid JSON for \[serve\]"):
        load_config(path)


def test_every_documented_variable_overrides_the_file(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "exchange.toml"
    path.write_text('timezone = "Europe/Paris"\nlog_level = "INFO"\ndata_dir = "here"\n'
                    '[database]\nurl = "sqlite:///file.db"\n[lifecycle]\nend_after_missed_polls = 4\n'
                    '[publish]\npublisher = "Paris"\n')
    monkeypatch.setenv("EXCHANGE_TIMEZONE", "America/Denver")
    monkeypatch.setenv("EXCHANGE_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("EXCHANGE_DATA_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("EXCHANGE_DATABASE_URL", "sqlite:///env.db")
    monkeypatch.setenv("EXCHANGE_LIFECYCLE__END_AFTER_MISSED_POLLS", "5")
    monkeypatch.setenv("exchange_publish__publisher", "Denver")  # any case
    config = load_config(path)
    assert (config.timezone, config.log_level, config.database_url) == ("America/Denver", "WARNING", "sqlite:///env.db")
    assert config.resolved_data_dir == tmp_path / "elsewhere"
    assert config.lifecycle.end_after_missed_polls == 5 and config.publish.publisher == "Denver"
    assert config.lifecycle.suspect_window == 5 and config.path == path
    monkeypatch.setenv("EXCHANGE_DATA_DIR", "")  # empty is unset: the file's data_dir, relative to the file
    monkeypatch.setenv("EXCHANGE_DATABASE_URL", "")
    config = load_config(path)
    assert config.resolved_data_dir == tmp_path / "here" and config.database_url == "sqlite:///file.db"


def test_every_problem_is_found_at_once(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "exchange.toml"
    path.write_text('[lifecycle]\nend_after_missed_pols = 3\n[publish]\ninterval_s = "soon"\n'
                    '[[sources]]\nname = "waze"\nurl = "https://example.org/feed"\nintervl_s = 60\n')
    monkeypatch.setenv("EXCHANGE_SERVE__PORT", "-1")
    config, problems = check_config(path)
    assert config is None
    assert [str(problem) for problem in problems] == [
        "lifecycle.end_after_missed_pols: unknown key; did you mean 'end_after_missed_polls'?",
        "publish.interval_s: Input should be a valid integer, unable to parse string as an integer",
        "environment variable EXCHANGE_SERVE__PORT: Input should be greater than or equal to 0",
        "source 'waze': intervl_s: unknown key; did you mean 'interval_s'?",
    ]
    monkeypatch.delenv("EXCHANGE_SERVE__PORT")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.message == (f"{path}: lifecycle.end_after_missed_pols: unknown key; did you mean "
                                    "'end_after_missed_polls'? (and 2 more: `exchange config check` lists them)")


def test_the_proxy_password_is_a_secret(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "exchange.toml"
    path.write_text('[http]\nproxy = "http://city:c0nfig-pw@proxy.internal:3128"\n')
    monkeypatch.setenv("HTTPS_PROXY", "http://city:env%2Fpw@proxy.internal:3128")
    load_config(path)
    assert redact("via http://city:c0nfig-pw@proxy.internal:3128 and env/pw") == (
        "via http://city:***@proxy.internal:3128 and ***")


def test_web_tile_url_empty_means_no_base_map() -> None:
    assert WebConfig(tile_url="").tile_url is None
    assert WebConfig(tile_url="/tiles/{z}/{x}/{y}.png").tile_url == "/tiles/{z}/{x}/{y}.png"
    for bad in ("tile.example.org/{z}/{x}/{y}.png", "https://tiles.example.org/tile.png"):
        with pytest.raises(ValueError, match="tile_url must be an http"):
            WebConfig(tile_url=bad)


def test_a_nul_character_is_a_config_error(tmp_path: Path) -> None:
    """Found by bench/fuzz_readers.py: ``data_dir = "\\u0000"`` left `load_config` with a ValueError
    traceback (embedded null byte, from resolving the path)."""
    path = tmp_path / "exchange.toml"
    path.write_text('data_dir = "\\u0000x"\n[publish]\nout_dir = "ok"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"data_dir: contains a NUL character"):
        load_config(path)


def test_a_bad_source_name_is_said_in_words(tmp_path: Path) -> None:
    """Found in a cold trial: the error quoted the name's regular expression."""
    path = tmp_path / "exchange.toml"
    path.write_text('[[sources]]\nname = "Waze North"\nurl = "https://example.org/feed"\n')
    config, problems = check_config(path)
    assert config is None and [str(problem) for problem in problems] == [
        "sources[0].name: 'Waze North' is not a source name: lowercase letters, digits, '_', '.', '-' (first a "
        "letter or digit), at most 100 characters (source 'Waze North')"]
