"""The dashboard's read side: every chart's data as one aggregated SQL query.

Each series function takes a time range (epoch seconds or datetimes, end exclusive)
and returns a pandas DataFrame already bucketed so that no series has more than
`MAX_POINTS` rows; the bucket width is in ``df.attrs["bucket_s"]`` and the bucket
start in the ``ts`` column (tz-aware UTC). Ranges reaching past raw retention read
the hourly roll-ups for the rolled-up part and raw rows for the rest, per source.

`ai_cost_by` is THE cost query: the dashboard's AI page and ``python -m scaling
report costs`` both call it, so their totals cannot differ.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import BigInteger, Engine, and_, case, cast, false, func, select
from sqlalchemy.engine import Connection

from scaling.metrics import models as m
from scaling.metrics.buckets import HOUR, MAX_POINTS, bucket_start, choose_bucket, epoch, points
from scaling.metrics.db import translate_errors
from scaling.metrics.records import CapacityRecord, UserCounts
from scaling.metrics.rollups import AI, CACHE, HEADROOM, WORKER, Rollup, distinct_sources

__all__ = [
    "D1_LIMIT_BYTES", "ai_cost_by", "alerts", "cache_series", "cache_summary", "cron_summary", "db_growth",
    "headroom_series", "job_runs", "latest_capacity", "latest_db_stats", "latest_headroom", "latest_user_counts",
    "limiter_totals", "recent_runs", "rolled_totals", "user_count_series", "worker_series",
]

Time = float | int | datetime
#: Cloudflare D1's per-database limit, the plan's "10 GB" (Settings.db_limit_bytes by default).
D1_LIMIT_BYTES = 10 * 1024**3
_EVERYTHING = 10**12  # a bucket wider than any epoch second: one bucket for all time
_AI_TIME = {"hour", "day", "week", "month"}
_AI_DIMS = {"provider", "model", "task", "source"}


# --- helpers ------------------------------------------------------------------------

def _range(since: Time, until: Time) -> tuple[float, float]:
    lo, hi = epoch(since), epoch(until)
    if not hi > lo:
        raise ValueError(f"empty time range: until ({hi}) must be after since ({lo})")
    return lo, hi


def _width(lo: float, hi: float, bucket_s: int | None, minimum: int = 60) -> int:
    if bucket_s is None:
        return choose_bucket(lo, hi, minimum=minimum)
    if points(lo, hi, bucket_s) > MAX_POINTS:
        raise ValueError(f"a {bucket_s}s bucket over this range gives more than {MAX_POINTS} points per series; "
                         "pass a wider bucket_s or none")
    return max(bucket_s, minimum)


def _frame(conn: Connection, stmt: Any, bucket_s: int | None = None) -> pd.DataFrame:
    result = conn.execute(stmt)
    # Plain tuples: pandas probes SQLAlchemy Rows for namedtuple-ness, which costs more than the query.
    df = pd.DataFrame([tuple(r) for r in result], columns=list(result.keys()))
    if "bucket" in df.columns:
        df.insert(0, "ts", pd.to_datetime(df.pop("bucket").astype("float64"), unit="s", utc=True))
    if bucket_s is not None:
        df.attrs["bucket_s"] = bucket_s
    return df


def _times(df: pd.DataFrame, *cols: str) -> pd.DataFrame:
    for col in cols:
        df[col] = pd.to_datetime(df[col].astype("float64"), unit="s", utc=True)
    return df


def _watermarks(conn: Connection, table: str) -> dict[str, tuple[float, float]]:
    s = m.ROLLUP_STATE
    rows = conn.execute(select(s.c.source, s.c.rolled_until, s.c.pruned_before).where(s.c.table_name == table))
    return {r.source: (float(r.rolled_until), float(r.pruned_before)) for r in rows}


def _equal(table: Any, filters: Mapping[str, str | None]) -> list[Any]:
    return [table.c[k] == v for k, v in filters.items() if v is not None]


def _rolled(conn: Connection, rollup: Rollup, lo: float, hi: float, bucket_s: int | None,
            filters: Mapping[str, str | None], keys: Sequence[str] | None = None, *, align: bool = True,
            ) -> tuple[Any, int]:
    """The merged raw + hourly select for a rolled table, and the bucket width it uses."""
    marks = _watermarks(conn, rollup.name)
    if filters.get("source") is not None:
        marks = {s: w for s, w in marks.items() if s == filters["source"]}
    # Below an hour only raw rows have the resolution; once they are pruned, fall back to hours.
    pruned = max((p for _, p in marks.values()), default=0.0)
    width = _width(lo, hi, bucket_s, minimum=HOUR if lo < pruned else 60)
    start = (lo // width) * width if align else lo
    raw, hourly = rollup.raw, rollup.hourly
    raw_where = [raw.c.ts >= start, raw.c.ts < hi, *_equal(raw, filters)]
    if width < HOUR:
        return rollup.merged([rollup.from_raw(width, raw_where)], keys), width
    rolled = {s: w for s, (w, _) in marks.items()}
    chosen = filters.get("source")
    sources = [chosen] if chosen is not None else distinct_sources(conn, raw)
    others = _equal(raw, {k: v for k, v in filters.items() if k != "source"})
    parts = rollup.raw_tails(width, start, hi, others, sources, rolled)
    if rolled:
        parts.append(rollup.from_hourly(width, [hourly.c.hour >= start, hourly.c.hour < hi,
                                                *_equal(hourly, filters), rollup.hourly_before(rolled)]))
    if not parts:  # nothing in range: keep the result's shape
        parts = [rollup.from_raw(width, [false()])]
    return rollup.merged(parts, keys), width


# --- rate-limit headroom ----------------------------------------------------------------

def headroom_series(engine: Engine, since: Time, until: Time, *, source: str | None = None,
                    upstream: str | None = None, bucket_s: int | None = None) -> pd.DataFrame:
    """Limiter headroom per bucket, upstream and limiter key.

    Returns:
        Columns ``ts, source, upstream, limiter_key, samples, used_avg, used_max, limit,
        remaining_min, util_avg, util_max, cooldown_share, upstream_429, throttled,
        wait_seconds, rejected`` (counters summed over the bucket).
    """
    lo, hi = _range(since, until)
    with translate_errors(engine, "read headroom metrics"), engine.connect() as conn:
        stmt, width = _rolled(conn, HEADROOM, lo, hi, bucket_s, {"source": source, "upstream": upstream})
        df = _frame(conn, stmt, width)
    samples = df["samples"].where(df["samples"] > 0)
    df["used_avg"] = df.pop("used_sum") / samples
    df["util_avg"] = df.pop("util_sum") / samples
    df["cooldown_share"] = df.pop("cooldown_samples") / samples
    df = df.rename(columns={"limit_max": "limit"})
    return df[["ts", "source", "upstream", "limiter_key", "samples", "used_avg", "used_max", "limit",
               "remaining_min", "util_avg", "util_max", "cooldown_share", "upstream_429", "throttled",
               "wait_seconds", "rejected"]]


def limiter_totals(engine: Engine, since: Time, until: Time, *, source: str | None = None) -> pd.DataFrame:
    """Per (upstream, limiter key, source) over the range: samples, upstream 429s, peak share, throttled, rejected.

    THE figures behind "N upstream 429s, peak P%": the Rate limits page, the Overview and
    ``python -m scaling readiness`` all read them here, so they cannot disagree. Ranges of
    two days or more read hourly buckets (the roll-ups), shorter ones minutes.

    Returns:
        Columns ``upstream, limiter_key, source, samples, upstream_429, util_max, throttled,
        rejected, wait_seconds, limit``.
    """
    lo, hi = _range(since, until)
    # Hours (the roll-ups) from two days on, minutes below; wider still past MAX_POINTS hours (90 days).
    width = choose_bucket(lo, hi, minimum=int(HOUR) if hi - lo >= 2 * 86400 else 60)
    df = headroom_series(engine, lo, hi, source=source, bucket_s=width)
    keys = ["upstream", "limiter_key", "source"]
    return df.groupby(keys, as_index=False).agg(
        samples=("samples", "sum"), upstream_429=("upstream_429", "sum"), util_max=("util_max", "max"),
        throttled=("throttled", "sum"), rejected=("rejected", "sum"), wait_seconds=("wait_seconds", "sum"),
        limit=("limit", "max"))


def latest_headroom(engine: Engine, *, now: Time, max_age_s: float = 900.0, source: str | None = None) -> pd.DataFrame:
    """The newest sample of each (source, upstream, limiter key) from the last ``max_age_s`` seconds."""
    t = m.HEADROOM_SAMPLES
    since = epoch(now) - max_age_s
    newest = (select(t.c.source, t.c.upstream, t.c.limiter_key, func.max(t.c.ts).label("ts"))
              .where(t.c.ts >= since, *_equal(t, {"source": source}))
              .group_by(t.c.source, t.c.upstream, t.c.limiter_key).subquery())
    stmt = (select(t.c.ts, t.c.source, t.c.upstream, t.c.limiter_key, t.c.used, t.c.limit, t.c.remaining,
                   t.c.utilisation, t.c.in_cooldown, t.c.cooldown_until)
            .join(newest, and_(t.c.source == newest.c.source, t.c.upstream == newest.c.upstream,
                               t.c.limiter_key == newest.c.limiter_key, t.c.ts == newest.c.ts))
            .order_by(t.c.upstream, t.c.limiter_key, t.c.source))
    with translate_errors(engine, "read headroom metrics"), engine.connect() as conn:
        df = _frame(conn, stmt)
    df["in_cooldown"] = df["in_cooldown"].astype(bool)
    return _times(df, "ts")


def rolled_totals(engine: Engine, rollup: Rollup, *, source: str | None = None) -> pd.DataFrame:
    """All-time sums/maxima per key of a rolled table (roll-ups plus raw rows not yet rolled up)."""
    with translate_errors(engine, f"read {rollup.name} totals"), engine.connect() as conn:
        stmt, _ = _rolled(conn, rollup, 0.0, float(_EVERYTHING), _EVERYTHING, {"source": source})
        return _frame(conn, stmt).drop(columns="ts")


# --- cron -------------------------------------------------------------------------------------

def _outcome_counts(t: Any) -> list[Any]:
    return [cast(func.sum(case((t.c.outcome == o, 1), else_=0)), BigInteger).label(o)
            for o in ("ok", "failed", "timed_out", "skipped", "running")]


def job_runs(engine: Engine, job: str | None, since: Time, until: Time, *, source: str | None = None,
             bucket_s: int | None = None) -> pd.DataFrame:
    """Runs of a job (or of every job, when ``job`` is None) per bucket of scheduled time.

    Returns:
        Columns ``ts, job, source, runs, ok, failed, timed_out, skipped, running,
        duration_avg, duration_max, lateness_avg, lateness_max`` (seconds).
    """
    lo, hi = _range(since, until)
    width = _width(lo, hi, bucket_s)
    t = m.JOB_RUNS
    bucket = bucket_start(t.c.scheduled_at, width)
    stmt = (select(bucket.label("bucket"), t.c.job, t.c.source, func.count().label("runs"), *_outcome_counts(t),
                   func.avg(t.c.duration_s).label("duration_avg"), func.max(t.c.duration_s).label("duration_max"),
                   func.avg(t.c.lateness_s).label("lateness_avg"), func.max(t.c.lateness_s).label("lateness_max"))
            .where(t.c.scheduled_at >= (lo // width) * width, t.c.scheduled_at < hi,
                   *_equal(t, {"job": job, "source": source}))
            .group_by(bucket, t.c.job, t.c.source).order_by(bucket, t.c.job, t.c.source))
    with translate_errors(engine, "read job runs"), engine.connect() as conn:
        return _frame(conn, stmt, width)


def _percentiles(t: Any, column: str, where: list[Any], pcts: Sequence[int]) -> Any:
    """Nearest-rank percentiles per (job, source) with window functions (SQLite has no percentile_cont)."""
    col = t.c[column]
    ranked = (select(t.c.job, t.c.source, col.label("v"),
                     func.row_number().over(partition_by=(t.c.job, t.c.source), order_by=col).label("rn"),
                     func.count().over(partition_by=(t.c.job, t.c.source)).label("n"))
              .where(*where, col.is_not(None)).subquery())
    # ceil(n * p / 100) in integer arithmetic, identical on both backends.
    return select(ranked.c.job, ranked.c.source, *(
        func.max(case((ranked.c.rn == (ranked.c.n * p + 99) // 100, ranked.c.v))).label(f"{column}_p{p}")
        for p in pcts)).group_by(ranked.c.job, ranked.c.source)


def cron_summary(engine: Engine, since: Time, until: Time, *, source: str | None = None) -> pd.DataFrame:
    """One row per (job, source): run counts by outcome, p50/p95/max duration, lateness, last run.

    Returns:
        Columns ``job, source, runs, ok, failed, timed_out, skipped, running, duration_p50,
        duration_p95, duration_max, lateness_p95, lateness_max, last_scheduled_at, last_started_at,
        last_finished_at`` (lateness: started − scheduled; ages belong on the started/finished times).
    """
    lo, hi = _range(since, until)
    t = m.JOB_RUNS
    where = [t.c.scheduled_at >= lo, t.c.scheduled_at < hi, *_equal(t, {"source": source})]
    counts = (select(t.c.job, t.c.source, func.count().label("runs"), *_outcome_counts(t),
                     func.max(t.c.duration_s).label("duration_max"), func.max(t.c.lateness_s).label("lateness_max"),
                     func.max(t.c.scheduled_at).label("last_scheduled_at"),
                     func.max(t.c.started_at).label("last_started_at"),
                     func.max(t.c.finished_at).label("last_finished_at"))
              .where(*where).group_by(t.c.job, t.c.source))
    with translate_errors(engine, "read job runs"), engine.connect() as conn:
        df = _frame(conn, counts)
        durations = _frame(conn, _percentiles(t, "duration_s", where, (50, 95)))
        lateness = _frame(conn, _percentiles(t, "lateness_s", where, (95,)))
    df = df.merge(durations, on=["job", "source"], how="left").merge(lateness, on=["job", "source"], how="left")
    df = df.rename(columns={"duration_s_p50": "duration_p50", "duration_s_p95": "duration_p95",
                            "lateness_s_p95": "lateness_p95"})
    df = _times(df, "last_scheduled_at", "last_started_at", "last_finished_at")
    return df[["job", "source", "runs", "ok", "failed", "timed_out", "skipped", "running", "duration_p50",
               "duration_p95", "duration_max", "lateness_p95", "lateness_max", "last_scheduled_at",
               "last_started_at", "last_finished_at"]
              ].sort_values(["job", "source"], ignore_index=True)


def recent_runs(engine: Engine, *, job: str | None = None, source: str | None = None, limit: int = 50) -> pd.DataFrame:
    """The newest runs, with their error and JSON report, newest first (at most 2,000)."""
    t = m.JOB_RUNS
    stmt = (select(t.c.job, t.c.source, t.c.scheduled_at, t.c.started_at, t.c.finished_at, t.c.duration_s,
                   t.c.lateness_s, t.c.outcome, t.c.error, t.c.report, t.c.host)
            .where(*_equal(t, {"job": job, "source": source}))
            .order_by(t.c.scheduled_at.desc(), t.c.job).limit(min(limit, MAX_POINTS)))
    with translate_errors(engine, "read job runs"), engine.connect() as conn:
        return _times(_frame(conn, stmt), "scheduled_at", "started_at", "finished_at")


# --- database, users ----------------------------------------------------------------------------

def db_growth(engine: Engine, since: Time, until: Time, *, source: str | None = None,
              table_name: str | None = None, bucket_s: int | None = None) -> pd.DataFrame:
    """App-DB rows and bytes per bucket and table (the largest value seen in the bucket).

    Returns:
        Columns ``ts, source, table_name, rows, bytes``; ``table_name='*'`` is the whole DB.
    """
    lo, hi = _range(since, until)
    width = _width(lo, hi, bucket_s)
    t = m.DB_STATS
    bucket = bucket_start(t.c.ts, width)
    stmt = (select(bucket.label("bucket"), t.c.source, t.c.table_name, func.max(t.c.rows).label("rows"),
                   func.max(t.c.bytes).label("bytes"))
            .where(t.c.ts >= (lo // width) * width, t.c.ts < hi,
                   *_equal(t, {"source": source, "table_name": table_name}))
            .group_by(bucket, t.c.source, t.c.table_name).order_by(bucket, t.c.table_name, t.c.source))
    with translate_errors(engine, "read database metrics"), engine.connect() as conn:
        return _frame(conn, stmt, width)


def latest_db_stats(engine: Engine, *, source: str | None = None, limit_bytes: int = D1_LIMIT_BYTES) -> pd.DataFrame:
    """The newest rows/bytes of each table, with each table's share of the storage limit.

    Returns:
        Columns ``table_name, source, ts, rows, bytes, share_of_limit``; the ``'*'`` row
        is the whole database.
    """
    t = m.DB_STATS
    newest = (select(t.c.source, t.c.table_name, func.max(t.c.ts).label("ts"))
              .where(*_equal(t, {"source": source})).group_by(t.c.source, t.c.table_name).subquery())
    stmt = (select(t.c.table_name, t.c.source, t.c.ts, t.c.rows, t.c.bytes)
            .join(newest, and_(t.c.source == newest.c.source, t.c.table_name == newest.c.table_name,
                               t.c.ts == newest.c.ts))
            .order_by(t.c.table_name, t.c.source))
    with translate_errors(engine, "read database metrics"), engine.connect() as conn:
        df = _frame(conn, stmt)
    df["share_of_limit"] = df["bytes"].astype("float64") / limit_bytes
    return _times(df, "ts")


def user_count_series(engine: Engine, since: Time, until: Time, *, source: str | None = None,
                      bucket_s: int | None = None) -> pd.DataFrame:
    """User counts per bucket (the largest seen in the bucket): ``ts, source, total, with_lastfm, active``."""
    lo, hi = _range(since, until)
    width = _width(lo, hi, bucket_s)
    t = m.USER_COUNTS
    bucket = bucket_start(t.c.ts, width)
    stmt = (select(bucket.label("bucket"), t.c.source, func.max(t.c.total).label("total"),
                   func.max(t.c.with_lastfm).label("with_lastfm"), func.max(t.c.active).label("active"))
            .where(t.c.ts >= (lo // width) * width, t.c.ts < hi, *_equal(t, {"source": source}))
            .group_by(bucket, t.c.source).order_by(bucket, t.c.source))
    with translate_errors(engine, "read user counts"), engine.connect() as conn:
        return _frame(conn, stmt, width)


def latest_user_counts(engine: Engine, *, source: str | None = None) -> UserCounts | None:
    """The newest user-count sample (of ``source``, or of any source), or None if there is none."""
    t = m.USER_COUNTS
    stmt = (select(t.c.total, t.c.with_lastfm, t.c.active, t.c.ts, t.c.source)
            .where(*_equal(t, {"source": source})).order_by(t.c.ts.desc(), t.c.id.desc()).limit(1))
    with translate_errors(engine, "read user counts"), engine.connect() as conn:
        row = conn.execute(stmt).first()
    return None if row is None else UserCounts(int(row.total), int(row.with_lastfm), int(row.active),
                                               float(row.ts), row.source)


# --- cache, AI, worker ---------------------------------------------------------------------------------

def cache_series(engine: Engine, since: Time, until: Time, *, source: str | None = None,
                 family: str | None = None, bucket_s: int | None = None) -> pd.DataFrame:
    """Cache activity per bucket and key family.

    Returns:
        Columns ``ts, source, family, samples, hits, misses, hit_ratio, evictions, keys_max,
        bytes_max, oldest_age_max``.
    """
    lo, hi = _range(since, until)
    with translate_errors(engine, "read cache metrics"), engine.connect() as conn:
        stmt, width = _rolled(conn, CACHE, lo, hi, bucket_s, {"source": source, "family": family})
        df = _frame(conn, stmt, width)
    looked = (df["hits"] + df["misses"]).astype("float64")
    df.insert(6, "hit_ratio", df["hits"] / looked.where(looked > 0))
    return df


def cache_summary(engine: Engine, since: Time, until: Time, *, source: str | None = None) -> pd.DataFrame:
    """One row per (family, source) over the range: hits, misses, hit ratio, evictions, peak keys and bytes."""
    df = cache_series(engine, since, until, source=source)
    out = (df.groupby(["family", "source"], as_index=False)
           .agg(hits=("hits", "sum"), misses=("misses", "sum"), evictions=("evictions", "sum"),
                keys_max=("keys_max", "max"), bytes_max=("bytes_max", "max"), oldest_age_max=("oldest_age_max", "max")))
    looked = (out["hits"] + out["misses"]).astype("float64")
    out.insert(4, "hit_ratio", out["hits"] / looked.where(looked > 0))
    out.attrs = df.attrs
    return out


def ai_cost_by(engine: Engine, since: Time, until: Time,
               group_by: Sequence[str] = ("day", "provider", "model", "task"), *,
               source: str | None = None) -> pd.DataFrame:
    """AI calls, tokens and dollars grouped by a time unit and/or dimensions.

    Raw calls count when ``since <= ts < until``; rolled-up history counts by whole
    hours whose start is in the range. Both the dashboard and ``report costs`` use
    this one function.

    Args:
        group_by: any of "hour", "day", "week" (Monday-based), "month" (at most one
            of these) and "provider", "model", "task", "source"; empty for one total row.

    Returns:
        The group columns (time as ``ts``, tz-aware UTC) then ``calls, input_tokens,
        cached_input_tokens, output_tokens, reasoning_tokens, web_search_calls,
        cache_hits, saved_tokens, cost_usd, latency_ms_avg``.

    Raises:
        ValueError: an unknown or duplicate grouping, or hours over more than 2,000 hours.
    """
    lo, hi = _range(since, until)
    group_by = list(group_by)
    bad = [g for g in group_by if g not in _AI_TIME | _AI_DIMS]
    times = [g for g in group_by if g in _AI_TIME]
    if bad or len(times) > 1 or len(set(group_by)) != len(group_by):
        raise ValueError(f"group_by must be distinct names from {sorted(_AI_TIME)} (at most one) and "
                         f"{sorted(_AI_DIMS)}; got {group_by}")
    unit = times[0] if times else None
    width = HOUR if unit == "hour" else 86400
    if unit == "hour" and points(lo, hi, HOUR) > MAX_POINTS:
        raise ValueError(f"group_by 'hour' over {points(lo, hi, HOUR)} hours exceeds {MAX_POINTS} points; use 'day'")
    with translate_errors(engine, "read AI usage"), engine.connect() as conn:
        stmt, _ = _rolled(conn, AI, lo, hi, width, {"source": source}, align=False)
        df = _frame(conn, stmt)
    if unit == "week":
        df["ts"] = (df["ts"].dt.tz_localize(None).dt.to_period("W-SUN").dt.start_time).dt.tz_localize("UTC")
    elif unit == "month":
        df["ts"] = (df["ts"].dt.tz_localize(None).dt.to_period("M").dt.start_time).dt.tz_localize("UTC")
    keys = (["ts"] if unit else []) + [g for g in group_by if g in _AI_DIMS]
    measures = ["calls", "input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens",
                "web_search_calls", "cache_hits", "saved_tokens", "cost_usd", "latency_ms_sum"]
    if keys:
        out = df.groupby(keys, as_index=False, sort=True)[measures].sum()
    else:
        out = pd.DataFrame([{c: df[c].sum() if len(df) else 0 for c in measures}])
    calls = out["calls"].astype("float64")
    out["latency_ms_avg"] = out.pop("latency_ms_sum") / calls.where(calls > 0)
    return out.reset_index(drop=True)


def worker_series(engine: Engine, since: Time, until: Time, *, source: str | None = None,
                  bucket_s: int | None = None) -> pd.DataFrame:
    """Worker invocations per bucket, event type, outcome and cron, with wall/CPU time and exceptions."""
    lo, hi = _range(since, until)
    with translate_errors(engine, "read worker metrics"), engine.connect() as conn:
        stmt, width = _rolled(conn, WORKER, lo, hi, bucket_s, {"source": source})
        df = _frame(conn, stmt, width)
    events = df["events"].astype("float64").where(df["events"] > 0)
    df["wall_ms_avg"] = df.pop("wall_ms_sum") / events
    df["cpu_ms_avg"] = df.pop("cpu_ms_sum") / events
    return df


# --- capacity ------------------------------------------------------------------------------------------

def latest_capacity(engine: Engine, *, design: str | None = None, source: str | None = None) -> CapacityRecord | None:
    """The newest stored capacity search (of ``design`` / ``source``, or any), or None if none ran yet."""
    t = m.CAPACITY_RESULTS
    stmt = (select(t).where(*_equal(t, {"design": design, "source": source}))
            .order_by(t.c.computed_at.desc(), t.c.id.desc()).limit(1))
    with translate_errors(engine, "read capacity results"), engine.connect() as conn:
        row = conn.execute(stmt).mappings().first()
    if row is None:
        return None

    def _json(text: Any) -> dict[str, Any]:
        try:
            value = json.loads(text) if text else {}
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}

    return CapacityRecord(
        design=str(row["design"]), time_model=str(row["time_model"]), active_share=float(row["active_share"]),
        users_carried=int(row["users_carried"]),
        broken_at=None if row["broken_at"] is None else int(row["broken_at"]),
        first_break_limit=row["first_break_limit"], first_break_detail=row["first_break_detail"],
        ai_usd_month=None if row["ai_usd_month"] is None else float(row["ai_usd_month"]),
        platform_usd_month=None if row["platform_usd_month"] is None else float(row["platform_usd_month"]),
        trial_hours=float(row["trial_hours"]), wall_s=float(row["wall_s"]), trials=_json(row["trials"]),
        provenance={str(k): str(v) for k, v in _json(row["provenance"]).items()},
        computed_at=float(row["computed_at"]), source=str(row["source"]))


# --- alerts --------------------------------------------------------------------------------------------

def alerts(engine: Engine, since: Time, *, state: str | None = None, source: str | None = None) -> pd.DataFrame:
    """Alert incidents that started at or after ``since``, plus any still firing, newest first (≤ 2,000).

    Returns:
        Columns ``id, source, rule, subject, severity, state, started_at, resolved_at,
        value, threshold, message, delivered``.
    """
    t = m.ALERT_EVENTS
    lo = epoch(since)
    stmt = (select(t.c.id, t.c.source, t.c.rule, t.c.subject, t.c.severity, t.c.state, t.c.started_at,
                   t.c.resolved_at, t.c.value, t.c.threshold, t.c.message, t.c.delivered)
            .where((t.c.started_at >= lo) | (t.c.state == "firing"), *_equal(t, {"state": state, "source": source}))
            .order_by(t.c.started_at.desc(), t.c.id.desc()).limit(MAX_POINTS))
    with translate_errors(engine, "read alerts"), engine.connect() as conn:
        df = _frame(conn, stmt)
    df["delivered"] = df["delivered"].astype(bool)
    return _times(df, "started_at", "resolved_at")
