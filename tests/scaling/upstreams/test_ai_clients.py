"""OpenAI and Perplexity clients against real-API fixtures: requests, parsing, recorded cost, every error."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from scaling import errors
from scaling.ai_costs import MemorySink
from scaling.clock import VirtualClock
from scaling.errors import MalformedResponse
from scaling.store import gcra
from tests.scaling.upstreams.conftest import FakeApi, error_cases, error_response, fixture, run


def entries(services: Any) -> list[Any]:
    sink = services.costs.sink
    assert isinstance(sink, MemorySink)
    return sink.entries


def test_responses_call_sends_the_apps_request_and_records_cost(clock: VirtualClock) -> None:
    """A web-search Responses call sends store=false, effort, verbosity, the tool; text, citations and $ come back."""
    api = FakeApi().on("POST", "/v1/responses", fixture("openai_responses_websearch"))

    async def go(s: Any) -> Any:
        result = await s.openai.respond("Tell me about the new Big Thief album", model="gpt-5.6-terra",
                                        task="albumDetail", instructions="You write short album notes.",
                                        reasoning_effort="medium", verbosity="low", web_search=True,
                                        temperature=0.7)
        return result, entries(s)

    result, recorded = run(clock, api, go)
    sent = json.loads(api.requests[0].content)
    assert sent == {"model": "gpt-5.6-terra", "input": "Tell me about the new Big Thief album",
                    "max_output_tokens": 1500, "store": False, "instructions": "You write short album notes.",
                    "reasoning": {"effort": "medium"}, "text": {"verbosity": "low"},
                    "tools": [{"type": "web_search"}]}  # no temperature alongside reasoning
    assert api.requests[0].headers["authorization"] == "Bearer sk-sandbox"
    assert result.text == "Big Thief's new record is warm and loose." and result.status == "completed"
    assert result.citations == ("https://pitchfork.com/reviews/albums/big-thief",) and result.web_search_used
    assert (result.usage.input_tokens, result.usage.cached_input_tokens, result.usage.output_tokens,
            result.usage.reasoning_tokens, result.usage.web_search_calls) == (100_000, 40_000, 20_000, 5_000, 1)
    [entry] = recorded
    # 60k x $2 + 40k x $0.20 + 20k x $12 per 1M + 1 search x $0.01 = $0.378, priced as the dated model's base.
    assert (entry.task, entry.cost_usd, entry.model) == ("albumDetail", Decimal("0.378"), "gpt-5.6-terra-2026-01-15")


def test_temperature_is_sent_only_without_reasoning(clock: VirtualClock) -> None:
    """Without a reasoning effort the temperature goes out; no tools unless asked."""
    api = FakeApi().on("POST", "/v1/responses", fixture("openai_responses_websearch"))
    run(clock, api, lambda s: s.openai.respond("hi", model="gpt-5.6-terra", temperature=0.3))
    sent = json.loads(api.requests[0].content)
    assert sent["temperature"] == 0.3 and "reasoning" not in sent and "tools" not in sent


def test_chat_completion_is_priced_without_double_billing(clock: VirtualClock) -> None:
    """Chat usage with cached and reasoning tokens is recorded at $3.29 for gpt-5.2 (not LiteLLM's $4.69+)."""
    api = FakeApi().on("POST", "/v1/chat/completions", fixture("openai_chat"))

    async def go(s: Any) -> Any:
        result = await s.openai.chat([{"role": "user", "content": "Hello"}], model="gpt-5.2", task="listenAi",
                                     max_tokens=200)
        return result, entries(s)

    result, [entry] = run(clock, api, go)
    assert result.text == "Hello! How can I help?" and result.status == "stop"
    assert json.loads(api.requests[0].content)["max_completion_tokens"] == 200
    assert entry.cost_usd == Decimal("3.29") and entry.price_version == "openai/gpt-5.2@2025-01-01"


def test_perplexity_answer_carries_citations_and_its_request_fee(clock: VirtualClock) -> None:
    """Sonar's citations are kept and the cost includes the per-request fee ($0.0065)."""
    api = FakeApi().on("POST", "/chat/completions", fixture("perplexity_chat"))

    async def go(s: Any) -> Any:
        result = await s.perplexity.chat([{"role": "user", "content": "OK Computer?"}], task="albumDetail")
        return result, entries(s)

    result, [entry] = run(clock, api, go)
    assert result.citations[0] == "https://en.wikipedia.org/wiki/OK_Computer" and result.provider == "perplexity"
    assert entry.cost_usd == Decimal("0.0065")
    assert api.requests[0].headers["authorization"] == "Bearer pplx-sandbox"


def test_token_reservation_is_settled_from_usage(clock: VirtualClock) -> None:
    """The call reserves prompt + 5,000 output tokens on the token rate and keeps only the 75 it used."""
    small = fixture("openai_responses_websearch")
    small["usage"] = {"input_tokens": 50, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 25,
                      "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 75}
    api = FakeApi().on("POST", "/v1/responses", small)

    async def go(s: Any) -> float:
        await s.openai.respond("hi", model="gpt-5.6-terra", max_output_tokens=5000)
        state = gcra.decode(s.store.get("ratelimit:openai:default", now=clock.now()))
        return state.tat[1] - clock.now()

    # Default token rate 90,000/60 s with a quarter of it as burst: 60 / 67,500 s per token.
    assert run(clock, api, go) == pytest.approx(75 * 60 / 67_500, abs=1e-3)  # vs 4.5 s if unsettled


@pytest.mark.parametrize(("name", "case"), error_cases("openai"))
def test_openai_errors_become_typed_errors(clock: VirtualClock, name: str, case: dict[str, Any]) -> None:
    """rate_limit_exceeded is throttling, insufficient_quota is never retried, 4xx permanent, 5xx transient."""
    api = FakeApi().on("POST", "/v1/responses", error_response(case))
    with pytest.raises(getattr(errors, case["expect"])) as info:
        run(clock, api, lambda s: s.openai.respond("hi", model="gpt-5.6-terra"))
    assert (info.value.upstream, info.value.endpoint) == ("openai", "responses")
    if case["expect"] == "QuotaExhausted":
        assert len(api.requests) == 1


@pytest.mark.parametrize(("name", "case"), error_cases("perplexity"))
def test_perplexity_errors_become_typed_errors(clock: VirtualClock, name: str, case: dict[str, Any]) -> None:
    """Perplexity's 401, 400 and Retry-After-less 429 raise their classes."""
    api = FakeApi().on("POST", "/chat/completions", error_response(case))
    with pytest.raises(getattr(errors, case["expect"])) as info:
        run(clock, api, lambda s: s.perplexity.chat([{"role": "user", "content": "x"}]))
    assert (info.value.upstream, info.value.endpoint) == ("perplexity", "chat.completions")


@pytest.mark.parametrize(("mutate", "where"), [
    (lambda b: b.pop("usage"), r"\$\.usage is missing"),
    (lambda b: b["usage"]["input_tokens_details"].update(cached_tokens=200_000),
     r"\$\.usage is not a usable token count: cached .* exceed input"),
    (lambda b: b["output"][2]["content"][0].pop("text"), r"\$\.output\[2\]\.content\[0\]\.text is missing"),
    (lambda b: b.update(output="none"), r"\$\.output is the string 'none', expected a list"),
])
def test_malformed_responses_name_the_field(clock: VirtualClock, mutate: Any, where: str) -> None:
    """Missing usage, impossible token counts or broken output items are MalformedResponse, and cost nothing."""
    body = fixture("openai_responses_websearch")
    mutate(body)
    api = FakeApi().on("POST", "/v1/responses", body)

    async def go(s: Any) -> None:
        try:
            await s.openai.respond("hi", model="gpt-5.6-terra")
        finally:
            assert entries(s) == []

    with pytest.raises(MalformedResponse, match=where):
        run(clock, api, go)


def test_chat_without_choices_is_malformed(clock: VirtualClock) -> None:
    """A chat answer with an empty choices list is a MalformedResponse, not an IndexError."""
    body = {**fixture("openai_chat"), "choices": []}
    api = FakeApi().on("POST", "/v1/chat/completions", httpx.Response(200, json=body))
    with pytest.raises(MalformedResponse, match="has no choices"):
        run(clock, api, lambda s: s.openai.chat([{"role": "user", "content": "x"}], model="gpt-5.2"))
