"""Metrics-DB fixtures: a migrated database per test on SQLite (a tmp file) and on
PostgreSQL (a throwaway schema in the session's database, found via search_path)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine

from scaling.clock import VirtualClock
from scaling.metrics.db import open_metrics_db
from scaling.metrics.migrate import upgrade
from scaling.metrics.writer import MetricsWriter

BACKENDS = [pytest.param("sqlite", marks=pytest.mark.sqlite), pytest.param("postgres", marks=pytest.mark.postgres)]


def _pg_schema_url(pg_url: str) -> Iterator[str]:
    schema = f"m_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{pg_url}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=BACKENDS)
def blank_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty (unmigrated) metrics DB URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/metrics.db"
    else:
        yield from _pg_schema_url(request.getfixturevalue("pg_url"))


@pytest.fixture
def metrics_url(blank_url: str) -> str:
    """A metrics DB URL migrated to head."""
    upgrade(blank_url)
    return blank_url


@pytest.fixture
def engine(metrics_url: str) -> Iterator[Engine]:
    eng = open_metrics_db(metrics_url)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def writer(engine: Engine, clock: VirtualClock) -> MetricsWriter:
    return MetricsWriter(engine, clock=clock, log_lines=False, host="test-host")
