"""The platform half of the Costs page and the Database page's Cloudflare D1 section.

Reads through `scaling.cloudflare.usage` (the same query `report costs --include
platform` uses), so the page and the export show the same dollars.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import formatting as fmt
from dashboard.services import Services
from scaling.cloudflare.usage import d1_facts, has_cloudflare_data, platform_month
from scaling.platform_prices import DEFAULT_PLATFORM_PRICES, PlatformBill

__all__ = ["d1_section", "platform_section"]

D1_MAX_BYTES = 10 * 1000**3  # 10 GB per database on Workers Paid, cannot be raised (cloudflare.md §5)


def platform_section(svc: Services, at: float) -> None:
    """Month-to-date and projected Workers Paid bill from the collected Cloudflare usage, with its budget."""
    st.subheader("Platform (Cloudflare Workers Paid)")
    if not has_cloudflare_data(svc.engine):
        st.info("No Cloudflare usage collected yet: set CLOUDFLARE_API_TOKEN (Account Analytics Read, D1 Read) "
                "and CLOUDFLARE_ACCOUNT_ID; the cloudflare collector fills this within 5 minutes.")
        return
    month = platform_month(svc.engine, at)
    budget = svc.settings.platform_monthly_budget_usd
    c = st.columns(3)
    c[0].metric("Platform month to date", fmt.usd(month.month_to_date.total_usd), border=True)
    c[1].metric("Platform projected month end", fmt.usd(month.projected.total_usd), border=True,
                help="usage so far extrapolated linearly to the month's end; allowances applied once per month",
                delta=f"{fmt.percent(month.projected.total_usd / budget)} of budget" if budget else None,
                delta_color="inverse" if budget and month.projected.total_usd > budget else "off")
    c[2].metric("Platform monthly budget", fmt.usd(budget) if budget else "none set", border=True,
                help="HEADROOM_PLATFORM_MONTHLY_BUDGET_USD")
    st.dataframe(platform_lines(month.month_to_date, month.projected), hide_index=True, width="stretch")
    row = DEFAULT_PLATFORM_PRICES.lookup(month.month_to_date.month)
    notes = [(f"Prices: {row.version}, from {row.source.split(' ')[0]} (page updated {row.page_updated}). "
              "Billing month taken as the calendar month (UTC); Cloudflare resets allowances on the renewal day.")]
    if month.cpu_estimated:
        notes.append("CPU-ms estimated as requests x CPU p50: the account's schema has no sum.cpuTimeUs.")
    st.caption(" ".join(notes))


def platform_lines(mtd: PlatformBill, projected: PlatformBill) -> pd.DataFrame:
    """One row per bill line: used so far, included, billable and dollars, month to date and projected."""
    return pd.DataFrame([{"item": a.item, "used so far": f"{a.used:,.2f}", "included": f"{a.included:,.0f}",
                          "billable so far": f"{a.billable:,.2f}", "month to date": fmt.usd(a.cost_usd),
                          "projected": fmt.usd(p.cost_usd)} for a, p in zip(mtd.lines, projected.lines, strict=True)]
                        + [{"item": "base fee", "used so far": "", "included": "", "billable so far": "",
                            "month to date": fmt.usd(mtd.base_fee_usd), "projected": fmt.usd(projected.base_fee_usd)}])


def d1_section(svc: Services, at: float) -> None:
    """Real D1 size against the 10 GB limit and the last 24 h of rows, when Cloudflare data exists."""
    facts = d1_facts(svc.engine, at)
    if not facts:
        return
    st.subheader("Production D1 (from Cloudflare)")
    for f in facts:
        size = f.file_size_bytes or 0
        c = st.columns(4)
        c[0].metric(f"{f.name or f.database_id} size", f"{size / 1e9:,.3f} GB", border=True,
                    delta=f"{fmt.percent(size / D1_MAX_BYTES)} of 10 GB", delta_color="off")
        c[1].metric("Rows read (24 h)", fmt.count(f.rows_read_24h), border=True)
        c[2].metric("Rows written (24 h)", fmt.count(f.rows_written_24h), border=True)
        c[3].metric("Read replication", f.read_replication_mode or "unknown", border=True)
