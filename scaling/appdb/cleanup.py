"""The plan's database cleanup (SCALING_PLAN.md 1.3), in bounded, resumable batches.

What goes: sessions past ``expires_at``; searches older than 90 days; recent
searches and API usage log rows older than 30 days (retention from `Settings`).

Timestamps are TEXT in two shapes: ``YYYY-MM-DD HH:MM:SS`` (D1's ``datetime('now')``)
and JavaScript ISO ``YYYY-MM-DDTHH:MM:SS.sssZ`` (``sessions.expires_at``). Comparing
them as raw text against ``datetime('now')``, as upstream's unused
``deleteExpiredSessions`` would, keeps an ISO session alive up to a day too long,
because ``'T'`` sorts after ``' '``. Here each row must pass two tests:

1. a text range on the raw column, ``col < '<day after the cutoff>'``: true for every
   row dated before that day in either shape, so the column's index drives the scan;
2. the exact test on a normalised copy, ``replace(rtrim(col, 'Z'), 'T', ' ') <
   '<cutoff as YYYY-MM-DD HH:MM:SS[.ffffff]>'`` (byte order), which puts both shapes on
   one timeline to the microsecond (the cutoff's fraction carries no trailing zeros,
   so ``…:05.670`` equals ``…:05.67`` rather than sorting after it).

A row whose value does not start with ``YYYY-MM-DD`` is never deleted: it is not a
timestamp this code understands, and losing it would be worse than keeping it.
Offsets other than ``Z`` are not interpreted (the app never writes them).

Each batch deletes at most ``batch_size`` rows in its own short transaction, so the
SQLite write lock is released between batches and the app's own writes get in.
The batch size adapts to keep each batch under ``target_batch_s``. A crash loses
at most the batch in flight, and a rerun simply continues: the conditions depend
only on ``now``, never on progress recorded elsewhere.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnClause,
    ColumnElement,
    Delete,
    Engine,
    Select,
    Table,
    and_,
    delete,
    func,
    inspect,
    literal_column,
    select,
)
from sqlalchemy.ext.compiler import compiles

from scaling.appdb.engine import backend_name, translate_errors
from scaling.appdb.models import metadata
from scaling.appdb.stats import DbStats, database_stats

__all__ = ["BatchInfo", "CleanupReport", "Retention", "Sweep", "run_cleanup", "sweeps"]

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 5000
#: The first batch is small; the size then grows while batches stay fast.
_FIRST_BATCH = 500
_MIN_BATCH = 50
DAY_S = 86_400.0
#: Idle time between SQLite batches. A blocked writer polls the lock on SQLite's busy
#: schedule (1, 2, 5 … 100 ms); without a gap the next batch would win every time.
SQLITE_PAUSE_S = 0.01


@dataclass(frozen=True, slots=True)
class Retention:
    """How many days of each log-like table to keep (expired sessions always go)."""

    searches_days: int = 90
    recent_searches_days: int = 30
    usage_log_days: int = 30

    def __post_init__(self) -> None:
        for name in ("searches_days", "recent_searches_days", "usage_log_days"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"retention {name} must be a whole number of days >= 1, got {value!r}")

    @classmethod
    def from_settings(cls, settings: Any) -> Retention:
        """From `Settings.retention_searches_days` and friends."""
        return cls(searches_days=settings.retention_searches_days,
                   recent_searches_days=settings.retention_recent_searches_days,
                   usage_log_days=settings.retention_usage_log_days)


@dataclass(frozen=True, slots=True)
class Sweep:
    """One table's rule: rows whose ``column`` is before ``cutoff`` (epoch seconds) go."""

    table: str
    column: str
    cutoff: float

    @property
    def cutoff_text(self) -> str:
        """The cutoff as ``YYYY-MM-DD HH:MM:SS[.ffffff]`` with no trailing zeros in the fraction."""
        return _timestamp_text(self.cutoff)


def sweeps(now: float, retention: Retention) -> tuple[Sweep, ...]:
    """The cleanup's rules at ``now``, in the order they run."""
    return (
        Sweep("sessions", "expires_at", now),
        Sweep("searches", "searched_at", now - retention.searches_days * DAY_S),
        Sweep("recent_searches", "searched_at", now - retention.recent_searches_days * DAY_S),
        Sweep("api_usage_log", "created_at", now - retention.usage_log_days * DAY_S),
    )


