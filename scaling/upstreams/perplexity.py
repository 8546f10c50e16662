"""Perplexity client: ``POST /chat/completions`` (Sonar), an answer with ``citations``.

Perplexity sends no rate headers and no Retry-After; its 429s are paced by the
limiter's cooldown default. Each call is priced (tokens plus the request fee) and
recorded with its task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from scaling.ai_costs import CostTracker
from scaling.clock import Clock, SystemClock
from scaling.fetch import Fetcher
from scaling.settings import Secret
from scaling.upstreams.models import AiResult
from scaling.upstreams.openai import _prompt_text, estimate_tokens, parse_chat

__all__ = ["PerplexityClient"]


class PerplexityClient:
    """Perplexity for one API key.

    Args:
        fetcher: the Perplexity fetcher (base ``https://api.perplexity.ai`` or the sandbox).
        api_key: the API key (bearer; never logged).
        costs: records every call's usage and cost.
        clock: measures latency.
    """

    upstream = "perplexity"

    def __init__(self, fetcher: Fetcher, *, api_key: str | Secret, costs: CostTracker | None = None,
                 clock: Clock | None = None) -> None:
        self.fetcher = fetcher
        self._key = api_key if isinstance(api_key, Secret) else Secret(api_key)
        self.costs = costs
        self.clock: Clock = clock or SystemClock()

    def __repr__(self) -> str:
        return "PerplexityClient()"

    async def chat(self, messages: Sequence[Mapping[str, Any]], *, model: str = "sonar", task: str = "adhoc",
                   max_tokens: int = 1000, budget_s: float | None = None) -> AiResult:
        """One Sonar call.

        Raises:
            ValueError: no messages or a non-positive output cap.
            Throttled, TransientError, PermanentError, MalformedResponse, RateLimited, CircuitOpen.
        """
        if not messages or max_tokens < 1:
            raise ValueError("chat needs at least one message and max_tokens >= 1")
        start = self.clock.now()
        res = await self.fetcher.request(
            "POST", "/chat/completions", endpoint="chat.completions", budget_s=budget_s,
            json={"model": model, "messages": list(messages), "max_tokens": max_tokens},
            tokens=estimate_tokens(_prompt_text(messages)) + max_tokens,
            headers={"Authorization": f"Bearer {self._key.reveal()}"})
        latency = max(0.0, (self.clock.now() - start - res.waited_s) * 1000.0)
        result = parse_chat(res.body, provider="perplexity", latency_ms=latency)
        if self.costs is not None:
            self.costs.record("perplexity", result.model, task, result.usage, latency_ms=latency)
        return result
