"""The one way metrics get into the metrics DB.

Collectors build records (`scaling.metrics.records`) and hand them to a
`MetricsWriter`, which stamps missing timestamps from its clock, inserts each table's
rows as one batched statement inside one transaction, optionally emits the matching
structured log lines, and turns driver failures into `StoreError`.

Scheduled jobs use `claim_run` / `finish_run`: the claim is an INSERT guarded by
UNIQUE(job, scheduled_at, source), so when several collector replicas fire the same
slot exactly one of them gets True and runs the job.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any

from sqlalchemy import Engine, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite

from scaling.clock import Clock
from scaling.metrics import logs
from scaling.metrics import models as m
from scaling.metrics.db import translate_errors
from scaling.metrics.records import (
    DEFAULT_SOURCE,
    AiUsage,
    AlertEvent,
    CacheStats,
    HeadroomSample,
    JobRun,
    MetricRecord,
    TableStats,
    UserCounts,
    WorkerEvent,
    field_names,
    report_json,
)

__all__ = ["MetricsWriter"]

#: Rows per INSERT statement: large enough to amortise round trips, small enough for SQLite's variable limit.
BATCH_ROWS = 2000
#: Errors longer than this are cut: a stack trace belongs in the logs, not the metrics DB.
MAX_ERROR_CHARS = 2000

_TABLES: dict[type, Any] = {
    HeadroomSample: m.HEADROOM_SAMPLES, TableStats: m.DB_STATS, CacheStats: m.CACHE_STATS, AiUsage: m.AI_USAGE,
    UserCounts: m.USER_COUNTS, WorkerEvent: m.WORKER_EVENTS,
}


class MetricsWriter:
    """Writes metric records, job runs and alerts to the metrics DB.

    Args:
        engine: the metrics DB (migrated to head).
        clock: stamps records whose ``ts`` is None and times job runs.
        log_lines: also emit ``[RATE_LIMIT_WARNING]``, ``[DB_METRICS]``, ``[CACHE_METRICS]``
            and ``[METRICS]`` lines for what is written (see `scaling.metrics.logs`).
        host: recorded on job runs this writer claims (default: this host's name).
        warn_every_s: while a limiter keeps being throttled or turning callers away, repeat
            its warning at most this often (the upstream app logged one per request).

    A headroom sample warns only when demand exceeded the limit: upstream 429s, callers
    rejected (their wait would pass their budget) or a cooldown. High utilisation alone does
    not: the prewarm paces Last.fm at 100% by design, and a limiter at its limit is working.
    Callers queued past the limiter's threshold are warned by the limiter itself
    (`scaling.rate_limit.RateLimiter`), in this same format.
    """

    def __init__(self, engine: Engine, *, clock: Clock, log_lines: bool = True,
                 host: str | None = None, warn_every_s: float = 300.0) -> None:
        self.engine = engine
        self.clock = clock
        self.log_lines = log_lines
        self.host = host or socket.gethostname()
        self.warn_every_s = warn_every_s
        self._warned_at: dict[tuple[str, str, str], float] = {}

    # --- samples ---------------------------------------------------------------

    def record(self, records: Iterable[MetricRecord]) -> int:
        """Insert records of any kinds in one transaction; returns rows written.

        Raises:
            StoreError: the metrics DB is unreachable or not migrated.
            TypeError: a record is not one of the metric record types.
        """
        now = self.clock.now()
        by_table: dict[Any, list[dict[str, Any]]] = {}
        kept: list[MetricRecord] = []
        for rec in records:
            table = _TABLES.get(type(rec))
            if table is None:
                raise TypeError(f"not a metric record: {type(rec).__name__} "
                                "(job runs and alerts have their own methods)")
            by_table.setdefault(table, []).append(_row(rec, now))
            kept.append(rec)
        if not kept:
            return 0
        with translate_errors(self.engine, "write metrics"), self.engine.begin() as conn:
            for table, rows in by_table.items():
                for i in range(0, len(rows), BATCH_ROWS):
                    conn.execute(insert(table), rows[i:i + BATCH_ROWS])
        if self.log_lines:
            self._log(kept, now)
        return len(kept)

    def record_headroom(self, samples: Iterable[HeadroomSample]) -> int:
        """Insert limiter headroom samples (one per upstream and key, typically every minute)."""
        return self.record(_only(samples, HeadroomSample))

    def record_table_stats(self, stats: Iterable[TableStats]) -> int:
        """Insert app-DB table sizes (include ``table_name='*'`` for the whole database)."""
        return self.record(_only(stats, TableStats))

    def record_cache_stats(self, stats: Iterable[CacheStats]) -> int:
        """Insert per-family cache statistics."""
        return self.record(_only(stats, CacheStats))

    def record_ai_usage(self, usage: Iterable[AiUsage]) -> int:
        """Insert AI calls with their tokens and cost."""
        return self.record(_only(usage, AiUsage))

    def record_user_counts(self, counts: UserCounts) -> int:
        """Insert one user-count sample."""
        return self.record([counts])

    def record_worker_events(self, events: Iterable[WorkerEvent]) -> int:
        """Insert Worker invocations (from ``wrangler tail`` ingestion)."""
        return self.record(_only(events, WorkerEvent))

    # --- job runs ----------------------------------------------------------------

    def claim_run(self, job: str, scheduled_at: float, *, source: str = DEFAULT_SOURCE) -> bool:
        """Claim a scheduled slot of a job: True for exactly one caller per (job, scheduled_at, source).

        The row starts as outcome ``running`` with ``started_at`` = now and lateness
        = now - scheduled_at. Call `finish_run` when the job ends.

        Raises:
            StoreError: the metrics DB is unreachable or not migrated.
        """
        now = self.clock.now()
        row = {"job": job, "scheduled_at": _slot(scheduled_at), "source": source, "started_at": now,
               "lateness_s": now - _slot(scheduled_at), "outcome": "running", "host": self.host}
        with translate_errors(self.engine, "claim a job run"), self.engine.begin() as conn:
            return conn.execute(_insert_or_ignore(self.engine, m.JOB_RUNS, row)).first() is not None

    def finish_run(self, job: str, scheduled_at: float, *, outcome: str, error: str | None = None,
                   report: Mapping[str, Any] | str | None = None, source: str = DEFAULT_SOURCE) -> bool:
        """Record how a claimed run ended; False when there was no running claim to finish.

        Args:
            job: the job name given to `claim_run`.
            scheduled_at: the slot given to `claim_run`.
            outcome: "ok", "failed", "timed_out" or "skipped".
            error: a one-line reason for failures (truncated to 2,000 characters).
            report: the job's own report (a mapping, stored as JSON).
        """
        JobRun(job, scheduled_at, scheduled_at, outcome)  # validates outcome and names
        now = self.clock.now()
        t = m.JOB_RUNS
        stmt = (update(t)
                .where(t.c.job == job, t.c.scheduled_at == _slot(scheduled_at), t.c.source == source,
                       t.c.outcome == "running")
                .values(finished_at=now, duration_s=literal(now) - t.c.started_at, outcome=outcome,
                        error=_error(error), report=report_json(report)))
        with translate_errors(self.engine, "finish a job run"), self.engine.begin() as conn:
            done = conn.execute(stmt).rowcount == 1
            if done and self.log_lines:
                duration = conn.execute(select(t.c.duration_s).where(
                    t.c.job == job, t.c.scheduled_at == _slot(scheduled_at), t.c.source == source)).scalar()
                logs.log_metrics("METRICS", {"job": job, "outcome": outcome,
                                             "durationMs": round((duration or 0) * 1000),
                                             "scheduledAt": _slot(scheduled_at), "error": _error(error),
                                             **(report if isinstance(report, Mapping) else {})})
        return done

    def record_run(self, run: JobRun) -> bool:
        """Insert a complete run (e.g. a skipped slot, or one ingested from Worker logs).

        Returns:
            False if that (job, scheduled_at, source) is already recorded.
        """
        finished = run.started_at + run.duration_s if run.duration_s is not None else None
        row = {"job": run.job, "scheduled_at": _slot(run.scheduled_at), "source": run.source,
               "started_at": run.started_at, "finished_at": finished, "duration_s": run.duration_s,
               "lateness_s": run.started_at - _slot(run.scheduled_at), "outcome": run.outcome,
               "error": _error(run.error), "report": report_json(run.report), "host": run.host}
        with translate_errors(self.engine, "record a job run"), self.engine.begin() as conn:
            return conn.execute(_insert_or_ignore(self.engine, m.JOB_RUNS, row)).first() is not None

    # --- alerts -------------------------------------------------------------------

    def fire_alert(self, event: AlertEvent) -> int:
        """Record that an alert fires; returns its id (the existing one if it is already firing)."""
        t = m.ALERT_EVENTS
        with translate_errors(self.engine, "record an alert"), self.engine.begin() as conn:
            existing = conn.execute(select(t.c.id).where(
                t.c.rule == event.rule, t.c.subject == event.subject, t.c.source == event.source,
                t.c.state == "firing").order_by(t.c.id).limit(1)).scalar()
            if existing is not None:
                return int(existing)
            row = {**asdict(event), "state": "firing", "delivered": False,
                   "started_at": event.started_at if event.started_at is not None else self.clock.now()}
            return int(conn.execute(insert(t).values(**row).returning(t.c.id)).scalar_one())

    def resolve_alert(self, rule: str, *, subject: str = "", source: str = DEFAULT_SOURCE,
                      value: float | None = None) -> int:
        """Mark a firing alert resolved now; returns how many incidents were resolved (0 or 1)."""
        t = m.ALERT_EVENTS
        values: dict[str, Any] = {"state": "resolved", "resolved_at": self.clock.now()}
        if value is not None:
            values["value"] = value
        with translate_errors(self.engine, "resolve an alert"), self.engine.begin() as conn:
            return int(conn.execute(update(t).where(
                t.c.rule == rule, t.c.subject == subject, t.c.source == source, t.c.state == "firing",
            ).values(**values)).rowcount)

    def mark_delivered(self, alert_id: int) -> None:
        """Note that the notification for an alert went out."""
        t = m.ALERT_EVENTS
        with translate_errors(self.engine, "update an alert"), self.engine.begin() as conn:
            conn.execute(update(t).where(t.c.id == alert_id).values(delivered=True))

    # --- log lines --------------------------------------------------------------------

    def _log(self, records: list[MetricRecord], now: float) -> None:
        tables = [r for r in records if isinstance(r, TableStats)]
        if tables:
            logs.log_db_stats(tables)
        caches = [r for r in records if isinstance(r, CacheStats)]
        if caches:
            logs.log_cache_stats(caches)
        for r in records:
            if isinstance(r, HeadroomSample):
                self._maybe_warn(r, now)
            elif isinstance(r, UserCounts):
                logs.log_metrics("METRICS", {"timestamp": logs.iso(r.ts if r.ts is not None else now),
                                             "userCount": r.total, "lastfmUserCount": r.with_lastfm,
                                             "activeUserCount": r.active})

    def _maybe_warn(self, sample: HeadroomSample, now: float) -> None:
        key = (sample.source, sample.upstream, sample.limiter_key)
        ts = sample.ts if sample.ts is not None else now
        reason = ("throttled" if sample.upstream_429 else "rejected" if sample.rejected
                  else "cooldown" if sample.in_cooldown else None)
        if reason is None:
            self._warned_at.pop(key, None)  # demand back within the limit: the next excess warns at once
            return
        last = self._warned_at.get(key)
        if sample.upstream_429 or last is None or ts - last >= self.warn_every_s or ts < last:
            self._warned_at[key] = ts
            logs.log_rate_limit_warning(sample, now=now, reason=reason)


def _row(rec: MetricRecord, now: float) -> dict[str, Any]:
    # A shallow copy: dataclasses.asdict deep-copies every value and was 80% of a bulk insert.
    row = {name: getattr(rec, name) for name in field_names(type(rec))}
    if row.get("ts") is None:
        row["ts"] = now
    if isinstance(rec, HeadroomSample):
        row["utilisation"] = rec.utilisation
        if row["remaining"] is None:
            row["remaining"] = max(0.0, rec.limit - rec.used)
    return row


def _only(items: Iterable[Any], kind: type) -> list[Any]:
    out = [items] if isinstance(items, kind) else list(items)
    for item in out:
        if not isinstance(item, kind):
            raise TypeError(f"expected {kind.__name__} records, got {type(item).__name__}")
    return out


def _slot(scheduled_at: float) -> float:
    # Replicas compute the slot from the same trigger but maybe via different float paths;
    # milliseconds are far finer than any schedule and absorb the last-bit differences.
    return round(float(scheduled_at), 3)


def _error(error: str | None) -> str | None:
    if error is None:
        return None
    return error if len(error) <= MAX_ERROR_CHARS else error[:MAX_ERROR_CHARS - 1] + "…"


def _insert_or_ignore(engine: Engine, table: Any, row: dict[str, Any]) -> Any:
    # RETURNING tells whether the row went in; rowcount is -1 under PostgreSQL's implicit RETURNING.
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).values(**row).on_conflict_do_nothing().returning(table.c.id)
