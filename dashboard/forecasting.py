"""Forecasts and readiness for the pages, from `scaling.capacity`.

The capacity package (trigger table, trends, readiness rules) is the one place
those live; this module only calls it, caches the answer briefly across sessions,
and words it for a tile.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import formatting as fmt
from dashboard.services import Services
from dashboard.timerange import Window
from scaling.capacity import forecast
from scaling.capacity.evidence import gather_evidence
from scaling.capacity.exhaustion import Exhaustion, exhaustion_ranking
from scaling.capacity.forecast import MONTH_DAYS, SeriesForecast, SpendForecast
from scaling.capacity.readiness import Readiness, assess
from scaling.capacity.triggers import TRIGGERS, Trigger

__all__ = ["TRIGGERS", "Outlook", "Trigger", "ai_spend", "db_bytes_forecast", "db_limit_crossing", "exhaustion",
           "projection", "readiness", "spend_projection", "users_forecast"]

TTL_S = 120
_SNAP_S = 60


@dataclass(frozen=True, slots=True)
class Outlook:
    """A forecast worded for a KPI tile: ``headline`` (a date or "not at this trend"), its
    ``detail`` (band, trend) and an optional ``note`` shown under the chart."""

    headline: str
    detail: str = ""
    note: str = ""


def _snap(at: float) -> float:
    return float(int(at // _SNAP_S) * _SNAP_S)


@st.cache_data(ttl=TTL_S, show_spinner=False, max_entries=128)
def _users(db_key: str, at: float, source: str | None, _svc: Services) -> SeriesForecast:
    return forecast.forecast_users(_svc.engine, now=at, source=source)


@st.cache_data(ttl=TTL_S, show_spinner=False, max_entries=128)
def _db_bytes(db_key: str, at: float, source: str | None, limit_bytes: int, _svc: Services) -> SeriesForecast:
    return forecast.forecast_db_bytes(_svc.engine, now=at, limit_bytes=limit_bytes, source=source)


@st.cache_data(ttl=TTL_S, show_spinner=False, max_entries=128)
def _ai_spend(db_key: str, at: float, source: str | None, _svc: Services) -> dict[str, SpendForecast]:
    return forecast.forecast_monthly_ai_spend(_svc.engine, now=at, settings=_svc.settings, source=source)


def users_forecast(svc: Services, at: float, source: str | None) -> SeriesForecast:
    """`forecast.forecast_users`: the trend, and each trigger's crossing."""
    return _users(svc.db_key, _snap(at), source, svc)


def db_bytes_forecast(svc: Services, at: float, source: str | None) -> SeriesForecast:
    """`forecast.forecast_db_bytes` against the configured limit: the trend behind `db_limit_crossing`."""
    return _db_bytes(svc.db_key, _snap(at), source, svc.settings.db_limit_bytes, svc)


def db_limit_crossing(svc: Services, at: float, source: str | None) -> Outlook:
    """When the app DB's bytes trend reaches the configured limit."""
    fc = _db_bytes(svc.db_key, _snap(at), source, svc.settings.db_limit_bytes, svc)
    limit = fc.thresholds[-1] if fc.thresholds else None
    trend = fc.trend
    why = (f"{'+' if trend.per_day >= 0 else '−'}{fmt.bytes_(abs(trend.per_day))}/day ({trend.model}, "
           f"R² {trend.r2:.2f}, {trend.n} days)") if trend is not None else str(fc.fit)
    if limit is None:
        return Outlook("–", why)
    if limit.reached:
        return Outlook("reached", f"{fmt.bytes_(fc.latest)} ≥ {limit.label}", f"Trend: {why}.")
    if trend is None:  # no trend, no claim about when (nor about "10 years")
        return Outlook("not enough data", why, f"Trend: too little data for a forecast ({fc.points} daily points).")
    c = limit.crossing
    if c is None:
        return Outlook("> 10 years", why, f"Trend: {why}; at this trend the limit is not reached within 10 years.")
    band = f"between {fmt.timestamp(c.low, with_time=False)} and " + (
        fmt.timestamp(c.high, with_time=False) if c.high else "never")
    return Outlook(fmt.timestamp(c.date_epoch, with_time=False), f"{band} (90% band); {why}",
                   f"At the current trend ({why}) the database reaches {limit.label} on "
                   f"{fmt.timestamp(c.date_epoch, with_time=False)}, {band}.")


