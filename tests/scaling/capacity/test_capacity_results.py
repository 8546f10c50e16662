"""Stored capacity results: the 0005 migration up and down, a search with a planted limit, the newest row read back."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, inspect

from scaling.capacity.breaks import Break
from scaling.capacity.capacity_results import CapacitySearch, search_capacity, write_capacity
from scaling.capacity.simulate import Scenario, SimResult, simulate
from scaling.metrics import migrate
from scaling.metrics.db import open_metrics_db
from scaling.metrics.queries import latest_capacity
from scaling.metrics.records import CapacityRecord

BACKENDS = [pytest.param("sqlite", marks=pytest.mark.sqlite), pytest.param("postgres", marks=pytest.mark.postgres)]
NOW = 1_793_491_200.0
PLANTED = 130  # users above which the planted limit breaks


@pytest.fixture(params=BACKENDS)
def blank_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An unmigrated metrics DB on SQLite and PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/metrics.db"
        return
    import psycopg

    pg = request.getfixturevalue("pg_url")
    schema = f"r_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{pg}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(pg, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def engine(blank_url: str) -> Iterator[Engine]:
    migrate.upgrade(blank_url)
    eng = open_metrics_db(blank_url)
    try:
        yield eng
    finally:
        eng.dispose()


def _downgrade(engine: Engine, revision: str) -> None:
    cfg = migrate._config()
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
        conn.commit()


def planted(hours: float = 0.05) -> tuple[dict[int, SimResult], Callable[[Scenario], SimResult]]:
    """A real (short) simulation at each size, plus a stubbed limit that breaks above `PLANTED` users."""
    seen: dict[int, SimResult] = {}

    def run(sc: Scenario) -> SimResult:
        res = simulate(dataclasses.replace(sc, hours=hours))
        if sc.users > PLANTED:
            res.breaks.append(Break("planted limit", f"{sc.users} > {PLANTED} users", 0))
        seen[sc.users] = res
        return res

    return seen, run


@pytest.fixture(scope="module")
def searched() -> tuple[dict[int, SimResult], CapacitySearch]:
    """One search with the planted limit (the backend does not matter to it; it runs once)."""
    runs, run = planted()
    return runs, search_capacity(Scenario(users=1, hours=0.05), simulator=run, start=100)


def test_migration_0005_upgrades_and_downgrades(blank_url: str) -> None:
    """0005 adds capacity_results; downgrading to 0004 drops it; upgrading again restores it."""
    assert migrate.upgrade(blank_url)[-1] == "0005_capacity_results"
    engine = open_metrics_db(blank_url)
    try:
        assert "capacity_results" in inspect(engine).get_table_names()
        _downgrade(engine, "0004_cloudflare_usage")
        assert migrate.current(engine) == "0004_cloudflare_usage"
        names = set(inspect(engine).get_table_names())
        assert "capacity_results" not in names and "cloudflare_usage" in names
    finally:
        engine.dispose()
    assert migrate.upgrade(blank_url) == ["0005_capacity_results"]


def test_search_with_a_planted_limit_is_stored_and_read_back(
        engine: Engine, searched: tuple[dict[int, SimResult], CapacitySearch]) -> None:
    """The bisection finds the planted edge; the row holds its figures and the costs at that size."""
    runs, search = searched
    assert search.found.carried <= PLANTED < search.found.broken_at  # type: ignore[operator]
    assert PLANTED - search.found.carried <= max(1, int(PLANTED * 0.05))
    rec = search.record(computed_at=NOW, source="cli")
    assert rec.first_break_limit == "planted limit" and rec.users_carried == search.found.carried
    at = runs[rec.users_carried]
    assert (rec.ai_usd_month, rec.platform_usd_month) == (at.ai["usd_month"], at.platform["usd_month"])
    write_capacity(engine, dataclasses.replace(rec, computed_at=NOW - 86400, users_carried=1))
    write_capacity(engine, rec)
    newest = latest_capacity(engine)
    assert newest == rec
    assert newest is not None
    assert newest.monthly_cost_usd == pytest.approx(at.ai["usd_month"] + at.platform["usd_month"])
    assert latest_capacity(engine, design="queues") is None


def test_no_result_yet_reads_as_none(engine: Engine) -> None:
    """A migrated DB with no capacity run answers None (the Overview says so), and a row needs its time."""
    assert latest_capacity(engine) is None
    with pytest.raises(ValueError, match="computed_at"):
        write_capacity(engine, CapacityRecord("cron5m", "plan", 0.1, 10))
