"""metrics schema: samples, job runs, stats, AI usage, alerts, hourly roll-ups

Every timestamp is epoch seconds (UTC) in a DOUBLE; see scaling/metrics/models.py.

Revision ID: 0001_metrics_initial
Revises:
Create Date: 2026-11-29 18:41:48.186150
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001_metrics_initial'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ai_usage',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ts', sa.Double(), nullable=False),
    sa.Column('source', sa.Text(), server_default=sa.text("'collectors'"), nullable=False),
    sa.Column('provider', sa.Text(), nullable=False),
    sa.Column('model', sa.Text(), nullable=False),
    sa.Column('task', sa.Text(), nullable=False),
    sa.Column('input_tokens', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('cached_input_tokens', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('output_tokens', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('reasoning_tokens', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('web_search_calls', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('latency_ms', sa.Double(), server_default=sa.text('0'), nullable=False),
    sa.Column('cache_hit', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('cost_usd', sa.Double(), server_default=sa.text('0'), nullable=False),
    sa.Column('saved_tokens', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('price_version', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ai_usage'))
    )
    op.create_index(op.f('ix_ai_usage_source_provider_ts'), 'ai_usage', ['source', 'provider', 'ts'])
    op.create_index(op.f('ix_ai_usage_ts'), 'ai_usage', ['ts'])

    op.create_table('ai_usage_hourly',
    sa.Column('hour', sa.Double(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('provider', sa.Text(), nullable=False),
    sa.Column('model', sa.Text(), nullable=False),
    sa.Column('task', sa.Text(), nullable=False),
    sa.Column('calls', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('input_tokens', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('cached_input_tokens', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('output_tokens', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('reasoning_tokens', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('web_search_calls', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('cache_hits', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('latency_ms_sum', sa.Double(), server_default=sa.text('0'), nullable=False),
    sa.Column('latency_ms_max', sa.Double(), server_default=sa.text('0'), nullable=False),
    sa.Column('cost_usd', sa.Double(), server_default=sa.text('0'), nullable=False),
    sa.Column('saved_tokens', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.PrimaryKeyConstraint('hour', 'source', 'provider', 'model', 'task', name=op.f('pk_ai_usage_hourly'))
    )
    op.create_table('alert_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('source', sa.Text(), server_default=sa.text("'collectors'"), nullable=False),
    sa.Column('rule', sa.Text(), nullable=False),
    sa.Column('subject', sa.Text(), server_default=sa.text("''"), nullable=False),
    sa.Column('severity', sa.Text(), nullable=False),
    sa.Column('state', sa.Text(), nullable=False),
    sa.Column('started_at', sa.Double(), nullable=False),
    sa.Column('resolved_at', sa.Double(), nullable=True),
    sa.Column('value', sa.Double(), nullable=True),
    sa.Column('threshold', sa.Double(), nullable=True),
    sa.Column('message', sa.Text(), server_default=sa.text("''"), nullable=False),
    sa.Column('delivered', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.CheckConstraint("state IN ('firing', 'resolved')", name=op.f('ck_alert_events_state')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_events'))
    )
    op.create_index(op.f('ix_alert_events_rule_subject_state'), 'alert_events', ['rule', 'subject', 'state'])
    op.create_index(op.f('ix_alert_events_started_at'), 'alert_events', ['started_at'])

    op.create_table('cache_hourly',
    sa.Column('hour', sa.Double(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('family', sa.Text(), nullable=False),
    sa.Column('samples', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('hits', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('misses', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('evictions', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('keys_max', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('bytes_max', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('oldest_age_max', sa.Double(), server_default=sa.text('0'), nullable=False),
    sa.PrimaryKeyConstraint('hour', 'source', 'family', name=op.f('pk_cache_hourly'))
    )
    op.create_table('cache_stats',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ts', sa.Double(), nullable=False),
    sa.Column('source', sa.Text(), server_default=sa.text("'collectors'"), nullable=False),
    sa.Column('family', sa.Text(), nullable=False),
    sa.Column('hits', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('misses', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('keys', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('bytes', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('evictions', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('oldest_age_s', sa.Double(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cache_stats'))
    )
    op.create_index(op.f('ix_cache_stats_source_family_ts'), 'cache_stats', ['source', 'family', 'ts'])
    op.create_index(op.f('ix_cache_stats_ts'), 'cache_stats', ['ts'])

    op.create_table('db_stats',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ts', sa.Double(), nullable=False),
    sa.Column('source', sa.Text(), server_default=sa.text("'collectors'"), nullable=False),
    sa.Column('table_name', sa.Text(), nullable=False),
    sa.Column('rows', sa.BigInteger(), nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_db_stats'))
    )
    op.create_index(op.f('ix_db_stats_source_table_name_ts'), 'db_stats', ['source', 'table_name', 'ts'])
    op.create_index(op.f('ix_db_stats_ts'), 'db_stats', ['ts'])

    op.create_table('headroom_hourly',
    sa.Column('hour', sa.Double(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('upstream', sa.Text(), nullable=False),
    sa.Column('limiter_key', sa.Text(), nullable=False),
    sa.Column('samples', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('used_sum', sa.Double(), server_default=sa.text('0'), nullable=False),
    sa.Column('used_max', sa.Double(), server_default=sa.text('0'), nullable=False),
    sa.Column('limit_max', sa.Double(), server_default=sa.text('0'), nullable=False),
    sa.Column('remaining_min', sa.Double(), server_default=sa.text('0'), nullable=False),
    sa.Column('util_sum', sa.Double(), server_default=sa.text('0'), nullable=False),
    sa.Column('util_max', sa.Double(), server_default=sa.text('0'), nullable=False),
    sa.Column('cooldown_samples', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('upstream_429', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('throttled', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('wait_seconds', sa.Double(), server_default=sa.text('0'), nullable=False),
    sa.Column('rejected', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.PrimaryKeyConstraint('hour', 'source', 'upstream', 'limiter_key', name=op.f('pk_headroom_hourly'))
    )
    op.create_table('headroom_samples',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ts', sa.Double(), nullable=False),
    sa.Column('source', sa.Text(), server_default=sa.text("'collectors'"), nullable=False),
    sa.Column('upstream', sa.Text(), nullable=False),
    sa.Column('limiter_key', sa.Text(), server_default=sa.text("''"), nullable=False),
    sa.Column('used', sa.Double(), nullable=False),
    sa.Column('limit', sa.Double(), nullable=False),
    sa.Column('remaining', sa.Double(), nullable=False),
    sa.Column('utilisation', sa.Double(), nullable=False),
    sa.Column('in_cooldown', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('cooldown_until', sa.Double(), nullable=True),
    sa.Column('upstream_429', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('throttled', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('wait_seconds', sa.Double(), server_default=sa.text('0'), nullable=False),
    sa.Column('rejected', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_headroom_samples'))
    )
    op.create_index(op.f('ix_headroom_samples_source_upstream_limiter_key_ts'), 'headroom_samples', ['source', 'upstream', 'limiter_key', 'ts'])
    op.create_index(op.f('ix_headroom_samples_ts'), 'headroom_samples', ['ts'])

    op.create_table('job_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('job', sa.Text(), nullable=False),
    sa.Column('scheduled_at', sa.Double(), nullable=False),
    sa.Column('source', sa.Text(), server_default=sa.text("'collectors'"), nullable=False),
    sa.Column('started_at', sa.Double(), nullable=False),
    sa.Column('finished_at', sa.Double(), nullable=True),
    sa.Column('duration_s', sa.Double(), nullable=True),
    sa.Column('lateness_s', sa.Double(), server_default=sa.text('0'), nullable=False),
    sa.Column('outcome', sa.Text(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('report', sa.Text(), nullable=True),
    sa.Column('host', sa.Text(), nullable=True),
    sa.CheckConstraint("outcome IN ('running', 'ok', 'failed', 'timed_out', 'skipped')", name=op.f('ck_job_runs_outcome')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_runs')),
    sa.UniqueConstraint('job', 'scheduled_at', 'source', name=op.f('uq_job_runs_job_scheduled_at_source'))
    )
    op.create_index(op.f('ix_job_runs_scheduled_at'), 'job_runs', ['scheduled_at'])

    op.create_table('rollup_state',
    sa.Column('table_name', sa.Text(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('rolled_until', sa.Double(), nullable=False),
    sa.Column('pruned_before', sa.Double(), server_default=sa.text('0'), nullable=False),
    sa.PrimaryKeyConstraint('table_name', 'source', name=op.f('pk_rollup_state'))
    )
    op.create_table('user_counts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ts', sa.Double(), nullable=False),
    sa.Column('source', sa.Text(), server_default=sa.text("'collectors'"), nullable=False),
    sa.Column('total', sa.BigInteger(), nullable=False),
    sa.Column('with_lastfm', sa.BigInteger(), nullable=False),
    sa.Column('active', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_counts'))
    )
    op.create_index(op.f('ix_user_counts_source_ts'), 'user_counts', ['source', 'ts'])
    op.create_index(op.f('ix_user_counts_ts'), 'user_counts', ['ts'])

    op.create_table('worker_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ts', sa.Double(), nullable=False),
    sa.Column('source', sa.Text(), server_default=sa.text("'collectors'"), nullable=False),
    sa.Column('event_type', sa.Text(), nullable=False),
    sa.Column('outcome', sa.Text(), nullable=False),
    sa.Column('cron', sa.Text(), server_default=sa.text("''"), nullable=False),
    sa.Column('wall_ms', sa.Double(), server_default=sa.text('0'), nullable=False),
    sa.Column('cpu_ms', sa.Double(), server_default=sa.text('0'), nullable=False),
    sa.Column('exceptions', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_worker_events'))
    )
    op.create_index(op.f('ix_worker_events_source_event_type_ts'), 'worker_events', ['source', 'event_type', 'ts'])
    op.create_index(op.f('ix_worker_events_ts'), 'worker_events', ['ts'])

    op.create_table('worker_hourly',
    sa.Column('hour', sa.Double(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('event_type', sa.Text(), nullable=False),
    sa.Column('outcome', sa.Text(), nullable=False),
    sa.Column('cron', sa.Text(), nullable=False),
    sa.Column('events', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('wall_ms_sum', sa.Double(), server_default=sa.text('0'), nullable=False),
    sa.Column('wall_ms_max', sa.Double(), server_default=sa.text('0'), nullable=False),
    sa.Column('cpu_ms_sum', sa.Double(), server_default=sa.text('0'), nullable=False),
    sa.Column('cpu_ms_max', sa.Double(), server_default=sa.text('0'), nullable=False),
    sa.Column('exceptions', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.PrimaryKeyConstraint('hour', 'source', 'event_type', 'outcome', 'cron', name=op.f('pk_worker_hourly'))
    )


def downgrade() -> None:
    op.drop_table('worker_hourly')
    op.drop_table('worker_events')
    op.drop_table('user_counts')
    op.drop_table('rollup_state')
    op.drop_table('job_runs')
    op.drop_table('headroom_samples')
    op.drop_table('headroom_hourly')
    op.drop_table('db_stats')
    op.drop_table('cache_stats')
    op.drop_table('cache_hourly')
    op.drop_table('alert_events')
    op.drop_table('ai_usage_hourly')
    op.drop_table('ai_usage')
