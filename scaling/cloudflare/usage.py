"""Collected Cloudflare usage as a billing month's `PlatformUsage`, and the D1 facts pages show.

THE platform-cost query: the Costs page, ``report costs --include platform`` and the
readiness evidence all read it, so their numbers agree. Billing basis per
reference/cloudflare.md §4: Workers requests and CPU-ms (``sum.cpuTimeUs`` when the
schema has it, else requests x the CPU p50: an estimate, flagged), KV operations by
action, D1 rows read/written, and storage as GB-months accrued from each day's
maximum size. Whether cron runs are already counted in the invocations dataset
is unconfirmed (§7.2); they are not added again.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from scaling.metrics import models as m
from scaling.metrics.db import translate_errors
from scaling.platform_prices import PlatformBill, PlatformUsage, month_to_date_bill, projected_month_end_bill

__all__ = ["D1Facts", "PlatformMonth", "d1_facts", "has_cloudflare_data", "platform_month", "platform_usage"]

U = m.CLOUDFLARE_USAGE
_KV = {"read": "kv_reads", "write": "kv_writes", "delete": "kv_deletes", "list": "kv_lists"}


@dataclass(frozen=True)
class PlatformMonth:
    """This month's platform usage and bill so far, and the bill projected to month end."""

    usage: PlatformUsage
    month_to_date: PlatformBill
    projected: PlatformBill
    cpu_estimated: bool


@dataclass(frozen=True)
class D1Facts:
    database_id: str
    name: str
    file_size_bytes: int | None
    read_replication_mode: str | None
    rows_read_24h: float
    rows_written_24h: float
    read_queries_24h: float
    write_queries_24h: float


def _sums(engine: Engine, dataset: str, since: float, until: float) -> dict[tuple[str, str], float]:
    with translate_errors(engine, "read cloudflare_usage"), engine.connect() as conn:
        rows = conn.execute(select(U.c.metric, U.c.dimension, func.sum(U.c.value)).where(
            U.c.source == "cloudflare", U.c.dataset == dataset, U.c.ts >= since, U.c.ts < until
        ).group_by(U.c.metric, U.c.dimension)).all()
    return {(str(metric), str(dim)): float(total or 0) for metric, dim, total in rows}


def _gb_months(engine: Engine, dataset: str, metric: str, since: float, until: float, month_days: int) -> float:
    """Each day's largest size (summed over subjects), in GB-days, over the month's days."""
    with translate_errors(engine, "read cloudflare_usage"), engine.connect() as conn:
        rows = conn.execute(select(U.c.ts, func.sum(U.c.value)).where(
            U.c.source == "cloudflare", U.c.dataset == dataset, U.c.metric == metric, U.c.ts >= since,
            U.c.ts < until).group_by(U.c.ts)).all()
    return sum(float(v or 0) for _, v in rows) / 1e9 / month_days


def platform_usage(engine: Engine, since: float, until: float, *, month_days: int = 30) -> tuple[PlatformUsage, bool]:
    """Usage in ``[since, until)`` and whether CPU-ms is estimated from the p50 (no ``cpuTimeUs``)."""
    w = _sums(engine, "workersInvocationsAdaptive", since, until)
    requests = sum(v for (metric, _), v in w.items() if metric == "requests")
    cpu_us = sum(v for (metric, _), v in w.items() if metric == "cpu_time_us_sum")
    estimated = cpu_us == 0 and requests > 0
    if estimated:
        # Without the sum, requests x median CPU is the best available figure (the mean is higher).
        p50 = [v for (metric, _), v in w.items() if metric == "cpu_time_p50_us"]
        cpu_us = requests * (sum(p50) / len(p50) if p50 else 0.0)
    kv = _sums(engine, "kvOperationsAdaptiveGroups", since, until)
    d1 = _sums(engine, "d1AnalyticsAdaptiveGroups", since, until)
    counts = {field: kv.get(("requests", action), 0.0) for action, field in _KV.items()}
    usage = PlatformUsage(
        requests=requests, cpu_ms=cpu_us / 1000, **counts,
        kv_stored_gb=_gb_months(engine, "kvStorageAdaptiveGroups", "byte_count", since, until, month_days),
        d1_rows_read=d1.get(("rows_read", ""), 0.0), d1_rows_written=d1.get(("rows_written", ""), 0.0),
        d1_storage_gb=_gb_months(engine, "d1StorageAdaptiveGroups", "database_size_bytes", since, until,
                                 month_days))
    return usage, estimated


def platform_month(engine: Engine, now: float) -> PlatformMonth:
    """Month-to-date (calendar month, UTC) and projected month-end platform bills."""
    at = dt.datetime.fromtimestamp(now, dt.UTC)
    start = dt.datetime(at.year, at.month, 1, tzinfo=dt.UTC).timestamp()
    days = calendar.monthrange(at.year, at.month)[1]
    usage, estimated = platform_usage(engine, start, now, month_days=days)
    return PlatformMonth(usage, month_to_date_bill(usage, now=at), projected_month_end_bill(usage, now=at), estimated)


def has_cloudflare_data(engine: Engine) -> bool:
    """True once the collector has stored anything from a Cloudflare account."""
    with translate_errors(engine, "read cloudflare_usage"), engine.connect() as conn:
        return conn.execute(select(U.c.ts).where(U.c.source == "cloudflare").limit(1)).first() is not None


def d1_facts(engine: Engine, now: float) -> list[D1Facts]:
    """Each D1 database's latest REST snapshot with its last 24 h of rows and queries."""
    t = m.CLOUDFLARE_D1_DATABASES
    with translate_errors(engine, "read cloudflare_d1_databases"), engine.connect() as conn:
        dbs = conn.execute(select(t.c.database_id, t.c.name, t.c.file_size_bytes, t.c.read_replication_mode)
                           .where(t.c.source == "cloudflare").order_by(t.c.database_id)).all()
        out = []
        for db_id, name, size, mode in dbs:
            sums = dict(conn.execute(select(U.c.metric, func.sum(U.c.value)).where(
                U.c.source == "cloudflare", U.c.dataset == "d1AnalyticsAdaptiveGroups", U.c.subject == db_id,
                U.c.ts >= now - 86400, U.c.ts < now).group_by(U.c.metric)).all())
            out.append(D1Facts(str(db_id), str(name), int(size) if size is not None else None,
                               str(mode) if mode else None, float(sums.get("rows_read") or 0),
                               float(sums.get("rows_written") or 0), float(sums.get("read_queries") or 0),
                               float(sums.get("write_queries") or 0)))
    return out
