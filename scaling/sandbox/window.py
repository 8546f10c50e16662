"""The upstreams' limits: exact rolling windows and Spotify's escalating ban.

`SlidingLog` keeps the time (and weight) of every admitted request, so "at most
L per rolling W seconds" holds for *every* window, not just aligned ones: the
oracle a client limiter is measured against. A request at time t occupies the
window for [t, t + W). Refused requests are not logged.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from scaling.settings import RateSpec

__all__ = ["Ban", "SlidingLog", "Verdict", "ceil_seconds"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of asking a window for room.

    Attributes:
        admitted: whether the request was logged.
        retry_after: seconds until ``amount`` would fit (0 when admitted).
        used: units in the window after this decision.
        limit: the window's capacity.
        reset: seconds until the window is empty again (OpenAI's "reset").
    """

    admitted: bool
    retry_after: float
    used: float
    limit: int
    reset: float

    @property
    def remaining(self) -> int:
        return max(0, int(self.limit - self.used))


class SlidingLog:
    """A true rolling window: the log of admitted times and weights.

    Args:
        spec: ``spec.limit`` units per rolling ``spec.window`` seconds.
    """

    __slots__ = ("_log", "_used", "spec")

    def __init__(self, spec: RateSpec) -> None:
        self.spec = spec
        self._log: deque[tuple[float, float]] = deque()
        self._used = 0.0

    def _expire(self, now: float) -> None:
        horizon = now - self.spec.window
        while self._log and self._log[0][0] <= horizon:
            _, amount = self._log.popleft()
            self._used -= amount
        if not self._log:
            self._used = 0.0  # no float drift once empty

    def used(self, now: float) -> float:
        """Units admitted in the window ending at ``now``."""
        self._expire(now)
        return self._used

    def retry_after(self, now: float, amount: float = 1.0) -> float:
        """Seconds until ``amount`` more units fit (0 if they fit now; inf if they never can)."""
        self._expire(now)
        if amount > self.spec.limit:
            return math.inf
        excess = self._used + amount - self.spec.limit
        if excess <= 0:
            return 0.0
        freed = 0.0
        for t, a in self._log:
            freed += a
            if freed >= excess - 1e-9:
                return max(0.0, t + self.spec.window - now)
        return self.spec.window  # unreachable: the log holds everything counted in _used

    def reset(self, now: float) -> float:
        """Seconds until every logged request has left the window."""
        self._expire(now)
        return max(0.0, self._log[-1][0] + self.spec.window - now) if self._log else 0.0

    def check(self, now: float, amount: float = 1.0) -> Verdict:
        """What `admit` would answer, without logging anything."""
        wait = self.retry_after(now, amount)
        used = self._used + amount if wait == 0 else self._used
        reset = self.spec.window if wait == 0 else self.reset(now)
        return Verdict(wait == 0, wait, used, self.spec.limit, reset)

    def admit(self, now: float, amount: float = 1.0) -> Verdict:
        """Log ``amount`` at ``now`` if it fits in the window, else refuse."""
        verdict = self.check(now, amount)
        if verdict.admitted:
            self.record(now, amount)
        return verdict

    def record(self, now: float, amount: float = 1.0) -> None:
        """Log ``amount`` at ``now`` unconditionally (after a joint check of several logs)."""
        self._expire(now)
        self._log.append((now, amount))
        self._used += amount

    def times(self, now: float) -> list[float]:
        """The admit times still in the window, oldest first."""
        self._expire(now)
        return [t for t, _ in self._log]


class Ban:
    """Spotify's 429 cooldown, which grows when a client keeps calling through it.

    Args:
        factor: each call during the ban multiplies the remaining ban by this.
        cap: the longest ban in seconds.
    """

    __slots__ = ("_until", "cap", "factor")

    def __init__(self, factor: float, cap: float) -> None:
        self.factor = factor
        self.cap = cap
        self._until = -math.inf

    def remaining(self, now: float) -> float:
        return max(0.0, self._until - now)

    def start(self, now: float, seconds: float) -> int:
        """Begin a ban of ``seconds`` (rounded up to whole seconds); returns the Retry-After."""
        retry = ceil_seconds(min(seconds, self.cap))
        self._until = max(self._until, now + retry)
        return retry

    def escalate(self, now: float) -> int:
        """A call arrived during the ban: grow it and return the new Retry-After."""
        grown = min(self.remaining(now) * self.factor, self.cap)
        retry = ceil_seconds(grown)
        self._until = now + retry
        return retry


def ceil_seconds(seconds: float) -> int:
    """Whole seconds, rounded up, at least 1: how Spotify's Retry-After reads."""
    # A tiny epsilon keeps 20.0000000001 (float noise) from becoming 21.
    return max(1, math.ceil(seconds - 1e-6))
