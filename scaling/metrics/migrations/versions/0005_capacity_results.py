"""capacity_results: the newest capacity search's answer, for the Overview

A capacity bisection runs the simulator for minutes, so it cannot run on page load:
the collectors' daily ``capacity`` job and ``simulate --capacity`` store one row per
search (design, time model, active share, users carried, the first limit past it,
steady-state monthly cost at that size, and where each input came from).

Revision ID: 0005_capacity_results
Revises: 0004_cloudflare_usage
Create Date: 2026-12-05 19:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005_capacity_results'
down_revision = '0004_cloudflare_usage'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('capacity_results',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('computed_at', sa.Double(), nullable=False),
    sa.Column('source', sa.Text(), server_default=sa.text("'collectors'"), nullable=False),
    sa.Column('design', sa.Text(), nullable=False),
    sa.Column('time_model', sa.Text(), nullable=False),
    sa.Column('active_share', sa.Double(), nullable=False),
    sa.Column('users_carried', sa.BigInteger(), nullable=False),
    sa.Column('broken_at', sa.BigInteger(), nullable=True),
    sa.Column('first_break_limit', sa.Text(), nullable=True),
    sa.Column('first_break_detail', sa.Text(), nullable=True),
    sa.Column('ai_usd_month', sa.Double(), nullable=True),
    sa.Column('platform_usd_month', sa.Double(), nullable=True),
    sa.Column('trial_hours', sa.Double(), nullable=False),
    sa.Column('wall_s', sa.Double(), server_default=sa.text('0'), nullable=False),
    sa.Column('trials', sa.Text(), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('provenance', sa.Text(), server_default=sa.text("'{}'"), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_capacity_results'))
    )
    op.create_index(op.f('ix_capacity_results_computed_at'), 'capacity_results', ['computed_at'])


def downgrade() -> None:
    op.drop_index(op.f('ix_capacity_results_computed_at'), table_name='capacity_results')
    op.drop_table('capacity_results')
