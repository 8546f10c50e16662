"""The exhaustion ranking: every limit Headroom knows, soonest forecast to be reached first.

One row per (source, limit): each upstream's rate limit (the busiest limiter key's peak
share of its limit, per day), the prewarm cron's deadline (its duration p95 against the wall
budget), its Last.fm budget per run (calls a run makes against what the Last.fm limiter allows
within the deadline), the database size against its limit, and each AI provider's run-rate
against its monthly budget. Rows reached now come first, then by forecast date, then the ones not
reached at this trend. The CLI (``readiness --json``) and the Overview read this one list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from scaling.capacity import forecast
from scaling.capacity.forecast import SeriesForecast
from scaling.capacity.trend import DAY
from scaling.metrics import models as m
from scaling.metrics import queries as q
from scaling.metrics.db import translate_errors

if TYPE_CHECKING:
    from scaling.settings import Settings

__all__ = ["Exhaustion", "exhaustion_ranking"]

#: Days of history a trend is fitted on.
TREND_DAYS = 30
#: Fewer daily points than this is "too little data" (`fit_trend`'s default).
MIN_POINTS = 8


@dataclass(frozen=True, slots=True)
class Exhaustion:
    """One limit: how much of it is used now, and when the trend reaches it.

    Attributes:
        source: the metrics source the figures come from.
        limit: what is limited, e.g. "spotify rate limit", "database size".
        share: the share of the limit used now (1.0 = at the limit); None without data.
        reached: the latest value is at or over the limit.
        date: the epoch the trend reaches it (None: reached, or not at this trend).
        trend: the trend behind the date, or why there is none.
        fitted: a trend was fitted (without one, no date is a claim about the future).
    """

    source: str
    limit: str
    share: float | None
    reached: bool
    date: float | None
    trend: str
    fitted: bool = True

    @property
    def order(self) -> tuple[int, float, str]:
        if self.reached:
            return (0, 0.0, self.limit)
        return (1, self.date, self.limit) if self.date is not None else (2, 0.0, self.limit)

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "limit": self.limit, "share": self.share, "reached": self.reached,
                "date": self.date, "trend": self.trend, "fitted": self.fitted}


def _why(fc: SeriesForecast, limit: float) -> str:
    trend = fc.trend
    if trend is None:
        if fc.points < MIN_POINTS:
            return f"too little data ({fc.points} daily points)"
        r2 = getattr(fc.fit, "r2", None)
        return f"no clear trend ({f'R² {r2:.2f}, ' if r2 is not None else ''}{fc.points} daily points)"
    span = (trend.t_last - trend.t_first) / DAY + 1
    if trend.model == "exponential" and np.isfinite(trend.weekly_growth):
        growth = f"{trend.weekly_growth:+.1%}/week"
    else:  # a straight line grows by a fixed amount, so say it in the limit's terms
        growth = f"{7 * trend.per_day / limit:+.1%} of the limit/week"
    return f"{growth} over {span:.0f} days, fit on {trend.n} points"


def _row(source: str, limit: str, fc: SeriesForecast, share: float | None) -> Exhaustion:
    """A limit's row: reached when the view's share is at 100%; otherwise dated by the trend's crossing."""
    mark = fc.thresholds[-1]
    why = _why(fc, mark.threshold)
    if share is not None and share >= 1.0:
        return Exhaustion(source, limit, share, True, None, why, fc.trend is not None)
    if mark.reached:  # the newest day is at the limit although the view as a whole is not
        return Exhaustion(source, limit, share, False, fc.now, f"{why}; the newest day is at the limit")
    c = mark.crossing
    if c is not None and c.date_epoch <= fc.now:
        return Exhaustion(source, limit, share, False, fc.now, f"{why}; the trend line is already at the limit")
    return Exhaustion(source, limit, share, False, None if c is None else c.date_epoch, why, fc.trend is not None)


def _rate_limits(engine: Engine, now: float, since: float, source: str) -> list[Exhaustion]:
    peaks = q.limiter_totals(engine, since, now, source=source)
    days = q.headroom_series(engine, now - TREND_DAYS * DAY, now, source=source, bucket_s=int(DAY))
    out = []
    for upstream, rows in peaks.groupby("upstream"):
        share = float(rows["util_max"].max()) if rows["util_max"].notna().any() else None
        daily = days[days["upstream"] == upstream].groupby("ts")["util_max"].max().dropna()
        ts = np.asarray([t.timestamp() if hasattr(t, "timestamp") else float(t) for t in daily.index], dtype=float)
        fc = forecast.forecast_series(f"rate:{upstream}", ts, daily.to_numpy(dtype=float),
                                      [("limit", 1.0)], now=now, unit="share")
        out.append(_row(source, f"{upstream} rate limit", fc, share))
    return out


