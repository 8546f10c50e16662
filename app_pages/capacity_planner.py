"""Capacity planner: what breaks first at N users, simulated on the real service layer against the
sandbox in virtual time (`scaling.capacity.simulate`); nothing here calls an upstream."""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import streamlit as st

from dashboard import capacity as planner
from dashboard import data
from dashboard import formatting as fmt
from dashboard.charts import Threshold, bar_chart
from dashboard.services import services
from scaling.capacity.breaks import Break
from scaling.capacity.calibration import Calibration
from scaling.capacity.capacity_search import find_capacity
from scaling.capacity.designs import DESIGNS
from scaling.capacity.platform_limits import LIMITS
from scaling.capacity.simulate import Scenario, SimResult, simulate
from scaling.errors import ScalingError

RESULT_KEY = "capacity_planner_results"
CAPACITY_KEY = "capacity_planner_capacity"

st.title("Capacity planner")
st.caption("What breaks first at N users: page views, the prewarm design and cleanup run through the real limiters, "
           "breakers and cache against the sandbox upstreams, in virtual time, from the steady state of the caches")


def _defaults() -> int:
    try:
        now = data.latest_users(services(), None)
    except ScalingError:
        return 150
    return max((u.total for u in now.values()), default=0) or 150


def _limits_note() -> None:
    with st.expander("Which limits this simulates, and why two sets of rate limits"):
        st.markdown(
            "- **Upstream limits** (where a 429 comes from) are the upstreams' real ones, played by the sandbox: "
            "Spotify 180 per 30 s, Last.fm 5 per second, OpenAI 500 per minute. **Headroom's limiters** (the Rate "
            "limits page) run at the plan's conservative settings: Spotify 120/60 s, Last.fm 4/s, OpenAI 60/60 s, "
            "so a busiest window is judged against the upstream's limit while the limiter keeps it below.\n"
            "- **Cron time**: *plan* = 30 s of wall time per invocation (SCALING_PLAN.md); *documented* = the "
            "Workers limits page: CPU time by cron interval and 15 min of wall time. A run breaks on whichever binds; "
            "HEADROOM_CRON_DEADLINE_S, if set below, is the operator's stricter wall budget.\n"
            "- **Breaks** (red): any invocation over a limit, an upstream 429 or window over its limit, entries "
            "staler than their target, a steady-state AI or platform bill over budget, a DB full within a year. "
            "**At risk** (amber): a limit reached exactly (100%) or a budget over 80%.")
        st.dataframe(pd.DataFrame([{"limit": lim.name, "value": f"{lim.value:g} {lim.unit}", "source": lim.source,
                                    "updated": lim.updated, "note": lim.note} for lim in LIMITS.values()]),
                     hide_index=True, width="stretch")
        for design in DESIGNS.values():
            st.markdown(f"**{design.name}** ({design.label}): {' '.join((type(design).__doc__ or '').split())}")


def _calibration() -> Calibration | None:
    """The inputs production data gives (page views, active share, cron CPU), shown as a table."""
    svc = services()
    try:
        cal = planner.calibration(svc, svc.clock.now())
    except ScalingError as err:
        st.caption(f"Inputs: the planner's defaults (the metrics DB cannot be read: {fmt.plain(err)}).")
        return None
    st.subheader("Inputs")
    st.caption("Where production data exists (ingested `wrangler tail` events, the Cloudflare collector; the last "
               "7 days of the metrics DB), these inputs come from it; the rest are the planner's stated defaults.")
    st.dataframe(planner.calibration_table(cal), hide_index=True, width="stretch")
    return cal


def _verdict(result: SimResult, label: str) -> None:
    users = result.scenario.users
    first = result.first_break
    if first is not None:
        st.error(f"{label}: first to break at {users:,} users is **{first.limit}**: {first.detail}.",
                 icon=":material/error:")
        for other in sorted(result.breaks, key=lambda b: b.severity)[1:]:
            st.error(f"then **{other.limit}**: {other.detail}", icon=":material/error:")
    elif result.at_risk:
        st.warning(f"{label}: nothing over a limit at {users:,} users, but at risk:", icon=":material/warning:")
    else:
        st.success(f"{label}: no limit crossed or reached at {users:,} users over {result.scenario.hours:g} h "
                   f"(simulated in {result.wall_s:.1f} s).", icon=":material/check_circle:")
    for risk in result.at_risk:
        st.warning(f"at risk: **{risk.limit}**: {risk.detail}", icon=":material/warning:")
    for note in result.warnings:
        st.info(note)


