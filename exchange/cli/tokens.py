"""What `exchange partner` and `exchange operator` share: issuing a token once, and revoking one."""

from __future__ import annotations

import sys
from collections.abc import Callable

from sqlalchemy import Engine

from exchange.cli import context

__all__ = ["issue", "revoke"]


def issue(noun: str, add: Callable[[Engine, str], str], name: str) -> None:
    """Add ``name`` and print its new token on stdout, once; what to do with it on stderr."""
    engine = context.engine()
    try:
        token = add(engine, name)
    finally:
        engine.dispose()  # no pooled connection outlives the command (matters in-process, on PostgreSQL)
    print(token)
    print(f"added {noun} {name!r}. The token above cannot be shown again: hand it over now. Running servers "
          f"take it within their refresh period (a second). Lost? `exchange {noun} revoke` then `add` issues a "
          "new one.", file=sys.stderr)


def revoke(noun: str, revoke_token: Callable[[Engine, str], bool], name: str) -> None:
    """Revoke ``name``'s token and say so (or that it already was) on stderr."""
    engine = context.engine()
    try:
        revoked = revoke_token(engine, name)
    finally:
        engine.dispose()
    if revoked:
        print(f"revoked {noun} {name!r}; running servers refuse its token within their refresh period",
              file=sys.stderr)
    else:
        print(f"{noun} {name!r} was already revoked", file=sys.stderr)
