"""One number per design: the largest user count with no break, and the limit that breaks next.

Breaking is taken as monotone in users (more users never un-break a limit), so a
doubling search brackets the edge and a bisection finds it to ``tolerance``.
``trial(users)`` is any function returning the first break at that size (None: no
break): `simulate` in production, a stubbed limit in tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from scaling.capacity.breaks import Break

__all__ = ["CapacityResult", "find_capacity"]


@dataclass
class CapacityResult:
    """``carried`` users run with no break; at ``broken_at`` (the next size tried) ``first_break`` breaks."""

    carried: int
    broken_at: int | None
    first_break: Break | None
    trials: dict[int, str | None] = field(default_factory=dict)

    def sentence(self, design: str) -> str:
        if self.first_break is None:
            return f"{design} carries at least {self.carried:,} users (nothing broke up to the search's ceiling)"
        if self.carried == 0:
            return f"{design} breaks already at {self.broken_at:,} users on {self.first_break.limit}"
        return f"{design} carries ≈ {self.carried:,} users; then {self.first_break.limit} breaks"


def find_capacity(trial: Callable[[int], Break | None], *, start: int = 50, ceiling: int = 20_000,
                  tolerance: float = 0.05, minimum: int = 1) -> CapacityResult:
    """Largest n in [minimum, ceiling] with ``trial(n) is None``, within ``tolerance`` (relative) of the edge."""
    trials: dict[int, str | None] = {}
    seen: dict[int, Break | None] = {}

    def t(n: int) -> Break | None:
        if n not in seen:
            found = seen[n] = trial(n)
            trials[n] = found.limit if found else None
        return seen[n]

    lo, hi = 0, max(minimum, min(start, ceiling))
    while t(hi) is None:
        lo = hi
        if hi >= ceiling:
            return CapacityResult(hi, None, None, trials)
        hi = min(ceiling, hi * 2)
    if lo == 0 and hi > minimum:
        lo_candidate = minimum
        if t(lo_candidate) is not None:
            return CapacityResult(0, lo_candidate, seen[lo_candidate], trials)
        lo = lo_candidate
    while hi - lo > max(1, int(lo * tolerance)):
        mid = (lo + hi) // 2
        if t(mid) is None:
            lo = mid
        else:
            hi = mid
    return CapacityResult(lo, hi, seen[hi], trials)
