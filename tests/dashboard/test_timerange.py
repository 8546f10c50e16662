"""Time ranges: presets slide with now, custom dates are whole UTC days, buckets fit a chart's budget."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from dashboard.timerange import CHART_POINTS, RangeChoice, Window, bucket_for, coarsen, resolve
from scaling.metrics.buckets import points

NOW = 1_768_910_412.5  # 2026-01-20 12:00:12.5 UTC


def test_a_preset_ends_at_now_snapped_up_to_30_seconds() -> None:
    """"Last 7 days" ends at the next 30 s mark after now, so sessions in the same 30 s share queries."""
    w = resolve(RangeChoice("Last 7 days"), NOW)
    assert w.until == 1_768_910_430.0 and w.until - w.since == 7 * 86400
    assert resolve(RangeChoice("Last 7 days"), NOW + 10).until == w.until


def test_custom_dates_cover_whole_utc_days_inclusive() -> None:
    """A custom range from Jan 1 to Jan 2 is 48 hours starting at midnight UTC."""
    w = resolve(RangeChoice(None, date(2026, 1, 1), date(2026, 1, 2)), NOW)
    assert (w.since, w.until) == (1_767_225_600.0, 1_767_225_600.0 + 2 * 86400)


def test_bad_choices_are_refused_with_the_reason() -> None:
    """An unknown preset, a half-picked or reversed custom range each fail with one line."""
    with pytest.raises(ValueError, match="unknown range"):
        RangeChoice("Last fortnight")
    with pytest.raises(ValueError, match="both a start and an end"):
        RangeChoice(None, date(2026, 1, 1))
    with pytest.raises(ValueError, match="before it starts"):
        RangeChoice(None, date(2026, 1, 2), date(2026, 1, 1))


@pytest.mark.parametrize("days,series", [(1, 1), (7, 6), (30, 24), (90, 10), (730, 3)])
def test_bucket_for_keeps_all_series_of_a_chart_within_its_budget(days: int, series: int) -> None:
    """The chosen width gives at most CHART_POINTS points across every series of the chart."""
    w = Window(NOW - days * 86400, NOW, "x")
    width = bucket_for(w, series)
    assert points(w.since, w.until, width) * series <= CHART_POINTS


def test_coarsen_re_aggregates_sums_maxima_and_weighted_means_exactly() -> None:
    """Merging buckets keeps totals, peaks and sample-weighted means equal to the finer frame's."""
    n = 3000
    ts = pd.date_range("2026-01-01", periods=n, freq="60s", tz="UTC")
    df = pd.DataFrame({"ts": ts, "k": "a", "n": 1, "peak": range(n), "mean": [float(i % 7) for i in range(n)],
                       "samples": [1 + i % 3 for i in range(n)]})
    df.attrs["bucket_s"] = 60
    out = coarsen(df, ["k"], {"n": "sum", "peak": "max", "mean": ("wmean", "samples"), "samples": "sum"}, budget=500)
    assert len(out) <= 500 and out.attrs["bucket_s"] > 60
    assert out["n"].sum() == n and out["peak"].max() == n - 1 and out["samples"].sum() == df["samples"].sum()
    weighted = (out["mean"] * out["samples"]).sum() / out["samples"].sum()
    assert weighted == pytest.approx((df["mean"] * df["samples"]).sum() / df["samples"].sum())


def test_coarsen_leaves_a_frame_within_budget_alone() -> None:
    """A frame already within budget comes back unchanged."""
    df = pd.DataFrame({"ts": pd.date_range("2026-01-01", periods=5, freq="60s", tz="UTC"), "n": 1})
    assert coarsen(df, [], {"n": "sum"}) is df
