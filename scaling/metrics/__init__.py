"""The metrics DB: what the collectors write and the dashboard reads.

- `models`: the schema (epoch-second DOUBLE timestamps, a ``source`` on every row);
  `migrate.upgrade(url)` brings a DB to it.
- `records` + `writer.MetricsWriter`: the only write path (batched inserts,
  ``claim_run``/``finish_run`` for exactly-once scheduled jobs, alerts).
- `queries`: every dashboard chart as one aggregated query, ≤ 2,000 points a series.
- `rollups` + `retention`: hourly roll-ups and pruning, so the DB stays bounded.
- `logs`: ``[METRICS]``-style JSON log lines; `prometheus`: ``/metrics`` at scrape time.
- `demo`: generated history for a dashboard with nothing to show yet.
"""

from __future__ import annotations

from scaling.metrics.db import open_metrics_db
from scaling.metrics.migrate import upgrade
from scaling.metrics.records import (
    AiUsage,
    AlertEvent,
    CacheStats,
    HeadroomSample,
    JobRun,
    TableStats,
    UserCounts,
    WorkerEvent,
)
from scaling.metrics.writer import MetricsWriter

__all__ = [
    "AiUsage",
    "AlertEvent",
    "CacheStats",
    "HeadroomSample",
    "JobRun",
    "MetricsWriter",
    "TableStats",
    "UserCounts",
    "WorkerEvent",
    "open_metrics_db",
    "upgrade",
]
