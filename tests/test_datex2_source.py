"""The ``datex2`` city source, end to end through the store: DiaLog's CIFS (the French national
platform behind Lille's closures) imported as a ``cifs`` source in its own June 2023, published as
DATEX II, and that DATEX II read back by a ``datex2`` source gives the same closures; a document
of another kind (travel-time locations) fails the poll with one line and changes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from exchange.config import Config
from exchange.config_file import load_config
from exchange.db import open_store
from exchange.model import Event, to_millis
from exchange.publish import eligible_events
from exchange.schema import events as event_rows
from feeds.datex2 import render_datex2
from tests.support.helpers import Cli, as_published

NOW = datetime(2023, 6, 5, 8, 0, tzinfo=UTC)  # inside DiaLog's sample closures (June 2023)
NOW_MS = to_millis(NOW)
KEEP_ENDED_MS = 24 * 3600 * 1000  # publish.keep_ended_h


def write_config(tmp_path: Path, testdata: Path) -> Path:
    path = tmp_path / "exchange.toml"
    path.write_text(f"""
timezone = "Europe/Paris"
[publish]
reference = "mel"
[publish.datex2]
country = "fr"
language = "fr"
[[sources]]
name = "dialog"
kind = "cifs"
url = {json.dumps(str(testdata / "cifs" / "dialog_expected_cifsv2.xml"))}
namespace = "dialog"
[[sources]]
name = "mel"
kind = "datex2"
url = {json.dumps(str(tmp_path / "datex2.xml"))}
namespace = "mel"
""")
    return path


def stored(config: Config, namespace: str) -> list[Event]:
    engine = open_store(config.database_url, auto_upgrade=False)
    try:
        found = eligible_events(engine, at_ms=NOW_MS, keep_ended_ms=KEEP_ENDED_MS)
    finally:
        engine.dispose()
    assert found.unreadable == []
    return [event for event in found.events if event.source == namespace]


def polyline(event: Event) -> list[tuple[float, float]]:
    coordinates = event.geometry.coordinates
    return [coordinates] if isinstance(coordinates, tuple) else list(coordinates)


def test_dialog_cifs_out_as_datex2_and_back_in_through_a_datex2_source(
    cli: Cli, tmp_path: Path, testdata: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXCHANGE_NOW", NOW.isoformat())
    path = write_config(tmp_path, testdata)
    first = cli("--config", str(path), "sync", "dialog")
    assert first.code == 0, first.err
    config = load_config(path)
    dialog = stored(config, "dialog")
    assert len(dialog) == 7
    document = render_datex2(dialog, settings=config.publish.datex2, zone=config.zone, generated=NOW)
    (tmp_path / "datex2.xml").write_bytes(document)
    check = subprocess.run(
        [sys.executable, str(testdata / "datex2" / "validate_offline.py"), "--set", "v3.5",
         str(tmp_path / "datex2.xml")], capture_output=True, text=True, timeout=60, check=False,
    )
    assert check.returncode == 0, check.stdout
    assert b"<com:nationalIdentifier>mel</com:nationalIdentifier>" in document and b'lang="fr"' in document

    second = cli("--config", str(path), "sync", "mel")
    assert second.code == 0, second.err
    back = {event.source_id: event for event in stored(config, "mel")}
    assert len(back) == 7
    for original in dialog:
        event = back[original.id]  # the record id is the published event's id
        assert (event.type, event.subtype, event.street, event.direction) == (
            original.type, original.subtype, original.street, original.direction)
        assert (event.start_time, event.end_time) == (original.start_time, original.end_time)
        assert event.details is not None and original.details is not None
        assert event.details.description == original.details.description == "Circulation interdite"
        assert event.details.schedule == original.details.schedule
        assert event.details.reference == original.details.reference  # DiaLog named as the source
        pairs = zip(polyline(event), as_published(polyline(original)), strict=True)
        assert all(abs(a - b) <= 1e-6 for p, q in pairs for a, b in zip(p, q, strict=True))


def test_travel_time_locations_fail_the_poll_in_one_line(cli: Cli, tmp_path: Path, testdata: Path) -> None:
    path = write_config(tmp_path, testdata)
    (tmp_path / "datex2.xml").write_bytes(
        (testdata / "datex2" / "samples" / "svv_GetTravelTimeData_Datex3.xml").read_bytes())
    result = cli("--config", str(path), "sync", "mel")
    assert result.code == 1
    lines = [line for line in result.err.splitlines() if "PredefinedLocationsPublication" in line]
    assert len(lines) == 1 and "Traceback" not in result.err
    engine = open_store(load_config(path).database_url, auto_upgrade=False)
    try:
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(event_rows)).scalar() == 0
    finally:
        engine.dispose()


def test_a_feed_of_records_not_read_is_not_suspect(cli: Cli, tmp_path: Path, testdata: Path) -> None:
    """Found in a cold trial: Fintraffic's feed (a ferry notice, a public event: records of kinds not read)
    was "suspect: every one of its items was rejected" and `config check` failed it. Items of a kind the
    reader does not take are not read, and say nothing of the feed's health."""
    path = write_config(tmp_path, testdata)
    (tmp_path / "datex2.xml").write_bytes(
        (testdata / "datex2" / "samples" / "fintraffic_GUID50456943.xml").read_bytes())
    result = cli("--config", str(path), "sync", "mel", "--format", "json")
    assert result.code == 0, result
    (run,) = json.loads(result.out)
    assert run["rejected"] >= 1 and "suspect" not in (run["message"] or ""), run
    # said as skipped, by its id (found in a cold trial: "rejected city GUID...", every city item being "city")
    assert "of them of a kind this source does not read" in result.err, result.err
    assert "  skipped GUID5046133001: a TransitInformation record is not read" in result.err, result.err
    sources = json.loads(cli("--config", str(path), "inspect", "sources", "--format", "json").out)
    assert next(source for source in sources if source["name"] == "mel")["state"] == "OK", sources
    checked = cli("--config", str(path), "config", "check")
    (line,) = [line for line in checked.out.splitlines() if line.startswith("source mel:")]
    assert line.startswith("source mel: ok: ") and "of kinds not read" in line, checked
