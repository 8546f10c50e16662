"""The Cloudflare Worker limits that bind a cron run or a queue consumer, as dated, sourced data.

Like the price tables (`scaling.prices`), each row says where its figure comes from
and when that page was last updated (``reference/cloudflare.md`` §4, as of
2026-12-05). Two cron-time models sit side by side:

- ``plan``: what SCALING_PLAN.md assumed: "30 s timeout; scheduled workers have the
  same limit", read as 30 s of *wall* time for every invocation;
- ``documented``: the limits page (updated Jul 28, 2026): a cron whose interval is
  under an hour gets 30 s of *CPU* time (15 min when the interval is an hour or
  more), and every cron and queue consumer 15 min of *wall* time.

``HEADROOM_CRON_DEADLINE_S`` is the operator's own wall budget; when it is stricter
than the model's wall limit it applies in both models.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["LIMITS", "InvocationLimits", "PlatformLimit", "TimeModel", "cron_cpu_limit_s", "limits_for"]

_LIMITS_URL = "https://developers.cloudflare.com/workers/platform/limits/"
_LIMITS_UPDATED = "2026-07-28"
_D1_URL = "https://developers.cloudflare.com/d1/platform/limits/"
_KV_URL = "https://developers.cloudflare.com/kv/platform/limits/"


@dataclass(frozen=True, slots=True)
class PlatformLimit:
    """One documented limit.

    Attributes:
        name: what the simulator calls it in a break ("cron CPU time", ...).
        value: the limit, in ``unit``.
        unit: "s", "count" or "MB".
        source: the page it comes from.
        updated: that page's "Last updated" date (ISO), or "undated".
        note: conditions (plan, interval) and caveats.
    """

    name: str
    value: float
    unit: str
    source: str
    updated: str
    note: str = ""


#: Workers Paid limits that a prewarm cron or a queue consumer can reach.
LIMITS: dict[str, PlatformLimit] = {lim.name: lim for lim in (
    PlatformLimit("cron CPU time (interval < 1 h)", 30.0, "s", _LIMITS_URL, _LIMITS_UPDATED,
                  "a */5 or */1 cron; the Jul 7 pricing page still says 15 min for every cron"),
    PlatformLimit("cron CPU time (interval >= 1 h)", 900.0, "s", _LIMITS_URL, _LIMITS_UPDATED),
    PlatformLimit("cron wall time", 900.0, "s", _LIMITS_URL, _LIMITS_UPDATED, "duration of one Cron Trigger"),
    PlatformLimit("queue consumer wall time", 900.0, "s", _LIMITS_URL, _LIMITS_UPDATED),
    PlatformLimit("queue consumer CPU time", 30.0, "s", _LIMITS_URL, _LIMITS_UPDATED,
                  "the default CPU limit (settable up to 5 min with limits.cpu_ms); the pricing page says 15 min"),
    PlatformLimit("subrequests per invocation", 10_000.0, "count", _LIMITS_URL, _LIMITS_UPDATED,
                  "Paid default, configurable up to 10M; KV and D1 calls count too"),
    PlatformLimit("D1 queries per invocation", 1_000.0, "count", _D1_URL, "2026-04-21", "Paid (Free: 50)"),
    PlatformLimit("KV operations per invocation", 1_000.0, "count", _KV_URL, "undated",
                  "a bulk get of up to 100 keys counts as 1"),
    PlatformLimit("memory", 128.0, "MB", _LIMITS_URL, _LIMITS_UPDATED, "per isolate"),
    PlatformLimit("plan's cron timeout", 30.0, "s", "SCALING_PLAN.md", "undated",
                  "the plan read it as wall time for every invocation"),
)}


class TimeModel(enum.Enum):
    """Which reading of the cron's time limit a simulation applies."""

    PLAN = "plan"  # 30 s of wall time
    DOCUMENTED = "documented"  # CPU by interval, 15 min wall


def cron_cpu_limit_s(interval_s: float) -> float:
    """CPU seconds a cron invocation gets: 30 s below an hour's interval, 15 min from an hour on."""
    key = "cron CPU time (interval >= 1 h)" if interval_s >= 3600 else "cron CPU time (interval < 1 h)"
    return LIMITS[key].value


@dataclass(frozen=True, slots=True)
class InvocationLimits:
    """What one invocation may use before the platform (or the operator) ends it.

    Attributes:
        model: the time model these come from.
        wall_s: wall-clock seconds (the model's, or the operator's stricter budget).
        cpu_s: CPU seconds (None: not a limit in this model).
        subrequests, d1_queries, kv_ops: per-invocation counts.
        memory_mb: per isolate.
        wall_source: which limit ``wall_s`` is ("plan", "platform" or "operator").
    """

    model: TimeModel
    wall_s: float
    cpu_s: float | None
    subrequests: int
    d1_queries: int
    kv_ops: int
    memory_mb: float
    wall_source: str


def limits_for(model: TimeModel, interval_s: float, *, operator_wall_s: float | None = None,
               consumer: bool = False) -> InvocationLimits:
    """The limits of a cron run every ``interval_s`` (or of a queue consumer) under ``model``.

    ``operator_wall_s`` (``HEADROOM_CRON_DEADLINE_S`` when the operator set it) applies
    when it is stricter than the model's own wall limit.
    """
    if model is TimeModel.PLAN:
        wall, cpu, source = LIMITS["plan's cron timeout"].value, None, "plan"
    else:
        wall = LIMITS["queue consumer wall time" if consumer else "cron wall time"].value
        cpu = LIMITS["queue consumer CPU time"].value if consumer else cron_cpu_limit_s(interval_s)
        source = "platform"
    if operator_wall_s is not None and operator_wall_s < wall:
        wall, source = operator_wall_s, "operator"
    return InvocationLimits(model, wall, cpu, int(LIMITS["subrequests per invocation"].value),
                            int(LIMITS["D1 queries per invocation"].value),
                            int(LIMITS["KV operations per invocation"].value), LIMITS["memory"].value, source)
