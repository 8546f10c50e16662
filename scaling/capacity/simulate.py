"""What breaks first at N users: the real service layer against the sandbox, in virtual time.

A synthetic population drives the same code production runs: page views that need
Spotify, Last.fm and AI (through `Services`: limiters, breakers, fetch wrapper,
cache, cost tracker), a prewarm design (`scaling.capacity.designs`: a 5- or
1-minute cron, a queue, or the upstream app's cron), the cleanup hourly on a real
SQLite app DB that page views fill, all against the sandbox upstreams, which enforce
the real limits. A run reads as five steps: `_build` the world, `_warm` it to its
steady state (`scaling.capacity.steady_state`), `_drive` the design, traffic and
cleanup, `measure` (`scaling.capacity.measure`), and `judge` the limits
(`scaling.capacity.breaks`). The same function runs in real time against a sandbox
on a port (the calibration run) by passing a `SystemClock` and a base URL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

from scaling.ai_costs import MemorySink
from scaling.appdb.cleanup import Retention, run_cleanup
from scaling.appdb.models import metadata
from scaling.appdb.stats import database_stats
from scaling.capacity.baseline import upstream_limiters
from scaling.capacity.breaks import Break, judge, warnings
from scaling.capacity.cpu_model import DEFAULT_CPU_MODEL, CpuModel
from scaling.capacity.designs import Cron, Design, DesignRun, design_named
from scaling.capacity.measure import Freshness, Observed, invocation_summary, platform_month, upstream_peaks
from scaling.capacity.metering import Invocation, Meter, MeteredStore, MeteredTransport
from scaling.capacity.pageviews import NEW_SESSION_SHARE, USAGE_ROWS_PER_VIEW, PageViews
from scaling.capacity.platform_limits import TimeModel, limits_for
from scaling.capacity.remote import SandboxView, local_view, remote_view
from scaling.capacity.steady_state import Demand, expected_hit_rate, pick_warm, seed_prewarm_entries
from scaling.clock import Clock, SystemClock, VirtualClock
from scaling.fetch import Sender
from scaling.prewarm_sources import LastfmListens, SpotifyArt
from scaling.sandbox import Sandbox, SandboxConfig
from scaling.sandbox.direct_client import DirectClient
from scaling.services import Services
from scaling.settings import Settings
from scaling.upstreams.ai_tasks import task_key

__all__ = ["DESIGN_NAMES", "Break", "Scenario", "SimResult", "simulate", "sweep"]

_GB = 1024**3
# How the service layer reaches the upstreams: an in-process sandbox called directly
# (`DirectClient`), an httpx transport (the sandbox through ASGI, the benchmark's
# baseline), or None for the network (a sandbox on a port).
Wire = Sandbox | httpx.AsyncBaseTransport | None
_PAGE_BUDGET_S = 5.0  # a page that waits longer than this shows the 503 "temporarily unavailable"
#: The plan's default deadline: a HEADROOM_CRON_DEADLINE_S equal to it is not an operator's own budget.
_PLAN_DEADLINE_S = 30.0
_WARMED = ("spotify:album:v2", "ai:albumDetail")
DESIGN_NAMES = ("headroom", "cron5m", "cron1m", "queues", "upstream")


@dataclass(frozen=True, slots=True)
class Scenario:
    """One simulated deployment.

    Attributes:
        users: users at the start (all with a Last.fm name).
        active_share: share who listened in the last two hours at any time.
        hours: virtual hours to run (measured, after the warm-up).
        growth_per_week: compounding user growth (0.05 = 5% a week).
        design: one of `DESIGN_NAMES` ("headroom" is "cron5m").
        views_per_user_day: page views per user per day (active users make 4x).
        ai_share: share of views that show an AI summary; search_share: that run a search.
        cron_interval_s: the cron's period (None: the design's own).
        time_model: "plan" (30 s wall per invocation) or "documented" (CPU by interval, 15 min wall).
        steady_state: warm caches and prewarm entries to their steady state first (False: a cold start).
        deadline_s: the design's own run deadline (None: its invocation's wall limit).
        cpu: the per-operation CPU model.
        seed: fixes everything random.
    """

    users: int
    active_share: float = 0.1
    hours: float = 24.0
    growth_per_week: float = 0.0
    design: str = "cron5m"
    views_per_user_day: float = 3.0
    ai_share: float = 0.3
    search_share: float = 0.3
    cron_interval_s: float | None = None
    latency: str = "0.15-0.4"
    time_model: str = "plan"
    steady_state: bool = True
    deadline_s: float | None = None
    cpu: CpuModel = DEFAULT_CPU_MODEL
    seed: int = 0

    def __post_init__(self) -> None:
        if self.users < 1 or not 0 <= self.active_share <= 1 or self.hours <= 0 or self.growth_per_week < 0:
            raise ValueError("users >= 1, 0 <= active share <= 1, hours > 0 and growth >= 0 are required")
        if self.design not in DESIGN_NAMES:
            raise ValueError(f"design must be one of {', '.join(DESIGN_NAMES)}, got {self.design!r}")
        if self.time_model not in ("plan", "documented"):
            raise ValueError(f"time model must be 'plan' or 'documented', got {self.time_model!r}")

    @property
    def users_end(self) -> int:
        weeks = self.hours / (24 * 7)
        grown: float = self.users * (1 + self.growth_per_week) ** weeks
        return max(self.users, round(grown))

    def users_at(self, elapsed_s: float) -> int:
        return min(self.users_end, int(self.users * (1 + self.growth_per_week) ** (elapsed_s / (7 * 86400))))


@dataclass
class SimResult:
    scenario: Scenario
    wall_s: float = 0.0
    users_end: int = 0
    upstreams: dict[str, dict[str, float]] = field(default_factory=dict)
    cron: dict[str, float] = field(default_factory=dict)
    invocations: dict[str, float] = field(default_factory=dict)
    db: dict[str, float] = field(default_factory=dict)
    ai: dict[str, float] = field(default_factory=dict)
    platform: dict[str, float] = field(default_factory=dict)
    cache: dict[str, float] = field(default_factory=dict)
    pages: dict[str, float] = field(default_factory=dict)
    limits: dict[str, float | str | None] = field(default_factory=dict)
    breaks: list[Break] = field(default_factory=list)
    at_risk: list[Break] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def first_break(self) -> Break | None:
        return min(self.breaks, key=lambda b: b.severity) if self.breaks else None

    def as_dict(self) -> dict[str, object]:
        d = dataclasses.asdict(self)
        d["first_break"] = dataclasses.asdict(self.first_break) if self.first_break else None
        return d


@dataclass
class _World:
    """Everything one run touches."""

    scenario: Scenario
    settings: Settings
    clock: Clock
    sandbox: SandboxView | None
    meter: Meter
    store: MeteredStore
    sink: MemorySink
    svc: Services
    engine: Engine
    pages: PageViews
    names: list[str]
    design: Design
    rng: random.Random
    start: float = 0.0
    end: float = 0.0

    def population(self, t: float) -> Sequence[str]:
        return self.names[:self.scenario.users_at(t - self.start)]


def _design(sc: Scenario, settings: Settings) -> Design:
    design = design_named(sc.design, staleness_target_s=settings.prewarm_max_staleness_s)
    if sc.cron_interval_s is not None and isinstance(design, Cron):
        return dataclasses.replace(design, interval_s=sc.cron_interval_s)
    return design


def _build(sc: Scenario, clock: Clock, wire: Wire, settings: Settings, sandbox: SandboxView | None) -> _World:
    """Services on a metered store and transport, an empty app DB, the population and the design."""
    meter = Meter()
    store = MeteredStore(meter)
    sink = MemorySink()
    limiters = upstream_limiters(clock, seed=sc.seed) if sc.design == "upstream" else None
    if isinstance(wire, Sandbox):
        def sender(name: str, base_url: str) -> Sender:
            return DirectClient(wire, base_url, on_send=meter.count_fetch)

        svc = Services(settings, clock=clock, store=store, sender=sender, usage_sink=sink, limiters=limiters)
    else:
        svc = Services(settings, clock=clock, store=store, transport=MeteredTransport(wire, meter)
                       if wire is not None else None, usage_sink=sink, limiters=limiters)
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    metadata.create_all(engine)
    rng = random.Random(sc.seed)
    names = [f"listener{i:04d}" for i in range(1, sc.users_end + 1)]
    pages = PageViews(svc, engine, clock, rng, names, sandbox_catalog=sandbox.catalog if sandbox else None,
                      ai_share=sc.ai_share, search_share=sc.search_share, budget_s=_PAGE_BUDGET_S)
    return _World(sc, settings, clock, sandbox, meter, store, sink, svc, engine, pages, names,
                  _design(sc, settings), rng)


def _views_per_s(sc: Scenario, users: int) -> tuple[float, int]:
    active = max(1, int(users * sc.active_share))
    per_s = sc.views_per_user_day / 86400
    return per_s * (users - active) + 4 * per_s * active, active


async def _warm(w: _World) -> tuple[dict[str, float], float]:
    """Fill the caches and prewarm entries to their steady state.

    Returns the analytical hit rate per family, and the AI calls a month from an empty cache would make.
    """
    sc = w.scenario
    rate, active = _views_per_s(sc, sc.users)
    demands = w.pages.demands(rate, active, sc.users)
    # Only albums and AI summaries are warmed (see _fill); the others' analytical rates would not apply.
    expected = {f: v for f, v in expected_hit_rate(demands).items() if f in _WARMED}
    month = 30 * 86400.0
    cold = sum(1 - math.exp(-d.rate_per_s * month) for d in demands if d.family == "ai:albumDetail")
    if not sc.steady_state:
        return expected, cold
    if w.sandbox is not None and w.sandbox.population is not None and w.sandbox.catalog is not None:
        seed_prewarm_entries(w.store, w.names[:sc.users], w.sandbox.population, w.sandbox.catalog,
                             now=w.clock.now(), max_age_s=0.9 * w.settings.prewarm_max_staleness_s,
                             rng=random.Random(sc.seed + 1))
    await _fill(w, pick_warm(demands, random.Random(sc.seed + 2)))
    await w.clock.sleep(120.0)  # every limiter window has passed: the measured period starts with full budgets
    return expected, cold


def _operator_wall(settings: Settings) -> float | None:
    """HEADROOM_CRON_DEADLINE_S when the operator set one other than the plan's 30 s."""
    return settings.cron_deadline_s if settings.cron_deadline_s != _PLAN_DEADLINE_S else None


