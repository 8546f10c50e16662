"""Writing what the collector pulled: upserts keyed by bucket, and per-dataset watermarks.

Re-pulling an overlapping window rewrites the same keys, so late-arriving data
corrects a bucket and nothing is counted twice (SQLite and PostgreSQL both do
``INSERT ... ON CONFLICT DO UPDATE`` in one statement).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, Table, select
from sqlalchemy.dialects import postgresql, sqlite

from scaling.cloudflare.pull import PulledRow
from scaling.metrics import models as m
from scaling.metrics.db import translate_errors

__all__ = ["SOURCE", "D1Database", "read_watermark", "write_cron_runs", "write_d1_database", "write_usage",
           "write_watermark"]

SOURCE = "cloudflare"
_CHUNK = 500


@dataclass(frozen=True)
class D1Database:
    database_id: str
    name: str
    file_size_bytes: int | None
    read_replication_mode: str | None
    running_in_region: str | None


def _upsert(engine: Engine, table: Table, rows: Sequence[dict[str, object]], keys: Sequence[str]) -> None:
    if not rows:
        return
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    with translate_errors(engine, f"write {table.name}"), engine.begin() as conn:
        # One compiled statement, executed for many rows: a multi-VALUES insert recompiles per batch.
        stmt = insert(table)
        updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
        upsert = stmt.on_conflict_do_update(index_elements=list(keys), set_=updates)
        for i in range(0, len(rows), _CHUNK):
            conn.execute(upsert, list(rows[i:i + _CHUNK]))


def write_usage(engine: Engine, dataset: str, subject: str, bucket_s: float, rows: Sequence[PulledRow], *,
                now: float) -> int:
    """Upsert bucketed values; returns how many keys were written."""
    values: dict[tuple[str, str, float], dict[str, object]] = {}
    for r in rows:
        if isinstance(r.value, (int, float)):
            values[(r.dimension, r.metric, r.ts)] = {
                "source": SOURCE, "dataset": dataset, "subject": subject, "dimension": r.dimension,
                "metric": r.metric, "ts": r.ts, "bucket_s": bucket_s, "value": float(r.value), "pulled_at": now}
    _upsert(engine, m.CLOUDFLARE_USAGE, list(values.values()),
            ["source", "dataset", "subject", "dimension", "metric", "ts"])
    return len(values)


def write_cron_runs(engine: Engine, script: str, rows: Sequence[PulledRow], *, now: float) -> int:
    """Upsert cron runs (rows from the raw scheduled node, grouped by run); returns runs written."""
    runs: dict[tuple[str, float], dict[str, object]] = {}
    for r in rows:
        run = runs.setdefault((r.dimension, r.ts), {"source": SOURCE, "script": script, "cron": r.dimension,
                                                    "scheduled_ts": r.ts, "ts": r.ts, "status": "unknown",
                                                    "cpu_time_us": None, "pulled_at": now})
        if r.metric == "status":
            run["status"] = str(r.value)
        elif r.metric == "cpu_time_us" and isinstance(r.value, (int, float)):
            run["cpu_time_us"] = float(r.value)
    _upsert(engine, m.CLOUDFLARE_CRON_RUNS, list(runs.values()), ["source", "script", "cron", "scheduled_ts"])
    return len(runs)


def write_d1_database(engine: Engine, db: D1Database, *, now: float) -> None:
    _upsert(engine, m.CLOUDFLARE_D1_DATABASES, [{
        "source": SOURCE, "database_id": db.database_id, "name": db.name, "file_size_bytes": db.file_size_bytes,
        "read_replication_mode": db.read_replication_mode, "running_in_region": db.running_in_region,
        "pulled_at": now}], ["source", "database_id"])


def read_watermark(engine: Engine, dataset: str, subject: str) -> float | None:
    """Where the last complete pull of (dataset, subject) ended, or None if never pulled."""
    t = m.CLOUDFLARE_WATERMARKS
    with translate_errors(engine, "read cloudflare_watermarks"), engine.connect() as conn:
        value = conn.execute(select(t.c.pulled_until).where(
            t.c.source == SOURCE, t.c.dataset == dataset, t.c.subject == subject)).scalar()
    return float(value) if value is not None else None


def write_watermark(engine: Engine, dataset: str, subject: str, until: float, *, now: float) -> None:
    _upsert(engine, m.CLOUDFLARE_WATERMARKS, [{"source": SOURCE, "dataset": dataset, "subject": subject,
                                               "pulled_until": until, "updated_at": now}],
            ["source", "dataset", "subject"])