@dataclass(frozen=True, slots=True)
class BatchInfo:
    """One committed batch, as passed to the ``on_batch`` hook."""

    table: str
    deleted: int
    limit: int
    duration_s: float


@dataclass(frozen=True, slots=True)
class CleanupReport:
    """What one cleanup run did.

    Attributes:
        started_at: the injected ``now`` (epoch seconds) the cutoffs derive from.
        duration_s: wall time of the run, by the injected clock.
        deleted: rows deleted per table (in a dry run: rows that would be).
        batches: delete transactions committed.
        longest_batch_s: the longest single batch, i.e. the longest write-lock hold.
        dry_run: True when nothing was deleted.
        stats: the DB's rows and bytes after the run.
        cutoffs: per table, the timestamp before which rows went.
        skipped: tables absent from the DB.
    """

    started_at: float
    duration_s: float
    deleted: dict[str, int]
    batches: int
    longest_batch_s: float
    dry_run: bool
    stats: DbStats
    cutoffs: dict[str, str] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()

    @property
    def total_deleted(self) -> int:
        return sum(self.deleted.values())

    def as_dict(self) -> dict[str, Any]:
        return {"started_at": self.started_at, "duration_s": self.duration_s, "deleted": dict(self.deleted),
                "total_deleted": self.total_deleted, "batches": self.batches,
                "longest_batch_s": self.longest_batch_s, "dry_run": self.dry_run, "cutoffs": dict(self.cutoffs),
                "skipped": list(self.skipped), "stats": self.stats.as_dict()}


