"""What the metrics DB says about each scaling-plan item, as plain numbers.

`gather_evidence` reads the metrics DB once and returns an `Evidence`: frozen
dataclasses of counts, ages, percentiles and forecasts, no DataFrames and no
engine. `scaling.capacity.readiness.assess` judges it; tests build `Evidence`
by hand to exercise each rule without a database.

Windows: limiter headroom, caches, AI requests and alerts over the last 7 days;
job outcomes and the prewarm cron's reports over the last 24 hours; user, DB and
spend forecasts over the last 90 / 90 / 60 days. Everything is as of ``now``, so
``--at`` can replay a past moment of recorded history.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import Engine, func, select

from scaling.capacity.cron_model import CONCURRENCY
from scaling.capacity.forecast import forecast_db_bytes, forecast_monthly_ai_spend, forecast_users
from scaling.capacity.trend import DAY
from scaling.cloudflare.evidence import CloudflareEvidence, cloudflare_evidence
from scaling.metrics import models as m
from scaling.metrics import queries as q
from scaling.metrics.db import translate_errors
from scaling.settings import Settings

__all__ = ["FORECAST_DAYS", "CronEvidence", "Evidence", "JobEvidence", "LimiterEvidence", "gather_evidence"]

HOUR = 3600.0
#: The user forecast's horizon: "which phase will be required in this many days".
FORECAST_DAYS = 90
#: Spotify's batch album endpoint takes this many ids per call.
SPOTIFY_BATCH = 20
_BREAKER_WORDS = ("breaker", "circuit")


@dataclass(frozen=True, slots=True)
class LimiterEvidence:
    """One upstream's limiters (all keys together) over 7 days."""

    samples: int = 0
    upstream_429: int = 0
    peak_utilisation: float = 0.0
    throttled: int = 0
    rejected: int = 0


@dataclass(frozen=True, slots=True)
class JobEvidence:
    """One scheduled job: outcomes and durations over 24 hours, and how long ago it last ran."""

    runs_24h: int = 0
    ok_24h: int = 0
    failed_24h: int = 0
    timed_out_24h: int = 0
    skipped_24h: int = 0
    duration_p50_s: float | None = None
    duration_p95_s: float | None = None
    last_run_age_s: float | None = None
    last_ok_age_s: float | None = None


@dataclass(frozen=True, slots=True)
class CronEvidence:
    """The prewarm cron's own reports over 24 hours (medians per run unless noted).

    Attributes:
        reports: runs whose report could be read.
        polled: users polled per run; ``wanted`` adds the users the deadline cut off.
        users: users the run knew of.
        active_skipped: active users not reached, summed over the runs.
        wave_p95_s: p95 time of one wave of ``concurrency`` parallel Last.fm calls
            (the Last.fm phase, or the whole run, divided by ⌈polled / 6⌉).
        overhead_p95_s: p95 of the run's time outside the Last.fm phase.
        spotify_calls, refreshed: summed; None when the reports do not count Spotify calls.
        batched_min_calls: Σ ⌈refreshed / 20⌉, the fewest Spotify calls batching allows.
    """

    reports: int = 0
    polled: float | None = None
    wanted: float | None = None
    users: float | None = None
    active_skipped: int = 0
    wave_p95_s: float | None = None
    overhead_p95_s: float | None = None
    spotify_calls: int | None = None
    refreshed: int = 0
    batched_min_calls: int = 0


