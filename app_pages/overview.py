"""Overview: users now and their trend, the phase the scaling triggers require, each plan item's
readiness with its evidence, the next trigger's forecast date, and alerts."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import controls, data, forecasting
from dashboard import formatting as fmt
from dashboard.charts import Threshold, series_label, time_chart
from dashboard.services import services
from dashboard.timerange import Window, coarsen
from scaling.capacity.exhaustion import Exhaustion
from scaling.capacity.readiness import Readiness

BADGES = {"ready": ":green-badge[ready]", "at risk": ":orange-badge[at risk]", "not ready": ":red-badge[not ready]",
          "unknown": ":gray-badge[unknown]"}

svc = services()
v = controls.view()
st.title("Overview")
CAPTION = "Users, the phase of the scaling plan they call for, and whether each item is ready"


def _users(window: Window, at: float, readiness: Any) -> None:
    latest = data.latest_users(svc, v.source)
    series = data.users(svc, window, v.source)
    first = series.sort_values("ts").groupby("source").head(1).set_index("source")
    c = st.columns(3)
    for col, (field, label) in zip(c, (("total", "Users"), ("with_lastfm", "With Last.fm"), ("active", "Active"))):
        values = {s: getattr(u, field) for s, u in latest.items()}
        text = " · ".join(f"{n:,} {s}" for s, n in values.items()) if len(values) > 1 else \
            fmt.count(next(iter(values.values())))
        deltas = [values[s] - int(first.loc[s, field]) for s in values if s in first.index]
        col.metric(label, text, border=True, delta=f"{deltas[0]:+,} in {window.label}" if len(deltas) == 1 else None,
                   help="newest user-count sample" + (f" ({fmt.ago(max(u.ts or 0.0 for u in latest.values()), at)})"))
    lines: list[Threshold] = []
    if len(series):
        top = float(series["total"].max())
        above = [t for t in forecasting.TRIGGERS if t.users > top][:1]
        lines = [Threshold(float(t.users), f"{t.users:,} users → Phase {t.phase}", "trigger")
                 for t in forecasting.TRIGGERS if t.users <= top] + \
                [Threshold(float(t.users), f"next: {t.users:,} users → Phase {t.phase}", "warning") for t in above]
    long = series.melt(id_vars=["ts", "source"], value_vars=["total", "with_lastfm", "active"], var_name="users",
                       value_name="count")
    long["series"] = series_label(long.assign(users=long["users"].str.replace("_", " ")), ["users"])
    long.attrs = series.attrs
    long = coarsen(long, ["series", "users", "source"], {"count": "max"})
    if series.empty:
        # User counts are sampled hourly or slower: a 1-hour window can hold none.
        st.caption("Users over time: no user-count sample in this range; the cards above show the newest.")
    else:
        ahead = _users_ahead(window, at, sorted(set(series["source"])))
        st.altair_chart(time_chart(long, "count", title="Users over time, with the plan's scaling triggers",
                                   y_title="users", series="series", thresholds=lines, height=320, forecast=ahead),
                        width="stretch")
    if readiness is not None and readiness.users_trend:
        st.caption(f"Trend: {readiness.users_trend}.")


def _users_ahead(window: Window, at: float, sources: list[str]) -> pd.DataFrame:
    """Each source's total-users trend a third of the range ahead, with its band (none without a trend)."""
    until = window.until + window.seconds / 3
    parts = [forecasting.projection(forecasting.users_forecast(svc, at, s), until=until,
                                    label=f"total trend · {s}" if len(sources) > 1 else "total trend")
             for s in sources]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _phase_header(readiness: Readiness, label: str) -> None:
    required = readiness.required_phase
    titles = {p.phase: p.title for p in readiness.phases}
    nxt = readiness.next_trigger
    c = st.columns(3)
    users = f"{readiness.users:,} users" if readiness.users is not None else "no user count"
    c[0].metric(f"{label}Phase required now", f"Phase {required}" if required else "none yet", border=True,
                delta=f"{titles[required]} ({users})" if required else f"below the first trigger, 50 ({users})",
                delta_color="off", delta_arrow="off")
    if nxt is None:
        c[1].metric(f"{label}Next trigger", "all passed", border=True)
    else:
        when = fmt.timestamp(nxt.date, with_time=False) if nxt.date else "not at this trend"
        band = (f"between {fmt.timestamp(nxt.earliest, with_time=False)} and "
                f"{fmt.timestamp(nxt.latest, with_time=False) if nxt.latest else 'later'}") if nxt.date else ""
        c[1].metric(f"{label}Next trigger: {nxt.users:,} users", when, border=True, delta=nxt.action,
                    delta_color="off", delta_arrow="off",
                    help=f"forecast crossing date from the user trend; {band}" if band else None)
    target = readiness.target_phase
    later = readiness.required_phase_forecast
    ahead = (f"Phase {later} needed within {readiness.forecast_days} days" if later > required
             else f"no further phase needed within {readiness.forecast_days} days")
    c[2].metric(f"{label}Phases 1–{target} ready" if target > 1 else f"{label}Phase 1 ready",
                f"{readiness.readiness_pct:.0f}%", border=True, delta=ahead, delta_color="off", delta_arrow="off",
                help="share of the items of phases 1..required that are ready (at risk counts half); "
                     "each phase's own share is in its section below")
    for warning in readiness.warnings:
        st.warning(fmt.plain(warning), icon=":material/warning:")


