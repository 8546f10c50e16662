"""Single-flight across real processes on SQLite, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import signal
import time
from typing import Any

from scaling.cache import Cache, Family
from scaling.clock import SystemClock, VirtualClock
from scaling.store import open_store

FAMS = {"f": Family("f", 3600.0)}
PROCS, PER_PROC = 8, 100


def _stampede_worker(url: str, ns: str, barrier: Any, out: Any) -> None:
    store = open_store(url, ns)
    # Counters stay pending until the explicit flush, so the worker can see its own misses.
    cache = Cache(store, clock=SystemClock(), families=FAMS, flush_every_s=3600.0)

    async def fetch() -> dict[str, int]:
        store.incr("upstream_calls", now=time.time())
        # Hold the one fetch until every process has its 100 misses in flight, so they must follow.
        deadline = time.time() + 10
        while int(store.get("arrived", now=time.time()) or 0) < PROCS and time.time() < deadline:
            await asyncio.sleep(0.005)
        return {"answer": 42, "leader": os.getpid()}

    async def main() -> list[Any]:
        barrier.wait(60)
        tasks = [asyncio.ensure_future(cache.get_or_fetch("f", "k", fetch)) for _ in range(PER_PROC)]
        # Store reads run on threads: wait until every task has read its miss, not for a fixed number of yields.
        while cache.index._pending.get(("f", "misses"), 0) < PER_PROC:
            await asyncio.sleep(0.001)
        store.incr("arrived", now=time.time())
        results = await asyncio.gather(*tasks)
        cache.flush()
        return list(results)

    out.put(asyncio.run(main()))
    store.close()


def test_eight_processes_of_hundred_concurrent_misses_reach_upstream_once(shared_store_url: str,
                                                                        namespace: str) -> None:
    """800 identical concurrent misses from 8 processes make exactly one upstream call; all get its answer."""
    # spawn, not fork: a fork copies whatever locks this process's store threads hold at that moment,
    # and in one CI run a child inherited one and hung.
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(PROCS), ctx.Queue()
    procs = [ctx.Process(target=_stampede_worker, args=(shared_store_url, namespace, barrier, out), daemon=True)
             for _ in range(PROCS)]
    for p in procs:
        p.start()
    results = [r for _ in procs for r in out.get(timeout=120)]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    store = open_store(shared_store_url, namespace)
    try:
        assert store.get("upstream_calls", now=time.time()) == b"1"
        assert len(results) == PROCS * PER_PROC and len({r["leader"] for r in results}) == 1
        [s] = Cache(store, families=FAMS).stats(["f"])
        assert (s.misses, s.fetches, s.coalesced, s.errors) == (800, 1, 799, 0)
    finally:
        store.clear()
        store.close()


def _doomed_leader(url: str, ns: str) -> None:
    store = open_store(url, ns)
    cache = Cache(store, clock=SystemClock(), families=FAMS, lease_ttl_s=2.0)

    async def fetch() -> str:
        store.incr("upstream_calls", now=time.time())
        store.set("leading", b"1", now=time.time())
        await asyncio.sleep(3600)  # killed long before this ends
        return "never"

    asyncio.run(cache.get_or_fetch("f", "k", fetch))


def test_follower_takes_over_after_the_leader_is_killed(shared_store_url: str, namespace: str) -> None:
    """kill -9 of the process holding the lease delays the next caller only until the lease TTL, then it fetches."""
    ctx = mp.get_context("fork")
    leader = ctx.Process(target=_doomed_leader, args=(shared_store_url, namespace))
    leader.start()
    store = open_store(shared_store_url, namespace)
    try:
        deadline = time.time() + 30
        while store.get("leading", now=time.time()) is None:
            assert time.time() < deadline and leader.is_alive(), "the leader never started its fetch"
            time.sleep(0.01)
        assert leader.pid is not None
        os.kill(leader.pid, signal.SIGKILL)
        leader.join(10)
        # Waiting out the lease in virtual time: logical expiry follows the caller's clock.
        clock = VirtualClock(start=time.time())
        cache = Cache(store, clock=clock, families=FAMS, lease_ttl_s=2.0)

        async def fetch() -> str:
            store.incr("upstream_calls", now=time.time())
            return "successor"

        async def main() -> tuple[str, float]:
            start = clock.now()
            value = await cache.get_or_fetch("f", "k", fetch)
            return value, clock.now() - start

        value, waited = clock.run(main())
        assert value == "successor" and 0.0 < waited <= 2.0 + 0.2
        assert store.get("upstream_calls", now=time.time()) == b"2"
    finally:
        store.clear()
        store.close()