@dataclass(frozen=True, slots=True)
class Evidence:
    """Everything the readiness rules look at, as of ``now`` (ages in seconds before ``now``).

    Attributes:
        source: which metrics source the numbers come from (None: no data at all).
        users_trend: the user trend in words, or why there is none.
        users_forecast, users_forecast_high: users `FORECAST_DAYS` ahead (point, upper band).
        next_trigger_*: the next trigger's user count and when the trend crosses it.
        limiters: upstream → its limiters over 7 days.
        headroom_age_s: age of the newest limiter sample.
        jobs: job name → outcomes over 24 hours.
        cleanup_rows_deleted: rows the newest successful cleanup report says it deleted.
        db_bytes, db_full_in_days: the app DB now, and days until its trend reaches the
            configured limit (None: not at this trend).
        cache_*: cache families over 7 days (bytes: the sum of each family's peak).
        ai_*: AI requests (calls plus cache hits) over 7 days; spend this month per provider.
        breaker_*: alert events from breaker rules over 7 days.
        window_s: the range the "7 days" and "24 h" figures above were read over (the dashboard's
            picked range, or 7 days / 24 h from the CLI by default); names above keep their suffix.
        data_span_s: how long the source has been recording (now − its first headroom sample).
    """

    now: float
    source: str | None = None
    users_total: int | None = None
    users_with_lastfm: int | None = None
    users_active: int | None = None
    users_trend: str = ""
    users_forecast: float | None = None
    users_forecast_high: float | None = None
    next_trigger_users: int | None = None
    next_trigger_at: float | None = None
    next_trigger_earliest: float | None = None
    next_trigger_latest: float | None = None
    limiters: Mapping[str, LimiterEvidence] = field(default_factory=dict)
    headroom_age_s: float | None = None
    jobs: Mapping[str, JobEvidence] = field(default_factory=dict)
    cleanup_rows_deleted: int | None = None
    cron: CronEvidence = CronEvidence()
    db_bytes: float | None = None
    db_full_in_days: float | None = None
    cache_hits: int = 0
    cache_misses: int = 0
    cache_evictions: int = 0
    cache_bytes: float | None = None
    cache_age_s: float | None = None
    ai_requests_7d: int = 0
    ai_cache_hits_7d: int = 0
    ai_saved_tokens_7d: int = 0
    ai_age_s: float | None = None
    ai_spend_mtd: Mapping[str, float] = field(default_factory=dict)
    ai_spend_projected: Mapping[str, float] = field(default_factory=dict)
    breaker_opens_7d: int = 0
    breakers_open: int = 0
    breaker_open_longest_s: float | None = None
    alerts_firing: int = 0
    window_s: float = 7 * DAY
    data_span_s: float | None = None
    #: The production account's numbers from the cloudflare collector (None: none collected).
    cloudflare: CloudflareEvidence | None = None

    @property
    def is_empty(self) -> bool:
        """True when the metrics DB held nothing at all up to ``now``."""
        return self.source is None


# --- gathering ---------------------------------------------------------------------------

_TIMED = ((m.USER_COUNTS, "ts"), (m.HEADROOM_SAMPLES, "ts"), (m.JOB_RUNS, "scheduled_at"), (m.DB_STATS, "ts"),
          (m.AI_USAGE, "ts"), (m.CACHE_STATS, "ts"))


def _pick_source(engine: Engine, now: float, only: str | None) -> str | None:
    """The source with the newest row at or before ``now`` (separate sources are separate histories);
    None if there is none (of source ``only``, when given)."""
    best: tuple[float, str] | None = None
    with translate_errors(engine, "read metrics"), engine.connect() as conn:
        for table, col in _TIMED:
            stmt = (select(table.c.source, func.max(table.c[col]))
                    .where(table.c[col] <= now, *([table.c.source == only] if only else []))
                    .group_by(table.c.source))
            for source, ts in conn.execute(stmt):
                if ts is not None and (best is None or (float(ts), source) > best):
                    best = (float(ts), source)
    return None if best is None else best[1]


def _age(engine: Engine, table: Any, now: float, source: str, hourly: Any = None) -> float | None:
    """Seconds since ``table``'s newest row at or before ``now`` (rolled-up hours count from their end)."""
    stmt = select(func.max(table.c.ts)).where(table.c.ts <= now, table.c.source == source)
    with translate_errors(engine, f"read {table.name}"), engine.connect() as conn:
        newest = conn.execute(stmt).scalar()
        if newest is None and hourly is not None:  # raw rows already pruned: the roll-ups remain
            hour = conn.execute(select(func.max(hourly.c.hour)).where(hourly.c.hour <= now,
                                                                       hourly.c.source == source)).scalar()
            newest = None if hour is None else min(float(hour) + HOUR, now)
    return None if newest is None else now - float(newest)


