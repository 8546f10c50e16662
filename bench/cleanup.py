"""Batched cleanup vs one big DELETE, on SQLite and PostgreSQL, with the app writing meanwhile.

    .venv/bin/python bench/cleanup.py [--rows 1000000] [--backends sqlite,postgres] [--json]

For each backend it loads ``--rows`` expired ``api_usage_log`` rows (40–180 days
old, D1 format) plus 10% inside retention, then deletes the expired ones twice:
with `run_cleanup` (bounded batches, each its own transaction) and with the naive
single ``DELETE … WHERE created_at < cutoff`` the upstream migration suggests.
Throughout, an "app" thread inserts one usage row every 20 ms on its own
connection, as the Worker would, and records how long each insert waited.

Printed per run: total time, rows/s, the longest single write transaction (how
long the SQLite write lock was held at once), and the app's worst insert wait and
failed inserts (SQLite gives up after its 5 s busy timeout).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine, exc, text

from scaling.appdb.cleanup import Retention, run_cleanup
from scaling.appdb.engine import make_engine
from scaling.appdb.migrate import upgrade

PG_SERVER = os.environ.get("HEADROOM_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
DAY = 86_400
COLUMNS = ("api_key_id", "endpoint", "method", "status_code", "ip_address", "user_agent", "response_time_ms",
           "created_at")


def d1(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def load(engine: Engine, rows: int, now: float, seed: int = 1) -> None:
    """Fill api_usage_log with ``rows`` expired rows and rows // 10 recent ones, through the driver."""
    rng = random.Random(seed)
    data = [(None, "/api/internal/user-listens", "GET", 200, "10.0.0.1", "bench", rng.randint(20, 900),
             d1(now - rng.uniform(40 * DAY, 180 * DAY))) for _ in range(rows)]
    data += [(None, "/api/internal/album-art", "GET", 200, "10.0.0.1", "bench", rng.randint(20, 900),
              d1(now - rng.uniform(0, 29 * DAY))) for _ in range(rows // 10)]
    data.sort(key=lambda row: row[-1])  # the app appends in time order, so ids follow created_at
    with engine.begin() as conn:
        raw: Any = conn.connection.driver_connection
        names = ", ".join(COLUMNS)
        if engine.dialect.name == "postgresql":
            with raw.cursor() as cur, cur.copy(f"COPY api_usage_log ({names}) FROM STDIN") as copy:
                for row in data:
                    copy.write_row(row)
        else:
            raw.executemany(f"INSERT INTO api_usage_log ({names}) VALUES ({', '.join('?' * len(COLUMNS))})", data)
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()


class AppWriter(threading.Thread):
    """Inserts one usage row every ``interval`` seconds and times each insert."""

    def __init__(self, url: str, now: float, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.url, self.now, self.interval = url, now, interval
        self.waits: list[float] = []
        self.failed = 0
        self.stop = threading.Event()

    def run(self) -> None:
        engine = make_engine(self.url)
        stmt = text("INSERT INTO api_usage_log (endpoint, created_at) VALUES ('/api/internal/user-listens', :t)")
        try:
            while not self.stop.is_set():
                began = time.perf_counter()
                try:
                    with engine.begin() as conn:
                        conn.execute(stmt, {"t": d1(self.now)})
                    self.waits.append(time.perf_counter() - began)
                except exc.OperationalError:
                    self.failed += 1
                self.stop.wait(self.interval)
        finally:
            engine.dispose()


def run_once(url: str, engine: Engine, method: str, now: float, batch_size: int) -> dict[str, Any]:
    writer = AppWriter(url, now)
    writer.start()
    time.sleep(0.2)  # let the app settle into its rhythm before the delete starts
    began = time.perf_counter()
    if method == "batched":
        report = run_cleanup(engine, now=now, retention=Retention(), batch_size=batch_size)
        deleted, batches, longest = report.deleted["api_usage_log"], report.batches, report.longest_batch_s
    else:
        cutoff = d1(now - 30 * DAY)  # what upstream's datetime('now', '-30 days') yields
        with engine.begin() as conn:
            deleted = conn.execute(text("DELETE FROM api_usage_log WHERE created_at < :c"), {"c": cutoff}).rowcount
        batches, longest = 1, time.perf_counter() - began
    total = time.perf_counter() - began
    time.sleep(0.2)
    writer.stop.set()
    writer.join()
    waits = sorted(writer.waits) or [0.0]
    return {"method": method, "deleted": deleted, "total_s": total, "rows_per_s": deleted / total if total else 0.0,
            "batches": batches, "longest_tx_s": longest, "app_inserts": len(writer.waits),
            "app_max_wait_ms": waits[-1] * 1000, "app_p50_wait_ms": statistics.median(waits) * 1000,
            "app_failed": writer.failed}


def bench_backend(backend: str, url: str, rows: int, batch_size: int) -> list[dict[str, Any]]:
    upgrade(url)
    engine = make_engine(url)
    now = time.time()
    results = []
    try:
        for method in ("batched", "single DELETE"):
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM api_usage_log"))
            load(engine, rows, now)
            result = run_once(url, engine, method, now, batch_size)
            result["backend"] = backend
            results.append(result)
            print(f"  {backend:10} {method:14} done in {result['total_s']:.1f}s", file=sys.stderr)
    finally:
        engine.dispose()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="expired rows to delete (default 1,000,000)")
    parser.add_argument("--batch-size", type=int, default=5000, help="largest batch for the batched cleanup")
    parser.add_argument("--backends", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="headroom-bench-") as tmp:
        if "sqlite" in backends:
            results += bench_backend("sqlite", f"sqlite:///{tmp}/app.db", args.rows, args.batch_size)
        if "postgres" in backends:
            import psycopg

            name = f"headroom_bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            try:
                results += bench_backend("postgresql", f"{PG_SERVER}/{name}", args.rows, args.batch_size)
            finally:
                with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"\nDeleting {args.rows:,} expired api_usage_log rows (+{args.rows // 10:,} kept); "
          "an app thread inserts a row every 20 ms throughout\n")
    header = (f"{'backend':10} {'method':14} {'total s':>8} {'rows/s':>10} {'batches':>8} {'longest tx ms':>14} "
              f"{'app inserts':>11} {'app p50 ms':>10} {'app max ms':>10} {'app failed':>10}")
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r['backend']:10} {r['method']:14} {r['total_s']:8.2f} {r['rows_per_s']:10,.0f} {r['batches']:8d} "
              f"{r['longest_tx_s'] * 1000:14.1f} {r['app_inserts']:11d} {r['app_p50_wait_ms']:10.1f} "
              f"{r['app_max_wait_ms']:10.1f} {r['app_failed']:10d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
