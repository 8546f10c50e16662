"""Costs: AI spend (by provider, model or task; tokens; budgets) and the platform bill side by side,
month-to-date and projected month end; export."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import controls, data, forecasting
from dashboard import formatting as fmt
from dashboard.charts import Threshold, time_chart
from dashboard.cost_export import DEFAULT_GROUP_BY, report_command, to_csv, to_json
from dashboard.platform_costs import platform_section
from dashboard.services import services
from dashboard.summaries import month_start
from dashboard.timerange import CHART_POINTS, Window
from scaling.settings import UPSTREAMS

svc = services()
v = controls.view()
st.title("Costs")
CAPTION = "What the AI calls and the Cloudflare platform cost, against their monthly budgets"


def _budgets() -> dict[str, float]:
    out = {}
    for name in UPSTREAMS:
        budget = svc.settings.upstream(name).monthly_budget_usd
        if budget:
            out[name] = float(budget)
    return out


def _month(at: float) -> None:
    st.subheader("AI this month")
    budgets = _budgets()
    outlook = forecasting.ai_spend(svc, at, v.source)
    start = month_start(at)
    mtd = data.ai_cost(svc, start, at, ("day", "provider"), v.source) if at > start else pd.DataFrame()
    spent = float(mtd["cost_usd"].sum()) if len(mtd) else 0.0
    projected = sum(f.projected_month_usd for f in outlook.values())
    how = "month-to-date plus the fitted daily trend for the rest of the month"
    total_budget = sum(budgets.values())
    c = st.columns(4)
    c[0].metric("Month to date", fmt.usd(spent), border=True)
    c[1].metric("Projected month end", fmt.usd(projected), border=True, help=how,
                delta=f"{fmt.percent(projected / total_budget)} of budgets" if total_budget else None,
                delta_color="inverse" if total_budget and projected > total_budget else "off")
    c[2].metric("Monthly budgets", fmt.usd(total_budget) if total_budget else "none set", border=True,
                help=", ".join(f"{p} {fmt.usd(b)}" for p, b in budgets.items()) or
                "set HEADROOM_<PROVIDER>_MONTHLY_BUDGET_USD")
    over = [p for p, b in budgets.items() if outlook and p in outlook and outlook[p].projected_month_usd > b]
    c[3].metric("Providers projected over budget", ", ".join(over) or "none", border=True)
    if outlook:
        st.dataframe(pd.DataFrame([{"provider": p, "month to date": fmt.usd(f.month_to_date_usd),
                                    "projected": fmt.usd(f.projected_month_usd),
                                    "budget": fmt.usd(f.budget_usd) if f.budget_usd else "–",
                                    "projected share": fmt.percent(f.projected_month_usd / f.budget_usd)
                                    if f.budget_usd else "–"} for p, f in sorted(outlook.items())]),
                     hide_index=True, width="stretch")
    if len(mtd):
        cum = mtd.sort_values("ts").assign(cost_usd=lambda d: d.groupby("provider")["cost_usd"].cumsum())
        cum.attrs["bucket_s"] = 86400
        lines = [Threshold(b, f"{p} budget {fmt.usd(b)}", "budget") for p, b in budgets.items()
                 if p in set(cum.provider)]
        # The rest of the month: each provider's run-rate trend added day by day, with its 90% band.
        month_end = month_start(month_start(at) + 32 * 86400)
        ahead = [forecasting.spend_projection(f, at=at, until=month_end, label=f"{p} projected")
                 for p, f in sorted(outlook.items()) if p in set(cum.provider)]
        st.altair_chart(time_chart(cum, "cost_usd", title="Cumulative spend this month against each budget, "
                                                          "projected to the month's end",
                                   y_title="USD", series="provider", y_format="$,.2f", thresholds=lines,
                                   height=300, forecast=pd.concat(ahead, ignore_index=True) if ahead else None),
                        width="stretch")


def body(at: float, window: Window) -> None:
    platform_section(svc, at)
    st.subheader("AI")
    export = data.ai_cost(svc, window.since, window.until, DEFAULT_GROUP_BY, v.source)
    if export.empty or not export["calls"].sum() + export["cache_hits"].sum():
        controls.empty_state(svc, "AI usage", source=v.source)
        return
    dim = st.segmented_control("Split by", ["provider", "model", "task"], default="provider",
                               key="ai_split") or "provider"
    groups = max(1, export[dim].nunique())
    days = window.seconds / 86400
    unit = "day" if days * groups <= CHART_POINTS else "week" if days / 7 * groups <= CHART_POINTS else "month"
    per = data.ai_cost(svc, window.since, window.until, (unit, dim), v.source)
    per.attrs["bucket_s"] = 86400
    budgets = _budgets()
    daily_budget = sum(budgets.values()) * 12 / 365.25
    scale = {"day": 1, "week": 7, "month": 365.25 / 12}[unit]
    c = st.columns(4)
    c[0].metric("Spend in range", fmt.usd(export["cost_usd"].sum()), border=True)
    c[1].metric("Calls", fmt.count(export["calls"].sum()), border=True,
                delta=f"{fmt.count(export['cache_hits'].sum())} served from cache", delta_color="off",
                delta_arrow="off")
    c[2].metric("Tokens in / out", f"{export['input_tokens'].sum() / 1e6:,.1f}M / "
                                   f"{export['output_tokens'].sum() / 1e6:,.1f}M", border=True)
    c[3].metric("Web searches", fmt.count(export["web_search_calls"].sum()), border=True)
    st.altair_chart(time_chart(
        per, "cost_usd", title=f"Spend per {unit} by {dim}", y_title="USD", series=dim, mark="bar",
        stacked=True, y_format="$,.2f",
        thresholds=[Threshold(daily_budget * scale, f"budget pace {fmt.usd(daily_budget * scale)}/{unit}",
                              "budget")] if daily_budget else [], height=320), width="stretch")

    tokens = data.ai_cost(svc, window.since, window.until, (unit,), v.source)
    kinds = pd.DataFrame({
        "ts": tokens["ts"], "input (uncached)": tokens["input_tokens"] - tokens["cached_input_tokens"],
        "input (cached)": tokens["cached_input_tokens"],
        "output": tokens["output_tokens"] - tokens["reasoning_tokens"], "reasoning": tokens["reasoning_tokens"]})
    long = kinds.melt(id_vars="ts", var_name="tokens", value_name="count")
    long.attrs["bucket_s"] = 86400
    st.altair_chart(time_chart(long, "count", title=f"Tokens per {unit} (cached ⊂ input, reasoning ⊂ output)",
                               y_title="tokens", series="tokens", mark="bar", stacked=True, y_format="~s",
                               height=300), width="stretch")

    _month(at)

    st.subheader(f"By {dim}")
    table = data.ai_cost(svc, window.since, window.until, (dim,), v.source).sort_values("cost_usd",
                                                                                         ascending=False)
    st.dataframe(table.assign(cost_usd=table["cost_usd"].map(fmt.usd)), hide_index=True, width="stretch")

    st.subheader("Export")
    command = report_command(window.since, window.until, v.source)
    st.caption(f"{len(export):,} rows by day, provider, model and task, exactly what `{command}` "
               "writes (CSV, or JSON with `--format json`).")
    stem = f"ai-costs-{fmt.timestamp(window.since, with_time=False)}-to-{fmt.timestamp(window.until, with_time=False)}"
    left, right = st.columns(2)
    left.download_button("Download CSV", to_csv(export), file_name=f"{stem}.csv", mime="text/csv",
                         on_click="ignore", icon=":material/download:")
    right.download_button("Download JSON", to_json(export, since=window.since, until=window.until),
                          file_name=f"{stem}.json", mime="application/json", on_click="ignore",
                          icon=":material/download:")


controls.run_live(svc, v, CAPTION, body)
