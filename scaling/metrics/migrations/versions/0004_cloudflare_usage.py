"""cloudflare_*: the production account's usage pulled from Cloudflare's GraphQL and REST APIs

cloudflare_usage holds every bucketed series in one long table keyed by
(source, dataset, subject, dimension, metric, ts), so re-pulling an overlapping
window upserts (late data corrects a row, never duplicates it); cron runs are raw
rows keyed by their schedule; D1 databases keep the latest REST snapshot; and a
watermark per (dataset, subject) lets the collector catch up after downtime.

Revision ID: 0004_cloudflare_usage
Revises: 0003_source_ts_indexes
Create Date: 2026-12-05 13:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004_cloudflare_usage'
down_revision = '0003_source_ts_indexes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cloudflare_usage',
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('dataset', sa.Text(), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('dimension', sa.Text(), nullable=False),
    sa.Column('metric', sa.Text(), nullable=False),
    sa.Column('ts', sa.Double(), nullable=False),
    sa.Column('bucket_s', sa.Double(), nullable=False),
    sa.Column('value', sa.Double(), nullable=False),
    sa.Column('pulled_at', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'dataset', 'subject', 'dimension', 'metric', 'ts',
                            name=op.f('pk_cloudflare_usage'))
    )
    op.create_index('ix_cloudflare_usage_ts', 'cloudflare_usage', ['ts'])
    op.create_table('cloudflare_cron_runs',
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('script', sa.Text(), nullable=False),
    sa.Column('cron', sa.Text(), nullable=False),
    sa.Column('scheduled_ts', sa.Double(), nullable=False),
    sa.Column('ts', sa.Double(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('cpu_time_us', sa.Double(), nullable=True),
    sa.Column('pulled_at', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'script', 'cron', 'scheduled_ts', name=op.f('pk_cloudflare_cron_runs'))
    )
    op.create_index('ix_cloudflare_cron_runs_ts', 'cloudflare_cron_runs', ['ts'])
    op.create_table('cloudflare_d1_databases',
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('database_id', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), server_default=sa.text("''"), nullable=False),
    sa.Column('file_size_bytes', sa.BigInteger(), nullable=True),
    sa.Column('read_replication_mode', sa.Text(), nullable=True),
    sa.Column('running_in_region', sa.Text(), nullable=True),
    sa.Column('pulled_at', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'database_id', name=op.f('pk_cloudflare_d1_databases'))
    )
    op.create_table('cloudflare_watermarks',
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('dataset', sa.Text(), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('pulled_until', sa.Double(), nullable=False),
    sa.Column('updated_at', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'dataset', 'subject', name=op.f('pk_cloudflare_watermarks'))
    )


def downgrade() -> None:
    op.drop_table('cloudflare_watermarks')
    op.drop_table('cloudflare_d1_databases')
    op.drop_index('ix_cloudflare_cron_runs_ts', table_name='cloudflare_cron_runs')
    op.drop_table('cloudflare_cron_runs')
    op.drop_index('ix_cloudflare_usage_ts', table_name='cloudflare_usage')
    op.drop_table('cloudflare_usage')
