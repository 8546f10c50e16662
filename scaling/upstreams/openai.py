"""OpenAI client: ``POST /v1/responses`` (what the app uses) and ``POST /v1/chat/completions``.

Each call reserves its prompt estimate plus its maximum output on the token rate
(OpenAI counts ``max_tokens`` against TPM up front) and settles from ``usage``.
Every successful call is priced and recorded by the `CostTracker` with its task.
Requests follow the app's: ``store: false``, instructions, ``max_output_tokens``,
``reasoning.effort``, ``text.verbosity``, the ``web_search`` tool, and
``temperature`` only when reasoning is unset.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from scaling.ai_costs import CostTracker, TokenUsage
from scaling.clock import Clock, SystemClock
from scaling.fetch import Fetcher
from scaling.settings import Secret
from scaling.upstreams.body import Body
from scaling.upstreams.models import AiResult

__all__ = ["OpenAIClient", "estimate_tokens", "parse_chat", "parse_response"]


def estimate_tokens(text: str) -> int:
    """A cheap upper-ish estimate of a prompt's tokens (about 4 characters per token)."""
    return len(text) // 4 + 8


def _usage(b: Body, parse: Callable[..., TokenUsage], *, web_search_calls: int = 0) -> TokenUsage:
    usage = b.obj("usage")
    try:
        return parse(usage.data, web_search_calls=web_search_calls)
    except ValueError as exc:
        raise usage.fail(f"is not a usable token count: {exc}") from None


def parse_response(body: Any, *, latency_ms: float = 0.0) -> AiResult:
    """A Responses API answer: output text, web searches, citations, usage.

    Raises:
        MalformedResponse: missing usage, output or text fields.
    """
    b = Body(body, upstream="openai", endpoint="responses")
    texts: list[str] = []
    citations: list[str] = []
    searches = 0
    for item in b.items("output"):
        kind = item.text("type")
        if kind == "web_search_call":
            searches += 1
        elif kind == "message":
            for part in item.items("content"):
                if part.text("type") == "output_text":
                    texts.append(part.text("text"))
                    citations += [a.text("url") for a in part.items("annotations", optional=True)
                                  if a.text("type", "") == "url_citation"]
    return AiResult(provider="openai", api="responses", model=b.text("model"), text="".join(texts),
                    usage=_usage(b, TokenUsage.from_openai_responses, web_search_calls=searches),
                    status=b.text("status"), response_id=b.text("id", ""), citations=tuple(citations),
                    latency_ms=latency_ms)


def parse_chat(body: Any, *, provider: str = "openai", latency_ms: float = 0.0) -> AiResult:
    """A Chat Completions answer (OpenAI's, or Perplexity's with ``citations``)."""
    b = Body(body, upstream=provider, endpoint="chat.completions")
    choices = b.items("choices")
    if not choices:
        raise b.fail("has no choices")
    first = choices[0]
    message = first.obj("message")
    parse = TokenUsage.from_perplexity if provider == "perplexity" else TokenUsage.from_openai_chat
    citations = [c.as_text() for c in b.items("citations", optional=True)]
    if not citations:
        citations = [r.text("url") for r in b.items("search_results", optional=True)]
    return AiResult(provider=provider, api="chat_completions", model=b.text("model"),
                    text=message.text("content", ""), usage=_usage(b, lambda u, **_: parse(u)),
                    status=first.text("finish_reason", "stop"), response_id=b.text("id", ""),
                    citations=tuple(citations), latency_ms=latency_ms)


def _prompt_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return " ".join(_prompt_text(v) for v in value.values())
    if isinstance(value, Sequence):
        return " ".join(_prompt_text(v) for v in value)
    return ""


