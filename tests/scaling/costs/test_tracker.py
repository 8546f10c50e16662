"""Recording AI calls: cost per call, cache hits, month-to-date budgets, roll-ups, the metrics DB."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from pathlib import Path

import pytest

from scaling.ai_costs import CostEntry, CostTracker, MemorySink, MetricsSink, TokenUsage, rollup
from scaling.clock import VirtualClock
from scaling.errors import StoreError
from scaling.prices import DEFAULT_PRICES, ModelPrice
from scaling.store import StateStore
from scaling.store.memory import MemoryStore

JAN_10 = dt.datetime(2026, 1, 10, 12, tzinfo=dt.UTC).timestamp()
TERRA = "gpt-5.6-terra"
# 1M uncached input at $2 + 100k output at $12 = $3.20 per call at the default terra price.
CALL = TokenUsage(input_tokens=1_000_000, output_tokens=100_000)


def test_record_prices_the_call_and_hands_it_to_the_sink() -> None:
    """A recorded call carries its tokens, its exact cost and the price version used."""
    sink = MemorySink()
    tracker = CostTracker(sink=sink, clock=VirtualClock(JAN_10))
    entry = tracker.record("openai", TERRA, "artistSummary", CALL, latency_ms=850.0)
    assert entry.cost_usd == Decimal("3.2") and entry.price_version == "openai/gpt-5.6-terra@2025-01-01"
    assert sink.entries == [entry] and entry.task == "artistSummary" and entry.latency_ms == 850.0


def test_cache_hit_records_zero_cost_and_the_tokens_it_saved() -> None:
    """A hit costs nothing, says it was a hit, and counts the tokens the original call used."""
    tracker = CostTracker(clock=VirtualClock(JAN_10))
    hit = tracker.record_cache_hit("openai", TERRA, "artistSummary", CALL)
    assert (hit.cost_usd, hit.cache_hit, hit.saved_tokens, hit.usage.total_tokens) == (0, True, 1_100_000, 0)
    assert tracker.month_spend("openai") == 0


def test_mid_month_price_change_is_applied_from_its_effective_date() -> None:
    """Calls before the 15th pay the old price, calls from the 15th the new one; the month sums both."""
    clock = VirtualClock(JAN_10)
    cheaper = ModelPrice("openai", TERRA, dt.date(2026, 1, 15), Decimal("1"), Decimal("6"))
    tracker = CostTracker(prices=DEFAULT_PRICES.with_prices(cheaper), clock=clock, store=MemoryStore())
    old = tracker.record("openai", TERRA, "albumDetail", CALL)
    clock.advance(4 * 86400)  # Jan 14
    old2 = tracker.record("openai", TERRA, "albumDetail", CALL)
    clock.advance(86400)  # Jan 15
    new = tracker.record("openai", TERRA, "albumDetail", CALL)
    assert (old.cost_usd, old2.cost_usd, new.cost_usd) == (Decimal("3.2"), Decimal("3.2"), Decimal("1.6"))
    assert new.price_version == "openai/gpt-5.6-terra@2026-01-15"
    assert tracker.month_spend("openai") == Decimal("8.0")


def test_budget_warns_once_at_80_and_once_at_100_percent_across_processes(
        store: StateStore, caplog: pytest.LogCaptureFixture) -> None:
    """Two trackers sharing a store warn once at 80% and once at 100% of a $10 month, whoever crosses."""
    clock = VirtualClock(JAN_10)
    seen: list[str] = []
    a, b = (CostTracker(clock=clock, store=store, budgets={"openai": 10.0}, on_budget=lambda s: seen.append(s.level))
            for _ in range(2))
    with caplog.at_level(logging.WARNING, logger="headroom.metrics"):
        for tracker in (a, b, a, b):  # $3.20 each: 3.2, 6.4, 9.6 (96%), 12.8 (128%)
            tracker.record("openai", TERRA, "artistSummary", CALL)
        b.record("openai", TERRA, "artistSummary", CALL)
    warnings = [r.getMessage() for r in caplog.records if "[AI_BUDGET_WARNING]" in r.getMessage()]
    assert len(warnings) == 2 and '"threshold": 0.8' in warnings[0] and '"threshold": 1.0' in warnings[1]
    assert seen == ["warning", "exceeded"]
    status = a.budget_status("openai")
    assert status.level == "exceeded" and status.spent_usd == Decimal("16") and status.month == "2026-01"
    clock.advance(31 * 86400)
    assert a.budget_status("openai").spent_usd == 0 and a.budget_status("openai").level == "ok"


def test_provider_without_budget_is_unbudgeted() -> None:
    """Spend is tracked even with no budget; its status says so instead of inventing a ratio."""
    tracker = CostTracker(clock=VirtualClock(JAN_10))
    tracker.record("anthropic", "claude-sonnet-5", "userInsightsSummary", CALL)
    status = tracker.budget_status("anthropic")
    assert status.level == "unbudgeted" and status.ratio is None and status.spent_usd == Decimal("4.5")


def test_unpriced_model_is_recorded_at_zero_not_dropped(caplog: pytest.LogCaptureFixture) -> None:
    """A model missing from the price table is still recorded (tokens kept), at $0 with no price version."""
    sink = MemorySink()
    with caplog.at_level(logging.WARNING, logger="headroom.costs"):
        entry = CostTracker(sink=sink, clock=VirtualClock(JAN_10)).record("openai", "gpt-9", "x", CALL)
    assert entry.cost_usd == 0 and entry.price_version is None and sink.entries[0].usage == CALL
    assert "no price for openai/gpt-9" in caplog.text


class _BrokenSink:
    def write(self, entries: object) -> None:
        raise StoreError("metrics DB unreachable", backend="sqlite")


def test_sink_outage_does_not_fail_the_call_and_logs_the_entry(caplog: pytest.LogCaptureFixture) -> None:
    """When the metrics DB is down the entry goes to the log instead of being lost or raising."""
    with caplog.at_level(logging.WARNING, logger="headroom.costs"):
        CostTracker(sink=_BrokenSink(), clock=VirtualClock(JAN_10)).record("openai", TERRA, "t", CALL)
    assert "[AI_USAGE_UNSAVED]" in caplog.text and '"cost_usd": "3.20"' in caplog.text


def _entries() -> list[CostEntry]:
    clock = VirtualClock(JAN_10)
    sink = MemorySink()
    tracker = CostTracker(sink=sink, clock=clock)
    tracker.record("openai", TERRA, "artistSummary", CALL)
    tracker.record("openai", "gpt-5.6-luna", "randomFact", TokenUsage(2000, 500, 0, 800, 300))
    tracker.record_cache_hit("openai", TERRA, "artistSummary", CALL)
    clock.advance(86400)
    tracker.record("openai", TERRA, "artistSummary",
                   TokenUsage(100_000, 40_000, 0, 20_000, 5_000, web_search_calls=3))
    tracker.record("anthropic", "claude-sonnet-5", "userInsightsSummary", TokenUsage(350_000, 200_000, 100_000,
                                                                                      10_000))
    return sink.entries


def test_rollup_sums_per_day_provider_model_and_task() -> None:
    """In-memory roll-ups group by day, provider, model and task and keep exact dollars."""
    rows = rollup(_entries())
    by = {dict(r.keys)["day"] + "/" + dict(r.keys)["task"]: r for r in rows}
    assert by["2026-01-10/artistSummary"].calls == 2 and by["2026-01-10/artistSummary"].cache_hits == 1
    assert by["2026-01-10/artistSummary"].cost_usd == Decimal("3.2")
    assert by["2026-01-11/artistSummary"].cost_usd == Decimal("0.398")
    assert sum(r.cost_usd for r in rollup(_entries(), ["provider"])) == sum(e.cost_usd for e in _entries())
    with pytest.raises(ValueError, match="unknown grouping"):
        rollup([], ["week"])


def test_metrics_sink_totals_match_the_dashboard_query(tmp_path: Path) -> None:
    """Entries written through MetricsSink come back from ai_cost_by with the same totals to the cent."""
    from scaling.metrics.db import open_metrics_db
    from scaling.metrics.migrate import upgrade
    from scaling.metrics.queries import ai_cost_by
    from scaling.metrics.writer import MetricsWriter

    url = f"sqlite:///{tmp_path}/metrics.db"
    upgrade(url)
    engine = open_metrics_db(url)
    entries = _entries()
    MetricsSink(MetricsWriter(engine, clock=VirtualClock(JAN_10), log_lines=False)).write(entries)
    df = ai_cost_by(engine, JAN_10 - 86400, JAN_10 + 3 * 86400, group_by=["day", "provider", "model", "task"])
    mem = rollup(entries)
    assert len(df) == len(mem)
    assert round(float(df["cost_usd"].sum()), 6) == round(float(sum(r.cost_usd for r in mem)), 6)
    assert int(df["cache_hits"].sum()) == 1 and int(df["saved_tokens"].sum()) == 1_100_000
    assert int(df["cached_input_tokens"].sum()) == sum(r.cached_input_tokens for r in mem)
    engine.dispose()
