"""App-DB fixtures: every test runs on a SQLite file and in its own PostgreSQL schema."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from scaling.appdb.engine import make_engine
from scaling.appdb.migrate import upgrade

BACKENDS = [
    pytest.param("sqlite", id="sqlite", marks=pytest.mark.sqlite),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]

#: 2026-01-02 12:00:00 UTC, the "now" of most cleanup tests.
NOW = 1_767_355_200.0


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty app DB: a SQLite file, or a fresh schema in the session's PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/app/app.db"
        return
    import psycopg

    base = str(request.getfixturevalue("pg_url"))
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        # Every connection of the URL lands in the schema, migrations and version table included.
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on a DB migrated to head."""
    upgrade(db_url)
    eng = make_engine(db_url)
    try:
        yield eng
    finally:
        eng.dispose()
