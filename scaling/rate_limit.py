"""Distributed rate limiting for one upstream (and one credential) on the state store.

A `RateLimiter` hands each caller the exact instant it may send (GCRA with
reservations, see `scaling.store.gcra`), so callers in every process queue on the
store's timeline without polling. The pacing keeps any rolling window at or under
the configured limit, which is what a rolling-window upstream (Spotify: 30 s)
counts. A 429 sets a shared cooldown that every process honours for as long as the
upstream asked, however long that is. AI providers add a token rate, debited in the
same atomic step and settled from the actual usage afterwards.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from scaling.clock import Clock, SystemClock
from scaling.errors import ConfigurationError, RateLimited, StoreError
from scaling.settings import RateSpec, Settings
from scaling.store import GcraDecision, GcraRate, StateStore
from scaling.store.memory import MemoryStore
from scaling.store.outage import OutagePolicy, offload

__all__ = ["Headroom", "Permit", "RateLimiter"]

log = logging.getLogger("headroom.ratelimit")
metrics_log = logging.getLogger("headroom.metrics")

#: The most a first throttle without Retry-After costs (limits with long windows).
FIRST_UNKNOWN_COOLDOWN_S = 5.0
#: The longest cooldown a run of throttles without Retry-After grows to.
MAX_UNKNOWN_COOLDOWN_S = 60.0


@dataclass(frozen=True, slots=True)
class Permit:
    """A reserved slot. Pass it to `RateLimiter.settle` once the token usage is known.

    Attributes:
        waited: seconds the caller waited for its slot.
        tokens: tokens reserved on the token rate (0 without one).
    """

    waited: float
    tokens: int
    send_at: float


@dataclass(frozen=True, slots=True)
class Headroom:
    """How close one limiter is to its limit, for collectors and dashboards."""

    upstream: str
    key: str
    limit: int
    window_s: float
    used: float
    remaining: float
    utilisation: float
    backlog_s: float
    in_cooldown: bool
    cooldown_remaining_s: float
    upstream_429: int
    throttled: int
    wait_seconds: float
    rejected: int
    degraded: bool

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class RateLimiter:
    """One upstream's limiter for one credential, shared through the state store.

    Args:
        store: the shared state store.
        upstream: the upstream's name (also the key prefix).
        requests: requests per rolling window, e.g. ``RateSpec.parse("120/60s")``.
        tokens: tokens per rolling window for AI providers (its burst is the largest
            single reservation; defaults to a quarter of the limit).
        key: the credential this budget belongs to (each Spotify app has its own).
        clock: time source; `StoreTimeClock` in production so hosts agree.
        outage_policy: `OutagePolicy.CLOSED` raises `StoreError` while the store is down;
            "open" falls back to a per-process limiter at ``1/fail_open_share``
            of the rate, so N processes together stay under the limit.
        fail_open_share: how many processes share the budget when failing open.
        warn_wait_s: a caller handed a slot further away than this logs ``[RATE_LIMIT_WARNING]``
            (default: one window, at least 5 s): demand is above the limit. Pacing at 100%
            of the limit is the limiter working and logs nothing. A 429 also warns. At most
            once per window (once a minute for shorter windows), across all processes.
    """

    def __init__(self, store: StateStore, upstream: str, requests: RateSpec, *, tokens: RateSpec | None = None,
                 key: str = "default", clock: Clock | None = None,
                 outage_policy: OutagePolicy | str = OutagePolicy.CLOSED, fail_open_share: int = 4,
                 warn_wait_s: float | None = None) -> None:
        policy = OutagePolicy.parse(outage_policy)
        if fail_open_share < 1:
            raise ConfigurationError("fail_open_share must be at least 1")
        self.store = store
        self.upstream = upstream
        self.key = key
        self.requests = requests
        self.tokens = tokens
        self.clock: Clock = clock or SystemClock()
        self.outage_policy = policy
        self.warn_wait_s = max(requests.window, 5.0) if warn_wait_s is None else warn_wait_s
        self._store_key = f"ratelimit:{upstream}:{key}"
        self._fallback: RateLimiter | None = None
        self._share = fail_open_share
        self._degraded = False
        self._rates_memo: dict[tuple[RateSpec, RateSpec | None, int], list[GcraRate]] = {}
        # The latest cooldown end this process saw: a floor the store may forget (a restart
        # without persistence) but the upstream did not.
        self._floor = 0.0
        # Throttles without Retry-After: the last one's time and cost, to grow only on repeats.
        self._unknown_at = float("-inf")
        self._unknown_cost = 0.0
        # The latest slot this process was handed (by the store or, in an outage, locally).
        self._last_booked = 0.0
        # Callers of this process sleeping toward a slot: a new cooldown wakes them.
        self._wakers: set[asyncio.Future[None]] = set()

    @classmethod
    def from_settings(cls, store: StateStore, settings: Settings, upstream: str, *, key: str = "default",
                      clock: Clock | None = None) -> RateLimiter:
        up = settings.upstream(upstream)
        return cls(store, upstream, up.requests, tokens=up.tokens, key=key, clock=clock,
                   outage_policy=up.outage_policy)

    # -- rates ------------------------------------------------------------------------
    @staticmethod
    def _rate(spec: RateSpec, cost: float, capacity: float | None = None) -> GcraRate:
        burst = float(capacity if capacity is not None else spec.burst)
        # A bucket of B refilled every T admits at most B + window/T - 1 in any half-open
        # window (t - window, t], which is how rolling-window upstreams count: so
        # T = window / (limit - B + 1). The microsecond keeps float rounding of epoch
        # timestamps (about 0.2 us) from ever letting slot k and slot k + limit share a window.
        interval = spec.window / max(spec.limit - burst + 1.0, 1.0) + 1e-6
        return GcraRate(interval=interval, capacity=burst, cost=cost, window=spec.window, limit=spec.limit)

    def token_capacity(self) -> int:
        """The largest token reservation one call can make."""
        if self.tokens is None:
            return 0
        return self.tokens.burst if self.tokens.burst > 1 else max(1, self.tokens.limit // 4)

    def _rates(self, tokens: int) -> list[GcraRate]:
        # Called on every acquire; the rates depend only on the specs and the reservation.
        memo_key = (self.requests, self.tokens, tokens)
        rates = self._rates_memo.get(memo_key)
        if rates is None:
            rates = [self._rate(self.requests, 1.0)]
            if self.tokens is not None:
                rates.append(self._rate(self.tokens, float(min(tokens, self.token_capacity())),
                                        capacity=self.token_capacity()))
            if len(self._rates_memo) >= 256:
                self._rates_memo.clear()
            self._rates_memo[memo_key] = rates
        return list(rates)

    # -- acquiring ----------------------------------------------------------------------
    async def acquire(self, *, tokens: int = 0, max_wait: float = 30.0) -> Permit:
        """Wait for a slot, at most ``max_wait`` seconds.

        Args:
            tokens: tokens to reserve (prompt + max output) on the token rate.
            max_wait: the caller's budget; a page might allow 2 s, a cron its deadline.

        Returns:
            A `Permit`; the call may be sent as soon as this returns.

        Raises:
            RateLimited: the slot (or the end of a 429 cooldown) is further away than
                ``max_wait``; nothing was reserved. ``retry_after`` says how far.
            StoreError: the store is down and the policy is fail-closed.
        """
        reserve = min(max(0, int(tokens)), self.token_capacity())
        start = self.clock.now()
        deadline = start + max(0.0, max_wait)
        while True:
            now = self.clock.now()
            decision = await self._acquire_once(reserve, now, deadline - now)
            if not decision.admitted:
                in_cd = decision.cooldown_until > now
                raise RateLimited(self._store_key, decision.wait, cooldown=in_cd)
            self._maybe_warn(decision, now)
            if decision.wait <= 0:
                return Permit(waited=now - start, tokens=reserve, send_at=now)
            if not await self._wait_for_slot(decision):
                continue  # a cooldown now covers our slot: queue again behind it, at once
            # A 429 seen by another process while we slept cancels our slot: queue again after it.
            woke = self.clock.now()
            if await self._cooldown_until(woke) <= woke:
                return Permit(waited=woke - start, tokens=reserve, send_at=decision.send_at)

    async def _wait_for_slot(self, decision: GcraDecision) -> bool:
        """Sleep until the slot, unless a cooldown comes to cover it first (False then).

        A 429 in this process wakes every sleeper at once; one in another process is
        noticed within a window (at least a second), so no caller sleeps toward a slot
        that a new ban has made worthless and then queues last behind the ban.
        """
        recheck = max(self.requests.window, 1.0)
        loop = asyncio.get_running_loop()
        while (remaining := decision.send_at - self.clock.now()) > 0:
            step = min(remaining, recheck)
            waker: asyncio.Future[None] = loop.create_future()
            self._wakers.add(waker)
            sleeper = asyncio.ensure_future(self.clock.sleep(step))
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                self._wakers.discard(waker)
            if (waker.done() or step < remaining) and await self._cooldown_until(self.clock.now()) > decision.send_at:
                return False
        return True

    async def _acquire_once(self, tokens: int, now: float, budget: float) -> GcraDecision:
        try:
            decision = await offload(self.store, lambda: self._step(self.store, self._rates(tokens), now, budget),
                                     "limiter acquire")
        except StoreError as exc:
            decision = self._step(self._on_outage(exc).store, self._fallback_rates(tokens), now, budget)
            if decision.admitted:
                self._last_booked = max(self._last_booked, decision.send_at)
            return decision
        if self._degraded:
            log.warning("[%s] state store is back; shared limiting resumed", self.upstream)
            self._degraded = False
            # The store knows nothing of the sends made while it was down (and may have come
            # back empty): nobody starts a new window until a whole one has passed since them.
            resume = max(now, self._last_booked) + self.requests.window
            decision = await offload(self.store, lambda: self._handover(self.store, resume, tokens, now, budget),
                                     "limiter resume")
        if decision.admitted:
            self._last_booked = max(self._last_booked, decision.send_at)
        return decision

    def _handover(self, store: StateStore, resume: float, tokens: int, now: float, budget: float) -> GcraDecision:
        """Switch pacing back to the shared store with no window holding sends from both
        sides: a send before the switch and one after it are a full window apart."""
        store.gcra_cooldown(self._store_key, resume, now=now, window=self.requests.window, throttle=False)
        return store.gcra_acquire(self._store_key, self._rates(tokens), now=now, max_wait=budget)

    def _step(self, store: StateStore, rates: list[GcraRate], now: float, budget: float) -> GcraDecision:
        decision = store.gcra_acquire(self._store_key, rates, now=now, max_wait=budget)
        if self._floor > max(now, decision.cooldown_until):
            # The store lost a ban this process saw (restarted empty, or the fallback is
            # new): put it back before anyone sends into it, then queue again behind it.
            log.warning("[%s] cooldown until %.0f missing from the %s store; re-seeded", self.upstream,
                        self._floor, store.backend)
            # Not a new 429: headroom() must not count a throttle the upstream never sent.
            store.gcra_cooldown(self._store_key, self._floor, now=now, window=self.requests.window, throttle=False)
            decision = store.gcra_acquire(self._store_key, rates, now=now, max_wait=budget)
        return decision

    def _fallback_rates(self, tokens: int) -> list[GcraRate]:
        shared = RateSpec(max(1, self.requests.limit // self._share), self.requests.window, 1)
        rates = [self._rate(shared, 1.0)]
        if self.tokens is not None:
            cap = max(1, self.token_capacity() // self._share)
            share = RateSpec(max(cap + 1, self.tokens.limit // self._share), self.tokens.window, cap)
            rates.append(self._rate(share, float(min(tokens, cap)), capacity=cap))
        return rates

    def _on_outage(self, exc: StoreError) -> RateLimiter:
        if self.outage_policy is OutagePolicy.CLOSED:
            raise exc
        if self._fallback is None:
            self._fallback = RateLimiter(MemoryStore(), self.upstream, self.requests, tokens=self.tokens,
                                         key=self.key, clock=self.clock)
        if not self._degraded:
            log.warning("[%s] state store unavailable (%s); failing open at 1/%d of the limit per process",
                        self.upstream, exc, self._share)
            self._degraded = True
            # Slots the store handed out may still be sent: local pacing starts a window after them.
            now = self.clock.now()
            self._fallback.store.gcra_cooldown(self._store_key, max(now, self._last_booked) + self.requests.window,
                                               now=now, window=self.requests.window, throttle=False)
        return self._fallback

    def _maybe_warn(self, decision: GcraDecision, now: float) -> None:
        if decision.wait > self.warn_wait_s + 1e-3:  # a slot exactly one window away is pacing
            self._warn("backlog", now, decision.used, decision.wait, decision.cooldown_until)

    def _warn(self, reason: str, now: float, used: float, wait: float, cooldown_until: float) -> None:
        """One ``[RATE_LIMIT_WARNING]`` per period across every process, in the metrics
        writer's format and keys (`scaling.metrics.logs.log_rate_limit_warning`)."""
        # Once per window, but at most once a minute: a 1 s Last.fm window would otherwise
        # log every second of an overloaded cron.
        period = max(self.requests.window, 60.0)
        try:
            first = self.store.add(f"{self._store_key}:warned:{int(now // period)}", b"1", now=now, ttl=period)
        except StoreError:
            first = False
        if not first:
            return
        # The two-bucket estimate counts queued reservations early; pacing guarantees the limit.
        used = min(used, float(self.requests.limit))
        metrics_log.warning("[RATE_LIMIT_WARNING] %s", json.dumps({
            "timestamp": _iso(now), "service": self.upstream, "key": self.key, "used": round(used, 1),
            "limit": self.requests.limit, "utilisation": round(used / self.requests.limit, 4),
            "inCooldown": cooldown_until > now, "cooldownUntil": _iso(cooldown_until) if cooldown_until > now else None,
            "reason": reason, "waitS": round(wait, 3), "upstream429": int(reason == "throttled"),
            "throttled": 0, "rejected": 0,
            "source": "limiter"},
            separators=(",", ":")))

    async def _cooldown_until(self, now: float) -> float:
        try:
            snap = await offload(self.store, lambda: self.store.gcra_snapshot(self._store_key, now=now,
                                                                               window=self.requests.window),
                                 "limiter cooldown read")
        except StoreError as exc:
            self._on_outage(exc)
            return self._floor if self._floor > now else 0.0
        return max(snap.cooldown_until, self._floor if self._floor > now else 0.0)

    # -- after the call -------------------------------------------------------------------
    def settle(self, permit: Permit, used_tokens: int) -> None:
        """Refund tokens reserved but not used (or charge those used beyond the reservation)."""
        if self.tokens is None:
            return
        delta = permit.tokens - max(0, int(used_tokens))
        if delta == 0:
            return
        now = self.clock.now()
        try:
            self.store.gcra_refund(self._store_key, [0.0, float(delta)], self._rates(0), now=now)
        except StoreError as exc:
            log.warning("[%s] could not settle %d tokens: %s", self.upstream, delta, exc)

    async def asettle(self, permit: Permit, used_tokens: int) -> None:
        """`settle` off the event loop (it never raises for the store)."""
        if self.tokens is not None and permit.tokens != max(0, int(used_tokens)):
            try:
                await offload(self.store, lambda: self.settle(permit, used_tokens), "limiter settle")
            except StoreError as exc:
                log.warning("[%s] could not settle tokens: %s", self.upstream, exc)

    def record_429(self, retry_after: float | None) -> float:
        """Start the shared cooldown after an upstream 429.

        Args:
            retry_after: seconds the upstream asked for. None (it did not say, or said
                nonsense) costs one window of the limit (at most
                `FIRST_UNKNOWN_COOLDOWN_S`), doubling (up to
                `MAX_UNKNOWN_COOLDOWN_S`) only while such throttles keep coming.

        Returns:
            Seconds until the cooldown (possibly extended by another process) ends.

        Raises:
            StoreError: the store is down and the policy is fail-closed.
        """
        now, wait = self._ban(retry_after)
        try:
            until = self.store.gcra_cooldown(self._store_key, now + wait, now=now, window=self.requests.window)
        except StoreError as exc:
            until = self._on_outage(exc).store.gcra_cooldown(self._store_key, now + wait, now=now,
                                                             window=self.requests.window)
        return self._banned(now, until)

    async def arecord_429(self, retry_after: float | None) -> float:
        """`record_429` off the event loop (a subclass's `record_429` is what runs)."""
        try:
            return await offload(self.store, lambda: self.record_429(retry_after), "limiter cooldown")
        except StoreError as exc:
            # The store outlived its bound (fail-closed has raised by now): ban locally.
            now = self.clock.now()
            wait = min(self.requests.window, FIRST_UNKNOWN_COOLDOWN_S) if retry_after is None else retry_after
            until = self._on_outage(exc).store.gcra_cooldown(self._store_key, now + max(0.0, wait), now=now,
                                                             window=self.requests.window)
            return self._banned(now, until)

    def _ban(self, retry_after: float | None) -> tuple[float, float]:
        now = self.clock.now()
        if retry_after is not None:
            return now, max(0.0, retry_after)
        # One window of the limit is what an over-count by a rolling-window upstream can
        # cost at most; long windows (Spotify's 30 s) start from the old 5 s instead.
        base = min(self.requests.window, FIRST_UNKNOWN_COOLDOWN_S)
        # A repeat is a throttle within a window of the last one's cooldown ending.
        repeat = now <= self._unknown_at + self._unknown_cost + self.requests.window
        cost = min(MAX_UNKNOWN_COOLDOWN_S, self._unknown_cost * 2) if repeat else base
        self._unknown_at, self._unknown_cost = now, max(cost, base)
        return now, self._unknown_cost

    def _banned(self, now: float, until: float) -> float:
        self._floor = max(self._floor, until)
        log.warning("[%s] 429 received, entering cooldown for %.1fs", self.upstream, until - now)
        self._warn("throttled", now, 0.0, until - now, until)
        for waker in list(self._wakers):
            # This may run on a store thread (`arecord_429`): futures are set on their loop.
            waker.get_loop().call_soon_threadsafe(_wake, waker)
        return until - now

    def headroom(self) -> Headroom:
        """Current usage of this limiter (read-only)."""
        now = self.clock.now()
        snap = self.store.gcra_snapshot(self._store_key, now=now, window=self.requests.window)
        limit = self.requests.limit
        cd = max(0.0, snap.cooldown_until - now)
        used = min(snap.used, float(limit))  # see _maybe_warn: above the limit is estimator error
        return Headroom(upstream=self.upstream, key=self.key, limit=limit, window_s=self.requests.window,
                        used=round(used, 3), remaining=max(0.0, limit - used),
                        utilisation=round(used / limit, 4), backlog_s=round(snap.backlog, 3),
                        in_cooldown=cd > 0, cooldown_remaining_s=round(cd, 3), upstream_429=snap.upstream_429,
                        throttled=snap.throttled, wait_seconds=round(snap.wait_seconds, 3), rejected=snap.rejected,
                        degraded=self._degraded)

    def __repr__(self) -> str:
        return f"RateLimiter({self.upstream!r}, key={self.key!r}, {self.requests}, tokens={self.tokens})"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _wake(waker: asyncio.Future[None]) -> None:
    if not waker.done():
        waker.set_result(None)
