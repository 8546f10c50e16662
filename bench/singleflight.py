"""A stampede of identical cache misses from 8 processes, with and without single-flight.

    .venv/bin/python bench/singleflight.py [--procs 8] [--per-proc 100] [--fetch-ms 200]

Each process starts ``--per-proc`` concurrent lookups of one cold key; the fake
upstream takes ``--fetch-ms``. Baseline: the upstream app's ``getCachedOrFetch``
(read, fetch on miss, write), which sends every concurrent miss upstream. For each
shared store: upstream calls, and how long after the value was stored the followers
had it (p50/p99/max), against the anchors' target of leader + 50 ms (Redis) or
+ 250 ms (SQL).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scaling.cache import Cache, Family
from scaling.clock import SystemClock
from scaling.store import open_store

PG = "postgresql://postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/0"
FAMS = {"f": Family("f", 3600.0)}


def _worker(url: str, ns: str, per_proc: int, fetch_s: float, singleflight: bool, barrier: Any, out: Any) -> None:
    store = open_store(url, ns)
    cache = Cache(store, clock=SystemClock(), families=FAMS)

    async def fetch() -> dict[str, float]:
        store.incr("calls", now=time.time())
        await asyncio.sleep(fetch_s)
        stored_at = time.time()
        store.set("stored_at", repr(stored_at).encode(), now=time.time())
        return {"stored_at": stored_at}

    async def naive() -> Any:
        raw = store.get("naive", now=time.time())
        if raw is not None:
            return json.loads(raw)
        value = await fetch()
        store.set("naive", json.dumps(value).encode(), now=time.time(), ttl=3600)
        return value

    async def one() -> float:
        if singleflight:
            await cache.get_or_fetch("f", "k", fetch)
        else:
            await naive()
        return time.time()

    async def main() -> list[float]:
        barrier.wait()
        return list(await asyncio.gather(*(one() for _ in range(per_proc))))

    out.put(asyncio.run(main()))
    store.close()


def stampede(url: str, procs: int, per_proc: int, fetch_s: float, singleflight: bool) -> dict[str, Any]:
    ns = f"bench{uuid.uuid4().hex[:8]}"
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(procs), ctx.Queue()
    ps = [ctx.Process(target=_worker, args=(url, ns, per_proc, fetch_s, singleflight, barrier, out))
          for _ in range(procs)]
    start = time.time()
    for p in ps:
        p.start()
    done = [t for _ in ps for t in out.get(timeout=120)]
    for p in ps:
        p.join(30)
    store = open_store(url, ns)
    calls = int(store.get("calls", now=time.time()) or 0)
    stored_at = float(store.get("stored_at", now=time.time()) or start)
    store.clear()
    store.close()
    lag = sorted(max(0.0, t - stored_at) * 1000 for t in done)
    return {"calls": calls, "p50": statistics.median(lag), "p99": lag[int(len(lag) * 0.99) - 1], "max": lag[-1],
            "total_s": max(done) - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--procs", type=int, default=8)
    parser.add_argument("--per-proc", type=int, default=100)
    parser.add_argument("--fetch-ms", type=float, default=200.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stores = {"sqlite": f"sqlite:///{tmp}/state.db", "postgresql": PG, "redis": REDIS}
        print(f"{args.procs} processes x {args.per_proc} concurrent misses of one key; "
              f"fetch takes {args.fetch_ms:.0f} ms")
        print(f"{'store':11} {'mode':28} {'upstream calls':>14} {'lag p50 ms':>10} {'p99 ms':>7} {'max ms':>7}")
        for name, url in stores.items():
            for sf, label in ((False, "read, fetch, write (upstream)"), (True, "single-flight (Cache)")):
                r = stampede(url, args.procs, args.per_proc, args.fetch_ms / 1000, sf)
                lags = f"{r['p50']:>10.1f} {r['p99']:>7.1f} {r['max']:>7.1f}" if sf else f"{'-':>10} {'-':>7} {'-':>7}"
                print(f"{name:11} {label:28} {r['calls']:>14} {lags}")
    print("\nlag = time from the value being stored to each caller having it (followers poll 10 ms growing to 50 ms);\n"
          "without single-flight every caller that missed fetched for itself, so there is no follower lag")


if __name__ == "__main__":
    main()
