"""initial schema: sources, events, sightings, revisions, sync runs

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("namespace", sa.String(100), nullable=False),
        sa.Column("location", sa.Text, nullable=False),
        sa.Column("etag", sa.Text),
        sa.Column("last_modified", sa.Text),
        sa.Column("newest_snapshot_ms", sa.BigInteger),
        sa.Column("last_success_ms", sa.BigInteger),
        sa.Column("recent_counts", sa.JSON),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.String(300), primary_key=True),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("source_id", sa.String(200), nullable=False),
        sa.Column("origin", sa.String(10), nullable=False),
        sa.Column("category", sa.String(20), nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("subtype", sa.String(100)),
        sa.Column("street", sa.Text),
        sa.Column("city", sa.Text),
        sa.Column("country", sa.String(20)),
        sa.Column("direction", sa.String(30)),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("geometry", sa.JSON, nullable=False),
        sa.Column("min_lon", sa.Float, nullable=False),
        sa.Column("min_lat", sa.Float, nullable=False),
        sa.Column("max_lon", sa.Float, nullable=False),
        sa.Column("max_lat", sa.Float, nullable=False),
        sa.Column("start_ms", sa.BigInteger),
        sa.Column("end_ms", sa.BigInteger),
        sa.Column("first_seen_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.Column("reliability", sa.Integer),
        sa.Column("confidence", sa.Integer),
        sa.Column("thumbs_up", sa.Integer),
        sa.Column("report_rating", sa.Integer),
        sa.Column("magvar", sa.Integer),
        sa.Column("road_type", sa.Integer),
        sa.Column("speed_kmh", sa.Float),
        sa.Column("delay_s", sa.Integer),
        sa.Column("level", sa.Integer),
        sa.Column("length_m", sa.Integer),
        sa.Column("blocking_alert_uuid", sa.String(200)),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
    )
    op.create_index("ix_events_source_kind", "events", ["source", "kind"])
    op.create_index("ix_events_status_category", "events", ["status", "category"])
    op.create_index("ix_events_start", "events", ["start_ms"])
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("started_ms", sa.BigInteger, nullable=False),
        sa.Column("finished_ms", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("snapshot_ms", sa.BigInteger),
        sa.Column("fetched", sa.Integer, nullable=False),
        sa.Column("new", sa.Integer, nullable=False),
        sa.Column("updated", sa.Integer, nullable=False),
        sa.Column("unchanged", sa.Integer, nullable=False),
        sa.Column("ended", sa.Integer, nullable=False),
        sa.Column("rejected", sa.Integer, nullable=False),
        sa.Column("item_errors", sa.JSON),
        sa.Column("message", sa.Text),
    )
    op.create_index("ix_sync_runs_source", "sync_runs", ["source", "id"])
    op.create_table(
        "sightings",
        sa.Column("event_id", sa.String(300), sa.ForeignKey("events.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("source_name", sa.String(100), sa.ForeignKey("sources.name", ondelete="CASCADE"), primary_key=True),
        sa.Column("missed", sa.Integer, nullable=False),
        sa.Column("missing_since_ms", sa.BigInteger),
    )
    op.create_index("ix_sightings_source", "sightings", ["source_name"])
    op.create_table(
        "revisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(300), sa.ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("sync_runs.id", ondelete="SET NULL")),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("changes", sa.JSON),
        sa.Column("operator", sa.String(100)),
    )
    op.create_index("ix_revisions_event", "revisions", ["event_id"])


def downgrade() -> None:
    for table in ("revisions", "sightings", "sync_runs", "events", "sources"):
        op.drop_table(table)