@dataclass
class _Driven:
    run: DesignRun
    freshness: Freshness
    cleanups: list[float]


async def _fill(w: _World, warm: list[Demand]) -> None:
    """Store the steady state's cached albums and AI summaries.

    Album bodies come from the sandbox's catalogue (what its album endpoint answers);
    AI summaries are one real answer, asked through the service layer, stored under
    each cached album's key (only its size and token counts matter here). Searches
    and Last.fm profiles start cold: a conservative choice (their misses cost
    upstream calls, not money), and it keeps the warm-up cheap.
    """
    catalog = w.sandbox.catalog if w.sandbox is not None else None
    albums = [d.key for d in warm if d.family == "spotify:album:v2"]
    summaries = [d.key for d in warm if d.family == "ai:albumDetail"]
    for album_id in albums:
        core = catalog.album(album_id) if catalog is not None else None
        if core is not None:
            w.svc.cache.set("spotify:album:v2", album_id, core.full())
    if summaries:
        await w.pages.warm(Demand("ai:albumDetail", summaries[0], 0.0))
        found = w.svc.cache.peek("ai:albumDetail", task_key([summaries[0]]))
        for album_id in summaries[1:] if found is not None else []:
            w.svc.cache.set("ai:albumDetail", task_key([album_id]), found.value if found else None)


