"""Row and byte statistics of the app DB."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from scaling.appdb.engine import make_engine
from scaling.appdb.models import TABLES
from scaling.appdb.stats import database_stats


def test_rows_and_bytes_per_table(engine: Engine) -> None:
    """Row counts match what was inserted, and every table and the whole DB report a size."""
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id) VALUES ('a'), ('b'), ('c')"))
        conn.execute(text("INSERT INTO recent_searches (spotify_id, album_name, artist_name) VALUES ('x', 'y', 'z')"))
    stats = database_stats(engine)
    assert stats.rows == {"users": 3, "sessions": 0, "searches": 0, "recent_searches": 1, "api_keys": 0,
                          "api_usage_log": 0}
    assert stats.total_rows == 4
    assert set(stats.table_bytes) == set(TABLES)
    assert all(size > 0 for size in stats.table_bytes.values())
    assert stats.total_bytes is not None and stats.total_bytes >= max(stats.table_bytes.values())
    assert stats.missing_tables == ()
    assert stats.as_dict()["total_rows"] == 4


def test_unmigrated_db_reports_missing_tables(db_url: str) -> None:
    """On an empty DB the statistics name every app table as missing instead of failing."""
    engine = make_engine(db_url)
    try:
        stats = database_stats(engine)
    finally:
        engine.dispose()
    assert stats.rows == {} and stats.missing_tables == TABLES


def test_only_app_tables_are_accepted(engine: Engine) -> None:
    """A table name that is not an app model is refused before any SQL runs."""
    with pytest.raises(ValueError, match="not app tables: users; DROP TABLE users"):
        database_stats(engine, ["users; DROP TABLE users"])