def _prewarm_runs(engine: Engine, now: float, source: str) -> pd.DataFrame:
    """The prewarm's finished runs over the trend window: day, duration, Last.fm calls (from its report)."""
    t = m.JOB_RUNS
    stmt = (select(t.c.scheduled_at, t.c.duration_s, t.c.report)
            .where(t.c.job == "prewarm", t.c.source == source, t.c.scheduled_at >= now - TREND_DAYS * DAY,
                   t.c.scheduled_at <= now, t.c.outcome.in_(("ok", "timed_out"))))
    with translate_errors(engine, "read prewarm runs"), engine.connect() as conn:
        rows = conn.execute(stmt).all()
    calls = []
    for _, _, report in rows:
        try:
            data = json.loads(report) if report else {}
        except ValueError:
            data = {}
        value = data.get("lastfmCalls", data.get("polled", data.get("fetched"))) if isinstance(data, dict) else None
        calls.append(float(value) if isinstance(value, (int, float)) else np.nan)
    return pd.DataFrame({"ts": [float(r[0]) for r in rows], "duration": [r[1] for r in rows], "calls": calls},
                        dtype=float)


def _daily(runs: pd.DataFrame, column: str, share_of: float, now: float, since: float,
           name: str) -> tuple[SeriesForecast, float | None]:
    """A run metric's daily p95 as a share of ``share_of``, fitted; and its p95 over [since, now]."""
    col = runs[["ts", column]].dropna()
    days = col.groupby((col["ts"] // DAY) * DAY)[column].quantile(0.95) / share_of
    fc = forecast.forecast_series(name, days.index.to_numpy(dtype=float) + DAY / 2, days.to_numpy(dtype=float),
                                  [("limit", 1.0)], now=now, unit="share")
    recent = col[col["ts"] >= since][column]
    return fc, (float(recent.quantile(0.95)) / share_of if len(recent) else None)


def _prewarm(engine: Engine, now: float, since: float, source: str, settings: Settings) -> list[Exhaustion]:
    runs = _prewarm_runs(engine, now, source)
    if runs.empty:
        return []
    deadline = settings.cron_deadline_s
    out = []
    fc, share = _daily(runs, "duration", deadline, now, since, "prewarm:duration_p95")
    if share is not None:
        out.append(_row(source, f"cron deadline (prewarm p95 of {deadline:g} s)", fc, share))
    rate = settings.upstream("lastfm").requests
    allowed = rate.limit * deadline / rate.window
    fc, share = _daily(runs, "calls", allowed, now, since, "prewarm:lastfm_calls")
    if share is not None:
        out.append(_row(source, f"Last.fm budget per run ({allowed:,.0f} calls)", fc, share))
    return out


def exhaustion_ranking(engine: Engine, *, now: float, settings: Settings, source: str,
                       window_s: float = 7 * DAY) -> list[Exhaustion]:
    """Every known limit of ``source`` as of ``now``, soonest reached first.

    Args:
        window_s: the view's range: "today's share" of a rate limit is its peak over it, the
            same figure as the Rate limits page's peak.

    Raises:
        StoreError: the metrics DB is unreachable or not migrated.
    """
    rows = _rate_limits(engine, now, now - window_s, source) + _prewarm(engine, now, now - window_s, source, settings)
    limit_bytes = settings.db_limit_bytes
    db = forecast.forecast_db_bytes(engine, now=now, limit_bytes=limit_bytes, source=source,
                                    window_days=TREND_DAYS)
    if db.latest is not None:
        rows.append(_row(source, "database size", db, db.latest / limit_bytes))
    for provider, spend in forecast.forecast_monthly_ai_spend(engine, now=now, settings=settings,
                                                              source=source, window_days=TREND_DAYS).items():
        rate = spend.run_rate
        if spend.budget_usd and rate.latest is not None:
            # The share is the run-rate (a day's spend × days per month) the date is forecast from.
            row = _row(source, f"{provider} budget (${spend.budget_usd:,.0f}/month)", rate,
                       rate.latest / spend.budget_usd)
            rows.append(Exhaustion(row.source, row.limit, row.share, row.reached, row.date,
                                   f"{row.trend}; this month ${spend.month_to_date_usd:,.2f} so far, "
                                   f"${spend.projected_month_usd:,.2f} projected", row.fitted))
    return sorted(rows, key=lambda r: r.order)
