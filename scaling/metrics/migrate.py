"""Bring the metrics DB schema to the latest revision (Alembic, configured in code).

``python -m scaling migrate`` calls `upgrade`; so do tests and the demo. There is no
alembic.ini: the script location is this package's ``migrations`` directory and the
connection is handed to ``migrations/env.py`` directly.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from scaling.metrics.db import open_metrics_db, translate_errors

__all__ = ["VERSION_TABLE", "current", "head", "upgrade", "upgrade_engine"]

VERSION_TABLE = "alembic_version_metrics"
_SCRIPTS = Path(__file__).with_name("migrations")


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    return cfg


def head() -> str:
    """The newest revision id shipped with this code."""
    rev = ScriptDirectory.from_config(_config()).get_current_head()
    assert rev is not None  # there is always at least the initial revision
    return rev


def current(engine: Engine) -> str | None:
    """The revision the metrics DB is at, or None if it was never migrated."""
    with translate_errors(engine, "read the metrics DB schema version"), engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def upgrade_engine(engine: Engine) -> list[str]:
    """Apply pending migrations through ``engine``; returns the revisions applied, oldest first."""
    cfg = _config()
    applied: list[str] = []
    with translate_errors(engine, "migrate the metrics DB"), engine.connect() as conn:
        cfg.attributes["connection"] = conn
        cfg.attributes["applied"] = applied
        command.upgrade(cfg, "head")
        conn.commit()
    return applied


def upgrade(url: str) -> list[str]:
    """Migrate the metrics DB at ``url`` to head.

    Returns:
        The revision ids applied, oldest first; empty when it was already at head.

    Raises:
        ConfigurationError: the URL is malformed or names another backend.
        StoreError: the database cannot be reached or a migration failed.
    """
    engine = open_metrics_db(url)
    try:
        return upgrade_engine(engine)
    finally:
        engine.dispose()
