"""Retention: roll-ups agree with the raw rows they replace, pruning is bounded, reruns change nothing."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import Engine, func, insert, select

from scaling.metrics import models as m
from scaling.metrics import queries as q
from scaling.metrics.records import AiUsage, CacheStats, JobRun, TableStats, UserCounts, WorkerEvent
from scaling.metrics.retention import roll_up_and_prune
from scaling.metrics.writer import MetricsWriter

T0 = 1_767_225_600.0
DAY, HOUR = 86400.0, 3600.0
NOW = T0 + 30 * DAY


def _count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def _fill(engine: Engine, writer: MetricsWriter) -> None:
    """30 days of 5-minute headroom samples for two sources, with seeded 429s, cache stats and AI calls."""
    rng = np.random.default_rng(7)
    t = np.arange(T0, NOW, 300.0)
    rows = [{"ts": float(ts), "source": src, "upstream": "spotify", "limiter_key": "web", "used": float(u),
             "limit": 120.0, "remaining": 120.0 - float(u), "utilisation": float(u) / 120, "in_cooldown": bool(c > 2),
             "upstream_429": int(c), "throttled": int(c) * 2, "wait_seconds": float(c) * 0.5, "rejected": 0}
            for src in ("collectors", "worker")
            for ts, u, c in zip(t, rng.integers(0, 120, t.size), rng.poisson(0.2, t.size))]
    with engine.begin() as conn:
        conn.execute(insert(m.HEADROOM_SAMPLES), rows)
    writer.record_cache_stats(CacheStats("spotify:album", hits=int(h), misses=1, keys=int(h), ts=float(ts))
                              for ts, h in zip(t[::6], rng.integers(0, 50, t.size)))
    writer.record_ai_usage(AiUsage("openai", "gpt-5.6-terra", "albumDetail", input_tokens=1000, output_tokens=800,
                                   cost_usd=float(cost), ts=float(ts))
                           for ts, cost in zip(t[::12], rng.uniform(0, 0.03, t.size)))
    writer.record_worker_events(WorkerEvent("scheduled", "ok", wall_ms=100.0, ts=float(ts)) for ts in t[::12])


def _views(engine: Engine) -> dict[str, object]:
    """What the dashboard would show over the whole month, read at hour and day resolution."""
    hourly = q.headroom_series(engine, T0, NOW, bucket_s=3600)
    daily = q.headroom_series(engine, T0, NOW, bucket_s=86400)
    return {
        "429_by_source": hourly.groupby("source")["upstream_429"].sum().to_dict(),
        "429_daily": daily.groupby("source")["upstream_429"].sum().to_dict(),
        "samples": int(hourly["samples"].sum()), "used_max": float(hourly["used_max"].max()),
        "util_avg_daily": [round(v, 9) for v in daily["util_avg"]],
        "cost": round(float(q.ai_cost_by(engine, T0, NOW, ())["cost_usd"].sum()), 9),
        "cost_by_day": [round(v, 9) for v in q.ai_cost_by(engine, T0, NOW, ("day",))["cost_usd"]],
        "hits": int(q.cache_summary(engine, T0, NOW)["hits"].sum()),
        "events": int(q.worker_series(engine, T0, NOW)["events"].sum()),
    }


def test_roll_up_and_prune_keeps_every_total(engine: Engine, writer: MetricsWriter) -> None:
    """Sums of 429s, samples, costs, hits and events and daily averages are identical before and after."""
    _fill(engine, writer)
    before = _views(engine)
    report = roll_up_and_prune(engine, now=NOW, raw_days=14, rollup_days=730)
    assert report.pruned_raw["headroom_samples"] > 0 and report.rolled_hours["headroom_samples"] > 0
    assert _views(engine) == before
    with engine.connect() as conn:
        oldest = conn.execute(select(func.min(m.HEADROOM_SAMPLES.c.ts))).scalar_one()
    assert oldest >= NOW - 14 * DAY - HOUR


def test_rerun_is_idempotent(engine: Engine, writer: MetricsWriter) -> None:
    """A second pass at the same time rolls and prunes nothing and leaves the views unchanged."""
    _fill(engine, writer)
    roll_up_and_prune(engine, now=NOW)
    after_first = (_views(engine), _count(engine, m.HEADROOM_HOURLY), _count(engine, m.HEADROOM_SAMPLES))
    again = roll_up_and_prune(engine, now=NOW)
    assert sum(again.rolled_rows.values()) == 0 and sum(again.pruned_raw.values()) == 0
    assert (_views(engine), _count(engine, m.HEADROOM_HOURLY), _count(engine, m.HEADROOM_SAMPLES)) == after_first


def test_hourly_passes_match_one_big_pass(engine: Engine, writer: MetricsWriter) -> None:
    """Running retention every day or so ends where one pass at the end would, whatever the pass boundaries."""
    _fill(engine, writer)
    before = _views(engine)
    for now in np.arange(T0 + 2 * DAY, NOW + 1, 53 * HOUR):
        roll_up_and_prune(engine, now=float(now), raw_days=2)
    roll_up_and_prune(engine, now=NOW, raw_days=2)
    assert _views(engine) == before


def test_minute_resolution_falls_back_to_hours_once_pruned(engine: Engine, writer: MetricsWriter) -> None:
    """A 20-day range would use 15-min buckets, but raw rows are gone: hourly buckets from roll-ups instead."""
    _fill(engine, writer)
    roll_up_and_prune(engine, now=NOW, raw_days=14)
    df = q.headroom_series(engine, NOW - 20 * DAY, NOW, source="collectors")
    assert df.attrs["bucket_s"] == 3600 and len(df) == 20 * 24
    recent = q.headroom_series(engine, NOW - DAY, NOW, source="collectors")
    assert recent.attrs["bucket_s"] == 60


def test_gauges_thin_to_hourly_and_old_rows_go(engine: Engine, writer: MetricsWriter) -> None:
    """DB stats every 10 min keep one sample per hour after raw_days; anything past rollup_days is dropped."""
    writer.record_table_stats(TableStats("users", i, ts=T0 + 600 * i) for i in range(6 * 24 * 30))
    writer.record_user_counts(UserCounts(1, 1, 1, ts=T0 - 800 * DAY))
    report = roll_up_and_prune(engine, now=NOW, raw_days=14, rollup_days=730)
    assert report.thinned["db_stats"] == 16 * 24 * 5  # 16 old days, 5 of each hour's 6 samples
    assert _count(engine, m.USER_COUNTS) == 0
    growth = q.db_growth(engine, T0, T0 + DAY, bucket_s=3600)
    assert list(growth["rows"])[:2] == [5, 11]  # the newest sample of each hour survived


def test_jobs_lose_old_reports_and_abandoned_runs_close(engine: Engine, writer: MetricsWriter) -> None:
    """Reports older than raw_days are cleared, a run stuck 'running' is closed as failed, old rows pruned."""
    writer.record_run(JobRun("prewarm", T0, T0, "ok", duration_s=3, report={"users": 5}))
    writer.record_run(JobRun("prewarm", NOW - DAY, NOW - DAY, "ok", duration_s=3, report={"users": 9}))
    writer.record_run(JobRun("prewarm", T0 - 800 * DAY, T0 - 800 * DAY, "ok", duration_s=3))
    writer.clock.advance(NOW - 7 * HOUR - writer.clock.now())  # type: ignore[attr-defined]
    writer.claim_run("cleanup", NOW - 7 * HOUR)
    report = roll_up_and_prune(engine, now=NOW)
    assert (report.reports_cleared, report.abandoned_runs, report.pruned_runs) == (1, 1, 1)
    runs = q.recent_runs(engine).set_index("scheduled_at")
    assert runs["report"].notna().sum() == 1
    assert runs[runs.job == "cleanup"]["outcome"].item() == "failed"


def test_retention_periods_must_nest() -> None:
    """Keeping raw rows longer than their roll-ups is refused before touching the DB."""
    with pytest.raises(ValueError, match="raw_days"):
        roll_up_and_prune(None, now=NOW, raw_days=30, rollup_days=7)  # type: ignore[arg-type]
