"""The run wrapper: each slot runs once, is timed, and ends recorded as ok, failed, timed out or skipped."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from sqlalchemy import Engine, select

from collectors.loop import LoopThread
from collectors.runs import (
    NOT_CLAIMED,
    NOT_RUN,
    DeadlineExceeded,
    JobContext,
    RunPlace,
    SkipRun,
    SlotTiming,
    close_abandoned,
    lease_key,
    run_job,
    slot_of,
)
from scaling.clock import VirtualClock
from scaling.errors import StoreError
from scaling.metrics import models as m
from scaling.metrics.db import open_metrics_db
from scaling.metrics.writer import MetricsWriter
from scaling.store import StateStore
from scaling.store.memory import MemoryStore

pytestmark = pytest.mark.sqlite


def _runs(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(m.JOB_RUNS).order_by(m.JOB_RUNS.c.scheduled_at))]


def _run(name: str, slot: float, fn: Any, writer: MetricsWriter, store: StateStore | None, clock: VirtualClock,
         *, deadline_s: float = 30.0, grace_s: float | None = None, interval_s: float | None = None,
         not_before: float | None = None, stop: threading.Event | None = None, async_runner: Any = None) -> Any:
    place = RunPlace(writer, clock, lease_store=store, async_runner=async_runner, stop=stop or threading.Event())
    return run_job(name, slot, fn, place=place, timing=SlotTiming(deadline_s, grace_s, interval_s, not_before))


class _DownStore(MemoryStore):
    """A state store whose server went away: every operation fails as the Redis backend would."""

    def __getattribute__(self, name: str) -> Any:
        if name in ("get", "set", "delete", "incr", "add", "compare_and_set", "update", "keys", "time",
                    "purge_expired", "clear"):
            def fail(*a: Any, **k: Any) -> Any:
                raise StoreError("redis add failed: ConnectionError: connection refused", backend="redis")
            return fail
        return super().__getattribute__(name)


def test_ok_run_records_lateness_duration_and_report(engine: Engine, writer: MetricsWriter, store: StateStore,
                                                     clock: VirtualClock) -> None:
    """A run 2 s late that takes 5 s is recorded ok with lateness 2, duration 5 and the job's report."""
    slot = clock.now()
    clock.advance(2)

    def job(ctx: JobContext) -> dict[str, int]:
        assert ctx.scheduled_at == slot and ctx.deadline_at == ctx.started_at + 30
        clock.advance(5)
        return {"rows": 7}

    out = _run("cleanup", slot, job, writer, store, clock)
    assert (out.outcome, out.lateness_s, out.duration_s, out.recorded) == ("ok", 2.0, 5.0, True)
    [row] = _runs(engine)
    assert (row["outcome"], row["lateness_s"], row["duration_s"], row["report"]) == ("ok", 2.0, 5.0, '{"rows":7}')
    assert row["host"] == "replica-a"


def test_exception_is_recorded_as_failed_and_never_raised(engine: Engine, writer: MetricsWriter,
                                                          store: StateStore, clock: VirtualClock) -> None:
    """A job that raises ends failed with a one-line error; the wrapper returns normally."""

    def job(ctx: JobContext) -> None:
        raise RuntimeError("upstream exploded\nwith a second line")

    out = _run("headroom", clock.now(), job, writer, store, clock)
    assert out.outcome == "failed" and out.error == "RuntimeError: upstream exploded"
    assert _runs(engine)[0]["error"] == "RuntimeError: upstream exploded"


def test_async_job_past_its_deadline_times_out_in_virtual_time(engine: Engine, writer: MetricsWriter,
                                                               store: StateStore, clock: VirtualClock) -> None:
    """An async job still awaiting at its 30 s deadline is cancelled and recorded timed_out at 30 s."""
    start = clock.now()

    async def job(ctx: JobContext) -> None:
        await ctx.clock.sleep(3600)

    out = _run("prewarm", start, job, writer, store, clock)
    assert out.outcome == "timed_out" and out.duration_s == pytest.approx(30.0)
    row = _runs(engine)[0]
    assert row["outcome"] == "timed_out" and row["duration_s"] == pytest.approx(30.0)


def test_a_job_raising_its_own_timeout_error_is_failed_not_timed_out(writer: MetricsWriter, store: StateStore,
                                                                     clock: VirtualClock) -> None:
    """Only the wrapper's deadline makes a run timed_out; a job's own TimeoutError is a failure."""

    async def job(ctx: JobContext) -> None:
        raise TimeoutError("upstream read timeout")

    assert _run("prewarm", clock.now(), job, writer, store, clock).outcome == "failed"


