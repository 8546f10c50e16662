"""What a simulated run measured: upstream peaks, invocations against their limits, freshness, costs.

Freshness is observed, not taken from a design's own report: every 5 minutes the
simulator looks at each user's entry (without counting it as the design's work)
and records how old the active users' and the others' entries are, so every
design is judged on the same outcome.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from scaling.capacity.cpu_model import CpuModel
from scaling.capacity.metering import Invocation, MeteredStore
from scaling.capacity.pageviews import USAGE_ROWS_PER_VIEW
from scaling.capacity.platform_limits import InvocationLimits
from scaling.capacity.remote import SandboxView
from scaling.clock import Clock
from scaling.platform_prices import PlatformUsage, platform_bill
from scaling.prewarm import ENTRY_KEY, Listen
from scaling.settings import Settings

__all__ = ["Freshness", "Observed", "invocation_summary", "platform_month", "upstream_peaks", "window_counts"]

_PROBE_S = 300.0
#: An active user's entry may be one 5-minute cadence plus a minute old (the upstream's promise).
ACTIVE_TARGET_S = 360.0
#: D1 rows a page view reads (session lookup, the page's queries): an assumption until D1 data says otherwise.
D1_ROWS_READ_PER_VIEW = 20
_MONTH_DAYS = 30.0


def _p(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, math.ceil(q * len(s)) - 1)]


def window_counts(times: list[float], window: float, start: float, end: float) -> tuple[int, float]:
    """Peak requests in any rolling window, and the p95 over windows ending each minute."""
    times = sorted(t for t in times if t >= start)
    peak, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        peak = max(peak, hi - lo + 1)
    n = max(0, int((end - start - window) // 60.0) + 1)
    samples = [bisect.bisect_right(times, t) - bisect.bisect_right(times, t - window)
               for t in (start + window + i * 60.0 for i in range(n))]
    return peak, _p([float(s) for s in samples], 0.95)


@dataclass
class Freshness:
    """Ages of the prewarm entries, looked at every 5 minutes."""

    store: MeteredStore
    sandbox: SandboxView | None
    settings: Settings
    # (time, oldest active entry, stale active users, oldest inactive entry, users never fetched)
    probes: list[tuple[float, float, int, float, int]] = field(default_factory=list)

    async def watch(self, clock: Clock, population: Callable[[float], Sequence[str]], start: float,
                    end: float) -> None:
        t = start + _PROBE_S - 10.0
        while t < end:
            await clock.sleep(max(0.0, t - clock.now()))
            self.probe(clock.now(), population(clock.now()))
            t += _PROBE_S

    def probe(self, now: float, users: Sequence[str]) -> None:
        active_max = inactive_max = 0.0
        stale = never = 0
        pop = self.sandbox.population if self.sandbox else None
        for user in users:
            raw = self.store.observe(ENTRY_KEY.format(username=user), now=now)
            if raw is None:
                never += 1
                continue
            # Most entries are unchanged between two probes: `Listen.from_json` decodes each once.
            entry = Listen.from_json(raw)
            age = now - entry.fetched_at
            active = pop.is_active(user, now) if pop is not None else (entry.played_at or 0) >= now - 7200
            if active:
                active_max = max(active_max, age)
                stale += age > ACTIVE_TARGET_S
            else:
                inactive_max = max(inactive_max, age)
        self.probes.append((now, active_max, stale, inactive_max, never))

    def summary(self) -> dict[str, float]:
        """Over the probes after the first with every user fetched (a cold start takes a few runs)."""
        first = next((i for i, p in enumerate(self.probes) if p[4] == 0), len(self.probes))
        warm = self.probes[first:] or self.probes[-1:]
        return {"probes_with_stale_active": float(sum(1 for p in warm if p[2])),
                "active_max_age_min": round(max((p[1] for p in warm), default=0.0) / 60, 1),
                "max_staleness_min": round(max((p[3] for p in warm), default=0.0) / 60, 1),
                "never_refreshed": float(self.probes[-1][4] if self.probes else 0),
                "target_active_min": ACTIVE_TARGET_S / 60,
                "target_inactive_min": self.settings.prewarm_max_staleness_s / 60}


@dataclass(frozen=True)
class Observed:
    """Invocations with the limits each was held to."""

    invocation: Invocation
    limits: InvocationLimits


def invocation_summary(observed: Sequence[Observed], cpu: CpuModel) -> dict[str, float]:
    """The worst invocation on each limit, and how many went over each."""
    out: dict[str, float] = {"invocations": float(len(observed))}
    checks: Mapping[str, Callable[[Observed], tuple[float, float | None]]] = {
        "wall_s": lambda o: (o.invocation.wall_s, o.limits.wall_s),
        "cpu_s": lambda o: (cpu.cpu_s(o.invocation.usage()), o.limits.cpu_s),
        "subrequests": lambda o: (float(o.invocation.subrequests), float(o.limits.subrequests)),
        "kv_ops": lambda o: (float(o.invocation.usage().kv_ops), float(o.limits.kv_ops)),
        "d1_queries": lambda o: (float(o.invocation.d1_queries), float(o.limits.d1_queries)),
        "memory_mb": lambda o: (cpu.memory_mb(o.invocation.usage()), o.limits.memory_mb),
    }
    for name, check in checks.items():
        pairs = [check(o) for o in observed]
        worst = max(pairs, key=lambda p: p[0] / p[1] if p[1] else 0.0, default=(0.0, None))
        out[f"{name}_max"] = round(max((p[0] for p in pairs), default=0.0), 4)
        out[f"{name}_p95"] = round(_p([p[0] for p in pairs], 0.95), 4)
        out[f"{name}_limit"] = worst[1] if worst[1] is not None else math.inf
        out[f"{name}_over"] = float(sum(1 for v, lim in pairs if lim is not None and v > lim + 1e-9))
    return out


def platform_month(observed: Sequence[Observed], pages: Invocation, views: float, rows_written: float,
                   db_gb: float, queue_ops: float, cpu: CpuModel, days: float, month: dt.date) -> dict[str, float]:
    """The platform bill for a month at this run's pace (`scaling.platform_prices`)."""
    scale = _MONTH_DAYS / days
    invs = [o.invocation for o in observed]
    requests = views * (1 + USAGE_ROWS_PER_VIEW) + len(invs)
    cpu_ms = sum(cpu.cpu_s(i.usage()) for i in invs) * 1000 + (
        views * (1 + USAGE_ROWS_PER_VIEW) * cpu.base_ms + pages.fetches * cpu.per_fetch_ms
        + pages.kv_ops * cpu.per_kv_ms)
    kv_reads = sum(i.kv_reads + i.entry_reads for i in invs) + pages.kv_reads
    kv_writes = sum(i.kv_ops - i.kv_reads for i in invs) + pages.kv_ops - pages.kv_reads
    usage = PlatformUsage(requests=requests * scale, cpu_ms=cpu_ms * scale, kv_reads=kv_reads * scale,
                          kv_writes=kv_writes * scale, d1_rows_read=views * D1_ROWS_READ_PER_VIEW * scale,
                          d1_rows_written=rows_written * scale, d1_storage_gb=db_gb, queue_ops=queue_ops * scale)
    bill = platform_bill(usage, month=month)
    return {"usd_month": round(float(bill.total_usd), 2), "base_fee_usd": float(bill.base_fee_usd),
            "requests_month": round(usage.requests), "cpu_ms_month": round(usage.cpu_ms),
            "kv_reads_month": round(usage.kv_reads), "kv_writes_month": round(usage.kv_writes),
            "d1_rows_written_month": round(usage.d1_rows_written), "queue_ops_month": round(usage.queue_ops)}


def upstream_peaks(view: SandboxView | None, settings: Settings, name: str, start: float, end: float
                   ) -> dict[str, float]:
    """The busiest window against the upstream's real limit, beside Headroom's configured limiter."""
    requests, times = view.served(name) if view else (0, [])
    spec = view.limits.get(name) if view else None
    window = spec.window if spec else 60.0
    peak, p95 = window_counts(times, window, start, end)
    mine = settings.upstream(name).requests
    return {"requests": float(sum(1 for t in times if t >= start) if times else requests),
            "peak_window": float(peak), "p95_window": p95, "limit": float(spec.limit if spec else 0),
            "window_s": window, "limiter_limit": float(mine.limit), "limiter_window_s": mine.window}
