"""The same pages on PostgreSQL: every page renders from a PostgreSQL metrics DB without an exception."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from streamlit.testing.v1 import AppTest

from scaling.metrics.db import open_metrics_db
from scaling.metrics.demo import generate
from tests.conftest import PG_SERVER
from tests.dashboard.conftest import NOW, PAGES, charts, migrated

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg_demo_url() -> Iterator[str]:
    """A PostgreSQL database of its own with 3 days of demo metrics, dropped afterwards."""
    import psycopg

    name = f"headroom_dash_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(f"{PG_SERVER}/test", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{PG_SERVER}/{name}"
    try:
        migrated(url)
        engine = open_metrics_db(url)
        generate(engine, now=NOW, days=3, users=120, raw_days=1)
        engine.dispose()
        yield url
    finally:
        with psycopg.connect(f"{PG_SERVER}/test", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("page", [p for p in PAGES if p != "capacity_planner"])
def test_every_page_renders_on_postgresql(open_page: Callable[..., AppTest], pg_demo_url: str, page: str) -> None:
    """Each metrics page renders on PostgreSQL with charts and no exception."""
    at = open_page(page, pg_demo_url)
    assert not at.exception, at.exception
    assert charts(at) and at.metric
