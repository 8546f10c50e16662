"""Single-flight in virtual time: several `Cache` instances on one store stand for several processes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from scaling.cache import Cache, Family, Lookup, Origin, layout
from scaling.clock import VirtualClock
from scaling.errors import PermanentError, TransientError
from scaling.store import StateStore

FAMS = {"f": Family("f", 3600.0)}


class SlowUpstream:
    """Answers after ``delay`` virtual seconds; counts calls; can fail."""

    def __init__(self, clock: VirtualClock, delay: float = 2.0, value: Any = "v", error: Exception | None = None):
        self.clock, self.delay, self.value, self.error = clock, delay, value, error
        self.calls = 0

    async def __call__(self) -> Any:
        self.calls += 1
        await self.clock.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return self.value


def caches(store: StateStore, clock: VirtualClock, n: int, **kw: Any) -> list[Cache]:
    return [Cache(store, clock=clock, families=FAMS, **kw) for _ in range(n)]


def test_hundred_concurrent_misses_in_one_process_fetch_once(store: StateStore, clock: VirtualClock) -> None:
    """100 identical concurrent misses make one fetch; 99 callers share its result."""
    [cache] = caches(store, clock, 1)
    up = SlowUpstream(clock)

    async def main() -> list[Lookup]:
        return await asyncio.gather(*(cache.lookup("f", "k", up) for _ in range(100)))

    looks = clock.run(main())
    assert up.calls == 1 and {lk.value for lk in looks} == {"v"}
    assert sorted(lk.origin.value for lk in looks) == ["coalesced"] * 99 + ["fetched"]


def test_eight_processes_times_hundred_reach_the_upstream_once(store: StateStore, clock: VirtualClock) -> None:
    """8 caches x 100 concurrent lookups: one fetch, and followers have the value within 100 ms of the leader."""
    group = caches(store, clock, 8)
    up = SlowUpstream(clock, delay=2.0)

    async def main() -> tuple[list[Any], float]:
        start = clock.now()
        got = await asyncio.gather(*(c.get_or_fetch("f", "k", up) for c in group for _ in range(100)))
        return got, clock.now() - start

    got, took = clock.run(main())
    assert up.calls == 1 and got == ["v"] * 800
    assert took <= 2.0 + 0.1 + 1e-6
    for c in group:
        c.flush()
    [s] = group[0].stats(["f"])
    assert (s.misses, s.fetches, s.coalesced, s.hits) == (800, 1, 799, 0)


def test_follower_cancellation_never_cancels_the_leader(store: StateStore, clock: VirtualClock) -> None:
    """Cancelling waiting callers (same process or another) leaves the leader's fetch running to completion."""
    a, b = caches(store, clock, 2)
    up = SlowUpstream(clock, delay=5.0)

    async def main() -> tuple[Any, bool, bool]:
        leader = asyncio.ensure_future(a.get_or_fetch("f", "k", up))
        await clock.sleep(0.1)
        local = asyncio.ensure_future(a.get_or_fetch("f", "k", up))
        remote = asyncio.ensure_future(b.get_or_fetch("f", "k", up))
        await clock.sleep(1.0)
        local.cancel()
        remote.cancel()
        value = await leader
        return value, local.cancelled(), remote.cancelled()

    assert clock.run(main()) == ("v", True, True)
    assert up.calls == 1 and a.peek("f", "k") is not None


def test_leader_callers_cancellation_does_not_poison_followers(store: StateStore, clock: VirtualClock) -> None:
    """The caller that started the fetch gives up; the fetch still completes and every follower gets its value."""
    a, b = caches(store, clock, 2)
    up = SlowUpstream(clock, delay=5.0)

    async def main() -> list[Any]:
        starter = asyncio.ensure_future(a.get_or_fetch("f", "k", up))
        await clock.sleep(0.1)
        others = [asyncio.ensure_future(c.get_or_fetch("f", "k", up)) for c in (a, a, b, b)]
        await clock.sleep(1.0)
        starter.cancel()
        return list(await asyncio.gather(*others))

    assert clock.run(main()) == ["v"] * 4 and up.calls == 1


def test_cancelled_flight_hands_over_instead_of_failing_its_joiners(store: StateStore, clock: VirtualClock) -> None:
    """If the fetch itself is cancelled (shutdown), joiners and other processes retry rather than see CancelledError."""
    a, b = caches(store, clock, 2)
    up = SlowUpstream(clock, delay=5.0)

    async def main() -> list[Any]:
        callers = [asyncio.ensure_future(c.get_or_fetch("f", "k", up)) for c in (a, a, a, b, b)]
        await clock.sleep(1.0)
        for flight in list(a._flights.values()):
            flight.cancel()
        return list(await asyncio.gather(*callers))

    assert clock.run(main()) == ["v"] * 5
    assert up.calls == 2  # the cancelled fetch and the one successor