def run_cleanup(engine: Engine, *, now: float, retention: Retention = Retention(),
                batch_size: int = DEFAULT_BATCH_SIZE, dry_run: bool = False,
                clock: Callable[[], float] = time.perf_counter, sleep: Callable[[float], None] = time.sleep,
                pause_s: float | None = None, target_batch_s: float = 0.1,
                on_batch: Callable[[BatchInfo], None] | None = None) -> CleanupReport:
    """Delete what the retention rules say has expired, batch by batch.

    Args:
        engine: the app DB.
        now: epoch seconds the cutoffs are computed from (inject it; tests use a VirtualClock).
        retention: days to keep per table.
        batch_size: the most rows one transaction deletes.
        dry_run: count what would go; delete nothing.
        clock: measures batch and run durations (monotonic seconds).
        sleep: how to wait ``pause_s`` between batches.
        pause_s: idle time between batches, giving a waiting SQLite writer its turn; by
            default `SQLITE_PAUSE_S` on SQLite and none on PostgreSQL (row locks only).
        target_batch_s: batches slower than this shrink the next batch (halving), faster
            ones grow it, never past ``batch_size``.
        on_batch: called after each committed batch (progress, or a test's crash).

    Returns:
        A `CleanupReport`; also logged as one ``[DB_METRICS] {json}`` line.

    Raises:
        ValueError: ``batch_size`` < 1.
        StoreError: the database is unreachable or stayed locked past its busy timeout.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    if pause_s is None:
        pause_s = SQLITE_PAUSE_S if backend_name(engine) == "sqlite" else 0.0
    start = clock()
    rules = sweeps(now, retention)
    with translate_errors(engine, "clean up the app DB"):
        with engine.connect() as conn:
            present = set(inspect(conn).get_table_names())
        active = [r for r in rules if r.table in present]
        skipped = tuple(r.table for r in rules if r.table not in present)
        deleted: dict[str, int] = {}
        batches, longest = 0, 0.0
        for rule in active:
            if dry_run:
                deleted[rule.table] = _count(engine, rule)
                continue
            count, n, slowest = _sweep(engine, rule, batch_size=batch_size, clock=clock, sleep=sleep,
                                       pause_s=pause_s, target_batch_s=target_batch_s, on_batch=on_batch)
            deleted[rule.table] = count
            batches += n
            longest = max(longest, slowest)
    stats = database_stats(engine)
    report = CleanupReport(started_at=now, duration_s=clock() - start, deleted=deleted, batches=batches,
                           longest_batch_s=longest, dry_run=dry_run, stats=stats,
                           cutoffs={r.table: r.cutoff_text for r in active}, skipped=skipped)
    log.info("[DB_METRICS] %s", json.dumps({
        "event": "cleanup", "dry_run": dry_run, "rows": dict(stats.rows), "total_rows": stats.total_rows,
        "deleted": deleted, "total_bytes": stats.total_bytes, "batches": batches,
        "longest_batch_s": round(longest, 6), "duration_s": round(report.duration_s, 6)}, sort_keys=True))
    return report


def _sweep(engine: Engine, rule: Sweep, *, batch_size: int, clock: Callable[[], float],
           sleep: Callable[[float], None], pause_s: float, target_batch_s: float,
           on_batch: Callable[[BatchInfo], None] | None) -> tuple[int, int, float]:
    table = metadata.tables[rule.table]
    condition = _expired(engine, rule)
    limit = min(batch_size, _FIRST_BATCH)
    total = batches = 0
    slowest = 0.0
    while True:
        stmt = _delete_batch(engine, table, condition, limit)
        began = clock()
        with engine.begin() as conn:
            removed = conn.execute(stmt).rowcount
        took = clock() - began
        batches += 1
        total += removed
        slowest = max(slowest, took)
        if on_batch is not None:
            on_batch(BatchInfo(table=rule.table, deleted=removed, limit=limit, duration_s=took))
        if removed < limit:
            return total, batches, slowest
        if took > target_batch_s:
            limit = max(_MIN_BATCH, limit // 2)
        elif took < target_batch_s / 2:
            limit = min(batch_size, limit * 2)
        if pause_s > 0:
            sleep(pause_s)


def _delete_batch(engine: Engine, table: Table, condition: ColumnElement[bool], limit: int) -> Delete:
    """``DELETE`` at most ``limit`` matching rows, addressed by physical row id.

    SQLite: ``rowid IN (SELECT rowid … LIMIT n)``. PostgreSQL: ``ctid = ANY(ARRAY(SELECT
    ctid … LIMIT n))``, a TID scan: about twice the rows/s of a primary-key lookup in
    ``bench/cleanup.py``.
    A row updated between the two halves has a new ctid and is simply left for the next
    batch: the subquery and the delete run in one statement, so nothing else is at risk.
    """
    if backend_name(engine) == "postgresql":
        ctid: ColumnClause[Any] = literal_column("ctid")
        return delete(table).where(ctid == func.any(_ArrayOf(select(ctid).select_from(table).where(condition)
                                                               .limit(limit))))
    rowid: ColumnClause[Any] = literal_column("rowid")
    return delete(table).where(rowid.in_(select(rowid).select_from(table).where(condition).limit(limit)))


class _ArrayOf(ColumnElement[Any]):
    """PostgreSQL's ``ARRAY(subquery)``, which SQLAlchemy has no construct for."""

    inherit_cache = False

    def __init__(self, query: Select[Any]) -> None:
        self.query = query


@compiles(_ArrayOf, "postgresql")
def _compile_array_of(element: _ArrayOf, compiler: Any, **kw: Any) -> str:
    return f"ARRAY({compiler.process(element.query, **kw)})"


def _count(engine: Engine, rule: Sweep) -> int:
    table = metadata.tables[rule.table]
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(_expired(engine, rule))).scalar_one())


def _expired(engine: Engine, rule: Sweep) -> ColumnElement[bool]:
    col = metadata.tables[rule.table].c[rule.column]
    normalised = func.replace(func.rtrim(col, "Z"), "T", " ")
    next_day = (datetime.fromtimestamp(rule.cutoff, UTC).date() + timedelta(days=1)).isoformat()
    if backend_name(engine) == "postgresql":
        shaped = col.op("~", is_comparison=True)(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}")
        # Byte order whatever the database's collation (en_US would skip punctuation).
        exact = normalised.collate("C") < rule.cutoff_text
    else:
        shaped = col.op("GLOB", is_comparison=True)("[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*")
        exact = normalised < rule.cutoff_text
    return and_(col < next_day, shaped, exact)


def _timestamp_text(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text
