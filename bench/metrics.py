"""Metrics DB at ~1M headroom samples: insert rate and the dashboard's query times, SQLite vs PostgreSQL.

    .venv/bin/python bench/metrics.py [--days 30] [--upstreams 6] [--keys 4] [--backends sqlite,postgres] [--json]

Why 4 keys: 30 days x 1,440 minutes x 6 upstreams is only 259,200 samples. Real
collectors sample each limiter key (Spotify's two apps, OpenAI's request and token
limits, ...), so the default samples 4 keys per upstream: 30 x 1,440 x 6 x 4 =
1,036,800 rows. On top, the demo generator writes 90 days of everything else
(job runs, DB/cache stats, AI calls, users, alerts; ~280k rows).

Inserts go through `MetricsWriter` (the collectors' path): in bulk (one call per
simulated day, 34,560 samples) and as collectors really write (one call per minute
with one sample per limiter). Queries are timed twice, median of 3 after a warm-up:
"raw" before any roll-up (every range reads raw minute rows: the worst case), and
"rolled" after `roll_up_and_prune(raw_days=days)` built the hourly roll-ups (nothing
pruned), which is what a running system has. The dashboard's budget is 2 s a page.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from prometheus_client import generate_latest
from sqlalchemy import Engine, func, select, text

from scaling.clock import VirtualClock
from scaling.metrics import models as m
from scaling.metrics import queries as q
from scaling.metrics.db import open_metrics_db
from scaling.metrics.demo import generate
from scaling.metrics.migrate import upgrade
from scaling.metrics.prometheus import make_registry
from scaling.metrics.records import HeadroomSample
from scaling.metrics.retention import roll_up_and_prune
from scaling.metrics.writer import MetricsWriter

PG_SERVER = os.environ.get("HEADROOM_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DAY = 86400.0
UPSTREAMS = ("spotify", "lastfm", "openai", "perplexity", "songlink", "musicbrainz", "anthropic", "discogs")


def load_samples(writer: MetricsWriter, days: int, upstreams: int, keys: int, seed: int = 1) -> tuple[int, float]:
    """Insert ``days`` of minute samples, one writer call per day; returns (rows, seconds)."""
    rng = np.random.default_rng(seed)
    series = [(u, f"key{k}") for u in UPSTREAMS[:upstreams] for k in range(keys)]
    rows, took = 0, 0.0
    for d in range(days):
        start = NOW - (days - d) * DAY
        t = start + 60.0 * np.arange(1440)
        util = np.clip(0.3 + 0.25 * np.cos(2 * np.pi * (t % DAY) / DAY) + rng.normal(0, 0.1, (len(series), 1440)),
                       0, 1.2)
        c429 = rng.poisson(0.01, (len(series), 1440))
        batch = [HeadroomSample(up, used=round(float(util[i, j]) * 120, 2), limit=120.0, limiter_key=key,
                                upstream_429=int(c429[i, j]), throttled=int(util[i, j] > 0.9), ts=float(t[j]))
                 for i, (up, key) in enumerate(series) for j in range(1440)]
        began = time.perf_counter()
        rows += writer.record_headroom(batch)
        took += time.perf_counter() - began
    return rows, took


def per_minute_writes(writer: MetricsWriter, upstreams: int, keys: int, calls: int = 300) -> float:
    """Median seconds of one collector tick: one call with one sample per limiter."""
    times = []
    for c in range(calls):
        batch = [HeadroomSample(u, used=50, limit=120, limiter_key=f"key{k}", ts=NOW + 60 * c, source="tick")
                 for u in UPSTREAMS[:upstreams] for k in range(keys)]
        began = time.perf_counter()
        writer.record_headroom(batch)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def queries(engine: Engine) -> dict[str, Callable[[], Any]]:
    y, mo, w, d = NOW - 365 * DAY, NOW - 30 * DAY, NOW - 7 * DAY, NOW - DAY
    q90 = NOW - 90 * DAY
    return {
        "headroom_series 1 day (1-min buckets)": lambda: q.headroom_series(engine, d, NOW),
        "headroom_series 7 days (15-min)": lambda: q.headroom_series(engine, w, NOW),
        "headroom_series 30 days (30-min)": lambda: q.headroom_series(engine, mo, NOW),
        "headroom_series 30 days (hourly)": lambda: q.headroom_series(engine, mo, NOW, bucket_s=3600),
        "headroom_series 1 year (6-hour)": lambda: q.headroom_series(engine, y, NOW),
        "headroom_series 30 d, one upstream": lambda: q.headroom_series(engine, mo, NOW, upstream="spotify",
                                                                      bucket_s=3600),
        "latest_headroom": lambda: q.latest_headroom(engine, now=NOW),
        "cron_summary 90 d": lambda: q.cron_summary(engine, q90, NOW),
        "job_runs prewarm 90 d": lambda: q.job_runs(engine, "prewarm", q90, NOW),
        "db_growth 90 d": lambda: q.db_growth(engine, q90, NOW),
        "latest_db_stats": lambda: q.latest_db_stats(engine),
        "cache_summary 7 d": lambda: q.cache_summary(engine, w, NOW),
        "cache_series 90 d": lambda: q.cache_series(engine, q90, NOW),
        "ai_cost_by 90 d day/provider/model/task": lambda: q.ai_cost_by(engine, q90, NOW),
        "ai_cost_by 90 d month/provider": lambda: q.ai_cost_by(engine, q90, NOW, ("month", "provider")),
        "user_count_series 90 d": lambda: q.user_count_series(engine, q90, NOW),
        "alerts 30 d": lambda: q.alerts(engine, mo),
        "prometheus scrape": lambda: generate_latest(make_registry(engine, clock=VirtualClock(NOW))),
    }


def time_queries(engine: Engine) -> dict[str, float]:
    out = {}
    for name, run in queries(engine).items():
        run()  # warm-up: statement cache, page cache
        samples = []
        for _ in range(3):
            began = time.perf_counter()
            run()
            samples.append(time.perf_counter() - began)
        out[name] = statistics.median(samples)
    return out


def analyze(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()


def bench_backend(label: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    upgrade(url)
    engine = open_metrics_db(url)
    try:
        began = time.perf_counter()
        demo = generate(engine, now=NOW, days=90, users=120, seed=0)
        demo_s = time.perf_counter() - began
        writer = MetricsWriter(engine, clock=VirtualClock(NOW), log_lines=False)
        rows, load_s = load_samples(writer, args.days, args.upstreams, args.keys)
        tick_s = per_minute_writes(writer, args.upstreams, args.keys)
        analyze(engine)
        with engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(m.HEADROOM_SAMPLES)).scalar_one()
        raw = time_queries(engine)
        began = time.perf_counter()
        roll_up_and_prune(engine, now=NOW, raw_days=args.days + 1, rollup_days=730)
        rollup_s = time.perf_counter() - began
        analyze(engine)
        rolled = time_queries(engine)
    finally:
        engine.dispose()
    return {"backend": label, "samples_inserted": rows, "headroom_rows": total, "insert_s": round(load_s, 2),
            "insert_rows_per_s": round(rows / load_s), "tick_ms": round(tick_s * 1000, 2),
            "demo_rows": sum(demo.rows.values()), "demo_s": round(demo_s, 2), "rollup_s": round(rollup_s, 2),
            "queries_raw_s": {k: round(v, 4) for k, v in raw.items()},
            "queries_rolled_s": {k: round(v, 4) for k, v in rolled.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30, help="days of minute samples (default 30)")
    parser.add_argument("--upstreams", type=int, default=6, choices=range(1, len(UPSTREAMS) + 1), metavar="N")
    parser.add_argument("--keys", type=int, default=4, help="limiter keys per upstream (default 4)")
    parser.add_argument("--backends", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    results = []
    backends = args.backends.split(",")
    if "sqlite" in backends:
        with tempfile.TemporaryDirectory() as tmp:
            results.append(bench_backend("sqlite", f"sqlite:///{tmp}/metrics.db", args))
    if "postgres" in backends:
        import psycopg

        name = f"headroom_bench_metrics_{uuid.uuid4().hex[:6]}"
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            results.append(bench_backend("postgresql", f"{PG_SERVER}/{name}", args))
        finally:
            with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if args.json:
        print(json.dumps(results))
        return 0
    report(results)
    return 0


def report(results: list[dict[str, Any]]) -> None:
    heads = [r["backend"] for r in results]
    print(f"{'':44}" + "".join(f"{h:>24}" for h in heads))
    for key, label in (("samples_inserted", "samples inserted (writer, 1 call/day)"),
                       ("insert_rows_per_s", "insert rows/s"), ("tick_ms", "collector tick (1 call, N samples) ms"),
                       ("headroom_rows", "headroom_samples rows"), ("demo_rows", "demo rows (90 days)"),
                       ("demo_s", "demo generation s"), ("rollup_s", "first roll-up of all raw s")):
        print(f"{label:44}" + "".join(f"{r[key]:>24,}" for r in results))
    print(f"\n{'query (median of 3, seconds)':44}" + "".join(f"{h + ' raw':>12}{h[:6] + ' rolled':>12}" for h in heads))
    for name in results[0]["queries_raw_s"]:
        print(f"{name:44}" + "".join(f"{r['queries_raw_s'][name]:>12.3f}{r['queries_rolled_s'][name]:>12.3f}"
                                     for r in results))


if __name__ == "__main__":
    sys.exit(main())