def test_sync_job_checking_its_deadline_stops_as_timed_out(engine: Engine, writer: MetricsWriter,
                                                           store: StateStore, clock: VirtualClock) -> None:
    """A sync job that calls ctx.check() after the deadline stops there, recorded timed_out."""
    done = []

    def job(ctx: JobContext) -> None:
        for batch in range(10):
            ctx.check()
            done.append(batch)
            clock.advance(7)

    out = _run("cleanup", clock.now(), job, writer, store, clock)
    assert out.outcome == "timed_out" and done == [0, 1, 2, 3, 4]


def test_job_finishing_after_its_deadline_is_timed_out(writer: MetricsWriter, store: StateStore,
                                                       clock: VirtualClock) -> None:
    """A run that returns but took longer than its deadline is recorded timed_out, not ok."""

    def job(ctx: JobContext) -> dict[str, int]:
        clock.advance(31)
        return {"done": 1}

    out = _run("retention", clock.now(), job, writer, store, clock)
    assert out.outcome == "timed_out" and "past its deadline of 30s" in (out.error or "")


def test_hung_sync_job_is_abandoned_at_its_deadline(writer: MetricsWriter, store: StateStore,
                                                    clock: VirtualClock) -> None:
    """A sync job blocked in I/O is left behind after its (real-time) deadline so the scheduler goes on."""
    release = threading.Event()

    def job(ctx: JobContext) -> None:
        release.wait(10)

    try:
        out = _run("db_stats", clock.now(), job, writer, store, clock, deadline_s=0.05)
    finally:
        release.set()
    assert out.outcome == "timed_out" and "left running in the background" in (out.error or "")


def test_late_claim_beyond_grace_is_recorded_skipped(engine: Engine, writer: MetricsWriter, store: StateStore,
                                                     clock: VirtualClock) -> None:
    """A misfire (claimed 40 s after its slot with 30 s grace) is skipped, and the job does not run."""
    slot = clock.now()
    clock.advance(40)
    ran = []
    out = _run("headroom", slot, lambda ctx: ran.append(1), writer, store, clock, grace_s=30.0)
    assert out.outcome == "skipped" and ran == []
    row = _runs(engine)[0]
    assert row["outcome"] == "skipped" and row["error"].startswith("missed: started 40.000s after its slot")


def test_skiprun_is_recorded_skipped_with_its_reason(writer: MetricsWriter, store: StateStore,
                                                     clock: VirtualClock) -> None:
    """A job with nothing to do raises SkipRun; the run is skipped with that reason."""

    def job(ctx: JobContext) -> None:
        raise SkipRun("no users yet")

    out = _run("prewarm", clock.now(), job, writer, store, clock)
    assert (out.outcome, out.error) == ("skipped", "no users yet")


def test_second_replica_does_not_run_a_claimed_slot(engine: Engine, writer: MetricsWriter, store: StateStore,
                                                    clock: VirtualClock) -> None:
    """Two replicas firing one slot on a shared store: one runs it, the other gets not_claimed."""
    other = MetricsWriter(writer.engine, clock=clock, log_lines=False, host="replica-b")
    calls = []
    slot = clock.now()
    first = _run("headroom", slot, lambda ctx: calls.append("a"), writer, store, clock)
    second = _run("headroom", slot, lambda ctx: calls.append("b"), other, store, clock)
    assert (first.outcome, second.outcome, calls) == ("ok", NOT_CLAIMED, ["a"])
    assert len(_runs(engine)) == 1


def test_db_claim_alone_guards_when_leases_expired(engine: Engine, writer: MetricsWriter, store: StateStore,
                                                   clock: VirtualClock) -> None:
    """A replica arriving after the lease expired still cannot run the slot: the UNIQUE row stops it."""
    slot = clock.now()
    _run("headroom", slot, lambda ctx: None, writer, store, clock)
    store.delete(lease_key("headroom", slot))
    calls = []
    out = _run("headroom", slot, lambda ctx: calls.append(1), writer, store, clock)
    assert out.outcome == NOT_CLAIMED and calls == []


def test_metrics_db_down_still_runs_under_the_lease(tmp_path: Any, store: StateStore, clock: VirtualClock) -> None:
    """With the metrics DB unreachable the job still runs (the lease guards it) and the loss is reported."""
    broken = open_metrics_db(f"sqlite:///{tmp_path}/never-migrated.db")
    writer = MetricsWriter(broken, clock=clock, log_lines=False)
    calls = []
    out = _run("cleanup", clock.now(), lambda ctx: calls.append(1), writer, store, clock)
    assert out.outcome == "ok" and calls == [1] and out.recorded is False
    assert store.get(lease_key("cleanup", out.scheduled_at), now=clock.now()) is not None


