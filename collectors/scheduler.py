"""Wiring only: open what the jobs share, bind each job to it, hand the jobs to APScheduler.

Every replica runs its own ``BlockingScheduler`` with an in-memory job store (a
shared APScheduler job store cannot serve several schedulers). Triggers are
``IntervalTrigger``\\ s whose start is the epoch, so every replica computes the same
slots; `collectors.runs.run_job` makes each slot run once across them. APScheduler's
own misfire handling is off (``misfire_grace_time=None``): the wrapper records a late
run as skipped, which APScheduler would only have logged. ``coalesce=True`` and
``max_instances=1`` keep one run of a job per process.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select

from collectors import alerts, jobs
from collectors.loop import LoopThread
from collectors.runs import JobContext, JobFn, RunOutcome, RunPlace, SlotTiming, run_job, slot_of
from collectors.webhook import Webhook
from scaling.ai_costs import MetricsSink
from scaling.appdb.engine import make_engine
from scaling.cache import Cache
from scaling.clock import Clock, StoreTimeClock, SystemClock
from scaling.metrics import models as m
from scaling.metrics.db import open_metrics_db
from scaling.metrics.records import DEFAULT_SOURCE
from scaling.metrics.writer import MetricsWriter
from scaling.rate_limit import RateLimiter
from scaling.services import Services
from scaling.settings import UPSTREAMS, Settings
from scaling.store import StateStore, open_store

__all__ = ["DEFAULT_JOBS", "EXTRA_JOBS", "Collectors", "JobSpec", "Resources", "job_specs", "open_resources",
           "process_clock"]

log = logging.getLogger("headroom.collectors")

#: Jobs scheduled by default, with their `Settings.collector_intervals` entry.
DEFAULT_JOBS: tuple[str, ...] = ("prewarm", "cleanup", "headroom", "db_stats", "cache_stats", "cost_rollup",
                                 "retention", "alerts")
#: Jobs that run only when named (``--jobs heartbeat``), with their default interval.
EXTRA_JOBS: Mapping[str, float] = {"heartbeat": 60.0, "cloudflare": 300.0, "capacity": 86400.0}
#: The capacity search runs the simulator for minutes, not a cron's 30 s.
CAPACITY_DEADLINE_S = 1800.0
#: Intervals below this are refused: slots are keyed to the millisecond.
MIN_INTERVAL_S = 0.05
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One scheduled job: its bound function and its timing (seconds)."""

    name: str
    fn: JobFn
    interval_s: float
    deadline_s: float
    grace_s: float


@dataclass
class Resources:
    """What the jobs of one process share; `close` releases it.

    ``clock`` is the process's one clock: the writer, the run wrapper and the services
    (limiters, breakers, caches, fetchers) all read it.
    """

    settings: Settings
    clock: Clock
    store: StateStore
    metrics_engine: Engine
    app_engine: Engine
    writer: MetricsWriter
    notifier: Webhook | None = None
    loop: LoopThread | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list)
    _services: Services | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def services(self) -> Services:
        """The upstream services on the shared store and ``clock``, built on first use (their
        HTTP clients cost a second to set up); AI usage goes to the metrics DB."""
        with self._lock:
            if self._services is None:
                self._services = Services(self.settings, clock=self.clock, store=self.store,
                                          usage_sink=MetricsSink(self.writer))
                self._closers.append(self._close_services)
            return self._services

    def _close_services(self) -> None:
        if self._services is None:
            return
        if self.loop is not None:
            asyncio.run_coroutine_threadsafe(self._services.aclose(), self.loop.loop).result(5.0)
        else:
            asyncio.run(self._services.aclose())

    @property
    def limiters(self) -> list[RateLimiter]:
        """The services' limiters, one per upstream and key."""
        return list(self.services.limiters.values())

    def cache(self) -> Cache:
        """The services' cache."""
        return self.services.cache

    def close(self) -> None:
        for close in reversed(self._closers):
            try:
                close()
            except Exception as exc:  # noqa: BLE001 - closing is best effort
                log.debug("closing a collector resource failed: %s", exc)


def host_id() -> str:
    """Who claimed a run: host and process, so replicas on one host are told apart."""
    return f"{socket.gethostname()}:{os.getpid()}"


def open_resources(settings: Settings, *, clock: Clock | None = None, host: str | None = None,
                   async_loop: bool = True) -> Resources:
    """Open the state store, both databases, the services and the webhook.

    Raises:
        ConfigurationError: a URL is malformed.
        StoreError: the state store cannot be reached.
    """
    store = open_store(settings.state_url, settings.state_namespace)
    clock = clock or process_clock(store)
    metrics_engine = open_metrics_db(settings.metrics_db_url)
    app_engine = make_engine(settings.app_db_url)
    res = Resources(settings=settings, clock=clock, store=store, metrics_engine=metrics_engine, app_engine=app_engine,
                    writer=MetricsWriter(metrics_engine, clock=clock, host=host or host_id()))
    res._closers += [store.close, metrics_engine.dispose, app_engine.dispose]
    if async_loop:
        res.loop = LoopThread()
        res._closers.append(res.loop.close)
    if settings.alert_webhook_url:
        res.notifier = Webhook(settings.alert_webhook_url, clock=clock)
        res._closers.append(res.notifier.close)
    return res


