"""road match and cluster of each event

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("road_match", sa.JSON))
        batch.add_column(sa.Column("cluster_id", sa.String(40)))
        batch.create_index("ix_events_cluster", ["cluster_id"])


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_index("ix_events_cluster")
        batch.drop_column("cluster_id")
        batch.drop_column("road_match")
