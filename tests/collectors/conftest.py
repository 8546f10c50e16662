"""Collector fixtures: a migrated metrics DB per test (a copy of one migrated SQLite
file), a writer on the virtual clock, an in-memory state store, stamina without waits."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import stamina
from sqlalchemy import Engine

from scaling.clock import VirtualClock
from scaling.metrics.db import open_metrics_db
from scaling.metrics.migrate import upgrade
from scaling.metrics.writer import MetricsWriter
from scaling.store import StateStore, open_store


@pytest.fixture(autouse=True)
def no_retry_waits() -> Iterator[None]:
    """Retries happen (up to 3 attempts) but never sleep."""
    with stamina.set_testing(True, attempts=3, cap=True):
        yield


@pytest.fixture(scope="session")
def migrated_metrics_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("metrics-template") / "metrics.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def metrics_url(migrated_metrics_file: Path, tmp_path: Path) -> str:
    """A fresh migrated SQLite metrics DB for this test."""
    path = tmp_path / "metrics.db"
    shutil.copy(migrated_metrics_file, path)
    return f"sqlite:///{path}"


@pytest.fixture
def engine(metrics_url: str) -> Iterator[Engine]:
    eng = open_metrics_db(metrics_url)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def writer(engine: Engine, clock: VirtualClock) -> MetricsWriter:
    return MetricsWriter(engine, clock=clock, log_lines=False, host="replica-a")


@pytest.fixture
def store() -> StateStore:
    return open_store("memory://", "collectors-test")
