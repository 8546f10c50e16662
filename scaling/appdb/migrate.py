"""Bring the app DB's schema to the newest Alembic revision, from code (no alembic.ini).

`upgrade` is safe to run on every start: at head it does nothing and says so by
returning an empty list. On PostgreSQL an advisory lock makes concurrent
migrators (several hosts starting at once) take turns instead of racing.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from scaling.appdb.engine import make_engine, translate_errors

__all__ = ["SCRIPT_LOCATION", "VERSION_TABLE", "current", "head", "run_upgrade", "upgrade"]

SCRIPT_LOCATION = str(Path(__file__).with_name("migrations"))
#: The app DB's own version table, so the metrics DB may share a database with it.
VERSION_TABLE = "alembic_version_app"


def upgrade(url: str) -> list[str]:
    """Apply every app-DB migration the database lacks.

    Args:
        url: the app DB URL (``sqlite:///…`` or ``postgresql://…``).

    Returns:
        The revisions applied, oldest first; empty when the DB was already at head.

    Raises:
        StoreError: the database cannot be reached or a migration failed in the driver.
        ConfigurationError: the URL is not a supported database URL.
    """
    return run_upgrade(url, script_location=SCRIPT_LOCATION, version_table=VERSION_TABLE, what="migrate the app DB")


def current(url: str) -> str | None:
    """The app DB's revision, or None when it was never migrated.

    Raises:
        StoreError: the database cannot be reached.
    """
    engine = make_engine(url)
    try:
        with translate_errors(engine, "read the app DB's schema revision"), engine.connect() as conn:
            return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
    finally:
        engine.dispose()


def head() -> str:
    """The newest app-DB revision shipped with this code."""
    revision = ScriptDirectory(SCRIPT_LOCATION).get_current_head()
    assert revision is not None  # the package always ships at least 0001
    return revision


def not_at_head(url: str) -> str | None:
    """Why a command cannot use the app DB yet (one line), or None when it is at head.

    Raises:
        StoreError: the database cannot be reached.
    """
    from scaling.appdb.engine import display_url

    revision = current(url)
    if revision == head():
        return None
    return (f"the app DB at {display_url(url)} is at revision {revision or 'none'}, not {head()}; "
            "run `python -m scaling migrate` first")


def run_upgrade(url: str, *, script_location: str, version_table: str, what: str) -> list[str]:
    """Upgrade any Headroom SQL store whose Alembic env records applied steps.

    The env.py under ``script_location`` must read ``config.attributes["connection"]``
    and append each applied revision id to ``config.attributes["applied"]``.

    Args:
        url: the database URL.
        script_location: the migrations directory.
        version_table: the Alembic version table (used only for the advisory lock key).
        what: how to describe the operation in an error, e.g. ``"migrate the app DB"``.
    """
    engine = make_engine(url)
    try:
        with translate_errors(engine, what), engine.connect() as conn:
            locked = _lock(conn, version_table)
            try:
                cfg = Config()
                cfg.set_main_option("script_location", script_location)
                cfg.attributes["connection"] = conn
                applied: list[str] = []
                cfg.attributes["applied"] = applied
                command.upgrade(cfg, "head")
                conn.commit()
                return list(applied)
            finally:
                if locked:
                    _unlock(conn, version_table)
    finally:
        engine.dispose()


def _lock_key(version_table: str) -> int:
    # A stable signed 32-bit key per version table (advisory locks are database-wide).
    return zlib.crc32(version_table.encode()) - 2**31


def _lock(conn: Connection, version_table: str) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _lock_key(version_table)})
    conn.commit()
    return True


def _unlock(conn: Connection, version_table: str) -> None:
    conn.rollback()
    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _lock_key(version_table)})
    conn.commit()
