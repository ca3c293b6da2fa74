"""the Waze status of city closures: seen since the report's time, last seen, traffic flowing, evidence;
when each published event first went out

Links made before this release could join a Waze report to a city closure it did not overlap in
time, and ``visible_in_waze_since_ms`` held the time of the sync that noticed a report. Both are
mended from what the store holds: a link whose report ended before the closure started (or
started after the closure ended) is removed, and "seen since" becomes the earliest time a linked
report showed the closure (the report's own time, not before the closure's start).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

#: far enough in the future for an open end
_OPEN = 2**62


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("waze_last_seen_ms", sa.BigInteger))
        batch.add_column(sa.Column("waze_flowing_since_ms", sa.BigInteger))
        batch.add_column(sa.Column("waze_evidence", sa.JSON))
    with op.batch_alter_table("published_events") as batch:
        batch.add_column(sa.Column("first_published_ms", sa.BigInteger))
    conn = op.get_bind()
    conn.execute(sa.text("UPDATE published_events SET first_published_ms = published_ms"))
    _mend_confirmations(conn)


def _mend_confirmations(conn: sa.Connection) -> None:
    links = conn.execute(sa.text(
        "SELECT c.city_event_id, c.crowd_event_id, c.linked_ms, city.start_ms, city.end_ms, "
        "crowd.start_ms, crowd.end_ms, crowd.updated_ms "
        "FROM confirmations c JOIN events city ON city.id = c.city_event_id "
        "JOIN events crowd ON crowd.id = c.crowd_event_id"
    )).all()
    seen: dict[str, int] = {}
    for city_id, crowd_id, linked, city_start, city_end, shown, crowd_end, crowd_updated in links:
        shown = shown if shown is not None else linked
        last = crowd_end if crowd_end is not None else (crowd_updated if crowd_updated is not None else linked)
        opens = city_start if city_start is not None else 0
        closes = city_end if city_end is not None else _OPEN
        if shown > closes or last < opens:
            conn.execute(sa.text("DELETE FROM confirmations WHERE city_event_id = :city AND crowd_event_id = :crowd"),
                         {"city": city_id, "crowd": crowd_id})
            continue
        since = max(shown, opens)
        seen[city_id] = min(since, seen.get(city_id, since))
    conn.execute(sa.text("UPDATE events SET visible_in_waze_since_ms = NULL WHERE visible_in_waze_since_ms IS NOT NULL"))
    for city_id, since in seen.items():
        conn.execute(sa.text("UPDATE events SET visible_in_waze_since_ms = :since WHERE id = :id"),
                     {"since": since, "id": city_id})


def downgrade() -> None:
    with op.batch_alter_table("published_events") as batch:
        batch.drop_column("first_published_ms")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("waze_evidence")
        batch.drop_column("waze_flowing_since_ms")
        batch.drop_column("waze_last_seen_ms")
