"""The platform's bill: Cloudflare Workers Paid prices and monthly allowances, versioned and sourced.

Beside the AI price table (`scaling.prices`): one `PlatformPrices` row per date the
published prices changed. A billing month is priced with the row in force on its
first day; each line's allowance is applied once per billing month:

    line cost = max(0, used - included) / per x unit price        (per = 1M ops, 1 GB-month, ...)
    bill      = base fee + sum of line costs

Cloudflare resets monthly allowances on the subscription's renewal day; Headroom
takes the billing month to be the calendar month (UTC), which matches an account
that subscribed on the 1st and is otherwise off by the renewal offset (stated on
the Costs page). Storage usage is in GB-months accrued in the month, so a full
month at an average of 2 GB is 2 GB-months, and usage so far scales linearly to a
month-end projection like every counter.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, fields
from decimal import Decimal

from scaling.errors import ConfigurationError

__all__ = ["DEFAULT_PLATFORM_PRICES", "Allowance", "PlatformBill", "PlatformLine", "PlatformPriceTable",
           "PlatformPrices", "PlatformUsage", "PriceTable", "month_elapsed_fraction", "month_start",
           "month_to_date_bill", "platform_bill", "projected_month_end_bill", "projected_month_end_usage"]

_M = Decimal(1_000_000)


@dataclass(frozen=True)
class PlatformUsage:
    """Usage in ONE billing month (or the part of it so far).

    Attributes:
        requests: Worker invocations billed as requests (fetch, cron, queue).
        cpu_ms: CPU milliseconds across those invocations.
        kv_reads, kv_writes, kv_deletes, kv_lists: KV operations (keys, for bulk calls).
        kv_stored_gb: KV storage in GB-months accrued (a full month's average GB).
        d1_rows_read, d1_rows_written: D1 rows scanned / written, the billing basis.
        d1_storage_gb: D1 storage (all databases) in GB-months accrued.
        queue_ops: Queues operations (64 KB each written, read or deleted).
    """

    requests: float = 0
    cpu_ms: float = 0
    kv_reads: float = 0
    kv_writes: float = 0
    kv_deletes: float = 0
    kv_lists: float = 0
    kv_stored_gb: float = 0
    d1_rows_read: float = 0
    d1_rows_written: float = 0
    d1_storage_gb: float = 0
    queue_ops: float = 0

    def scaled(self, factor: float) -> PlatformUsage:
        """Every field times ``factor`` (a partial month extrapolated to a whole one)."""
        return PlatformUsage(**{f.name: getattr(self, f.name) * factor for f in fields(self)})

    def __add__(self, other: PlatformUsage) -> PlatformUsage:
        return PlatformUsage(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})


@dataclass(frozen=True)
class PlatformLine:
    """One priced item of a month's bill (amounts in the item's unit, e.g. requests or GB-months)."""

    item: str
    used: float
    included: float
    billable: float
    unit_price_usd: float
    cost_usd: float


@dataclass(frozen=True)
class PlatformBill:
    """A billing month's platform cost: the base fee plus each item's overage.

    ``total_usd`` is unrounded (the invoice rounds to the cent); ``lines`` keep the
    table's order. ``version`` names the price row used.
    """

    month: dt.date
    lines: tuple[PlatformLine, ...]
    base_fee_usd: float
    total_usd: float
    version: str = ""

    def line(self, item: str) -> PlatformLine:
        """The line for ``item`` (KeyError if the table has no such item)."""
        for line in self.lines:
            if line.item == item:
                return line
        raise KeyError(item)


@dataclass(frozen=True)
class Allowance:
    """One usage item: what is included each month and the price beyond it.

    Attributes:
        item: the bill line's name ("workers_requests").
        usage_field: the `PlatformUsage` field it reads.
        included: free units per billing month.
        unit_price_usd: dollars per ``per`` units beyond ``included``.
        per: how many units the price is for (1,000,000 requests; 1 GB-month).
        label: what the Costs page shows.
    """

    item: str
    usage_field: str
    included: Decimal
    unit_price_usd: Decimal
    per: Decimal
    label: str


@dataclass(frozen=True)
class PlatformPrices:
    """The plan's prices from one date on, with where they were read and when the page last changed."""

    plan: str
    effective_from: dt.date
    base_fee_usd: Decimal
    allowances: tuple[Allowance, ...]
    source: str
    page_updated: dt.date
    retrieved: dt.date

    @property
    def version(self) -> str:
        """What a bill records: ``plan@YYYY-MM-DD`` (effective date)."""
        return f"{self.plan}@{self.effective_from.isoformat()}"


class PlatformPriceTable:
    """Every dated price row; `lookup` picks the one in force for a billing month.

    Raises:
        ConfigurationError: no rows, or two rows from the same date.
    """

    def __init__(self, rows: Iterable[PlatformPrices]) -> None:
        self._rows = sorted(rows, key=lambda r: r.effective_from)
        if not self._rows:
            raise ConfigurationError("platform price table is empty", variable="platform prices")
        dates = [r.effective_from for r in self._rows]
        if len(set(dates)) != len(dates):
            raise ConfigurationError("two platform price rows from the same date", variable="platform prices")

    @property
    def rows(self) -> tuple[PlatformPrices, ...]:
        return tuple(self._rows)

    def lookup(self, month: dt.date) -> PlatformPrices:
        """The row in force on the first day of ``month``'s billing month (the earliest row before any)."""
        first = month_start(month)
        current = self._rows[0]
        for row in self._rows:
            if row.effective_from <= first:
                current = row
        return current


