"""Formatting, run reports, month projection and the headroom table: the numbers the tiles print."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from dashboard import formatting as fmt
from dashboard.run_reports import cleanup_deleted, cleanup_frame, prewarm_counts, prewarm_frame
from dashboard.summaries import headroom_table, month_projection, month_start


@pytest.mark.parametrize("value,text", [(10 * 1024**3, "10.0 GB"), (46_454_276, "44.3 MB"), (512, "512 B"),
                                        (None, "–"), (float("nan"), "–")])
def test_bytes_are_binary_units(value: float | None, text: str) -> None:
    """Sizes read in binary units, so the 10 GB D1 limit prints as 10.0 GB; missing reads as a dash."""
    assert fmt.bytes_(value) == text


@pytest.mark.parametrize("seconds,text", [(0.25, "250 ms"), (8.14, "8.1 s"), (754, "13 min"), (7200, "2.0 h"),
                                          (3 * 86400, "3.0 d")])
def test_durations_pick_a_readable_unit(seconds: float, text: str) -> None:
    """Durations move from ms to s, min, h and d as they grow."""
    assert fmt.duration(seconds) == text


def test_money_counts_percent_and_time() -> None:
    """Dollars keep cents (four places below a cent), counts get separators, times are UTC."""
    assert (fmt.usd(1234.5), fmt.usd(0.0042), fmt.usd(0)) == ("$1,234.50", "$0.0042", "$0.00")
    assert (fmt.count(3204), fmt.count(2.5), fmt.percent(0.714)) == ("3,204", "2.5", "71%")
    assert fmt.timestamp(1_768_910_400) == "2026-01-20 12:00 UTC"
    assert (fmt.ago(100, 820), fmt.ago(None, 1)) == ("12 min ago", "never")


def test_prewarm_reports_read_the_same_in_both_shapes() -> None:
    """Collector reports (polled, phase_s) and Worker-style ones (fetched, phaseNDurationMs) give one shape."""
    collector = json.dumps({"polled": 80, "skipped": 4, "phase_s": {"lastfm": 6.5, "spotify": 1.25}})
    worker = json.dumps({"fetched": 64, "skipped": 20, "phase1DurationMs": 5400})
    assert prewarm_counts(collector) == {"polled": 80, "skipped": 4, "phase:lastfm": 6.5, "phase:spotify": 1.25}
    assert prewarm_counts(worker) == {"polled": 64, "skipped": 20, "phase:phase1": 5.4}
    assert prewarm_counts("not json") == {} and prewarm_counts(None) == {}


def test_cleanup_reports_give_rows_deleted_per_table() -> None:
    """Both report shapes name the rows deleted per table; runs become one row per table."""
    assert cleanup_deleted({"deleted": {"sessions": 3, "searches": 40}}) == {"sessions": 3, "searches": 40}
    assert cleanup_deleted(json.dumps({"sessionsDeleted": 5, "usageLogDeleted": 7})) == \
        {"sessions": 5, "api_usage_log": 7}
    runs = pd.DataFrame({"scheduled_at": [1.0, 2.0], "source": ["demo", "demo"],
                         "report": [json.dumps({"searchesDeleted": 9}), None]})
    assert cleanup_frame(runs).to_dict("records") == [{"ts": 1.0, "source": "demo", "table_name": "searches",
                                                       "deleted": 9.0}]
    assert prewarm_frame(runs.iloc[:0]).empty


def test_month_projection_is_spend_over_the_share_of_the_month_elapsed() -> None:
    """Half-way through January, $31 projects to $62; the first day counts as a whole day."""
    mid = month_start(1_768_910_400) + 15.5 * 86400
    assert month_projection(31.0, mid).projected == pytest.approx(62.0)
    early = month_projection(1.0, month_start(1_768_910_400) + 3600)
    assert early.projected == pytest.approx(31.0)


def test_headroom_table_sums_counters_and_keeps_peaks_per_limiter() -> None:
    """Per limiter: 429s summed, the peak share, cooldown seconds, and the latest share as 'now'."""
    ts = pd.date_range("2026-01-01", periods=2, freq="3600s", tz="UTC")
    series = pd.DataFrame({"ts": ts, "source": "demo", "upstream": "spotify", "limiter_key": "web", "limit": 120.0,
                           "util_max": [0.5, 0.9], "upstream_429": [1, 2], "throttled": [0, 4],
                           "wait_seconds": [0.0, 3.0], "rejected": [0, 1], "cooldown_share": [0.0, 0.25]})
    series.attrs["bucket_s"] = 3600
    latest = pd.DataFrame({"source": ["demo"], "upstream": ["spotify"], "limiter_key": ["web"], "utilisation": [0.4]})
    row = headroom_table(series, latest).iloc[0]
    assert (row.peak, row.upstream_429, row.throttled, row.cooldown_s, row.now) == (0.9, 3, 4, 900.0, 0.4)
