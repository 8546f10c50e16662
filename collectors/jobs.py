"""The collector jobs: plain functions given their dependencies.

Each takes the run's `JobContext` first and its dependencies as keywords, and
returns a JSON-able report (stored with the run). `collectors.scheduler` binds the
dependencies and registers the jobs; tests call the functions directly.

Limiter and cache counters are cumulative in the state store; a sample stores the
change since the previous sample, and that previous reading is kept in the state
store too (`counter_deltas`), so whichever replica takes the next slot continues
from it. Writing the metrics is what the sampling jobs are for, so a failed write
fails their run; jobs that do other work first (cleanup) log a failed write and
report it instead.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
from sqlalchemy import Engine, func, inspect, literal, select

from collectors import alerts, webhook
from collectors.runs import DeadlineExceeded, JobContext, JobFailed, close_abandoned
from scaling.appdb.cleanup import BatchInfo, Retention, run_cleanup
from scaling.appdb.models import metadata as app_metadata
from scaling.appdb.stats import database_stats
from scaling.cache import FamilyStats
from scaling.clock import Clock
from scaling.errors import StoreError
from scaling.metrics import logs
from scaling.metrics.records import DEFAULT_SOURCE, CacheStats, HeadroomSample, TableStats, UserCounts
from scaling.metrics.retention import roll_up, roll_up_and_prune
from scaling.metrics.rollups import AI
from scaling.metrics.writer import MetricsWriter
from scaling.prewarm import PrewarmReport
from scaling.prewarm_sources import prewarm_job as wired_prewarm
from scaling.rate_limit import Headroom, RateLimiter
from scaling.services import Services
from scaling.settings import PLATFORM_UPSTREAMS, Settings
from scaling.store import StateStore

__all__ = [
    "CacheStatsSource",
    "HeadroomSource",
    "Prewarm",
    "alerts_job",
    "cache_stats_job",
    "capacity_job",
    "cleanup_job",
    "cost_rollup_job",
    "counter_deltas",
    "db_stats_job",
    "headroom_job",
    "heartbeat_job",
    "platform_limiters",
    "prewarm_job",
    "retention_job",
]

log = logging.getLogger("headroom.collectors")

#: The previous counter readings expire after a week without samples.
LAST_READING_TTL_S = 7 * 86400.0


class HeadroomSource(Protocol):
    """A limiter: `scaling.rate_limit.RateLimiter` has this."""

    upstream: str
    key: str

    def headroom(self) -> Headroom: ...


class CacheStatsSource(Protocol):
    """The cache: `scaling.cache.Cache.stats()` returns one `FamilyStats` per family."""

    def stats(self) -> Iterable[FamilyStats]: ...


class Prewarm(Protocol):
    """One prewarm run (`scaling.prewarm_sources.prewarm_job`)."""

    async def __call__(self, settings: Settings, *, clock: Clock, store: StateStore,
                       services: Services | None = None) -> PrewarmReport: ...


def counter_deltas(store: StateStore, key: str, current: Mapping[str, float], *, now: float) -> dict[str, float]:
    """How much each cumulative counter grew since the previous reading stored under ``key``.

    The first reading gives zeros (the interval it covers is unknown); a counter that
    went down was reset (its store key expired) and counts from zero. The update is
    atomic in the store, so two replicas never both claim the same growth.
    """

    def step(raw: bytes | None) -> tuple[bytes | None, float | None, dict[str, float]]:
        before = json.loads(raw) if raw else None
        deltas = {}
        for name, value in current.items():
            if before is None or name not in before:
                deltas[name] = 0.0
            else:
                grew = float(value) - float(before[name])
                deltas[name] = float(value) if grew < 0 else grew
        return json.dumps(dict(current)).encode(), now + LAST_READING_TTL_S, deltas

    return store.update(f"collectors:last:{key}", step, now=now)


# --- sampling jobs ------------------------------------------------------------------------

def platform_limiters(settings: Settings, store: StateStore, clock: Clock) -> list[RateLimiter]:
    """The Cloudflare API limiters (GraphQL 300 / 5 min, REST 1,200 / 5 min) when the
    ``cloudflare`` job is on, so the Rate limits page shows them with the app's upstreams.
    They are not in `Services` (the app never calls Cloudflare); a limiter here reads the
    same store key as the collector's, so its headroom is the collector's usage."""
    if not (settings.cloudflare_api_token and settings.cloudflare_account_id):
        return []
    return [RateLimiter.from_settings(store, settings, name, clock=clock) for name in PLATFORM_UPSTREAMS]


def headroom_job(ctx: JobContext, *, limiters: Iterable[HeadroomSource], store: StateStore,
                 writer: MetricsWriter) -> dict[str, Any]:
    """Sample every limiter's usage, cooldown and counters (since the last sample) into ``headroom_samples``.

    Raises:
        StoreError: no limiter could be read, or the samples could not be written.
    """
    now = ctx.clock.now()
    samples: list[HeadroomSample] = []
    errors: dict[str, str] = {}
    for limiter in limiters:
        name = f"{limiter.upstream}:{limiter.key}"
        try:
            h = limiter.headroom()
            d = counter_deltas(store, f"headroom:{h.upstream}:{h.key}", {
                "upstream_429": h.upstream_429, "throttled": h.throttled, "wait_seconds": h.wait_seconds,
                "rejected": h.rejected}, now=now)
        except StoreError as exc:
            errors[name] = str(exc)
            continue
        samples.append(HeadroomSample(
            upstream=h.upstream, limiter_key=h.key, used=float(h.used), limit=float(h.limit),
            remaining=float(h.remaining), in_cooldown=bool(h.in_cooldown),
            cooldown_until=now + h.cooldown_remaining_s if h.in_cooldown else None,
            upstream_429=int(d["upstream_429"]), throttled=int(d["throttled"]),
            wait_seconds=round(d["wait_seconds"], 3), rejected=int(d["rejected"]), ts=now))
    if not samples and errors:
        raise StoreError(f"no limiter could be read: {next(iter(errors.values()))}", backend=store.backend)
    writer.record_headroom(samples)
    return {"samples": len(samples), "utilisation": {f"{s.upstream}:{s.limiter_key}": round(s.utilisation, 4)
                                                     for s in samples},
            "upstream_429": sum(s.upstream_429 for s in samples), "errors": errors}


def db_stats_job(ctx: JobContext, *, app_engine: Engine, writer: MetricsWriter,
                 active_window_s: float = 7200.0) -> dict[str, Any]:
    """Record each app table's rows and bytes (``'*'`` = the whole DB) and the user counts."""
    now = ctx.clock.now()
    stats = database_stats(app_engine)
    records: list[Any] = [TableStats(name, rows, stats.table_bytes.get(name), ts=now)
                          for name, rows in stats.rows.items()]
    records.append(TableStats("*", stats.total_rows, stats.total_bytes, ts=now))
    ctx.check()
    users = user_counts(app_engine, now=now, active_window_s=active_window_s)
    if users is not None:
        records.append(users)
    writer.record(records)
    return {"tables": len(stats.rows), "total_rows": stats.total_rows, "total_bytes": stats.total_bytes,
            "missing_tables": list(stats.missing_tables),
            "users": None if users is None else {"total": users.total, "with_lastfm": users.with_lastfm,
                                                 "active": users.active}}


