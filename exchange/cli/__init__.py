"""The ``exchange`` command line (typer): one module per command group, sharing :mod:`.context`."""

from exchange.cli.main import app, main

__all__ = ["app", "main"]
