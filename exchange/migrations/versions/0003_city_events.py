"""city events: details and Waze confirmations; published feeds, partners and downloads

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("details", sa.JSON))
        batch.add_column(sa.Column("visible_in_waze_since_ms", sa.BigInteger))
    op.create_table(
        "confirmations",
        sa.Column("city_event_id", sa.String(300), sa.ForeignKey("events.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("crowd_event_id", sa.String(300), sa.ForeignKey("events.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("linked_ms", sa.BigInteger, nullable=False),
        sa.Column("how", sa.String(40), nullable=False),
    )
    op.create_table(
        "publications",
        sa.Column("feed", sa.String(40), primary_key=True),
        sa.Column("published_ms", sa.BigInteger, nullable=False),
        sa.Column("etag", sa.String(80), nullable=False),
        sa.Column("content_type", sa.String(80), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("body_gzip", sa.LargeBinary, nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
    )
    op.create_table(
        "publish_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
        sa.Column("held_back", sa.Integer, nullable=False),
        sa.Column("problems", sa.JSON),
    )
    op.create_table(
        "partners",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("token_hash", sa.String(128), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("revoked_ms", sa.BigInteger),
    )
    op.create_table(
        "downloads",
        sa.Column("partner", sa.String(100), primary_key=True),
        sa.Column("feed", sa.String(40), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("last_ms", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in ("downloads", "partners", "publish_runs", "publications", "confirmations"):
        op.drop_table(table)
    with op.batch_alter_table("events") as batch:
        batch.drop_column("visible_in_waze_since_ms")
        batch.drop_column("details")