def _latest_users(engine: Engine, now: float, source: str) -> Any:
    t = m.USER_COUNTS
    stmt = (select(t.c.total, t.c.with_lastfm, t.c.active).where(t.c.ts <= now, t.c.source == source)
            .order_by(t.c.ts.desc(), t.c.id.desc()).limit(1))
    with translate_errors(engine, "read user counts"), engine.connect() as conn:
        return conn.execute(stmt).first()


def _epochs(column: pd.Series) -> pd.Series:
    return pd.Series([x.timestamp() if pd.notna(x) else math.nan for x in column], index=column.index,
                     dtype="float64")


def _breakers(engine: Engine, now: float, source: str, window_s: float = 7 * DAY,
              ) -> tuple[int, int, float | None, int]:
    """Breaker incidents in the window, how many are open at ``now``, the longest open time, all alerts firing."""
    events = q.alerts(engine, now - window_s, source=source)
    started, resolved = _epochs(events["started_at"]), _epochs(events["resolved_at"])
    events = events[started <= now]
    started, resolved = started[events.index], resolved[events.index]
    firing = resolved.isna() | (resolved > now)
    breaker = events["rule"].astype(str).str.lower().str.contains("|".join(_BREAKER_WORDS))
    open_for = (resolved.where(~firing, now) - started)[breaker]
    return (int(breaker.sum()), int((breaker & firing).sum()), float(open_for.max()) if len(open_for) else None,
            int(firing.sum()))


def _number(report: Mapping[str, Any], *keys: str) -> float | None:
    for key in keys:
        value = report.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


def _rows_deleted(report: Mapping[str, Any]) -> int | None:
    """Cleanup reports say ``total_deleted`` (CleanupReport) or ``<table>Deleted`` per table (demo, Worker)."""
    total = _number(report, "total_deleted")
    if total is None and isinstance(report.get("deleted"), Mapping):
        total = sum(v for v in report["deleted"].values() if isinstance(v, (int, float)))
    if total is None:
        parts = [v for k, v in report.items() if k.endswith("Deleted") and isinstance(v, (int, float))]
        total = sum(parts) if parts else None
    return None if total is None else int(total)


def _reports(engine: Engine, job: str, since: float, now: float, source: str,
             outcomes: tuple[str, ...] = ("ok", "timed_out"), limit: int | None = None,
             ) -> list[tuple[dict[str, Any], float | None]]:
    """(report, duration) of a job's runs in [since, now], newest first."""
    t = m.JOB_RUNS
    stmt = (select(t.c.report, t.c.duration_s)
            .where(t.c.job == job, t.c.source == source, t.c.scheduled_at >= since, t.c.scheduled_at <= now,
                   t.c.outcome.in_(outcomes), t.c.report.is_not(None))
            .order_by(t.c.scheduled_at.desc()).limit(limit))
    with translate_errors(engine, "read job reports"), engine.connect() as conn:
        rows = conn.execute(stmt).all()
    out = []
    for report, duration in rows:
        try:
            data = json.loads(report)
        except (TypeError, ValueError):
            continue  # a report we cannot read is no evidence either way
        if isinstance(data, dict):
            out.append((data, None if duration is None else float(duration)))
    return out


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]  # nearest rank, as the metrics queries do


