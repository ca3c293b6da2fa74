"""retention: the indexes pruning reads (``exchange db prune``, :mod:`exchange.retention`): the
events that ended before a day, the crowd events that confirm a city event, and a sync run's
revisions (deleting a run sets their ``run_id`` NULL; without an index each deleted run would
read every revision)

Nothing is rewritten: revisions written before this release keep their full form (every field
that changed) until retention prunes them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_events_status_updated", "events", ["status", "updated_ms"])
    op.create_index("ix_revisions_run", "revisions", ["run_id"])
    op.create_index("ix_confirmations_crowd", "confirmations", ["crowd_event_id"])


def downgrade() -> None:
    op.drop_index("ix_confirmations_crowd", table_name="confirmations")
    op.drop_index("ix_revisions_run", table_name="revisions")
    op.drop_index("ix_events_status_updated", table_name="events")
