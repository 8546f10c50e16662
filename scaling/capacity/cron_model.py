"""Little's law for the prewarm cron: how long a run takes for N users, and how many users fit a deadline.

A run polls N users, ``c`` calls at a time (a Worker invocation gets 6 outgoing
connections), so it needs ⌈N/c⌉ waves of one call each; with L = λW per wave that
is ``⌈N/c⌉·W``. The shared Last.fm limiter also caps the pace at ``r`` calls a
second, so the run takes at least ``N/r``. Whatever the run does besides (plan,
album art, aggregate) is a fixed ``overhead``::

    T(N) ≈ overhead + max(⌈N/c⌉·W_p95, N/r)

Worked example (reference/anchors-dashboard.md §2): W = 0.5 s, c = 6, a 30 s
deadline with 50 % headroom gives N_max = 180 users: 150 pass, 500 fail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["CONCURRENCY", "CronModel"]

#: Outgoing connections per Cloudflare Worker invocation.
CONCURRENCY = 6


@dataclass(frozen=True, slots=True)
class CronModel:
    """``T(N) ≈ overhead + max(⌈N/c⌉·W, N/r)`` for N users polled.

    Attributes:
        wave_s: W, the (p95) time of one wave of ``concurrency`` parallel calls.
        concurrency: c, calls in flight at once.
        rate_per_s: r, the limiter's calls per second (None: unpaced).
        overhead_s: the run's time outside the polling phase.
    """

    wave_s: float
    concurrency: int = CONCURRENCY
    rate_per_s: float | None = None
    overhead_s: float = 0.0

    def duration(self, polled: float) -> float:
        """Seconds a run polling ``polled`` users takes."""
        waves = math.ceil(max(0.0, polled) / self.concurrency) * self.wave_s
        paced = polled / self.rate_per_s if self.rate_per_s else 0.0
        return self.overhead_s + max(waves, paced)

    def max_polled(self, budget_s: float) -> int:
        """The most users one run can poll within ``budget_s`` (0 if not even one)."""
        # duration() never falls as N grows, so the largest fitting N is found by bisection.
        lo, hi = 0, 1
        while self.duration(hi) <= budget_s and hi < 10**7:
            hi *= 2
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if self.duration(mid) <= budget_s else (lo, mid)
        return lo if self.duration(lo) <= budget_s else 0