def test_dead_leader_is_replaced_after_its_lease_expires(store: StateStore, clock: VirtualClock) -> None:
    """A lease held by a process that died (never writes) delays followers only until the lease TTL."""
    [cache] = caches(store, clock, 1, lease_ttl_s=10.0)
    up = SlowUpstream(clock, delay=1.0)
    store.add(layout.lease_key("f", "k"), b"dead-process:1", now=clock.now(), ttl=10.0)

    async def main() -> tuple[list[Any], float]:
        start = clock.now()
        got = await asyncio.gather(*(cache.get_or_fetch("f", "k", up) for _ in range(20)))
        return list(got), clock.now() - start

    got, took = clock.run(main())
    assert got == ["v"] * 20 and up.calls == 1
    assert 10.0 + 1.0 <= took <= 10.0 + 1.0 + 0.2


def test_slow_leader_renews_its_lease(store: StateStore, clock: VirtualClock) -> None:
    """A fetch that takes 35 s under a 10 s lease is not mistaken for a dead leader."""
    a, b = caches(store, clock, 2, lease_ttl_s=10.0)
    up = SlowUpstream(clock, delay=35.0)

    async def main() -> list[Any]:
        return list(await asyncio.gather(a.get_or_fetch("f", "k", up), b.get_or_fetch("f", "k", up)))

    assert clock.run(main()) == ["v", "v"] and up.calls == 1


def test_leader_failure_reaches_followers_once_and_is_not_cached(store: StateStore, clock: VirtualClock) -> None:
    """Followers in other processes get the leader's error (same class, upstream, status); nothing is stored."""
    a, b = caches(store, clock, 2)
    up = SlowUpstream(clock, error=PermanentError("HTTP 404 Resource not found", upstream="spotify",
                                                  endpoint="album", status=404))

    async def main() -> list[Any]:
        return list(await asyncio.gather(*(c.get_or_fetch("f", "k", up) for c in (a, b, b, b)),
                                         return_exceptions=True))

    results = clock.run(main())
    assert up.calls == 1
    assert all(isinstance(r, PermanentError) and r.status == 404 and r.upstream == "spotify" for r in results)
    assert "Resource not found" in str(results[-1])
    assert a.peek("f", "k") is None
    up.error = None
    assert clock.run(a.get_or_fetch("f", "k", up)) == "v" and up.calls == 2


def test_not_found_is_shared_with_followers_without_being_cached(store: StateStore, clock: VirtualClock) -> None:
    """A None result reaches other processes' followers without a second fetch, and is not stored."""
    a, b = caches(store, clock, 2)
    up = SlowUpstream(clock, value=None)

    async def main() -> list[Any]:
        return list(await asyncio.gather(a.get_or_fetch("f", "k", up), b.get_or_fetch("f", "k", up)))

    assert clock.run(main()) == [None, None] and up.calls == 1
    assert a.peek("f", "k") is None


def test_follower_gives_up_after_its_wait_budget(store: StateStore, clock: VirtualClock) -> None:
    """A follower whose leader holds the lease past the follower's budget gets a TransientError, not a hang."""
    a, b = caches(store, clock, 2)
    up = SlowUpstream(clock, delay=100.0)

    async def main() -> None:
        leader = asyncio.ensure_future(a.get_or_fetch("f", "k", up))
        await clock.sleep(0.1)
        with pytest.raises(TransientError, match="waited 5s"):
            await b.get_or_fetch("f", "k", up, max_wait_s=5.0)
        assert await leader == "v"

    clock.run(main())
    assert up.calls == 1


def test_origins_tell_hits_from_coalesced_waits(store: StateStore, clock: VirtualClock) -> None:
    """A follower in another process is told its value was coalesced; a later lookup is a hit."""
    a, b = caches(store, clock, 2)
    up = SlowUpstream(clock)

    async def main() -> list[Origin]:
        first = await asyncio.gather(a.lookup("f", "k", up), b.lookup("f", "k", up))
        later = await b.lookup("f", "k", up)
        return [first[0].origin, first[1].origin, later.origin]

    assert clock.run(main()) == [Origin.FETCHED, Origin.COALESCED, Origin.HIT]
