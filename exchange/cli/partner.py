"""``exchange partner add|list|revoke``: who may poll the feeds (tokens for ``exchange serve --tokens``)."""

from __future__ import annotations

from typing import Annotated

import typer

from exchange.cli import context
from exchange.cli.tokens import issue, revoke
from exchange.output import DocumentFormat, Format, in_zone, iso, write_records

__all__ = ["partner_app"]

partner_app = typer.Typer(
    help="Manage the partners allowed to poll the feeds (tokens for `exchange serve --tokens`).",
    no_args_is_help=True,
)


@partner_app.command("add")
def partner_add(
    name: Annotated[
        str, typer.Argument(help="Partner name: letters, digits, '_', '.', '@', '-' (e.g. waze, acme-maps).")
    ],
) -> None:
    """Create a partner and print its new token on stdout (once: only its hash is stored).

    A revoked partner can be added again: it gets a new token, and its download history is kept.
    """
    from exchange.partners import add_partner

    issue("partner", add_partner, name)


@partner_app.command("list")
def partner_list(
    fmt: Annotated[
        DocumentFormat,
        typer.Option("--format", "-f", help="table for people; json (downloads and polls per feed) for scripts."),
    ] = DocumentFormat.table,
) -> None:
    """Partners, active and revoked, with their downloads and polls per feed (as flushed by `exchange serve`).

    A download is a 200 response with the feed's body; a poll is a 304 (nothing changed) or a HEAD.
    The table shows both per feed as downloads/polls.
    """
    from exchange.partners import list_partners
    from exchange.publications import FEEDS

    engine = context.engine()
    try:
        found = list_partners(engine)
    finally:
        engine.dispose()
    if fmt is DocumentFormat.json:
        write_records(
            ({"name": p.name, "status": "active" if p.active else "revoked", "created": iso(p.created_ms),
              "revoked": iso(p.revoked_ms), "downloads": p.downloads, "polls": p.polls,
              "last_request": iso(p.last_request_ms)}
             for p in found),
            Format.json, columns=(),
        )
        return
    zone = context.state.config.zone
    rows = [
        {"name": p.name, "status": "active" if p.active else "revoked",
         **{feed: f"{p.downloads.get(feed, 0)}/{p.polls.get(feed, 0)}" for feed in FEEDS},
         "last_request": iso(p.last_request_ms, zone), "created": iso(p.created_ms, zone),
         "revoked": iso(p.revoked_ms, zone)}
        for p in found
    ]
    # the counts first: on a narrow terminal the times leave first (the rightmost columns do)
    write_records(rows, Format.table, columns=("name", "status", *FEEDS, "last_request", "created", "revoked"),
                  title=in_zone("partners, downloads/polls per feed", zone))


@partner_app.command("revoke")
def partner_revoke(
    name: Annotated[str, typer.Argument(help="The partner to refuse from now on.")],
) -> None:
    """Refuse the partner's token. Running servers apply it within their --refresh-s; history is kept."""
    from exchange.partners import revoke_partner

    revoke("partner", revoke_partner, name)
