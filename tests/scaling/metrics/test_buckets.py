"""Bucket widths: the narrowest that keeps any range within 2,000 points per series."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaling.metrics.buckets import BUCKETS, MAX_POINTS, choose_bucket, epoch, points

T0 = 1_767_225_600.0


@given(since=st.floats(0, 2e9), span=st.floats(1, 3 * 365 * 86400))
def test_chosen_bucket_fits_and_the_next_narrower_would_not(since: float, span: float) -> None:
    """Any range up to three years gets ≤ 2,000 buckets, and the next narrower width would exceed that."""
    width = choose_bucket(since, since + span)
    assert points(since, since + span, width) <= MAX_POINTS
    narrower = [b for b in BUCKETS if b < width]
    if narrower:
        assert points(since, since + span, narrower[-1]) > MAX_POINTS


@pytest.mark.parametrize("days, width", [(1, 60), (7, 900), (30, 1800), (90, 10800), (365, 21600), (730, 43200)])
def test_common_dashboard_ranges(days: int, width: int) -> None:
    """A day is in minutes, a week in 15 minutes, a year in 6-hour buckets."""
    assert choose_bucket(T0 - days * 86400, T0) == width


def test_minimum_width_is_respected() -> None:
    """When only hourly roll-ups exist, a day still comes back hourly, not per minute."""
    assert choose_bucket(T0 - 86400, T0, minimum=3600) == 3600


def test_epoch_accepts_numbers_and_datetimes_only() -> None:
    """Aware and naive (UTC) datetimes and numbers convert; NaN, text and booleans are refused."""
    assert epoch(datetime(2026, 1, 1, tzinfo=UTC)) == T0
    assert epoch(datetime(2026, 1, 1)) == T0
    assert epoch(datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))) == T0
    for bad in (float("nan"), "2026-01-01", True):
        with pytest.raises(ValueError, match="epoch seconds"):
            epoch(bad)  # type: ignore[arg-type]
