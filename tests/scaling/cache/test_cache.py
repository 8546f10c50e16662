"""The TTL cache on every state-store backend, in virtual time: hits, TTLs, failures, stats, eviction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from scaling.cache import Cache, Expiring, Family, Origin
from scaling.clock import VirtualClock
from scaling.errors import StoreError, TransientError
from scaling.store import StateStore
from scaling.store.memory import MemoryStore

FAMS = {f.name: f for f in (Family("albums", 3600.0, max_bytes=None), Family("small", 3600.0, max_bytes=1000),
                            Family("misses", 3600.0, negative_ttl_s=60.0), Family("off", 60.0, cached=False))}


class Upstream:
    """A fake fetch that counts its calls and answers from a script."""

    def __init__(self, *answers: Any) -> None:
        self.calls = 0
        self.answers = list(answers)

    def fetch(self) -> Callable[[], Awaitable[Any]]:
        async def go() -> Any:
            self.calls += 1
            answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
            if isinstance(answer, BaseException):
                raise answer
            return answer
        return go


def make(store: StateStore, clock: VirtualClock, **kw: Any) -> Cache:
    return Cache(store, clock=clock, families=FAMS, flush_every_s=0.0, touch_every_s=0.0, **kw)


def test_miss_fetches_then_hits_until_the_ttl_ends(store: StateStore, clock: VirtualClock) -> None:
    """The first lookup fetches, the next ones are hits, and after the TTL the value is fetched again."""
    cache, up = make(store, clock), Upstream({"id": "a", "n": 1}, {"id": "a", "n": 2})

    async def main() -> list[Any]:
        first = await cache.lookup("albums", "a", up.fetch())
        second = await cache.lookup("albums", "a", up.fetch())
        await clock.sleep(3599)
        third = await cache.lookup("albums", "a", up.fetch())
        await clock.sleep(2)
        fourth = await cache.lookup("albums", "a", up.fetch())
        return [first, second, third, fourth]

    looks = clock.run(main())
    assert [lk.origin for lk in looks] == [Origin.FETCHED, Origin.HIT, Origin.HIT, Origin.FETCHED]
    assert [lk.value["n"] for lk in looks] == [1, 1, 1, 2] and up.calls == 2


def test_failed_fetch_is_raised_and_not_cached(store: StateStore, clock: VirtualClock) -> None:
    """A fetch error reaches the caller and the next lookup tries again (no negative caching)."""
    cache = make(store, clock)
    up = Upstream(TransientError("HTTP 503", upstream="spotify", endpoint="album"), {"id": "a"})

    async def main() -> Any:
        with pytest.raises(TransientError):
            await cache.get_or_fetch("albums", "a", up.fetch())
        return await cache.get_or_fetch("albums", "a", up.fetch())

    assert clock.run(main()) == {"id": "a"} and up.calls == 2
    [stats] = cache.stats(["albums"])
    assert stats.errors == 1 and stats.fetches == 2 and stats.keys == 1


def test_not_found_is_cached_only_in_negative_families(store: StateStore, clock: VirtualClock) -> None:
    """A fetch returning None is stored as null where negative caching is on, and refetched elsewhere."""
    cache = make(store, clock)
    pos, neg = Upstream(None), Upstream(None)

    async def main() -> list[Origin]:
        out = []
        for _ in range(2):
            out.append((await cache.lookup("albums", "x", pos.fetch())).origin)
            out.append((await cache.lookup("misses", "x", neg.fetch())).origin)
        await clock.sleep(61)
        out.append((await cache.lookup("misses", "x", neg.fetch())).origin)
        return out

    assert clock.run(main()) == [Origin.FETCHED, Origin.FETCHED, Origin.FETCHED, Origin.HIT, Origin.FETCHED]
    assert pos.calls == 2 and neg.calls == 2


def test_expiring_result_sets_its_own_ttl(store: StateStore, clock: VirtualClock) -> None:
    """A fetch returning Expiring(value, 100) lives 100 s, not the family's hour; a non-positive TTL is not stored."""
    cache, up = make(store, clock), Upstream(Expiring("tok1", 100.0), Expiring("tok2", 0.0), Expiring("tok3", 50.0))

    async def main() -> list[str]:
        got = [await cache.get_or_fetch("albums", "t", up.fetch())]
        await clock.sleep(101)
        got.append(await cache.get_or_fetch("albums", "t", up.fetch()))
        got.append(await cache.get_or_fetch("albums", "t", up.fetch()))
        got.append(await cache.get_or_fetch("albums", "t", up.fetch()))
        return got

    assert clock.run(main()) == ["tok1", "tok2", "tok3", "tok3"] and up.calls == 3