def process_clock(store: StateStore) -> Clock:
    """The collector process's clock: the shared store's time (as in every other process that
    shares it, so limiter state and run slots are stamped on one timeline across hosts), or
    this host's for a store that lives in this process."""
    return SystemClock() if store.backend == "memory" else StoreTimeClock(store.time)


def job_specs(settings: Settings, res: Resources, *, names: Iterable[str] = DEFAULT_JOBS, scale: float = 1.0,
              intervals: Mapping[str, float] | None = None, heartbeat_work_s: float = 0.0) -> list[JobSpec]:
    """Bind each named job to the shared resources, with its interval, deadline and grace.

    Args:
        names: jobs to schedule (`DEFAULT_JOBS` and `EXTRA_JOBS`).
        scale: multiplies every configured interval (0.05 runs every job 20x as often).
        intervals: explicit seconds per job, not scaled (wins over settings and scale).
        heartbeat_work_s: how long the heartbeat job works (tests kill a replica mid-run).

    Raises:
        ValueError: an unknown job name or an interval under `MIN_INTERVAL_S`.
    """
    timings = _timings(settings, _job_names(settings, names), scale, intervals or {})
    budgets = {p: b for p in UPSTREAMS if (b := settings.upstream(p).monthly_budget_usd)}
    rules = alerts.default_rules(scale)

    def evidence(now: float) -> alerts.Evidence:
        return alerts.Evidence(res.metrics_engine, now, jobs=timings, db_limit_bytes=settings.db_limit_bytes,
                               budgets=budgets, scale=scale, default_deadline_s=settings.cron_deadline_s)

    def bind(name: str) -> JobFn:
        if name == "prewarm":
            return functools.partial(_prewarm, settings=settings, res=res)
        if name == "cleanup":
            from scaling.appdb.cleanup import Retention

            return functools.partial(jobs.cleanup_job, app_engine=res.app_engine, writer=res.writer,
                                     retention=Retention.from_settings(settings))
        if name == "headroom":
            return functools.partial(_with_limiters, res=res)
        if name == "db_stats":
            return functools.partial(jobs.db_stats_job, app_engine=res.app_engine, writer=res.writer,
                                     active_window_s=settings.prewarm_active_window_s)
        if name == "cache_stats":
            return functools.partial(_with_cache, res=res)
        if name == "cost_rollup":
            return functools.partial(jobs.cost_rollup_job, metrics_engine=res.metrics_engine, budgets=budgets)
        if name == "retention":
            return functools.partial(jobs.retention_job, metrics_engine=res.metrics_engine, store=res.store)
        if name == "cloudflare":
            return functools.partial(jobs.cloudflare_job, settings=settings, store=res.store,
                                     metrics_engine=res.metrics_engine)
        if name == "capacity":
            return functools.partial(jobs.capacity_job, settings=settings, metrics_engine=res.metrics_engine,
                                     design=settings.capacity_design, time_model=settings.capacity_time_model)
        if name == "alerts":
            return functools.partial(jobs.alerts_job, rules=rules, evidence=evidence, writer=res.writer,
                                     store=res.store, notifier=res.notifier, every_s=timings[name].interval_s)
        return functools.partial(jobs.heartbeat_job, store=res.store, work_s=heartbeat_work_s)

    return [JobSpec(n, bind(n), t.interval_s, t.deadline_s, t.grace_s) for n, t in timings.items()]


def _job_names(settings: Settings, names: Iterable[str]) -> list[str]:
    """The jobs asked for, once each, known ones only (`ValueError` names the others)."""
    out = list(dict.fromkeys(names))
    if (settings.cloudflare_api_token and settings.cloudflare_account_id and set(DEFAULT_JOBS) <= set(out)
            and "cloudflare" not in out):
        out.append("cloudflare")  # the default set, with a Cloudflare account configured
    if set(DEFAULT_JOBS) <= set(out) and "capacity" not in out:
        out.append("capacity")  # the default set: the Overview's capacity figure, daily
    unknown = [n for n in out if n not in DEFAULT_JOBS and n not in EXTRA_JOBS]
    if unknown:
        raise ValueError(f"unknown job(s): {', '.join(unknown)}; known: {', '.join([*DEFAULT_JOBS, *EXTRA_JOBS])}")
    return out


def _timings(settings: Settings, names: list[str], scale: float,
             intervals: Mapping[str, float]) -> dict[str, alerts.JobTiming]:
    """Each job's interval (explicit, else configured x scale), deadline and grace."""
    timings: dict[str, alerts.JobTiming] = {}
    for name in names:
        explicit = intervals.get(name)
        base = settings.collector_intervals.get(name, EXTRA_JOBS.get(name, 60.0))
        interval = round(explicit if explicit is not None else base * scale, 3)
        if interval < MIN_INTERVAL_S:
            raise ValueError(f"job {name}: interval {interval:g}s is under the minimum of {MIN_INTERVAL_S:g}s")
        # A run ends before the next slot starts: the Worker's 30 s, or the interval if shorter.
        deadline = min(CAPACITY_DEADLINE_S if name == "capacity" else settings.cron_deadline_s, interval)
        timings[name] = alerts.JobTiming(interval_s=interval, deadline_s=deadline, grace_s=interval / 2)
    return timings


