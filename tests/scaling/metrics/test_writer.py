"""MetricsWriter: records round-trip, bad records fail at once, job slots are claimed exactly once."""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from scaling.clock import VirtualClock
from scaling.errors import StoreError
from scaling.metrics import models as m
from scaling.metrics import queries as q
from scaling.metrics.db import open_metrics_db
from scaling.metrics.records import (
    AiUsage,
    AlertEvent,
    CacheStats,
    HeadroomSample,
    JobRun,
    TableStats,
    UserCounts,
    WorkerEvent,
)
from scaling.metrics.writer import MetricsWriter


def _rows(engine: Engine, table: object) -> list[dict[str, object]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table))]  # type: ignore[call-overload]


def test_headroom_sample_round_trips_with_clock_timestamp(engine: Engine, writer: MetricsWriter,
                                                          clock: VirtualClock) -> None:
    """A sample without ts is stamped by the clock; utilisation and remaining are derived."""
    sample = HeadroomSample("spotify", used=90, limit=120, limiter_key="web",
                            upstream_429=2, in_cooldown=True, cooldown_until=clock.now() + 30)
    assert writer.record_headroom([sample]) == 1
    [row] = _rows(engine, m.HEADROOM_SAMPLES)
    assert row["ts"] == clock.now() and row["source"] == "collectors"
    assert row["utilisation"] == pytest.approx(0.75) and row["remaining"] == 30
    assert row["in_cooldown"] is True or row["in_cooldown"] == 1
    assert row["upstream_429"] == 2 and row["limiter_key"] == "web"


def test_every_record_kind_lands_in_its_table(engine: Engine, writer: MetricsWriter, clock: VirtualClock) -> None:
    """One `record` call writes mixed kinds, each to its own table, in one transaction."""
    n = writer.record([
        TableStats("users", 120, 4096), TableStats("*", 5000, 10**6),
        CacheStats("spotify:album", hits=8, misses=2, keys=40, bytes=9000),
        AiUsage("openai", "gpt-5.6-terra", "artistSummary", input_tokens=900, output_tokens=1000, cost_usd=0.0138),
        UserCounts(120, 84, 12), WorkerEvent("scheduled", "ok", cron="*/5 * * * *", wall_ms=6344, cpu_ms=40),
    ])
    assert n == 6
    assert {r["table_name"]: r["rows"] for r in _rows(engine, m.DB_STATS)} == {"users": 120, "*": 5000}
    assert _rows(engine, m.CACHE_STATS)[0]["hits"] == 8
    assert _rows(engine, m.AI_USAGE)[0]["cost_usd"] == pytest.approx(0.0138)
    assert q.latest_user_counts(engine) == UserCounts(120, 84, 12, clock.now(), "collectors")
    assert _rows(engine, m.WORKER_EVENTS)[0]["source"] == "worker"


@pytest.mark.parametrize("make, field", [
    (lambda: HeadroomSample("spotify", used=-1, limit=120), "used"),
    (lambda: HeadroomSample("spotify", used=1, limit=0), "limit"),
    (lambda: HeadroomSample("", used=1, limit=10), "upstream"),
    (lambda: AiUsage("openai", "m", "t", cost_usd=math.nan), "cost_usd"),
    (lambda: CacheStats("f", hits=math.inf), "hits"),
    (lambda: JobRun("prewarm", 0, 0, outcome="exploded"), "outcome"),
])
def test_bad_records_fail_on_construction_naming_the_field(make: object, field: str) -> None:
    """A negative, non-finite or empty value is rejected with the field's name, before any insert."""
    with pytest.raises(ValueError, match=field):
        make()  # type: ignore[operator]


def test_record_rejects_job_runs_and_foreign_objects(writer: MetricsWriter) -> None:
    """Job runs have their own methods; anything else passed to `record` is a TypeError."""
    with pytest.raises(TypeError, match="JobRun"):
        writer.record([JobRun("prewarm", 0, 0, "ok")])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="HeadroomSample"):
        writer.record_headroom([UserCounts(1, 1, 1)])  # type: ignore[list-item]


def test_claim_then_finish_records_duration_lateness_and_report(engine: Engine, writer: MetricsWriter,
                                                                clock: VirtualClock) -> None:
    """A claimed run starts 'running' with its lateness; finishing stores outcome, duration and JSON report."""
    slot = clock.now()
    clock.advance(1.5)
    assert writer.claim_run("prewarm", slot) is True
    clock.advance(12.25)
    assert writer.finish_run("prewarm", slot, outcome="ok", report={"users": 90, "skipped": 0}) is True
    [row] = _rows(engine, m.JOB_RUNS)
    assert row["outcome"] == "ok" and row["host"] == "test-host"
    assert row["lateness_s"] == pytest.approx(1.5) and row["duration_s"] == pytest.approx(12.25)
    assert json.loads(str(row["report"])) == {"users": 90, "skipped": 0}
    assert writer.finish_run("prewarm", slot, outcome="failed") is False  # already finished


