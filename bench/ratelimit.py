"""Limiter acquire cost per backend, next to the upstream app's design and `limits`.

    .venv/bin/pip install -r bench/requirements.txt
    .venv/bin/python bench/ratelimit.py [--ops 3000] [--contenders 32]

For each state store it times one acquire (the limiter's single atomic store step,
with a limit high enough that nobody waits), uncontended and with N threads each on
its own connection. On the same Redis it times the two baselines: the upstream app's
fixed window (GET JSON, compute, SET with TTL: two round trips and a lost-update
race) and `limits`' moving window (`MovingWindowRateLimiter.hit`). Throughput ratios
are against `limits` on Redis.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scaling.store import open_store
from scaling.store.gcra import GcraRate

PG = "postgresql://postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/0"
RATES = [GcraRate(interval=1e-9, capacity=1, cost=1, window=60, limit=10**9)]


def measure(make_op: Callable[[], Callable[[], None]], ops: int, threads: int) -> dict[str, float]:
    """Run ``ops`` calls split across ``threads``; each thread builds its own op (connection)."""
    per = max(1, ops // threads)
    lat: list[float] = []
    lock = threading.Lock()
    ready = threading.Barrier(threads + 1)

    def worker() -> None:
        op = make_op()
        op()  # warm the connection and script cache
        mine = []
        ready.wait()
        for _ in range(per):
            t = time.perf_counter()
            op()
            mine.append(time.perf_counter() - t)
        with lock:
            lat.extend(mine)

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    ready.wait()
    start = time.perf_counter()
    for t in ts:
        t.join()
    elapsed = time.perf_counter() - start
    lat.sort()
    return {"ops_s": len(lat) / elapsed, "p50_ms": lat[len(lat) // 2] * 1e3,
            "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3, "mean_ms": statistics.fmean(lat) * 1e3}


def headroom_op(url: str, ns: str) -> Callable[[], Callable[[], None]]:
    def make() -> Callable[[], None]:
        store = open_store(url, ns)
        return lambda: store.gcra_acquire("bench", RATES, now=time.time(), max_wait=0)
    return make


def upstream_fixed_window_op(ns: str) -> Callable[[], Callable[[], None]]:
    """The upstream app's SpotifyRateLimiter.acquire on KV, transplanted to Redis."""
    import redis

    def make() -> Callable[[], None]:
        r = redis.Redis.from_url(REDIS)
        key = f"{ns}:spotify:ratelimit:state"

        def op() -> None:
            raw = r.get(key)
            now = time.time() * 1000
            state = json.loads(raw) if raw else {"requestCount": 0, "windowStart": now}
            if now - state["windowStart"] >= 60_000:
                state = {"requestCount": 1, "windowStart": now}
            else:
                state["requestCount"] += 1
            r.set(key, json.dumps(state), ex=120)
        return op
    return make


def limits_moving_window_op(ns: str) -> Callable[[], Callable[[], None]]:
    from limits import parse
    from limits.storage import RedisStorage
    from limits.strategies import MovingWindowRateLimiter

    def make() -> Callable[[], None]:
        lim = MovingWindowRateLimiter(RedisStorage(REDIS, key_prefix=ns))
        item = parse("1000000/minute")
        return lambda: lim.hit(item, "bench")  # type: ignore[no-any-return]
    return make


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=3000, help="acquires per measurement (default 3000)")
    ap.add_argument("--contenders", type=int, default=32, help="threads in the contended run (default 32)")
    args = ap.parse_args()
    if args.ops < 100 or args.contenders < 2:
        ap.error("--ops must be >= 100 and --contenders >= 2")
    tmp = Path("/tmp") / f"headroom-bench-{uuid.uuid4().hex[:6]}.db"
    ns = f"bench{uuid.uuid4().hex[:6]}"
    rows: list[tuple[str, str, dict[str, float], dict[str, float]]] = []
    subjects: list[tuple[str, str, Callable[[], Callable[[], None]]]] = [
        ("headroom GCRA", "sqlite", headroom_op(f"sqlite:///{tmp}", ns)),
        ("headroom GCRA", "postgres", headroom_op(PG, ns)),
        ("headroom GCRA", "redis", headroom_op(REDIS, ns)),
        ("upstream fixed window (RMW)", "redis", upstream_fixed_window_op(ns)),
        ("limits moving window", "redis", limits_moving_window_op(ns)),
    ]
    for name, backend, make in subjects:
        solo = measure(make, args.ops, 1)
        crowd = measure(make, args.ops, args.contenders)
        rows.append((name, backend, solo, crowd))
        print(f"  measured {name} on {backend}", file=sys.stderr)
    base = next(r for r in rows if r[0].startswith("limits"))
    print(f"\nacquire cost, {args.ops} ops; contended = {args.contenders} threads, one connection each\n")
    hdr = (f"{'limiter':30} {'store':9} {'ops/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'x limits':>8} | "
           f"{'ops/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'x limits':>8}")
    print(f"{'':40} {'uncontended':^33} | {'contended':^33}")
    print(hdr)
    print("-" * len(hdr))
    for name, backend, solo, crowd in rows:
        print(f"{name:30} {backend:9} {solo['ops_s']:8.0f} {solo['p50_ms']:7.3f} {solo['p99_ms']:7.3f} "
              f"{solo['ops_s'] / base[2]['ops_s']:8.2f} | {crowd['ops_s']:8.0f} {crowd['p50_ms']:7.3f} "
              f"{crowd['p99_ms']:7.3f} {crowd['ops_s'] / base[3]['ops_s']:8.2f}")
    print("\nThe upstream design is fast because it is two unsynchronised round trips: under the same"
          "\ncontention it loses updates (see tests/scaling/store/test_races.py for what atomic costs buy).")
    open_store(REDIS, ns).clear()
    open_store(PG, ns).clear()
    tmp.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
