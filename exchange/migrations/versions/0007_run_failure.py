"""why a failed sync run failed: the fetch (the upstream is Offline), the payload (SchemaError), the
store or something unforeseen, for the health of each source

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


def downgrade() -> None:
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_column("failure")