async def _prewarm(ctx: JobContext, *, settings: Settings, res: Resources) -> dict[str, Any]:
    return await jobs.prewarm_job(ctx, settings=settings, store=res.store, services=res.services)


def _with_limiters(ctx: JobContext, *, res: Resources) -> dict[str, Any]:
    platform = jobs.platform_limiters(res.settings, res.store, res.clock)
    return jobs.headroom_job(ctx, limiters=[*res.limiters, *platform], store=res.store, writer=res.writer)


def _with_cache(ctx: JobContext, *, res: Resources) -> dict[str, Any]:
    return jobs.cache_stats_job(ctx, cache=res.cache(), store=res.store, writer=res.writer)


class Collectors:
    """The process's jobs: fire one slot, run each once, or schedule them all.

    Args:
        specs: the bound jobs.
        res: the shared resources (writer, store, clock, event loop).
        stop: set to stop scheduling and abandon runs in flight.
        wall: the scheduler's clock, which slots are computed from (APScheduler's).
    """

    def __init__(self, specs: Iterable[JobSpec], res: Resources, *, stop: threading.Event | None = None,
                 wall: Callable[[], float] = time.time) -> None:
        self.specs = {s.name: s for s in specs}
        self.res = res
        self.stop = stop or threading.Event()
        self.wall = wall
        self.outcomes: dict[str, int] = {}
        self._lock = threading.Lock()
        self.started = wall()
        self._place = RunPlace(res.writer, res.clock, lease_store=res.store, async_runner=res.loop, stop=self.stop)

    def fire(self, name: str, scheduled_at: float | None = None) -> RunOutcome:
        """Run the current slot of a job (what the scheduler calls)."""
        spec = self.specs[name]
        slot = slot_of(self.wall(), spec.interval_s) if scheduled_at is None else scheduled_at
        # A slot fired by the schedule may be late (grace) and may have gaps before it; one
        # fired by hand (catch-up, --once) is run whenever it is asked for.
        timing = SlotTiming(spec.deadline_s, not_before=self.started) if scheduled_at is not None else \
            SlotTiming(spec.deadline_s, grace_s=spec.grace_s, interval_s=spec.interval_s, not_before=self.started)
        outcome = run_job(name, slot, spec.fn, place=self._place, timing=timing)
        with self._lock:
            self.outcomes[outcome.outcome] = self.outcomes.get(outcome.outcome, 0) + 1
        return outcome

    def due(self) -> list[str]:
        """Jobs that no replica has run for over an interval (or ever): a fresh start runs them at once
        instead of waiting up to a day for their first slot."""
        t = m.JOB_RUNS
        now = self.wall()
        with self.res.metrics_engine.connect() as conn:
            newest = dict(conn.execute(select(t.c.job, func.max(t.c.scheduled_at)).where(
                t.c.job.in_(list(self.specs)), t.c.source == DEFAULT_SOURCE).group_by(t.c.job)).all())
        return [n for n, s in self.specs.items() if newest.get(n) is None or newest[n] < now - s.interval_s]

    def catch_up(self) -> list[threading.Thread]:
        """Run the current slot of every `due` job now, each in its own thread.

        Slots are claimed as usual, so replicas starting together run each once.
        """
        try:
            names = self.due()
        except Exception as exc:  # noqa: BLE001 - the schedule still runs them at their next slot
            log.warning("collectors: cannot tell which jobs are due (%s); waiting for their slots", exc)
            return []
        threads = []
        for name in names:
            slot = slot_of(self.wall(), self.specs[name].interval_s)
            thread = threading.Thread(target=self.fire, args=(name, slot), name=f"catch-up-{name}", daemon=True)
            thread.start()
            threads.append(thread)
        return threads

    def run_once(self) -> list[RunOutcome]:
        """Run every job once now, one after another (``--once``)."""
        out = []
        for name in self.specs:
            if self.stop.is_set():
                break
            out.append(self.fire(name, scheduled_at=round(self.res.clock.now(), 3)))
        return out

    def scheduler(self) -> Any:
        """A BlockingScheduler with every job on an epoch-aligned interval trigger."""
        from apscheduler.executors.pool import ThreadPoolExecutor  # type: ignore[import-untyped]
        from apscheduler.schedulers.blocking import BlockingScheduler  # type: ignore[import-untyped]
        from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]

        sched = BlockingScheduler(
            timezone=UTC, executors={"default": ThreadPoolExecutor(max_workers=len(self.specs) + 1)})
        for spec in self.specs.values():
            sched.add_job(self.fire, IntervalTrigger(seconds=spec.interval_s, start_date=_EPOCH, timezone=UTC),
                          args=[spec.name], id=spec.name, name=spec.name, replace_existing=True,
                          coalesce=True, max_instances=1, misfire_grace_time=None)
        return sched
