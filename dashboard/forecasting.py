"""Forecasts and readiness for the pages, from `scaling.capacity` when it is installed.

The capacity package (trigger table, trends, readiness rules) is the one place
those live; this module only calls it, caches the answer briefly across sessions,
and words it for a tile. When a capacity module is missing (an older checkout),
each function returns a `Outlook` or None with a note saying so, and the page
degrades to the measured numbers instead of raising.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import streamlit as st

from dashboard import formatting as fmt
from dashboard.services import Services

__all__ = ["Outlook", "ai_spend", "capacity_module", "db_limit_crossing", "readiness", "users_forecast"]

TTL_S = 120
_SNAP_S = 60


def capacity_module(name: str) -> ModuleType | None:
    """``scaling.capacity.<name>``, or None when this checkout does not have it yet."""
    try:
        return importlib.import_module(f"scaling.capacity.{name}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("scaling.capacity"):
            return None
        raise


def missing_note(name: str) -> str:
    return f"`scaling/capacity/{name}.py` is not in this checkout yet, so this part is not shown."


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
def _call(db_key: str, module: str, function: str, kwargs: tuple[tuple[str, Any], ...], _svc: Services,
          with_settings: bool = False) -> Any:
    mod = importlib.import_module(f"scaling.capacity.{module}")
    extra = {"settings": _svc.settings} if with_settings else {}
    return getattr(mod, function)(_svc.engine, **dict(kwargs), **extra)


def users_forecast(svc: Services, at: float, source: str | None) -> Any | None:
    """`forecast.forecast_users` (trend, and each trigger's crossing), or None without the module."""
    if capacity_module("forecast") is None:
        return None
    return _call(svc.db_key, "forecast", "forecast_users", (("now", _snap(at)), ("source", source)), svc)


def db_limit_crossing(svc: Services, at: float, source: str | None) -> Outlook:
    """When the app DB's bytes trend reaches the configured limit."""
    if capacity_module("forecast") is None:
        return Outlook("–", note=missing_note("forecast"))
    fc = _call(svc.db_key, "forecast", "forecast_db_bytes",
               (("limit_bytes", svc.settings.db_limit_bytes), ("now", _snap(at)), ("source", source)), svc)
    limit = fc.thresholds[-1] if fc.thresholds else None
    trend = fc.trend
    why = (f"{'+' if trend.per_day >= 0 else '−'}{fmt.bytes_(abs(trend.per_day))}/day ({trend.model}, "
           f"R² {trend.r2:.2f}, {trend.n} days)") if trend is not None else str(fc.fit)
    if limit is None:
        return Outlook("–", why)
    if limit.reached:
        return Outlook("reached", f"{fmt.bytes_(fc.latest)} ≥ {limit.label}", f"Trend: {why}.")
    c = limit.crossing
    if c is None:
        return Outlook("> 10 years", why, f"Trend: {why}; at this trend the limit is not reached within 10 years.")
    band = f"between {fmt.timestamp(c.low, with_time=False)} and " + (
        fmt.timestamp(c.high, with_time=False) if c.high else "never")
    return Outlook(fmt.timestamp(c.date_epoch, with_time=False), f"{band} (90% band); {why}",
                   f"At the current trend ({why}) the database reaches {limit.label} on "
                   f"{fmt.timestamp(c.date_epoch, with_time=False)}, {band}.")


def ai_spend(svc: Services, at: float, source: str | None) -> dict[str, Any] | None:
    """`forecast.forecast_monthly_ai_spend`: per provider month-to-date, projection, budget."""
    if capacity_module("forecast") is None:
        return None
    return _call(svc.db_key, "forecast", "forecast_monthly_ai_spend",
                 (("now", _snap(at)), ("source", source)), svc, with_settings=True)


def readiness(svc: Services, at: float, source: str | None) -> Any | None:
    """``readiness.assess(gather_evidence(...))``, or None when the readiness module is absent."""
    mod = capacity_module("readiness")
    if mod is None:
        return None
    return _readiness(svc.db_key, _snap(at), source, svc)


@st.cache_data(ttl=TTL_S, show_spinner=False, max_entries=64)
def _readiness(db_key: str, at: float, source: str | None, _svc: Services) -> Any:
    mod = importlib.import_module("scaling.capacity.readiness")
    evidence = mod.gather_evidence(_svc.engine, now=at, settings=_svc.settings, source=source)
    return mod.assess(evidence, settings=_svc.settings)