def test_state_store_down_falls_back_to_the_db_claim(engine: Engine, writer: MetricsWriter,
                                                     clock: VirtualClock) -> None:
    """With the state store unreachable the UNIQUE claim alone decides, and still only once."""
    down = _DownStore("x")
    calls = []
    slot = clock.now()
    a = _run("alerts", slot, lambda ctx: calls.append(1), writer, down, clock)
    b = _run("alerts", slot, lambda ctx: calls.append(2), writer, down, clock)
    assert (a.outcome, b.outcome, calls) == ("ok", NOT_CLAIMED, [1])


def test_both_stores_down_runs_nothing(tmp_path: Any, clock: VirtualClock) -> None:
    """Nothing can guard the slot, so no replica runs it (rather than all of them)."""
    writer = MetricsWriter(open_metrics_db(f"sqlite:///{tmp_path}/unmigrated.db"), clock=clock, log_lines=False)
    calls = []
    out = _run("alerts", clock.now(), lambda ctx: calls.append(1), writer, _DownStore("x"), clock)
    assert out.outcome == NOT_RUN and calls == []


def test_a_killed_run_does_not_block_the_next_slot(engine: Engine, writer: MetricsWriter, store: StateStore,
                                                   clock: VirtualClock) -> None:
    """A slot claimed by a replica that died stays 'running'; the next slot runs on another replica."""
    slot = clock.now()
    assert writer.claim_run("headroom", slot)  # replica A claimed, then was killed
    store.add(lease_key("headroom", slot), b"replica-a", now=clock.now(), ttl=120)
    clock.advance(60)
    other = MetricsWriter(engine, clock=clock, log_lines=False, host="replica-b")
    out = _run("headroom", slot + 60, lambda ctx: {"n": 1}, other, store, clock)
    assert out.outcome == "ok"
    assert [(r["outcome"], r["host"]) for r in _runs(engine)] == [("running", "replica-a"), ("ok", "replica-b")]


def test_abandoned_runs_are_closed_as_failed(engine: Engine, writer: MetricsWriter, clock: VirtualClock) -> None:
    """A run left 'running' past its deadline plus margin is closed failed; a fresh one is left alone."""
    writer.claim_run("headroom", clock.now())
    clock.advance(200)
    writer.claim_run("headroom", clock.now())
    assert close_abandoned(engine, now=clock.now(), deadlines={"headroom": 30.0}) == 1
    assert [r["outcome"] for r in _runs(engine)] == ["failed", "running"]
    assert "abandoned" in _runs(engine)[0]["error"]


def test_slots_nobody_ran_are_recorded_missed(engine: Engine, writer: MetricsWriter, store: StateStore,
                                              clock: VirtualClock) -> None:
    """When every replica skipped two slots, the next claim records them as skipped 'missed'."""
    t0 = slot_of(clock.now(), 60)
    _run("headroom", t0, lambda ctx: None, writer, store, clock, interval_s=60, grace_s=30, not_before=t0 - 1)
    clock.advance(180)
    _run("headroom", t0 + 180, lambda ctx: None, writer, store, clock, interval_s=60, grace_s=30, not_before=t0 - 1)
    rows = _runs(engine)
    assert [(r["scheduled_at"] - t0, r["outcome"]) for r in rows] == [
        (0, "ok"), (60, "skipped"), (120, "skipped"), (180, "ok")]
    assert rows[1]["error"] == "missed: no replica started this run"


def test_gaps_from_before_this_replica_started_are_not_backfilled(engine: Engine, writer: MetricsWriter,
                                                                  store: StateStore, clock: VirtualClock) -> None:
    """Downtime before the replica started is for the job_missed alert, not for invented rows."""
    t0 = slot_of(clock.now(), 60)
    _run("headroom", t0, lambda ctx: None, writer, store, clock, interval_s=60)
    clock.advance(300)
    _run("headroom", t0 + 300, lambda ctx: None, writer, store, clock, interval_s=60, not_before=clock.now())
    assert [r["outcome"] for r in _runs(engine)] == ["ok", "ok"]


def test_stop_event_abandons_a_running_sync_job(writer: MetricsWriter, store: StateStore,
                                                clock: VirtualClock) -> None:
    """At shutdown a run in flight ends at once, recorded failed 'interrupted'."""
    stop = threading.Event()
    started = threading.Event()
    release = threading.Event()

    def job(ctx: JobContext) -> None:
        started.set()
        release.wait(10)  # busy in a long batch, not looking at ctx.stop

    threading.Thread(target=lambda: (started.wait(5), stop.set()), daemon=True).start()
    try:
        out = _run("cleanup", clock.now(), job, writer, store, clock, stop=stop)
    finally:
        release.set()
    assert out.outcome == "failed" and (out.error or "").startswith("interrupted")