async def _drive(w: _World, progress: Callable[[float], None] | None) -> _Driven:
    """The design, the hourly cleanup, the page traffic and the freshness checks, concurrently until the end."""
    sc, clock = w.scenario, w.clock
    model = TimeModel(sc.time_model)
    cron = limits_for(model, w.design.interval_s, operator_wall_s=_operator_wall(w.settings))
    consumer = limits_for(model, w.design.interval_s, operator_wall_s=_operator_wall(w.settings), consumer=True)

    def tick() -> None:
        if progress:
            progress(min(1.0, (clock.now() - w.start) / (w.end - w.start)))

    run = DesignRun(clock, w.end, w.population, LastfmListens(w.svc.lastfm, clock), SpotifyArt(w.svc.spotify),
                    w.store, w.meter, cron, consumer, deadline_s=sc.deadline_s, tick=tick)
    cleanups: list[float] = []

    async def hourly_cleanup() -> None:
        if sc.design == "upstream":
            return  # never built upstream (reference/upstream.md §7)
        while clock.now() + 3600 < w.end:
            await clock.sleep(3600)
            cleanups.append(run_cleanup(w.engine, now=clock.now(), retention=Retention.from_settings(w.settings),
                                        pause_s=0.0).total_deleted)

    async def traffic() -> None:
        while True:
            rate, active = _views_per_s(sc, sc.users_at(clock.now() - w.start))
            gap = w.rng.expovariate(rate)
            if clock.now() + gap >= w.end:
                return  # (in real time, do not wait past the end for a visitor who never comes)
            await clock.sleep(gap)
            user = w.pages.pick_user(active, sc.users_at(clock.now() - w.start))
            w.pages.start(user)

    freshness = Freshness(w.store, w.sandbox, w.settings)
    await asyncio.gather(w.design.run(run), hourly_cleanup(), traffic(),
                         freshness.watch(clock, w.population, w.start, w.end))
    await w.pages.drain()
    return _Driven(run, freshness, cleanups)


