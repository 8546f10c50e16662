"""Alembic migrations of the app DB, on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from scaling.appdb.engine import make_engine
from scaling.appdb.migrate import VERSION_TABLE, current, head, upgrade
from scaling.appdb.models import TABLES, metadata


def test_upgrade_applies_everything_then_nothing(db_url: str) -> None:
    """A fresh DB gets 0001 and 0002; a second run applies nothing and stays at head."""
    assert current(db_url) is None
    assert upgrade(db_url) == ["0001", "0002"]
    assert current(db_url) == head() == "0002"
    assert upgrade(db_url) == []
    assert current(db_url) == "0002"


def test_models_match_the_migrated_schema(engine: Engine) -> None:
    """Alembic's autogenerate finds no difference between the models and the migrated DB."""
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(ctx, metadata) == []


def test_schema_has_the_app_tables_and_its_own_version_table(engine: Engine) -> None:
    """The six app tables exist, and the version table is alembic_version_app, not Alembic's default."""
    names = set(inspect(engine).get_table_names())
    assert set(TABLES) <= names
    assert VERSION_TABLE in names and "alembic_version" not in names


def test_cleanup_index_added_only_where_missing(engine: Engine) -> None:
    """Searches get idx_searches_cleanup; tables whose upstream index already leads with the column get none."""
    indexes = {t: {ix["name"] for ix in inspect(engine).get_indexes(t)} for t in TABLES}
    assert "idx_searches_cleanup" in indexes["searches"]
    assert "idx_usage_time" in indexes["api_usage_log"] and "idx_usage_cleanup" not in indexes["api_usage_log"]
    assert "idx_sessions_expires" in indexes["sessions"] and "idx_sessions_cleanup" not in indexes["sessions"]


def test_0002_creates_the_usage_index_when_a_db_lacks_one(db_url: str) -> None:
    """A DB at 0001 without idx_usage_time (e.g. loaded from elsewhere) gets idx_usage_cleanup from 0002."""
    from alembic import command
    from alembic.config import Config

    from scaling.appdb.migrate import SCRIPT_LOCATION

    eng = make_engine(db_url)
    with eng.connect() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", SCRIPT_LOCATION)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(text("DROP INDEX idx_usage_time"))
        conn.commit()
    assert upgrade(db_url) == ["0002"]
    names = {ix["name"] for ix in inspect(eng).get_indexes("api_usage_log")}
    eng.dispose()
    assert "idx_usage_cleanup" in names


def test_server_defaults_write_d1_shaped_values(engine: Engine) -> None:
    """Rows inserted without id or timestamps get D1's 32-hex ids and 'YYYY-MM-DD HH:MM:SS' UTC times."""
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (username) VALUES ('ann')"))
        row = conn.execute(text("SELECT id, created_at, spotify_connected, profile_visibility, login_count "
                                "FROM users")).one()
        conn.execute(text("INSERT INTO api_usage_log (endpoint) VALUES ('/api/x')"))
        usage = conn.execute(text("SELECT id, method, created_at FROM api_usage_log")).one()
    assert re.fullmatch(r"[0-9a-f]{32}", row.id)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row.created_at)
    assert (row.spotify_connected, row.profile_visibility, row.login_count) == (0, "public", 0)
    assert usage.id == 1 and usage.method == "GET"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", usage.created_at)


def test_deleting_a_user_cascades_to_sessions_and_keys(engine: Engine) -> None:
    """ON DELETE CASCADE holds on both backends (SQLite needs foreign_keys ON)."""
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id) VALUES ('u1')"))
        conn.execute(text("INSERT INTO sessions (id, user_id, token_hash, expires_at) "
                          "VALUES ('s1', 'u1', 'h1', '2026-02-01T00:00:00.000Z')"))
        conn.execute(text("INSERT INTO api_keys (id, user_id, key_hash, key_prefix) "
                          "VALUES ('k1', 'u1', 'kh', 'ltm_abcd')"))
        conn.execute(text("INSERT INTO api_usage_log (api_key_id, endpoint) VALUES ('k1', '/api/v1/album')"))
        conn.execute(text("DELETE FROM users WHERE id = 'u1'"))
        left = [conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in ("sessions", "api_keys")]
        orphan = conn.execute(text("SELECT api_key_id FROM api_usage_log")).scalar_one_or_none()
    assert left == [0, 0]
    assert orphan is None  # the usage row survives with its key set to NULL


def test_api_key_tier_is_checked(engine: Engine) -> None:
    """A tier outside public/standard/premium is rejected by the database."""
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("INSERT INTO api_keys (key_hash, key_prefix, tier) VALUES ('h', 'ltm_x', 'gold')"))