def _cron(reports: list[tuple[dict[str, Any], float | None]], concurrency: int) -> CronEvidence:
    polled, wanted, users, waves, overheads = [], [], [], [], []
    active_skipped, refreshed, batched, spotify = 0, 0, 0, None
    for report, duration in reports:
        n = _number(report, "polled", "fetched")
        skipped = _number(report, "skipped") or 0.0
        total = _number(report, "users_total", "users")
        if n is not None:
            polled.append(n)
            wanted.append(n + skipped)
        if total is not None:
            users.append(total)
        active_skipped += int(_number(report, "active_skipped") or 0)
        raw_phases = report.get("phase_s")
        phases: Mapping[str, Any] = raw_phases if isinstance(raw_phases, Mapping) else {}
        lastfm = _number(phases, "lastfm")
        busy = lastfm if lastfm is not None else duration
        if n and busy is not None:
            waves.append(busy / math.ceil(n / concurrency))
            if duration is not None:
                overheads.append(max(0.0, duration - busy))
        calls = report.get("upstream_calls")
        if isinstance(calls, Mapping) and _number(calls, "spotify") is not None:
            got = int(_number(report, "refreshed") or 0)
            spotify = (spotify or 0) + int(_number(calls, "spotify") or 0)
            refreshed += got
            batched += math.ceil(got / SPOTIFY_BATCH)
    med = statistics.median
    return CronEvidence(len(reports), med(polled) if polled else None, med(wanted) if wanted else None,
                        med(users) if users else None, active_skipped, _p95(waves), _p95(overheads), spotify,
                        refreshed, batched)


def _jobs(engine: Engine, now: float, source: str, window_s: float = DAY) -> dict[str, JobEvidence]:
    summary = q.cron_summary(engine, now - window_s, now + 1e-6, source=source)
    t = m.JOB_RUNS
    # Ages run from when a run ended (or started, while running), never from its scheduled slot:
    # a late run that finished 2 min ago is 2 min old.
    ended = func.coalesce(t.c.finished_at, t.c.started_at)
    last = select(t.c.job, func.max(ended).label("any_run"),
                  func.max(ended).filter(t.c.outcome == "ok").label("ok_run"),
                  ).where(ended <= now, t.c.source == source).group_by(t.c.job)
    with translate_errors(engine, "read job runs"), engine.connect() as conn:
        ages = {r.job: (r.any_run, r.ok_run) for r in conn.execute(last)}
    rows = {r.job: r for r in summary.itertuples()}
    out = {}
    for job, (any_run, ok_run) in sorted(ages.items()):
        r = rows.get(job)
        counts: dict[str, Any] = {} if r is None else {
            "runs_24h": int(r.runs), "ok_24h": int(r.ok), "failed_24h": int(r.failed),
            "timed_out_24h": int(r.timed_out), "skipped_24h": int(r.skipped),
            "duration_p50_s": _finite(r.duration_p50), "duration_p95_s": _finite(r.duration_p95)}
        out[job] = JobEvidence(**counts, last_run_age_s=now - float(any_run),
                               last_ok_age_s=None if ok_run is None else now - float(ok_run))
    return out


