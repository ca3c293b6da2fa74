"""Partners: who may poll the published feeds, and how often they did.

A partner is a name and a token. The token is shown once, when the partner is added, and only
its SHA-256 is stored: a leaked database (or backup) does not leak working tokens. Revoking keeps
the row (and its download history); adding a revoked name again issues a new token under the
same name, and the old token stays dead because its hash is overwritten.

The feed server counts, per partner and feed, downloads (200 responses with the body) and polls
(304 revalidations and HEAD requests); see :mod:`exchange.server`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field

from sqlalchemy import Engine, Table, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from exchange.db import db_error_message, writing
from exchange.errors import NotFound, StoreError, UsageError
from exchange.redaction import register_secret
from exchange.runtime import now_ms as current_ms
from exchange.schema import downloads, partners

__all__ = [
    "ANONYMOUS",
    "Partner",
    "add_partner",
    "hash_token",
    "issue_token",
    "list_partners",
    "revoke_partner",
    "revoke_token",
    "validate_name",
]

#: the ``downloads.partner`` of polls made without a token (when tokens are not required)
ANONYMOUS = "-"

# Starts with a letter or digit (so it can never be ANONYMOUS), no ':' (HTTP Basic splits on it),
# no spaces or slashes (it appears in logs and shell commands).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")


@dataclass(frozen=True)
class Partner:
    name: str
    created_ms: int
    revoked_ms: int | None
    #: per feed, 200 responses with the body
    downloads: dict[str, int] = field(default_factory=dict)
    #: per feed, 304 revalidations and HEAD requests
    polls: dict[str, int] = field(default_factory=dict)
    #: the last request of either kind, any feed
    last_request_ms: int | None = None

    @property
    def active(self) -> bool:
        return self.revoked_ms is None


def hash_token(token: str) -> str:
    """How a token is stored and looked up: SHA-256, hex.

    A plain hash (no salt, no slow KDF) is enough because tokens are 256 random bits, not
    passwords: there is nothing to guess, and the server can check a poll in microseconds.

    >>> hash_token("abc")[:16]
    'ba7816bf8f01cfea'
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def validate_name(name: str, noun: str = "partner") -> str:
    if not _NAME.match(name):
        raise UsageError(
            f"{noun} name {name!r} is not valid: 1-100 letters, digits, '_', '.', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


def add_partner(engine: Engine, name: str, *, now_ms: int | None = None) -> str:
    """Create a partner (or re-activate a revoked one) and return its new token.

    The token is returned once and never stored; an active partner of the same name is refused.
    """
    return issue_token(engine, partners, "partner", name, now_ms=now_ms)


def revoke_partner(engine: Engine, name: str, *, now_ms: int | None = None) -> bool:
    """Refuse the partner's token from now on; False when it was already revoked.

    Running servers pick the revocation up at their next refresh (``--refresh-s``).
    """
    return revoke_token(engine, partners, "partner", name, now_ms=now_ms)


# Partners and operators (:mod:`exchange.operators`) hold tokens the same way: one row per name,
# (token_hash, created_ms, revoked_ms).

def issue_token(engine: Engine, table: Table, noun: str, name: str, *, now_ms: int | None = None) -> str:
    """A new token for ``name`` in ``table`` (a new row, or a revoked one re-activated); shown once."""
    validate_name(name, noun)
    token = secrets.token_urlsafe(32)
    register_secret(token)  # masked in any log line of this process (exchange.redaction)
    values = {"token_hash": hash_token(token), "created_ms": now_ms or current_ms(), "revoked_ms": None}
    taken = f"{noun} {name!r} already exists; revoke it first to issue a new token"
    try:
        with writing(engine, lock=table.name) as conn:
            existing = conn.execute(select(table.c.revoked_ms).where(table.c.name == name)).first()
            if existing is None:
                conn.execute(insert(table).values(name=name, **values))
            elif existing.revoked_ms is None:
                raise UsageError(taken)
            else:
                conn.execute(update(table).where(table.c.name == name).values(**values))
    except IntegrityError:  # the same name added concurrently by another process
        raise UsageError(taken) from None
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot add {noun} {name!r}: {db_error_message(exc)}") from exc
    return token


def revoke_token(engine: Engine, table: Table, noun: str, name: str, *, now_ms: int | None = None) -> bool:
    """Mark ``name``'s token in ``table`` revoked; False when it already was, NotFound when no such name."""
    try:
        with writing(engine, lock=table.name) as conn:
            row = conn.execute(select(table.c.revoked_ms).where(table.c.name == name)).first()
            if row is None:
                raise NotFound(f"no {noun} named {name!r}")
            if row.revoked_ms is not None:
                return False
            conn.execute(update(table).where(table.c.name == name).values(revoked_ms=now_ms or current_ms()))
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot revoke {noun} {name!r}: {db_error_message(exc)}") from exc
    return True


def list_partners(engine: Engine) -> list[Partner]:
    """Every partner, active or revoked, by name, with its downloads and polls per feed.

    A feed the partner requested has an entry in both dicts (0 when it only polled, or only downloaded).
    """
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(partners.c.name, partners.c.created_ms, partners.c.revoked_ms).order_by(partners.c.name)
            ).all()
            counts = conn.execute(
                select(downloads.c.partner, downloads.c.feed, downloads.c.count, downloads.c.polls,
                       downloads.c.last_ms)
            ).all()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot list partners: {db_error_message(exc)}") from exc
    downloaded: dict[str, dict[str, int]] = {}
    polled: dict[str, dict[str, int]] = {}
    last: dict[str, int] = {}
    for partner, feed, count, polls, last_ms in counts:
        downloaded.setdefault(partner, {})[feed] = count
        polled.setdefault(partner, {})[feed] = polls
        last[partner] = max(last.get(partner, 0), last_ms)
    return [
        Partner(row.name, row.created_ms, row.revoked_ms, dict(sorted(downloaded.get(row.name, {}).items())),
                dict(sorted(polled.get(row.name, {}).items())), last.get(row.name))
        for row in rows
    ]
