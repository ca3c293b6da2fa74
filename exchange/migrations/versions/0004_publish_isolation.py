"""publishing per event: the last good version of each published event, content digests, polls

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "published_events",
        sa.Column("event_id", sa.String(300), sa.ForeignKey("events.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("version", sa.JSON, nullable=False),
        sa.Column("published_ms", sa.BigInteger, nullable=False),
        sa.Column("held_back_reason", sa.Text),
        sa.Column("held_back_ms", sa.BigInteger),
    )
    with op.batch_alter_table("publications") as batch:
        batch.add_column(sa.Column("content_digest", sa.String(64)))
    with op.batch_alter_table("publish_runs") as batch:
        batch.add_column(sa.Column("message", sa.Text))
    with op.batch_alter_table("downloads") as batch:
        batch.add_column(sa.Column("polls", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("downloads") as batch:
        batch.drop_column("polls")
    with op.batch_alter_table("publish_runs") as batch:
        batch.drop_column("message")
    with op.batch_alter_table("publications") as batch:
        batch.drop_column("content_digest")
    op.drop_table("published_events")