def _cron(w: _World, d: _Driven, observed: list[Observed]) -> dict[str, float]:
    reports = d.run.reports
    crons = [o for o in observed if o.invocation.kind in ("cron", "consumer")]
    walls = [o.invocation.wall_s for o in crons]
    timed_out = sum(1 for r in reports if r.errors.get("timed_out")) + sum(
        1 for o in crons if o.invocation.wall_s > o.limits.wall_s + 1e-6)
    return {"runs": float(len(crons)), "p50_s": round(_q(walls, 0.5), 3), "p95_s": round(_q(walls, 0.95), 3),
            "max_s": round(max(walls, default=0.0), 3), "deadline_s": d.run.limits.wall_s,
            "timed_out_runs": float(timed_out),
            "users_polled_p50": _q([float(r.polled) for r in reports], 0.5) if reports else float(
                sum(o.invocation.fetches for o in crons)) / max(1.0, (w.end - w.start) / 300.0),
            "queue_peak": float(d.run.queue_peak), **d.freshness.summary()}


def _q(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(q * len(s) + 0.999999) - 1))] if s else 0.0


def _db(w: _World, db_start: float, cleanups: list[float]) -> dict[str, float]:
    days = w.scenario.hours / 24
    db_bytes = database_stats(w.engine).total_bytes or 0
    growth = max(0.0, (db_bytes - db_start) / days)
    retention = max(w.settings.retention_searches_days, w.settings.retention_usage_log_days)
    steady = growth * retention if w.scenario.design != "upstream" else math.inf
    return {"bytes_now": float(db_bytes), "bytes_per_day": round(growth), "rows_deleted": float(sum(cleanups)),
            "days_until_10gb": (math.inf if steady < w.settings.db_limit_bytes or growth == 0
                                else round(w.settings.db_limit_bytes / growth, 1)),
            "steady_state_gb": round(steady / _GB, 3) if math.isfinite(steady) else math.inf}


def _ai(w: _World, cold_misses_month: float) -> dict[str, float]:
    days = w.scenario.hours / 24
    calls = [e for e in w.sink.entries if not e.cache_hit]
    usd = float(sum(e.cost_usd for e in w.sink.entries))
    per_call = usd / len(calls) if calls else 0.0
    return {"calls": float(len(calls)), "tokens_per_day": round(sum(e.usage.total_tokens for e in calls) / days),
            "usd_per_day": round(usd / days, 4), "usd_month": round(usd / days * 30, 2),
            "usd_per_call": round(per_call, 5), "usd_month_cold": round(cold_misses_month * per_call, 2),
            "budget_usd": float(w.settings.upstream("openai").monthly_budget_usd or 0)}