#: The name the planner's API uses for the table type.
PriceTable = PlatformPriceTable


def _a(item: str, usage_field: str, included: str, price: str, per: str, label: str) -> Allowance:
    return Allowance(item, usage_field, Decimal(included), Decimal(price), Decimal(per), label)


_PRICING_URL = "https://developers.cloudflare.com/workers/platform/pricing/"

#: Workers Paid (Standard usage model) as the pricing page showed it, reference/cloudflare.md §4.
WORKERS_PAID_2024_03 = PlatformPrices(
    plan="cloudflare-workers-paid",
    # The Standard usage model's start ("the migration to Standard pricing on March 1, 2024", same page).
    effective_from=dt.date(2024, 3, 1),
    base_fee_usd=Decimal("5.00"),
    allowances=(
        _a("workers_requests", "requests", "10000000", "0.30", "1000000", "Workers requests"),
        _a("workers_cpu_ms", "cpu_ms", "30000000", "0.02", "1000000", "Workers CPU time (ms)"),
        _a("kv_reads", "kv_reads", "10000000", "0.50", "1000000", "KV reads"),
        _a("kv_writes", "kv_writes", "1000000", "5.00", "1000000", "KV writes"),
        _a("kv_deletes", "kv_deletes", "1000000", "5.00", "1000000", "KV deletes"),
        _a("kv_lists", "kv_lists", "1000000", "5.00", "1000000", "KV lists"),
        _a("kv_storage_gb_month", "kv_stored_gb", "1", "0.50", "1", "KV storage (GB-month)"),
        _a("d1_rows_read", "d1_rows_read", "25000000000", "0.001", "1000000", "D1 rows read"),
        _a("d1_rows_written", "d1_rows_written", "50000000", "1.00", "1000000", "D1 rows written"),
        _a("d1_storage_gb_month", "d1_storage_gb", "5", "0.75", "1", "D1 storage (GB-month)"),
        _a("queues_operations", "queue_ops", "1000000", "0.40", "1000000", "Queues operations"),
    ),
    source=_PRICING_URL + " (Workers, KV, D1 and Queues sections; reference/cloudflare.md §4)",
    page_updated=dt.date(2026, 7, 7),
    retrieved=dt.date(2026, 12, 5),
)

DEFAULT_PLATFORM_PRICES = PlatformPriceTable([WORKERS_PAID_2024_03])


def month_start(day: dt.date) -> dt.date:
    """The first day of ``day``'s calendar month."""
    return day.replace(day=1)


def platform_bill(usage: PlatformUsage, *, month: dt.date, table: PlatformPriceTable | None = None) -> PlatformBill:
    """Price one billing month's usage: base fee plus each item's usage beyond its allowance.

    Args:
        usage: the month's usage (or the part so far: allowances still apply once).
        month: any day of the billing month.
        table: prices; the published Workers Paid table by default.
    """
    prices = (table or DEFAULT_PLATFORM_PRICES).lookup(month)
    lines: list[PlatformLine] = []
    total = prices.base_fee_usd
    for a in prices.allowances:
        used = Decimal(repr(float(getattr(usage, a.usage_field))))
        if used < 0:
            raise ValueError(f"{a.usage_field} must not be negative, got {used}")
        billable = max(Decimal(0), used - a.included)
        cost = billable / a.per * a.unit_price_usd
        total += cost
        lines.append(PlatformLine(a.item, float(used), float(a.included), float(billable),
                                  float(a.unit_price_usd / a.per), float(cost)))
    return PlatformBill(month_start(month), tuple(lines), float(prices.base_fee_usd), float(total), prices.version)


def month_elapsed_fraction(now: dt.datetime) -> float:
    """How much of ``now``'s calendar month (UTC) has passed, in (0, 1]."""
    now = now.astimezone(dt.UTC)
    days = calendar.monthrange(now.year, now.month)[1]
    start = dt.datetime(now.year, now.month, 1, tzinfo=dt.UTC)
    fraction = (now - start).total_seconds() / (days * 86400)
    # A month-end projection from the month's first seconds would multiply noise by ~10^6.
    return min(1.0, max(fraction, 1 / (days * 24)))


def month_to_date_bill(usage_so_far: PlatformUsage, *, now: dt.datetime,
                       table: PlatformPriceTable | None = None) -> PlatformBill:
    """The bill if the month ended at ``now``: usage so far against the whole month's allowances."""
    return platform_bill(usage_so_far, month=now.astimezone(dt.UTC).date(), table=table)


def projected_month_end_usage(usage_so_far: PlatformUsage, *, now: dt.datetime) -> PlatformUsage:
    """Usage so far extrapolated linearly to the end of ``now``'s month."""
    return usage_so_far.scaled(1 / month_elapsed_fraction(now))


def projected_month_end_bill(usage_so_far: PlatformUsage, *, now: dt.datetime,
                             table: PlatformPriceTable | None = None) -> PlatformBill:
    """The month-end bill at the pace so far (linear; allowances applied once to the whole month)."""
    return platform_bill(projected_month_end_usage(usage_so_far, now=now),
                         month=now.astimezone(dt.UTC).date(), table=table)
