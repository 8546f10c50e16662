"""Forecasts from the metrics DB: users, database bytes, rows per table and monthly AI spend.

Each series is read as one point per day (the day's last gauge sample, or the
day's spend) over a trailing window, fitted with `scaling.capacity.trend.fit_trend`,
and checked against its thresholds: the plan's user triggers, 80 % and 100 % of the
DB limit, each provider's monthly budget. A threshold is ``reached`` when the latest
value is at or over it; otherwise its `Crossing` says when the trend gets there,
with a band, or is None (flat, falling, or no usable trend).

The trend math lives in `scaling.capacity.trend` and is re-exported here.
"""

from __future__ import annotations

import calendar
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, func, select

from scaling.capacity.trend import (
    DAY,
    BacktestResult,
    Crossing,
    FloatSeries,
    InsufficientData,
    Prediction,
    Trend,
    backtest,
    crossing,
    fit_trend,
    predict_linear,
)
from scaling.capacity.triggers import TRIGGERS
from scaling.metrics import models as m
from scaling.metrics import queries as q
from scaling.metrics.buckets import bucket_start
from scaling.metrics.db import translate_errors

if TYPE_CHECKING:
    from scaling.settings import Settings

__all__ = [
    "USER_THRESHOLDS",
    "BacktestResult",
    "Crossing",
    "InsufficientData",
    "Prediction",
    "SeriesForecast",
    "SpendForecast",
    "ThresholdForecast",
    "Trend",
    "backtest",
    "crossing",
    "fit_trend",
    "forecast_db_bytes",
    "forecast_monthly_ai_spend",
    "forecast_rows_per_table",
    "forecast_series",
    "forecast_users",
    "history",
    "monthly_budget",
    "predict_linear",
]

#: The plan's user triggers as (label, users).
USER_THRESHOLDS: tuple[tuple[str, float], ...] = tuple((f"{t.users:,} users", float(t.users)) for t in TRIGGERS)
#: Days per month on average: a day's spend × this is the monthly run-rate.
MONTH_DAYS = 365.25 / 12
_AI_PROVIDERS = ("openai", "perplexity")


@dataclass(frozen=True, slots=True)
class ThresholdForecast:
    """One threshold of a series: already reached, or when the trend is forecast to reach it."""

    label: str
    threshold: float
    reached: bool
    crossing: Crossing | None

    def as_dict(self) -> dict[str, Any]:
        c = self.crossing
        return {"label": self.label, "threshold": self.threshold, "reached": self.reached,
                "date": c.date_epoch if c else None, "earliest": c.low if c else None,
                "latest": c.high if c else None, "days_from_now": c.days_from_now if c else None}


@dataclass(frozen=True, slots=True)
class SeriesForecast:
    """A series' fitted trend and its thresholds.

    Attributes:
        name: e.g. "users", "db_bytes", "rows:sessions", "ai_spend:openai".
        unit: for display ("users", "bytes", "rows", "USD/month").
        points: daily points the fit saw.
        latest, latest_ts: the newest point (None without data).
        now: the forecast's "today".
        fit: the `Trend`, or why there is none.
        thresholds: in ascending order.
    """

    name: str
    unit: str
    points: int
    latest: float | None
    latest_ts: float | None
    now: float
    fit: Trend | InsufficientData
    thresholds: tuple[ThresholdForecast, ...] = ()

    @property
    def trend(self) -> Trend | None:
        return self.fit if isinstance(self.fit, Trend) else None

    def at(self, days: float) -> Prediction | None:
        """The projected value ``days`` after ``now`` (None without a trend)."""
        trend = self.trend
        return None if trend is None else trend.predict(self.now + days * DAY)

    @property
    def next(self) -> ThresholdForecast | None:
        """The lowest threshold not yet reached (its crossing may be None)."""
        return next((t for t in self.thresholds if not t.reached), None)

    def as_dict(self) -> dict[str, Any]:
        trend = self.trend
        return {"name": self.name, "unit": self.unit, "points": self.points, "latest": self.latest,
                "latest_ts": self.latest_ts, "model": trend.model if trend else None,
                "r2": trend.r2 if trend else getattr(self.fit, "r2", None),
                "per_day": trend.per_day if trend else None,
                "weekly_growth": trend.weekly_growth if trend else None,
                "note": trend.describe(self.unit) if trend else str(self.fit),
                "thresholds": [t.as_dict() for t in self.thresholds]}


