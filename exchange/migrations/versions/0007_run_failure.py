"""why a failed sync run failed: the fetch (the upstream is Offline), the payload (SchemaError), the
store or something unforeseen, for the health of each source; and the notifications told, each once

Runs recorded before this release keep no kind; a failed one counts as a failed fetch.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_runs") as batch:
        batch.add_column(sa.Column("failure", sa.String(20)))
    op.create_table(
        "notifications",
        sa.Column("key", sa.String(400), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("state", sa.String(20)),
        sa.Column("sent_ms", sa.BigInteger, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("body", sa.JSON),
        sa.Column("attempt_ms", sa.BigInteger),
        sa.Column("delivered_ms", sa.BigInteger),
    )
    op.create_index("ix_notifications_subject", "notifications", ["kind", "subject", "sent_ms"])


def downgrade() -> None:
    op.drop_index("ix_notifications_subject", "notifications")
    op.drop_table("notifications")
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_column("failure")
