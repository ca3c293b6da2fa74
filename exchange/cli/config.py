"""``exchange config check``: validate the configuration and reach what it points at, before a run."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import orjson
import typer

from exchange.cli import context

__all__ = ["config_app"]

config_app = typer.Typer(
    help="Check the configuration (the file named by --config or $EXCHANGE_CONFIG, and the EXCHANGE_* "
    "environment) before a run.",
    no_args_is_help=True,
)

#: what ``config check`` prints: one line per check, or one JSON object
CheckFormat = StrEnum("CheckFormat", ["text", "json"])


@config_app.command("check")
def check(
    offline: Annotated[
        bool,
        typer.Option(
            "--offline",
            help="Do not reach the sources (no network traffic to upstreams): validate the file and the "
            "environment, the token variables, the CA bundle and proxy settings, the store and the network file.",
        ),
    ] = False,
    fmt: Annotated[
        CheckFormat,
        typer.Option("--format", "-f", help="text: one line per problem and per check on stdout, a summary on "
                     "stderr; json: one object on stdout (problems, checks, exit_code)."),
    ] = CheckFormat.text,
) -> None:
    """Validate the configuration, then reach each enabled source once, as `exchange run` would.

    The configuration is the file of the root --config option (else $EXCHANGE_CONFIG, else the
    embedded defaults) with the EXCHANGE_* variables over it, e.g.
    `exchange -c /etc/traffic-exchange/exchange.toml config check`.

    Every problem is reported at once, one line each as `location: problem`: the file's keys and
    values, the EXCHANGE_* variables (blamed on the variable), and each source's adapter settings;
    an unknown key gets the nearest known one ("did you mean 'interval_s'?").

    A valid configuration is then checked against the machine: the token variables the sources
    name are set, the CA bundle and proxy can be used, the store opens (a SQLite file not made yet
    is fine), the road network file exists, and each enabled source answers one real fetch that
    its adapter can read (bytes and items are shown; nothing is stored; each fetch is bounded by
    the source's deadline_s).

    Exit 0 when all is well, 2 when the configuration is invalid (an unset token variable, an
    unusable CA bundle or proxy, a missing network file), 1 when a source or the store
    cannot be reached or read. Run it after every change to the file, and before `exchange run`.
    """
    from exchange.config_check import run_checks

    # quiet by default (-v for the requests made); set up before any config is read, since it may not be valid
    context.setup_logging("WARNING", context.state.verbose, log_format=_log_format(context.state.config_path))
    report = run_checks(context.state.config_path, offline=offline)
    if fmt is CheckFormat.json:
        sys.stdout.write(orjson.dumps(report.as_record(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        for problem in report.problems:
            print(problem)
        for item in report.checks:
            print(item.line())
    where = str(report.config) if report.config else "the default configuration"
    failed = sum(1 for item in report.checks if item.status in ("invalid", "failed"))
    if report.problems:
        print(f"{where}: {len(report.problems)} problem(s); nothing else was checked", file=sys.stderr)
    elif failed:
        print(f"{where}: {failed} of {len(report.checks)} check(s) did not pass", file=sys.stderr)
    else:
        skipped = sum(1 for item in report.checks if item.status == "skipped")
        print(f"{where}: valid; {len(report.checks) - skipped} check(s) passed"
              f"{f', {skipped} skipped' if skipped else ''}{' (sources not reached: --offline)' if offline else ''}",
              file=sys.stderr)
    if report.exit_code:
        raise typer.Exit(report.exit_code)


def _log_format(path: Path | None) -> str:
    """``--log-format``, else the file's ``log_format`` when the file can be read at all (the check runs on
    configurations that do not validate), else text."""
    import tomllib

    from exchange.logs import FORMATS

    if context.state.log_format:
        return context.state.log_format
    try:
        value = tomllib.loads(path.read_text(encoding="utf-8")).get("log_format") if path is not None else None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return "text"
    return value if isinstance(value, str) and value in FORMATS else "text"