def test_uncached_family_always_fetches(store: StateStore, clock: VirtualClock) -> None:
    """A family with caching off (the reference's TTL 0) calls through every time and stores nothing."""
    cache, up = make(store, clock), Upstream("x")

    async def main() -> list[Origin]:
        return [(await cache.lookup("off", "k", up.fetch())).origin for _ in range(3)]

    assert clock.run(main()) == [Origin.BYPASS] * 3 and up.calls == 3
    assert store.keys("cache:", now=clock.now()) == []


def test_stats_report_hits_misses_keys_bytes_and_oldest(store: StateStore, clock: VirtualClock) -> None:
    """Stats count hits and misses, and measure live keys, their JSON bytes and the oldest entry's age."""
    cache = make(store, clock)

    async def main() -> None:
        await cache.get_or_fetch("albums", "a", Upstream({"v": "aaaa"}).fetch())
        await clock.sleep(30)
        await cache.get_or_fetch("albums", "b", Upstream([1, 2, 3]).fetch())
        for _ in range(3):
            await cache.get_or_fetch("albums", "a", Upstream("unused").fetch())
        await clock.sleep(10)

    clock.run(main())
    [s] = cache.stats(["albums"])
    assert (s.hits, s.misses, s.fetches, s.keys) == (3, 2, 2, 2)
    assert s.bytes == len(b'{"v":"aaaa"}') + len(b"[1,2,3]")
    assert s.oldest_age_s == pytest.approx(40.0)
    assert s.hit_ratio == pytest.approx(0.6)


def test_replacing_and_deleting_keep_the_byte_count_right(store: StateStore, clock: VirtualClock) -> None:
    """Overwriting a key counts only its new size; deleting it takes its bytes off the family total."""
    cache = make(store, clock)
    cache.set("albums", "a", "x" * 10)
    cache.set("albums", "a", "x" * 20)
    cache.set("albums", "b", "y" * 5)
    cache.delete("albums", "b")
    counters = cache.index.counters("albums")
    assert counters["bytes"] == 22 and cache.stats(["albums"])[0].bytes == 22


def test_over_budget_family_evicts_least_recently_used(store: StateStore, clock: VirtualClock) -> None:
    """Past its byte budget a family drops the keys read longest ago, down to 90% of the budget."""
    cache = make(store, clock)
    value = "v" * 198  # 200 bytes as JSON
    for i in range(4):
        cache.set("small", f"k{i}", value)
        clock.advance(1)
    clock.advance(1)
    assert cache.peek("small", "k0") is not None  # k0 is now the most recently used
    clock.advance(1)
    cache.set("small", "k4", value)  # 1000 bytes: at budget, nothing evicted
    clock.advance(1)
    cache.set("small", "k5", value)  # 1200 > 1000: evict LRU until <= 900
    left = {k for k in ("k0", "k1", "k2", "k3", "k4", "k5") if cache.peek("small", k) is not None}
    assert left == {"k0", "k3", "k4", "k5"}  # k1 and k2 were read longest ago; k0 was read recently
    [s] = cache.stats(["small"])
    assert s.evictions == 2 and s.bytes == 800 and s.keys == 4


def test_expired_keys_drop_out_of_the_byte_total_at_eviction(store: StateStore, clock: VirtualClock) -> None:
    """Keys that expired are not counted against the budget once eviction trues up the total."""
    fams = {"f": Family("f", 10.0, max_bytes=500)}
    cache = Cache(store, clock=clock, families=fams, flush_every_s=0.0)
    cache.set("f", "old", "o" * 298)
    clock.advance(11)
    cache.set("f", "new", "n" * 298)  # counter says 600 > 500, but "old" has expired
    assert cache.peek("f", "new") is not None
    [s] = cache.stats(["f"])
    assert s.evictions == 0 and s.bytes == 300 and cache.index.counters("f")["bytes"] == 300


def test_long_keys_are_shortened_consistently(store: StateStore, clock: VirtualClock) -> None:
    """A 2,000-character key is stored under a bounded name and still found again."""
    cache = make(store, clock)
    key = "q" * 2000
    cache.set("albums", key, 1)
    assert cache.peek("albums", key).value == 1  # type: ignore[union-attr]
    assert cache.peek("albums", "q" * 1999 + "r") is None
    assert all(len(k) < 300 for k in store.keys("cache", now=clock.now()))


class _DownStore(MemoryStore):
    def get(self, key: str, *, now: float) -> bytes | None:
        raise StoreError("connection refused", backend="memory")


def test_store_outage_bypasses_the_cache(clock: VirtualClock) -> None:
    """With the state store down, lookups fetch directly instead of failing."""
    cache, up = make(_DownStore(), clock), Upstream({"id": 1})
    looks = clock.run(lambda: cache.lookup("albums", "a", up.fetch()))
    assert looks.value == {"id": 1} and looks.origin is Origin.BYPASS


def test_unknown_family_is_a_clear_error(clock: VirtualClock) -> None:
    """Asking for a family that does not exist names it."""
    cache = make(MemoryStore(), clock)
    with pytest.raises(Exception, match="unknown cache family 'nope'"):
        cache.peek("nope", "k")
