"""Database: rows per table and bytes against the 10 GB D1 limit, cleanup deletions, time to the limit."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import controls, data, forecasting
from dashboard import formatting as fmt
from dashboard.charts import Threshold, bar_chart, series_label, time_chart
from dashboard.platform_costs import d1_section
from dashboard.run_reports import cleanup_frame
from dashboard.services import services
from dashboard.timerange import Window, bucket_for, coarsen

WARNING_SHARE = 0.8
MB = 1024**2

svc = services()
v = controls.view()
limit = svc.settings.db_limit_bytes
st.title("Database")
CAPTION = f"App DB size against the {fmt.bytes_(limit)} D1 limit, and what cleanup removes"


def _deleted(window: Window, at: float) -> None:
    st.subheader("Rows deleted by cleanup")
    recent = data.runs(svc, "cleanup", v.source)
    since = pd.Timestamp(window.since, unit="s", tz="UTC")
    recent = recent[recent.scheduled_at >= since]
    frame = cleanup_frame(recent.assign(scheduled_at=recent.scheduled_at.map(lambda t: t.timestamp())))
    if frame.empty:
        st.caption("No cleanup run in this range reported deletions.")
        return
    last = recent.iloc[0]
    last_rows = frame[frame.ts == last.scheduled_at.timestamp()]["deleted"].sum()
    ended = last.finished_at if pd.notna(last.finished_at) else last.started_at
    st.caption(f"Last cleanup finished {fmt.ago(ended.timestamp(), at)} ({last.outcome}), "
               f"{fmt.count(last_rows)} rows deleted; {fmt.count(frame['deleted'].sum())} in this range.")
    # Cleanup runs hourly: narrower buckets would be mostly empty.
    width = max(bucket_for(window, len(frame[["table_name", "source"]].drop_duplicates()), budget=400), 3600)
    frame["ts"] = pd.to_datetime((frame["ts"] // width) * width, unit="s", utc=True)
    per = frame.groupby(["ts", "table_name", "source"], as_index=False)["deleted"].sum()
    per["series"] = series_label(per, ["table_name"])
    per.attrs["bucket_s"] = width
    per.attrs["window"] = (window.since, window.until)
    st.altair_chart(time_chart(per, "deleted", title="Rows deleted per bucket, by table", y_title="rows",
                               series="series", mark="bar", stacked=True, height=290), width="stretch")


def _size_ahead(window: Window, at: float, sources: list[str]) -> pd.DataFrame:
    """Each source's size trend (MB) a third of the range ahead, with its band (none without a trend)."""
    until = window.until + window.seconds / 3
    parts = [forecasting.projection(forecasting.db_bytes_forecast(svc, at, s), until=until, scale=1 / MB,
                                    label=f"size trend · {s}" if len(sources) > 1 else "size trend")
             for s in sources]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def body(at: float, window: Window) -> None:
    d1_section(svc, at)
    latest = data.latest_db(svc, v.source)
    if latest.empty:
        controls.empty_state(svc, "database statistics", source=v.source)
        return
    whole = latest[latest.table_name == "*"]
    tables = latest[latest.table_name != "*"]
    size = whole["bytes"].max() if len(whole) else tables["bytes"].sum()
    rows = whole["rows"].max() if len(whole) else tables["rows"].sum()
    crossing = forecasting.db_limit_crossing(svc, at, v.source)
    c = st.columns(4)
    c[0].metric("Database size", fmt.bytes_(size), border=True,
                delta=f"{fmt.percent(size / limit, 2)} of {fmt.bytes_(limit)}", delta_color="off", delta_arrow="off")
    c[1].metric("Rows", fmt.count(rows), border=True)
    biggest = tables.sort_values("bytes", ascending=False).head(1)
    c[2].metric(f"Largest: {biggest['table_name'].iloc[0]}" if len(biggest) else "Largest table",
                fmt.bytes_(biggest["bytes"].iloc[0]) if len(biggest) else "–", border=True,
                delta=f"{fmt.count(biggest['rows'].iloc[0])} rows" if len(biggest) else None, delta_color="off",
                delta_arrow="off")
    c[3].metric("Reaches the limit", crossing.headline, border=True, help=crossing.detail)

    growth = data.db_growth(svc, window, v.source, series=8 * data.source_count(svc, v.source))
    whole_growth = growth[growth.table_name == "*"].copy()
    whole_growth["series"] = series_label(whole_growth, [], empty="whole database")
    whole_growth["mb"] = whole_growth["bytes"] / MB
    left, right = st.columns(2)
    # On a 0–10 GB axis a 40 MB database is a flat line at zero: the axis follows the data, and the
    # limit is drawn only once the data comes within reach of its warning; otherwise the title names it.
    near = size >= limit * WARNING_SHARE / 2
    if whole_growth.empty:
        # Hourly samples (demo, a gauge thinned to hourly) can miss a 1-hour window: say so rather
        # than draw an empty frame.
        left.caption("Database size: no sample in this range; the cards above show the newest.")
    else:
        warn = limit * WARNING_SHARE
        left.altair_chart(time_chart(
            whole_growth, "mb",
            title=f"Database size ({fmt.percent(size / limit, 2)} of the {fmt.bytes_(limit)} limit)",
            y_title="MB", series="series", y_format=",.1f", height=320, legend_columns=3,
            thresholds=[Threshold(warn / MB, f"{fmt.bytes_(warn)} warning", "warning"),
                        Threshold(limit / MB, f"{fmt.bytes_(limit)} limit", "limit")] if near else [],
            forecast=_size_ahead(window, at, sorted(set(whole_growth["source"])))), width="stretch")
    per_table = growth[growth.table_name != "*"].copy()
    if per_table.empty:
        right.caption("Rows per table: no sample in this range.")
    else:
        per_table["series"] = series_label(per_table, ["table_name"])
        per_table = coarsen(per_table, ["series", "table_name", "source"], {"rows": "max", "bytes": "max"})
        right.altair_chart(time_chart(per_table, "rows", title="Rows per table", y_title="rows", series="series",
                                      y_format="~s", height=320, legend_columns=3), width="stretch")
    if crossing.note:
        st.caption(crossing.note)

    share = tables.assign(label=series_label(tables, ["table_name"]))
    share["mb"] = share["bytes"] / 1024**2
    st.altair_chart(bar_chart(share, "label", "mb", title="Size per table now", value_title="MB",
                              value_format=",.1f"), width="stretch")
    _deleted(window, at)
    st.subheader("Tables now")
    shown = latest.assign(bytes=latest["bytes"].map(fmt.bytes_), rows=latest["rows"].map(fmt.count),
                          share_of_limit=latest["share_of_limit"].map(lambda s: fmt.percent(s, 3)),
                          ts=latest["ts"].dt.strftime("%Y-%m-%d %H:%M"))
    st.dataframe(shown, hide_index=True, width="stretch")


controls.run_live(svc, v, CAPTION, body)
