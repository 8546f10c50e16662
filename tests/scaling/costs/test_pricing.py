"""Dollars from usage: the LiteLLM cached/reasoning-token bugs, Anthropic cache fields, the price table."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from scaling.ai_costs import TokenUsage, cost_usd
from scaling.errors import ConfigurationError
from scaling.prices import DEFAULT_PRICES, ModelPrice, PriceTable

JAN = dt.date(2026, 1, 10)

# Real-shaped usage blocks (field names as the providers document them).
CHAT_USAGE = {"prompt_tokens": 1_000_000, "completion_tokens": 200_000, "total_tokens": 1_200_000,
              "prompt_tokens_details": {"cached_tokens": 800_000, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 150_000, "audio_tokens": 0,
                                            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
RESPONSES_USAGE = {"input_tokens": 100_000, "input_tokens_details": {"cached_tokens": 40_000},
                   "output_tokens": 20_000, "output_tokens_details": {"reasoning_tokens": 5_000},
                   "total_tokens": 120_000}
ANTHROPIC_USAGE = {"input_tokens": 50_000, "cache_creation_input_tokens": 100_000,
                   "cache_read_input_tokens": 200_000, "output_tokens": 10_000}
PERPLEXITY_USAGE = {"prompt_tokens": 1_000, "completion_tokens": 500, "total_tokens": 1_500,
                    "search_context_size": "low"}


def price(provider: str, model: str) -> ModelPrice:
    found = DEFAULT_PRICES.lookup(provider, model, JAN)
    assert found is not None
    return found


def test_chat_cached_tokens_are_a_subset_of_prompt_and_not_billed_twice() -> None:
    """gpt-5.2: 200k uncached x $1.75 + 800k cached x $0.175 + 200k output x $14 = $3.29 (LiteLLM #6215 billed
    $4.69+)."""
    usage = TokenUsage.from_openai_chat(CHAT_USAGE)
    assert (usage.input_tokens, usage.cached_input_tokens, usage.output_tokens, usage.reasoning_tokens) == \
        (1_000_000, 800_000, 200_000, 150_000)
    assert cost_usd(usage, price("openai", "gpt-5.2")) == Decimal("3.29")


def test_reasoning_tokens_are_billed_once_as_output() -> None:
    """Reasoning tokens are part of completion tokens: adding them again (LiteLLM #18599) would add $2.10."""
    usage = TokenUsage.from_openai_chat(CHAT_USAGE)
    no_reasoning = TokenUsage(usage.input_tokens, usage.cached_input_tokens, 0, usage.output_tokens, 0)
    assert cost_usd(usage, price("openai", "gpt-5.2")) == cost_usd(no_reasoning, price("openai", "gpt-5.2"))


def test_responses_usage_with_web_search_is_priced_to_the_cent() -> None:
    """terra: 60k x $2 + 40k x $0.20 + 20k x $12 per 1M, plus 3 searches x $0.01 = $0.398."""
    usage = TokenUsage.from_openai_responses(RESPONSES_USAGE, web_search_calls=3)
    total = cost_usd(usage, price("openai", "gpt-5.6-terra"))
    assert total == Decimal("0.398") and round(total, 2) == Decimal("0.40")


def test_anthropic_cache_reads_and_writes_come_beside_input() -> None:
    """claude-sonnet-5: 50k x $3 + 200k reads x $0.30 + 100k writes x $3.75 + 10k x $15 per 1M = $0.735."""
    usage = TokenUsage.from_anthropic(ANTHROPIC_USAGE)
    assert (usage.input_tokens, usage.cached_input_tokens, usage.cache_write_tokens) == (350_000, 200_000, 100_000)
    assert cost_usd(usage, price("anthropic", "claude-sonnet-5")) == Decimal("0.735")


def test_perplexity_adds_its_request_fee() -> None:
    """sonar: 1,500 tokens at $1 per 1M plus the $0.005 request fee = $0.0065."""
    usage = TokenUsage.from_perplexity(PERPLEXITY_USAGE)
    assert cost_usd(usage, price("perplexity", "sonar")) == Decimal("0.0065")


@pytest.mark.parametrize("bad", [
    {"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 11}},
    {"prompt_tokens": 10, "completion_tokens": 5, "completion_tokens_details": {"reasoning_tokens": 6}},
    {"prompt_tokens": "10", "completion_tokens": 5},
    {"completion_tokens": 5},
    {"prompt_tokens": -1, "completion_tokens": 5},
])
def test_impossible_usage_is_refused(bad: dict[str, object]) -> None:
    """A part larger than its whole, a missing or non-integer count is an error, not a wrong price."""
    with pytest.raises(ValueError):
        TokenUsage.from_openai_chat(bad)


def test_dated_snapshots_are_priced_as_their_model() -> None:
    """The API's dated model name (gpt-5.6-terra-2026-01-15) finds the gpt-5.6-terra row."""
    assert DEFAULT_PRICES.lookup("openai", "gpt-5.6-terra-2026-01-15", JAN) == price("openai", "gpt-5.6-terra")
    assert DEFAULT_PRICES.lookup("openai", "gpt-5.6-terrace", JAN) is None
    assert DEFAULT_PRICES.lookup("openai", "gpt-5.6-terra", dt.date(2020, 1, 1)) is None


def test_price_change_applies_from_its_effective_date() -> None:
    """A new row effective on the 15th prices calls from that day on; earlier days keep the old row."""
    cut = ModelPrice("openai", "gpt-5.6-terra", dt.date(2026, 1, 15), Decimal("1"), Decimal("8"), Decimal("0.1"))
    table = DEFAULT_PRICES.with_prices(cut)
    before = table.lookup("openai", "gpt-5.6-terra", dt.date(2026, 1, 14))
    after = table.lookup("openai", "gpt-5.6-terra", dt.date(2026, 1, 15))
    assert before is not None and after is not None
    assert (before.input_per_mtok, after.input_per_mtok) == (Decimal("2"), Decimal("1"))
    assert after.version == "openai/gpt-5.6-terra@2026-01-15" != before.version


def test_price_table_round_trips_through_json_and_rejects_bad_rows(tmp_path: object) -> None:
    """The table saves and loads as JSON; a bad row or duplicate date is a one-line error."""
    again = PriceTable.from_json(DEFAULT_PRICES.to_json())
    assert sorted(p.version for p in again) == sorted(p.version for p in DEFAULT_PRICES)
    assert again.lookup("anthropic", "claude-sonnet-5", JAN) == price("anthropic", "claude-sonnet-5")
    with pytest.raises(ConfigurationError, match="input_per_mtok"):
        PriceTable.from_json('[{"provider": "openai", "model": "m", "effective_from": "2026-01-01", '
                             '"input_per_mtok": "-1", "output_per_mtok": "1"}]')
    with pytest.raises(ConfigurationError, match="effective_from"):
        PriceTable.from_json('[{"provider": "openai", "model": "m", "input_per_mtok": 1}]')
    with pytest.raises(ConfigurationError, match="two prices"):
        DEFAULT_PRICES.with_prices(price("openai", "gpt-5-nano"))
