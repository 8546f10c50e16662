"""Prometheus exposition: the latest metrics-DB values as gauges and counters, over HTTP too."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from scaling.clock import VirtualClock
from scaling.metrics.db import open_metrics_db
from scaling.metrics.prometheus import make_registry, serve
from scaling.metrics.records import AiUsage, AlertEvent, CacheStats, HeadroomSample, TableStats, UserCounts
from scaling.metrics.writer import MetricsWriter


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def _fill(writer: MetricsWriter, clock: VirtualClock) -> None:
    now = clock.now()
    writer.record([HeadroomSample("spotify", used=90, limit=120, limiter_key="web", upstream_429=3, ts=now - 600),
                   HeadroomSample("spotify", used=60, limit=120, limiter_key="web", ts=now - 60),
                   HeadroomSample("lastfm", used=4, limit=4, upstream_429=1, in_cooldown=True, ts=now - 30),
                   TableStats("users", 120, 4096), TableStats("*", 420, 10**6),
                   CacheStats("spotify:album", hits=9, misses=1, keys=10, ts=now - 60),
                   AiUsage("openai", "gpt-5.6-terra", "artistSummary", cost_usd=1.25, ts=now + 1),
                   AiUsage("openai", "gpt-5.6-terra", "artistSummary", cost_usd=9.0, ts=now - 3600),  # December
                   AiUsage("anthropic", "claude-sonnet-5", "userInsightsSummary", cost_usd=0.5, ts=now + 2),
                   UserCounts(120, 84, 12)])
    writer.claim_run("prewarm", now - 300)
    clock.advance(12.5)
    writer.finish_run("prewarm", now - 300, outcome="ok")
    writer.fire_alert(AlertEvent("upstream_429", "critical", subject="lastfm"))


def test_exposition_has_the_expected_metrics(engine: Engine, writer: MetricsWriter, clock: VirtualClock) -> None:
    """Utilisation of the newest sample, all-time 429s, cron duration, DB bytes, hit ratio, month's AI cost."""
    _fill(writer, clock)
    got = _samples(generate_latest(make_registry(engine, clock=clock)).decode())
    web = (("limiter_key", "web"), ("source", "collectors"), ("upstream", "spotify"))
    assert got[("headroom_utilisation", web)] == 0.5
    assert got[("headroom_upstream_429_total", web)] == 3
    assert got[("headroom_in_cooldown", (("limiter_key", ""), ("source", "collectors"), ("upstream", "lastfm")))] == 1
    assert got[("cron_duration_seconds", (("job", "prewarm"), ("source", "collectors")))] == 12.5
    assert got[("cron_runs_total", (("job", "prewarm"), ("outcome", "ok"), ("source", "collectors")))] == 1
    assert got[("db_bytes", (("source", "collectors"), ("table", "*")))] == 10**6
    assert got[("db_limit_bytes", ())] == 10 * 1024**3
    assert got[("cache_hit_ratio", (("family", "spotify:album"), ("source", "collectors")))] == 0.9
    assert got[("ai_cost_usd_month", (("provider", "openai"), ("source", "collectors")))] == 1.25
    assert got[("headroom_users", (("kind", "active"),))] == 12
    assert got[("headroom_alerts_firing", (("rule", "upstream_429"), ("severity", "critical"),
                                           ("subject", "lastfm")))] == 1
    assert got[("headroom_metrics_db_up", ())] == 1


def test_a_dead_metrics_db_is_reported_not_raised(blank_url: str, clock: VirtualClock) -> None:
    """Scraping an unmigrated DB answers headroom_metrics_db_up 0 instead of failing the scrape."""
    engine = open_metrics_db(blank_url)
    try:
        got = _samples(generate_latest(make_registry(engine, clock=clock)).decode())
    finally:
        engine.dispose()
    assert got == {("headroom_metrics_db_up", ()): 0}


@pytest.mark.sqlite
def test_serve_answers_on_a_loopback_port(tmp_path: object, clock: VirtualClock) -> None:
    """`serve(0, engine)` binds a free loopback port whose /metrics returns the exposition."""
    from scaling.metrics.migrate import upgrade

    url = f"sqlite:///{tmp_path}/m.db"
    upgrade(url)
    engine = open_metrics_db(url)
    server, thread = serve(0, engine, clock=clock)
    try:
        MetricsWriter(engine, clock=clock, log_lines=False).record_user_counts(UserCounts(5, 4, 1))
        resp = httpx.get(f"http://127.0.0.1:{server.server_port}/metrics", timeout=10)
        assert resp.status_code == 200 and 'headroom_users{kind="total"} 5.0' in resp.text
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        engine.dispose()
