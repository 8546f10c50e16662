"""Dashboard queries: correct buckets, never more than 2,000 points per series, costs that add up."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, insert, select

from scaling.clock import VirtualClock
from scaling.metrics import models as m
from scaling.metrics import queries as q
from scaling.metrics.buckets import MAX_POINTS, bucket_start
from scaling.metrics.records import AiUsage, AlertEvent, CacheStats, HeadroomSample, JobRun, TableStats, UserCounts
from scaling.metrics.writer import MetricsWriter

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DAY, HOUR = 86400.0, 3600.0


def _year_of_hourly_samples(engine: Engine) -> None:
    """Two limiters sampled every 30 minutes for a year, a 429 every 7th sample (bulk, for speed)."""
    t = np.arange(T0 - 365 * DAY, T0, 1800.0)
    rows = [{"ts": float(ts), "source": "collectors", "upstream": up, "limiter_key": "", "used": 60.0,
             "limit": 120.0, "remaining": 60.0, "utilisation": 0.5, "in_cooldown": False,
             "upstream_429": int(i % 7 == 0), "throttled": 1, "wait_seconds": 0.5, "rejected": 0}
            for i, ts in enumerate(t) for up in ("spotify", "lastfm")]
    with engine.begin() as conn:
        conn.execute(insert(m.HEADROOM_SAMPLES), rows)


def test_minute_samples_sum_into_hour_buckets(engine: Engine, writer: MetricsWriter) -> None:
    """Counters sum, gauges average and peak within each hour bucket, aligned to the hour."""
    writer.record_headroom(HeadroomSample("spotify", used=float(i), limit=120, upstream_429=1, ts=T0 + 60 * i)
                           for i in range(120))
    df = q.headroom_series(engine, T0, T0 + 2 * HOUR, bucket_s=3600)
    assert list(df["ts"]) == [pd.Timestamp("2026-01-01T00:00Z"), pd.Timestamp("2026-01-01T01:00Z")]
    assert list(df["samples"]) == [60, 60] and list(df["upstream_429"]) == [60, 60]
    assert list(df["used_avg"]) == [29.5, 89.5] and list(df["used_max"]) == [59, 119]
    assert df["util_max"].iloc[1] == pytest.approx(119 / 120)
    assert df.attrs["bucket_s"] == 3600


def test_bucket_start_floors_on_both_backends(engine: Engine) -> None:
    """Timestamps just below, at and above an hour boundary fall in the right bucket (PostgreSQL's CAST rounds)."""
    t = m.HEADROOM_SAMPLES
    stamps = [T0 - 0.001, T0, T0 + 1799.9, T0 + 1800.0, T0 + 3599.999]
    with engine.begin() as conn:
        conn.execute(insert(t), [{"ts": s, "upstream": "x", "used": 1, "limit": 2, "remaining": 1,
                                  "utilisation": 0.5} for s in stamps])
        got = [float(v) for v in conn.execute(select(bucket_start(t.c.ts, 3600)).order_by(t.c.ts)).scalars()]
    assert got == [T0 - 3600, T0, T0, T0, T0]


def test_no_series_exceeds_two_thousand_points_and_totals_hold(engine: Engine) -> None:
    """Over ranges from an hour to a year, each series has at most 2,000 points and no 429 is lost."""
    _year_of_hourly_samples(engine)
    stamps = np.arange(T0 - 365 * DAY, T0, 1800.0)
    for days in (1 / 24, 1, 7, 30, 90, 365):
        since = T0 - days * DAY
        df = q.headroom_series(engine, since, T0)
        assert df.groupby(["upstream", "limiter_key", "source"]).size().max() <= MAX_POINTS, days
        expected = sum(1 for i, ts in enumerate(stamps) if i % 7 == 0 and ts >= since)
        assert df[df.upstream == "spotify"]["upstream_429"].sum() == expected, days


def test_explicit_bucket_too_narrow_for_the_range_is_refused(engine: Engine) -> None:
    """Asking for minute buckets over a month would exceed 2,000 points: a clear ValueError."""
    with pytest.raises(ValueError, match="2000 points"):
        q.headroom_series(engine, T0 - 30 * DAY, T0, bucket_s=60)
    with pytest.raises(ValueError, match="empty time range"):
        q.headroom_series(engine, T0, T0)


def test_datetimes_are_accepted_as_range_bounds(engine: Engine, writer: MetricsWriter) -> None:
    """Streamlit's datetimes (naive taken as UTC) work like epoch seconds."""
    writer.record_headroom([HeadroomSample("spotify", used=1, limit=2, ts=T0 + 30)])
    df = q.headroom_series(engine, datetime(2026, 1, 1), datetime(2026, 1, 1, 1, tzinfo=UTC))
    assert df["samples"].sum() == 1


def _random_ai_rows(seed: int, n: int) -> list[AiUsage]:
    rng = np.random.default_rng(seed)
    models = [("openai", "gpt-5.6-terra"), ("openai", "gpt-5.6-luna"), ("anthropic", "claude-sonnet-5")]
    tasks = ["artistSummary", "albumDetail", "genreSummary"]
    out = []
    for _ in range(n):
        provider, model = models[rng.integers(3)]
        out.append(AiUsage(provider, model, tasks[rng.integers(3)], input_tokens=int(rng.integers(0, 3000)),
                           output_tokens=int(rng.integers(0, 2000)), cost_usd=float(rng.uniform(0, 0.05)),
                           ts=float(T0 - rng.uniform(0, 60 * DAY))))
    return out


@pytest.mark.parametrize("group_by", [(), ("day", "provider", "model", "task"), ("month", "provider"),
                                      ("week",), ("task",), ("source", "model")])
def test_ai_cost_by_totals_equal_the_sum_of_rows(engine: Engine, writer: MetricsWriter,
                                                 group_by: tuple[str, ...]) -> None:
    """However the costs are grouped, calls, tokens and dollars add up to the raw rows in the range."""
    rows = _random_ai_rows(1, 400)
    writer.record_ai_usage(rows)
    since, until = T0 - 45 * DAY, T0 - 5 * DAY
    inside = [r for r in rows if since <= (r.ts or 0) < until]
    df = q.ai_cost_by(engine, since, until, group_by)
    assert df["calls"].sum() == len(inside)
    assert df["cost_usd"].sum() == pytest.approx(sum(r.cost_usd for r in inside))
    assert df["input_tokens"].sum() == sum(r.input_tokens for r in inside)
    assert list(df.columns[:len(group_by)]) == [("ts" if g in ("day", "week", "month") else g) for g in group_by]


def test_ai_cost_by_rejects_unknown_groupings(engine: Engine) -> None:
    """A typo or two time units in group_by is a ValueError naming the allowed names."""
    with pytest.raises(ValueError, match="group_by"):
        q.ai_cost_by(engine, T0 - DAY, T0, ("day", "modle"))
    with pytest.raises(ValueError, match="group_by"):
        q.ai_cost_by(engine, T0 - DAY, T0, ("day", "month"))
    with pytest.raises(ValueError, match="hour"):
        q.ai_cost_by(engine, T0 - 365 * DAY, T0, ("hour",))


def test_cron_summary_gives_nearest_rank_percentiles_and_outcomes(engine: Engine, writer: MetricsWriter) -> None:
    """Durations 1..100 s give p50 50, p95 95, max 100; outcomes are counted separately per job."""
    for i in range(100):
        outcome = "timed_out" if i >= 97 else "failed" if i == 0 else "ok"
        writer.record_run(JobRun("prewarm", T0 + 300 * i, T0 + 300 * i + 0.5, outcome, duration_s=float(i + 1)))
    writer.record_run(JobRun("cleanup", T0, T0 + 1, "ok", duration_s=2.0))
    df = q.cron_summary(engine, T0, T0 + DAY).set_index("job")
    pre = df.loc["prewarm"]
    assert (pre.runs, pre.ok, pre.failed, pre.timed_out) == (100, 96, 1, 3)
    assert (pre.duration_p50, pre.duration_p95, pre.duration_max) == (50, 95, 100)
    assert pre.lateness_max == pytest.approx(0.5)
    assert df.loc["cleanup"].duration_p95 == 2.0


def test_job_runs_are_bucketed_per_job(engine: Engine, writer: MetricsWriter) -> None:
    """A day of 5-minute runs over a week comes back in ≤ 2,000 buckets with every run counted."""
    for i in range(288):
        writer.record_run(JobRun("prewarm", T0 + 300 * i, T0 + 300 * i, "ok", duration_s=5.0))
    df = q.job_runs(engine, "prewarm", T0 - 6 * DAY, T0 + DAY)
    assert df["runs"].sum() == 288 and len(df) <= MAX_POINTS and set(df["job"]) == {"prewarm"}
    assert q.job_runs(engine, None, T0, T0 + DAY)["runs"].sum() == 288
    assert len(q.recent_runs(engine, job="prewarm", limit=5)) == 5


def test_latest_db_stats_and_growth(engine: Engine, writer: MetricsWriter) -> None:
    """The newest row per table wins; growth keeps every table's series with the '*' total."""
    writer.record_table_stats([TableStats("users", 10, 1000, ts=T0), TableStats("*", 100, 10**6, ts=T0)])
    writer.record_table_stats([TableStats("users", 12, 1200, ts=T0 + HOUR), TableStats("*", 120, 2 * 10**6,
                                                                                       ts=T0 + HOUR)])
    latest = q.latest_db_stats(engine, limit_bytes=10**7).set_index("table_name")
    assert latest.loc["users", "rows"] == 12 and latest.loc["*", "share_of_limit"] == pytest.approx(0.2)
    growth = q.db_growth(engine, T0, T0 + 2 * HOUR)
    assert list(growth[growth.table_name == "*"]["rows"]) == [100, 120]


def test_cache_summary_hit_ratio(engine: Engine, writer: MetricsWriter) -> None:
    """Hits and misses sum over the range; the ratio is hits over lookups; keys take the peak."""
    writer.record_cache_stats([CacheStats("spotify:album", hits=9, misses=1, keys=10, ts=T0),
                               CacheStats("spotify:album", hits=1, misses=9, keys=30, ts=T0 + 600),
                               CacheStats("lastfm:topalbums", keys=5, ts=T0)])
    df = q.cache_summary(engine, T0, T0 + HOUR).set_index("family")
    assert df.loc["spotify:album", "hit_ratio"] == pytest.approx(0.5)
    assert df.loc["spotify:album", "keys_max"] == 30
    assert pd.isna(df.loc["lastfm:topalbums", "hit_ratio"])  # no lookups: no ratio, not 0


def test_user_counts_series_and_latest(engine: Engine, writer: MetricsWriter) -> None:
    """The series per bucket and the latest sample, per source."""
    writer.record_user_counts(UserCounts(20, 14, 2, ts=T0))
    writer.record_user_counts(UserCounts(25, 18, 3, ts=T0 + DAY))
    writer.record_user_counts(UserCounts(7, 5, 1, ts=T0 + DAY, source="worker"))
    assert list(q.user_count_series(engine, T0, T0 + 2 * DAY, source="collectors")["total"]) == [20, 25]
    assert q.latest_user_counts(engine, source="worker") == UserCounts(7, 5, 1, T0 + DAY, "worker")
    assert q.latest_user_counts(engine, source="demo") is None


def test_alerts_include_still_firing_ones_from_before_since(engine: Engine, writer: MetricsWriter,
                                                            clock: VirtualClock) -> None:
    """An incident that started before the window but still fires is listed; an old resolved one is not."""
    writer.fire_alert(AlertEvent("old", "warning", started_at=T0 - 10 * DAY))
    writer.resolve_alert("old")
    writer.fire_alert(AlertEvent("ongoing", "critical", started_at=T0 - 10 * DAY))
    writer.fire_alert(AlertEvent("new", "warning", started_at=T0 + 10))
    df = q.alerts(engine, T0 - DAY)
    assert list(df["rule"]) == ["new", "ongoing"]
    assert list(q.alerts(engine, T0 - DAY, state="firing")["rule"]) == ["new", "ongoing"]


def test_empty_db_gives_empty_frames_with_columns(engine: Engine) -> None:
    """Before any collector ran, every query returns an empty frame the dashboard can still render."""
    assert list(q.headroom_series(engine, T0 - DAY, T0).columns)[:4] == ["ts", "source", "upstream", "limiter_key"]
    assert q.cron_summary(engine, T0 - DAY, T0).empty
    assert q.ai_cost_by(engine, T0 - DAY, T0, ())["cost_usd"].sum() == 0
    assert q.cache_summary(engine, T0 - DAY, T0).empty and q.latest_db_stats(engine).empty
