"""Capacity fixtures: a migrated metrics DB per test on SQLite (a tmp file) and PostgreSQL (a throwaway schema)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from scaling.clock import VirtualClock
from scaling.metrics.db import open_metrics_db
from scaling.metrics.migrate import upgrade
from scaling.metrics.records import AiUsage, AlertEvent, CacheStats, HeadroomSample, JobRun, TableStats, UserCounts
from scaling.metrics.writer import MetricsWriter

BACKENDS = [pytest.param("sqlite", marks=pytest.mark.sqlite), pytest.param("postgres", marks=pytest.mark.postgres)]

#: 2026-01-02 12:00:00 UTC.
NOW = 1_767_355_200.0
DAY = 86400.0
HOUR = 3600.0


@pytest.fixture(params=BACKENDS)
def metrics_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A metrics DB migrated to head: a SQLite file, or a fresh schema in the session's PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/metrics.db"
        upgrade(url)
        yield url
        return
    import psycopg

    base = str(request.getfixturevalue("pg_url"))
    schema = f"c_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = f"{base}?options=-csearch_path%3D{schema}"
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def engine(metrics_url: str) -> Iterator[Engine]:
    eng = open_metrics_db(metrics_url)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def writer(engine: Engine) -> MetricsWriter:
    return MetricsWriter(engine, clock=VirtualClock(), log_lines=False, host="test-host")


def _prewarm_report(i: int) -> dict[str, object]:
    """A PrewarmReport.as_dict() as the collectors store it: 30 of 118 users polled in 7.5 s."""
    return {"started_at": NOW - i * 300, "duration_s": 7.5, "deadline_s": 30.0, "users_total": 118,
            "users_active": 12, "polled": 30, "refreshed": 28, "failed": 0, "skipped": 0, "active_skipped": 0,
            "phase_s": {"plan": 0.01, "lastfm": 6.0, "spotify": 1.2, "aggregate": 0.1},
            "upstream_calls": {"lastfm": 30, "spotify": 2}, "upstream_429": 0, "errors": {}}


def fill(writer: MetricsWriter) -> None:
    """A month of a healthy-ish app at 118 users growing 2 a day, with a few faults to find."""
    writer.record([UserCounts(60 + 2 * d, 40 + d, 10 + d // 5, ts=NOW - (29 - d) * DAY - 60) for d in range(30)])
    samples = []
    for k in range(60):  # the last hour, a sample a minute
        ts = NOW - k * 60 - 30
        samples += [HeadroomSample("spotify", used=84 if k == 5 else 40, limit=120, limiter_key="web", ts=ts),
                    HeadroomSample("openai", used=30, limit=60, ts=ts),
                    HeadroomSample("lastfm", used=2, limit=4, throttled=1, ts=ts)]
    samples.append(HeadroomSample("lastfm", used=4, limit=4, upstream_429=1, ts=NOW - 2 * DAY))
    samples.append(HeadroomSample("spotify", used=130, limit=120, upstream_429=3, ts=NOW - 8 * DAY))  # too old
    writer.record(samples)
    runs = [JobRun("prewarm", NOW - i * 300, NOW - i * 300 + 0.2, "ok", duration_s=7.5 if i % 10 else 9.0,
                   report=_prewarm_report(i)) for i in range(1, 25)]
    runs += [JobRun("cleanup", NOW - 1800, NOW - 1800, "ok", duration_s=1.2,
                    report={"total_deleted": 3204, "deleted": {"sessions": 204, "searches": 3000}}),
             JobRun("cleanup", NOW - 5 * HOUR, NOW - 5 * HOUR, "failed", duration_s=0.3, error="locked"),
             JobRun("cleanup", NOW + HOUR, NOW + HOUR, "ok", duration_s=1.0),  # after `now`: ignored
             JobRun("alerts", NOW - 45, NOW - 45, "ok", duration_s=0.05)]
    for run in runs:
        writer.record_run(run)
    mb = 1024**2
    writer.record([TableStats("*", 50_000 + 500 * d, (200 + 10 * d) * mb, ts=NOW - (29 - d) * DAY - 120)
                   for d in range(30)])
    writer.record([CacheStats("spotify:album", hits=900, misses=100, keys=500, bytes=2 * mb, evictions=3,
                              ts=NOW - 300)])
    writer.record([AiUsage("openai", "gpt", "artistSummary", cost_usd=0.0 if i % 5 < 2 else 0.05,
                           cache_hit=i % 5 < 2, saved_tokens=1000 if i % 5 < 2 else 0, ts=NOW - i * 600)
                   for i in range(1, 21)])
    assert isinstance(writer.clock, VirtualClock)
    writer.clock.advance(NOW - 3 * HOUR - writer.clock.now())
    writer.fire_alert(AlertEvent("breaker_open", "critical", subject="spotify", started_at=NOW - 3 * HOUR))
    writer.clock.advance(120)
    writer.resolve_alert("breaker_open", subject="spotify")
    writer.fire_alert(AlertEvent("cron_timeout", "warning", subject="prewarm", started_at=NOW - 600))
