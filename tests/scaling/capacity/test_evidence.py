"""gather_evidence on real SQLite and PostgreSQL metrics DBs filled through the metrics writer."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from scaling.capacity.evidence import gather_evidence
from scaling.capacity.readiness import Status, assess
from scaling.metrics.db import open_metrics_db
from scaling.metrics.demo import generate
from scaling.metrics.migrate import upgrade
from scaling.metrics.records import UserCounts
from scaling.metrics.writer import MetricsWriter
from scaling.settings import Settings
from tests.scaling.capacity.conftest import DAY, NOW, fill

SETTINGS = Settings.defaults(alert_webhook_url="https://hooks.example/alerts")


def test_gather_evidence_reads_every_kind_of_metric(writer: MetricsWriter, engine: Engine) -> None:
    """Users, limiters, jobs, cron reports, DB, caches, AI and alerts come back as the numbers written."""
    fill(writer)
    e = gather_evidence(engine, now=NOW, settings=SETTINGS)
    assert e.source == "collectors" and not e.is_empty
    assert (e.users_total, e.users_with_lastfm, e.users_active) == (118, 69, 15)
    assert e.next_trigger_users == 150 and e.next_trigger_at is not None
    assert (e.next_trigger_at - NOW) / DAY == pytest.approx(16, rel=0.05)  # (150 − 118) / 2 a day
    assert e.users_forecast == pytest.approx(118 + 2 * 90, rel=0.02) and "linear" in e.users_trend
    assert e.limiters["spotify"].upstream_429 == 0 and e.limiters["spotify"].peak_utilisation == pytest.approx(0.7)
    assert e.limiters["lastfm"].upstream_429 == 1 and e.limiters["lastfm"].throttled == 60
    assert e.headroom_age_s == pytest.approx(30)
    cleanup = e.jobs["cleanup"]
    # Age from when the run finished (started 1,800 s ago, took 1.2 s), not from its scheduled slot.
    assert cleanup.last_ok_age_s == pytest.approx(1800 - 1.2) and cleanup.failed_24h == 1 and cleanup.runs_24h == 2
    assert e.cleanup_rows_deleted == 3204
    prewarm = e.jobs["prewarm"]
    assert prewarm.runs_24h == 24 and prewarm.duration_p95_s == pytest.approx(9.0)
    assert e.cron.reports == 24 and e.cron.polled == 30 and e.cron.users == 118
    assert e.cron.wave_p95_s == pytest.approx(6.0 / 5) and e.cron.overhead_p95_s == pytest.approx(3.0)
    assert (e.cron.spotify_calls, e.cron.refreshed, e.cron.batched_min_calls) == (48, 24 * 28, 48)
    assert e.db_bytes == 490 * 1024**2 and e.db_full_in_days is not None and e.db_full_in_days > 365
    assert (e.cache_hits, e.cache_misses, e.cache_evictions) == (900, 100, 3) and e.cache_age_s == pytest.approx(300)
    assert (e.ai_requests_7d, e.ai_cache_hits_7d, e.ai_saved_tokens_7d) == (20, 8, 8000)
    assert e.ai_age_s == pytest.approx(600) and e.ai_spend_mtd["openai"] == pytest.approx(0.6)
    assert (e.breaker_opens_7d, e.breakers_open, e.breaker_open_longest_s, e.alerts_firing) == (1, 0, 120, 1)


def test_assess_on_gathered_evidence(writer: MetricsWriter, engine: Engine) -> None:
    """The same DB judged end to end: the faults written are the faults found."""
    fill(writer)
    r = assess(gather_evidence(engine, now=NOW, settings=SETTINGS), settings=SETTINGS)
    status = {i.item: i.status for p in r.phases for i in p.items}
    assert status["1.1"] is Status.READY  # the 429s 8 days ago are out of the window
    assert status["2.1"] is Status.NOT_READY  # one Last.fm 429 two days ago
    assert status["1.3"] is Status.AT_RISK  # a failed cleanup 5 h ago
    assert status["2.2"] is Status.AT_RISK  # 9 s p95 is fine today, but 298 users are projected past 15 s
    assert status["2.3"] is Status.READY and status["3.1"] is Status.READY and status["3.2"] is Status.READY
    assert status["3.3"] is Status.READY and status["4.1"] is Status.READY
    assert r.required_phase == 2 and r.next_trigger is not None and r.next_trigger.users == 150
    assert "cleanup: last successful run 30 min ago, 3,204 rows deleted; 1 failures in 24 h" in r.item("1.3").evidence


def test_gather_evidence_replays_an_earlier_moment(writer: MetricsWriter, engine: Engine) -> None:
    """As of a day earlier, later rows are invisible: fewer users, older samples, no recent runs."""
    fill(writer)
    e = gather_evidence(engine, now=NOW - DAY, settings=SETTINGS)
    assert e.users_total == 116
    assert e.headroom_age_s == pytest.approx(DAY)  # the 429 sample two days ago was the last before
    assert "prewarm" not in e.jobs and e.cleanup_rows_deleted is None


def test_empty_metrics_db_gives_empty_evidence(engine: Engine) -> None:
    """Nothing recorded: no source, every rule unknown."""
    e = gather_evidence(engine, now=NOW, settings=SETTINGS)
    assert e.is_empty and e.users_total is None
    assert {i.status for p in assess(e, settings=SETTINGS).phases for i in p.items} == {Status.UNKNOWN}


def test_sources_are_kept_apart(writer: MetricsWriter, engine: Engine) -> None:
    """Demo rows next to collector rows: the newest source is read, and another can be asked for by name."""
    fill(writer)
    writer.record([UserCounts(500, 300, 50, ts=NOW - 3600 - d * DAY, source="demo") for d in range(10)])
    assert gather_evidence(engine, now=NOW, settings=SETTINGS).users_total == 118
    demo = gather_evidence(engine, now=NOW, settings=SETTINGS, source="demo")
    assert demo.source == "demo" and demo.users_total == 500 and demo.jobs == {}
    assert gather_evidence(engine, now=NOW, settings=SETTINGS, source="worker").is_empty


@pytest.mark.sqlite
def test_demo_history_reads_as_a_growing_app(tmp_path: Path) -> None:
    """The demo generator's history (its own report shapes) gives users, cron figures and cleanup counts."""
    url = f"sqlite:///{tmp_path}/demo.db"
    upgrade(url)
    engine = open_metrics_db(url)
    try:
        generate(engine, now=NOW, days=10, users=120, raw_days=1)
        e = gather_evidence(engine, now=NOW, settings=SETTINGS)
    finally:
        engine.dispose()
    assert e.source == "demo" and e.users_total is not None and 115 <= e.users_total <= 120
    assert e.next_trigger_users == 150
    assert e.cron.reports > 200 and e.cron.polled is not None and e.cron.wave_p95_s is not None
    assert e.cleanup_rows_deleted is not None and e.cleanup_rows_deleted > 0
    assert e.jobs["prewarm"].duration_p95_s is not None and e.limiters["spotify"].samples > 0
