"""Scheduler wiring: intervals from settings (scaled or overridden), epoch-aligned triggers, one run per slot."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from collectors.runs import NOT_CLAIMED
from collectors.scheduler import DEFAULT_JOBS, Collectors, Resources, job_specs, open_resources
from scaling.clock import StoreTimeClock, VirtualClock
from scaling.metrics import models as m
from scaling.settings import Settings

pytestmark = pytest.mark.sqlite


@pytest.fixture
def settings(tmp_path: Path, metrics_url: str) -> Settings:
    return Settings.defaults(data_dir=tmp_path, app_db_url=f"sqlite:///{tmp_path}/app.db", state_url="memory://",
                             metrics_db_url=metrics_url)


@pytest.fixture
def res(settings: Settings, clock: VirtualClock) -> Iterator[Resources]:
    r = open_resources(settings, clock=clock, host="replica-a", async_loop=False)
    try:
        yield r
    finally:
        r.close()


def test_default_jobs_use_the_configured_intervals(settings: Settings, res: Resources) -> None:
    """Prewarm 5 min, cleanup hourly, headroom every minute, stats every 15 min, rollups hourly, retention and
    the capacity search daily (the search with 30 minutes to run, the others a cron's 30 s)."""
    specs = {s.name: s for s in job_specs(settings, res)}
    assert list(specs) == [*DEFAULT_JOBS, "capacity"]
    assert {n: s.interval_s for n, s in specs.items()} == {
        "prewarm": 300, "cleanup": 3600, "headroom": 60, "db_stats": 900, "cache_stats": 900,
        "cost_rollup": 3600, "retention": 86400, "alerts": 60, "capacity": 86400}
    assert all(s.deadline_s == (1800 if n == "capacity" else 30) and s.grace_s == s.interval_s / 2
               for n, s in specs.items())


def test_scale_and_overrides(settings: Settings, res: Resources) -> None:
    """--interval-scale 0.05 runs every job 20x as often; an explicit interval is taken as given."""
    specs = {s.name: s for s in job_specs(settings, res, names=["prewarm", "headroom", "heartbeat"], scale=0.05,
                                           intervals={"heartbeat": 1})}
    assert (specs["prewarm"].interval_s, specs["headroom"].interval_s, specs["heartbeat"].interval_s) == (15, 3, 1)
    assert specs["headroom"].deadline_s == 3  # a run never outlives its interval


@pytest.mark.parametrize("kwargs, message", [
    ({"names": ["prewarm", "nope"]}, "unknown job(s): nope"),
    ({"names": ["headroom"], "scale": 0.0001}, "under the minimum"),
])
def test_bad_job_lists_are_refused(settings: Settings, res: Resources, kwargs: dict[str, Any], message: str) -> None:
    """Unknown names and intervals too small to key slots on fail before anything is scheduled."""
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        job_specs(settings, res, **kwargs)


def test_triggers_are_aligned_to_the_epoch_with_no_silent_misfires(settings: Settings, res: Resources) -> None:
    """Every replica computes the same slots: fire times are whole multiples of the interval since 1970."""
    sched = Collectors(job_specs(settings, res, scale=0.05), res).scheduler()
    now = datetime(2026, 5, 4, 12, 0, 7, 250000, tzinfo=UTC)
    for job in sched.get_jobs():
        fire = job.trigger.get_next_fire_time(None, now)
        interval = job.trigger.interval_length
        assert fire > now and fire.timestamp() % interval == pytest.approx(0, abs=1e-6)
        assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, None)


def test_fire_runs_a_slot_once_and_the_next_slot_again(settings: Settings, res: Resources,
                                                       clock: VirtualClock) -> None:
    """Two fires in one slot (two replicas) run it once; the next slot runs."""
    specs = job_specs(settings, res, names=["headroom"])
    a = Collectors(specs, res, wall=clock.now)
    b = Collectors(specs, res, wall=clock.now)
    clock.advance(0.01)
    assert (a.fire("headroom").outcome, b.fire("headroom").outcome) == ("ok", NOT_CLAIMED)
    clock.advance(60)
    assert b.fire("headroom").outcome == "ok"
    with res.metrics_engine.connect() as conn:
        slots = conn.execute(select(m.JOB_RUNS.c.scheduled_at)).scalars().all()
    assert [s % 60 for s in slots] == [0, 0] and slots[1] - slots[0] == 60


def test_run_once_records_every_job(settings: Settings, res: Resources) -> None:
    """--once runs each job now; every metric-writing job records its run (prewarm is not in this build's test)."""
    names = [n for n in DEFAULT_JOBS if n != "prewarm"]
    outcomes = Collectors(job_specs(settings, res, names=names), res).run_once()
    assert {o.job: o.outcome for o in outcomes} == dict.fromkeys(names, "ok")
    with res.metrics_engine.connect() as conn:
        assert sorted(conn.execute(select(m.JOB_RUNS.c.job)).scalars().all()) == sorted(names)
        assert conn.execute(select(m.HEADROOM_SAMPLES.c.upstream)).scalars().all()
        assert conn.execute(select(m.CACHE_STATS.c.family)).scalars().all()


def test_a_fresh_start_catches_up_due_jobs_once_across_replicas(settings: Settings, res: Resources,
                                                                clock: VirtualClock) -> None:
    """Jobs never run (or not for an interval) run at start, once even when two replicas start together."""
    clock.advance(30)
    specs = job_specs(settings, res, names=["headroom", "db_stats"])
    a = Collectors(specs, res, wall=clock.now)
    b = Collectors(specs, res, wall=clock.now)
    assert a.due() == ["headroom", "db_stats"]
    for thread in a.catch_up() + b.catch_up():
        thread.join(10)
    with res.metrics_engine.connect() as conn:
        rows = conn.execute(select(m.JOB_RUNS.c.job, m.JOB_RUNS.c.scheduled_at, m.JOB_RUNS.c.lateness_s)).all()
    assert sorted(r.job for r in rows) == ["db_stats", "headroom"]
    assert {r.job: r.lateness_s for r in rows} == {"headroom": 30.0, "db_stats": 30.0}
    assert (a.outcomes.get("ok", 0) + b.outcomes.get("ok", 0), a.due()) == (2, [])


def test_one_clock_per_process(res: Resources) -> None:
    """The writer, the run wrapper and every service (limiters, fetchers, cache) read the process's one clock."""
    services = res.services
    assert services.clock is res.clock and res.writer.clock is res.clock
    assert all(limiter.clock is res.clock for limiter in res.limiters)
    assert all(fetcher.clock is res.clock for fetcher in services.fetchers.values())


def test_a_shared_store_puts_the_process_on_the_stores_time(settings: Settings, tmp_path: Path) -> None:
    """Without an injected clock a process sharing a SQL store runs on the store's time, services included."""
    r = open_resources(replace(settings, state_url=f"sqlite:///{tmp_path}/state.db"), async_loop=False)
    try:
        assert isinstance(r.clock, StoreTimeClock) and r.services.clock is r.clock
    finally:
        r.close()
