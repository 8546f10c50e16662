"""ingested_events: which Worker tail events are already in, so re-ingesting adds nothing

Revision ID: 0002_ingested_events
Revises: 0001_metrics_initial
Create Date: 2026-11-30 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002_ingested_events'
down_revision = '0001_metrics_initial'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ingested_events',
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('event_key', sa.Text(), nullable=False),
    sa.Column('ts', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'event_key', name=op.f('pk_ingested_events'))
    )


def downgrade() -> None:
    op.drop_table('ingested_events')
