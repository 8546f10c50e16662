"""The platform half of ``report costs --include platform``: each billing month's Workers Paid bill.

Rows come from `scaling.cloudflare.usage` and `scaling.platform_prices`, the same
query and prices as the Costs page: a past month is ``billed``; the current month
is ``month_to_date`` (usage so far against the whole month's allowances) and
``projected`` (the pace so far to month end), exactly the page's two figures.
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Any

from sqlalchemy import Engine

from scaling.cloudflare.usage import platform_usage
from scaling.platform_prices import PlatformBill, platform_bill, projected_month_end_bill

__all__ = ["PLATFORM_COLUMNS", "platform_rows", "platform_totals"]

PLATFORM_COLUMNS = ("month", "kind", "item", "used", "included", "billable", "unit_price_usd", "cost_usd")


def _months(since: dt.datetime, until: dt.datetime) -> list[dt.datetime]:
    out = []
    m = dt.datetime(since.year, since.month, 1, tzinfo=dt.UTC)
    while m < until:
        out.append(m)
        m = dt.datetime(m.year + m.month // 12, m.month % 12 + 1, 1, tzinfo=dt.UTC)
    return out


def _lines(month: dt.datetime, kind: str, bill: PlatformBill) -> list[dict[str, Any]]:
    label = f"{month:%Y-%m}"
    rows = [{"month": label, "kind": kind, "item": line.item, "used": round(line.used, 6),
             "included": round(line.included, 6), "billable": round(line.billable, 6),
             "unit_price_usd": line.unit_price_usd, "cost_usd": round(line.cost_usd, 6)} for line in bill.lines]
    rows.append({"month": label, "kind": kind, "item": "base_fee", "used": None, "included": None, "billable": None,
                 "unit_price_usd": None, "cost_usd": round(bill.base_fee_usd, 6)})
    return rows


def platform_rows(engine: Engine, since: dt.datetime, until: dt.datetime, *, now: float) -> list[dict[str, Any]]:
    """Bill lines for every calendar month overlapping [since, until)."""
    rows: list[dict[str, Any]] = []
    at = dt.datetime.fromtimestamp(now, dt.UTC)
    for month in _months(since, until):
        days = calendar.monthrange(month.year, month.month)[1]
        end = month + dt.timedelta(days=days)
        lo, hi = max(since, month).timestamp(), min(until, end, at if month <= at < end else end).timestamp()
        usage, _ = platform_usage(engine, lo, hi, month_days=days)
        if month <= at < end:
            rows += _lines(month, "month_to_date", platform_bill(usage, month=month.date()))
            rows += _lines(month, "projected", projected_month_end_bill(usage, now=at))
        else:
            rows += _lines(month, "billed", platform_bill(usage, month=month.date()))
    return rows


def platform_totals(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Dollars per (month, kind): ``{"2026-12 month_to_date": 5.0, ...}``."""
    out: dict[str, float] = {}
    for r in rows:
        key = f"{r['month']} {r['kind']}"
        out[key] = round(out.get(key, 0.0) + float(r["cost_usd"]), 6)
    return out
