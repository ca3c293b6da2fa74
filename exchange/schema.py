"""The store's tables (SQLAlchemy Core). Migrations in ``exchange/migrations`` create exactly these.

Times are UTC epoch milliseconds in BIGINT columns: portable between SQLite and PostgreSQL,
cheap to compare, and free of driver time-zone surprises.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

#: bump together with a new migration file; checked at every start without loading Alembic
SCHEMA_REVISION = "0012"

sources = Table(
    "sources",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("kind", String(100), nullable=False),
    Column("namespace", String(100), nullable=False),
    Column("location", Text, nullable=False, doc="the feed URL with secrets redacted"),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("newest_snapshot_ms", BigInteger, doc="the newest snapshot time reconciled"),
    Column("last_success_ms", BigInteger),
    Column("recent_counts", JSON, doc="per kind, item counts of the last polls (suspect-feed guard)"),
    Column("created_ms", BigInteger, nullable=False),
    Column("priority", Integer, nullable=False, server_default="0",
           doc="its configured priority: of one closure two sources report, the higher one's is published"),
)

events = Table(
    "events",
    metadata,
    Column("id", String(300), primary_key=True),
    Column("source", String(100), nullable=False, doc="namespace, e.g. 'waze'"),
    Column("kind", String(20), nullable=False),
    Column("source_id", String(200), nullable=False),
    Column("origin", String(10), nullable=False),
    Column("category", String(20), nullable=False),
    Column("type", String(100), nullable=False),
    Column("subtype", String(100)),
    Column("street", Text),
    Column("city", Text),
    Column("country", String(20)),
    Column("direction", String(30)),
    Column("status", String(12), nullable=False),
    Column("geometry", JSON, nullable=False),
    Column("min_lon", Float, nullable=False),
    Column("min_lat", Float, nullable=False),
    Column("max_lon", Float, nullable=False),
    Column("max_lat", Float, nullable=False),
    Column("start_ms", BigInteger),
    Column("end_ms", BigInteger),
    Column("first_seen_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    Column("reliability", Integer),
    Column("confidence", Integer),
    Column("thumbs_up", Integer),
    Column("report_rating", Integer),
    Column("magvar", Integer),
    Column("road_type", Integer),
    Column("speed_kmh", Float),
    Column("delay_s", Integer),
    Column("level", Integer),
    Column("length_m", Integer),
    Column("blocking_alert_uuid", String(200)),
    Column("attributes", JSON, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("road_match", JSON, doc="RoadMatch: edges, distance, confidence, reason"),
    Column("cluster_id", String(40)),
    Column("details", JSON, doc="city events: CityDetails (description, schedule, lanes, source)"),
    Column("visible_in_waze_since_ms", BigInteger,
           doc="city closures: seen in Waze since (the time of the first Waze report or jam that shows it)"),
    Column("waze_last_seen_ms", BigInteger, doc="city closures: when the inbound feed last showed it"),
    Column("waze_flowing_since_ms", BigInteger,
           doc="city closures: Waze shows traffic flowing through it since (after it was seen)"),
    Column("waze_evidence", JSON, doc="city closures: the Waze reports and jams behind its Waze status"),
    Column("match_id", Text, doc="city events: the value of the source's match_key field, an id other sources share"),
    Column("same_as", String(300), doc="city events: the event published in its place (the same closure)"),
    Index("ix_events_source_kind", "source", "kind"),
    Index("ix_events_cluster", "cluster_id"),
    Index("ix_events_status_category", "status", "category"),
    Index("ix_events_start", "start_ms"),
    Index("ix_events_same_as", "same_as"),
    Index("ix_events_status_updated", "status", "updated_ms"),  # retention: what ended before a day
)

sightings = Table(
    "sightings",
    metadata,
    Column("event_id", String(300), ForeignKey("events.id", ondelete="CASCADE"), primary_key=True),
    Column("source_name", String(100), ForeignKey("sources.name", ondelete="CASCADE"), primary_key=True),
    Column("missed", Integer, nullable=False, doc="consecutive good polls of this source without the event"),
    Column("missing_since_ms", BigInteger, doc="snapshot time it was last seen, once missing"),
    Index("ix_sightings_source", "source_name"),
)

revisions = Table(
    "revisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(300), ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    Column("run_id", Integer, ForeignKey("sync_runs.id", ondelete="SET NULL")),
    Column("at_ms", BigInteger, nullable=False),
    Column("action", String(20), nullable=False, doc="created, updated, ended, reopened, history"),
    Column("changes", JSON, doc="field -> [old, new]"),
    Column("operator", String(100)),
    Index("ix_revisions_event", "event_id"),
    Index("ix_revisions_run", "run_id"),  # a pruned sync run sets its revisions' run_id NULL
)

sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(100), nullable=False),
    Column("started_ms", BigInteger, nullable=False),
    Column("finished_ms", BigInteger, nullable=False),
    Column("status", String(20), nullable=False, doc="ok, not-modified, duplicate, history, failed"),
    Column("snapshot_ms", BigInteger),
    Column("fetched", Integer, nullable=False, default=0),
    Column("new", Integer, nullable=False, default=0),
    Column("updated", Integer, nullable=False, default=0),
    Column("unchanged", Integer, nullable=False, default=0),
    Column("ended", Integer, nullable=False, default=0),
    Column("rejected", Integer, nullable=False, default=0),
    Column("item_errors", JSON),
    Column("message", Text),
    Column("failure", String(20), doc="of a failed run: fetch, payload, store or internal"),
    Index("ix_sync_runs_source", "source", "id"),
)

confirmations = Table(
    "confirmations",
    metadata,
    Column("city_event_id", String(300), ForeignKey("events.id", ondelete="CASCADE"), primary_key=True),
    Column("crowd_event_id", String(300), ForeignKey("events.id", ondelete="CASCADE"), primary_key=True),
    Column("linked_ms", BigInteger, nullable=False),
    Column("how", String(40), nullable=False, doc="road-closed-alert or blocked-jam"),
    Index("ix_confirmations_crowd", "crowd_event_id"),  # a crowd event kept while it confirms a city event
)

publications = Table(
    "publications",
    metadata,
    Column("feed", String(40), primary_key=True, doc="cifs.xml, cifs.json, wzdx.geojson, datex2.xml, cwz.geojson"),
    Column("published_ms", BigInteger, nullable=False),
    Column("etag", String(80), nullable=False),
    Column("content_type", String(80), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("body_gzip", LargeBinary, nullable=False),
    Column("events", Integer, nullable=False),
    Column("content_digest", String(64), doc="digest of what the feeds say, generation time left out"),
    Column("first_published_ms", BigInteger, doc="when this feed first went out (kept by save_publications)"),
)

published_events = Table(
    "published_events",
    metadata,
    Column("event_id", String(300), ForeignKey("events.id", ondelete="CASCADE"), primary_key=True),
    Column("target", String(20), primary_key=True, doc="cifs, wzdx, datex2, cwz: each holds back on its own"),
    Column("version", JSON, nullable=False, doc="the event as last published in this target (Event, JSON)"),
    Column("published_ms", BigInteger, nullable=False),
    Column("first_published_ms", BigInteger, doc="when it first went out"),
    Column("held_back_reason", Text, doc="why its current version is not published, if it is not"),
    Column("held_back_ms", BigInteger),
)

schedule = Table(
    "schedule",
    metadata,
    Column("job", String(120), primary_key=True, doc="source:<name>, or publish (the publish clock)"),
    Column("interval_ms", BigInteger, nullable=False),
    Column("next_due_ms", BigInteger, nullable=False, doc="on the store's clock (PostgreSQL: the server's)"),
    Column("claimed_by", String(200), doc="host:pid of the instance that claimed the last run"),
    Column("claimed_ms", BigInteger),
)

notifications = Table(
    "notifications",
    metadata,
    Column("key", String(400), primary_key=True, doc="what was told, once: state:source:waze:Offline:<since>, ..."),
    Column("kind", String(20), nullable=False, doc="source, feed, held-back, late-closure"),
    Column("subject", String(300), nullable=False, doc="the source, feed or event it is about"),
    Column("state", String(20)),
    Column("sent_ms", BigInteger, nullable=False),
    Column("text", Text, nullable=False),
    Column("body", JSON, doc="what the webhook is sent"),
    Column("attempt_ms", BigInteger, doc="the last POST to the webhook (retried until delivered, for a day)"),
    Column("delivered_ms", BigInteger, doc="when the webhook took it; 0: given up"),
    Index("ix_notifications_subject", "kind", "subject", "sent_ms"),
)

publish_runs = Table(
    "publish_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at_ms", BigInteger, nullable=False),
    Column("status", String(20), nullable=False, doc="published, unchanged, failed"),
    Column("events", Integer, nullable=False),
    Column("held_back", Integer, nullable=False),
    Column("problems", JSON),
    Column("message", Text),
)

partners = Table(
    "partners",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("token_hash", String(128), nullable=False, doc="sha256 of the token; the token itself is never stored"),
    Column("created_ms", BigInteger, nullable=False),
    Column("revoked_ms", BigInteger),
)

operators = Table(
    "operators",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("token_hash", String(128), nullable=False, doc="sha256 of the token; the token itself is never stored"),
    Column("created_ms", BigInteger, nullable=False),
    Column("revoked_ms", BigInteger),
    Column("signed_out_ms", BigInteger, doc="sign-in cookies issued before this are refused (Sign out)"),
)

downloads = Table(
    "downloads",
    metadata,
    Column("partner", String(100), primary_key=True, doc="partner name, or '-' for anonymous"),
    Column("feed", String(40), primary_key=True),
    Column("count", Integer, nullable=False, doc="200 responses with a body"),
    Column("last_ms", BigInteger, nullable=False),
    Column("polls", Integer, nullable=False, server_default="0", doc="304 revalidations and HEAD requests"),
)

#: facts about the store as a whole, one JSON value per key (e.g. the road network it was routed on)
meta = Table(
    "meta",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", JSON),
    Column("updated_ms", BigInteger, nullable=False),
)
