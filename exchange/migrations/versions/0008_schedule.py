"""the schedule instances share: when each source's next poll and the next tick of the publish
clock are due, and which instance claimed the last one (so each due run happens on one instance)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedule",
        sa.Column("job", sa.String(120), primary_key=True),
        sa.Column("interval_ms", sa.BigInteger, nullable=False),
        sa.Column("next_due_ms", sa.BigInteger, nullable=False),
        sa.Column("claimed_by", sa.String(200)),
        sa.Column("claimed_ms", sa.BigInteger),
    )


def downgrade() -> None:
    op.drop_table("schedule")