def ai_spend(svc: Services, at: float, source: str | None) -> dict[str, SpendForecast]:
    """`forecast.forecast_monthly_ai_spend`: per provider month-to-date, projection, budget."""
    return _ai_spend(svc.db_key, _snap(at), source, svc)


def readiness(svc: Services, window: Window, source: str) -> Readiness | None:
    """``readiness.assess(gather_evidence(...))`` for one view: as of the window's end, over its length.

    The same call as ``python -m scaling readiness --at <end> --range <range> --source <source>``,
    so the Overview's card, its sections and the CLI show one object. None: the source has no data.
    """
    return _readiness(svc.db_key, window.until, window.seconds, source, svc)


@st.cache_data(ttl=TTL_S, show_spinner=False, max_entries=64)
def _readiness(db_key: str, at: float, window_s: float, source: str, _svc: Services) -> Readiness | None:
    evidence = gather_evidence(_svc.engine, now=at, settings=_svc.settings, source=source, window_s=window_s)
    return None if evidence.is_empty else assess(evidence, settings=_svc.settings)


def exhaustion(svc: Services, window: Window, source: str) -> list[Exhaustion]:
    """`exhaustion_ranking` for one view: the same rows as ``readiness --json``'s "exhaustion"."""
    return _exhaustion(svc.db_key, window.until, window.seconds, source, svc)


@st.cache_data(ttl=TTL_S, show_spinner=False, max_entries=64)
def _exhaustion(db_key: str, at: float, window_s: float, source: str, _svc: Services) -> list[Exhaustion]:
    return exhaustion_ranking(_svc.engine, now=at, settings=_svc.settings, source=source, window_s=window_s)


_PROJECTION_COLUMNS = ("ts", "series", "forecast", "low", "high")


def _frame(ts: np.ndarray, label: str, mid: np.ndarray, low: np.ndarray, high: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"ts": pd.to_datetime(ts, unit="s", utc=True), "series": label, "forecast": mid,
                         "low": np.maximum(low, 0.0), "high": high})


def projection(fc: SeriesForecast, *, until: float, label: str, scale: float = 1.0, steps: int = 24) -> pd.DataFrame:
    """The trend of ``fc`` from its newest point to ``until``, with its 90% band, times ``scale``.

    Rows ``ts, series, forecast, low, high`` for `dashboard.charts.time_chart`'s ``forecast``;
    empty (same columns) without a trend or with nothing ahead.
    """
    trend = fc.trend
    start = fc.latest_ts if fc.latest_ts is not None else fc.now
    if trend is None or until <= start:
        return pd.DataFrame(columns=list(_PROJECTION_COLUMNS))
    ts = np.linspace(start, until, steps)
    preds = [trend.predict(float(t)) for t in ts]
    return _frame(ts, label, np.array([p.value for p in preds]) * scale, np.array([p.low for p in preds]) * scale,
                  np.array([p.high for p in preds]) * scale)


def spend_projection(spend: SpendForecast, *, at: float, until: float, label: str) -> pd.DataFrame:
    """Cumulative spend from month-to-date at ``at`` to ``until``: each day adds the run-rate trend's
    daily spend (and its band's edges), so the line ends at the projected month total."""
    trend = spend.run_rate.trend
    if trend is None or until <= at:
        return pd.DataFrame(columns=list(_PROJECTION_COLUMNS))
    ts = np.append(np.arange(at, until, 86400.0), until)
    preds = [trend.predict(float(t)) for t in ts[1:]]
    step = np.diff(ts) / 86400.0 / MONTH_DAYS

    def cum(values: list[float]) -> np.ndarray:
        return spend.month_to_date_usd + np.concatenate(([0.0], np.cumsum(np.maximum(values, 0.0) * step)))
    return _frame(ts, label, cum([p.value for p in preds]), cum([p.low for p in preds]), cum([p.high for p in preds]))
