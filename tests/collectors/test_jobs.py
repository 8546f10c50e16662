"""Each collector job records its metric family (deltas, not running totals) and reports what it did."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from collectors import jobs
from collectors.runs import JobContext, RunPlace, SlotTiming, run_job
from scaling.appdb.demo import fill_demo_data
from scaling.appdb.engine import make_engine
from scaling.appdb.migrate import upgrade as app_upgrade
from scaling.cache import Cache
from scaling.clock import Clock, VirtualClock
from scaling.metrics import models as m
from scaling.metrics.records import AiUsage, HeadroomSample
from scaling.metrics.writer import MetricsWriter
from scaling.prewarm import PrewarmReport
from scaling.rate_limit import RateLimiter
from scaling.services import Services
from scaling.settings import RateSpec, Settings
from scaling.store import StateStore

pytestmark = pytest.mark.sqlite
DAY = 86400.0


def _ctx(clock: VirtualClock, job: str = "job", deadline_s: float = 30.0) -> JobContext:
    return JobContext(job, clock.now(), clock.now(), clock.now() + deadline_s, clock)


def _rows(engine: Engine, table: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table))]


@pytest.fixture(scope="session")
def migrated_app_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("app-template") / "app.db"
    app_upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def app_engine(migrated_app_file: Path, tmp_path: Path, clock: VirtualClock) -> Iterator[Engine]:
    """A migrated app DB with 40 demo users whose history ends now."""
    path = tmp_path / "app.db"
    shutil.copy(migrated_app_file, path)
    engine = make_engine(f"sqlite:///{path}")
    fill_demo_data(engine, users=40, now=clock.now(), days=120)
    try:
        yield engine
    finally:
        engine.dispose()


def test_headroom_job_records_usage_and_429_deltas(engine: Engine, writer: MetricsWriter, store: StateStore,
                                                   clock: VirtualClock) -> None:
    """Samples carry usage now and the 429s since the previous sample, not the running total."""
    spotify = RateLimiter(store, "spotify", RateSpec(120, 60.0), clock=clock)
    lastfm = RateLimiter(store, "lastfm", RateSpec(4, 1.0), clock=clock)

    async def calls(n: int) -> None:
        for _ in range(n):
            await spotify.acquire()

    clock.run(calls(30))
    spotify.record_429(10)
    report = jobs.headroom_job(_ctx(clock), limiters=[spotify, lastfm], store=store, writer=writer)
    assert report["samples"] == 2
    first = {r["upstream"]: r for r in _rows(engine, m.HEADROOM_SAMPLES)}
    assert first["spotify"]["used"] == pytest.approx(30, abs=1) and first["spotify"]["limit"] == 120
    assert first["spotify"]["in_cooldown"] and first["spotify"]["upstream_429"] == 0  # no previous reading
    clock.advance(60)
    spotify.record_429(1)
    spotify.record_429(1)
    jobs.headroom_job(_ctx(clock), limiters=[spotify, lastfm], store=store, writer=writer)
    latest = [r for r in _rows(engine, m.HEADROOM_SAMPLES) if r["ts"] == clock.now()]
    assert {r["upstream"]: r["upstream_429"] for r in latest} == {"spotify": 2, "lastfm": 0}


def test_counter_deltas_survive_a_reset(store: StateStore, clock: VirtualClock) -> None:
    """A counter that went down was reset (its key expired): the new value is the growth."""
    assert jobs.counter_deltas(store, "k", {"hits": 10}, now=clock.now()) == {"hits": 0.0}
    assert jobs.counter_deltas(store, "k", {"hits": 15}, now=clock.now()) == {"hits": 5.0}
    assert jobs.counter_deltas(store, "k", {"hits": 3}, now=clock.now()) == {"hits": 3.0}


def test_db_stats_job_records_tables_total_and_users(app_engine: Engine, engine: Engine, writer: MetricsWriter,
                                                     clock: VirtualClock) -> None:
    """Rows and bytes per app table, a '*' total, and user counts land in the metrics DB."""
    report = jobs.db_stats_job(_ctx(clock), app_engine=app_engine, writer=writer, active_window_s=30 * DAY)
    stats = {r["table_name"]: r for r in _rows(engine, m.DB_STATS)}
    assert set(stats) == {"users", "sessions", "searches", "recent_searches", "api_keys", "api_usage_log", "*"}
    assert stats["users"]["rows"] == 40 and stats["*"]["bytes"] > 0
    assert stats["*"]["rows"] == sum(r["rows"] for n, r in stats.items() if n != "*")
    [users] = _rows(engine, m.USER_COUNTS)
    assert users["total"] == 40 and 0 < users["with_lastfm"] <= 40 and 0 < users["active"] <= 40
    assert report["users"]["total"] == 40


def test_db_stats_job_on_an_unmigrated_app_db_records_what_it_can(tmp_path: Path, engine: Engine,
                                                                  writer: MetricsWriter, clock: VirtualClock) -> None:
    """Before the app DB is migrated the job still records its size, and no user counts."""
    empty = make_engine(f"sqlite:///{tmp_path}/empty.db")
    report = jobs.db_stats_job(_ctx(clock), app_engine=empty, writer=writer)
    assert report["users"] is None and len(report["missing_tables"]) == 6
    assert [r["table_name"] for r in _rows(engine, m.DB_STATS)] == ["*"]


def test_cache_stats_job_records_per_family_deltas(engine: Engine, writer: MetricsWriter, store: StateStore,
                                                   clock: VirtualClock) -> None:
    """Hits and misses since the last sample, keys and bytes now, per cache family."""
    cache = Cache(store, clock=clock)

    async def fetch() -> dict[str, str]:
        return {"name": "Kid A"}

    async def lookups() -> None:
        for _ in range(3):
            await cache.get_or_fetch("spotify:album:v2", "a1", fetch)

    jobs.cache_stats_job(_ctx(clock), cache=cache, store=store, writer=writer)  # first reading: the baseline
    clock.run(lookups())
    clock.advance(900)
    report = jobs.cache_stats_job(_ctx(clock), cache=cache, store=store, writer=writer)
    latest = {r["family"]: r for r in _rows(engine, m.CACHE_STATS) if r["ts"] == clock.now()}
    album = latest["spotify:album:v2"]
    assert (album["hits"], album["misses"], album["keys"]) == (2, 1, 1) and album["bytes"] > 0
    assert report["hits"] == 2 and report["families"] == len(latest)


def test_cleanup_job_deletes_expired_rows_and_records_the_size(app_engine: Engine, engine: Engine,
                                                               writer: MetricsWriter, clock: VirtualClock) -> None:
    """Expired rows go; the DB's size after cleanup (fewer rows) is recorded in db_stats."""
    before = jobs.database_stats(app_engine).total_rows
    report = jobs.cleanup_job(_ctx(clock), app_engine=app_engine, writer=writer)
    assert report["total_deleted"] > 0
    total = next(r for r in _rows(engine, m.DB_STATS) if r["table_name"] == "*")
    assert total["rows"] == before - report["total_deleted"]


