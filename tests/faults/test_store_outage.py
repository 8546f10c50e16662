"""Each outage policy with the state store killed, stopped and restarted under load:
no over-limit answer upstream, no served answer discarded, recovery after restart."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import pytest

from scaling.clock import SystemClock, VirtualClock
from scaling.errors import StoreError
from scaling.rate_limit import RateLimiter
from scaling.settings import RateSpec
from scaling.store import StateStore, open_store
from scaling.store.outage import OutagePolicy, offload
from tests.faults.conftest import OwnPostgres, OwnRedis
from tests.faults.stack import LastfmStack

pytestmark = pytest.mark.faults


def _ns() -> str:
    return f"faults-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("backend", ["redis", "postgres"])
@pytest.mark.parametrize("policy", list(OutagePolicy), ids=str)
def test_store_killed_and_restarted_under_load(backend: str, policy: OutagePolicy,
                                              request: pytest.FixtureRequest) -> None:
    """SIGKILL of the store mid-run: open keeps serving, closed fails typed and at once; 0 over-limit; all recover."""
    server: OwnRedis | OwnPostgres = request.getfixturevalue(f"own_{backend}")
    clock = VirtualClock()
    store = open_store(server.url, _ns())
    stack = LastfmStack(store, clock, policy=policy)
    phases: list[tuple[int, dict[str, int]]] = []

    async def phase(offset: int) -> None:
        before_ok, before_err = stack.tally.ok, dict(stack.tally.errors)
        await stack.callers(4, 6, offset)
        errs = {k: v - before_err.get(k, 0) for k, v in stack.tally.errors.items() if v - before_err.get(k, 0)}
        phases.append((stack.tally.ok - before_ok, errs))

    async def main() -> None:
        await phase(0)
        load = asyncio.ensure_future(phase(100))
        await clock.sleep(1.0)
        server.kill()  # under load: callers are queued on limiter slots
        await load
        server.start()  # Redis comes back empty (no persistence); PostgreSQL after crash recovery
        await phase(200)

    try:
        clock.run(main())
    finally:
        store.close()
    (ok1, err1), (ok2, err2), (ok3, err3) = phases
    print(f"\n[faults] {backend} SIGKILL policy={policy}: phases ok={ok1}/{ok2}/{ok3} errors={err2} "
          f"sandbox ok={stack.served_ok()} over-limit={stack.over_limit()} "
          f"longest call={stack.tally.longest_call_s:.2f}s")
    assert stack.over_limit() == 0
    assert stack.served_ok() == stack.tally.ok  # every answer the upstream served reached its caller
    assert (ok1, err1, ok3, err3) == (24, {}, 24, {})  # healthy before, recovered after
    if policy is OutagePolicy.OPEN:
        assert (ok2, err2) == (24, {})
    else:
        assert set(err2) == {"StoreError"} and ok2 + err2["StoreError"] == 24
    assert stack.tally.longest_call_s <= 3.0  # the budget


def test_a_ban_survives_a_store_restart(own_redis: OwnRedis) -> None:
    """A one-hour ban seen before Redis restarts empty is not sent into, and is re-seeded for other processes."""
    clock = VirtualClock()
    ns = _ns()
    store = open_store(own_redis.url, ns)
    lim = RateLimiter(store, "spotify", RateSpec.parse("60/30s"), clock=clock)
    try:
        lim.record_429(3600.0)
        own_redis.kill()
        own_redis.start()
        assert not lim.headroom().in_cooldown  # the store forgot it ...
        with pytest.raises(Exception, match="cooldown"):
            clock.run(lim.acquire(max_wait=5))  # ... this process did not
        other = RateLimiter(open_store(own_redis.url, ns), "spotify", RateSpec.parse("60/30s"), clock=clock)
        assert other.headroom().in_cooldown  # and put it back for everyone
        assert other.headroom().cooldown_remaining_s == pytest.approx(3600.0, abs=1)
        assert other.headroom().upstream_429 == 0  # a re-seed, not a 429 the upstream sent
        other.store.close()
    finally:
        store.close()


def _ticks_while(stall: asyncio.Future[bytes | None], every: float = 0.05) -> asyncio.Future[float]:
    """The longest gap between ticks of a task that only sleeps, while ``stall`` runs."""

    async def ticker() -> float:
        longest, last = 0.0, time.monotonic()
        while not stall.done():
            await asyncio.sleep(every)
            now = time.monotonic()
            longest, last = max(longest, now - last), now
        return longest

    return asyncio.ensure_future(ticker())


def _stalled_call(store: StateStore, stop: Callable[[], None], cont: Callable[[], None]) -> tuple[float, float, str]:
    """One store round trip against a SIGSTOPped server, with another task ticking beside it."""

    async def main() -> tuple[float, float, str]:
        stop()
        start = time.monotonic()
        call = asyncio.ensure_future(offload(store, lambda: store.get("k", now=time.time()), "get"))
        ticks = _ticks_while(call)
        try:
            await call
            outcome = "answered"
        except StoreError as exc:
            outcome = type(exc).__name__
        took = time.monotonic() - start
        gap = await ticks
        cont()
        return took, gap, outcome

    return asyncio.run(main())


def test_a_stopped_redis_stalls_one_call_not_the_loop(own_redis: OwnRedis) -> None:
    """SIGSTOP: the call fails typed within its bound while other tasks keep running."""
    store = open_store(own_redis.url, _ns())
    try:
        store.get("warm", now=time.time())
        took, gap, outcome = _stalled_call(store, own_redis.stop, own_redis.cont)
        print(f"\n[faults] redis SIGSTOP: call ended {outcome} after {took:.2f}s; longest loop stall {gap:.3f}s")
        assert outcome == "StoreError" and took <= store.call_timeout_s + 1.5
        assert gap < 0.5
        store.get("k", now=time.time())  # and it answers again after SIGCONT
    finally:
        store.close()


def test_a_stopped_postgres_stalls_one_call_not_the_loop(own_postgres: OwnPostgres) -> None:
    """SIGSTOP of every PostgreSQL process: bounded by the seam (no statement timeout can fire), loop free."""
    import signal

    store = open_store(own_postgres.url, _ns())
    try:
        store.get("warm", now=time.time())
        took, gap, outcome = _stalled_call(store, lambda: own_postgres.signal_all(signal.SIGSTOP),
                                           lambda: own_postgres.signal_all(signal.SIGCONT))
        print(f"\n[faults] postgres SIGSTOP: call ended {outcome} after {took:.2f}s; longest loop stall {gap:.3f}s")
        assert outcome == "StoreError" and took <= store.call_timeout_s + 1.5
        assert gap < 0.5
        deadline = time.monotonic() + 10
        while True:  # and it answers again after SIGCONT (the stuck thread's connection recovers)
            try:
                store.get("k", now=time.time())
                break
            except StoreError:
                assert time.monotonic() < deadline
    finally:
        store.close()


def test_store_time_clock_survives_an_outage(own_redis: OwnRedis) -> None:
    """StoreTimeClock keeps its last offset when the store is down at resync instead of raising."""
    from scaling.clock import StoreTimeClock

    store = open_store(own_redis.url, _ns())
    try:
        clock = StoreTimeClock(store.time, resync_every=0.0)
        clock.now()
        own_redis.kill()
        assert abs(clock.now() - SystemClock().now()) < 1.0
    finally:
        store.close()


@pytest.mark.parametrize("policy", list(OutagePolicy), ids=str)
def test_redis_stopped_under_load_in_real_time(own_redis: OwnRedis, policy: OutagePolicy) -> None:
    """SIGSTOP for 3 s under load: calls stay within their budget (typed error or per-process share), 0 over-limit."""
    clock = SystemClock()
    store = open_store(own_redis.url, _ns())
    stack = LastfmStack(store, clock, policy=policy, limit="8/1s", upstream=RateSpec(10, 1.0))

    async def main() -> None:
        load = asyncio.ensure_future(stack.callers(4, 12))
        await asyncio.sleep(1.0)
        own_redis.stop()
        await asyncio.sleep(3.0)
        own_redis.cont()
        await load
        before = stack.tally.ok
        await asyncio.sleep(1.0)  # real time is the point here: the fail-fast pause after an error ends
        await stack.callers(4, 2, offset=500)
        recovered.append(stack.tally.ok - before)

    recovered: list[int] = []
    try:
        asyncio.run(main())
    finally:
        store.close()
    print(f"\n[faults] redis SIGSTOP 3 s under load policy={policy}: ok={stack.tally.ok} errors={stack.tally.errors} "
          f"sandbox ok={stack.served_ok()} over-limit={stack.over_limit()} "
          f"longest call={stack.tally.longest_call_s:.2f}s")
    assert stack.over_limit() == 0
    assert stack.served_ok() == stack.tally.ok
    assert stack.tally.longest_call_s <= 3.0 + 1.0  # the fetch budget, plus the one store call in flight
    assert recovered == [8]  # every call after SIGCONT is served
    if policy is OutagePolicy.OPEN:
        assert stack.tally.errors == {} and stack.tally.ok == 56
    else:
        assert set(stack.tally.errors) <= {"StoreError"} and stack.tally.ok + sum(stack.tally.errors.values()) == 56
