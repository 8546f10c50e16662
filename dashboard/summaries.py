"""Page-level numbers computed from the query frames (pure pandas, no Streamlit).

Kept apart from the pages so tests can check the arithmetic the KPI tiles show.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

__all__ = ["MonthProjection", "headroom_table", "month_projection", "month_start"]


def headroom_table(series: pd.DataFrame, latest: pd.DataFrame) -> pd.DataFrame:
    """Per (upstream, limiter key, source): utilisation now and at peak, 429s, throttling, cooldown.

    Args:
        series: `queries.headroom_series` over the window.
        latest: `queries.latest_headroom` at now.

    Returns:
        Columns ``upstream, limiter_key, source, limit, now, peak, upstream_429, throttled,
        wait_seconds, rejected, cooldown_s``, busiest first.
    """
    cols = ["upstream", "limiter_key", "source", "limit", "now", "peak", "upstream_429", "throttled",
            "wait_seconds", "rejected", "cooldown_s"]
    if series.empty and latest.empty:
        return pd.DataFrame(columns=cols)
    keys = ["upstream", "limiter_key", "source"]
    width = float(series.attrs.get("bucket_s") or 60)
    spent = series.assign(cooldown_s=series["cooldown_share"].fillna(0) * width)
    agg = spent.groupby(keys, as_index=False).agg(
        limit=("limit", "max"), peak=("util_max", "max"), upstream_429=("upstream_429", "sum"),
        throttled=("throttled", "sum"), wait_seconds=("wait_seconds", "sum"), rejected=("rejected", "sum"),
        cooldown_s=("cooldown_s", "sum"))
    now = latest.rename(columns={"utilisation": "now"})[[*keys, "now"]] if len(latest) else \
        pd.DataFrame(columns=[*keys, "now"])
    out = agg.merge(now, on=keys, how="outer")
    return out[cols].sort_values(["peak", "upstream"], ascending=[False, True], ignore_index=True)


def month_start(at: float) -> float:
    """Epoch seconds of the first instant of ``at``'s UTC month."""
    when = datetime.fromtimestamp(at, tz=UTC)
    return datetime(when.year, when.month, 1, tzinfo=UTC).timestamp()


@dataclass(frozen=True, slots=True)
class MonthProjection:
    """Month-to-date spend and where a straight line from it lands at month end."""

    month_start: float
    month_end: float
    spent: float
    projected: float
    elapsed_share: float


def month_projection(spent: float, at: float) -> MonthProjection:
    """Linear month-end projection: spend so far ÷ share of the month elapsed.

    Early in a month the share is tiny and one expensive hour would project wildly,
    so at least one day counts as elapsed.
    """
    start = month_start(at)
    when = datetime.fromtimestamp(start, tz=UTC)
    days = calendar.monthrange(when.year, when.month)[1]
    end = start + days * 86400
    elapsed = max(at - start, 86400.0) / (end - start)
    share = min(1.0, elapsed)
    return MonthProjection(start, end, spent, spent / share, share)
