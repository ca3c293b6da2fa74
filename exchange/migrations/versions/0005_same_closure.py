"""one closure from two city sources: match ids, links, source priorities; a key-value meta table

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("match_id", sa.Text))
        batch.add_column(sa.Column("same_as", sa.String(300)))
        batch.create_index("ix_events_same_as", ["same_as"])
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("priority", sa.Integer, nullable=False, server_default="0"))
    op.create_table(
        "meta",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", sa.JSON),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("meta")
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("priority")
    with op.batch_alter_table("events") as batch:
        batch.drop_index("ix_events_same_as")
        batch.drop_column("same_as")
        batch.drop_column("match_id")
