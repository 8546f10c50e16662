"""Write mapped tail events to the metrics DB exactly once per source.

Each event has a key (`tail_metrics.event_key`). A batch is written in one
transaction: insert the keys into ``ingested_events`` unless already there for the
source, then insert every row the newly claimed events produce. The keys and the
rows commit together, so an interrupted ingest never leaves rows without their key
(counted twice on a rerun) or a key without its rows (lost). Cron runs also keep the
job-runs table's own UNIQUE(job, scheduled_at, source).

This writes rows itself rather than through `MetricsWriter.record` because the
writer commits its own transaction, which cannot include the ledger insert.

Late data: the dashboard reads hours before a table's roll-up watermark from the
hourly tables, so rows ingested from an older capture would not show there. When a
batch lands before the watermark, the watermark is moved back (never before what
was already pruned) so the next retention pass rolls those hours up again.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from sqlalchemy import Engine, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from scaling.ingest.tail_metrics import MappedEvent
from scaling.metrics import models as m
from scaling.metrics.buckets import HOUR
from scaling.metrics.db import translate_errors
from scaling.metrics.records import CacheStats, HeadroomSample, JobRun, TableStats, UserCounts, WorkerEvent, report_json

__all__ = ["LedgerWriter", "WriteResult"]

#: Rows per INSERT statement (SQLite allows 32,766 bound values per statement).
BATCH_ROWS = 2000

_CLAIM_PG = text(
    f"INSERT INTO {m.INGESTED_EVENTS.name} (source, event_key, ts) "
    "SELECT :source, k, t FROM unnest(CAST(:keys AS text[]), CAST(:ts AS double precision[])) AS u(k, t) "
    "ORDER BY k ON CONFLICT DO NOTHING RETURNING event_key")

_TABLES: dict[type, Any] = {
    WorkerEvent: m.WORKER_EVENTS, HeadroomSample: m.HEADROOM_SAMPLES, TableStats: m.DB_STATS,
    CacheStats: m.CACHE_STATS, UserCounts: m.USER_COUNTS,
}
_FIELDS: dict[type, tuple[str, ...]] = {kind: tuple(f.name for f in fields(kind)) for kind in _TABLES}
#: Raw tables with hourly roll-ups, whose watermark late rows must move back.
_ROLLED = (m.WORKER_EVENTS, m.HEADROOM_SAMPLES, m.CACHE_STATS)


@dataclass
class WriteResult:
    """What writing one or more batches did.

    Attributes:
        events: new events stored.
        duplicates: events skipped because their key was already stored (or repeated in the batch).
        rows: metric rows inserted, per table (``job_runs`` included).
        duplicate_runs: cron runs whose (job, scheduled_at, source) was already recorded.
        rewound: tables whose roll-up watermark was moved back for late rows.
        below_retention: new events older than the raw-row retention (stored, but hourly views omit them).
    """

    events: int = 0
    duplicates: int = 0
    rows: Counter[str] = field(default_factory=Counter)
    duplicate_runs: int = 0
    rewound: set[str] = field(default_factory=set)
    below_retention: int = 0

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def add(self, other: WriteResult) -> None:
        self.events += other.events
        self.duplicates += other.duplicates
        self.rows.update(other.rows)
        self.duplicate_runs += other.duplicate_runs
        self.rewound |= other.rewound
        self.below_retention += other.below_retention


class LedgerWriter:
    """Stores mapped events for one source, each event at most once.

    Args:
        engine: the metrics DB, migrated to head.
        source: the source the events are keyed under (their rows carry their own ``source``).
    """

    def __init__(self, engine: Engine, *, source: str) -> None:
        self.engine = engine
        self.source = source

    def write(self, batch: Sequence[MappedEvent]) -> WriteResult:
        """Store the events of ``batch`` not stored before, in one transaction.

        Raises:
            StoreError: the metrics DB is unreachable or not migrated.
        """
        unique: dict[str, MappedEvent] = {}
        for event in batch:
            unique.setdefault(event.key, event)
        if not unique:
            return WriteResult()
        with translate_errors(self.engine, "write ingested Worker metrics"), self.engine.begin() as conn:
            result = self._write(conn, unique)
        result.duplicates += len(batch) - len(unique)
        return result

    def _write(self, conn: Connection, unique: dict[str, MappedEvent]) -> WriteResult:
        # Claim the keys first: INSERT ... ON CONFLICT DO NOTHING RETURNING tells which are new, and a
        # concurrent ingester of the same capture waits on the same keys instead of racing past a lookup.
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        ledger = m.INGESTED_EVENTS
        # Sorted keys: concurrent transactions lock them in one order, so they wait rather than deadlock.
        events = [unique[key] for key in sorted(unique)]
        claimed: set[str] = set()
        for i in range(0, len(events), BATCH_ROWS):
            chunk = events[i:i + BATCH_ROWS]
            if conn.dialect.name == "postgresql":
                # Two array parameters: psycopg re-parses the text of a many-row VALUES list on every call.
                claimed.update(conn.execute(_CLAIM_PG, {"source": self.source, "keys": [e.key for e in chunk],
                                                        "ts": [e.event.ts for e in chunk]}).scalars())
            else:
                # One cached statement over many parameter sets (SQLAlchemy batches it into multi-row
                # INSERTs); a .values([...]) statement would be compiled afresh for every batch.
                stmt = dialect.insert(ledger).on_conflict_do_nothing().returning(ledger.c.event_key)
                rows = [{"source": self.source, "event_key": e.key, "ts": e.event.ts} for e in chunk]
                claimed.update(conn.execute(stmt, rows).scalars())
        fresh = [e for e in unique.values() if e.key in claimed]  # rows in input order
        result = WriteResult(events=len(fresh), duplicates=len(events) - len(fresh))
        if not fresh:
            return result
        by_table: dict[Any, list[dict[str, Any]]] = {}
        for e in fresh:
            by_table.setdefault(m.WORKER_EVENTS, []).append(_row(e.event))
            for sample in e.samples:
                by_table.setdefault(_TABLES[type(sample)], []).append(_row(sample))
        for table, rows in by_table.items():
            _insert_many(conn, table, rows)
            result.rows[table.name] += len(rows)
        for e in fresh:
            if e.run is not None:
                # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... RETURNING it has not fetched.
                stmt = (dialect.insert(m.JOB_RUNS).values(**_run_row(e.run)).on_conflict_do_nothing()
                        .returning(m.JOB_RUNS.c.id))
                if conn.execute(stmt).first() is not None:
                    result.rows[m.JOB_RUNS.name] += 1
                else:
                    result.duplicate_runs += 1
        for table in _ROLLED:
            if by_table.get(table):
                self._rewind(conn, table.name, [r["ts"] for r in by_table[table]], result)
        return result

    def _rewind(self, conn: Connection, table: str, times: list[float], result: WriteResult) -> None:
        s = m.ROLLUP_STATE
        where = (s.c.table_name == table, s.c.source == self.source)
        state = conn.execute(select(s.c.rolled_until, s.c.pruned_before).where(*where)).first()
        oldest = min(times)
        if state is None or oldest >= state.rolled_until:
            return
        if table == m.WORKER_EVENTS.name:
            result.below_retention += sum(1 for t in times if t < state.pruned_before)
        back_to = max(math.floor(oldest / HOUR) * HOUR, float(state.pruned_before))
        if back_to < state.rolled_until:
            conn.execute(update(s).where(*where).values(rolled_until=back_to))
            result.rewound.add(table)


def _insert_many(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    if conn.dialect.name == "postgresql":
        # One INSERT ... SELECT FROM unnest(arrays) per batch: a single statement for the server to
        # plan and run, where executemany costs a round of executor work per row.
        names = list(rows[0])
        arrays = ", ".join(f"CAST(:{name} AS {table.c[name].type.compile(dialect=conn.dialect)}[])" for name in names)
        columns = ", ".join(f'"{name}"' for name in names)
        stmt = text(f"INSERT INTO {table.name} ({columns}) SELECT * FROM unnest({arrays})")
        for i in range(0, len(rows), BATCH_ROWS):
            chunk = rows[i:i + BATCH_ROWS]
            conn.execute(stmt, {name: [row[name] for row in chunk] for name in names})
        return
    for i in range(0, len(rows), BATCH_ROWS):
        conn.execute(insert(table), rows[i:i + BATCH_ROWS])


def _row(record: Any) -> dict[str, Any]:
    row = {name: getattr(record, name) for name in _FIELDS[type(record)]}
    if isinstance(record, HeadroomSample):
        row["utilisation"] = record.utilisation
        if row["remaining"] is None:
            row["remaining"] = max(0.0, record.limit - record.used)
    return row


def _run_row(run: JobRun) -> dict[str, Any]:
    # Same shape as MetricsWriter.record_run, slot rounded to the millisecond like the writer's.
    scheduled = round(float(run.scheduled_at), 3)
    finished = run.started_at + run.duration_s if run.duration_s is not None else None
    return {"job": run.job, "scheduled_at": scheduled, "source": run.source, "started_at": run.started_at,
            "finished_at": finished, "duration_s": run.duration_s, "lateness_s": run.started_at - scheduled,
            "outcome": run.outcome, "error": run.error, "report": report_json(run.report), "host": run.host}

