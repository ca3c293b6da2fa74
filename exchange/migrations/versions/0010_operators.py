"""operators: who may open the operator map (``/map``) and the events API (``/api/*``)

One row per operator, like ``partners``: the token's SHA-256, never the token.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "operators",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("token_hash", sa.String(128), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("revoked_ms", sa.BigInteger),
        sa.Column("signed_out_ms", sa.BigInteger),
    )


def downgrade() -> None:
    op.drop_table("operators")