def test_second_claim_of_a_slot_is_refused(writer: MetricsWriter, clock: VirtualClock) -> None:
    """The same (job, scheduled_at, source) can be claimed once; another source or slot is separate."""
    slot = clock.now()
    assert writer.claim_run("prewarm", slot)
    assert not writer.claim_run("prewarm", slot)
    assert not writer.claim_run("prewarm", slot + 0.0001)  # same slot to the millisecond
    assert writer.claim_run("prewarm", slot, source="worker")
    assert writer.claim_run("prewarm", slot + 300)
    assert writer.claim_run("cleanup", slot)


def test_record_run_inserts_complete_runs_once(engine: Engine, writer: MetricsWriter) -> None:
    """An ingested run is stored with finished_at derived from duration; a duplicate returns False."""
    run = JobRun("prewarm", 1000.0, 1002.0, "timed_out", duration_s=30.0, error="deadline", source="worker")
    assert writer.record_run(run) is True
    assert writer.record_run(run) is False
    [row] = _rows(engine, m.JOB_RUNS)
    assert row["finished_at"] == 1032.0 and row["lateness_s"] == 2.0 and row["outcome"] == "timed_out"


def test_long_errors_are_truncated(engine: Engine, writer: MetricsWriter, clock: VirtualClock) -> None:
    """An error message longer than 2,000 characters is cut, not rejected."""
    writer.claim_run("prewarm", clock.now())
    writer.finish_run("prewarm", clock.now(), outcome="failed", error="x" * 10_000)
    assert len(str(_rows(engine, m.JOB_RUNS)[0]["error"])) == 2000


def test_threads_racing_for_slots_get_each_exactly_once(engine: Engine, clock: VirtualClock) -> None:
    """Four writers in threads claiming the same 40 slots win each slot exactly once between them."""
    wins: list[list[float]] = [[] for _ in range(4)]
    writers = [MetricsWriter(engine, clock=clock, log_lines=False, host=f"h{i}") for i in range(4)]

    def claim(i: int) -> None:
        for k in range(40):
            if writers[i].claim_run("prewarm", 1000.0 + 300 * k):
                wins[i].append(k)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(k for w in wins for k in w) == list(range(40))


def _claim_in_process(url: str, slots: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    engine = open_metrics_db(url)
    writer = MetricsWriter(engine, clock=VirtualClock(), log_lines=False)
    out.put([k for k in range(slots) if writer.claim_run("prewarm", 1000.0 + 300 * k)])
    engine.dispose()


def test_processes_racing_for_slots_get_each_exactly_once(metrics_url: str) -> None:
    """Three processes (like three collector replicas) claiming 30 slots run each slot exactly once."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claim_in_process, args=(metrics_url, 30, out)) for _ in range(3)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert sorted(k for r in results for k in r) == list(range(30))


def test_alerts_fire_once_resolve_and_get_marked_delivered(engine: Engine, writer: MetricsWriter,
                                                           clock: VirtualClock) -> None:
    """Firing twice keeps one incident; resolving closes it at the clock's time; delivery is recorded."""
    event = AlertEvent("headroom_utilisation", "warning", subject="spotify", value=0.91, threshold=0.8,
                       message="spotify above 80%")
    first = writer.fire_alert(event)
    assert writer.fire_alert(event) == first
    writer.mark_delivered(first)
    clock.advance(600)
    assert writer.resolve_alert("headroom_utilisation", subject="spotify", value=0.5) == 1
    assert writer.resolve_alert("headroom_utilisation", subject="spotify") == 0
    [row] = _rows(engine, m.ALERT_EVENTS)
    assert row["state"] == "resolved" and row["resolved_at"] == clock.now() and row["value"] == 0.5
    assert bool(row["delivered"]) is True
    assert writer.fire_alert(event) != first  # a new incident after resolution


def test_unmigrated_db_raises_store_error_with_hint(blank_url: str, clock: VirtualClock) -> None:
    """Writing to a DB without the schema says so in one line and suggests the migrate command."""
    engine = open_metrics_db(blank_url)
    try:
        with pytest.raises(StoreError, match="python -m scaling migrate") as info:
            MetricsWriter(engine, clock=clock).record_headroom([HeadroomSample("spotify", used=1, limit=2)])
        assert "\n" not in str(info.value)
    finally:
        engine.dispose()


@pytest.mark.sqlite
def test_db_whose_directory_vanished_raises_store_error(tmp_path: Path, clock: VirtualClock) -> None:
    """A SQLite metrics DB that can no longer be opened raises StoreError, not a driver traceback."""
    engine = open_metrics_db(f"sqlite:///{tmp_path}/gone/metrics.db")
    (tmp_path / "gone").rmdir()
    try:
        with pytest.raises(StoreError, match="cannot claim a job run"):
            MetricsWriter(engine, clock=clock).claim_run("prewarm", 0.0)
    finally:
        engine.dispose()


def test_batches_larger_than_one_statement_are_all_written(engine: Engine, writer: MetricsWriter) -> None:
    """5,001 samples in one call are split into statements and all stored."""
    writer.record_headroom(HeadroomSample("lastfm", used=1, limit=4, ts=float(i)) for i in range(5001))
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(m.HEADROOM_SAMPLES)).scalar() == 5001