def test_unserialisable_report_keeps_the_outcome(engine: Engine, writer: MetricsWriter, store: StateStore,
                                                 clock: VirtualClock) -> None:
    """A report with NaN cannot be stored as JSON: the run is still ok, with a note instead of the report."""
    out = _run("db_stats", clock.now(), lambda ctx: {"x": float("nan")}, writer, store, clock)
    assert out.outcome == "ok"
    assert "unrecordable_report" in _runs(engine)[0]["report"]


def test_report_objects_with_as_dict_are_stored(engine: Engine, writer: MetricsWriter, store: StateStore,
                                                clock: VirtualClock) -> None:
    """A job may return its own report object; its as_dict() is what is stored."""

    class Report:
        def as_dict(self) -> dict[str, int]:
            return {"polled": 12}

    _run("prewarm", clock.now(), lambda ctx: Report(), writer, store, clock)
    assert _runs(engine)[0]["report"] == '{"polled":12}'


@pytest.mark.parametrize("t, interval, slot", [
    (1767225600.6001, 0.6, 1767225600.6),
    (1767225600.5999, 0.6, 1767225600.0),
    (1767225659.999, 60, 1767225600.0),
    (1767225660.0001, 60, 1767225660.0),
    (1767225603.2, 3, 1767225603.0),
])
def test_slot_of_is_exact_on_the_epoch_grid(t: float, interval: float, slot: float) -> None:
    """Slots are whole multiples of the interval since the epoch, with no float drift at the boundary."""
    assert slot_of(t, interval) == slot


def test_check_raises_when_the_deadline_has_passed(clock: VirtualClock) -> None:
    """JobContext.check is how sync jobs stop cooperatively."""
    ctx = JobContext("cleanup", clock.now(), clock.now(), clock.now() + 10, clock)
    ctx.check()
    clock.advance(11)
    with pytest.raises(DeadlineExceeded):
        ctx.check()


def test_async_jobs_share_one_loop_thread_and_stop_interrupts_them(writer: MetricsWriter, store: StateStore,
                                                                   clock: VirtualClock) -> None:
    """In production async jobs run on one long-lived loop (clients survive runs); shutdown cancels a run."""
    loops = []

    async def quick(ctx: JobContext) -> dict[str, int]:
        import asyncio

        loops.append(asyncio.get_running_loop())
        return {"n": 1}

    stop = threading.Event()

    async def stuck(ctx: JobContext) -> None:
        import asyncio

        stop.set()
        await asyncio.Event().wait()

    runner = LoopThread()
    try:
        a = _run("prewarm", clock.now(), quick, writer, store, clock, async_runner=runner)
        b = _run("prewarm", clock.now() + 300, quick, writer, store, clock, async_runner=runner)
        c = _run("prewarm", clock.now() + 600, stuck, writer, store, clock, async_runner=runner, stop=stop)
    finally:
        runner.close()
    assert (a.outcome, b.outcome, loops[0] is loops[1]) == ("ok", "ok", True)
    assert c.outcome == "failed" and (c.error or "").startswith("interrupted")
    assert runner.loop.is_closed()


def test_a_prewarm_where_every_user_failed_is_recorded_failed_with_its_report(
        engine: Engine, writer: MetricsWriter, store: StateStore, clock: VirtualClock) -> None:
    """74 of 74 users failing with CircuitOpen is a failed run on the Cron page, not "ok"; a run that
    refreshed anyone is ok (the rest keep their last good entry)."""
    import functools

    from collectors import jobs
    from scaling.prewarm import PrewarmReport
    from scaling.settings import Settings

    def prewarm_of(refreshed: int, failed: int) -> Any:
        async def fake(settings: Settings, *, clock: Any, store: StateStore, services: Any = None) -> PrewarmReport:
            return PrewarmReport(started_at=clock.now(), users_total=74, polled=74, refreshed=refreshed,
                                 failed=failed, errors={"CircuitOpen": failed} if failed else {})
        return functools.partial(jobs.prewarm_job, settings=Settings.defaults(), store=store, prewarm=fake)

    all_failed = _run("prewarm", clock.now(), prewarm_of(0, 74), writer, store, clock)
    some_failed = _run("prewarm", clock.now() + 300, prewarm_of(1, 73), writer, store, clock)
    assert (all_failed.outcome, some_failed.outcome) == ("failed", "ok")
    row = _runs(engine)[0]
    assert row["error"] == "0 of 74 users refreshed, 74 failed (CircuitOpen x74)"
    assert json.loads(row["report"])["errors"] == {"CircuitOpen": 74}  # the evidence is kept
