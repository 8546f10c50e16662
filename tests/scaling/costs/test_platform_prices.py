"""The platform bill: Cloudflare's own worked examples and a hand-computed month, to the cent."""

from __future__ import annotations

import datetime as dt

import pytest

from scaling.platform_prices import (
    DEFAULT_PLATFORM_PRICES,
    PlatformUsage,
    month_to_date_bill,
    platform_bill,
    projected_month_end_bill,
)

MONTH = dt.date(2026, 11, 1)


def _cents(x: float) -> float:
    return round(x + 1e-9, 2)


@pytest.mark.parametrize(("requests", "cpu_ms_per_request", "lines", "total"), [
    (15_000_000, 7, (1.50, 1.50), 8.00),
    (3_000_000, 7, (0.00, 0.00), 5.00),
    (720, 180_000, (0.00, 1.99), 6.99),
    (100_000_000, 7, (27.00, 13.40), 45.40),
])
def test_pricing_page_examples(requests: int, cpu_ms_per_request: int, lines: tuple[float, float],
                               total: float) -> None:
    """The Workers pricing page's Examples 1-4 come out to its cents.

    Inputs, as the page states them: (1) 15M requests/month at 7 ms CPU average -> $5 + $1.50 + $1.50
    = $8.00; (2) 15M requests of which 12M are static assets (free, so 3M billed) at 7 ms -> $5.00;
    (3) an hourly cron, 720 requests at 180,000 ms CPU each -> $5 + $0 + $1.99 = $6.99;
    (4) 100M requests at 7 ms -> $5 + $27.00 + $13.40 = $45.40.
    """
    bill = platform_bill(PlatformUsage(requests=requests, cpu_ms=requests * cpu_ms_per_request), month=MONTH)
    assert (_cents(bill.line("workers_requests").cost_usd), _cents(bill.line("workers_cpu_ms").cost_usd)) == lines
    assert _cents(bill.total_usd) == total
    assert bill.base_fee_usd == 5.0


def test_month_under_every_allowance_costs_the_base_fee() -> None:
    """A month just under every allowance bills $5.00 and nothing else."""
    usage = PlatformUsage(requests=9_999_999, cpu_ms=29_999_999, kv_reads=9_999_999, kv_writes=999_999,
                          kv_deletes=999_999, kv_lists=999_999, kv_stored_gb=0.99, d1_rows_read=24_999_999_999,
                          d1_rows_written=49_999_999, d1_storage_gb=4.99, queue_ops=999_999)
    bill = platform_bill(usage, month=MONTH)
    assert all(line.cost_usd == 0 and line.billable == 0 for line in bill.lines)
    assert _cents(bill.total_usd) == 5.00


def test_hand_computed_month_over_every_allowance() -> None:
    """Every item over its allowance: each line and the total match a hand computation."""
    usage = PlatformUsage(requests=20_000_000, cpu_ms=50_000_000, kv_reads=12_000_000, kv_writes=1_500_000,
                          kv_deletes=1_200_000, kv_lists=3_000_000, kv_stored_gb=3, d1_rows_read=30_000_000_000,
                          d1_rows_written=60_000_000, d1_storage_gb=7.6, queue_ops=2_500_000)
    bill = platform_bill(usage, month=MONTH)
    expected = {  # (used - included) / per x price, by hand
        "workers_requests": 3.00,      # 10M x $0.30/M
        "workers_cpu_ms": 0.40,        # 20M ms x $0.02/M
        "kv_reads": 1.00,              # 2M x $0.50/M
        "kv_writes": 2.50,             # 0.5M x $5/M
        "kv_deletes": 1.00,            # 0.2M x $5/M
        "kv_lists": 10.00,             # 2M x $5/M
        "kv_storage_gb_month": 1.00,   # 2 GB-month x $0.50
        "d1_rows_read": 5.00,          # 5,000M rows x $0.001/M
        "d1_rows_written": 10.00,      # 10M rows x $1/M
        "d1_storage_gb_month": 1.95,   # 2.6 GB-month x $0.75
        "queues_operations": 0.60,     # 1.5M x $0.40/M
    }
    assert {line.item: _cents(line.cost_usd) for line in bill.lines} == expected
    assert _cents(bill.total_usd) == 41.45  # $5 base + $36.45


def test_mixed_month_to_the_cent() -> None:
    """A month over some allowances and under others bills only the overages (hand computed: $25.68)."""
    usage = PlatformUsage(requests=12_345_678, cpu_ms=20_000_000, kv_reads=9_000_000, kv_writes=1_500_000,
                          kv_deletes=200_000, kv_lists=3_000_000, kv_stored_gb=0.5, d1_rows_read=30_000_000_000,
                          d1_rows_written=40_000_000, d1_storage_gb=7.5, queue_ops=2_500_000)
    bill = platform_bill(usage, month=MONTH)
    # 5 + 2.345678 x 0.30 (0.7037) + 2.50 + 10.00 + 5.00 + 2.5 x 0.75 (1.875) + 0.60 = 25.6787
    assert _cents(bill.total_usd) == 25.68
    assert bill.line("workers_cpu_ms").billable == 0
    assert bill.line("workers_requests").billable == 2_345_678


def test_projection_doubles_a_half_month_and_applies_allowances_once() -> None:
    """Halfway through a 30-day month, 8M requests project to 16M: $1.80 of overage, none so far."""
    now = dt.datetime(2026, 11, 16, tzinfo=dt.UTC)
    so_far = PlatformUsage(requests=8_000_000)
    assert _cents(month_to_date_bill(so_far, now=now).total_usd) == 5.00
    projected = projected_month_end_bill(so_far, now=now)
    assert projected.line("workers_requests").used == pytest.approx(16_000_000)
    assert _cents(projected.total_usd) == 6.80


def test_price_rows_are_dated_and_sourced() -> None:
    """The table names its source page, the page's last-updated date and an effective date."""
    row = DEFAULT_PLATFORM_PRICES.lookup(MONTH)
    assert row.source.startswith("https://developers.cloudflare.com/workers/platform/pricing/")
    assert row.page_updated == dt.date(2026, 7, 7)
    assert platform_bill(PlatformUsage(), month=MONTH).version == "cloudflare-workers-paid@2024-03-01"


def test_negative_usage_is_refused() -> None:
    """Negative usage is a clear error, not a credit."""
    with pytest.raises(ValueError, match="requests must not be negative"):
        platform_bill(PlatformUsage(requests=-1), month=MONTH)
