"""Time ranges the pages show, and how wide a bucket keeps a chart within its point budget.

A `RangeChoice` is what the user picked (a preset such as "Last 7 days", or fixed
dates); `resolve` turns it into a concrete `Window` against "now" each time the page
or its live fragment runs, so a relative range slides forward on refresh.

The end of a relative window is rounded *up* to `SNAP_S`: every session asking in the
same 30 s shares one cached query (the anchors' "one DB query per metric per TTL
bucket"), and nothing is lost because the end is exclusive and the future is empty.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pandas as pd

from scaling.metrics.buckets import BUCKETS, MAX_POINTS, choose_bucket

__all__ = ["CHART_POINTS", "PRESETS", "SNAP_S", "RangeChoice", "Window", "bucket_for", "coarsen", "resolve"]

#: Points a chart's own data may use; the rest of `MAX_POINTS` is left for threshold layers.
CHART_POINTS = MAX_POINTS - 100
SNAP_S = 30
HOUR, DAY = 3600, 86400
#: Preset label -> length in seconds, shortest first.
PRESETS: Mapping[str, int] = {
    "Last hour": HOUR, "Last 6 hours": 6 * HOUR, "Last 24 hours": DAY, "Last 7 days": 7 * DAY,
    "Last 30 days": 30 * DAY, "Last 90 days": 90 * DAY,
}
DEFAULT_PRESET = "Last 7 days"


@dataclass(frozen=True, slots=True)
class RangeChoice:
    """A preset name, or fixed UTC dates ``start``..``end`` (both days included)."""

    preset: str | None = DEFAULT_PRESET
    start: date | None = None
    end: date | None = None

    def __post_init__(self) -> None:
        if self.preset is None:
            if self.start is None or self.end is None:
                raise ValueError("a custom range needs both a start and an end date")
            if self.end < self.start:
                raise ValueError(f"the range ends ({self.end}) before it starts ({self.start})")
        elif self.preset not in PRESETS:
            raise ValueError(f"unknown range {self.preset!r}; expected one of {', '.join(PRESETS)}")


@dataclass(frozen=True, slots=True)
class Window:
    """A concrete half-open time window [since, until) in epoch seconds, with its label."""

    since: float
    until: float
    label: str

    @property
    def seconds(self) -> float:
        return self.until - self.since

    def shifted(self, seconds: float) -> Window:
        return Window(self.since - seconds, self.until - seconds, self.label)


def resolve(choice: RangeChoice, now: float) -> Window:
    """The window ``choice`` means at ``now`` (relative presets end at ``now``, snapped up)."""
    if choice.preset is not None:
        until = math.ceil(now / SNAP_S) * SNAP_S
        return Window(float(until - PRESETS[choice.preset]), float(until), choice.preset.lower())
    assert choice.start is not None and choice.end is not None
    lo = datetime.combine(choice.start, datetime.min.time(), tzinfo=UTC)
    hi = datetime.combine(choice.end + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    return Window(lo.timestamp(), hi.timestamp(), f"{choice.start} to {choice.end}")


def bucket_for(window: Window, series: int = 1, *, minimum: int = 60, budget: int = CHART_POINTS) -> int:
    """The narrowest bucket width giving at most ``budget`` points over ``series`` series."""
    per_series = max(1, budget // max(1, series))
    return choose_bucket(window.since, window.until, max_points=per_series, minimum=minimum)


_Agg = str | tuple[str, str]


def coarsen(df: pd.DataFrame, keys: Sequence[str], agg: Mapping[str, _Agg], *,
            budget: int = CHART_POINTS) -> pd.DataFrame:
    """Re-bucket an already bucketed frame into wider buckets until it has at most ``budget`` rows.

    A safety net for charts whose series count was larger than guessed: sums and
    extremes re-aggregate exactly; a mean needs its weight column, given as
    ``("wmean", "samples")``.

    Args:
        df: a frame with a tz-aware ``ts`` column and ``attrs["bucket_s"]``.
        keys: the series columns (besides ``ts``).
        agg: column -> ``"sum"``, ``"max"``, ``"min"`` or ``("wmean", weight_column)``;
            columns not named are dropped.
        budget: the most rows allowed.
    """
    if len(df) <= budget or df.empty:
        return df
    width = int(df.attrs.get("bucket_s") or 60)
    epoch_s = (df["ts"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    for wider in (*[b for b in BUCKETS if b > width], *[b * DAY for b in (60, 90, 180, 365)]):
        groups = len(df.assign(_b=(epoch_s // wider) * wider).drop_duplicates(["_b", *keys]))
        if groups <= budget:
            width = wider
            break
    else:  # pragma: no cover - only for absurd series counts
        width = max(width, int(df["ts"].nunique()) * width)
    work = df.assign(_b=(epoch_s // width) * width)
    plain = {c: a for c, a in agg.items() if isinstance(a, str)}
    weighted = {c: a[1] for c, a in agg.items() if not isinstance(a, str)}
    for col, weight in weighted.items():
        work[f"_w_{col}"] = work[col].fillna(0) * work[weight].fillna(0)
        work[f"_n_{col}"] = work[weight].where(work[col].notna(), 0).fillna(0)
    sums = {**plain, **{f"_w_{c}": "sum" for c in weighted}, **{f"_n_{c}": "sum" for c in weighted}}
    out = work.groupby(["_b", *keys], as_index=False, dropna=False).agg(sums)
    for col in weighted:
        n = out.pop(f"_n_{col}")
        out[col] = out.pop(f"_w_{col}") / n.where(n > 0)
    out.insert(0, "ts", pd.to_datetime(out.pop("_b"), unit="s", utc=True))
    out.attrs = {**df.attrs, "bucket_s": width}
    return out
