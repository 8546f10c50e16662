"""One upstream's real call path (limiter, breaker, fetcher) against an in-process
sandbox that counts every answer, for the fault tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from scaling.circuit_breaker import CircuitBreaker
from scaling.clock import Clock
from scaling.errors import ScalingError
from scaling.fetch import Fetcher
from scaling.rate_limit import RateLimiter
from scaling.sandbox.app import Sandbox
from scaling.sandbox.config import SandboxConfig
from scaling.settings import RateSpec
from scaling.store import StateStore
from scaling.store.outage import OutagePolicy


@dataclass
class Tally:
    """What the callers saw, and the longest any single call took (clock seconds)."""

    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    longest_call_s: float = 0.0

    def add_error(self, exc: BaseException) -> None:
        self.errors[type(exc).__name__] = self.errors.get(type(exc).__name__, 0) + 1


class LastfmStack:
    """Last.fm's call path on ``store`` against a sandbox whose true rolling window is ``upstream``."""

    def __init__(self, store: StateStore, clock: Clock, *, policy: OutagePolicy, limit: str = "4/1s",
                 upstream: RateSpec = RateSpec(5, 1.0), share: int = 1) -> None:
        self.clock = clock
        self.sandbox = Sandbox(SandboxConfig().with_upstream("lastfm", requests=upstream), clock=clock)
        self.client = self.sandbox.client(base_url="http://lastfm.sandbox")
        self.limiter = RateLimiter(store, "lastfm", RateSpec.parse(limit), clock=clock, outage_policy=policy,
                                   fail_open_share=share)
        self.breaker = CircuitBreaker(store, "lastfm", clock=clock, outage_policy=policy)
        self.fetcher = Fetcher(self.client, "lastfm", self.limiter, breaker=self.breaker, clock=clock, budget_s=3.0)
        self.tally = Tally()

    async def call(self, i: int) -> None:
        start = self.clock.now()
        try:
            await self.fetcher.request("GET", "/2.0/", endpoint="user.getrecenttracks", params={
                "method": "user.getrecenttracks", "user": f"listener{i % 100 + 1:04d}",
                "api_key": "sandbox-lastfm-key", "format": "json", "limit": "1"})
            self.tally.ok += 1
        except ScalingError as exc:
            self.tally.add_error(exc)
        finally:
            self.tally.longest_call_s = max(self.tally.longest_call_s, self.clock.now() - start)

    async def callers(self, n: int, calls_each: int, offset: int = 0) -> None:
        async def one(c: int) -> None:
            for k in range(calls_each):
                await self.call(offset + c * calls_each + k)

        await asyncio.gather(*(one(c) for c in range(n)))

    def served_ok(self) -> int:
        return self.sandbox.stats().upstream("lastfm").ok

    def over_limit(self) -> int:
        return self.sandbox.stats().upstream("lastfm").rate_limited
