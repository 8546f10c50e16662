"""Prometheus exposition of the metrics DB: ``/metrics`` reads the latest values at scrape time.

Nothing is kept in process memory: a custom collector runs a handful of small
aggregate queries per scrape, so every replica (and the dashboard) exposes the same
numbers the DB holds. Labels are upstreams, limiter keys, jobs, tables, cache
families, providers, sources and alert rules, never user ids. Off by default: the
collectors process calls `serve` only when ``HEADROOM_PROMETHEUS_PORT`` is set.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from scaling.clock import Clock, SystemClock
from scaling.errors import StoreError
from scaling.metrics import models as m
from scaling.metrics import queries as q
from scaling.metrics.db import translate_errors
from scaling.metrics.rollups import CACHE, HEADROOM

__all__ = ["MetricsDbCollector", "make_registry", "serve"]

log = logging.getLogger(__name__)
#: Cache hit ratios are over this trailing window.
HIT_RATIO_WINDOW_S = 3600.0


class MetricsDbCollector(Collector):
    """Reads the latest metrics from the metrics DB on every scrape.

    Args:
        engine: the metrics DB.
        clock: decides "latest" windows (last 15 min of headroom, this month's AI cost).
        limit_bytes: the app DB's storage limit, exposed as ``db_limit_bytes``.
    """

    def __init__(self, engine: Engine, *, clock: Clock | None = None, limit_bytes: int = q.D1_LIMIT_BYTES) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()
        self.limit_bytes = limit_bytes

    def describe(self) -> list[Any]:
        return []  # metrics depend on DB contents; don't query at registration

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily("headroom_metrics_db_up", "1 if the metrics DB answered this scrape")
        try:
            with translate_errors(self.engine, "read metrics for /metrics"):
                families = list(self._families(self.clock.now()))
        except StoreError as exc:
            log.warning("metrics DB unavailable for /metrics: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self, now: float) -> Iterator[Any]:
        yield from self._headroom(now)
        yield from self._cron()
        yield from self._db()
        yield from self._cache(now)
        yield from self._ai(now)
        yield from self._users_and_alerts()

    def _headroom(self, now: float) -> Iterator[Any]:
        labels = ["upstream", "limiter_key", "source"]
        util = GaugeMetricFamily("headroom_utilisation", "Share of the rate limit used (latest sample)", labels=labels)
        used = GaugeMetricFamily("headroom_used", "Requests used in the limiter window", labels=labels)
        limit = GaugeMetricFamily("headroom_limit", "The limiter's limit per window", labels=labels)
        cool = GaugeMetricFamily("headroom_in_cooldown", "1 while an upstream 429 cooldown is active", labels=labels)
        for r in q.latest_headroom(self.engine, now=now).itertuples():
            lv = [r.upstream, r.limiter_key, r.source]
            util.add_metric(lv, float(r.utilisation))
            used.add_metric(lv, float(r.used))
            limit.add_metric(lv, float(r.limit))
            cool.add_metric(lv, 1.0 if r.in_cooldown else 0.0)
        yield from (util, used, limit, cool)
        totals = q.rolled_totals(self.engine, HEADROOM)
        c429 = CounterMetricFamily("headroom_upstream_429", "429 responses from the upstream", labels=labels)
        thr = CounterMetricFamily("headroom_throttled", "Calls the limiter delayed", labels=labels)
        rej = CounterMetricFamily("headroom_rejected", "Calls refused: wait budget exceeded", labels=labels)
        wait = CounterMetricFamily("headroom_wait_seconds", "Seconds spent waiting for the limiter", labels=labels)
        for r in totals.itertuples():
            lv = [r.upstream, r.limiter_key, r.source]
            c429.add_metric(lv, float(r.upstream_429))
            thr.add_metric(lv, float(r.throttled))
            rej.add_metric(lv, float(r.rejected))
            wait.add_metric(lv, float(r.wait_seconds))
        yield from (c429, thr, rej, wait)

    def _cron(self) -> Iterator[Any]:
        t = m.JOB_RUNS
        last = GaugeMetricFamily("cron_duration_seconds", "Duration of the job's latest finished run",
                                 labels=["job", "source"])
        late = GaugeMetricFamily("cron_lateness_seconds", "How late the job's latest run started",
                                 labels=["job", "source"])
        ok_at = GaugeMetricFamily("cron_last_success_timestamp_seconds", "Scheduled time of the latest ok run",
                                  labels=["job", "source"])
        runs = CounterMetricFamily("cron_runs", "Job runs by outcome (within retention)",
                                   labels=["job", "source", "outcome"])
        newest = (select(t.c.job, t.c.source, func.max(t.c.scheduled_at).label("at"))
                  .where(t.c.outcome != "running").group_by(t.c.job, t.c.source).subquery())
        with self.engine.connect() as conn:
            for r in conn.execute(select(t.c.job, t.c.source, t.c.duration_s, t.c.lateness_s).join(
                    newest, (t.c.job == newest.c.job) & (t.c.source == newest.c.source)
                    & (t.c.scheduled_at == newest.c.at))):
                last.add_metric([r.job, r.source], float(r.duration_s or 0.0))
                late.add_metric([r.job, r.source], float(r.lateness_s or 0.0))
            for ok in conn.execute(select(t.c.job, t.c.source, func.max(t.c.scheduled_at).label("at"))
                                   .where(t.c.outcome == "ok").group_by(t.c.job, t.c.source)):
                ok_at.add_metric([ok.job, ok.source], float(ok.at))
            for count in conn.execute(select(t.c.job, t.c.source, t.c.outcome, func.count().label("n"))
                                      .group_by(t.c.job, t.c.source, t.c.outcome)):
                runs.add_metric([count.job, count.source, count.outcome], float(count.n))
        yield from (last, late, ok_at, runs)

    def _db(self) -> Iterator[Any]:
        rows = GaugeMetricFamily("db_rows", "Rows per app-DB table ('*' = all)", labels=["table", "source"])
        size = GaugeMetricFamily("db_bytes", "Bytes per app-DB table ('*' = all)", labels=["table", "source"])
        for r in q.latest_db_stats(self.engine).itertuples():
            rows.add_metric([r.table_name, r.source], float(r.rows))
            if r.bytes is not None and not (isinstance(r.bytes, float) and math.isnan(r.bytes)):
                size.add_metric([r.table_name, r.source], float(r.bytes))
        limit = GaugeMetricFamily("db_limit_bytes", "The app DB's storage limit")
        limit.add_metric([], float(self.limit_bytes))
        yield from (rows, size, limit)

    def _cache(self, now: float) -> Iterator[Any]:
        ratio = GaugeMetricFamily("cache_hit_ratio", "Hits / (hits + misses) over the last hour",
                                  labels=["family", "source"])
        keys = GaugeMetricFamily("cache_keys", "Keys in the family (peak, last hour)", labels=["family", "source"])
        size = GaugeMetricFamily("cache_bytes", "Bytes in the family (peak, last hour)", labels=["family", "source"])
        for r in q.cache_summary(self.engine, now - HIT_RATIO_WINDOW_S, now + 1).itertuples():
            if r.hit_ratio == r.hit_ratio:  # not NaN: the family saw lookups
                ratio.add_metric([r.family, r.source], float(r.hit_ratio))
            keys.add_metric([r.family, r.source], float(r.keys_max))
            size.add_metric([r.family, r.source], float(r.bytes_max))
        hits = CounterMetricFamily("cache_hits", "Cache hits (within retention)", labels=["family", "source"])
        misses = CounterMetricFamily("cache_misses", "Cache misses (within retention)", labels=["family", "source"])
        for r in q.rolled_totals(self.engine, CACHE).itertuples():
            hits.add_metric([r.family, r.source], float(r.hits))
            misses.add_metric([r.family, r.source], float(r.misses))
        yield from (ratio, keys, size, hits, misses)

    def _ai(self, now: float) -> Iterator[Any]:
        today = datetime.fromtimestamp(now, tz=UTC)
        month_start = today.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        cost = GaugeMetricFamily("ai_cost_usd_month", "AI spend this calendar month (UTC), dollars",
                                 labels=["provider", "source"])
        calls = GaugeMetricFamily("ai_calls_month", "AI calls this calendar month (UTC)", labels=["provider", "source"])
        for r in q.ai_cost_by(self.engine, month_start, now + 1, ("provider", "source")).itertuples():
            cost.add_metric([r.provider, r.source], float(r.cost_usd))
            calls.add_metric([r.provider, r.source], float(r.calls))
        yield from (cost, calls)

    def _users_and_alerts(self) -> Iterator[Any]:
        users = GaugeMetricFamily("headroom_users", "App users (latest count)", labels=["kind"])
        counts = q.latest_user_counts(self.engine)
        if counts is not None:
            kinds = (("total", counts.total), ("with_lastfm", counts.with_lastfm), ("active", counts.active))
            for kind, value in kinds:
                users.add_metric([kind], float(value))
        firing = GaugeMetricFamily("headroom_alerts_firing", "Alerts currently firing",
                                   labels=["rule", "subject", "severity"])
        a = m.ALERT_EVENTS
        with self.engine.connect() as conn:
            for r in conn.execute(select(a.c.rule, a.c.subject, a.c.severity, func.count().label("n"))
                                  .where(a.c.state == "firing").group_by(a.c.rule, a.c.subject, a.c.severity)):
                firing.add_metric([r.rule, r.subject, r.severity], float(r.n))
        yield from (users, firing)


def make_registry(engine: Engine, *, clock: Clock | None = None, limit_bytes: int = q.D1_LIMIT_BYTES,
                  ) -> CollectorRegistry:
    """A fresh registry holding only the metrics-DB collector (no process/GC metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricsDbCollector(engine, clock=clock, limit_bytes=limit_bytes))
    return registry


def serve(port: int, engine: Engine, *, addr: str = "127.0.0.1", clock: Clock | None = None,
          ) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``/metrics`` on ``addr:port`` from a daemon thread; returns (server, thread).

    Call ``server.shutdown()`` to stop. Port 0 picks a free port (``server.server_port``).
    """
    return start_http_server(port, addr=addr, registry=make_registry(engine, clock=clock))
