"""The collectors' capacity job: a calibrated bisection under the run's clock, one stored row per run."""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from collectors import jobs
from collectors.runs import RunPlace, SlotTiming, run_job
from scaling.capacity.breaks import Break
from scaling.capacity.simulate import Scenario, SimResult, simulate
from scaling.clock import VirtualClock
from scaling.metrics import models as m
from scaling.metrics.queries import latest_capacity
from scaling.metrics.records import UserCounts
from scaling.metrics.writer import MetricsWriter
from scaling.settings import Settings
from scaling.store import StateStore

pytestmark = pytest.mark.sqlite
PLANTED = 90


def _planted(sc: Scenario) -> SimResult:
    """A short real simulation, with a stubbed limit that breaks above `PLANTED` users."""
    res = simulate(dataclasses.replace(sc, hours=0.05))
    if sc.users > PLANTED:
        res.breaks.append(Break("planted limit", f"{sc.users} > {PLANTED} users", 0))
    return res


def test_capacity_job_writes_a_calibrated_row(engine: Engine, writer: MetricsWriter, store: StateStore,
                                              clock: VirtualClock, tmp_path: Path) -> None:
    """One run stores users carried, the break past them, the active share from the user counts and its provenance."""
    clock.advance(1_793_491_200.0 - clock.now())
    writer.record([UserCounts(total=100, with_lastfm=80, active=20, ts=clock.now() - (h + 1) * 900) for h in range(8)])
    fn = functools.partial(jobs.capacity_job, settings=Settings.defaults(data_dir=tmp_path), metrics_engine=engine,
                           design="cron5m", time_model="plan", trial_hours=0.05, simulator=_planted)
    out = run_job("capacity", clock.now(), fn, place=RunPlace(writer, clock, lease_store=store),
                  timing=SlotTiming(deadline_s=1800))
    assert out.outcome == "ok", out.error
    rec = latest_capacity(engine)
    assert rec is not None and rec.source == "collectors" and rec.computed_at == clock.now()
    assert (rec.design, rec.time_model, rec.active_share) == ("cron5m", "plan", 0.2)
    assert rec.users_carried <= PLANTED < (rec.broken_at or 0) and rec.first_break_limit == "planted limit"
    assert rec.provenance["active share"].startswith("from 8 user-count samples (collectors)")
    assert rec.provenance["page views per user per day"].startswith("default: ")
    with engine.connect() as conn:
        stored = conn.execute(select(m.JOB_RUNS.c.report).where(m.JOB_RUNS.c.job == "capacity")).scalar_one()
    report = json.loads(stored)
    assert report["users_carried"] == rec.users_carried and report["calibrated"] == ["active share"]


def test_capacity_job_stops_between_trials_at_its_deadline(engine: Engine, writer: MetricsWriter,
                                                           store: StateStore, clock: VirtualClock,
                                                           tmp_path: Path) -> None:
    """A search that outlives its deadline ends as timed out before the next trial and stores nothing."""
    def slow(sc: Scenario) -> SimResult:
        clock.advance(1000.0)  # each trial takes 1,000 s of the run's clock
        return _planted(dataclasses.replace(sc, users=min(sc.users, 3)))

    fn = functools.partial(jobs.capacity_job, settings=Settings.defaults(data_dir=tmp_path), metrics_engine=engine,
                           design="cron5m", time_model="plan", trial_hours=0.05, simulator=slow)
    out = run_job("capacity", clock.now(), fn, place=RunPlace(writer, clock, lease_store=store),
                  timing=SlotTiming(deadline_s=1800))
    assert out.outcome == "timed_out"
    assert latest_capacity(engine) is None


def test_capacity_job_runs_its_trials_in_a_child_process(engine: Engine, writer: MetricsWriter, store: StateStore,
                                                         clock: VirtualClock, tmp_path: Path) -> None:
    """With the real simulator the trials run in a spawned child (not on the collectors' GIL), and the
    answer is the one the same search gives in this process."""
    settings = Settings.defaults(data_dir=tmp_path)
    fn = functools.partial(jobs.capacity_job, settings=settings, metrics_engine=engine, design="upstream",
                           time_model="plan", trial_hours=0.1, ceiling=400)
    out = run_job("capacity", clock.now(), fn, place=RunPlace(writer, clock, lease_store=store),
                  timing=SlotTiming(deadline_s=1800))
    assert out.outcome == "ok", out.error
    rec = latest_capacity(engine)
    assert rec is not None
    here = functools.partial(jobs.capacity_job, settings=settings, metrics_engine=engine, design="upstream",
                             time_model="plan", trial_hours=0.1, ceiling=400,
                             simulator=functools.partial(simulate, settings=settings))
    again = run_job("capacity", clock.now() + 1, here, place=RunPlace(writer, clock, lease_store=store),
                    timing=SlotTiming(deadline_s=1800))
    assert again.outcome == "ok", again.error
    with engine.connect() as conn:
        rows = conn.execute(select(m.CAPACITY_RESULTS.c.users_carried, m.CAPACITY_RESULTS.c.first_break_limit)
                            .order_by(m.CAPACITY_RESULTS.c.id)).all()
    assert [tuple(r) for r in rows] == [(rec.users_carried, rec.first_break_limit)] * 2
    assert rec.first_break_limit is not None and rec.users_carried < 400
