"""The engine helper: URL normalisation, SQLite pragmas, unreachable servers."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from scaling.appdb.engine import display_url, make_engine, normalize_url, translate_errors
from scaling.errors import ConfigurationError, StoreError


@pytest.mark.parametrize("url", ["postgres://u@h/db", "postgresql://u@h/db", "postgresql+psycopg://u@h/db"])
def test_postgres_urls_use_psycopg3(url: str) -> None:
    """Every PostgreSQL spelling gets the psycopg 3 driver."""
    assert normalize_url(url).drivername == "postgresql+psycopg"


def test_unsupported_scheme_is_a_configuration_error() -> None:
    """A MySQL URL is refused with a message naming the scheme, not a driver traceback."""
    with pytest.raises(ConfigurationError, match="unsupported database URL scheme 'mysql'"):
        make_engine("mysql://root@localhost/app")


def test_display_url_hides_the_password() -> None:
    """A password in a URL never reaches output."""
    shown = display_url("postgresql://admin:hunter2@db.example/app")
    assert "hunter2" not in shown and "admin" in shown


@pytest.mark.sqlite
def test_sqlite_engine_creates_directory_and_sets_pragmas(tmp_path: Path) -> None:
    """A SQLite file in a missing directory is created, in WAL mode with a busy timeout and foreign keys."""
    engine = make_engine(f"sqlite:///{tmp_path}/nested/dir/app.db")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 5000
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()
    assert (tmp_path / "nested" / "dir" / "app.db").exists()


@pytest.mark.sqlite
def test_sqlite_directory_that_cannot_exist_is_a_store_error(tmp_path: Path) -> None:
    """A parent path that is a file gives one StoreError line naming the directory."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="cannot create the directory"):
        make_engine(f"sqlite:///{tmp_path}/file/app.db")


@pytest.mark.postgres
def test_unreachable_postgres_is_a_one_line_store_error() -> None:
    """A server that refuses connections becomes a StoreError with a single-line message."""
    engine = make_engine("postgresql://postgres@127.0.0.1:1/nothing")
    with pytest.raises(StoreError) as info, translate_errors(engine, "read the app DB"), engine.connect():
        pass
    message = str(info.value)
    assert "cannot read the app DB at postgresql+psycopg://postgres@127.0.0.1:1/nothing" in message
    assert "\n" not in message
