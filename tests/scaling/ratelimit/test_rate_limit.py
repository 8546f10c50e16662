"""The distributed limiter: never over the rolling limit, exact waits, shared cooldowns."""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing as mp
from pathlib import Path

import pytest
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from scaling.clock import VirtualClock
from scaling.errors import ConfigurationError, RateLimited, StoreError
from scaling.rate_limit import RateLimiter
from scaling.settings import RateSpec, Settings
from scaling.store import StateStore, open_store
from scaling.store.memory import MemoryStore


def limiter(store: StateStore, clock: VirtualClock, spec: str = "60/30s", **kw: object) -> RateLimiter:
    return RateLimiter(store, "spotify", RateSpec.parse(spec), clock=clock, **kw)  # type: ignore[arg-type]


def max_in_window(times: list[float], window: float) -> int:
    """The sliding-log oracle: the most sends in any half-open window (t - W, t]."""
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def test_saturated_limiter_stays_under_the_rolling_limit_and_uses_it(clock: VirtualClock) -> None:
    """500 concurrent callers against 60/30 s: never more than 60 in any 30 s, and ≥ 95% used."""
    lim = limiter(MemoryStore(), clock)
    sends: list[float] = []

    async def caller() -> None:
        await lim.acquire(max_wait=10_000)
        sends.append(clock.now())

    async def main() -> None:
        await asyncio.gather(*(caller() for _ in range(500)))

    clock.run(main())
    assert max_in_window(sends, 30.0) <= 60
    rate = (len(sends) - 1) / (max(sends) - min(sends))
    assert rate >= 0.95 * 60 / 30


def test_waits_are_exact_reservations_not_polls(clock: VirtualClock) -> None:
    """Ten callers at once get ten slots, each exactly one interval after the last."""
    lim = limiter(MemoryStore(), clock, "10/10s")
    starts: list[float] = []

    async def caller() -> None:
        p = await lim.acquire(max_wait=60)
        starts.append(p.send_at)

    async def main() -> None:
        await asyncio.gather(*(caller() for _ in range(10)))

    t0 = clock.now()
    clock.run(main())
    assert [s - t0 for s in sorted(starts)] == pytest.approx([float(i) for i in range(10)], abs=1e-4)


def test_budget_exceeded_raises_at_once_and_reserves_nothing(clock: VirtualClock) -> None:
    """A caller whose wait would exceed its budget gets RateLimited immediately."""
    lim = limiter(MemoryStore(), clock, "2/10s")

    async def main() -> float:
        await lim.acquire(max_wait=0)
        t = clock.now()
        with pytest.raises(RateLimited) as info:
            await lim.acquire(max_wait=5)
        assert clock.now() == t  # no sleeping before refusing
        return info.value.retry_after

    assert clock.run(main()) == pytest.approx(5.0, abs=1e-4)  # 2 per rolling 10 s: one slot every 5 s
    assert lim.headroom().rejected == 1


def test_cooldown_is_shared_and_lasts_as_long_as_retry_after(tmp_path: Path, clock: VirtualClock) -> None:
    """A 429 recorded by one process's limiter holds back another's, for the full ban."""
    url = f"sqlite:///{tmp_path}/s.db"
    a = limiter(open_store(url, "n"), clock)
    b = limiter(open_store(url, "n"), clock)
    a.record_429(36_000.0)  # ten hours, as Spotify escalated to

    async def main() -> None:
        with pytest.raises(RateLimited) as info:
            await b.acquire(max_wait=30)
        assert info.value.cooldown and info.value.retry_after == pytest.approx(36_000)

    clock.run(main())
    clock.advance(35_999)
    assert b.headroom().in_cooldown
    clock.advance(1)
    clock.run(b.acquire(max_wait=0))
    a.store.close()
    b.store.close()


def test_garbage_retry_after_still_cools_down(clock: VirtualClock) -> None:
    """No usable Retry-After costs one window of the limit (never zero), doubling only on repeats."""
    lim = limiter(MemoryStore(), clock, "4/1s")
    assert lim.record_429(None) == pytest.approx(1.0)
    assert lim.headroom().in_cooldown
    clock.advance(1.5)
    assert lim.record_429(None) == pytest.approx(2.0)  # a repeat: the upstream still objects
    clock.advance(600)
    assert lim.record_429(None) == pytest.approx(1.0)  # long after: back to one window
    assert limiter(MemoryStore(), clock, "60/30s").record_429(None) == pytest.approx(5.0)  # long windows: 5 s


def test_waiter_scheduled_before_a_429_waits_for_the_cooldown(clock: VirtualClock) -> None:
    """A caller already queued when another process records a 429 does not send into the ban."""
    lim = limiter(MemoryStore(), clock, "2/10s")
    sent: list[float] = []

    async def caller() -> None:
        await lim.acquire(max_wait=1000)
        sent.append(clock.now())

    async def main() -> None:
        await lim.acquire(max_wait=0)
        task = asyncio.ensure_future(caller())  # slot at +10 s
        await clock.sleep(1)
        lim.record_429(100.0)
        await task

    t0 = clock.now()
    clock.run(main())
    assert sent[0] - t0 >= 101.0


