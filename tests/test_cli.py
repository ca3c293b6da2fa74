"""The command line end to end, in-process: exit codes, stdout/stderr split, formats, errors."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.helpers import Cli, alert, feed, jam
from tests.support.paths import DEMO, POLLS, ROOT


def test_demo_replay_and_inspect(cli: Cli) -> None:
    result = cli("--config", str(DEMO), "replay", *map(str, POLLS))
    assert result.code == 0, result
    assert f"replayed {len(POLLS)} of {len(POLLS)} file(s)" in result.err and "0 rejected" in result.err
    assert result.out == ""

    listing = cli("--config", str(DEMO), "inspect", "events", "--format", "json")
    assert listing.code == 0, listing
    records = json.loads(listing.out)
    for key in ("id", "source", "kind", "source_id", "category", "subtype", "status", "geometry"):
        assert all(key in record for record in records), key
    assert {r["status"] for r in records} == {"active", "ended"}, "every status unless --status is given"
    jam_record = next(r for r in records if r["kind"] == "jam")
    assert jam_record["source_id"].isdigit() and jam_record["geometry"]["type"] == "LineString"

    table = cli("--config", str(DEMO), "inspect", "events", "--limit", "3")
    assert table.code == 0 and "showing 3 of" in table.err

    sync = cli("--config", str(DEMO), "sync")
    assert sync.code == 0 and "duplicate" in sync.err, sync


def test_machine_formats_agree(cli: Cli, tmp_path: Path) -> None:
    snapshot = tmp_path / "one.json"
    snapshot.write_bytes(feed(0, alerts=[alert("a1", street="O'Brien & <Sons> \"Rd\", Zürich")], jams=[jam(5)]))
    assert cli("replay", str(snapshot)).code == 0
    as_json = json.loads(cli("inspect", "events", "--format", "json").out)
    lines = cli("inspect", "events", "--format", "jsonl").out.splitlines()
    assert [json.loads(line) for line in lines] == as_json
    geojson = json.loads(cli("inspect", "events", "--format", "geojson").out)
    assert geojson["type"] == "FeatureCollection" and len(geojson["features"]) == 2
    rows = list(csv.DictReader(io.StringIO(cli("inspect", "events", "--format", "csv").out)))
    assert {row["id"] for row in rows} == {"waze:alert:a1", "waze:jam:5"}
    assert next(r for r in as_json if r["id"] == "waze:alert:a1")["street"] == "O'Brien & <Sons> \"Rd\", Zürich"


def test_filters(cli: Cli, tmp_path: Path) -> None:
    snapshot = tmp_path / "one.json"
    snapshot.write_bytes(feed(0, alerts=[
        alert("crash", street="Market Street", location={"x": -122.30, "y": 37.80}),
        alert("closed", type="ROAD_CLOSED", subtype="ROAD_CLOSED_EVENT", street="Broadway",
              location={"x": -122.27, "y": 37.81}),
    ], jams=[jam(9)]))
    cli("replay", str(snapshot))

    def ids(*args: str) -> set[str]:
        result = cli("inspect", "events", "--format", "json", *args)
        assert result.code == 0, result
        return {record["id"] for record in json.loads(result.out)}

    assert ids("--kind", "alert") == {"waze:alert:crash", "waze:alert:closed"}
    assert ids("--category", "road_closed") == {"waze:alert:closed"}
    assert ids("--street", "market") == {"waze:alert:crash"}
    assert ids("--bbox", "-122.31,37.79,-122.29,37.805") == {"waze:alert:crash"}
    assert ids("--status", "ended") == set()
    assert ids("--source", "waze", "--limit", "1").__len__() == 1
    assert ids("--since", "1h") == {"waze:alert:crash", "waze:alert:closed", "waze:jam:9"}
    assert ids("--since", "2100-01-01T00:00:00") == set()


def test_inspect_event_shows_revisions(cli: Cli, tmp_path: Path) -> None:
    # poll 1 adds thumbs-up (a measure: the row keeps it, no revision), poll 2 moves it to another street
    for poll, thumbs, street in ((0, 0, "7th Street"), (1, 2, "7th Street"), (2, 3, "8th Street")):
        path = tmp_path / f"p{poll}.json"
        path.write_bytes(feed(poll, alerts=[alert("a1", nThumbsUp=thumbs, street=street)]))
        assert cli("replay", str(path)).code == 0
    result = cli("inspect", "event", "waze:alert:a1", "--format", "json")
    assert result.code == 0, result
    record = json.loads(result.out)[0]
    assert [r["action"] for r in record["revisions"]] == ["created", "updated"]
    assert record["revisions"][1]["changes"] == {"street": ["7th Street", "8th Street"]}
    assert record["thumbs_up"] == 3 and record["street"] == "8th Street"
    assert record["seen_by"] == [{"source": "waze", "missed_polls": 0}]
    table = cli("inspect", "event", "waze:alert:a1")
    assert table.code == 0 and 'street: "7th Street" -> "8th Street"' in table.out


def test_inspect_event_tables_show_changes_whole_and_times_as_times(cli: Cli) -> None:
    """Found in a cold trial: a revision's changes were cut at 80 characters mid-word (a new description never
    showed), times were epoch milliseconds under a title naming the zone, and the geometry was cut mid-number."""
    added = cli("closure", "add", "--street", "Main Street", "--polyline", "40.7 -74.0 40.701 -74.0 40.702 -74.001",
                "--start", "2026-12-01T08:00:00-05:00")
    assert added.code == 0, added
    closure_id = added.out.strip()
    longer = "Water main, then valves and hydrants: detour via Elm Street and Oak Avenue for the whole duration"
    updated = cli("closure", "update", closure_id, "--start", "2026-12-02T08:00:00-05:00", "--description", longer)
    assert updated.code == 0, updated
    table = cli("inspect", "event", closure_id)
    assert table.code == 0, table
    flat = " ".join(table.out.split())  # the table folds long text over lines
    assert "start_ms: 2026-12-01 13:00:00 -> 2026-12-02 13:00:00" in flat, flat
    assert f'details.description: null -> "{longer}"' in flat, flat
    assert "LineString of 3 points, [-74.0,40.7] to [-74.001,40.702]" in flat, flat


def test_a_revisions_numbers_are_shown_as_times_only_for_the_events_times() -> None:
    """Found in a review: any key ending in `_ms` was read as a time, so an upstream attribute of microseconds
    stopped `inspect event` with a traceback, and a duration showed as a date in 1970."""
    from zoneinfo import ZoneInfo

    from exchange.cli.inspect import _change_text

    zone = ZoneInfo("America/Denver")
    assert _change_text("attributes.edit_ms", 1764590000000000, zone) == "1764590000000000"
    assert _change_text("attributes.duration_ms", 5400000, zone) == "5400000"
    assert _change_text("start_ms", 1764590000000, zone) == "2025-12-01 04:53:20"
    assert _change_text("end_ms", 10**18, zone) == str(10**18)  # no calendar holds it: the number, no traceback


def test_runs_and_sources(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(feed(0, alerts=[alert("a1")]))
    cli("replay", str(path))
    runs = json.loads(cli("inspect", "runs", "--format", "json").out)
    assert runs[0]["status"] == "ok" and runs[0]["new"] == 1
    sources = json.loads(cli("inspect", "sources", "--format", "json").out)
    assert sources[0]["name"] == "waze" and sources[0]["active_events"] == 1
    unknown = cli("inspect", "runs", "--source", "wase")
    assert unknown.code == 3 and "no source named 'wase' (configured: waze)" in unknown.err, unknown
    assert json.loads(cli("inspect", "runs", "--source", "waze", "--format", "json").out)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("inspect", "event", "waze:alert:nope"), 3, "no event with id"),
        (("inspect", "events", "--bbox", "1,2,3"), 2, "--bbox"),
        (("inspect", "events", "--status", "open"), 2, "--status"),
        (("inspect", "events", "--since", "yesterday"), 2, "--since"),
        (("inspect", "events", "--format", "xml"), 2, "xml"),
        (("inspect", "events", "--limit", "0"), 2, "--limit"),
        (("replay", "/nonexistent/poll.json"), 3, "does not exist"),
        (("sync", "nosuchsource"), 3, "unknown source 'nosuchsource'"),
        (("frobnicate",), 2, "No such command 'frobnicate' (see `exchange --help`)"),
        (("sync", "--bogus"), 2, "No such option: --bogus (see `exchange sync --help`)"),
        (("--config",), 2, "Option '--config' requires an argument (see `exchange --help`)"),
        (("closure", "add"), 2, "Missing option '--street'"),
    ],
)
def test_errors_are_one_line_with_their_exit_code(cli: Cli, args: tuple[str, ...], code: int, message: str) -> None:
    """Usage errors too (found in a cold trial: click printed them as four lines)."""
    result = cli(*args)
    assert result.code == code, result
    assert message in result.err and "Traceback" not in result.err
    assert result.err.startswith("error: ") and len(result.err.splitlines()) == 1, result.err


def test_unreadable_feeds_fail_and_change_nothing(cli: Cli, tmp_path: Path) -> None:
    good = tmp_path / "a-good.json"
    good.write_bytes(feed(0, alerts=[alert("a1")]))
    assert cli("replay", str(good)).code == 0
    before = cli("inspect", "events", "--format", "json").out
    bad = {
        "b-malformed.json": b'{"alerts": [{"uuid": "x"',
        "c-bomb.xml": b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><rss>&b;</rss>',
        "d-xxe.xml": b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><rss><channel/></rss>',
        "e-truncated.xml": b'<rss version="2.0"><channel><item><title>alert</title>',
    }
    for name, payload in bad.items():
        (tmp_path / name).write_bytes(payload)
        result = cli("replay", str(tmp_path / name))
        assert result.code == 1, (name, result)
        assert len(result.err.strip().splitlines()) == 2 and "Traceback" not in result.err  # error + summary
    # a directory with good and bad files: every file processed, exit 1
    (tmp_path / "z-next.json").write_bytes(feed(1, alerts=[alert("a1"), alert("a2")]))
    result = cli("replay", str(tmp_path))
    assert result.code == 1 and "replayed 2 of 6 file(s)" in result.err, result
    after = json.loads(cli("inspect", "events", "--format", "json").out)
    assert {r["id"] for r in after} == {"waze:alert:a1", "waze:alert:a2"}
    assert json.loads(before)[0]["id"] == "waze:alert:a1"
    runs = json.loads(cli("inspect", "runs", "--format", "json", "--limit", "50").out)
    assert sum(run["status"] == "failed" for run in runs) == 8


def test_unreachable_upstream(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[[sources]]\nname = "dead"\nurl = "http://127.0.0.1:9/feed"\nretries = 0\n')
    result = cli("--config", str(config), "sync")
    assert result.code == 1 and "cannot reach http://127.0.0.1:9/feed" in result.err, result
    runs = json.loads(cli("--config", str(config), "inspect", "runs", "--format", "json").out)
    assert runs[0]["status"] == "failed"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('timezone = "Mars/Olympus"', "timezone: unknown IANA time zone"),
        ('colour = "blue"', "colour: unknown key"),
        ("[lifecycle]\nend_after_missed_polls = 0", "lifecycle.end_after_missed_polls"),
        ('[[sources]]\nname = "w"\nurll = "x"', "source 'w': urll: unknown key"),
        ('[[sources]]\nname = "w"\nkind = "carrier-pigeon"', "unknown source kind 'carrier-pigeon'"),
        ('[[sources]]\nname = "w"\n[[sources]]\nname = "w"', "used twice"),
        ("this is = not toml [", "invalid TOML"),
    ],
)
def test_config_errors_name_the_key(cli: Cli, tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(content)
    result = cli("--config", str(config), "inspect", "sources")
    assert result.code == 2, result
    assert message in result.err and result.err.count("\n") == 1


def test_environment_overrides(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXCHANGE_LIFECYCLE__END_AFTER_MISSED_POLLS", "1")
    for poll, alerts in enumerate(([alert("a1"), alert("a2")], [alert("a1")])):
        path = tmp_path / f"p{poll}.json"
        path.write_bytes(feed(poll, alerts=alerts))
        cli("replay", str(path))
    ended = json.loads(cli("inspect", "events", "--status", "ended", "--format", "json").out)
    assert [r["id"] for r in ended] == ["waze:alert:a2"]
    monkeypatch.setenv("EXCHANGE_DATABASE_URL", f"sqlite:///{tmp_path / 'other.db'}")
    assert json.loads(cli("inspect", "events", "--format", "json").out) == []


def test_help_everywhere(cli: Cli) -> None:
    for args in ((), ("inspect",), ("db",), ("sync",), ("replay",), ("inspect", "events"), ("run",)):
        result = cli(*args, "--help")
        assert result.code == 0 and "Usage" in result.out, args


def test_console_script_runs_without_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "exchange", "inspect", "event", "nope"],
        env={"EXCHANGE_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=False, cwd=ROOT,
    )
    assert result.returncode == 3 and result.stderr == "error: no event with id 'nope'\n"


def test_tables_fit_a_terminal(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """At 80 columns an id and a time are never broken; what does not fit is left out, and stderr says so."""
    from exchange.output import Format, write_records

    uuid = "waze:alert:2e2a71c3-b36b-43e3-a3b2-62eef6bcf70e"
    records = [{"id": uuid, "category": "POLICE", "start_time": "2026-03-02 07:20:24",
                "street": "Martin Luther King Jr Way", "attributes": {"nested": [1, 2]}}]

    def table(width: int) -> list[str]:
        out = io.StringIO()
        out.isatty = lambda: True  # type: ignore[method-assign]
        monkeypatch.setenv("COLUMNS", str(width))
        write_records(records, Format.table, title="events (times in America/Los_Angeles)", out=out,
                      columns=("id", "category", "start_time", "street", "attributes"))
        return re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue()).splitlines()

    narrow = table(80)
    assert max(map(len, narrow)) <= 80
    assert any(uuid in line and "2026-03-02 07:20:24" in line for line in narrow)
    assert "attributes left out to fit 80 columns" in capsys.readouterr().err
    wide = table(200)
    assert any('{"nested":[1,2]}' in line for line in wide), "nested values as JSON, not Python reprs"
    piped = io.StringIO()  # found in a cold trial: piped, `COLUMNS=80 exchange closure list` was 200 wide
    monkeypatch.setenv("COLUMNS", "80")
    write_records(records, Format.table, out=piped, columns=("id", "category", "start_time", "street"))
    assert max(map(len, piped.getvalue().splitlines())) <= 80, piped.getvalue()


def test_inspect_sources_says_a_disabled_source_is_disabled_and_counts_repeats_as_success(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found in a cold trial: a disabled source was "not in the config", and `last_success` skipped the
    polls that brought no new data (a 304, the same snapshot again), unlike /health and /metrics."""
    snapshot = tmp_path / "feed.json"
    snapshot.write_bytes(feed(0, alerts=[alert("a1")]))
    config = tmp_path / "exchange.toml"
    entry = f'[[sources]]\nname = "area"\nurl = "{snapshot}"\n'
    config.write_text(entry)
    monkeypatch.setenv("EXCHANGE_NOW", "2026-03-02T15:00:00Z")
    assert cli("--config", str(config), "sync").code == 0
    monkeypatch.setenv("EXCHANGE_NOW", "2026-03-02T15:05:00Z")
    again = cli("--config", str(config), "sync")
    assert again.code == 0 and "duplicate" in again.err, again
    (record,) = json.loads(cli("--config", str(config), "inspect", "sources", "--format", "json").out)
    assert record["last_success"] == "2026-03-02T15:05:00.000Z", record

    never = f'[[sources]]\nname = "never"\nurl = "{snapshot}"\nenabled = false\n'  # a source never synced
    config.write_text(entry + "enabled = false\n" + never)
    records = json.loads(cli("--config", str(config), "inspect", "sources", "--format", "json").out)
    details = {record["name"]: record["detail"] for record in records}
    assert details == {"area": "disabled in the config: not polled; 1 live event(s) kept as they are",
                       "never": "disabled in the config: not polled; 0 live event(s) kept as they are"}, records
    # found in a cold trial: a source never synced had no namespace or location (what the config says)
    never_record = next(record for record in records if record["name"] == "never")
    assert (never_record["namespace"], never_record["location"]) == ("waze", str(snapshot)), never_record
    assert set(never_record) == set(records[0]), "one shape for every source"
    # every source disabled: said so, not "no sources configured"
    refused = cli("--config", str(config), "sync")
    assert refused.code == 2 and "every source is disabled in the config (area, never)" in refused.err, refused


