"""publications: when each feed first went out (``first_published_ms``), the catalogue's ``dct:issued``

The publish step replaces a feed's row at every publication; the new column carries the first
time over. Stores published before this release get the oldest time they still know: the oldest
remaining published run (``publish_runs``, kept ``retention.publish_runs_days``), else the
current publication.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("publications") as batch:
        batch.add_column(sa.Column("first_published_ms", sa.BigInteger))
    conn = op.get_bind()
    oldest_run = conn.execute(sa.text("SELECT MIN(at_ms) FROM publish_runs WHERE status = 'published'")).scalar()
    conn.execute(sa.text("UPDATE publications SET first_published_ms = published_ms"))
    if oldest_run is not None:
        conn.execute(sa.text("UPDATE publications SET first_published_ms = :oldest WHERE published_ms > :oldest"),
                     {"oldest": oldest_run})


def downgrade() -> None:
    with op.batch_alter_table("publications") as batch:
        batch.drop_column("first_published_ms")
