"""``exchange operator add|list|revoke``: who may open the operator map and the events API."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from exchange.cli import context
from exchange.cli.tokens import issue, revoke
from exchange.output import DocumentFormat, Format, in_zone, iso, write_records

__all__ = ["operator_app"]

operator_app = typer.Typer(
    help="Manage the operators allowed to open /map and /api/* (with `[web] access = \"operator\"`, the default).",
    no_args_is_help=True,
)


@operator_app.command("add")
def operator_add(
    name: Annotated[
        str, typer.Argument(help="Operator name: letters, digits, '_', '.', '@', '-' (e.g. jane, traffic-desk).")
    ],
) -> None:
    """Create an operator and print its new token on stdout (once: only its hash is stored).

    The operator signs in at /login with it (or sends it as the password of HTTP Basic, or as
    `Authorization: Bearer`). A revoked operator can be added again: it gets a new token.
    """
    from exchange.operators import add_operator

    issue("operator", add_operator, name)


@operator_app.command("list")
def operator_list(
    fmt: Annotated[
        DocumentFormat, typer.Option("--format", "-f", help="table for people; json for scripts."),
    ] = DocumentFormat.table,
) -> None:
    """Operators, active and revoked."""
    from exchange.operators import Operator, list_operators

    engine = context.engine()
    try:
        found = list_operators(engine)
    finally:
        engine.dispose()
    def record(operator: Operator, zone: ZoneInfo | None) -> dict[str, str | None]:
        return {"name": operator.name, "status": "active" if operator.active else "revoked",
                "created": iso(operator.created_ms, zone), "revoked": iso(operator.revoked_ms, zone)}

    if fmt is DocumentFormat.json:
        write_records((record(o, None) for o in found), Format.json, columns=())
        return
    zone = context.state.config.zone
    write_records([record(o, zone) for o in found], Format.table, columns=("name", "status", "created", "revoked"),
                  title=in_zone("operators", zone))


@operator_app.command("revoke")
def operator_revoke(
    name: Annotated[str, typer.Argument(help="The operator to refuse from now on.")],
) -> None:
    """Refuse the operator's token: running servers apply it within a second (their refresh period)."""
    from exchange.operators import revoke_operator

    revoke("operator", revoke_operator, name)
