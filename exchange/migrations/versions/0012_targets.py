"""published_events per (event, target): each target (cifs, wzdx, datex2, cwz) holds back on its own

An event one target cannot carry is held back from that target only, so the last good version
served, the hold-back reason and the first publication are kept per target. The rows of a store
published before this release each become the cifs target's row, and the wzdx target's when WZDx
carried the event (a closure or road works with a street: the 0011 renderer left the others out);
DATEX II and CWZ have published nothing yet. (A wzdx row for an event WZDx never carried would
count as lost for the wzdx target's mass hold-back guard.)

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_COLUMNS = "event_id, version, published_ms, first_published_ms, held_back_reason, held_back_ms"
#: the targets that published what a store of 0011 holds, and which of its events each carried
_PUBLISHED_BEFORE = {
    "cifs": "",
    "wzdx": " WHERE event_id IN (SELECT id FROM events WHERE category IN ('CONSTRUCTION', 'ROAD_CLOSED')"
            " AND street IS NOT NULL AND street <> '')",
}


def upgrade() -> None:
    # a new table renamed into place: the primary key changes, and a renamed PostgreSQL table
    # keeps its constraint names, which the new table's would collide with
    op.create_table(
        "published_events_by_target",
        sa.Column("event_id", sa.String(300), sa.ForeignKey("events.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("target", sa.String(20), primary_key=True),
        sa.Column("version", sa.JSON, nullable=False),
        sa.Column("published_ms", sa.BigInteger, nullable=False),
        sa.Column("first_published_ms", sa.BigInteger),
        sa.Column("held_back_reason", sa.Text),
        sa.Column("held_back_ms", sa.BigInteger),
    )
    conn = op.get_bind()
    for target, carried in _PUBLISHED_BEFORE.items():
        conn.execute(sa.text(f"INSERT INTO published_events_by_target (target, {_COLUMNS}) "
                             f"SELECT :target, {_COLUMNS} FROM published_events{carried}"), {"target": target})
    op.drop_table("published_events")
    op.rename_table("published_events_by_target", "published_events")


def downgrade() -> None:
    op.create_table(
        "published_events_0011",
        sa.Column("event_id", sa.String(300), sa.ForeignKey("events.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("version", sa.JSON, nullable=False),
        sa.Column("published_ms", sa.BigInteger, nullable=False),
        sa.Column("first_published_ms", sa.BigInteger),
        sa.Column("held_back_reason", sa.Text),
        sa.Column("held_back_ms", sa.BigInteger),
    )
    op.get_bind().execute(sa.text(f"INSERT INTO published_events_0011 ({_COLUMNS}) "
                                  f"SELECT {_COLUMNS} FROM published_events WHERE target = 'cifs'"))
    op.drop_table("published_events")
    op.rename_table("published_events_0011", "published_events")
