"""Capacity planner: what breaks first at N users, simulated on the real service layer against the
sandbox in virtual time (`scaling.capacity.simulate`); nothing here calls an upstream."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import data, forecasting
from dashboard import formatting as fmt
from dashboard.charts import Threshold, bar_chart
from dashboard.services import services
from scaling.errors import ScalingError

RESULT_KEY = "capacity_planner_results"

st.title("Capacity planner")
st.caption("What breaks first at N users: page views, the prewarm cron and cleanup run through the real limiters, "
           "breakers and cache against the sandbox upstreams, in virtual time")
sim = forecasting.capacity_module("simulate")


def _defaults() -> int:
    svc = services()
    try:
        now = data.latest_users(svc, None)
    except ScalingError:
        return 150
    return max((u.total for u in now.values()), default=0) or 150


def _show(result: Any, label: str) -> None:
    first = result.first_break
    users = result.scenario.users
    if first is None:
        st.success(f"{label}: no limit crossed at {users:,} users over {result.scenario.hours:g} h "
                   f"(simulated in {result.wall_s:.1f} s).", icon=":material/check_circle:")
    else:
        st.error(f"{label}: first to break at {users:,} users is **{first.limit}**: {first.detail}.",
                 icon=":material/error:")
        for other in sorted(result.breaks, key=lambda b: b.severity)[1:]:
            st.warning(f"then **{other.limit}**: {other.detail}", icon=":material/warning:")
    cron, pages, ai, db = result.cron, result.pages, result.ai, result.db
    c = st.columns(4)
    c[0].metric("Prewarm p95", fmt.duration(cron.get("p95_s")), border=True,
                delta=f"of {cron.get('deadline_s', 30):g} s; {int(cron.get('timed_out_runs', 0))} timed out",
                delta_color="off", delta_arrow="off")
    c[1].metric("Users polled per run (p50)", fmt.count(cron.get("users_polled_p50")), border=True,
                delta=f"{int(cron.get('runs_skipping_active', 0))} runs skipped active users", delta_color="off",
                delta_arrow="off")
    c[2].metric("Page views p95", fmt.duration(pages.get("p95_s")), border=True,
                delta=f"{fmt.percent(pages.get('failed_share'), 1)} failed or over budget", delta_color="off",
                delta_arrow="off")
    c[3].metric("AI spend per month", fmt.usd(ai.get("usd_month")), border=True,
                delta=f"budget {fmt.usd(ai.get('budget_usd'))}" if ai.get("budget_usd") else "no budget",
                delta_color="off", delta_arrow="off")
    peaks = pd.DataFrame([{"upstream": name, "share": u["peak_window"] / u["limit"] if u.get("limit") else 0.0,
                           "peak": f"{u['peak_window']:.0f}/{u['limit']:.0f} per {u['window_s']:g} s",
                           "429s": int(u.get("upstream_429", 0)), "requests": int(u.get("requests", 0))}
                          for name, u in result.upstreams.items()])
    if len(peaks):
        st.altair_chart(bar_chart(peaks, "upstream", "share", title="Busiest window as a share of each upstream's "
                                  "limit", value_title="share of limit", value_format=".0%",
                                  thresholds=[Threshold(0.8, "80% warning", "warning"), Threshold(1.0, "limit")]),
                        width="stretch")
        st.dataframe(peaks.assign(share=peaks["share"].map(fmt.percent)), hide_index=True, width="stretch")
    days = db.get("days_until_10gb")
    st.caption(f"App DB grows {fmt.bytes_(db.get('bytes_per_day'))}/day; reaches 10 GB "
               f"{'never at this rate' if days is None or days == float('inf') else f'in {days:,.0f} days'}. "
               f"Virtual hours simulated: {result.scenario.hours:g}; wall time {result.wall_s:.1f} s.")


if sim is None:
    st.info(
        "The simulator is not in this checkout (`scaling/capacity/simulate.py`), so this page cannot run "
        "scenarios. The Overview page still projects the cron with Little's law at the forecast user count, and "
        "`python -m scaling readiness` prints the same assessment.")
else:
    with st.form("scenario"):
        left, middle, right = st.columns(3)
        users = left.number_input("Users", min_value=1, max_value=5000, value=_defaults(), step=10)
        hours = middle.number_input("Virtual hours", min_value=0.25, max_value=48.0, value=2.0, step=0.25)
        growth = right.number_input("Growth per week (%)", min_value=0.0, max_value=100.0, value=0.0, step=1.0)
        active = left.slider("Active share", 0.0, 1.0, 0.1, 0.05, help="users who listened in the last two hours")
        seed = middle.number_input("Seed", min_value=0, value=0, step=1)
        compare = right.checkbox("Also run the upstream app's design", help=(
            "fixed-window limiters, every user every cron run, no cleanup: what the plan replaces"))
        go = st.form_submit_button("Run simulation", type="primary")
    if go:
        designs = ["headroom", "upstream"] if compare else ["headroom"]
        bar = st.progress(0.0, text="simulating…")
        results = []
        try:
            for i, design in enumerate(designs):
                scenario = sim.Scenario(users=int(users), hours=float(hours), growth_per_week=growth / 100,
                                        active_share=float(active), design=design, seed=int(seed))

                def step(f: float, i: int = i) -> None:
                    bar.progress(min(1.0, (i + f) / len(designs)), text=f"simulating {designs[i]} design…")

                results.append(sim.simulate(scenario, settings=services().settings, progress=step))
        except (ValueError, ScalingError) as err:
            st.error(f"The simulation could not run: {err}")
        else:
            st.session_state[RESULT_KEY] = results
        bar.empty()
    for result in st.session_state.get(RESULT_KEY, []):
        label = "Headroom" if result.scenario.design == "headroom" else "Upstream app's design"
        st.subheader(label)
        _show(result, label)