def test_cleanup_past_its_deadline_stops_between_batches(app_engine: Engine, engine: Engine, writer: MetricsWriter,
                                                         store: StateStore, clock: VirtualClock) -> None:
    """A cleanup whose deadline passes stops after the batch in flight and is recorded timed_out."""

    def slow_cleanup(ctx: JobContext) -> dict[str, Any]:
        clock.advance(31)  # the first batches took the whole budget
        return jobs.cleanup_job(ctx, app_engine=app_engine, writer=writer, batch_size=50)

    out = run_job("cleanup", clock.now(), slow_cleanup, place=RunPlace(writer, clock, lease_store=store),
                  timing=SlotTiming(deadline_s=30))
    assert out.outcome == "timed_out" and "deadline" in (out.error or "")


def test_retention_job_rolls_up_prunes_and_purges_state(engine: Engine, writer: MetricsWriter, store: StateStore,
                                                        clock: VirtualClock) -> None:
    """Raw samples older than the raw window move into hourly roll-ups; expired state entries go."""
    old = clock.now() - 20 * DAY
    writer.record_headroom([HeadroomSample("spotify", used=10, limit=120, ts=old + i * 60) for i in range(5)])
    store.set("gone", b"x", now=clock.now() - 100, ttl=1)
    report = jobs.retention_job(_ctx(clock), metrics_engine=engine, store=store)
    assert report["pruned_raw"]["headroom_samples"] == 5 and report["state_purged"] == 1
    [hour] = _rows(engine, m.HEADROOM_HOURLY)
    assert hour["samples"] == 5


def test_cost_rollup_reports_month_spend_against_budgets(engine: Engine, writer: MetricsWriter,
                                                         clock: VirtualClock) -> None:
    """This month's spend per provider, as a share of its budget; generated demo history does not count."""
    clock.advance(10 * DAY)  # the virtual epoch is midnight on the 1st
    writer.record_ai_usage([AiUsage("openai", "gpt-5", "artistSummary", cost_usd=12.5, ts=clock.now() - 3600),
                            AiUsage("openai", "gpt-5", "listenAi", cost_usd=7.5, ts=clock.now() - 7200),
                            AiUsage("openai", "gpt-5", "listenAi", cost_usd=900.0, ts=clock.now() - 60,
                                    source="demo")])
    report = jobs.cost_rollup_job(_ctx(clock), metrics_engine=engine, budgets={"openai": 50.0, "perplexity": 20.0})
    assert report["providers"]["openai"] == {"spend_usd": 20.0, "budget_usd": 50.0, "share": 0.4}
    assert report["providers"]["perplexity"]["spend_usd"] == 0.0
    assert report["rolled_rows"] >= 1  # the complete hour is in ai_usage_hourly now


def test_prewarm_job_gets_the_runs_remaining_deadline(store: StateStore, clock: VirtualClock) -> None:
    """The prewarm plans its work inside what is left of this run's deadline, and its report is returned."""
    seen: dict[str, float] = {}

    async def fake_prewarm(settings: Settings, *, clock: Clock, store: StateStore,
                           services: Services | None = None) -> PrewarmReport:
        seen["deadline"] = settings.cron_deadline_s
        return PrewarmReport(started_at=clock.now(), polled=3)

    report = clock.run(jobs.prewarm_job(_ctx(clock, deadline_s=12.0), settings=Settings.defaults(), store=store,
                                        prewarm=fake_prewarm))
    assert report["polled"] == 3 and seen["deadline"] == pytest.approx(12.0)


def test_heartbeat_counts_executions_of_its_slot(store: StateStore, clock: VirtualClock) -> None:
    """The heartbeat's per-slot counter is how the replica test sees a slot ran once, not twice."""
    ctx = _ctx(clock)
    assert clock.run(jobs.heartbeat_job(ctx, store=store, work_s=0.5)) == {"executions": 1}
    assert clock.run(jobs.heartbeat_job(ctx, store=store)) == {"executions": 2}
