"""Keep the metrics DB bounded: roll raw rows up into hours, then prune.

Policy (defaults): raw minute samples, cache stats, AI calls and Worker events are
kept ``raw_days`` (14) and rolled up into their ``*_hourly`` tables, which are kept
``rollup_days`` (730). Gauges without a roll-up (DB stats, user counts) are thinned
to the last sample per hour after ``raw_days`` and dropped after ``rollup_days``.
Job runs keep their JSON report ``raw_days`` and their row ``rollup_days``; runs
still "running" long after they started are closed as failed (their replica died).
Ingest ledger keys (``ingested_events``) go after ``rollup_days``.

Everything is idempotent and works in bounded transactions: a roll-up chunk and
its watermark in ``rollup_state`` commit together, and deletes go a day at a time,
so a crash or a concurrent run leaves nothing counted twice or lost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, and_, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from scaling.metrics import models as m
from scaling.metrics.buckets import HOUR, bucket_start
from scaling.metrics.db import translate_errors
from scaling.metrics.rollups import ROLLUPS, Rollup, distinct_sources

__all__ = ["RetentionReport", "roll_up", "roll_up_and_prune"]

DAY = 86400
#: Hours rolled up per transaction.
CHUNK_HOURS = 24
#: A running job older than this is considered abandoned.
STALE_RUN_S = 6 * HOUR


@dataclass
class RetentionReport:
    """What one retention pass did, per table."""

    rolled_hours: dict[str, int] = field(default_factory=dict)
    rolled_rows: dict[str, int] = field(default_factory=dict)
    pruned_raw: dict[str, int] = field(default_factory=dict)
    pruned_hourly: dict[str, int] = field(default_factory=dict)
    thinned: dict[str, int] = field(default_factory=dict)
    reports_cleared: int = 0
    abandoned_runs: int = 0
    pruned_runs: int = 0
    pruned_alerts: int = 0
    pruned_ingest_keys: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {k: dict(v) if isinstance(v, dict) else v for k, v in self.__dict__.items()}


def _add(counter: dict[str, int], key: str, n: int) -> None:
    counter[key] = counter.get(key, 0) + int(n)


def _state(conn: Connection, table: str, source: str) -> tuple[float, float] | None:
    s = m.ROLLUP_STATE
    row = conn.execute(select(s.c.rolled_until, s.c.pruned_before)
                       .where(s.c.table_name == table, s.c.source == source)).first()
    return None if row is None else (float(row.rolled_until), float(row.pruned_before))


def _set_state(conn: Connection, table: str, source: str, **values: float) -> None:
    s = m.ROLLUP_STATE
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    row = {"table_name": table, "source": source, "rolled_until": values.get("rolled_until", 0.0),
           "pruned_before": values.get("pruned_before", 0.0)}
    stmt = dialect.insert(s).values(**row)
    conn.execute(stmt.on_conflict_do_update(index_elements=["table_name", "source"], set_=values))


def _sources(conn: Connection, table: Any) -> list[str]:
    found = set(distinct_sources(conn, table))
    s = m.ROLLUP_STATE
    found |= set(conn.execute(select(s.c.source).where(s.c.table_name == table.name)).scalars())
    return sorted(found)


def roll_up(engine: Engine, rollup: Rollup, source: str, *, until: float, report: RetentionReport | None = None,
            ) -> RetentionReport:
    """Roll raw rows of one source into complete hours before ``until`` (rounded down to the hour).

    Starts at the source's watermark (or its oldest raw row) and advances it chunk by
    chunk; each chunk replaces its hourly rows, so re-running never double-counts.
    """
    report = report or RetentionReport()
    end = math.floor(until / HOUR) * HOUR
    raw, hourly = rollup.raw, rollup.hourly
    with translate_errors(engine, f"roll up {rollup.name}"):
        with engine.connect() as conn:
            state = _state(conn, rollup.name, source)
            if state is not None:
                start = state[0]
            else:
                oldest = conn.execute(select(func.min(raw.c.ts)).where(raw.c.source == source)).scalar()
                if oldest is None:
                    return report
                start = math.floor(float(oldest) / HOUR) * HOUR
        names = ["hour", *rollup.keys, *(ms.name for ms in rollup.measures)]
        while start < end:
            stop = min(end, start + CHUNK_HOURS * HOUR)
            with engine.begin() as conn:
                where = [raw.c.source == source, raw.c.ts >= start, raw.c.ts < stop]
                conn.execute(delete(hourly).where(hourly.c.source == source, hourly.c.hour >= start,
                                                  hourly.c.hour < stop))
                src = rollup.from_raw(HOUR, where)
                n = conn.execute(insert(hourly).from_select(names, src)).rowcount
                _set_state(conn, rollup.name, source, rolled_until=stop)
            _add(report.rolled_hours, rollup.name, int((stop - start) // HOUR))
            _add(report.rolled_rows, rollup.name, max(n, 0))
            start = stop
    return report


def _delete_in_days(engine: Engine, table: Any, col: Any, start: float | None, stop: float,
                    *extra: Any) -> int:
    """Delete rows with ``start <= col < stop`` one day per transaction; returns rows deleted.

    Empty stretches are skipped by asking for the next row, so a gap of months costs one query.
    """
    total = 0
    lo = -math.inf if start is None else start
    while lo < stop:
        with engine.connect() as conn:
            oldest = conn.execute(select(func.min(col)).where(col >= lo, col < stop, *extra)).scalar()
        if oldest is None:
            break
        lo = math.floor(float(oldest) / DAY) * DAY
        hi = min(stop, lo + DAY)
        with engine.begin() as conn:
            total += max(conn.execute(delete(table).where(col >= lo, col < hi, *extra)).rowcount, 0)
        lo = hi
    return total


def _thin(engine: Engine, table: Any, keys: tuple[str, ...], cutoff: float, report: RetentionReport) -> None:
    """Keep only the newest sample per hour and key for gauges older than ``cutoff``.

    Per source, ``rollup_state.rolled_until`` records how far thinning got; it goes a
    day per transaction and jumps over stretches without rows.
    """
    end = math.floor(cutoff / HOUR) * HOUR
    for source in _sources_of(engine, table):
        with engine.connect() as conn:
            state = _state(conn, table.name, source)
        start = state[0] if state else -math.inf
        while start < end:
            with engine.connect() as conn:
                nxt = conn.execute(select(func.min(table.c.ts)).where(
                    table.c.source == source, table.c.ts >= start, table.c.ts < end)).scalar()
            if nxt is None:
                with engine.begin() as conn:
                    _set_state(conn, table.name, source, rolled_until=end)
                break
            start = math.floor(float(nxt) / HOUR) * HOUR
            stop = min(end, start + DAY)
            in_range = [table.c.source == source, table.c.ts >= start, table.c.ts < stop]
            keep = (select(func.max(table.c.id)).where(*in_range)
                    .group_by(*(table.c[k] for k in keys), bucket_start(table.c.ts, HOUR)))
            with engine.begin() as conn:
                n = conn.execute(delete(table).where(*in_range, table.c.id.notin_(keep.scalar_subquery()))).rowcount
                _set_state(conn, table.name, source, rolled_until=stop)
            _add(report.thinned, table.name, max(n, 0))
            start = stop


def _sources_of(engine: Engine, table: Any) -> list[str]:
    with engine.connect() as conn:
        return _sources(conn, table)


def roll_up_and_prune(engine: Engine, *, now: float, raw_days: float = 14, rollup_days: float = 730,
                      settle_s: float = 600.0) -> RetentionReport:
    """Roll up complete hours, then prune what retention no longer keeps.

    Args:
        engine: the metrics DB.
        now: the current epoch time (from the caller's clock).
        raw_days: days of raw rows (minute samples, calls, events, reports) to keep.
        rollup_days: days of hourly roll-ups, thinned gauges, job runs and resolved alerts to keep.
        settle_s: hours ending less than this before ``now`` are not rolled up yet, so
            samples written a little late still land in their hour.

    Returns:
        Counts of what was rolled up, pruned, thinned and closed.

    Raises:
        ValueError: retention periods that would drop roll-ups before raw rows.
        StoreError: the metrics DB is unreachable or not migrated.
    """
    if not 0 < raw_days <= rollup_days:
        raise ValueError(f"need 0 < raw_days <= rollup_days, got raw_days={raw_days}, rollup_days={rollup_days}")
    report = RetentionReport()
    raw_cutoff = math.floor((now - raw_days * DAY) / HOUR) * HOUR
    old_cutoff = math.floor((now - rollup_days * DAY) / HOUR) * HOUR
    with translate_errors(engine, "apply metrics retention"):
        for rollup in ROLLUPS.values():
            for source in _sources_of(engine, rollup.raw):
                roll_up(engine, rollup, source, until=now - settle_s, report=report)
                with engine.connect() as conn:
                    rolled, pruned = _state(conn, rollup.name, source) or (0.0, 0.0)
                # Never prune what has not been rolled up.
                stop = min(raw_cutoff, rolled)
                if stop > pruned:
                    raw = rollup.raw
                    n = _delete_in_days(engine, raw, raw.c.ts, pruned or None, stop, raw.c.source == source)
                    _add(report.pruned_raw, rollup.name, n)
                    with engine.begin() as conn:
                        _set_state(conn, rollup.name, source, pruned_before=stop)
            hourly = rollup.hourly
            _add(report.pruned_hourly, rollup.name, _delete_in_days(engine, hourly, hourly.c.hour, None, old_cutoff))
        for table, keys in ((m.DB_STATS, ("source", "table_name")), (m.USER_COUNTS, ("source",))):
            _thin(engine, table, keys, raw_cutoff, report)
            _add(report.pruned_raw, table.name, _delete_in_days(engine, table, table.c.ts, None, old_cutoff))
        _jobs_and_alerts(engine, now=now, raw_cutoff=raw_cutoff, old_cutoff=old_cutoff, report=report)
    return report


def _jobs_and_alerts(engine: Engine, *, now: float, raw_cutoff: float, old_cutoff: float,
                     report: RetentionReport) -> None:
    j, a = m.JOB_RUNS, m.ALERT_EVENTS
    with engine.begin() as conn:
        report.abandoned_runs = max(conn.execute(
            update(j).where(j.c.outcome == "running", j.c.started_at < now - STALE_RUN_S)
            .values(outcome="failed", error="abandoned: the run never recorded its end (its process died?)")
        ).rowcount, 0)
        report.reports_cleared = max(conn.execute(
            update(j).where(j.c.scheduled_at < raw_cutoff, j.c.report.is_not(None)).values(report=None)
        ).rowcount, 0)
    report.pruned_runs = _delete_in_days(engine, j, j.c.scheduled_at, None, old_cutoff)
    # Ingest keys older than the roll-ups guard nothing that is still kept.
    e = m.INGESTED_EVENTS
    report.pruned_ingest_keys = _delete_in_days(engine, e, e.c.ts, None, old_cutoff)
    with engine.begin() as conn:
        report.pruned_alerts = max(conn.execute(delete(a).where(
            and_(a.c.state == "resolved", a.c.resolved_at < old_cutoff))).rowcount, 0)