def _finite(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _first_sample(engine: Engine, source: str) -> float | None:
    with translate_errors(engine, "read headroom metrics"), engine.connect() as conn:
        raw = conn.execute(select(func.min(m.HEADROOM_SAMPLES.c.ts))
                           .where(m.HEADROOM_SAMPLES.c.source == source)).scalar()
        hourly = conn.execute(select(func.min(m.HEADROOM_HOURLY.c.hour))
                              .where(m.HEADROOM_HOURLY.c.source == source)).scalar()
    found = [float(x) for x in (raw, hourly) if x is not None]
    return min(found) if found else None


def gather_evidence(engine: Engine, *, now: float, settings: Settings, source: str | None = None,
                    concurrency: int = CONCURRENCY, window_s: float | None = None) -> Evidence:
    """Read what the readiness rules need from the metrics DB, as of ``now``.

    Args:
        engine: the metrics DB.
        now: the moment to assess (epoch seconds); later rows are ignored.
        settings: the DB limit and AI budgets.
        source: which metrics source to read; default: the one with the newest data. An
            `Evidence` with ``is_empty`` comes back when there is no data (of that source) by ``now``.
        concurrency: parallel Last.fm calls per cron run (Workers allow 6 connections).
        window_s: read limiters, caches, AI requests, alerts *and* job outcomes over this many
            seconds before ``now`` (the dashboard's picked range); default 7 days (jobs: 24 h).

    Raises:
        StoreError: the metrics DB is unreachable or not migrated.
    """
    source = _pick_source(engine, now, source)
    if source is None:
        return Evidence(now=now)
    # --- users
    row = _latest_users(engine, now, source)
    users = forecast_users(engine, now=now, source=source)
    trend = users.trend
    ahead = users.at(FORECAST_DAYS)
    nxt = users.next
    crossing = nxt.crossing if nxt else None
    # --- limiters
    wide = 7 * DAY if window_s is None else window_s
    head = q.limiter_totals(engine, now - wide, now, source=source)
    limiters = {str(up): LimiterEvidence(int(g["samples"].sum()), int(g["upstream_429"].sum()),
                                         float(g["util_max"].max()), int(g["throttled"].sum()),
                                         int(g["rejected"].sum()))
                for up, g in head.groupby("upstream")}
    first = _first_sample(engine, source)
    # --- jobs
    jobs = _jobs(engine, now, source, DAY if window_s is None else window_s)
    cleanup = _reports(engine, "cleanup", 0.0, now, source, ("ok",), limit=1)
    cron = _cron(_reports(engine, "prewarm", now - DAY, now, source), concurrency)
    # --- app DB
    db = forecast_db_bytes(engine, now=now, limit_bytes=settings.db_limit_bytes, source=source)
    full = db.thresholds[-1].crossing
    # --- caches, AI, alerts
    cache = q.cache_summary(engine, now - wide, now + 1e-6, source=source)
    ai = q.ai_cost_by(engine, now - wide, now + 1e-6, (), source=source).iloc[0]
    spend = forecast_monthly_ai_spend(engine, now=now, settings=settings, source=source)
    opens, open_now, longest, firing = _breakers(engine, now, source, wide)
    return Evidence(
        now=now, source=source,
        users_total=None if row is None else int(row.total),
        users_with_lastfm=None if row is None else int(row.with_lastfm),
        users_active=None if row is None else int(row.active),
        users_trend=trend.describe("users") if trend else str(users.fit),
        users_forecast=None if ahead is None else ahead.value,
        users_forecast_high=None if ahead is None else ahead.high,
        next_trigger_users=None if nxt is None else int(nxt.threshold),
        next_trigger_at=None if crossing is None else crossing.date_epoch,
        next_trigger_earliest=None if crossing is None else crossing.low,
        next_trigger_latest=None if crossing is None else crossing.high,
        limiters=limiters, headroom_age_s=_age(engine, m.HEADROOM_SAMPLES, now, source, m.HEADROOM_HOURLY),
        jobs=jobs, cleanup_rows_deleted=_rows_deleted(cleanup[0][0]) if cleanup else None, cron=cron,
        db_bytes=db.latest,
        db_full_in_days=None if full is None else full.days_from_now,
        cache_hits=int(cache["hits"].sum()), cache_misses=int(cache["misses"].sum()),
        cache_evictions=int(cache["evictions"].sum()),
        cache_bytes=float(cache["bytes_max"].sum()) if len(cache) else None,
        cache_age_s=_age(engine, m.CACHE_STATS, now, source, m.CACHE_HOURLY),
        ai_requests_7d=int(ai["calls"]), ai_cache_hits_7d=int(ai["cache_hits"]),
        ai_saved_tokens_7d=int(ai["saved_tokens"]), ai_age_s=_age(engine, m.AI_USAGE, now, source, m.AI_USAGE_HOURLY),
        ai_spend_mtd={p: f.month_to_date_usd for p, f in spend.items()},
        ai_spend_projected={p: f.projected_month_usd for p, f in spend.items()},
        breaker_opens_7d=opens, breakers_open=open_now, breaker_open_longest_s=longest, alerts_firing=firing,
        window_s=wide, data_span_s=None if first is None else now - first,
        cloudflare=cloudflare_evidence(engine, now),
    )
