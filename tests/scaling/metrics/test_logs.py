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


def test_writer_warns_on_crossing_then_at_most_every_five_minutes(engine: object, clock: VirtualClock,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Above 80% a limiter warns at once, then every 5 min while it stays up, and again on each 429."""
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    writer = MetricsWriter(engine, clock=clock)  # type: ignore[arg-type]
    used = [50, 100, 100, 100, 100, 100, 100, 50, 100]  # minutes 0..8; minute 7 drops back under
    for minute, u in enumerate(used):
        writer.record_headroom([HeadroomSample("spotify", used=u, limit=120, ts=clock.now() + 60 * minute)])
    writer.record_headroom([HeadroomSample("spotify", used=100, limit=120, upstream_429=1, ts=clock.now() + 540)])
    warnings = [parse_line(r.getMessage()) for r in caplog.records if "[RATE_LIMIT_WARNING]" in r.getMessage()]
    assert [w[1]["timestamp"][11:16] for w in warnings if w] == ["00:01", "00:06", "00:08", "00:09"]
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