def _when(r: Exhaustion) -> str:
    if r.reached:
        return "reached now"
    if r.date is not None:
        return fmt.timestamp(r.date, with_time=False)
    return "not at this trend" if r.fitted else "no trend yet"


def _share(share: float | None) -> str:
    return "< 1%" if share is not None and 0 < share < 0.005 else fmt.percent(share)


def _exhaustion(window: Window, sources: list[str]) -> None:
    """Every limit, soonest reached first: the same rows as ``readiness --json``'s "exhaustion"."""
    st.subheader("Which limit runs out first")
    rows = sorted((r for s in sources for r in forecasting.exhaustion(svc, window, s)), key=lambda r: r.order)
    if not rows:
        st.caption("No limit has data in this view.")
        return
    table = pd.DataFrame({"source": [r.source for r in rows], "limit": [r.limit for r in rows],
                          "forecast to be reached": [_when(r) for r in rows],
                          "today's share": [_share(r.share) for r in rows], "trend": [r.trend for r in rows]})
    with_rows = sorted(set(table["source"]))
    st.dataframe(table if len(with_rows) > 1 else table.drop(columns="source"), hide_index=True, width="stretch")
    named = "" if len(with_rows) > 1 else f"Source: {with_rows[0]}. "
    st.caption(named + f"Today's share — rate limits: the busiest limiter key's peak in {window.label}; cron deadline: "
               f"prewarm duration p95 in {window.label}; Last.fm per run: calls a run makes (p95) of what the "
               "Last.fm limiter allows within the deadline; database: size of its limit; AI budgets: run-rate "
               "(a day's spend × days per month) of the monthly budget. Dates: the daily trend reaching 100%.")


def _phases(readiness: Readiness, label: str) -> None:
    st.subheader(f"{label}Phase readiness")
    if readiness.too_little:
        st.info(fmt.plain(readiness.too_little) + ": items judged on limiter traffic say unknown until it does.")
    for phase in readiness.phases:
        flag = "required now" if phase.required else "required within the forecast" if phase.required_forecast \
            else f"from {phase.trigger_users:,} users"
        with st.expander(f"Phase {phase.phase} · {phase.title} — {flag} — {phase.score:.0%} ready",
                         expanded=phase.required or phase.required_forecast):
            for item in phase.items:
                st.markdown(f"{BADGES.get(item.status.value, item.status.value)} **{item.item} {item.title}** — "
                            f"{fmt.plain(item.evidence)}", help=item.rule)


def _alerts(window: Window, at: float) -> None:
    st.subheader("Alerts")
    found = data.alerts(svc, window.since, v.source)
    firing = found[found.state == "firing"]
    resolved = found[(found.state == "resolved")]
    if firing.empty:
        st.success("No alert is firing.")
    for row in firing.itertuples():
        st.error(f"**{fmt.plain(row.rule)}** on {fmt.plain(row.subject)} ({fmt.plain(row.source)}, "
                 f"{fmt.plain(row.severity)}, since {fmt.ago(row.started_at.timestamp(), at)}): "
                 f"{fmt.plain(row.message)}", icon=":material/notifications_active:")
    if len(resolved):
        st.caption(f"Resolved in {window.label}:")
        st.dataframe(resolved.assign(started_at=resolved.started_at.dt.strftime("%Y-%m-%d %H:%M"),
                                     resolved_at=resolved.resolved_at.dt.strftime("%Y-%m-%d %H:%M"))
                     [["started_at", "resolved_at", "rule", "subject", "severity", "message", "source"]],
                     hide_index=True, width="stretch")
    elif firing.empty:
        st.caption(f"No alert fired in {window.label}.")


def body(at: float, window: Window) -> None:
    if not data.latest_users(svc, v.source):
        controls.empty_state(svc, "user counts", source=v.source)
        return
    # One readiness object per source of the view: "all" shows every source, labelled, side by side.
    shown = [v.source] if v.source else [s for s in data.KNOWN_SOURCES if data.latest_users(svc, s)]
    views = {s: forecasting.readiness(svc, window, s) for s in shown}
    for source, readiness in views.items():
        if readiness is not None:
            _phase_header(readiness, f"{source}: " if len(views) > 1 else "")
    from dashboard import capacity  # the planner's "this design carries ≈ N users; then X breaks"
    capacity.overview_block(svc, at, v.source)
    # Every source with limits, not only those with user counts (limiters and the DB report without them).
    _exhaustion(window, [v.source] if v.source else data.sources(svc))
    first = next((r for r in views.values() if r is not None), None)
    _users(window, at, first)
    for source, readiness in views.items():
        if readiness is not None:
            _phases(readiness, f"{source}: " if len(views) > 1 else "")
    _alerts(window, at)


controls.run_live(svc, v, CAPTION, body)
