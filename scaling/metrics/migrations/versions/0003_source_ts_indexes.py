"""raw tables: index (source, ts) so each source's un-rolled tail is one index range; ingested_events by ts

Queries read raw rows per source from that source's roll-up watermark on; with
(source, ts) that is a short range instead of a filter over every raw row in the
query's time range. The per-dimension indexes it replaces served no query.
ingested_events gets a ts index so retention can drop keys as old as the roll-ups.

Revision ID: 0003_source_ts_indexes
Revises: 0002_ingested_events
Create Date: 2026-11-29 19:30:00
"""

from __future__ import annotations

from alembic import op

revision = '0003_source_ts_indexes'
down_revision = '0002_ingested_events'
branch_labels = None
depends_on = None

_REPLACED = {
    "headroom_samples": ("ix_headroom_samples_source_upstream_limiter_key_ts", ["source", "upstream", "limiter_key", "ts"]),
    "cache_stats": ("ix_cache_stats_source_family_ts", ["source", "family", "ts"]),
    "ai_usage": ("ix_ai_usage_source_provider_ts", ["source", "provider", "ts"]),
    "worker_events": ("ix_worker_events_source_event_type_ts", ["source", "event_type", "ts"]),
}


def upgrade() -> None:
    for table, (old, _) in _REPLACED.items():
        op.create_index(op.f(f"ix_{table}_source_ts"), table, ["source", "ts"])
        op.drop_index(op.f(old), table_name=table)
    op.create_index(op.f("ix_ingested_events_ts"), "ingested_events", ["ts"])


def downgrade() -> None:
    op.drop_index(op.f("ix_ingested_events_ts"), table_name="ingested_events")
    for table, (old, columns) in _REPLACED.items():
        op.create_index(op.f(old), table, columns)
        op.drop_index(op.f(f"ix_{table}_source_ts"), table_name=table)
