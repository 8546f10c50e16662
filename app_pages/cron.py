"""Cron: run durations against the 30 s deadline, users polled vs skipped, phases, failures, lateness."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import controls, data
from dashboard import formatting as fmt
from dashboard.charts import OUTCOME_COLORS, Marker, Threshold, series_label, time_chart
from dashboard.run_reports import prewarm_frame
from dashboard.services import services
from dashboard.timerange import Window, bucket_for, coarsen

WARNING_SHARE = 0.8  # warn at 24 s of a 30 s deadline (anchors §5: "a warning at 24 s")

svc = services()
v = controls.view()
deadline = svc.settings.cron_deadline_s
st.title("Cron")
CAPTION = f"Scheduled jobs against their {deadline:g} s deadline"


def _per_bucket(runs: pd.DataFrame, width: int, cols: list[str]) -> pd.DataFrame:
    """Report numbers averaged per run within each time bucket, per source."""
    ts = pd.to_datetime((runs["ts"].astype("float64") // width) * width, unit="s", utc=True)
    out = runs.assign(ts=ts).groupby(["ts", "source"], as_index=False)[cols].mean()
    out.attrs["bucket_s"] = width
    out.attrs["window"] = runs.attrs.get("window")
    return out


def _prewarm_reports(window: Window) -> None:
    st.subheader("What each prewarm run covered")
    recent = data.runs(svc, "prewarm", v.source)
    recent = recent[recent.scheduled_at >= pd.Timestamp(window.since, unit="s", tz="UTC")]
    frame = prewarm_frame(recent.assign(scheduled_at=recent.scheduled_at.map(lambda t: t.timestamp())))
    frame.attrs["window"] = (window.since, window.until)
    if frame.empty or "polled" not in frame:
        st.caption("No prewarm run in this range reported how many users it polled.")
        return
    sources = max(1, frame["source"].nunique())
    width = bucket_for(window, 2 * sources, budget=600)
    polled = _per_bucket(frame.fillna({"polled": 0, "skipped": 0}), width, ["polled", "skipped"])
    long = polled.melt(id_vars=["ts", "source"], value_vars=["polled", "skipped"], var_name="users", value_name="n")
    long["series"] = series_label(long, ["users"])
    long.attrs = polled.attrs
    left, right = st.columns(2)
    left.altair_chart(time_chart(long, "n", title="Users polled and skipped per run (mean per bucket)",
                                 y_title="users per run", series="series", mark="bar", stacked=True, height=290,
                                 colors=dict(zip(long["series"], long["users"].map(
                                     {"polled": OUTCOME_COLORS["ok"], "skipped": OUTCOME_COLORS["skipped"]})))),
                           width="stretch")
    phases = [c for c in frame.columns if c.startswith("phase:")]
    if not phases:
        right.caption("Runs in this range report no phase timings (collector runs do: plan, lastfm, spotify, "
                      "aggregate).")
    else:
        per = _per_bucket(frame.fillna(dict.fromkeys(phases, 0)), width, phases)
        long = per.melt(id_vars=["ts", "source"], value_vars=phases, var_name="phase", value_name="seconds")
        long["phase"] = long["phase"].str.removeprefix("phase:")
        long["series"] = series_label(long, ["phase"])
        long.attrs = per.attrs
        right.altair_chart(time_chart(long, "seconds", title="Seconds per phase (mean per run)", y_title="seconds",
                                      series="series", mark="bar", stacked=True, y_format=",.1f", height=290,
                                      legend_columns=2,  # half-width: two labels a row keeps them whole
                                      thresholds=[Threshold(deadline, f"{deadline:g} s deadline", "limit")]),
                           width="stretch")
    if len(data.runs(svc, "prewarm", v.source)) >= 2000:
        st.caption("From the newest 2,000 prewarm runs.")


def _failures(job: str) -> None:
    recent = data.runs(svc, job, v.source, 200)
    bad = recent[recent.outcome.isin(["failed", "timed_out"])]
    st.subheader("Recent failures")
    if bad.empty:
        st.caption(f"No failed or timed-out {job} run among the latest 200.")
        return
    shown = bad.assign(scheduled_at=bad.scheduled_at.dt.strftime("%Y-%m-%d %H:%M"))
    st.dataframe(shown[["scheduled_at", "source", "outcome", "duration_s", "lateness_s", "error"]].head(20),
                 hide_index=True, width="stretch")


def body(at: float, window: Window) -> None:
    summary = data.cron_summary(svc, window, v.source)
    if summary.empty:
        controls.empty_state(svc, "cron runs", source=v.source)
        return
    names = list(dict.fromkeys(["prewarm", *summary.job]))
    names = [n for n in names if n in set(summary.job)]
    job = st.segmented_control("Job", names, default=names[0], key="cron_job") or names[0]
    mine = summary[summary.job == job]
    p95 = mine["duration_p95"].max()
    failures = int(mine["failed"].sum() + mine["timed_out"].sum())
    c = st.columns(5)
    c[0].metric("Runs", fmt.count(mine["runs"].sum()), border=True)
    c[1].metric("p95 duration", fmt.duration(p95), help=f"of the {deadline:g} s deadline", border=True,
                delta=f"{fmt.percent(p95 / deadline)} of {deadline:g} s", delta_color="off", delta_arrow="off")
    c[2].metric("Max duration", fmt.duration(mine["duration_max"].max()), border=True)
    c[3].metric("Failed or timed out", fmt.count(failures), border=True,
                delta=f"{fmt.count(mine['timed_out'].sum())} timed out", delta_color="off", delta_arrow="off")
    ended = mine["last_finished_at"].max()
    c[4].metric("Last run finished", fmt.ago(ended.timestamp(), at) if pd.notna(ended) else "none yet", border=True,
                delta=f"start lateness p95 {fmt.duration(mine['lateness_p95'].max())}", delta_color="off",
                delta_arrow="off", help="lateness = started − scheduled")

    runs = data.jobs(svc, window, v.source, job, series=2 * data.source_count(svc, v.source))
    long = runs.melt(id_vars=["ts", "source", "runs", "timed_out", "failed"],
                     value_vars=["duration_max", "duration_avg"], var_name="stat", value_name="seconds")
    long["series"] = series_label(long.assign(stat=long["stat"].str.removeprefix("duration_")), ["stat"])
    long.loc[long["stat"] != "duration_max", "timed_out"] = 0  # mark timeouts once, on the max line
    long.attrs = runs.attrs
    st.altair_chart(time_chart(
        long, "seconds", title=f"{job}: run duration per bucket (max and mean)", y_title="seconds",
        series="series", y_format=",.1f", markers=[Marker("timed_out", "timed out")],
        thresholds=[Threshold(deadline * WARNING_SHARE, f"{deadline * WARNING_SHARE:g} s warning", "warning"),
                    Threshold(deadline, f"{deadline:g} s deadline", "limit")]), width="stretch")

    left, right = st.columns(2)
    outcomes = runs.melt(id_vars=["ts", "source"], value_vars=["ok", "failed", "timed_out", "skipped"],
                         var_name="outcome", value_name="count")
    outcomes = outcomes[outcomes["count"] > 0]
    outcomes["series"] = series_label(outcomes, ["outcome"])
    outcomes.attrs = runs.attrs
    outcomes = coarsen(outcomes, ["series", "outcome", "source"], {"count": "sum"}, budget=450)
    # Each outcome keeps its colour whatever the source (ok green, failed/timed out red, skipped grey).
    hues = dict(zip(outcomes["series"], outcomes["outcome"].map(OUTCOME_COLORS)))
    left.altair_chart(time_chart(outcomes, "count", title="Outcomes per bucket", y_title="runs", series="series",
                                 mark="bar", stacked=True, height=290, colors=hues, legend_columns=3),
                      width="stretch")
    late = runs.assign(series=series_label(runs, [], empty="lateness max"))
    late.attrs = runs.attrs
    right.altair_chart(time_chart(late, "lateness_max", title="Start lateness (started − scheduled)",
                                  y_title="seconds late", series="series", y_format=",.1f", height=290),
                       width="stretch")

    if job == "prewarm":
        _prewarm_reports(window)
    _failures(job)
    st.subheader("Every job")
    seconds = {c: st.column_config.NumberColumn(c.replace("_", " "), format="%.1f s")
               for c in ("duration_p50", "duration_p95", "duration_max", "lateness_p95", "lateness_max")}
    when = {c: st.column_config.DatetimeColumn(c.replace("_", " "), format="YYYY-MM-DD HH:mm", timezone="UTC")
            for c in ("last_scheduled_at", "last_started_at", "last_finished_at")}
    st.dataframe(summary, hide_index=True, width="stretch", column_config={**seconds, **when})


controls.run_live(svc, v, CAPTION, body)