def test_tokens_are_reserved_with_the_request_and_refunded(clock: VirtualClock) -> None:
    """AI calls reserve prompt + max tokens together with the request, then settle to actual usage."""
    lim = RateLimiter(MemoryStore(), "openai", RateSpec.parse("600/60s"), tokens=RateSpec.parse("4000/60s"),
                      clock=clock)
    assert lim.token_capacity() == 1000

    async def main() -> list[float]:
        waits = []
        p = await lim.acquire(tokens=1000, max_wait=100)
        waits.append(p.waited)
        lim.settle(p, 100)  # used far less than reserved
        p2 = await lim.acquire(tokens=1000, max_wait=100)
        waits.append(p2.waited)
        p3 = await lim.acquire(tokens=1000, max_wait=100)
        waits.append(p3.waited)
        return waits

    waits = clock.run(main())
    # Refill is ~3000 tokens/min (limit minus burst): 1000 tokens take 20 s. The refund of 900
    # leaves only the 100 used to refill (2 s); without it the second call would wait 20 s.
    assert waits == pytest.approx([0.0, 2.0, 20.0], rel=1e-3)


def test_callers_queued_before_a_ban_requeue_at_once(clock: VirtualClock) -> None:
    """A 429 wakes callers sleeping toward a slot it covers: they queue behind the ban ahead of later arrivals."""
    lim = limiter(MemoryStore(), clock, "1/10s")
    order: list[str] = []

    async def caller(name: str) -> None:
        await lim.acquire(max_wait=1000)
        order.append(name)

    async def main() -> None:
        await lim.acquire(max_wait=0)
        early = asyncio.ensure_future(caller("queued before the ban"))  # slot at +10 s
        await clock.sleep(1)
        lim.record_429(100.0)
        await clock.sleep(4)
        late = asyncio.ensure_future(caller("arrived during the ban"))
        await asyncio.gather(early, late)

    clock.run(main())
    assert order == ["queued before the ban", "arrived during the ban"]


def test_pacing_at_the_limit_logs_no_rate_limit_warning(clock: VirtualClock, caplog: pytest.LogCaptureFixture) -> None:
    """Callers paced at 100% of the limit (the prewarm's design) are the limiter working: no warning."""
    lim = limiter(MemoryStore(), clock, "5/1s")
    caplog.set_level(logging.WARNING, logger="headroom.metrics")

    async def main() -> None:
        async def caller() -> None:
            for _ in range(300):
                await lim.acquire(max_wait=100)

        await asyncio.gather(*(caller() for _ in range(4)))  # 1,200 calls at 5/s: four minutes at the limit

    clock.run(main())
    assert not [r for r in caplog.records if "[RATE_LIMIT_WARNING]" in r.getMessage()]


def test_overload_warns_at_most_once_a_minute(clock: VirtualClock, caplog: pytest.LogCaptureFixture) -> None:
    """Demand above the limit (callers queued past the threshold) warns, once a minute, in one format."""
    lim = limiter(MemoryStore(), clock, "5/1s")
    caplog.set_level(logging.WARNING, logger="headroom.metrics")
    start = clock.now()

    async def main() -> None:
        async def caller() -> None:
            for _ in range(30):
                await lim.acquire(max_wait=1000)

        await asyncio.gather(*(caller() for _ in range(40)))  # 1,200 calls queued at once: a 4-minute backlog

    clock.run(main())
    lines = [r.getMessage() for r in caplog.records if "[RATE_LIMIT_WARNING]" in r.getMessage()]
    minutes = (clock.now() - start) / 60
    assert 1 <= len(lines) <= minutes + 1
    body = json.loads(lines[0].split(" ", 1)[1])
    assert body["service"] == "spotify" and body["reason"] == "backlog" and body["waitS"] >= 5
    assert list(body) == ["timestamp", "service", "key", "used", "limit", "utilisation", "inCooldown",
                          "cooldownUntil", "reason",
                          "waitS", "upstream429", "throttled", "rejected", "source"]  # the metrics writer's keys


class _BrokenStore(MemoryStore):
    def gcra_acquire(self, *a: object, **k: object):  # type: ignore[no-untyped-def]
        raise StoreError("redis went away", backend="redis")


def test_store_outage_fails_closed_by_default(clock: VirtualClock) -> None:
    """With the store down, a fail-closed limiter raises a typed StoreError."""
    lim = limiter(_BrokenStore(), clock)
    with pytest.raises(StoreError):
        clock.run(lim.acquire(max_wait=1))


def test_store_outage_fail_open_uses_a_per_process_share(clock: VirtualClock) -> None:
    """Failing open, one process gets 1/N of the limit, so N processes stay under it."""
    lim = limiter(_BrokenStore(), clock, "60/30s", outage_policy="open", fail_open_share=4)
    sends: list[float] = []

    async def main() -> None:
        for _ in range(40):
            await lim.acquire(max_wait=1000)
            sends.append(clock.now())

    clock.run(main())
    assert max_in_window(sends, 30.0) <= 15