def user_counts(app_engine: Engine, *, now: float, active_window_s: float) -> UserCounts | None:
    """Users, those with a Last.fm name, and those with a session active in the window (None before migration)."""
    users, sessions = app_metadata.tables["users"], app_metadata.tables["sessions"]
    cutoff = datetime.fromtimestamp(now - active_window_s, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    # last_active_at is D1 text in either of two shapes; put both on one timeline (see appdb.cleanup).
    seen = func.replace(func.rtrim(sessions.c.last_active_at, literal("Z")), literal("T"), literal(" "))
    with app_engine.connect() as conn:
        if not {"users", "sessions"} <= set(inspect(conn).get_table_names()):
            return None
        total = conn.execute(select(func.count()).select_from(users)).scalar_one()
        lastfm = conn.execute(select(func.count()).select_from(users).where(
            users.c.lastfm_username.is_not(None), users.c.lastfm_username != "")).scalar_one()
        active = conn.execute(select(func.count(func.distinct(sessions.c.user_id))).where(
            seen >= cutoff)).scalar_one()
    return UserCounts(total=int(total), with_lastfm=int(lastfm), active=int(active), ts=now)


def cache_stats_job(ctx: JobContext, *, cache: CacheStatsSource, store: StateStore,
                    writer: MetricsWriter) -> dict[str, Any]:
    """Record each cache family's hits, misses and evictions since the last sample, and its keys and bytes now."""
    now = ctx.clock.now()
    rows = []
    for fam in cache.stats():
        d = counter_deltas(store, f"cache:{fam.family}", {"hits": fam.hits, "misses": fam.misses,
                                                          "evictions": fam.evictions}, now=now)
        rows.append(CacheStats(family=fam.family, hits=int(d["hits"]), misses=int(d["misses"]), keys=int(fam.keys),
                               bytes=int(fam.bytes), evictions=int(d["evictions"]), oldest_age_s=fam.oldest_age_s,
                               ts=now))
    writer.record_cache_stats(rows)
    return {"families": len(rows), "hits": sum(r.hits for r in rows), "misses": sum(r.misses for r in rows),
            "keys": sum(r.keys for r in rows), "bytes": sum(r.bytes for r in rows)}


# --- maintenance jobs -----------------------------------------------------------------------

def cleanup_job(ctx: JobContext, *, app_engine: Engine, writer: MetricsWriter,
                retention: Retention = Retention(), batch_size: int = 5000) -> dict[str, Any]:
    """Run the app DB's batched cleanup until done or the deadline, then record the DB's size.

    A deadline reached between batches ends the run as timed out; committed batches
    stay deleted and the next run continues.
    """

    def between_batches(_: BatchInfo) -> None:
        ctx.check()

    report = run_cleanup(app_engine, now=ctx.clock.now(), retention=retention, batch_size=batch_size,
                         on_batch=between_batches, clock=time.perf_counter)
    out = report.as_dict()
    now = ctx.clock.now()
    stats = report.stats
    try:
        writer.record_table_stats([TableStats(n, r, stats.table_bytes.get(n), ts=now) for n, r in stats.rows.items()]
                                  + [TableStats("*", stats.total_rows, stats.total_bytes, ts=now)])
    except StoreError as exc:  # the rows are deleted either way; the size is next time's
        log.warning("cleanup ran but its DB statistics could not be recorded: %s", exc)
        out["metrics_error"] = str(exc)
    out.pop("stats", None)  # db_stats holds them; the report keeps what the run did
    return out


def retention_job(ctx: JobContext, *, metrics_engine: Engine, store: StateStore | None = None,
                  raw_days: float = 14, rollup_days: float = 730) -> dict[str, Any]:
    """Roll up and prune the metrics DB, and drop expired state-store entries."""
    now = ctx.clock.now()
    out: dict[str, Any] = roll_up_and_prune(metrics_engine, now=now, raw_days=raw_days,
                                            rollup_days=rollup_days).as_dict()
    if store is not None:
        ctx.check()
        try:
            out["state_purged"] = store.purge_expired(now=ctx.clock.now())
        except StoreError as exc:
            log.warning("metrics retention ran but the state store could not be purged: %s", exc)
            out["state_error"] = str(exc)
    return out


def cost_rollup_job(ctx: JobContext, *, metrics_engine: Engine, budgets: Mapping[str, float | None],
                    exclude_sources: tuple[str, ...] = ("demo",), settle_s: float = 600.0) -> dict[str, Any]:
    """Roll AI calls up into hours, and report this month's spend per provider against its budget.

    Also logs the spend as one ``[METRICS]`` line.
    """
    now = ctx.clock.now()
    sources = _sources(metrics_engine)
    rolled = 0
    for source in sources:
        ctx.check()
        rolled += sum(roll_up(metrics_engine, AI, source, until=now - settle_s).rolled_rows.values())
    month = datetime.fromtimestamp(now, tz=UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    spend = alerts.month_spend(metrics_engine, since=month.timestamp(), now=now, exclude_sources=exclude_sources)
    providers = {p: {"spend_usd": round(spend.get(p, 0.0), 4), "budget_usd": b,
                     "share": round(spend.get(p, 0.0) / b, 4) if b else None}
                 for p, b in sorted(budgets.items())}
    for p in sorted(set(spend) - set(budgets)):
        providers[p] = {"spend_usd": round(spend[p], 4), "budget_usd": None, "share": None}
    logs.log_metrics("METRICS", {"timestamp": logs.iso(now), "aiSpendMonthUsd": providers,
                                 "aiRolledRows": rolled})
    return {"rolled_rows": rolled, "month_start": month.timestamp(), "providers": providers}


def _sources(engine: Engine) -> list[str]:
    raw = AI.raw
    with engine.connect() as conn:
        return [str(s) for s in conn.execute(select(raw.c.source).distinct()).scalars()]


# --- upstream-facing jobs -----------------------------------------------------------------------

async def prewarm_job(ctx: JobContext, *, settings: Settings, store: StateStore, services: Services | None = None,
                      prewarm: Prewarm = wired_prewarm) -> dict[str, Any]:
    """The user-listens prewarm, planned to end inside what is left of this run's deadline.

    Args:
        services: the process's services, on the run's clock (None: the prewarm builds its own).
        prewarm: the run itself (tests pass a fake).
    """
    deadline = max(1.0, ctx.deadline_at - ctx.clock.now())
    if settings.cron_deadline_s > deadline:
        settings = dataclasses.replace(settings, cron_deadline_s=deadline)
    report = await prewarm(settings, clock=ctx.clock, store=store, services=services)
    failure = report.failure()
    if failure:  # e.g. 74 of 74 with CircuitOpen must not read as "ok" on the Cron page
        raise JobFailed(failure, dict(report.as_dict()))
    return dict(report.as_dict())


async def heartbeat_job(ctx: JobContext, *, store: StateStore, work_s: float = 0.0) -> dict[str, Any]:
    """Count this slot's executions in the state store, then work ``work_s`` seconds.

    Not scheduled by default: it is how the replica test sees that each slot ran
    once (the counter is 1), not merely that it was recorded once.
    """
    count = store.incr(f"collectors:heartbeat:{ctx.scheduled_at:.3f}", now=ctx.clock.now(), ttl=86400.0)
    if work_s > 0:
        await ctx.clock.sleep(work_s)
    if ctx.clock.now() > ctx.deadline_at:
        raise DeadlineExceeded("heartbeat overran")
    return {"executions": count}


# --- alerts --------------------------------------------------------------------------------------

def alerts_job(ctx: JobContext, *, rules: Iterable[alerts.Rule], evidence: Callable[[float], alerts.Evidence],
               writer: MetricsWriter, store: StateStore | None, notifier: webhook.Notifier | None,
               every_s: float = 60.0) -> dict[str, Any]:
    """Close runs whose replica died, evaluate the alert rules, send notices not yet delivered.

    Args:
        evidence: builds the rules' `Evidence` for a time.
        notifier: the webhook (None: episodes are recorded, nothing is sent).
    """
    now = ctx.clock.now()
    ev = evidence(now)
    out: dict[str, Any] = {"abandoned_runs": close_abandoned(writer.engine, now=now, deadlines={
        job: t.deadline_s + t.grace_s for job, t in ev.jobs.items()})}
    ctx.check()
    out.update(alerts.evaluate(rules, ev, writer=writer, store=store, every_s=every_s))
    ctx.check()
    out["delivery"] = webhook.deliver_pending(writer.engine, notifier, now=ctx.clock.now(), source=ev.source)
    return out


async def cloudflare_job(ctx: JobContext, *, settings: Settings, store: StateStore, metrics_engine: Engine,
                         transport: httpx.AsyncBaseTransport | None = None) -> dict[str, Any]:
    """Pull the production account's usage from Cloudflare (GraphQL + REST) into the metrics DB.

    The report names what was collected, which datasets or fields were unavailable and why,
    and whether the GraphQL budget or the REST 5-minute block cut the run short.

    Args:
        transport: the HTTP transport (tests: the sandbox's); the network by default.
    """
    from scaling.cloudflare import collect, open_account

    async with httpx.AsyncClient(transport=transport) as http:
        account = open_account(settings, store, http, clock=ctx.clock)
        report = await collect(account, metrics_engine, now=ctx.clock.now())
    return report.to_dict()


# --- capacity ------------------------------------------------------------------------------------

def capacity_job(ctx: JobContext, *, settings: Settings, metrics_engine: Engine, design: str = "headroom",
                 time_model: str = "documented", trial_hours: float = 2.0, ceiling: int = 20_000,
                 simulator: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    """Find how many users ``design`` carries (a bisection in virtual time) and store the answer.

    The inputs are calibrated from the metrics DB's production data when there is any
    (`scaling.capacity.calibration`, the week before now); each trial checks the run's
    deadline first, so an overrunning search ends between trials.

    The trials run in a child process: a search is minutes of pure-Python CPU, and in
    this process it would hold the GIL against the prewarm's event loop, whose
    rate-limited Last.fm sends then leave late and in bursts (seen at collectors start:
    4 sends within 8 ms after a 1 s stall, and Last.fm's 429s).

    Args:
        simulator: runs one scenario, in this process (default: `scaling.capacity.simulate.simulate`
            with ``settings``, in a child process).
    """
    from scaling.capacity.calibration import calibrate
    from scaling.capacity.capacity_results import search_capacity, write_capacity
    from scaling.capacity.simulate import Scenario, SimResult, simulate

    base = Scenario(users=1, hours=trial_hours, design=design, time_model=time_model)
    calibration = calibrate(metrics_engine, now=ctx.clock.now(), defaults=base)
    ctx.check()
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        def in_child(sc: Scenario) -> SimResult:
            return pool.submit(simulate, sc, settings=settings).result()

        try:
            search = search_capacity(base, settings=settings, calibration=calibration, ceiling=ceiling,
                                     check=ctx.check, simulator=simulator or in_child)
        except BrokenProcessPool as exc:
            raise JobFailed(f"the capacity search's child process died: {exc}") from None
    record = search.record(computed_at=ctx.clock.now(), source=DEFAULT_SOURCE)
    write_capacity(metrics_engine, record)
    return {"design": record.design, "time_model": record.time_model, "active_share": record.active_share,
            "users_carried": record.users_carried, "broken_at": record.broken_at,
            "first_break": record.first_break_limit, "monthly_cost_usd": record.monthly_cost_usd,
            "trials": dict(record.trials), "calibrated": [i.name for i in calibration.inputs if i.from_data],
            "search_wall_s": record.wall_s}