def _show(result: SimResult, label: str) -> None:
    _verdict(result, label)
    cron, pages, ai, inv, plat = result.cron, result.pages, result.ai, result.invocations, result.platform
    c = st.columns(5)
    c[0].metric("Invocation wall max", fmt.duration(inv.get("wall_s_max")), border=True,
                delta=f"of {inv.get('wall_s_limit', 30):g} s; {int(cron.get('timed_out_runs', 0))} over",
                delta_color="off", delta_arrow="off")
    cpu_limit = inv.get("cpu_s_limit", math.inf)
    c[1].metric("Invocation CPU max", fmt.duration(inv.get("cpu_s_max")), border=True,
                delta="no CPU limit in this model" if math.isinf(cpu_limit) else f"of {cpu_limit:g} s",
                delta_color="off", delta_arrow="off")
    c[2].metric("Oldest inactive entry", f"{cron.get('max_staleness_min', 0):.0f} min", border=True,
                delta=f"target {cron.get('target_inactive_min', 75):.0f} min", delta_color="off", delta_arrow="off")
    c[3].metric("AI per month (steady)", fmt.usd(ai.get("usd_month")), border=True,
                delta=f"budget {fmt.usd(ai.get('budget_usd'))}; cold start {fmt.usd(ai.get('usd_month_cold'))}",
                delta_color="off", delta_arrow="off")
    c[4].metric("Cloudflare per month", fmt.usd(plat.get("usd_month")), border=True,
                delta=f"budget {fmt.usd(plat.get('budget_usd'))}", delta_color="off", delta_arrow="off")
    peaks = pd.DataFrame([{"upstream": name, "share": u["peak_window"] / u["limit"] if u.get("limit") else 0.0,
                           "peak (upstream's limit)":
                               f"{u['peak_window']:.0f}/{u['limit']:.0f} per {u['window_s']:g} s",
                           "Headroom's limiter": f"{u['limiter_limit']:.0f}/{u['limiter_window_s']:g} s",
                           "429s": int(u.get("upstream_429", 0)), "requests": int(u.get("requests", 0))}
                          for name, u in result.upstreams.items()])
    if len(peaks):
        st.altair_chart(bar_chart(peaks, "upstream", "share", title="Busiest window as a share of each upstream's "
                                  "real limit", value_title="share of limit", value_format=".0%",
                                  thresholds=[Threshold(0.8, "80% warning", "warning"), Threshold(1.0, "limit")]),
                        width="stretch")
        st.dataframe(peaks.assign(share=peaks["share"].map(fmt.percent)), hide_index=True, width="stretch")
    st.caption(f"Page views p95 {fmt.duration(pages.get('p95_s'))}, {fmt.percent(pages.get('failed_share'), 1)} "
               f"failed. Cache hit rates (measured vs analytical): "
               + ", ".join(f"{k} {v:.0%}" for k, v in result.cache.items())
               + f". Virtual hours {result.scenario.hours:g}; wall time {result.wall_s:.1f} s.")


def _sweep_table(results: list[SimResult]) -> None:
    st.dataframe(pd.DataFrame([{
        "design": r.scenario.design, "time model": r.scenario.time_model, "users": r.scenario.users,
        "wall max s": r.invocations.get("wall_s_max"), "CPU max s": r.invocations.get("cpu_s_max"),
        "stale min": r.cron.get("max_staleness_min"), "AI $/month": r.ai.get("usd_month"),
        "Cloudflare $/month": r.platform.get("usd_month"),
        "verdict": (f"breaks: {r.first_break.limit}" if r.first_break else
                    f"at risk: {r.at_risk[0].limit}" if r.at_risk else "ok")} for r in results]),
        hide_index=True, width="stretch")


_limits_note()
calibrated = _calibration()
with st.form("scenario"):
    left, middle, right = st.columns(3)
    users = left.number_input("Users", min_value=1, max_value=20000, value=_defaults(), step=10)
    hours = middle.number_input("Virtual hours", min_value=0.25, max_value=48.0, value=2.0, step=0.25)
    growth = right.number_input("Growth per week (%)", min_value=0.0, max_value=100.0, value=0.0, step=1.0)
    active = left.slider("Active share", 0.0, 1.0, 0.1, 0.05, help="users who listened in the last two hours")
    designs = middle.multiselect("Designs", list(DESIGNS), default=["cron5m"])
    models = right.multiselect("Cron time models", ["plan", "documented"], default=["plan", "documented"])
    sweep_text = left.text_input("Sweep user counts (optional)", "", help="e.g. 100,300,1000: the CLI's --sweep")
    seed = middle.number_input("Seed", min_value=0, value=0, step=1)
    capacity = right.checkbox("Find capacity (bisection; minutes per design)", help="the CLI's --capacity")
    use_data = left.checkbox("Use production data for the inputs above that have it",
                             value=calibrated is not None and calibrated.from_data,
                             disabled=calibrated is None or not calibrated.from_data,
                             help="the CLI's --calibrate: page views per user, the active share (over the slider) "
                                  "and cron CPU from the Inputs table where it says 'data'")
    go = st.form_submit_button("Run simulation", type="primary")

if go:
    try:
        counts = [int(p) for p in sweep_text.split(",") if p.strip()] or [int(users)]
        base = Scenario(users=1, hours=float(hours), growth_per_week=growth / 100, active_share=float(active),
                        seed=int(seed))
        if use_data and calibrated is not None:
            base = calibrated.apply(base)
        jobs = [(d, m, n) for m in models for d in designs for n in counts]
        bar = st.progress(0.0, text="simulating…")
        results = []
        for i, (design, model, n) in enumerate(jobs):
            bar.progress(i / max(1, len(jobs)), text=f"simulating {design} ({model}) at {n:,} users…")
            results.append(simulate(dataclasses.replace(base, users=n, design=design, time_model=model),
                                    settings=services().settings))
        st.session_state[RESULT_KEY] = results
        if capacity:
            found = []
            for design in designs:
                for model in models:
                    sc = dataclasses.replace(base, design=design, time_model=model)

                    def trial(n: int, sc: Scenario = sc) -> Break | None:
                        return simulate(dataclasses.replace(sc, users=n), settings=services().settings).first_break

                    cap = find_capacity(trial, start=100)
                    found.append(f"[{model}] {cap.sentence(design)}"
                                 + (f": {cap.first_break.detail}" if cap.first_break else ""))
            st.session_state[CAPACITY_KEY] = found
        bar.empty()
    except (ValueError, ScalingError) as err:
        st.error(f"The simulation could not run: {err}")

for line in st.session_state.get(CAPACITY_KEY, []):
    st.info(line)
stored = st.session_state.get(RESULT_KEY, [])
if len(stored) > 1:
    st.subheader("Sweep")
    _sweep_table(stored)
for result in stored:
    st.subheader(f"{result.scenario.design} · {result.scenario.time_model} · {result.scenario.users:,} users")
    _show(result, result.scenario.design)