def test_bad_policy_is_a_configuration_error() -> None:
    """A typo in the outage policy is caught at construction."""
    with pytest.raises(ConfigurationError):
        RateLimiter(MemoryStore(), "x", RateSpec.parse("1/1s"), outage_policy="maybe")


def test_from_settings_uses_the_plans_defaults() -> None:
    """Spotify defaults to the plan's 120/min, OpenAI to 60 rpm plus a token rate."""
    s = Settings.defaults()
    assert RateLimiter.from_settings(MemoryStore(), s, "spotify").requests == RateSpec(120, 60.0)
    lim = RateLimiter.from_settings(MemoryStore(), s, "openai")
    assert lim.requests.limit == 60 and lim.tokens is not None


class LimiterVsOracle(RuleBasedStateMachine):
    """Random arrivals, budgets and 429s: the admitted sends never exceed the limit in
    any rolling window, never fall inside a cooldown, and never wait beyond budget."""

    @initialize(limit=st.integers(2, 20), window=st.sampled_from([1.0, 10.0, 30.0]), burst=st.integers(1, 3))
    def setup(self, limit: int, window: float, burst: int) -> None:
        self.clock = VirtualClock()
        self.spec = RateSpec(limit, window, min(burst, limit - 1) or 1)
        self.lim = RateLimiter(MemoryStore(), "x", self.spec, clock=self.clock)
        self.sends: list[float] = []
        self.cooldowns: list[tuple[float, float]] = []

    @rule(dt=st.floats(0, 5))
    def tick(self, dt: float) -> None:
        self.clock.advance(dt)

    @rule(budget=st.sampled_from([0.0, 0.5, 3.0, 60.0]), n=st.integers(1, 5))
    def burst_of_callers(self, budget: float, n: int) -> None:
        async def one() -> None:
            start = self.clock.now()
            try:
                p = await self.lim.acquire(max_wait=budget)
            except RateLimited:
                return
            assert self.clock.now() - start <= budget + 1e-6
            assert p.waited <= budget + 1e-6
            self.sends.append(self.clock.now())

        async def main() -> None:
            await asyncio.gather(*(one() for _ in range(n)))

        self.clock.run(main())

    @rule(secs=st.floats(0.1, 20))
    def upstream_429(self, secs: float) -> None:
        now = self.clock.now()
        self.lim.record_429(secs)
        self.cooldowns.append((now, now + secs))

    @invariant()
    def never_over_the_rolling_limit(self) -> None:
        if hasattr(self, "sends"):
            assert max_in_window(self.sends, self.spec.window) <= self.spec.limit

    @invariant()
    def nothing_sent_during_a_cooldown(self) -> None:
        for start, end in getattr(self, "cooldowns", []):
            assert not any(start < t < end - 1e-9 for t in self.sends)


TestLimiterVsOracle = LimiterVsOracle.TestCase
TestLimiterVsOracle.settings = hsettings(max_examples=60, stateful_step_count=30, deadline=None)


def _hammer(url: str, ns: str, n: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    import time as _time

    from scaling.clock import StoreTimeClock

    store = open_store(url, ns)
    clock = StoreTimeClock(store.time)
    lim = RateLimiter(store, "spotify", RateSpec.parse("40/2s"), clock=clock)

    async def main() -> list[float]:
        sent = []
        for _ in range(n):
            await lim.acquire(max_wait=60)
            sent.append(_time.time())
        return sent

    out.put(asyncio.run(main()))


@pytest.mark.e2e
def test_four_real_processes_share_one_budget(shared_store_url: str, namespace: str) -> None:
    """Four OS processes, real time, one limit: the merged sends stay under it (with network slack)."""
    ctx = mp.get_context("fork")
    q: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=_hammer, args=(shared_store_url, namespace, 15, q)) for _ in range(4)]
    for p in procs:
        p.start()
    sends = [t for _ in procs for t in q.get(timeout=60)]
    for p in procs:
        p.join(30)
    assert len(sends) == 60
    # Wake-ups run late by scheduler jitter (never early), so allow 150 ms of bunching.
    assert max_in_window(sends, 2.0 - 0.15) <= 40


def test_a_reseeded_ban_is_not_counted_as_a_429(clock: VirtualClock) -> None:
    """After the store restarts empty, the process puts its ban back; headroom() shows the
    cooldown but no throttle the upstream never sent (one 429 in total, not two)."""
    store = MemoryStore()
    lim = limiter(store, clock, "60/30s")
    lim.record_429(3600.0)
    assert lim.headroom().upstream_429 == 1
    store.clear()  # the state store restarted without persistence
    with pytest.raises(RateLimited):
        clock.run(lim.acquire(max_wait=5))  # re-seeds the ban, then refuses to send into it
    after = lim.headroom()
    assert after.in_cooldown and after.upstream_429 == 0
