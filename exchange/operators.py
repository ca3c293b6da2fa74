"""Operators: the city staff who may open the operator map (``/map``) and the events API (``/api/*``).

An operator is a name and a token, issued like a partner's (:mod:`exchange.partners`): shown once
by ``exchange operator add``, stored as its SHA-256, revoked by name. The two lists are apart on
purpose: a partner token polls the feeds and nothing else, and the map shows crowd data that
Waze's terms do not let the city hand to partners or the public.

Running servers re-read the list every ``refresh_s`` (one second by default), so a revocation is
in force within a second; a browser signed in with the revoked token is refused at its next request.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from exchange.db import db_error_message
from exchange.errors import StoreError
from exchange.partners import issue_token, revoke_token
from exchange.schema import operators

__all__ = ["Operator", "add_operator", "list_operators", "revoke_operator"]


@dataclass(frozen=True)
class Operator:
    name: str
    created_ms: int
    revoked_ms: int | None

    @property
    def active(self) -> bool:
        return self.revoked_ms is None


def add_operator(engine: Engine, name: str, *, now_ms: int | None = None) -> str:
    """Create an operator (or re-activate a revoked one) and return the new token, once."""
    return issue_token(engine, operators, "operator", name, now_ms=now_ms)


def revoke_operator(engine: Engine, name: str, *, now_ms: int | None = None) -> bool:
    """Refuse the operator's token from now on; False when it was already revoked."""
    return revoke_token(engine, operators, "operator", name, now_ms=now_ms)


def list_operators(engine: Engine) -> list[Operator]:
    """Every operator, active or revoked, by name."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(operators.c.name, operators.c.created_ms, operators.c.revoked_ms).order_by(operators.c.name)
            ).all()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot list operators: {db_error_message(exc)}") from exc
    return [Operator(row.name, row.created_ms, row.revoked_ms) for row in rows]
