"""The metrics DB schema: what collectors write and the dashboard reads.

Time is **epoch seconds (UTC) as DOUBLE PRECISION** in every table. It sorts and
compares as a number on SQLite and PostgreSQL alike, indexes compactly, and a time
bucket is plain arithmetic (`scaling.metrics.buckets.bucket_start`), with no
date functions that differ between the two backends.

Counters in a sample (429s, throttled calls, cache hits, ...) are **deltas over
the interval since the previous sample**, so any time bucket is a plain SUM;
gauges (used, remaining, keys, bytes, users) are values at ``ts``.

Every row carries ``source``: ``"collectors"`` for what Headroom's own collectors
measure, ``"worker"`` for what is ingested from the production Worker's logs,
``"demo"`` for generated history. Raw tables that grow per minute or per call have
an ``*_hourly`` roll-up (see `scaling.metrics.retention`); ``rollup_state`` records
per (table, source) how far raw rows have been rolled up and pruned.

Raw tables are indexed on ``ts`` (time-range scans across sources) and on
``(source, ts)``: queries read each source's raw rows from its own roll-up
watermark on, and the distinct sources are found by seeking that index.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Double,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    text,
)

__all__ = [
    "AI_USAGE",
    "AI_USAGE_HOURLY",
    "ALERT_EVENTS",
    "CACHE_HOURLY",
    "CACHE_STATS",
    "CAPACITY_RESULTS",
    "CLOUDFLARE_CRON_RUNS",
    "CLOUDFLARE_D1_DATABASES",
    "CLOUDFLARE_USAGE",
    "CLOUDFLARE_WATERMARKS",
    "DB_STATS",
    "HEADROOM_HOURLY",
    "HEADROOM_SAMPLES",
    "INGESTED_EVENTS",
    "JOB_OUTCOMES",
    "JOB_RUNS",
    "ROLLUP_STATE",
    "USER_COUNTS",
    "WORKER_EVENTS",
    "WORKER_HOURLY",
    "metadata",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

#: Job outcomes; "running" is the claimed-but-unfinished state.
JOB_OUTCOMES: tuple[str, ...] = ("running", "ok", "failed", "timed_out", "skipped")
ALERT_STATES: tuple[str, ...] = ("firing", "resolved")

# SQLite only makes INTEGER PRIMARY KEY an alias of the rowid (auto-increment).
_ID = BigInteger().with_variant(Integer(), "sqlite")
_SOURCE_DEFAULT = text("'collectors'")


def _id() -> Column[int]:
    return Column("id", _ID, primary_key=True, autoincrement=True)


def _ts(name: str = "ts", *, primary_key: bool = False) -> Column[float]:
    return Column(name, Double(), nullable=False, primary_key=primary_key)


def _source() -> Column[str]:
    return Column("source", Text(), nullable=False, server_default=_SOURCE_DEFAULT)


def _count(name: str) -> Column[int]:
    return Column(name, BigInteger(), nullable=False, server_default=text("0"))


def _num(name: str) -> Column[float]:
    return Column(name, Double(), nullable=False, server_default=text("0"))


# --- raw samples ---------------------------------------------------------------

HEADROOM_SAMPLES = Table(
    "headroom_samples", metadata,
    _id(), _ts(), _source(),
    Column("upstream", Text(), nullable=False),
    Column("limiter_key", Text(), nullable=False, server_default=text("''")),
    Column("used", Double(), nullable=False),
    Column("limit", Double(), nullable=False),
    Column("remaining", Double(), nullable=False),
    Column("utilisation", Double(), nullable=False),
    Column("in_cooldown", Boolean(), nullable=False, server_default=text("false")),
    Column("cooldown_until", Double(), nullable=True),
    _count("upstream_429"), _count("throttled"), _num("wait_seconds"), _count("rejected"),
    Index(None, "ts"),
    Index(None, "source", "ts"),
)

JOB_RUNS = Table(
    "job_runs", metadata,
    _id(),
    Column("job", Text(), nullable=False),
    Column("scheduled_at", Double(), nullable=False),
    _source(),
    Column("started_at", Double(), nullable=False),
    Column("finished_at", Double(), nullable=True),
    Column("duration_s", Double(), nullable=True),
    Column("lateness_s", Double(), nullable=False, server_default=text("0")),
    Column("outcome", Text(), nullable=False),
    Column("error", Text(), nullable=True),
    Column("report", Text(), nullable=True),  # the job's own JSON report
    Column("host", Text(), nullable=True),
    # The collectors' exactly-once guard: one row per scheduled slot per source.
    UniqueConstraint("job", "scheduled_at", "source"),
    CheckConstraint("outcome IN ('running', 'ok', 'failed', 'timed_out', 'skipped')", name="outcome"),
    Index(None, "scheduled_at"),
)

DB_STATS = Table(
    "db_stats", metadata,
    _id(), _ts(), _source(),
    Column("table_name", Text(), nullable=False),  # '*' is the whole database
    Column("rows", BigInteger(), nullable=False),
    Column("bytes", BigInteger(), nullable=True),  # None when the backend cannot tell
    Index(None, "ts"),
    Index(None, "source", "table_name", "ts"),
)

CACHE_STATS = Table(
    "cache_stats", metadata,
    _id(), _ts(), _source(),
    Column("family", Text(), nullable=False),
    _count("hits"), _count("misses"), _count("keys"), _count("bytes"), _count("evictions"),
    Column("oldest_age_s", Double(), nullable=True),
    Index(None, "ts"),
    Index(None, "source", "ts"),
)

AI_USAGE = Table(
    "ai_usage", metadata,
    _id(), _ts(), _source(),
    Column("provider", Text(), nullable=False),
    Column("model", Text(), nullable=False),
    Column("task", Text(), nullable=False),
    _count("input_tokens"), _count("cached_input_tokens"), _count("output_tokens"),
    _count("reasoning_tokens"), _count("web_search_calls"),
    _num("latency_ms"),
    Column("cache_hit", Boolean(), nullable=False, server_default=text("false")),
    _num("cost_usd"), _count("saved_tokens"),
    Column("price_version", Text(), nullable=True),
    Index(None, "ts"),
    Index(None, "source", "ts"),
)

USER_COUNTS = Table(
    "user_counts", metadata,
    _id(), _ts(), _source(),
    Column("total", BigInteger(), nullable=False),
    Column("with_lastfm", BigInteger(), nullable=False),
    Column("active", BigInteger(), nullable=False),
    Index(None, "ts"),
    Index(None, "source", "ts"),
)

ALERT_EVENTS = Table(
    "alert_events", metadata,
    _id(), _source(),
    Column("rule", Text(), nullable=False),
    Column("subject", Text(), nullable=False, server_default=text("''")),  # e.g. the upstream
    Column("severity", Text(), nullable=False),
    Column("state", Text(), nullable=False),
    Column("started_at", Double(), nullable=False),
    Column("resolved_at", Double(), nullable=True),
    Column("value", Double(), nullable=True),
    Column("threshold", Double(), nullable=True),
    Column("message", Text(), nullable=False, server_default=text("''")),
    Column("delivered", Boolean(), nullable=False, server_default=text("false")),
    CheckConstraint("state IN ('firing', 'resolved')", name="state"),
    Index(None, "started_at"),
    Index(None, "rule", "subject", "state"),
)

WORKER_EVENTS = Table(
    "worker_events", metadata,
    _id(), _ts(), _source(),
    Column("event_type", Text(), nullable=False),  # fetch, scheduled, queue, ...
    Column("outcome", Text(), nullable=False),  # ok, exception, exceededCpu, ...
    Column("cron", Text(), nullable=False, server_default=text("''")),
    _num("wall_ms"), _num("cpu_ms"), _count("exceptions"),
    Index(None, "ts"),
    Index(None, "source", "ts"),
)

# Tail events already ingested (`scaling.ingest`), so feeding the same capture twice adds nothing.
INGESTED_EVENTS = Table(
    "ingested_events", metadata,
    Column("source", Text(), primary_key=True),
    Column("event_key", Text(), primary_key=True),  # hash of the event's canonical JSON
    _ts(),  # the event's own time, so old keys can be dropped along with the rows they guard
    Index(None, "ts"),
)

# --- hourly roll-ups: ``hour`` is the bucket start (epoch seconds) and leads the
# primary key, which is therefore also the time index ---------------------------

HEADROOM_HOURLY = Table(
    "headroom_hourly", metadata,
    _ts("hour", primary_key=True),
    Column("source", Text(), primary_key=True),
    Column("upstream", Text(), primary_key=True),
    Column("limiter_key", Text(), primary_key=True),
    _count("samples"), _num("used_sum"), _num("used_max"), _num("limit_max"), _num("remaining_min"),
    _num("util_sum"), _num("util_max"), _count("cooldown_samples"),
    _count("upstream_429"), _count("throttled"), _num("wait_seconds"), _count("rejected"),
)

CACHE_HOURLY = Table(
    "cache_hourly", metadata,
    _ts("hour", primary_key=True),
    Column("source", Text(), primary_key=True),
    Column("family", Text(), primary_key=True),
    _count("samples"), _count("hits"), _count("misses"), _count("evictions"),
    _count("keys_max"), _count("bytes_max"), _num("oldest_age_max"),
)

AI_USAGE_HOURLY = Table(
    "ai_usage_hourly", metadata,
    _ts("hour", primary_key=True),
    Column("source", Text(), primary_key=True),
    Column("provider", Text(), primary_key=True),
    Column("model", Text(), primary_key=True),
    Column("task", Text(), primary_key=True),
    _count("calls"), _count("input_tokens"), _count("cached_input_tokens"), _count("output_tokens"),
    _count("reasoning_tokens"), _count("web_search_calls"), _count("cache_hits"),
    _num("latency_ms_sum"), _num("latency_ms_max"), _num("cost_usd"), _count("saved_tokens"),
)

WORKER_HOURLY = Table(
    "worker_hourly", metadata,
    _ts("hour", primary_key=True),
    Column("source", Text(), primary_key=True),
    Column("event_type", Text(), primary_key=True),
    Column("outcome", Text(), primary_key=True),
    Column("cron", Text(), primary_key=True),
    _count("events"), _num("wall_ms_sum"), _num("wall_ms_max"), _num("cpu_ms_sum"), _num("cpu_ms_max"),
    _count("exceptions"),
)

ROLLUP_STATE = Table(
    "rollup_state", metadata,
    Column("table_name", Text(), primary_key=True),
    Column("source", Text(), primary_key=True),
    # Raw rows with ts < rolled_until are in the hourly table; queries read those from there.
    Column("rolled_until", Double(), nullable=False),
    # Raw rows with ts < pruned_before may be gone; minute-resolution queries stop here.
    Column("pruned_before", Double(), nullable=False, server_default=text("0")),
)

# --- Cloudflare (source "cloudflare"): what the production account's APIs report -----------------
# Re-pulling an overlapping window rewrites the same keys: late data corrects a row, never adds one.

CLOUDFLARE_USAGE = Table(
    "cloudflare_usage", metadata,
    Column("source", Text(), primary_key=True),
    Column("dataset", Text(), primary_key=True),    # workersInvocationsAdaptive, d1AnalyticsAdaptiveGroups, ...
    Column("subject", Text(), primary_key=True),    # script name, D1 database id or KV namespace id
    Column("dimension", Text(), primary_key=True),  # status or actionType; '' when none
    Column("metric", Text(), primary_key=True),     # requests, rows_read, cpu_time_p50_us, ...
    _ts("ts", primary_key=True),                    # start of the dataset's bucket (5 min or a day)
    Column("bucket_s", Double(), nullable=False),
    Column("value", Double(), nullable=False),
    Column("pulled_at", Double(), nullable=False),
)
Index("ix_cloudflare_usage_ts", CLOUDFLARE_USAGE.c.ts)

CLOUDFLARE_CRON_RUNS = Table(
    "cloudflare_cron_runs", metadata,
    Column("source", Text(), primary_key=True),
    Column("script", Text(), primary_key=True),
    Column("cron", Text(), primary_key=True),
    _ts("scheduled_ts", primary_key=True),
    _ts("ts"),
    Column("status", Text(), nullable=False),
    Column("cpu_time_us", Double(), nullable=True),
    Column("pulled_at", Double(), nullable=False),
)
Index("ix_cloudflare_cron_runs_ts", CLOUDFLARE_CRON_RUNS.c.ts)

CLOUDFLARE_D1_DATABASES = Table(
    "cloudflare_d1_databases", metadata,
    Column("source", Text(), primary_key=True),
    Column("database_id", Text(), primary_key=True),
    Column("name", Text(), nullable=False, server_default=text("''")),
    Column("file_size_bytes", BigInteger(), nullable=True),
    Column("read_replication_mode", Text(), nullable=True),
    Column("running_in_region", Text(), nullable=True),
    Column("pulled_at", Double(), nullable=False),
)

CLOUDFLARE_WATERMARKS = Table(
    "cloudflare_watermarks", metadata,
    Column("source", Text(), primary_key=True),
    Column("dataset", Text(), primary_key=True),
    Column("subject", Text(), primary_key=True),
    # Everything before pulled_until has been pulled at least once; the next run re-pulls an overlap.
    Column("pulled_until", Double(), nullable=False),
    Column("updated_at", Double(), nullable=False),
)

# --- capacity (`scaling.capacity.capacity_results`): one row per capacity search ----------------------
# A bisection takes minutes, so the collectors' daily job (or ``simulate --capacity``) stores its answer
# and the Overview reads the newest row.

CAPACITY_RESULTS = Table(
    "capacity_results", metadata,
    _id(),
    Column("computed_at", Double(), nullable=False),
    _source(),
    Column("design", Text(), nullable=False),
    Column("time_model", Text(), nullable=False),
    Column("active_share", Double(), nullable=False),
    Column("users_carried", BigInteger(), nullable=False),
    Column("broken_at", BigInteger(), nullable=True),        # the next size tried, where first_break broke
    Column("first_break_limit", Text(), nullable=True),      # None: nothing broke up to the search's ceiling
    Column("first_break_detail", Text(), nullable=True),
    Column("ai_usd_month", Double(), nullable=True),         # steady state, at users_carried
    Column("platform_usd_month", Double(), nullable=True),
    Column("trial_hours", Double(), nullable=False),
    Column("wall_s", Double(), nullable=False, server_default=text("0")),
    Column("trials", Text(), nullable=False, server_default=text("'{}'")),      # JSON: users -> limit or null
    Column("provenance", Text(), nullable=False, server_default=text("'{}'")),  # JSON: input -> where from
    Index(None, "computed_at"),
)
