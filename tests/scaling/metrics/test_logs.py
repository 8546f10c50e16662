"""Structured log lines: one JSON object each, parseable back, no secrets, warnings not flooding."""

from __future__ import annotations

import json
import logging
import math

import pytest

from scaling.clock import VirtualClock
from scaling.metrics.logs import KINDS, LOGGER_NAME, format_line, log_metrics, parse_line
from scaling.metrics.records import CacheStats, HeadroomSample, TableStats, UserCounts
from scaling.metrics.writer import MetricsWriter
from scaling.settings import Secret


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_is_one_line_of_json(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    """`[KIND] {json}` goes to the headroom.metrics logger and parses back to the same payload."""
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    payload = {"userCount": 120, "note": "multi\nline", "ratio": 0.5, "nested": {"a": [1, 2]}}
    line = log_metrics(kind, payload)
    assert "\n" not in line and line.startswith(f"[{kind}] {{")
    assert json.loads(line.split(" ", 1)[1]) == payload
    assert parse_line(f"2026-01-01T00:00:00Z worker: {caplog.records[-1].getMessage()}") == (kind, payload)


def test_secrets_and_non_finite_numbers_never_leak() -> None:
    """Credential-named keys and Secret values print as ***; NaN and infinity become null (valid JSON)."""
    line = format_line("METRICS", {"apiKey": "sk-live", "lastfm_session_key": "abc", "token": Secret("t0k"),
                                   "input_tokens": 900, "cost": math.nan, "wait": math.inf})
    assert "sk-live" not in line and "abc" not in line and "t0k" not in line
    body = json.loads(line.split(" ", 1)[1])
    assert body == {"apiKey": "***", "lastfm_session_key": "***", "token": "***", "input_tokens": 900,
                    "cost": None, "wait": None}


def test_unknown_kind_and_foreign_lines() -> None:
    """An unknown kind is refused; lines that are not metrics lines parse to None."""
    with pytest.raises(ValueError, match="METRIC"):
        format_line("METRIC", {})
    assert parse_line("[Spotify] Rate limit warning: 121/150 requests in window") is None
    assert parse_line("[METRICS] {not json}") is None


def test_writer_warns_when_demand_exceeds_the_limit_not_when_pacing_works(
        engine: object, clock: VirtualClock, caplog: pytest.LogCaptureFixture) -> None:
    """A limiter at 100% (the prewarm pacing Last.fm) logs nothing; a 429 warns at once, each time;
    rejected callers warn, then at most every 5 min while it lasts, and again once it recurs."""
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    writer = MetricsWriter(engine, clock=clock)  # type: ignore[arg-type]
    t0 = clock.now()
    for minute in range(10):  # ten minutes paced at exactly the limit
        writer.record_headroom([HeadroomSample("lastfm", used=240, limit=240, ts=t0 + 60 * minute)])
    rejected = [0, 2, 2, 2, 2, 2, 2, 0, 1]  # minutes 10..18; minute 17 is back within the limit
    for i, r in enumerate(rejected):
        writer.record_headroom([HeadroomSample("spotify", used=120, limit=120, rejected=r, ts=t0 + 60 * (10 + i))])
    writer.record_headroom([HeadroomSample("spotify", used=100, limit=120, upstream_429=1, ts=t0 + 60 * 19)])
    warnings = [p for p in (parse_line(r.getMessage()) for r in caplog.records
                            if "[RATE_LIMIT_WARNING]" in r.getMessage()) if p]
    assert [(w[1]["timestamp"][11:16], w[1]["reason"]) for w in warnings] == [
        ("00:11", "rejected"), ("00:16", "rejected"), ("00:18", "rejected"), ("00:19", "throttled")]
    assert not [w for w in warnings if w[1]["service"] == "lastfm"]
    assert list(warnings[0][1]) == ["timestamp", "service", "key", "used", "limit", "utilisation", "inCooldown",
                          "cooldownUntil", "reason",
                          "waitS", "upstream429", "throttled", "rejected", "source"]  # the limiter's keys
    assert all(r.levelno == logging.WARNING for r in caplog.records if "RATE_LIMIT" in r.getMessage())


def test_writer_emits_db_cache_and_user_lines(engine: object, clock: VirtualClock,
                                              caplog: pytest.LogCaptureFixture) -> None:
    """Table stats give one [DB_METRICS] line with totals; cache stats one [CACHE_METRICS]; users one [METRICS]."""
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    writer = MetricsWriter(engine, clock=clock)  # type: ignore[arg-type]
    writer.record([TableStats("users", 120, 4096), TableStats("sessions", 300), TableStats("*", 420, 10**6),
                   CacheStats("spotify:album", hits=3, misses=1), UserCounts(120, 84, 12)])
    parsed = dict(p for p in (parse_line(r.getMessage()) for r in caplog.records) if p)
    assert parsed["DB_METRICS"] == {"totalRows": 420, "totalBytes": 10**6,
                                    "tables": {"users": {"rows": 120, "bytes": 4096},
                                               "sessions": {"rows": 300, "bytes": None}}}
    assert parsed["CACHE_METRICS"]["families"]["spotify:album"]["hitRatio"] == 0.75
    assert parsed["METRICS"]["userCount"] == 120 and parsed["METRICS"]["activeUserCount"] == 12