def test_a_network_far_from_every_event_is_warned_of(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found in a cold trial: the Helsinki extract configured for New York's Waze feed was accepted in
    silence; each of 3,536 events only said "outside the road network's area"."""
    from tests.support.paths import OSM

    new_york = [alert(f"ny-{k}", location={"x": -73.98 + k * 0.001, "y": 40.75}, street="W 34th St")
                for k in range(12)]
    snapshot = tmp_path / "feed.json"
    snapshot.write_bytes(feed(0, alerts=new_york))
    config = tmp_path / "exchange.toml"
    config.write_text(f'[network]\npath = "{OSM}"\n[[sources]]\nname = "area"\nurl = "{snapshot}"\n')
    monkeypatch.setenv("EXCHANGE_NOW", "2026-03-02T15:00:00Z")
    run = cli("--config", str(config), "sync")
    assert run.code == 0, run
    assert ("none of its 12 new or changed events lies in the road network's area: is [network] the network of "
            "this source's city?") in run.err, run.err
    oakland = tmp_path / "oakland.json"
    oakland.write_bytes(feed(1, alerts=[alert(f"oak-{k}") for k in range(12)]))
    config.write_text(f'[network]\npath = "{OSM}"\n[[sources]]\nname = "area"\nurl = "{oakland}"\n')
    monkeypatch.setenv("EXCHANGE_NOW", "2026-03-02T15:02:00Z")
    assert "road network's area" not in cli("--config", str(config), "sync").err


@pytest.mark.parametrize("pinned", ["yesterday", "2026-13-01", "1e20", "-5"])
def test_a_bad_pinned_clock_is_one_line(cli: Cli, monkeypatch: pytest.MonkeyPatch, pinned: str) -> None:
    """Found in a cold trial: `EXCHANGE_NOW=yesterday exchange inspect events` gave a traceback."""
    monkeypatch.setenv("EXCHANGE_NOW", pinned)
    run = cli("--config", str(DEMO), "inspect", "events", "--limit", "1")
    assert run.code == 2 and run.err.startswith("error: environment variable EXCHANGE_NOW: "), run
    assert run.err.count("\n") == 1 and "Traceback" not in run.err
