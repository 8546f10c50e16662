"""Metrics DB migrations: to head once, no-op afterwards, and identical to the models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from scaling.errors import ConfigurationError, StoreError
from scaling.metrics.db import open_metrics_db
from scaling.metrics.migrate import VERSION_TABLE, current, head, upgrade
from scaling.metrics.models import metadata


def test_upgrade_applies_every_revision_then_nothing(blank_url: str) -> None:
    """The first upgrade applies every revision in order; a rerun applies nothing and reports it."""
    assert upgrade(blank_url) == ["0001_metrics_initial", "0002_ingested_events", "0003_source_ts_indexes",
                                  "0004_cloudflare_usage", "0005_capacity_results"]
    assert upgrade(blank_url) == []
    engine = open_metrics_db(blank_url)
    try:
        assert current(engine) == head()
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert VERSION_TABLE in tables and "alembic_version" not in tables
    assert set(metadata.tables) <= tables


def test_models_and_migrations_do_not_differ(metrics_url: str) -> None:
    """Alembic's autogenerate comparison finds no difference between the migrated DB and the models."""
    engine = open_metrics_db(metrics_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
            assert compare_metadata(ctx, metadata) == []
    finally:
        engine.dispose()


def test_unknown_scheme_is_a_configuration_error() -> None:
    """A URL for another database names the scheme instead of failing inside SQLAlchemy."""
    with pytest.raises(ConfigurationError, match="mysql"):
        upgrade("mysql://root@localhost/metrics")


def test_unreachable_server_is_a_store_error() -> None:
    """A PostgreSQL server that refuses connections gives one StoreError line, password hidden."""
    with pytest.raises(StoreError) as info:
        upgrade("postgresql://postgres:hunter2@127.0.0.1:1/metrics")
    assert "cannot migrate the metrics DB" in str(info.value)
    assert "hunter2" not in str(info.value) and "\n" not in str(info.value)
