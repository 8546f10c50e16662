"""AI tasks through the cache: one call per answer across callers, hits recorded at zero cost with saved tokens."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from scaling.ai_costs import MemorySink
from scaling.clock import VirtualClock
from scaling.errors import ConfigurationError
from scaling.upstreams import AI_TASKS, task_key
from tests.scaling.upstreams.conftest import FakeApi, fixture, run


def api() -> FakeApi:
    body = fixture("openai_responses_websearch")
    # Small usage, so repeated calls stay inside the default token rate (90,000/min).
    body["usage"] = {"input_tokens": 1000, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 200,
                     "output_tokens_details": {"reasoning_tokens": 50}, "total_tokens": 1200}
    return FakeApi().on("POST", "/v1/responses", body)


def recorded(s: Any) -> list[Any]:
    assert isinstance(s.costs.sink, MemorySink)
    return s.costs.sink.entries


def test_task_table_follows_the_reference() -> None:
    """Each task runs on the reference's model with its output cap and options."""
    assert (AI_TASKS["artistSummary"].model, AI_TASKS["artistSummary"].max_output_tokens) == ("gpt-5.6-terra", 1500)
    assert AI_TASKS["randomFact"].model == "gpt-5.6-luna" and AI_TASKS["playlistCoverPrompt"].model == "gpt-5-nano"
    assert AI_TASKS["userInsightsSummary"].provider == "anthropic"
    assert AI_TASKS["artistSentence"].web_search and AI_TASKS["listenAi"].verbosity == "low"
    assert task_key(["  Radiohead ", "OK Computer"]) == "radiohead:ok computer"


def test_second_ask_is_a_cache_hit_at_zero_cost_with_saved_tokens(clock: VirtualClock) -> None:
    """The first ask is billed; the same params again (any case) cost $0 and record the 1,200 tokens saved."""
    fake = api()

    async def go(s: Any) -> list[Any]:
        first = await s.ai.ask("artistSummary", ["Big Thief"], "Summarise Big Thief")
        second = await s.ai.ask("artistSummary", [" big thief "], "Summarise Big Thief")
        assert first == second
        return recorded(s)

    billed, hit = run(clock, fake, go)
    assert len(fake.requests) == 1
    assert (billed.cache_hit, billed.cost_usd > 0, billed.task) == (False, True, "artistSummary")
    assert (hit.cache_hit, hit.cost_usd, hit.saved_tokens, hit.model) == (True, Decimal(0), 1_200,
                                                                          "gpt-5.6-terra-2026-01-15")


def test_concurrent_asks_make_one_call_and_the_rest_are_hits(clock: VirtualClock) -> None:
    """Ten concurrent identical asks: one billed call, nine zero-cost hits."""
    fake = api()

    async def go(s: Any) -> list[Any]:
        await asyncio.gather(*(s.ai.ask("genreSummary", ["shoegaze"], "What is shoegaze?") for _ in range(10)))
        return recorded(s)

    entries = run(clock, fake, go)
    assert len(fake.requests) == 1
    assert sorted(e.cache_hit for e in entries) == [False] + [True] * 9


def test_uncached_task_calls_every_time(clock: VirtualClock) -> None:
    """listenAi (TTL 0 in the reference) is billed on every ask and never recorded as a hit."""
    fake = api()

    async def go(s: Any) -> list[Any]:
        for _ in range(3):
            await s.ai.ask("listenAi", ["user1"], "What am I listening to?")
        return recorded(s)

    entries = run(clock, fake, go)
    assert len(fake.requests) == 3 and not any(e.cache_hit for e in entries)


def test_task_options_reach_the_request(clock: VirtualClock) -> None:
    """userInsightsRecommendations goes out with low reasoning effort and low verbosity, capped at 4,000 tokens."""
    import json

    fake = api()
    run(clock, fake, lambda s: s.ai.ask("userInsightsRecommendations", ["u1"], "Recommend"))
    sent = json.loads(fake.requests[0].content)
    assert (sent["reasoning"], sent["text"], sent["max_output_tokens"]) == ({"effort": "low"}, {"verbosity": "low"},
                                                                            4000)


def test_unknown_or_non_openai_task_is_refused(clock: VirtualClock) -> None:
    """Asking OpenAI for an unknown task or an Anthropic one is a configuration error, not a silent call."""
    fake = api()
    with pytest.raises(ConfigurationError, match="unknown task"):
        run(clock, fake, lambda s: s.ai.ask("nope", [], "x"))
    with pytest.raises(ConfigurationError, match="another provider"):
        run(clock, fake, lambda s: s.ai.ask("userInsightsSummary", [], "x"))
    assert fake.requests == []