@dataclass(frozen=True, slots=True)
class SpendForecast:
    """One AI provider's spend this calendar month, and its monthly run-rate trend against the budget.

    Attributes:
        month_to_date_usd: spend since the 1st (UTC).
        projected_month_usd: month-to-date plus the trend's (or, without one, the last
            7 days' average) daily spend for the rest of the month.
        run_rate: daily spend × `MONTH_DAYS`, fitted; its threshold is the budget.
    """

    provider: str
    budget_usd: float | None
    month_to_date_usd: float
    projected_month_usd: float
    run_rate: SeriesForecast

    def as_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "budget_usd": self.budget_usd,
                "month_to_date_usd": self.month_to_date_usd, "projected_month_usd": self.projected_month_usd,
                "run_rate": self.run_rate.as_dict()}


def forecast_series(name: str, ts: FloatSeries, values: FloatSeries,
                    thresholds: Sequence[tuple[str, float]] = (), *, now: float, unit: str = "",
                    **fit_kwargs: Any) -> SeriesForecast:
    """Fit a series and place each threshold: reached, crossed on a date, or not at this trend.

    Args:
        name, unit: for display.
        ts, values: the points (epoch seconds; non-finite values are gaps).
        thresholds: (label, value) pairs, any order.
        now: "today": crossings are dated from it.
        **fit_kwargs: passed to `fit_trend` (``min_points``, ``min_r2``, ``model``, ``level``).
    """
    t = np.asarray(ts, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    fit = fit_trend(t, y, **fit_kwargs)
    good = np.isfinite(t) & np.isfinite(y)
    latest = latest_ts = None
    if good.any():
        i = int(np.argmax(np.where(good, t, -np.inf)))
        latest, latest_ts = float(y[i]), float(t[i])
    marks = []
    for label, value in sorted(thresholds, key=lambda lv: lv[1]):
        reached = latest is not None and latest >= value
        when = crossing(fit, value, now=now) if isinstance(fit, Trend) and not reached else None
        marks.append(ThresholdForecast(label, float(value), reached, when))
    return SeriesForecast(name, unit, int(good.sum()), latest, latest_ts, now, fit, tuple(marks))


# --- from the metrics DB -----------------------------------------------------------------


def _one_source(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of one source only: the one with the newest point (sources are separate histories)."""
    if df.empty or df["source"].nunique() <= 1:
        return df
    newest = df.sort_values(["ts", "source"]).iloc[-1]["source"]
    return df[df["source"] == newest]


def _daily_last(engine: Engine, table: Any, columns: Sequence[str], since: float, until: float,
                source: str | None, **equal: str) -> pd.DataFrame:
    """The last sample of each UTC day (and source, and ``equal`` filter) in [since, until].

    A real sample at its own time, unlike a bucket's max placed at the bucket's start,
    which would skew a growing series' slope by up to a day.
    """
    t = table
    where = [t.c.ts >= since, t.c.ts <= until, *(t.c[k] == v for k, v in equal.items())]
    if source is not None:
        where.append(t.c.source == source)
    day = bucket_start(t.c.ts, int(DAY))
    ranked = select(t.c.ts, t.c.source, *(t.c[c] for c in columns),
                    func.row_number().over(partition_by=(t.c.source, day), order_by=(t.c.ts.desc(), t.c.id.desc()))
                    .label("rn")).where(*where).subquery()
    stmt = select(*(ranked.c[c] for c in ("ts", "source", *columns))).where(ranked.c.rn == 1).order_by(ranked.c.ts)
    with translate_errors(engine, f"read {t.name}"), engine.connect() as conn:
        result = conn.execute(stmt)
        df = pd.DataFrame.from_records(result.all(), columns=list(result.keys()))
    return _one_source(df.astype({"ts": "float64"}))


def _points(df: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    if df.empty:
        return np.empty(0), np.empty(0)
    return df["ts"].to_numpy(dtype=np.float64), pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=np.float64)


def _spend_days(engine: Engine, now: float, window_days: int, source: str | None) -> dict[str, pd.Series]:
    """Each provider's spend per whole UTC day (index: day start), days without calls as $0, today left out."""
    today = math.floor(now / DAY) * DAY
    daily = q.ai_cost_by(engine, now - window_days * DAY, now, ("day", "provider"), source=source)
    out = {}
    for provider, part in daily.groupby("provider", sort=True):
        starts = part["ts"].map(lambda ts: ts.timestamp()).to_numpy(dtype=np.float64)
        per_day = pd.Series(part["cost_usd"].to_numpy(dtype=np.float64), index=starts)
        per_day = per_day[per_day.index < today]  # today's partial spend would drag a trend down
        if len(per_day):
            per_day = per_day.reindex(np.arange(per_day.index.min(), today, DAY), fill_value=0.0)
        out[str(provider)] = per_day
    return out


def history(engine: Engine, series: str, *, now: float, window_days: int = 90,
            source: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The daily points a forecast of ``series`` fits, up to ``now``: (epoch seconds, values).

    Args:
        series: "users", "db_bytes", "rows:<table>" (gauges: each day's last sample) or
            "ai_spend:<provider>" (each whole day's spend in USD, placed at noon).

    Raises:
        ValueError: an unknown series name.
        StoreError: the metrics DB is unreachable or not migrated.
    """
    since = now - window_days * DAY
    kind, _, name = series.partition(":")
    if series == "users":
        return _points(_daily_last(engine, m.USER_COUNTS, ["total"], since, now, source), "total")
    if series == "db_bytes":
        return _points(_daily_last(engine, m.DB_STATS, ["bytes"], since, now, source, table_name="*"), "bytes")
    if kind == "rows" and name:
        return _points(_daily_last(engine, m.DB_STATS, ["rows"], since, now, source, table_name=name), "rows")
    if kind == "ai_spend" and name:
        per_day = _spend_days(engine, now, window_days, source).get(name, pd.Series(dtype="float64"))
        return per_day.index.to_numpy(dtype=np.float64) + DAY / 2, per_day.to_numpy(dtype=np.float64)
    raise ValueError(f"unknown series {series!r}; expected users, db_bytes, rows:<table> or ai_spend:<provider>")


def forecast_users(engine: Engine, *, now: float, window_days: int = 90,
                   thresholds: Sequence[tuple[str, float]] = USER_THRESHOLDS, source: str | None = None,
                   **fit_kwargs: Any) -> SeriesForecast:
    """Total users: trend and the date each trigger (50, 100, 150, 500, 1,000 users) is crossed.

    Raises:
        StoreError: the metrics DB is unreachable or not migrated.
    """
    ts, values = history(engine, "users", now=now, window_days=window_days, source=source)
    return forecast_series("users", ts, values, thresholds, now=now, unit="users", **fit_kwargs)


def _size(n: float) -> str:
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= scale:
            return f"{n / scale:,.3g} {unit}"
    return f"{n:,.0f} B"


def forecast_db_bytes(engine: Engine, *, now: float, limit_bytes: int = q.D1_LIMIT_BYTES, window_days: int = 90,
                      source: str | None = None, **fit_kwargs: Any) -> SeriesForecast:
    """The app DB's total bytes: trend and when it reaches 80 % and 100 % of ``limit_bytes``.

    Raises:
        StoreError: the metrics DB is unreachable or not migrated.
    """
    ts, values = history(engine, "db_bytes", now=now, window_days=window_days, source=source)
    marks = [(f"80% of {_size(limit_bytes)}", 0.8 * limit_bytes), (_size(limit_bytes), float(limit_bytes))]
    return forecast_series("db_bytes", ts, values, marks, now=now, unit="bytes", **fit_kwargs)


def forecast_rows_per_table(engine: Engine, *, now: float, window_days: int = 90, source: str | None = None,
                            thresholds: Mapping[str, float] | None = None,
                            **fit_kwargs: Any) -> dict[str, SeriesForecast]:
    """Rows of each app-DB table: trend (a flat one means cleanup keeps up) and optional row thresholds.

    Args:
        thresholds: table name → a row count worth a date (none by default).

    Raises:
        StoreError: the metrics DB is unreachable or not migrated.
    """
    out: dict[str, SeriesForecast] = {}
    since = now - window_days * DAY
    t = m.DB_STATS
    with translate_errors(engine, "read db_stats"), engine.connect() as conn:
        names = conn.execute(select(t.c.table_name).distinct().where(
            t.c.ts >= since, t.c.ts <= now, t.c.table_name != "*", *([t.c.source == source] if source else [])))
        tables = sorted(str(n) for n in names.scalars())
    for table in tables:
        ts, values = history(engine, f"rows:{table}", now=now, window_days=window_days, source=source)
        marks = [(f"{thresholds[table]:,.0f} rows", thresholds[table])] if thresholds and table in thresholds else []
        out[str(table)] = forecast_series(f"rows:{table}", ts, values, marks, now=now, unit="rows", **fit_kwargs)
    return out


def monthly_budget(settings: Settings, provider: str) -> float | None:
    """The provider's monthly budget in USD from settings; None if unset or not a configured upstream."""
    try:
        return settings.upstream(provider).monthly_budget_usd
    except KeyError:
        return None  # a provider Headroom has no upstream settings for (e.g. anthropic)


def forecast_monthly_ai_spend(engine: Engine, *, now: float, settings: Settings, window_days: int = 60,
                              source: str | None = None, **fit_kwargs: Any) -> dict[str, SpendForecast]:
    """Per AI provider: month-to-date spend, projected month total, and when the run-rate crosses the budget.

    Only whole days are fitted (today's partial spend would drag the trend down).
    Providers appear if they have spend in the window or a budget in ``settings``.

    Raises:
        StoreError: the metrics DB is unreachable or not migrated.
    """
    days = _spend_days(engine, now, window_days, source)
    day = datetime.fromtimestamp(now, tz=UTC)
    month_start = datetime(day.year, day.month, 1, tzinfo=UTC).timestamp()
    month_end = month_start + calendar.monthrange(day.year, day.month)[1] * DAY
    mtd = q.ai_cost_by(engine, month_start, now, ("provider",), source=source) if now > month_start else None
    spent = {} if mtd is None else {str(r.provider): float(r.cost_usd) for r in mtd.itertuples()}
    providers = sorted(set(days) | {p for p in _AI_PROVIDERS if monthly_budget(settings, p)})
    out: dict[str, SpendForecast] = {}
    for provider in providers:
        per_day = days.get(provider, pd.Series(dtype="float64"))
        budget = monthly_budget(settings, provider)
        marks = [(f"budget ${budget:,.2f}/month", budget)] if budget else []
        rate = forecast_series(f"ai_spend:{provider}", per_day.index.to_numpy(dtype=np.float64) + DAY / 2,
                               per_day.to_numpy(dtype=np.float64) * MONTH_DAYS,
                               marks, now=now, unit="USD/month", **fit_kwargs)
        so_far = spent.get(provider, 0.0)
        out[provider] = SpendForecast(provider, budget, so_far,
                                      so_far + _rest_of_month(rate, per_day, now, month_end), rate)
    return out


def _rest_of_month(rate: SeriesForecast, per_day: pd.Series, now: float, month_end: float) -> float:
    """Expected spend from ``now`` to the month's end: the trend's daily rate, else the last week's mean."""
    remaining = max(0.0, month_end - now)
    trend = rate.trend
    if trend is None:
        recent = per_day.iloc[-7:]
        return float(recent.mean()) * remaining / DAY if len(recent) else 0.0
    # Midpoint rule per (partial) day: the run-rate is per month, a day's spend is rate / MONTH_DAYS.
    edges = np.append(np.arange(now, month_end, DAY), month_end)
    spend = sum(trend.predict((a + b) / 2).value / MONTH_DAYS * (b - a) / DAY for a, b in itertools.pairwise(edges))
    return max(0.0, float(spend))

