"""Rate limits: headroom per upstream over time, against the 80% warning and the limit."""

from __future__ import annotations

import re

import pandas as pd
import streamlit as st

from dashboard import controls, data
from dashboard import formatting as fmt
from dashboard.charts import Marker, Threshold, series_label, time_chart
from dashboard.services import services
from dashboard.summaries import headroom_table
from dashboard.timerange import Window, coarsen
from scaling.settings import UPSTREAMS

WARNING_SHARE = 0.8  # the plan's [RATE_LIMIT_WARNING] at 80% of capacity (SCALING_PLAN.md 2.3)

svc = services()
v = controls.view()
st.title("Rate limits")
CAPTION = "Share of each upstream's limit in use, 429s, cooldowns and throttled waits"


def _limit_text(upstream: str, keys: list[str]) -> str:
    """The configured limit(s) behind 100%, e.g. "limit 120/60s" or "limit requests 60/60s, tokens 90,000/60s"."""
    try:
        spec = svc.settings.upstream(upstream)
    except KeyError:
        return "limit"
    rates = {k: (spec.tokens if k == "tokens" and spec.tokens else spec.requests) for k in keys or [""]}
    if len(set(rates.values())) == 1:
        rate = next(iter(rates.values()))
        return f"limit {rate.limit:,}/{rate.window:g}s"
    return "limit " + ", ".join(f"{k} {r.limit:,}/{r.window:g}s" for k, r in rates.items())


def _key_label(upstream: str, key: str) -> str:
    """A limiter key a reader can place: "default" is the upstream itself; a hashed client id is "app 309bbf"."""
    if key in ("", "default"):
        return upstream
    if re.fullmatch(r"[0-9a-f]{8,}", key):
        return f"{upstream} app {key[:6]}"
    return key


def body(at: float, window: Window) -> None:
    series = data.headroom(svc, window, v.source, series_per_chart=2 * data.source_count(svc, v.source))
    latest = data.latest_headroom(svc, at, v.source)
    if series.empty:
        controls.empty_state(svc, "limiter headroom samples", source=v.source)
        return
    table = headroom_table(series, latest)
    # The headline figures come from the same query the readiness items and the CLI read.
    totals = data.read(svc, "limiter_totals", window.since, window.until, source=v.source)
    upstreams = [u for u in (*UPSTREAMS, *sorted(set(series.upstream) - set(UPSTREAMS)))
                 if u in set(series.upstream)]
    cols = st.columns(len(upstreams))
    for col, upstream in zip(cols, upstreams):
        rows = table[table.upstream == upstream]
        now_share = rows["now"].max()
        col.metric(fmt.plain(upstream), fmt.percent(now_share) if pd.notna(now_share) else "no sample in 15 min",
                   help="busiest limiter key now (share of its limit)", border=True)
        mine = totals[totals.upstream == upstream]
        col.caption("; ".join(
            f"{source + ': ' if v.source is None else ''}peak {fmt.percent(g['util_max'].max())} · "
            f"{fmt.count(g['upstream_429'].sum())} × 429 · {fmt.count(g['throttled'].sum())} throttled"
            for source, g in mine.groupby("source")))

    st.subheader("Headroom over time")
    grid = st.columns(2)
    for i, upstream in enumerate(upstreams):
        part = series[series.upstream == upstream].copy()
        part["series"] = series_label(part.assign(limiter_key=part["limiter_key"].map(
            lambda k, up=upstream: _key_label(up, str(k)))), ["limiter_key"], empty=upstream)
        part = coarsen(part, ["series", "upstream", "limiter_key", "source"],
                       {"util_max": "max", "upstream_429": "sum", "cooldown_share": ("wmean", "samples"),
                        "throttled": "sum", "samples": "sum"})
        limit = _limit_text(upstream, sorted(set(part.limiter_key)))
        chart = time_chart(
            part, "util_max", title=f"{upstream}: peak share of limit per bucket", y_title="share of limit",
            series="series", y_format=".0%", floor=1.0,
            thresholds=[Threshold(WARNING_SHARE, "80% warning", "warning"), Threshold(1.0, limit, "limit")],
            markers=[Marker("upstream_429", "upstream 429s")], band="cooldown_share", band_label="in cooldown",
            tooltip=["throttled:Q"], height=290)
        grid[i % 2].altair_chart(chart, width="stretch")

    st.subheader("Throttled waits")
    waits = series.groupby(["ts", "upstream"], as_index=False)[["wait_seconds", "throttled"]].sum()
    waits.attrs = series.attrs
    waits = coarsen(waits, ["upstream"], {"wait_seconds": "sum", "throttled": "sum"})
    st.altair_chart(time_chart(waits, "wait_seconds", title="Seconds callers waited for a limiter slot",
                               y_title="seconds waited", series="upstream", mark="bar", stacked=True,
                               y_format=",.0f", tooltip=["throttled:Q"], height=260), width="stretch")

    st.subheader("Per limiter")
    shown = table.assign(
        limit=table["limit"].map(fmt.count), now=table["now"].map(fmt.percent),
        peak=table["peak"].map(fmt.percent), wait_seconds=table["wait_seconds"].map(fmt.duration),
        cooldown_s=table["cooldown_s"].map(lambda s: fmt.duration(s) if s else "–"))
    st.dataframe(shown.rename(columns={"limiter_key": "key", "upstream_429": "429s", "wait_seconds": "waited",
                                       "cooldown_s": "in cooldown"}), hide_index=True, width="stretch")


controls.run_live(svc, v, CAPTION, body)
