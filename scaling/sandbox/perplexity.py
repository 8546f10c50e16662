"""Simulated Perplexity ``POST /chat/completions`` (Sonar): chat usage and ``citations``.

Its 429 carries no Retry-After and no rate headers, as documented.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from scaling.sandbox.answer import Answer, Endpoint, bearer, key_label, read_json
from scaling.sandbox.catalog import stable_int
from scaling.sandbox.config import PerplexitySim
from scaling.sandbox.tokens import generate, message_tokens
from scaling.sandbox.window import SlidingLog

__all__ = ["PerplexityUpstream"]

_SITES = ("pitchfork.com", "en.wikipedia.org", "www.allmusic.com", "www.npr.org", "www.theguardian.com",
          "www.stereogum.com", "bandcamp.com", "www.discogs.com")


def _error(status: int, message: str, type_: str, key: str | None = None) -> Answer:
    return Answer(status, {"error": {"message": message, "type": type_, "code": status}}, key=key)


class PerplexityUpstream:
    """Perplexity's behaviour and state (a window per API key).

    Args:
        sim: limits and knobs.
        seed: makes ids differ between seeds.
    """

    name = "perplexity"

    def __init__(self, sim: PerplexitySim, seed: int) -> None:
        self.sim = sim
        self.seed = seed
        self.reset()

    def reset(self) -> None:
        self.windows: dict[str, SlidingLog] = {}
        self._served = 0

    def endpoints(self) -> list[Endpoint]:
        return [Endpoint("perplexity", "POST", "/chat/completions", "chat.completions", self.chat)]

    async def chat(self, request: Request, now: float) -> Answer:
        key = bearer(request)
        if key is None or (self.sim.api_keys is not None and key not in self.sim.api_keys):
            return _error(401, "Invalid API key provided.", "invalid_api_key", key_label(key) if key else None)
        label = key_label(key)
        body = await read_json(request)
        if body is None or not isinstance(body.get("model"), str) or not isinstance(body.get("messages"), list) \
                or not body["messages"]:
            return _error(400, "Invalid request: 'model' and a non-empty 'messages' array are required.",
                          "invalid_request_error", label)
        window = self.windows.setdefault(key, SlidingLog(self.sim.requests))
        if not window.admit(now).admitted:
            return _error(429, "Rate limit exceeded. Please slow down your requests.", "rate_limit_exceeded", label)
        max_tokens = body.get("max_tokens")
        budget = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else 4096
        prompt, prompt_tokens = message_tokens(body["messages"])
        model = body["model"]
        gen = generate(prompt, model, budget)
        h = stable_int("pplx", prompt)
        citations = [f"https://{_SITES[(h >> (4 * i)) % len(_SITES)]}/sandbox/{(h >> i) % 100_000}"
                     for i in range(3 + h % 4)]
        self._served += 1
        out: dict[str, Any] = {
            "id": f"{stable_int('pplx-id', self.seed, self._served):016x}-{self._served:08x}", "model": model,
            "created": int(now), "object": "chat.completion",
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": gen.output_tokens,
                      "total_tokens": prompt_tokens + gen.output_tokens, "search_context_size": "low"},
            "citations": citations,
            "search_results": [{"title": f"Result {i + 1}", "url": url, "date": None}
                               for i, url in enumerate(citations)],
            "choices": [{"index": 0, "finish_reason": "length" if gen.truncated else "stop",
                         "message": {"role": "assistant", "content": gen.text}, "delta": {"role": "assistant",
                                                                                           "content": ""}}]}
        return Answer(200, out, key=label)
