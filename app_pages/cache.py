"""Cache: hit rate and size per key family, and evictions."""

from __future__ import annotations

import streamlit as st

from dashboard import controls, data
from dashboard import formatting as fmt
from dashboard.charts import Threshold, bar_chart, series_label, time_chart
from dashboard.services import services
from dashboard.timerange import Window, coarsen

svc = services()
v = controls.view()
st.title("Cache")
CAPTION = "Hit rate, size and evictions per key family"


def body(at: float, window: Window) -> None:
    n_sources = data.source_count(svc, v.source)
    series = data.cache(svc, window, v.source, series=10 * n_sources)
    if series.empty:
        controls.empty_state(svc, "cache statistics", source=v.source)
        return
    summary = data.cache_summary(svc, window, v.source)
    hits, misses = summary["hits"].sum(), summary["misses"].sum()
    overall = hits / (hits + misses) if hits + misses else None
    c = st.columns(4)
    c[0].metric("Hit rate", fmt.percent(overall, 1), border=True,
                delta=f"{fmt.count(hits + misses)} lookups", delta_color="off", delta_arrow="off")
    c[1].metric("Size (sum of family peaks)", fmt.bytes_(summary["bytes_max"].sum()), border=True)
    c[2].metric("Keys (sum of family peaks)", fmt.count(summary["keys_max"].sum()), border=True)
    c[3].metric("Evictions", fmt.count(summary["evictions"].sum()), border=True)

    # Families with no lookups and nothing stored in this range are noise (29 of them on a quiet day).
    used = summary[(summary["hits"] + summary["misses"] > 0) | (summary["bytes_max"].fillna(0) > 0)]
    series = series[series["family"].isin(set(used["family"]))]
    if len(used) < len(summary):
        st.caption(f"{len(summary) - len(used)} key families with no lookups in this range are hidden.")
    summary = used
    series["series"] = series_label(series, ["family"])
    shown = coarsen(series, ["series", "family", "source"],
                    {"hits": "sum", "misses": "sum", "evictions": "sum", "bytes_max": "max", "keys_max": "max"})
    looked = (shown["hits"] + shown["misses"]).astype("float64")
    shown["hit_ratio"] = shown["hits"] / looked.where(looked > 0)
    rated = shown.dropna(subset=["hit_ratio"])
    if rated.empty:
        st.caption("Hit rate: no cache lookups in this range.")
    else:
        st.altair_chart(time_chart(
            rated, "hit_ratio", title="Hit rate per bucket", y_title="hit rate", series="series", y_format=".0%",
            floor=1.0, thresholds=[Threshold(overall, f"overall {fmt.percent(overall)}", "target")] if overall else [],
            height=340), width="stretch")
    left, right = st.columns(2)
    if shown["bytes_max"].fillna(0).sum() > 0:
        # An area needs two buckets to have a surface; a first sample draws as bars.
        left.altair_chart(time_chart(shown, "bytes_max", title="Size per family (peak per bucket)",
                                     y_title="bytes", series="series", stacked=True, y_format="~s", height=320,
                                     legend_columns=2,  # half width: four columns cut the labels
                                     mark="area" if shown["ts"].nunique() > 1 else "bar"), width="stretch")
    else:
        left.caption("Size: no cache entry held in this range.")
    per = series.groupby(["ts", "source"], as_index=False)["evictions"].sum()
    per["series"] = series_label(per, [], empty="all families")
    per.attrs = series.attrs
    if per["evictions"].sum() > 0:
        right.altair_chart(time_chart(per, "evictions", title="Evictions per bucket", y_title="evictions",
                                      series="series", mark="bar", height=320), width="stretch")
    else:
        right.caption("Evictions: none in this range.")

    table = summary.assign(label=series_label(summary, ["family"])).dropna(subset=["hit_ratio"])
    if len(table):
        st.altair_chart(bar_chart(table, "label", "hit_ratio", title="Hit rate per family over the range",
                                  value_title="hit rate", value_format=".0%"), width="stretch")
    st.dataframe(summary.assign(hit_ratio=summary["hit_ratio"].map(lambda r: fmt.percent(r, 1)),
                                bytes_max=summary["bytes_max"].map(fmt.bytes_),
                                oldest_age_max=summary["oldest_age_max"].map(fmt.duration)),
                 hide_index=True, width="stretch")


controls.run_live(svc, v, CAPTION, body)
