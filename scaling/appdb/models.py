"""The upstream app's D1 schema as SQLAlchemy models (upstream migrations 001–007).

Timestamps stay TEXT, exactly as D1 stores them, so a D1 export loads verbatim:
``datetime('now')`` columns hold ``YYYY-MM-DD HH:MM:SS`` (UTC) while
``sessions.expires_at`` holds JavaScript ISO strings (``2026-01-02T03:04:05.678Z``).
Code that compares them must normalise first (see `scaling.appdb.cleanup`).

``searches`` and ``recent_searches`` were dropped upstream in 008; they stay here
because the scaling plan's cleanup covers them. Columns are declared in upstream
order (ALTER TABLE appends), so ``INSERT INTO t VALUES (...)`` dumps still fit.
The Discogs and ``rate_limits`` tables are not modelled: nothing here uses them.
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, MetaData, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from scaling.appdb.sql_defaults import random_hex_id, utc_now_text

__all__ = ["TABLES", "ApiKey", "ApiUsageLog", "Base", "RecentSearch", "Search", "Session", "User", "metadata"]

#: Deterministic constraint names, so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Base(DeclarativeBase):
    metadata = metadata


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(Text, primary_key=True, server_default=random_hex_id())
    email: Mapped[str | None] = mapped_column(Text, unique=True)
    lastfm_username: Mapped[str | None] = mapped_column(Text)
    discogs_username: Mapped[str | None] = mapped_column(Text)
    spotify_connected: Mapped[int | None] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[str | None] = mapped_column(Text, server_default=utc_now_text())
    updated_at: Mapped[str | None] = mapped_column(Text, server_default=utc_now_text())
    username: Mapped[str | None] = mapped_column(Text)
    lastfm_session_key: Mapped[str | None] = mapped_column(Text)
    display_name: Mapped[str | None] = mapped_column(Text)
    avatar_url: Mapped[str | None] = mapped_column(Text)
    bio: Mapped[str | None] = mapped_column(Text)
    profile_visibility: Mapped[str | None] = mapped_column(Text, server_default=text("'public'"))
    last_login_at: Mapped[str | None] = mapped_column(Text)
    login_count: Mapped[int | None] = mapped_column(Integer, server_default=text("0"))

    __table_args__ = (Index("idx_users_username", "username", unique=True),)


class Session(Base):
    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    user_id: Mapped[str] = mapped_column(Text, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    token_hash: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    user_agent: Mapped[str | None] = mapped_column(Text)
    ip_address: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[str | None] = mapped_column(Text, server_default=utc_now_text())
    expires_at: Mapped[str] = mapped_column(Text, nullable=False)
    last_active_at: Mapped[str | None] = mapped_column(Text, server_default=utc_now_text())

    __table_args__ = (
        Index("idx_sessions_user", "user_id"),
        Index("idx_sessions_token", "token_hash"),
        Index("idx_sessions_expires", "expires_at"),
    )


class Search(Base):
    __tablename__ = "searches"

    id: Mapped[str] = mapped_column(Text, primary_key=True, server_default=random_hex_id())
    user_id: Mapped[str | None] = mapped_column(Text, ForeignKey("users.id", ondelete="CASCADE"),
                                                server_default=text("'default'"))
    search_type: Mapped[str] = mapped_column(Text, nullable=False)
    query: Mapped[str] = mapped_column(Text, nullable=False)
    result_id: Mapped[str | None] = mapped_column(Text)
    result_name: Mapped[str | None] = mapped_column(Text)
    result_artist: Mapped[str | None] = mapped_column(Text)
    searched_at: Mapped[str | None] = mapped_column(Text, server_default=utc_now_text())

    # idx_searches_user_time (user_id, searched_at DESC) is declared below the classes.
    __table_args__ = (Index("idx_searches_cleanup", "searched_at"),)


class RecentSearch(Base):
    __tablename__ = "recent_searches"

    id: Mapped[str] = mapped_column(Text, primary_key=True, server_default=random_hex_id())
    spotify_id: Mapped[str] = mapped_column(Text, nullable=False)
    album_name: Mapped[str] = mapped_column(Text, nullable=False)
    artist_name: Mapped[str] = mapped_column(Text, nullable=False)
    image_url: Mapped[str | None] = mapped_column(Text)
    searched_at: Mapped[str | None] = mapped_column(Text, server_default=utc_now_text())
    # idx_recent_searches_time (searched_at DESC) is declared below the classes; it already
    # serves the cleanup's range scan, so migration 0002 adds no second index here.


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(Text, primary_key=True, server_default=random_hex_id())
    user_id: Mapped[str | None] = mapped_column(Text, ForeignKey("users.id", ondelete="CASCADE"))
    key_hash: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    key_prefix: Mapped[str] = mapped_column(Text, nullable=False)
    name: Mapped[str | None] = mapped_column(Text, server_default=text("'Default'"))
    tier: Mapped[str | None] = mapped_column(Text, server_default=text("'standard'"))
    scopes: Mapped[str | None] = mapped_column(Text, server_default=text("'[\"read\"]'"))
    rate_limit_rpm: Mapped[int | None] = mapped_column(Integer)
    request_count: Mapped[int | None] = mapped_column(Integer, server_default=text("0"))
    last_used_at: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[str | None] = mapped_column(Text, server_default=utc_now_text())
    expires_at: Mapped[str | None] = mapped_column(Text)
    revoked_at: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("tier IN ('public', 'standard', 'premium')", name="tier"),
        Index("idx_api_keys_hash", "key_hash"),
        Index("idx_api_keys_user", "user_id"),
        Index("idx_api_keys_prefix", "key_prefix"),
    )


class ApiUsageLog(Base):
    __tablename__ = "api_usage_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    api_key_id: Mapped[str | None] = mapped_column(Text, ForeignKey("api_keys.id", ondelete="SET NULL"))
    endpoint: Mapped[str] = mapped_column(Text, nullable=False)
    method: Mapped[str | None] = mapped_column(Text, server_default=text("'GET'"))
    status_code: Mapped[int | None] = mapped_column(Integer)
    ip_address: Mapped[str | None] = mapped_column(Text)
    user_agent: Mapped[str | None] = mapped_column(Text)
    response_time_ms: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[str | None] = mapped_column(Text, server_default=utc_now_text())

    # D1's AUTOINCREMENT: ids are never reused after a delete. Indexes are below the classes.
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012 - read once by SQLAlchemy at class creation


# Upstream's descending indexes need the mapped columns, so they follow the classes.
Index("idx_searches_user_time", Search.user_id, Search.searched_at.desc())
Index("idx_recent_searches_time", RecentSearch.searched_at.desc())
Index("idx_usage_key_time", ApiUsageLog.api_key_id, ApiUsageLog.created_at.desc())
Index("idx_usage_time", ApiUsageLog.created_at.desc())


#: The app's tables, parents before children; the only names stats and cleanup touch.
TABLES: tuple[str, ...] = tuple(m.__tablename__ for m in (User, Session, Search, RecentSearch, ApiKey, ApiUsageLog))
