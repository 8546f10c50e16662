"""Dashboard pages rendered server-side at about 1M metric rows, on SQLite and PostgreSQL.

    .venv/bin/python bench/dashboard.py [--backend sqlite|postgresql|both] [--runs 3] [--reuse]

Loads 30 days of minute samples into a fresh metrics DB per backend: the demo
history for 1,000 users stored raw (no roll-ups), a sixth upstream, and the
headroom samples copied to the 'collectors' and 'worker' sources so every chart
also shows sources side by side, with the hourly roll-ups the retention job keeps.
Then each page runs in Streamlit's AppTest (the real script, no browser) for the
7- and 30-day ranges:

- **uncached**: ``st.cache_data`` cleared first, so every SQL aggregate runs (DB warm);
- **cached**: the same page again within the 30 s query TTL (what a refresh costs).

Times are medians of ``--runs``; the goal is < 2 s uncached. ``max pts`` is the most
data rows any one chart on the page ships to the browser (goal ≤ 2,000).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow as pa
from sqlalchemy import Engine, func, select, text

from scaling.metrics import models as m
from scaling.metrics.db import open_metrics_db
from scaling.metrics.demo import generate
from scaling.metrics.migrate import upgrade_engine
from scaling.metrics.retention import roll_up
from scaling.metrics.rollups import ROLLUPS

ROOT = Path(__file__).resolve().parents[1]
NOW = 1_768_910_400.0  # 2026-01-20 12:00 UTC: mid-month, so month-to-date figures are non-trivial
PAGES = ("overview", "rate_limits", "cron", "database", "cache", "ai_cost")
RANGES = ("Last 7 days", "Last 30 days")
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
PG_DB = "headroom_bench_dashboard"
_COLS = ("ts", "upstream", "limiter_key", "used", "limit", "remaining", "utilisation", "in_cooldown",
         "cooldown_until", "upstream_429", "throttled", "wait_seconds", "rejected")


def load(engine: Engine) -> int:
    """Fill a migrated, empty metrics DB; returns the total row count."""
    t = time.perf_counter()
    generate(engine, now=NOW, days=30, users=1000, raw_days=30)
    cols = ", ".join(f'"{c}"' for c in _COLS)
    with engine.begin() as conn:
        # A sixth upstream: Anthropic's limiter, shaped like OpenAI's request limiter.
        sixth = cols.replace('"upstream"', "'anthropic'")
        conn.execute(text(f"INSERT INTO headroom_samples (source, {cols}) SELECT 'demo', {sixth} "
                          "FROM headroom_samples WHERE upstream = 'openai' AND limiter_key = 'requests'"))
        for source in ("collectors", "worker"):
            conn.execute(text(f"INSERT INTO headroom_samples (source, {cols}) SELECT '{source}', {cols} "
                              "FROM headroom_samples WHERE source = 'demo'"))
    # What the retention job does every hour for every source: hourly roll-ups.
    for source in ("collectors", "worker"):
        roll_up(engine, ROLLUPS["headroom_samples"], source, until=NOW)
    with engine.connect() as conn:  # planner statistics, as after any bulk load
        conn.execute(text("ANALYZE"))
        conn.commit()
    total = count_rows(engine)
    print(f"  loaded {total:,} rows in {time.perf_counter() - t:.0f} s", flush=True)
    return total


def count_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return sum(conn.execute(select(func.count()).select_from(table)).scalar_one()
                   for table in m.metadata.sorted_tables)


def prepare(backend: str, reuse: bool, workdir: Path) -> tuple[str, int]:
    if backend == "sqlite":
        path = workdir / "bench-dashboard.db"
        url = f"sqlite:///{path}"
        if path.exists() and not reuse:
            path.unlink()
    else:
        import psycopg

        url = f"{PG_SERVER}/{PG_DB}"
        if not reuse:
            with psycopg.connect(f"{PG_SERVER}/test", autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
                admin.execute(f'CREATE DATABASE "{PG_DB}"')
    engine = open_metrics_db(url)
    try:
        upgrade_engine(engine)
        with engine.connect() as conn:
            rows = conn.execute(select(func.count()).select_from(m.HEADROOM_SAMPLES)).scalar_one()
        total = load(engine) if rows == 0 else count_rows(engine)
    finally:
        engine.dispose()
    return url, total


def chart_rows(at: object) -> list[int]:
    counts = []
    for chart in at.get("vega_lite_chart"):  # type: ignore[attr-defined]
        counts.append(sum(pa.ipc.open_stream(d.data.data).read_all().num_rows for d in chart.proto.datasets))
    return counts


def measure(url: str, runs: int) -> dict[tuple[str, str], tuple[float, float, int]]:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["HEADROOM_METRICS_DB_URL"] = url
    out = {}
    for label in RANGES:
        for page in PAGES:
            at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
            at.session_state["headroom_now"] = NOW
            at.run()
            at.selectbox(key="range_preset").select(label)
            at.switch_page(f"app_pages/{page}.py").run()
            if at.exception:
                raise SystemExit(f"{page}: {at.exception[0].message}")
            uncached, cached = [], []
            for _ in range(runs):
                st.cache_data.clear()
                t = time.perf_counter()
                at.run()
                uncached.append(time.perf_counter() - t)
                t = time.perf_counter()
                at.run()
                cached.append(time.perf_counter() - t)
            out[(label, page)] = (statistics.median(uncached), statistics.median(cached),
                                  max(chart_rows(at), default=0))
            print(f"  {label:13} {page:12} uncached {out[(label, page)][0]:.2f}s  cached {out[(label, page)][1]:.2f}s  "
                  f"max pts {out[(label, page)][2]}", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--reuse", action="store_true", help="keep an already loaded bench DB")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    results = {}
    for backend in backends:
        print(f"{backend}:", flush=True)
        url, total = prepare(backend, args.reuse, args.workdir)
        results[backend] = (total, measure(url, args.runs))
    print()
    head = "".join(f" | {b} uncached | {b} cached" for b in backends)
    print(f"| range | page{head} | max pts/chart |")
    print("|---|---|" + "---:|" * (2 * len(backends) + 1))
    for label in RANGES:
        for page in PAGES:
            cells = "".join(f" | {results[b][1][(label, page)][0]:.2f} s | {results[b][1][(label, page)][1]:.2f} s"
                            for b in backends)
            pts = max(results[b][1][(label, page)][2] for b in backends)
            print(f"| {label} | {page}{cells} | {pts} |")
    print("rows: " + ", ".join(f"{b} {results[b][0]:,}" for b in backends))
    return 0


if __name__ == "__main__":
    sys.exit(main())
