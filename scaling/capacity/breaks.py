"""Which limits a simulated run crossed (breaks), which it reached (at risk), and what is only worth knowing.

Nothing over a limit is green: an invocation over its wall or CPU time, a per-invocation
count over the platform's, an upstream's busiest window over its limit or any 429,
entries staler than their target, a steady-state AI or platform spend over its
monthly budget, a database that fills within a year. A limit reached exactly
(100%) is "at risk". Lower severity breaks "first" at equal user counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Break", "judge", "warnings"]


@dataclass(frozen=True, slots=True)
class Break:
    """A limit the scenario crossed (or reached): which, and the numbers that show it."""

    limit: str
    detail: str
    severity: int


class Measured(Protocol):
    """The parts of a `SimResult` the judgement reads."""

    @property
    def cron(self) -> dict[str, float]: ...

    @property
    def invocations(self) -> dict[str, float]: ...

    @property
    def upstreams(self) -> dict[str, dict[str, float]]: ...

    @property
    def pages(self) -> dict[str, float]: ...

    @property
    def db(self) -> dict[str, float]: ...

    @property
    def ai(self) -> dict[str, float]: ...

    @property
    def platform(self) -> dict[str, float]: ...


_INVOCATION_LIMITS = (("wall_s", "wall time per invocation", "s"), ("cpu_s", "CPU time per invocation", "s"),
                      ("subrequests", "subrequests per invocation", ""), ("kv_ops", "KV operations per invocation", ""),
                      ("d1_queries", "D1 queries per invocation", ""), ("memory_mb", "memory per invocation", " MB"))


def _invocations(r: Measured) -> list[Break]:
    out = []
    inv = r.invocations
    for key, label, unit in _INVOCATION_LIMITS:
        over = inv.get(f"{key}_over", 0.0)
        if over or (r.cron.get("timed_out_runs", 0) and key == "wall_s"):
            n = int(max(over, r.cron.get("timed_out_runs", 0) if key == "wall_s" else 0))
            out.append(Break(label, f"{n} of {int(inv['invocations'])} invocations over the "
                                    f"{inv[f'{key}_limit']:g}{unit} limit (max {inv[f'{key}_max']:.4g}{unit})", 1))
    return out


def _freshness(r: Measured) -> list[Break]:
    c = r.cron
    out = []
    if c.get("probes_with_stale_active") or c.get("never_refreshed"):
        out.append(Break("Last.fm budget per run (active users)",
                         f"in {int(c['probes_with_stale_active'])} checks active users' entries were older than "
                         f"{c['target_active_min']:g} min (max {c['active_max_age_min']:.0f} min); "
                         f"{int(c['never_refreshed'])} users never refreshed", 2))
    if c.get("max_staleness_min", 0.0) > c.get("target_inactive_min", float("inf")):
        out.append(Break("staleness over target", f"inactive users' entries reach {c['max_staleness_min']:.0f} min "
                                                  f"(target {c['target_inactive_min']:.0f} min)", 2))
    return out


def _upstreams(r: Measured) -> tuple[list[Break], list[Break]]:
    breaks, risk = [], []
    for name, u in r.upstreams.items():
        text = (f"{int(u['upstream_429'])} upstream 429s, peak {u['peak_window']:.0f}/{u['limit']:.0f} per "
                f"{u['window_s']:g} s (upstream's limit; Headroom's limiter {u['limiter_limit']:.0f}/"
                f"{u['limiter_window_s']:g} s)")
        if u["upstream_429"] or u["peak_window"] > u["limit"] > 0:
            breaks.append(Break(f"{name} rate limit", text, 3))
        elif u["limit"] > 0 and u["peak_window"] >= u["limit"]:
            risk.append(Break(f"{name} rate limit", f"at 100%: {text}", 3))
    return breaks, risk


def judge(r: Measured) -> tuple[list[Break], list[Break]]:
    """(breaks, at risk) for a run, most fundamental first."""
    out = _invocations(r) + _freshness(r)
    up, risk = _upstreams(r)
    out += up
    if r.pages.get("failed_share", 0) > 0.01:
        out.append(Break("page waits", f"{r.pages['failed_share']:.1%} of page views waited over 5 s or failed", 4))
    if r.db["days_until_10gb"] < 365:
        out.append(Break("database 10 GB", f"full in {r.db['days_until_10gb']:.0f} days at "
                                           f"{r.db['bytes_per_day'] / 1024**2:.0f} MB/day", 5))
    if r.ai.get("budget_usd") and r.ai["usd_month"] > r.ai["budget_usd"]:
        out.append(Break("AI budget", f"steady-state AI spend ${r.ai['usd_month']:.2f}/month over the "
                                      f"${r.ai['budget_usd']:.0f} budget", 6))
    elif r.ai.get("budget_usd") and r.ai["usd_month"] >= 0.8 * r.ai["budget_usd"]:
        risk.append(Break("AI budget", f"${r.ai['usd_month']:.2f}/month is over 80% of ${r.ai['budget_usd']:.0f}", 6))
    budget = r.platform.get("budget_usd", 0.0)
    if budget and r.platform.get("usd_month", 0.0) > budget:
        out.append(Break("platform budget", f"Cloudflare bill ${r.platform['usd_month']:.2f}/month over the "
                                            f"${budget:.0f} budget", 6))
    return out, risk


def warnings(r: Measured) -> list[str]:
    """Worth knowing, not a limit: the first month's AI bill from an empty cache."""
    out = []
    if r.ai.get("budget_usd") and r.ai.get("usd_month_cold", 0.0) > r.ai["budget_usd"]:
        out.append(f"a new deployment's first month (empty cache) costs about ${r.ai['usd_month_cold']:.2f} in AI "
                   f"against a ${r.ai['budget_usd']:.0f} budget")
    return out
