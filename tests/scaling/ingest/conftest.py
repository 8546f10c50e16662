"""Ingest fixtures: the hand-written captures, and migrated metrics and app DBs on
SQLite (a tmp file) and PostgreSQL (a throwaway schema in the session's database)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from scaling.appdb import migrate as app_migrate
from scaling.appdb.engine import make_engine
from scaling.clock import VirtualClock
from scaling.ingest.ledger import LedgerWriter
from scaling.ingest.tail_metrics import TailMapper
from scaling.metrics import migrate as metrics_migrate
from scaling.metrics.db import open_metrics_db

FIXTURES = Path(__file__).with_name("fixtures")
PRETTY = FIXTURES / "tail_pretty.json"
LINES = FIXTURES / "tail_lines.ndjson"
DUMP = FIXTURES / "d1_export.sql"

BACKENDS = [pytest.param("sqlite", marks=pytest.mark.sqlite), pytest.param("postgres", marks=pytest.mark.postgres)]


def _schema_url(pg_url: str) -> Iterator[str]:
    import psycopg

    schema = f"i_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{pg_url}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/db.sqlite"
    else:
        yield from _schema_url(request.getfixturevalue("pg_url"))


@pytest.fixture
def metrics_engine(db_url: str) -> Iterator[Engine]:
    """A metrics DB migrated to head."""
    metrics_migrate.upgrade(db_url)
    engine = open_metrics_db(db_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def sqlite_metrics(tmp_path: Path) -> Iterator[Engine]:
    """A metrics DB on SQLite only, for behaviour that does not depend on the backend."""
    url = f"sqlite:///{tmp_path}/metrics.db"
    metrics_migrate.upgrade(url)
    engine = open_metrics_db(url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def app_engine(db_url: str) -> Iterator[Engine]:
    """An app DB migrated to head."""
    app_migrate.upgrade(db_url)
    engine = make_engine(db_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def mapper(clock: VirtualClock) -> TailMapper:
    return TailMapper(source="worker", clock=clock)


def writer_for(engine: Engine, source: str = "worker") -> LedgerWriter:
    return LedgerWriter(engine, source=source)
