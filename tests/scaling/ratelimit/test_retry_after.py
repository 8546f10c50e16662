"""Retry-After in every form a server may send, and the nonsense some do."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaling.retry_after import parse_duration, parse_retry_after, retry_after_from_headers

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("value", "expected"), [
    ("120", 120.0),
    ("0", 0.0),
    ("1.5", 1.5),
    (" 7 ", 7.0),
    ("37000", 37000.0),                            # the ban the upstream app once drew
    ("Sun, 29 Nov 2026 12:00:30 GMT", 30.0),       # IMF-fixdate
    ("Sunday, 29-Nov-26 12:01:00 GMT", 60.0),      # RFC 850
    ("Sun Nov 29 12:02:00 2026", 120.0),           # asctime
    ("Sun, 29 Nov 2026 11:00:00 GMT", 0.0),        # a past date means now
    ("-5", None),
    ("soon", None),
    ("", None),
    (None, None),
    ("NaN", None),
    ("1e309", None),
    ("99999999999999999999", 1e20),                # huge but well-formed: the caller caps it
])
def test_retry_after_table(value: str | None, expected: float | None) -> None:
    """Each RFC 9110 form parses; garbage and negatives are unknown, never zero."""
    got = parse_retry_after(value, now=NOW)
    assert got == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize(("value", "expected"), [
    ("1s", 1.0), ("6m0s", 360.0), ("12ms", 0.012), ("1h2m3.5s", 3723.5), ("0.5", 0.5), ("bogus", None), ("", None),
])
def test_openai_reset_durations(value: str, expected: float | None) -> None:
    """OpenAI's x-ratelimit-reset-* durations parse to seconds."""
    assert parse_duration(value) == (pytest.approx(expected) if expected is not None else None)


def test_retry_after_ms_wins_over_seconds() -> None:
    """retry-after-ms is more precise than Retry-After and is preferred."""
    assert retry_after_from_headers({"retry-after-ms": "250", "retry-after": "1"}, now=NOW) == 0.25
    assert retry_after_from_headers({"retry-after-ms": "junk", "retry-after": "2"}, now=NOW) == 2.0


@given(st.integers(min_value=0, max_value=10**6))
def test_http_date_round_trip(delay: int) -> None:
    """Any delay written as an HTTP-date reads back as the same delay."""
    when = datetime.fromtimestamp(NOW + delay, tz=UTC)
    assert parse_retry_after(format_datetime(when, usegmt=True), now=NOW) == pytest.approx(delay)


@given(st.text(max_size=40))
def test_any_text_parses_or_is_unknown(text: str) -> None:
    """No input makes the parser raise or return a negative wait."""
    got = parse_retry_after(text, now=NOW)
    assert got is None or got >= 0
