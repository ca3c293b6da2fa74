"""``exchange closure add`` refuses bad input at the door: exit 2, one ``error:`` line naming the field,
and nothing stored. (The rules themselves are tested on ``city_event`` in tests/feeds/test_city.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.helpers import Cli
from tests.support.paths import DEMO

NINTH = "37.809578 -122.300788 37.810233 -122.302087"


def _time(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat(timespec="seconds")


def _args(*changes: str) -> list[str]:
    """``closure add`` of a valid closure (the demo is in America/Los_Angeles), with options replaced or added."""
    args = ["--config", str(DEMO), "closure", "add", "--street", "9th Street", "--polyline", NINTH,
            "--type", "ROAD_CLOSED", "--subtype", "ROAD_CLOSED_CONSTRUCTION", "--direction", "BOTH_DIRECTIONS",
            "--start", _time(-1), "--end", _time(48), "--description", "Utility work"]
    for option, value in zip(changes[::2], changes[1::2], strict=True):
        if option in args and option != "--schedule":
            args[args.index(option) + 1] = value
        else:
            args += [option, value]
    return args


BAD = {
    "hour 25": (("--schedule", "monday=25:00-26:00"),
                "schedule: monday 25:00-26:00 is not a time window within 00:00-23:59"),
    "24:00": (("--schedule", "friday=18:00-24:00"), "schedule: friday 18:00-24:00 is not a time window"),
    "overnight": (("--schedule", "Saturday=22:00-06:00"), "schedule: saturday 22:00-06:00 crosses midnight; write an "
                  "overnight window as two: saturday=22:00-23:59 and sunday=00:00-06:00"),
    "overlap": (("--schedule", "everyday=08:00-12:00,11:00-13:00"), "schedule: everyday 08:00-12:00 and 11:00-13:00 "
                "overlap"),
    "dst gap": (("--start", "2026-03-08T02:30"), "start: 2026-03-08T02:30 does not exist in America/Los_Angeles: "
                "the clocks skip from 02:00 to 03:00; give an offset"),
    "dst fold": (("--start", "2026-11-01T01:30"), "start: 2026-11-01T01:30 is ambiguous in America/Los_Angeles"),
    "year 10000": (("--end", "9999-12-31T23:59:59-12:00"),
                   "end: '9999-12-31T23:59:59-12:00' is outside the years 2000 to 2099 (UTC)"),
    "1970": (("--start", "1970-01-01T00:00:00Z"), "start: '1970-01-01T00:00:00Z' is outside the years 2000 to 2099"),
    "end in the start's second": (("--start", "2026-07-12T08:00:00.2-07:00", "--end", "2026-07-12T08:00:00.8-07:00"),
                                  "end: 2026-07-12T08:00:00.800000-07:00 is not after the start"),
    "description not utf-8": (("--description", "ab\udcffcd"),
                              "description: is not valid UTF-8 text (byte 0xff at position 2)"),
    "description NUL": (("--description", "a\x00b"), "description: contains a NUL character at position 1"),
    "description escape": (("--description", "red\x1b[31m"), "description: contains a control character U+001B"),
    "street not utf-8": (("--street", "Stra\udcdfe"), "street: is not valid UTF-8 text (byte 0xdf at position 4)"),
    "street newline": (("--street", "9th\nStreet"), "street: contains a control character U+000A at position 3"),
    "operator not utf-8": (("--operator", "al\udce9ce"), "operator: is not valid UTF-8 text (byte 0xe9 at position 2)"),
    "subtype": (("--type", "HAZARD"), "subtype: 'ROAD_CLOSED_CONSTRUCTION' does not belong to type HAZARD"),
    "one place to 6 decimals": (("--polyline", "37.8095781 -122.3007881 37.8095784 -122.3007884"),
                                "polyline: 2 point(s), 1 distinct; a ROAD_CLOSED needs at least 2 distinct points"),
    "lon-first": (("--polyline", "-61.150394 37.809578 -61.151043 37.810233"),
                  "polyline point 1: latitude -61.150394 is south of -60° (Antarctica)"),
    "lane impact": (("--lane-impact", "100:RIGHT"), "lane_impact.total_closed_lanes: Input should be less than"),
    "roadside": (("--lane-impact", "1:TOP"), "--lane-impact: 'TOP' is not a roadside: LEFT, MIDDLE or RIGHT"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_exits_2_with_one_line_naming_the_field(cli: Cli, case: str) -> None:
    changes, message = BAD[case]
    result = cli(*_args(*changes))
    assert result.code == 2, result
    assert result.out == ""
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), result.err
    listing = cli("--config", str(DEMO), "closure", "list", "--format", "json")
    assert listing.code == 0 and json.loads(listing.out) == []


def test_a_good_closure_after_refusals_is_the_only_one_stored(cli: Cli) -> None:
    assert cli(*_args("--start", "2026-03-08T02:30")).code == 2
    added = cli(*_args("--start", "2026-03-08T03:00", "--end", "2026-03-10T02:30",  # takes in Monday night
                       "--schedule", "monday=22:00-23:59", "--schedule", "tuesday=00:00-06:00",
                       "--street", "9th Street", "--description", "Rue de l'Église\tnight work"))
    assert added.code == 0, added
    listing = json.loads(cli("--config", str(DEMO), "closure", "list", "--format", "json").out)
    assert [row["id"] for row in listing] == [added.out.strip()]
    record = json.loads(cli("--config", str(DEMO), "inspect", "event", added.out.strip(), "--format", "json").out)[0]
    assert record["details"]["schedule"] == {"monday": "22:00-23:59", "tuesday": "00:00-06:00"}
    assert record["details"]["description"] == "Rue de l'Église\tnight work"
    assert datetime.fromisoformat(record["start_time"].replace("Z", "+00:00")) == datetime(2026, 3, 8, 10, tzinfo=UTC)


def test_bytes_that_are_not_utf8_on_a_real_command_line(data_dir: Path) -> None:
    """Through the console entry point, argv decoded with surrogateescape as Python does on POSIX."""
    command = [sys.executable, "-m", "exchange", *_args("--description", "ab\udcffcd")]
    env = {**os.environ, "EXCHANGE_DATA_DIR": str(data_dir)}
    argv = [os.fsencode(part) for part in command]  # b"ab\xffcd": the byte the shell passes
    assert b"ab\xffcd" in argv
    result = subprocess.run(argv, env=env, capture_output=True, timeout=60, check=False)
    assert result.returncode == 2, result
    expected = "error: description: is not valid UTF-8 text (byte 0xff at position 2)"
    assert result.stderr.decode().splitlines() == [expected]


@pytest.mark.parametrize(("change", "message"), [
    (("--schedule", "monday=25:00-26:00"), "schedule: monday 25:00-26:00 is not a time window"),
    (("--description", "x\udcff"), "description: is not valid UTF-8 text (byte 0xff at position 1)"),
    (("--end", "2026-11-01T01:59"), "end: 2026-11-01T01:59 is ambiguous in America/Los_Angeles"),
])
def test_update_refuses_the_same_and_changes_nothing(cli: Cli, change: tuple[str, str], message: str) -> None:
    closure_id = cli(*_args()).out.strip()
    before = cli("--config", str(DEMO), "inspect", "event", closure_id, "--format", "json").out
    result = cli("--config", str(DEMO), "closure", "update", closure_id, *change)
    assert result.code == 2, result
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), result.err
    assert cli("--config", str(DEMO), "inspect", "event", closure_id, "--format", "json").out == before


def test_a_repeated_schedule_day_adds_windows_and_a_bad_id_is_one_line(cli: Cli) -> None:
    added = cli("--config", str(DEMO), "closure", "add", "--street", "9th Street", "--polyline",
                "37.809578 -122.300788 37.810233 -122.302087", "--start", "2026-03-02T08:00:00-08:00",
                "--schedule", "monday=08:00-12:00", "--schedule", "monday=13:00-17:00")
    assert added.code == 0, added
    record = json.loads(cli("--config", str(DEMO), "inspect", "event", added.out.strip(), "--format", "json").out)[0]
    assert record["details"]["schedule"] == {"monday": "08:00-12:00,13:00-17:00"}
    bad = cli("--config", str(DEMO), "closure", "end", "city:city:\udcff")
    assert bad.code == 2 and bad.err.startswith("error: closure id is not valid UTF-8 text"), bad
    assert bad.err.count("\n") == 1


def test_a_house_number_in_the_street_is_named_with_or_without_a_network(cli: Cli, tmp_path: Path) -> None:
    """Found in a cold trial: with a network, "1200 9th Street" was "no segment of '1200 9th Street' within
    50 m", the house number unnamed; without one it was published with only "0% pass the lint"."""
    refused = cli(*_args("--street", "1200 9th Street"))
    assert refused.code == 2 and "(is '1200' a house number? the street's name alone is matched)" in refused.err
    bare = tmp_path / "bare.toml"
    bare.write_text('timezone = "America/Los_Angeles"\n')
    args = _args("--street", "1200 9th Street")
    args[args.index("--config") + 1] = str(bare)
    added = cli(*args)
    assert added.code == 0, added
    assert ("warning: Waze would refuse it: street '1200 9th Street' carries a house number; give the street "
            "name only") in added.err
    plain = cli(*[*args[:5], "9th Street", *args[6:]])
    assert plain.code == 0 and "Waze would refuse it" not in plain.err, plain
