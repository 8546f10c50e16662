"""Indexes the cleanup's range deletes need (the plan's 008_cleanup_indexes, never written upstream).

Each cleanup deletes ``WHERE <timestamp> < cutoff``; without an index led by that
column every batch scans the table. An index is added only where none already
leads with the column: upstream's ``idx_recent_searches_time``, ``idx_usage_time``
and ``idx_sessions_expires`` serve (a descending index scans a range just as well),
and a second copy would only slow the app's inserts. On a fresh DB that leaves
``idx_searches_cleanup``; a DB built by other means gets whatever it lacks.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

#: (index name, table, column), the cleanup's range columns.
CLEANUP_INDEXES = (
    ("idx_searches_cleanup", "searches", "searched_at"),
    ("idx_recent_searches_cleanup", "recent_searches", "searched_at"),
    ("idx_usage_cleanup", "api_usage_log", "created_at"),
    ("idx_sessions_cleanup", "sessions", "expires_at"),
)


def _has_leading_index(inspector: sa.Inspector, table: str, column: str) -> bool:
    for index in inspector.get_indexes(table):
        columns = index.get("column_names") or []
        options = index.get("dialect_options", {})
        partial = options.get("postgresql_where") or options.get("sqlite_where")
        if columns and columns[0] == column and not partial:
            return True
    return False


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for name, table, column in CLEANUP_INDEXES:
        if not _has_leading_index(inspector, table, column):
            op.create_index(name, table, [column])


def downgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for name, table, _column in CLEANUP_INDEXES:
        if any(ix["name"] == name for ix in inspector.get_indexes(table)):
            op.drop_index(name, table_name=table)
