"""``exchange config check``: every problem at once, then each source reached once (a real local server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.helpers import Cli, QuietHandler, alert, feed, http_server

THREE_MISTAKES = """
timezone = "America/Denver"

[lifecycle]
end_after_missed_pols = 3

[publish]
intervall_s = 300

[[sources]]
name = "waze"
url = "https://example.org/feed"
intervl_s = 60
"""


class _Upstream(QuietHandler):
    status = 200
    hits: list[str]
    alerts: tuple[dict[str, Any], ...] = (alert("a-1"), alert("a-2"))

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.answer(self.status, feed(0, alerts=list(self.alerts), jams=[]) if self.status == 200 else b"")


@pytest.fixture
def upstream() -> Iterator[tuple[str, type[_Upstream]]]:
    handler = type("Upstream", (_Upstream,), {"hits": []})
    with http_server(handler) as url:
        yield url, handler


def _config(tmp_path: Path, url: str, *, extra: str = "") -> Path:
    path = tmp_path / "exchange.toml"
    path.write_text(f"""
[[sources]]
name = "waze"
url = "{url}/feed?format=1"
retries = 0
{extra}
""")
    return path


def test_every_mistake_is_reported_with_did_you_mean(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "exchange.toml"
    path.write_text(THREE_MISTAKES)
    run = cli("-c", str(path), "config", "check")
    assert run.code == 2, run
    assert run.out.splitlines() == [
        "lifecycle.end_after_missed_pols: unknown key; did you mean 'end_after_missed_polls'?",
        "publish.intervall_s: unknown key; did you mean 'interval_s'?",
        "source 'waze': intervl_s: unknown key; did you mean 'interval_s'?",
    ]
    assert run.err == f"{path}: 3 problem(s); nothing else was checked\n"
    as_json = cli("-c", str(path), "config", "check", "--format", "json")
    report = json.loads(as_json.out)
    assert as_json.code == 2 and report["valid"] is False and report["exit_code"] == 2
    assert [p["location"] for p in report["problems"]] == [
        "lifecycle.end_after_missed_pols", "publish.intervall_s", "source 'waze': intervl_s"]


def test_a_bad_environment_variable_is_named(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "exchange.toml"
    path.write_text('[lifecycle]\nsuspect_ratio = 0.3\n')
    monkeypatch.setenv("EXCHANGE_LIFECYCLE__SUSPECT_RATIO", "lots")
    run = cli("-c", str(path), "config", "check", "--offline")
    assert run.code == 2 and run.out == ("environment variable EXCHANGE_LIFECYCLE__SUSPECT_RATIO: Input should be a "
                                         "valid number, unable to parse string as a number\n"), run


def test_a_reachable_source_is_ok_with_bytes_and_items(
    cli: Cli, tmp_path: Path, upstream: tuple[str, type[_Upstream]]
) -> None:
    url, handler = upstream
    run = cli("-c", str(_config(tmp_path, url)), "config", "check")
    assert run.code == 0, run
    lines = run.out.splitlines()
    assert lines[0].startswith("http: ok: ") and lines[2] == "network: skipped: no [network]: events are not " \
        "matched to roads"
    assert lines[1] == f"store: ok: {tmp_path / 'data' / 'exchange.db'} does not exist yet: created on first use"
    assert lines[3].startswith(f"source waze: ok: {url}/feed?format=1: ") and " bytes, 2 items in " in lines[3]
    assert handler.hits == ["/feed?format=1"]
    assert not (tmp_path / "data" / "exchange.db").exists(), "a check stores nothing"


def test_the_check_logs_in_the_format_asked_for(
    cli: Cli, tmp_path: Path, upstream: tuple[str, type[_Upstream]]
) -> None:
    """Found in a cold trial: `--log-format json` (and $EXCHANGE_LOG_FORMAT) gave JSON lines to every command
    but `config check`, whose requests a log shipper then could not read."""
    url, _handler = upstream
    run = cli("--log-format", "json", "-v", "-c", str(_config(tmp_path, url)), "config", "check")
    assert run.code == 0, run
    logged = [json.loads(line) for line in run.err.splitlines() if line.startswith("{")]
    assert any(entry["logger"] == "httpx" and "HTTP Request" in entry["message"] for entry in logged), run.err
    path = _config(tmp_path, url)  # and the file's log_format, as every other command reads it
    path.write_text('log_format = "json"\n' + path.read_text(encoding="utf-8"), encoding="utf-8")
    run = cli("-v", "-c", str(path), "config", "check")
    assert run.code == 0 and any(line.startswith('{"time"') for line in run.err.splitlines()), run.err


def test_a_source_answering_500_fails_the_check_naming_it(
    cli: Cli, tmp_path: Path, upstream: tuple[str, type[_Upstream]]
) -> None:
    url, handler = upstream
    handler.status = 500
    path = _config(tmp_path, url)
    run = cli("-c", str(path), "config", "check")
    assert run.code == 1, run
    assert f"source waze: failed: {url}/feed?format=1 answered HTTP 500 (after 1 attempts)" in run.out.splitlines()
    assert run.err == f"{path}: 1 of 4 check(s) did not pass\n"
    report = json.loads(cli("-c", str(path), "config", "check", "-f", "json").out)
    (source,) = [check for check in report["checks"] if check["what"] == "source waze"]
    assert report["exit_code"] == 1 and source["status"] == "failed" and "HTTP 500" in source["detail"]


def test_a_source_whose_every_item_is_rejected_fails_the_check(
    cli: Cli, tmp_path: Path, upstream: tuple[str, type[_Upstream]],
) -> None:
    """Found in a cold trial: a layer whose fields were renamed was "ok: 5 items, 5 rejected" (exit 0)."""
    url, handler = upstream
    handler.alerts = (alert("a-1", location={"x": 999.0, "y": 40.0}), alert("a-2", location={"x": 999.0, "y": 40.0}))
    run = cli("-c", str(_config(tmp_path, url)), "config", "check")
    assert run.code == 1, run
    (line,) = [line for line in run.out.splitlines() if line.startswith("source waze: failed: ")]
    assert "every one of its 2 items was rejected (the first: " in line and "field names changed?" in line


def test_a_name_used_twice_is_listed_with_the_other_mistakes(cli: Cli, tmp_path: Path) -> None:
    """Found in a cold trial: two sources named alike were reported only once every other mistake was mended."""
    path = tmp_path / "exchange.toml"
    path.write_text(THREE_MISTAKES + '[[sources]]\nname = "waze"\nurl = "https://example.org/other"\n')
    run = cli("-c", str(path), "config", "check")
    assert run.code == 2, run
    assert "sources[1].name: source name 'waze' is used twice" in run.out.splitlines(), run.out
    assert run.err == f"{path}: 4 problem(s); nothing else was checked\n"


def test_offline_does_not_fetch(cli: Cli, tmp_path: Path, upstream: tuple[str, type[_Upstream]]) -> None:
    url, handler = upstream
    handler.status = 500
    run = cli("-c", str(_config(tmp_path, url)), "config", "check", "--offline")
    assert run.code == 0, run
    assert "source waze: skipped: --offline" in run.out.splitlines() and handler.hits == []
    assert run.err.endswith("valid; 2 check(s) passed, 2 skipped (sources not reached: --offline)\n"), run.err


def test_offline_finds_a_source_without_a_url(cli: Cli) -> None:
    """Found in a cold trial: the embedded defaults (a Waze source with no url) were "valid" offline,
    and `sync` then failed on it: a missing url needs no network to see."""
    run = cli("config", "check", "--offline")
    assert run.code == 2 and "source waze: invalid: no url: set it in its [[sources]] entry" in run.out, run
    report = json.loads(cli("config", "check", "--offline", "--format", "json").out)
    assert report["valid"] is False and report["exit_code"] == 2, report  # it said valid, exit code 2


def test_a_missing_token_variable_is_named(
    cli: Cli, tmp_path: Path, upstream: tuple[str, type[_Upstream]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = upstream
    monkeypatch.delenv("CHECK_TOKEN", raising=False)
    path = _config(tmp_path, url, extra='token_env = "CHECK_TOKEN"\n[[sources]]\nname = "off"\nenabled = false\n'
                                      f'url = "{url}/off"')
    run = cli("-c", str(path), "config", "check")
    assert run.code == 2, run
    assert "source waze: invalid: environment variable CHECK_TOKEN (token_env) is not set" in run.out.splitlines()
    assert "source off: skipped: disabled" in run.out.splitlines() and handler.hits == []


def test_an_unusable_ca_bundle_and_a_missing_network_are_invalid(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "exchange.toml"
    path.write_text('[http]\nca_bundle = "missing.pem"\n[network]\npath = "nowhere.osm"\n')
    run = cli("-c", str(path), "config", "check", "--offline")
    assert run.code == 2, run
    assert f"http: invalid: [http] ca_bundle {tmp_path / 'missing.pem'}: no such file" in run.out.splitlines()
    assert f"network: invalid: network.path {tmp_path / 'nowhere.osm'} does not exist" in run.out.splitlines()


def test_help_explains_the_exit_codes(cli: Cli) -> None:
    run = cli("config", "check", "--help")
    assert run.code == 0 and "Exit 0 when all is well, 2 when the configuration is invalid" in " ".join(
        run.out.split())


def test_a_city_source_counts_the_rows_a_sync_would_reject(cli: Cli, tmp_path: Path) -> None:
    """Found in a cold trial: rows with a bad date or shape were counted only by the sync."""
    rows = tmp_path / "closures.csv"
    line = '"LINESTRING (-122.300788 37.809578, -122.302087 37.810233)"'
    rows.write_text("id,type,street,start,end,wkt\n"
                    f"ok,ROAD_CLOSED,9th Street,2026-12-01 08:00,2026-12-02 08:00,{line}\n"
                    f"bad-date,ROAD_CLOSED,9th Street,2026-13-01 08:00,2026-12-02 08:00,{line}\n"
                    'bad-shape,ROAD_CLOSED,9th Street,2026-12-01 08:00,2026-12-02 08:00,"LINESTRING (x)"\n'
                    "short,ROAD_CLOSED\n", encoding="utf-8")
    path = tmp_path / "exchange.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n[[sources]]\nname = "city"\nkind = "csv"\nurl = "{rows}"\n'
                    'geometry = { type = "wkt", column = "wkt" }\nmapping = { id = "id" }\n', encoding="utf-8")
    run = cli("-c", str(path), "config", "check")
    assert run.code == 0, run
    (line_out,) = [out for out in run.out.splitlines() if out.startswith("source city: ok:")]
    assert ", 4 items" not in line_out and "3 items, 3 rejected (the first: " in line_out, line_out


def test_a_network_of_another_place_than_the_stores_events_is_invalid(cli: Cli, tmp_path: Path, testdata: Path) -> None:
    """Found in a cold trial: West Oakland's extract for a store of New York's Waze reports passed the check
    ("network: ok"), and then every publish refused it and the daemon ran without it."""
    path = tmp_path / "exchange.toml"
    network = testdata / "osm" / "West-Oakland.osm.bz2"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n[[sources]]\nname = "waze"\nurl = "http://127.0.0.1:1/x"\n'
                    f'[network]\npath = "{network}"\n')
    assert cli("-c", str(path), "config", "check", "--offline").code == 0, "an empty store: nothing to compare"
    assert cli("-c", str(path), "replay", str(testdata / "waze_feed" / "nyc_full_feed_20190322.json")).code == 0
    run = cli("-c", str(path), "config", "check", "--offline")
    assert run.code == 2, run
    line = next(line for line in run.out.splitlines() if line.startswith("network: "))
    assert line.startswith(f"network: invalid: network.path {network} holds none of the store's ") and \
        "event(s) in its area: the file of another place?" in line, line
