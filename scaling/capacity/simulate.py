"""What breaks first at N users: the real service layer against the sandbox, in virtual time.

A synthetic population drives the same code production runs: page views that need
Spotify, Last.fm and AI (through `Services`: limiters, breakers, fetch wrapper,
cache, cost tracker), the prewarm cron every five minutes, the cleanup hourly on a
real SQLite app DB that page views fill, all against the sandbox upstreams, which
enforce the real limits. ``design="upstream"`` swaps in the upstream app's own design
(`scaling.capacity.baseline`): fixed-window limiters, every user every cron run,
no cleanup. The same function runs in real time against a sandbox on a port (the
calibration run) by passing a `SystemClock` and a base URL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from scaling.clock import Clock, VirtualClock
from scaling.settings import Settings

__all__ = ["Break", "Scenario", "SimResult", "simulate", "sweep"]

#: Sandbox windows the app's upstreams enforce (reference/anchors-ratelimit.md §3).
_PAGE_BUDGET_S = 5.0  # a page that waits longer than this shows the 503 "temporarily unavailable"
_GB = 1024**3


@dataclass(frozen=True, slots=True)
class Scenario:
    """One simulated deployment.

    Attributes:
        users: users at the start (all with a Last.fm name).
        active_share: share who listened in the last two hours at any time.
        hours: virtual hours to run.
        growth_per_week: compounding user growth (0.05 = 5% a week).
        design: "headroom" or "upstream".
        views_per_user_day: page views per user per day (active users make 4x).
        ai_share: share of views that show an AI summary; search_share: that run a search.
        cron_interval_s: the prewarm cron's period.
        seed: fixes everything random.
    """

    users: int
    active_share: float = 0.1
    hours: float = 24.0
    growth_per_week: float = 0.0
    design: str = "headroom"
    views_per_user_day: float = 3.0
    ai_share: float = 0.3
    search_share: float = 0.3
    cron_interval_s: float = 300.0
    latency: str = "0.15-0.4"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.users < 1 or not 0 <= self.active_share <= 1 or self.hours <= 0 or self.growth_per_week < 0:
            raise ValueError("users >= 1, 0 <= active share <= 1, hours > 0 and growth >= 0 are required")
        if self.design not in ("headroom", "upstream"):
            raise ValueError(f"design must be 'headroom' or 'upstream', got {self.design!r}")


@dataclass(frozen=True, slots=True)
class Break:
    """A limit the scenario crossed: which, and the numbers that show it."""

    limit: str
    detail: str
    severity: int  # lower breaks "first" at equal user counts


@dataclass
class SimResult:
    scenario: Scenario
    wall_s: float = 0.0
    users_end: int = 0
    upstreams: dict[str, dict[str, float]] = field(default_factory=dict)
    cron: dict[str, float] = field(default_factory=dict)
    db: dict[str, float] = field(default_factory=dict)
    ai: dict[str, float] = field(default_factory=dict)
    pages: dict[str, float] = field(default_factory=dict)
    breaks: list[Break] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def first_break(self) -> Break | None:
        return min(self.breaks, key=lambda b: b.severity) if self.breaks else None

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["first_break"] = dataclasses.asdict(self.first_break) if self.first_break else None
        return d


def _p(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(math.ceil(q * len(s))) - 1)]


def _window_counts(times: list[float], window: float, start: float, end: float) -> tuple[int, float]:
    """Peak requests in any rolling window, and the p95 over windows ending each minute."""
    times = sorted(times)
    peak, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        peak = max(peak, hi - lo + 1)
    import bisect

    samples = [bisect.bisect_right(times, t) - bisect.bisect_right(times, t - window)
               for t in _frange(start + window, end, 60.0)]
    return peak, _p([float(s) for s in samples], 0.95)


def _frange(a: float, b: float, step: float) -> list[float]:
    n = max(0, int((b - a) // step) + 1)
    return [a + i * step for i in range(n)]


async def _run(scenario: Scenario, clock: Clock, transport: httpx.AsyncBaseTransport | None, settings: Settings,
               sandbox: Any, progress: Callable[[float], None] | None) -> SimResult:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import StaticPool

    from scaling.ai_costs import MemorySink
    from scaling.appdb.cleanup import Retention, run_cleanup
    from scaling.appdb.models import metadata
    from scaling.appdb.stats import database_stats
    from scaling.capacity.baseline import UPSTREAM_LIMITS, FixedWindowLimiter, upstream_prewarm
    from scaling.capacity.pageviews import PageViews
    from scaling.errors import ScalingError
    from scaling.prewarm import PrewarmConfig, run_prewarm
    from scaling.prewarm_sources import LastfmListens, SpotifyArt
    from scaling.services import Services
    from scaling.store.memory import MemoryStore

    sc = scenario
    rng = random.Random(sc.seed)
    store = MemoryStore()
    sink = MemorySink()
    svc = Services(settings, clock=clock, store=store, transport=transport, usage_sink=sink)
    if sc.design == "upstream":
        for name, spec in UPSTREAM_LIMITS.items():
            svc.fetchers[name].limiter = FixedWindowLimiter(name, spec, clock, seed=sc.seed)  # type: ignore[assignment]
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    metadata.create_all(engine)
    start = clock.now()
    end = start + sc.hours * 3600
    weeks = sc.hours / (24 * 7)
    users_end = max(sc.users, int(round(sc.users * (1 + sc.growth_per_week) ** weeks)))
    names = [f"listener{i:04d}" for i in range(1, users_end + 1)]
    pages = PageViews(svc, engine, clock, rng, names, sandbox_catalog=getattr(sandbox, "catalog", None),
                      ai_share=sc.ai_share, search_share=sc.search_share, budget_s=_PAGE_BUDGET_S)

    def users_at(t: float) -> int:
        return min(users_end, int(sc.users * (1 + sc.growth_per_week) ** ((t - start) / (7 * 86400))))

    reports = []
    cleanups = []
    db_start = database_stats(engine).total_bytes or 0

    async def cron() -> None:
        cfg = PrewarmConfig(deadline_s=settings.cron_deadline_s, interval_s=sc.cron_interval_s)
        source = LastfmListens(svc.lastfm, clock)
        art = SpotifyArt(svc.spotify)
        while clock.now() < end:
            t0 = clock.now()
            population = names[:users_at(t0)]
            if sc.design == "upstream":
                rep = await upstream_prewarm(population, source, store, clock, deadline_s=settings.cron_deadline_s)
            else:
                rep = await run_prewarm(population, source, store, clock, config=cfg, album_art=art)
            reports.append(rep)
            if progress:
                progress(min(1.0, (clock.now() - start) / (end - start)))
            if t0 + sc.cron_interval_s >= end:
                return
            await clock.sleep(max(0.0, t0 + sc.cron_interval_s - clock.now()))

    async def hourly_cleanup() -> None:
        if sc.design == "upstream":
            return  # never built upstream (reference/upstream.md §7)
        while clock.now() + 3600 < end:
            await clock.sleep(3600)
            cleanups.append(run_cleanup(engine, now=clock.now(), retention=Retention.from_settings(settings),
                                        pause_s=0.0).total_deleted)

    async def traffic() -> None:
        per_s = sc.views_per_user_day / 86400
        while True:
            n = users_at(clock.now())
            active = max(1, int(n * sc.active_share))
            rate = per_s * (n - active) + 4 * per_s * active
            gap = rng.expovariate(rate)
            if clock.now() + gap >= end:
                return  # (in real time, do not wait past the end for a visitor who never comes)
            await clock.sleep(gap)
            user = names[rng.randrange(active)] if rng.random() < 4 * active / (n + 3 * active) \
                else names[rng.randrange(n)]
            asyncio.ensure_future(pages.view(user))

    try:
        await asyncio.gather(cron(), hourly_cleanup(), traffic())
        await pages.drain()
    finally:
        svc.cache.flush()
        await svc.aclose()

    res = SimResult(scenario=sc, users_end=users_end)
    days = sc.hours / 24
    stats = sandbox.stats() if sandbox is not None else None
    for name in ("spotify", "lastfm", "openai"):
        cfg = sandbox.config.upstream(name) if sandbox is not None else None
        served = [s.time for s in stats.upstream(name).served] if stats else []
        window = cfg.requests.window if cfg else 60.0
        peak, p95 = _window_counts(served, window, start, end)
        lim = svc.fetchers[name].limiter
        head = lim.headroom()
        res.upstreams[name] = {
            "requests": float(stats.upstream(name).requests if stats else svc.fetchers[name].stats.attempts),
            "peak_window": float(peak), "p95_window": p95, "limit": float(cfg.requests.limit if cfg else 0),
            "window_s": window, "upstream_429": float(svc.fetchers[name].stats.upstream_429),
            "throttled": float(head.throttled), "wait_s": round(head.wait_seconds, 2)}
    # After the first pass over the population (a new deployment starts with no entries).
    first_full = next((i for i, r in enumerate(reports) if r.never_fetched == 0), len(reports) - 1)
    warm = reports[first_full + 1:] or reports[-1:]
    res.cron = {"runs": float(len(reports)), "p50_s": _p([r.duration_s for r in reports], 0.5),
                "p95_s": _p([r.duration_s for r in reports], 0.95), "max_s": max((r.duration_s for r in reports),
                                                                               default=0.0),
                "deadline_s": settings.cron_deadline_s,
                "timed_out_runs": float(sum(1 for r in reports if r.errors.get("timed_out"))),
                "runs_skipping_active": float(sum(1 for r in warm if r.active_skipped > 0)),
                "never_refreshed": float(reports[-1].never_fetched if reports else 0),
                "users_polled_p50": _p([float(r.polled) for r in warm], 0.5),
                "max_staleness_min": round(max((r.oldest_entry_age_s for r in warm), default=0.0) / 60, 1)}
    db_bytes = database_stats(engine).total_bytes or 0
    growth = max(0.0, (db_bytes - db_start) / days)
    retention = max(settings.retention_searches_days, settings.retention_usage_log_days)
    steady = growth * retention if sc.design == "headroom" else math.inf
    res.db = {"bytes_now": float(db_bytes), "bytes_per_day": round(growth), "rows_deleted": float(sum(cleanups)),
              "days_until_10gb": (math.inf if steady < settings.db_limit_bytes or growth == 0
                                  else round(settings.db_limit_bytes / growth, 1)),
              "steady_state_gb": round(steady / _GB, 3) if math.isfinite(steady) else math.inf}
    ai_entries = [e for e in sink.entries if not e.cache_hit]
    usd = float(sum(e.cost_usd for e in sink.entries))
    res.ai = {"calls": float(len(ai_entries)), "tokens_per_day": round(sum(e.usage.total_tokens for e in ai_entries)
                                                                        / days),
              "usd_per_day": round(usd / days, 4), "usd_month": round(usd / days * 30, 2),
              "budget_usd": float(settings.upstream("openai").monthly_budget_usd or 0)}
    res.pages = pages.summary()
    res.breaks = _breaks(res, settings)
    res.warnings = _warnings(res)
    engine.dispose()
    return res


def _breaks(res: SimResult, settings: Settings) -> list[Break]:
    """Which limits this run crossed, most fundamental first."""
    out = []
    c = res.cron
    if c["timed_out_runs"] or c["max_s"] > c["deadline_s"]:
        out.append(Break("cron deadline", f"{int(c['timed_out_runs'])} of {int(c['runs'])} prewarm runs hit the "
                                          f"{c['deadline_s']:.0f} s Worker limit (max {c['max_s']:.1f} s)", 1))
    if c["runs_skipping_active"] or c["never_refreshed"]:
        out.append(Break("Last.fm rate (cron)", f"{int(c['runs_skipping_active'])} runs could not refresh every "
                                                f"active user, {int(c['never_refreshed'])} users never refreshed "
                                                f"({c['users_polled_p50']:.0f} calls per run)", 2))
    for name, u in res.upstreams.items():
        if u["upstream_429"] or u["peak_window"] > u["limit"] > 0:
            out.append(Break(f"{name} rate limit", f"{int(u['upstream_429'])} upstream 429s, peak "
                                                   f"{u['peak_window']:.0f}/{u['limit']:.0f} per {u['window_s']:g} s", 3))
    if res.pages.get("failed_share", 0) > 0.01:
        out.append(Break("page waits", f"{res.pages['failed_share']:.1%} of page views waited over "
                                       f"{_PAGE_BUDGET_S:.0f} s or failed", 4))
    if res.db["days_until_10gb"] < 365:
        out.append(Break("database 10 GB", f"full in {res.db['days_until_10gb']:.0f} days at "
                                           f"{res.db['bytes_per_day'] / 1024**2:.0f} MB/day", 5))
    return out


def _warnings(res: SimResult) -> list[str]:
    """What is worth knowing but is not a capacity limit. AI spend is a budget choice, and
    a run that starts with an empty cache projects it from cold-cache misses, far above
    what a warm 120-day cache would cost."""
    out = []
    if res.ai["budget_usd"] and res.ai["usd_month"] > res.ai["budget_usd"]:
        out.append(f"AI spend projects to ${res.ai['usd_month']:.2f}/month against a ${res.ai['budget_usd']:.0f} "
                   "budget (from a cold cache: an upper bound)")
    if res.cron.get("max_staleness_min", 0) * 60 > 4500:
        out.append(f"inactive users' entries reach {res.cron['max_staleness_min']:.0f} min old")
    return out


def simulate(scenario: Scenario, *, settings: Settings | None = None, clock: Clock | None = None,
             base_url: str | None = None, progress: Callable[[float], None] | None = None) -> SimResult:
    """Run one scenario; in virtual time against an in-process sandbox unless a real
    ``clock`` and the ``base_url`` of a sandbox on a port are given (calibration).

    Raises:
        ValueError: a bad scenario.
    """
    from scaling.sandbox import Sandbox, SandboxConfig

    settings = settings or Settings.defaults()
    wall = time.perf_counter()
    if base_url is None:
        vclock = clock or VirtualClock()
        weeks = scenario.hours / (24 * 7)
        listeners = max(scenario.users, int(round(scenario.users * (1 + scenario.growth_per_week) ** weeks)))
        cfg = SandboxConfig.from_options(seed=scenario.seed, latency=scenario.latency, listeners=listeners,
                                         active_share=scenario.active_share)
        sandbox = Sandbox(cfg, vclock)
        run = _run(scenario, vclock, sandbox.direct_transport(), settings, sandbox, progress)
        result = vclock.run(run) if isinstance(vclock, VirtualClock) else asyncio.run(run)
    else:
        from scaling.clock import SystemClock

        real = clock or SystemClock()
        ups = {n: dataclasses.replace(u, base_url=base_url, accounts_url=base_url if n == "spotify" else u.accounts_url)
               for n, u in settings.upstreams.items()}
        result = asyncio.run(_run(scenario, real, None, dataclasses.replace(settings, upstreams=ups),
                                  _RemoteSandbox(base_url), progress))
    result.wall_s = round(time.perf_counter() - wall, 2)
    return result


class _RemoteSandbox:
    """Reads a sandbox's counters over HTTP, for real-time runs."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        from scaling.sandbox import SandboxConfig

        self.config = SandboxConfig()

    def stats(self) -> Any:
        return _Stats(httpx.get(f"{self.url}/_sandbox/stats", timeout=10).json()["upstreams"])


class _Stats:
    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def upstream(self, name: str) -> Any:
        total = self._data.get(name, {}).get("total", {})  # an upstream nobody called is absent
        served = [_Served(s["time"]) for s in total.get("served", [])]
        return _Up(total.get("requests", 0), served)


@dataclass
class _Served:
    time: float


@dataclass
class _Up:
    requests: int
    served: list[_Served]


def sweep(users: list[int], **kwargs: Any) -> list[SimResult]:
    """`simulate` at each user count (same scenario otherwise)."""
    progress = kwargs.pop("progress", None)
    out = []
    for i, n in enumerate(users):
        def step(f: float, i: int = i) -> None:
            if progress:
                progress((i + f) / len(users))
        out.append(simulate(Scenario(users=n, **kwargs), progress=step))
    return out
