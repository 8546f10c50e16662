"""The planner's answers for the pages: the stored capacity next to the user forecast, and the calibration table.

A capacity search takes minutes, so the Overview never runs one: it reads the newest
stored result (the collectors' daily ``capacity`` job, or ``simulate --capacity``) and
dates it with the user forecast. The calibration (`scaling.capacity.calibration`) is a
few aggregate queries, cached briefly like every other read.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard import formatting as fmt
from dashboard.services import Services
from scaling.capacity import forecast
from scaling.capacity.calibration import Calibration, calibrate
from scaling.errors import StoreError
from scaling.metrics.records import CapacityRecord

__all__ = ["NO_RUN", "CapacityOutlook", "calibration", "calibration_table", "outlook", "overview_block"]

TTL_S = 120
NO_RUN = "no capacity run yet — runs daily, or `python -m scaling simulate --capacity`"
_BY = {"collectors": "the collectors' daily capacity job", "cli": "`python -m scaling simulate --capacity`"}


@dataclass(frozen=True, slots=True)
class CapacityOutlook:
    """The newest stored capacity, worded: ``headline`` ("this design carries ≈ N users; then X breaks"),
    ``when`` (the date the user forecast reaches N, or "not at this trend") and ``detail``."""

    record: CapacityRecord | None
    headline: str
    when: str = ""
    detail: str = ""


@st.cache_data(ttl=TTL_S, show_spinner=False, max_entries=64)
def _calibration(db_key: str, at: float, _svc: Services) -> Calibration:
    return calibrate(_svc.engine, now=at)


def calibration(svc: Services, at: float) -> Calibration:
    """The simulator's inputs from the metrics DB's production data over the week before ``at``."""
    return _calibration(svc.db_key, float(int(at // 60) * 60), svc)


def calibration_table(cal: Calibration) -> pd.DataFrame:
    """One row per input: ``input · value · from · provenance`` (from = "data" or "default")."""
    return pd.DataFrame([{"input": i.name, "value": "–" if i.value is None else f"{i.value:g}",
                          "from": "data" if i.from_data else "default", "provenance": i.provenance}
                         for i in cal.inputs])


@st.cache_data(ttl=TTL_S, show_spinner=False, max_entries=64)
def _users_reach(db_key: str, at: float, users: int, source: str | None, _svc: Services) -> str:
    fc = forecast.forecast_users(_svc.engine, now=at, thresholds=[(f"{users:,} users", float(users))], source=source)
    mark = fc.thresholds[0]
    if mark.reached:
        return f"the users are already at or past {users:,}"
    if mark.crossing is None:
        return "not at this trend"
    return f"at the current trend, {users:,} users on {fmt.timestamp(mark.crossing.date_epoch, with_time=False)}"


def outlook(svc: Services, at: float, source: str | None) -> CapacityOutlook:
    """The newest capacity result (the configured design's, else any) and when the users reach it."""
    rec = (data.read(svc, "latest_capacity", design=svc.settings.capacity_design)
           or data.read(svc, "latest_capacity"))
    if rec is None:
        return CapacityOutlook(None, NO_RUN)
    design = f"{rec.design} ({rec.time_model} cron time, {rec.active_share:.0%} active)"
    if rec.first_break_limit is None:
        headline = f"this design carries at least {rec.users_carried:,} users; nothing broke up to the search's ceiling"
    elif rec.users_carried == 0:
        headline = f"this design breaks already at {rec.broken_at or 1:,} users on {rec.first_break_limit}"
    else:
        headline = f"this design carries ≈ {rec.users_carried:,} users; then {rec.first_break_limit} breaks"
    when = _users_reach(svc.db_key, float(int(at // 60) * 60), max(1, rec.users_carried), source, svc) \
        if rec.users_carried else ""
    cost = f"; steady-state cost at that size {fmt.usd(rec.monthly_cost_usd)} a month" \
        if rec.monthly_cost_usd is not None else ""
    data_inputs = [k for k, v in rec.provenance.items() if v.startswith(("from", "fitted"))]
    inputs = f"inputs from data: {', '.join(data_inputs)}" if data_inputs else "inputs: the planner's defaults"
    by = _BY.get(rec.source, rec.source)
    detail = (f"{design}; {rec.first_break_detail or 'no break found'}{cost}. Computed "
              f"{fmt.ago(rec.computed_at, at)} by {by}; {inputs}.")
    return CapacityOutlook(rec, headline, when, detail)


def overview_block(svc: Services, at: float, source: str | None) -> None:
    """The Overview's line: what the design carries, what breaks next, and when the users get there."""
    try:
        out = outlook(svc, at, source)
    except StoreError as exc:  # an older schema without capacity_results: say so, keep the page
        st.caption(f"Capacity: {fmt.plain(exc)}")
        return
    if out.record is None:
        st.info(f"Capacity: {NO_RUN}", icon=":material/speed:")
        return
    when = f" {fmt.plain(out.when[:1].upper() + out.when[1:])}." if out.when else ""
    st.info(f"**Capacity: {fmt.plain(out.headline)}.**{when}", icon=":material/speed:")
    st.caption(fmt.plain(out.detail))
