"""The ``exchange`` command line: the root command, its groups, and the entry point.

Commands parse options, call ``exchange.*`` and format; no SQL or feed parsing lives here.
Exit codes: 0 done (per-item rejections allowed, summarised on stderr), 1 the operation failed,
2 usage or validation error, 3 not found. Machine output goes to stdout, everything else to stderr.

Each command group is a module of this package; they share :mod:`exchange.cli.context`.
"""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import IO, Annotated, Any

import typer

from exchange.cli import closure, config, db, export, ingest, inspect, network, operator, partner, publish, serve
from exchange.cli.context import state
from exchange.errors import ExchangeError

__all__ = ["app", "main"]


class LogFormat(enum.StrEnum):
    text = "text"
    json = "json"


app = typer.Typer(
    name="exchange",
    help="traffic-exchange: a two-way traffic data exchange broker for cities.\n\n"
    "Pulls the Waze partner feed and the city's own sources into a store (sync, replay, run), publishes "
    "the city's closures as Waze CIFS, WZDx, DATEX II and CWZ feeds (closure, publish, serve), and shows what it holds "
    "(inspect), and exports their history for an open-data portal (export).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"traffic-exchange {version('traffic-exchange')}")
        raise typer.Exit()


@app.callback()
def _root(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", envvar="EXCHANGE_CONFIG", dir_okay=False,
            help="TOML configuration file. Default: $EXCHANGE_CONFIG; with neither, the embedded defaults "
            "(SQLite in $EXCHANGE_DATA_DIR, one Waze source named 'waze'). Never searched for.",
        ),
    ] = None,
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose", "-v", count=True,
            help="More log output on stderr: -v shows traffic-exchange's DEBUG lines and the libraries' INFO "
            "lines (httpx requests, uvicorn's access log); -vv (or log_level DEBUG) everything at DEBUG, "
            "APScheduler's job runs too. Without it, the libraries log only warnings and errors.",
        ),
    ] = 0,
    log_format: Annotated[
        LogFormat | None,
        typer.Option(
            "--log-format", envvar="EXCHANGE_LOG_FORMAT", case_sensitive=False,
            help="Log lines on stderr: text (UTC time, level, logger, message) or json (one object per line: time, "
            "level, logger, message, exc_info; for log shippers). Default: log_format of the config, else text.",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    from exchange.errors import UsageError
    from exchange.runtime import pinned_now_problem

    state.reset(config, verbose, log_format.value if log_format is not None else None)
    problem = pinned_now_problem()
    if problem is not None:
        raise UsageError(problem)


app.command()(ingest.sync)
app.command()(ingest.replay)
app.command()(ingest.run)
app.add_typer(inspect.inspect_app, name="inspect")
app.add_typer(db.db_app, name="db")
app.add_typer(network.network_app, name="network")
app.command()(network.match)
app.add_typer(closure.closure_app, name="closure")
app.command("publish")(publish.publish_command)
app.command("validate")(publish.validate_command)
app.command("serve")(serve.serve)
app.command("export")(export.export_command)
app.add_typer(partner.partner_app, name="partner")
app.add_typer(operator.operator_app, name="operator")
app.add_typer(config.config_app, name="config")


def _show_usage_error(self: Any, file: IO[Any] | None = None) -> None:
    """A usage error as one line, as every other error: what is wrong, and where help is."""
    from exchange.output import terminal_safe

    message = str(self.format_message()).replace(": Value error, ", ": ").rstrip(".")
    # no context yet: the error is in the root options (``exchange --config`` without its value)
    where = f" (see `{self.ctx.command_path if self.ctx is not None else 'exchange'} --help`)"
    print(f"error: {terminal_safe(message)}{where}", file=file or sys.stderr)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: an ExchangeError becomes one line on stderr and its exit code.

    A usage error (an unknown option or command, a bad value for an option) is one line too, exit 2;
    any other exception is a bug and keeps its traceback.
    """
    # click prints a usage error as four lines; typer may carry its own copy of click, whose UsageError
    # is found through the one exception class typer exports
    usage_error = next(kind for kind in typer.BadParameter.__mro__ if kind.__name__ == "UsageError")
    usage_error.show = _show_usage_error  # type: ignore[attr-defined]
    try:
        app(args=argv, prog_name="exchange")
    except ExchangeError as exc:
        from exchange.output import terminal_safe

        print(f"error: {terminal_safe(exc.message)}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.exit(0)
    finally:
        state.close()  # no pooled connection outlives the command (tests run it in-process)
