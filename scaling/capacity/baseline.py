"""The upstream app's own design, rebuilt for side-by-side comparison.

What ListenToMore runs today (reference/upstream.md §3, §4): a fixed-window limiter
(150/min for Spotify, 90/min for OpenAI, none for Last.fm) whose window starts with
the first request after the last one expired and whose 429 cooldown is forgotten
with its 120 s TTL; and a cron that polls every user every run, four at a time with
a one-second sleep between batches, until the Worker is killed at 30 s. In one
process the read-modify-write race does not show; the boundary bursts and the
forgotten cooldowns do.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from dataclasses import asdict

from scaling.clock import Clock
from scaling.errors import RateLimited, ScalingError
from scaling.prewarm import AGGREGATE_KEY, ENTRY_KEY, ENTRY_TTL_S, Listen, ListenSource, PrewarmReport, aggregate
from scaling.rate_limit import Headroom, Permit, RateLimiter
from scaling.settings import RateSpec
from scaling.store import StateStore
from scaling.store.memory import MemoryStore

__all__ = ["UPSTREAM_LIMITS", "FixedWindowLimiter", "upstream_limiters", "upstream_prewarm"]

#: RATE_LIMITS in the app's config at HEAD; Last.fm and Songlink have none.
UPSTREAM_LIMITS = {"spotify": RateSpec(150, 60.0), "openai": RateSpec(90, 60.0), "perplexity": RateSpec(30, 60.0),
                   "lastfm": RateSpec(10**6, 60.0), "songlink": RateSpec(10**6, 60.0)}
_STATE_TTL_S = 120.0


class FixedWindowLimiter(RateLimiter):
    """`SpotifyRateLimiter` as the upstream app has it: a `RateLimiter` whose every step is the upstream's.

    It is handed to `Services` in place of the GCRA limiter (``limiters=``), so the
    rest of the service layer runs unchanged; its state lives in this object, as
    the upstream's lives in one KV key.
    """

    def __init__(self, upstream: str, spec: RateSpec, clock: Clock, *, seed: int = 0) -> None:
        super().__init__(MemoryStore(), upstream, spec, clock=clock)
        self._state: dict[str, float] | None = None
        self._expires = 0.0
        self._rng = random.Random(seed)
        self.n429 = self.throttled = self.rejected = 0
        self.wait_seconds = 0.0

    def _read(self, now: float) -> dict[str, float]:
        if self._state is None or now >= self._expires:
            return {"count": 0.0, "start": now, "retry": 0.0}
        return dict(self._state)

    def _write(self, state: dict[str, float], now: float) -> None:
        self._state, self._expires = state, now + _STATE_TTL_S  # a fixed TTL: long bans are forgotten

    def token_capacity(self) -> int:
        return 0

    async def acquire(self, *, tokens: int = 0, max_wait: float = 30.0) -> Permit:
        start = self.clock.now()
        for _attempt in range(3):
            now = self.clock.now()
            st = self._read(now)
            if st["retry"] > now:
                wait = min(st["retry"] - now, 10.0) + self._rng.uniform(0, 2)
            elif now - st["start"] >= self.requests.window:
                self._write({"count": 1.0, "start": now, "retry": 0.0}, now)
                return Permit(waited=now - start, tokens=0, send_at=now)
            elif st["count"] >= self.requests.limit:
                wait = min(self.requests.window - (now - st["start"]), 10.0) * (1 + self._rng.uniform(0.2, 0.5))
            else:
                st["count"] += 1
                self._write(st, now)
                return Permit(waited=now - start, tokens=0, send_at=now)
            self.throttled += 1
            self.wait_seconds += wait
            await self.clock.sleep(wait)
        self.rejected += 1
        raise RateLimited(f"ratelimit:{self.upstream}", 10.0)

    def settle(self, permit: Permit, used_tokens: int) -> None:
        return None

    def record_429(self, retry_after: float | None) -> float:
        now = self.clock.now()
        seconds = 5.0 if retry_after is None else retry_after
        self.n429 += 1
        self._write({"count": 0.0, "start": now, "retry": now + seconds}, now)
        return seconds

    def headroom(self) -> Headroom:
        now = self.clock.now()
        st = self._read(now)
        limit = self.requests.limit
        return Headroom(self.upstream, self.key, limit, self.requests.window, st["count"], limit - st["count"],
                        st["count"] / limit, 0.0, st["retry"] > now, max(0.0, st["retry"] - now), self.n429,
                        self.throttled, self.wait_seconds, self.rejected, False)


def upstream_limiters(clock: Clock, *, seed: int = 0) -> dict[str, RateLimiter]:
    """The upstream app's limiter for each upstream, to hand to `Services(limiters=...)`."""
    return {name: FixedWindowLimiter(name, spec, clock, seed=seed) for name, spec in UPSTREAM_LIMITS.items()}


async def upstream_prewarm(usernames: Sequence[str], source: ListenSource, store: StateStore, clock: Clock, *,
                           deadline_s: float = 30.0, batch: int = 4, pause_s: float = 1.0) -> PrewarmReport:
    """Every user, every run, in batches of four with a pause, until the Worker is killed."""
    start = clock.now()
    report = PrewarmReport(started_at=start, deadline_s=deadline_s, users_total=len(usernames),
                           users_active=len(usernames))
    results: list[Listen] = []

    async def one(user: str) -> None:
        report.polled += 1
        try:
            listen = await source.latest_listen(user, budget_s=10.0, slot_budget_s=10.0)
        except ScalingError as exc:
            report.failed += 1
            report.errors[type(exc).__name__] = report.errors.get(type(exc).__name__, 0) + 1
            return
        if listen is not None:
            results.append(listen)
            store.set(ENTRY_KEY.format(username=user), listen.to_json(), now=clock.now(), ttl=ENTRY_TTL_S)
        report.refreshed += 1

    async def everything() -> None:
        for i in range(0, len(usernames), batch):
            await asyncio.gather(*(one(u) for u in usernames[i:i + batch]))
            if i + batch < len(usernames):
                await clock.sleep(pause_s)

    timed_out = False
    try:
        await asyncio.wait_for(everything(), timeout=deadline_s)
    except TimeoutError:
        timed_out = True  # the Worker is killed: nothing after this point happens
    report.skipped = report.users_total - report.refreshed - report.failed
    report.active_skipped = report.skipped
    report.never_fetched = sum(1 for u in usernames if store.get(ENTRY_KEY.format(username=u), now=clock.now()) is None)
    if not timed_out:
        now = clock.now()
        top = aggregate(results)
        store.set(AGGREGATE_KEY, json.dumps({"tracks": [asdict(e) for e in top], "lastUpdated": now,
                                             "version": 2}).encode(), now=now, ttl=420.0)
    report.errors["timed_out"] = int(timed_out)
    report.duration_s = round(min(clock.now() - start, deadline_s), 3)
    return report