def _hit_rates(w: _World, base: dict[str, tuple[int, int]], expected: dict[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for st in w.svc.cache.stats(list(expected)):
        h0, m0 = base.get(st.family, (0, 0))
        hits, misses = st.hits - h0, st.misses - m0
        if hits + misses:
            out[f"{st.family} measured"] = round(hits / (hits + misses), 4)
            out[f"{st.family} analytical"] = round(expected[st.family], 4)
    return out


async def _run(sc: Scenario, clock: Clock, wire: Wire, settings: Settings, sandbox: SandboxView | None,
               progress: Callable[[float], None] | None) -> SimResult:
    w = _build(sc, clock, wire, settings, sandbox)
    try:
        expected, cold_month = await _warm(w)
        w.start, w.end = clock.now(), clock.now() + sc.hours * 3600
        w.sink.entries.clear()
        base429 = {n: w.svc.fetchers[n].stats.upstream_429 for n in ("spotify", "lastfm", "openai")}
        hits0 = {st.family: (st.hits, st.misses) for st in w.svc.cache.stats(list(expected))}
        w.meter.invocations.clear()
        w.meter.outside = Invocation("pages", w.start)
        db_start = float(database_stats(w.engine).total_bytes or 0)
        driven = await _drive(w, progress)
        res = SimResult(scenario=sc, users_end=sc.users_end)
        for name in ("spotify", "lastfm", "openai"):
            head = w.svc.fetchers[name].limiter.headroom()
            res.upstreams[name] = {**upstream_peaks(w.sandbox, settings, name, w.start, w.end),
                                   "upstream_429": float(w.svc.fetchers[name].stats.upstream_429 - base429[name]),
                                   "throttled": float(head.throttled), "wait_s": round(head.wait_seconds, 2)}
        observed = [Observed(i, driven.run.consumer_limits if i.kind == "consumer" else driven.run.limits)
                    for i in w.meter.invocations]
        res.cron = _cron(w, driven, observed)
        res.invocations = invocation_summary(observed, sc.cpu)
        res.db = _db(w, db_start, driven.cleanups)
        res.ai = _ai(w, cold_month)
        res.pages = w.pages.summary()
        res.platform = platform_month(observed, w.meter.outside, res.pages["views"], _rows_written(w, res),
                                      res.db["steady_state_gb"] if math.isfinite(res.db["steady_state_gb"])
                                      else res.db["bytes_now"] / _GB, float(driven.run.queue_ops), sc.cpu,
                                      sc.hours / 24, dt.date(2026, 12, 1))
        res.platform["budget_usd"] = float(settings.platform_monthly_budget_usd or 0.0)
        res.cache = _hit_rates(w, hits0, expected)
        res.limits = _limit_notes(driven.run)
        res.breaks, res.at_risk = judge(res)
        res.warnings = warnings(res)
        return res
    finally:
        w.svc.cache.flush()
        await w.svc.aclose()
        w.engine.dispose()


def _rows_written(w: _World, res: SimResult) -> float:
    sc = w.scenario
    return res.pages["views"] * (USAGE_ROWS_PER_VIEW + NEW_SESSION_SHARE + 2 * sc.search_share)


def _limit_notes(run: DesignRun) -> dict[str, float | str | None]:
    lim = run.limits
    return {"time_model": lim.model.value, "wall_s": lim.wall_s, "wall_source": lim.wall_source,
            "cpu_s": lim.cpu_s, "consumer_wall_s": run.consumer_limits.wall_s,
            "consumer_cpu_s": run.consumer_limits.cpu_s, "subrequests": float(lim.subrequests),
            "kv_ops": float(lim.kv_ops), "d1_queries": float(lim.d1_queries), "memory_mb": lim.memory_mb}


def simulate(scenario: Scenario, *, settings: Settings | None = None, clock: Clock | None = None,
             base_url: str | None = None, progress: Callable[[float], None] | None = None,
             asgi: bool = False) -> SimResult:
    """Run one scenario; in virtual time against an in-process sandbox unless a real
    ``clock`` and the ``base_url`` of a sandbox on a port are given (calibration).
    ``asgi`` reaches the in-process sandbox through Starlette (`httpx.ASGITransport`)
    instead of calling its handlers directly: same answers, slower (the benchmark's baseline).

    Raises:
        ValueError: a bad scenario.
    """
    settings = settings or Settings.defaults()
    wall = time.perf_counter()
    if base_url is None:
        vclock = clock or VirtualClock()
        cfg = SandboxConfig.from_options(seed=scenario.seed, latency=scenario.latency, listeners=scenario.users_end,
                                         active_share=scenario.active_share)
        sandbox = Sandbox(cfg, vclock)
        run = _run(scenario, vclock, sandbox.transport() if asgi else sandbox, settings, local_view(sandbox), progress)
        result = vclock.run(run) if isinstance(vclock, VirtualClock) else asyncio.run(run)
    else:
        ups = {n: dataclasses.replace(u, base_url=base_url, accounts_url=base_url if n == "spotify" else u.accounts_url)
               for n, u in settings.upstreams.items()}
        result = asyncio.run(_run(scenario, clock or SystemClock(), None, dataclasses.replace(settings, upstreams=ups),
                                  remote_view(base_url), progress))
    result.wall_s = round(time.perf_counter() - wall, 2)
    return result


def sweep(users: list[int], *, base: Scenario, settings: Settings | None = None,
          progress: Callable[[float], None] | None = None) -> list[SimResult]:
    """`simulate` at each user count (``base`` otherwise)."""
    out = []
    for i, n in enumerate(users):
        def step(f: float, i: int = i) -> None:
            if progress:
                progress((i + f) / len(users))
        out.append(simulate(dataclasses.replace(base, users=n), settings=settings, progress=step))
    return out