class OpenAIClient:
    """OpenAI for one API key.

    Args:
        fetcher: the OpenAI fetcher (its limiter has the token rate).
        api_key: the API key (bearer; never logged).
        costs: records every call's usage and cost (None: not recorded).
        clock: measures latency.
    """

    upstream = "openai"

    def __init__(self, fetcher: Fetcher, *, api_key: str | Secret, costs: CostTracker | None = None,
                 clock: Clock | None = None) -> None:
        self.fetcher = fetcher
        self._key = api_key if isinstance(api_key, Secret) else Secret(api_key)
        self.costs = costs
        self.clock: Clock = clock or SystemClock()

    def __repr__(self) -> str:
        return "OpenAIClient()"

    async def _post(self, path: str, endpoint: str, payload: dict[str, Any], reserve: int,
                    budget_s: float | None) -> tuple[Any, float]:
        start = self.clock.now()
        res = await self.fetcher.request(
            "POST", path, endpoint=endpoint, json=payload, tokens=reserve, budget_s=budget_s,
            usage_tokens=lambda body: body["usage"]["total_tokens"],
            headers={"Authorization": f"Bearer {self._key.reveal()}"})
        latency_ms = max(0.0, (self.clock.now() - start - res.waited_s) * 1000.0)
        return res.body, latency_ms

    def _record(self, result: AiResult, task: str) -> AiResult:
        if self.costs is not None:
            self.costs.record(result.provider, result.model, task, result.usage, latency_ms=result.latency_ms)
        return result

    async def respond(self, input: str | Sequence[Mapping[str, Any]], *, model: str, task: str = "adhoc",
                      instructions: str | None = None, max_output_tokens: int = 1500,
                      reasoning_effort: str | None = None, verbosity: str | None = None, web_search: bool = False,
                      temperature: float | None = None, budget_s: float | None = None) -> AiResult:
        """One Responses API call.

        Args:
            input: the prompt, or a list of input items.
            model: e.g. ``gpt-5.6-terra``.
            task: what the call is for (cost roll-ups group by it).
            instructions: the system/developer instructions.
            max_output_tokens: the output cap (also reserved on the token rate).
            reasoning_effort: "minimal" ... "high"; None leaves reasoning unset.
            verbosity: "low", "medium", "high".
            web_search: offer the web_search tool.
            temperature: sent only when reasoning is unset (reasoning models reject it).
            budget_s: the call's total time budget.

        Raises:
            ValueError: an empty prompt or a non-positive output cap.
            QuotaExhausted: ``insufficient_quota`` (never retried).
            Throttled, TransientError, PermanentError, MalformedResponse, RateLimited, CircuitOpen.
        """
        if not input or max_output_tokens < 1:
            raise ValueError("respond needs a non-empty input and max_output_tokens >= 1")
        payload: dict[str, Any] = {"model": model, "input": input, "max_output_tokens": max_output_tokens,
                                   "store": False}
        if instructions:
            payload["instructions"] = instructions
        if reasoning_effort:
            payload["reasoning"] = {"effort": reasoning_effort}
        elif temperature is not None:
            payload["temperature"] = temperature
        if verbosity:
            payload["text"] = {"verbosity": verbosity}
        if web_search:
            payload["tools"] = [{"type": "web_search"}]
        reserve = estimate_tokens(_prompt_text(input) + (instructions or "")) + max_output_tokens
        body, latency = await self._post("/v1/responses", "responses", payload, reserve, budget_s)
        return self._record(parse_response(body, latency_ms=latency), task)

    async def chat(self, messages: Sequence[Mapping[str, Any]], *, model: str, task: str = "adhoc",
                   max_tokens: int = 1500, reasoning_effort: str | None = None, temperature: float | None = None,
                   budget_s: float | None = None) -> AiResult:
        """One Chat Completions call (``max_completion_tokens`` = ``max_tokens``).

        Raises:
            ValueError: no messages or a non-positive output cap.
            As `respond` otherwise.
        """
        if not messages or max_tokens < 1:
            raise ValueError("chat needs at least one message and max_tokens >= 1")
        payload: dict[str, Any] = {"model": model, "messages": list(messages), "max_completion_tokens": max_tokens}
        if reasoning_effort:
            payload["reasoning_effort"] = reasoning_effort
        elif temperature is not None:
            payload["temperature"] = temperature
        reserve = estimate_tokens(_prompt_text(messages)) + max_tokens
        body, latency = await self._post("/v1/chat/completions", "chat.completions", payload, reserve, budget_s)
        return self._record(parse_chat(body, latency_ms=latency), task)
