"""Outputs that cannot attack their readers (issue 17, item 3): CSV cells a spreadsheet would run,
and upstream text that would drive the operator's terminal or break the table renderer."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

from exchange.output import Format, write_records
from tests.support.helpers import Run


def test_csv_cells_that_start_a_formula_get_an_apostrophe_numbers_stay() -> None:
    """Finding: a street named ``=HYPERLINK(...)`` went into `inspect events --format csv` and the
    exports as it was, and a spreadsheet opening the file ran it."""
    rows = [{"street": "=HYPERLINK(\"http://evil.example\",\"x\")", "city": "+1+1", "note": "-2+3", "who": "@SUM(A1)",
             "tab": "\tx", "cr": "\rx", "lon": "-122.300788", "n": -1, "fine": "7th Street", "empty": ""}]
    out = io.StringIO()
    write_records(rows, Format.csv, columns=list(rows[0]), out=out)
    header, values = list(csv.reader(io.StringIO(out.getvalue())))
    got = dict(zip(header, values, strict=True))
    assert got["street"] == "'=HYPERLINK(\"http://evil.example\",\"x\")"
    assert (got["city"], got["note"], got["who"], got["tab"], got["cr"]) == ("'+1+1", "'-2+3", "'@SUM(A1)", "'\tx",
                                                                             "'\rx")
    assert (got["lon"], got["n"], got["fine"], got["empty"]) == ("-122.300788", "-1", "7th Street", "")


def test_tables_show_control_characters_and_never_read_markup() -> None:
    """Finding: a Waze street ``ESC]0;pwned BEL ESC[2J`` reached the terminal as escape sequences
    (retitled and cleared it); a street holding ``[/]`` was read as rich markup and crashed the table."""
    rows = [{"id": "waze:alert:1", "street": "Main\x1b]0;pwned\x07\x1b[2J St", "city": "[/]"},
            {"id": "waze:alert:2", "street": "[red]Oak[/red]", "city": "\u202eevil"}]
    out = io.StringIO()
    write_records(rows, Format.table, columns=["id", "street", "city"], out=out)
    text = out.getvalue()
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "\\x1b]0;pwned\\x07\\x1b[2J" in text and "\\u202eevil" in text
    assert "[red]Oak[/red]" in text and "[/]" in text


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_csv_to_a_terminal_shows_control_characters_to_a_file_keeps_them() -> None:
    """Trial finding: `inspect events --format csv` and the export wrote a Waze street's ESC]0;… raw, so
    printing the CSV on a terminal ran it. To a file or pipe the data stays as it came."""
    rows = [{"street": "Main\x1b]0;PWNED\x07 St"}]
    shown, kept = _Terminal(), io.StringIO()
    write_records(rows, Format.csv, columns=["street"], out=shown)
    write_records(rows, Format.csv, columns=["street"], out=kept)
    assert "\x1b" not in shown.getvalue() and "\\x1b]0;PWNED\\x07" in shown.getvalue()
    assert "\x1b]0;PWNED\x07" in kept.getvalue()


def test_rejections_and_log_lines_show_control_characters(cli: Callable[..., Run], tmp_path: Path) -> None:
    """Trial finding: a Waze uuid holding ``ESC]0;PWNED BEL ESC[2J`` with a bad location reached the
    terminal raw through `sync`'s "rejected alert ..." lines."""
    import logging

    from exchange.logs import TextFormatter
    from tests.support.helpers import alert, feed

    poll = tmp_path / "poll.json"
    poll.write_bytes(feed(alerts=[alert("bad\x1b]0;PWNED\x07\x1b[2J", location={"x": 500, "y": 500}),
                                  alert("good")]))
    result = cli("replay", str(poll))
    assert result.code == 0 and "rejected alert bad\\x1b]0;PWNED\\x07\\x1b[2J" in result.err
    assert "\x1b" not in result.err and "\x07" not in result.err
    record = logging.LogRecord("exchange.sync", logging.WARNING, "", 0, "street %s", ("Oak\x1b[2J",), None)
    assert "Oak\\x1b[2J" in TextFormatter().format(record)


def test_a_long_loss_or_detail_folds_instead_of_being_cut() -> None:
    """Found in a cold trial: `inspect feed --target datex2` cut its losses with an ellipsis, so the
    restrictions it names never showed (and no note said so)."""
    loss = ("its WZDx restrictions are not carried: reduced-width 16 feet, reduced-weight 156000 pounds; lanes are "
            "numbered from the verge as DATEX II counts them, assuming right-hand traffic")
    out = io.StringIO()
    write_records([{"id": "city:city:wz-6", "outcome": "published", "held_back": None, "losses": loss}], Format.table,
                  columns=["id", "outcome", "held_back", "losses"], out=out)
    shown = " ".join(out.getvalue().split())
    assert "…" not in out.getvalue()
    assert all(word in shown for word in ("reduced-width", "156000", "right-hand")), out.getvalue()
