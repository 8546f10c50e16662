"""Initial schema: the upstream D1 schema after its migrations 002, 003, 005, 006 and 007.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scaling.appdb.sql_defaults import random_hex_id, utc_now_text

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    text, integer = sa.Text(), sa.Integer()
    op.create_table(
        "users",
        sa.Column("id", text, server_default=random_hex_id(), nullable=False),
        sa.Column("email", text),
        sa.Column("lastfm_username", text),
        sa.Column("discogs_username", text),
        sa.Column("spotify_connected", integer, server_default=sa.text("0")),
        sa.Column("created_at", text, server_default=utc_now_text()),
        sa.Column("updated_at", text, server_default=utc_now_text()),
        sa.Column("username", text),
        sa.Column("lastfm_session_key", text),
        sa.Column("display_name", text),
        sa.Column("avatar_url", text),
        sa.Column("bio", text),
        sa.Column("profile_visibility", text, server_default=sa.text("'public'")),
        sa.Column("last_login_at", text),
        sa.Column("login_count", integer, server_default=sa.text("0")),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("email", name="uq_users_email"),
    )
    op.create_index("idx_users_username", "users", ["username"], unique=True)

    op.create_table(
        "sessions",
        sa.Column("id", text, nullable=False),
        sa.Column("user_id", text, nullable=False),
        sa.Column("token_hash", text, nullable=False),
        sa.Column("user_agent", text),
        sa.Column("ip_address", text),
        sa.Column("created_at", text, server_default=utc_now_text()),
        sa.Column("expires_at", text, nullable=False),
        sa.Column("last_active_at", text, server_default=utc_now_text()),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
        sa.UniqueConstraint("token_hash", name="uq_sessions_token_hash"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_sessions_user_id_users", ondelete="CASCADE"),
    )
    op.create_index("idx_sessions_user", "sessions", ["user_id"])
    op.create_index("idx_sessions_token", "sessions", ["token_hash"])
    op.create_index("idx_sessions_expires", "sessions", ["expires_at"])

    op.create_table(
        "searches",
        sa.Column("id", text, server_default=random_hex_id(), nullable=False),
        sa.Column("user_id", text, server_default=sa.text("'default'")),
        sa.Column("search_type", text, nullable=False),
        sa.Column("query", text, nullable=False),
        sa.Column("result_id", text),
        sa.Column("result_name", text),
        sa.Column("result_artist", text),
        sa.Column("searched_at", text, server_default=utc_now_text()),
        sa.PrimaryKeyConstraint("id", name="pk_searches"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_searches_user_id_users", ondelete="CASCADE"),
    )
    op.create_index("idx_searches_user_time", "searches", ["user_id", sa.text("searched_at DESC")])

    op.create_table(
        "recent_searches",
        sa.Column("id", text, server_default=random_hex_id(), nullable=False),
        sa.Column("spotify_id", text, nullable=False),
        sa.Column("album_name", text, nullable=False),
        sa.Column("artist_name", text, nullable=False),
        sa.Column("image_url", text),
        sa.Column("searched_at", text, server_default=utc_now_text()),
        sa.PrimaryKeyConstraint("id", name="pk_recent_searches"),
    )
    op.create_index("idx_recent_searches_time", "recent_searches", [sa.text("searched_at DESC")])

    op.create_table(
        "api_keys",
        sa.Column("id", text, server_default=random_hex_id(), nullable=False),
        sa.Column("user_id", text),
        sa.Column("key_hash", text, nullable=False),
        sa.Column("key_prefix", text, nullable=False),
        sa.Column("name", text, server_default=sa.text("'Default'")),
        sa.Column("tier", text, server_default=sa.text("'standard'")),
        sa.Column("scopes", text, server_default=sa.text("'[\"read\"]'")),
        sa.Column("rate_limit_rpm", integer),
        sa.Column("request_count", integer, server_default=sa.text("0")),
        sa.Column("last_used_at", text),
        sa.Column("created_at", text, server_default=utc_now_text()),
        sa.Column("expires_at", text),
        sa.Column("revoked_at", text),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_api_keys_user_id_users", ondelete="CASCADE"),
        sa.CheckConstraint("tier IN ('public', 'standard', 'premium')", name="ck_api_keys_tier"),
    )
    op.create_index("idx_api_keys_hash", "api_keys", ["key_hash"])
    op.create_index("idx_api_keys_user", "api_keys", ["user_id"])
    op.create_index("idx_api_keys_prefix", "api_keys", ["key_prefix"])

    op.create_table(
        "api_usage_log",
        sa.Column("id", integer, autoincrement=True, nullable=False),
        sa.Column("api_key_id", text),
        sa.Column("endpoint", text, nullable=False),
        sa.Column("method", text, server_default=sa.text("'GET'")),
        sa.Column("status_code", integer),
        sa.Column("ip_address", text),
        sa.Column("user_agent", text),
        sa.Column("response_time_ms", integer),
        sa.Column("created_at", text, server_default=utc_now_text()),
        sa.PrimaryKeyConstraint("id", name="pk_api_usage_log"),
        sa.ForeignKeyConstraint(["api_key_id"], ["api_keys.id"], name="fk_api_usage_log_api_key_id_api_keys",
                                ondelete="SET NULL"),
        sqlite_autoincrement=True,
    )
    op.create_index("idx_usage_key_time", "api_usage_log", ["api_key_id", sa.text("created_at DESC")])
    op.create_index("idx_usage_time", "api_usage_log", [sa.text("created_at DESC")])


def downgrade() -> None:
    for table in ("api_usage_log", "api_keys", "recent_searches", "searches", "sessions", "users"):
        op.drop_table(table)
