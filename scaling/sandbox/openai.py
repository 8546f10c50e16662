"""Simulated OpenAI: ``POST /v1/chat/completions`` and ``POST /v1/responses``.

Requests and tokens are limited together per API key over rolling windows; a
request reserves its prompt estimate plus its max output tokens up front (as
OpenAI counts ``max_tokens``), and both limits debit or neither does. Every
answer carries the ``x-ratelimit-*`` headers; a 429 adds ``retry-after-ms`` and
``retry-after``. Once ``token_quota`` billed tokens are spent, every call gets
``insufficient_quota``, which no wait will cure.
"""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request

from scaling.sandbox.answer import Answer, Endpoint, bearer, key_label, read_json
from scaling.sandbox.catalog import stable_int
from scaling.sandbox.config import OpenAISim
from scaling.sandbox.stats import Outcome
from scaling.sandbox.tokens import Generation, generate, go_duration, message_tokens, text_of
from scaling.sandbox.window import SlidingLog, Verdict

__all__ = ["OpenAIUpstream", "invalid_request"]

_QUOTA_MESSAGE = ("You exceeded your current quota, please check your plan and billing details. For more "
                  "information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/"
                  "api-errors.")


def invalid_request(message: str, status: int = 400, *, param: str | None = None, code: str | None = None,
                    key: str | None = None, type_: str = "invalid_request_error") -> Answer:
    """An OpenAI-style error answer."""
    return Answer(status, {"error": {"message": message, "type": type_, "param": param, "code": code}}, key=key)


def _per(window: float, unit: str) -> str:
    short = {"requests": "RPM", "tokens": "TPM"}[unit]
    return f"{unit} per min ({short})" if window == 60 else f"{unit} per {window:g}s"


class OpenAIUpstream:
    """OpenAI's behaviour and state: windows per key, billed tokens, the prompt cache.

    Args:
        sim: limits and knobs.
        seed: makes response ids differ between sandboxes with different seeds.
    """

    name = "openai"

    def __init__(self, sim: OpenAISim, seed: int) -> None:
        self.sim = sim
        self.seed = seed
        self.reset()

    def reset(self) -> None:
        self.requests: dict[str, SlidingLog] = {}
        self.tokens: dict[str, SlidingLog] = {}
        self.billed = 0
        self._cache: dict[tuple[str, str, str], float] = {}
        self._served = 0

    def endpoints(self) -> list[Endpoint]:
        return [Endpoint("openai", "POST", "/v1/chat/completions", "chat.completions", self.chat),
                Endpoint("openai", "POST", "/v1/responses", "responses", self.responses)]

    # -- shared gate ----------------------------------------------------------------

    def _auth(self, request: Request) -> str | Answer:
        key = bearer(request)
        if key is None:
            return invalid_request("You didn't provide an API key. You need to provide your API key in an "
                                   "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                                   401)
        if self.sim.api_keys is not None and key not in self.sim.api_keys:
            return invalid_request(f"Incorrect API key provided: {key_label(key)}.", 401, code="invalid_api_key",
                                   key=key_label(key))
        return key

    def _admit(self, key: str, model: str, estimate: int, now: float) -> tuple[dict[str, str], Answer | None]:
        """Debit one request and ``estimate`` tokens, or refuse; returns headers either way."""
        label = key_label(key)
        if self.sim.token_quota is not None and self.billed >= self.sim.token_quota:
            return {}, Answer(429, {"error": {"message": _QUOTA_MESSAGE, "type": "insufficient_quota",
                                              "param": None, "code": "insufficient_quota"}},
                              outcome=Outcome.QUOTA, key=label)
        req_log = self.requests.setdefault(key, SlidingLog(self.sim.requests))
        tok_log = self.tokens.setdefault(key, SlidingLog(self.sim.tokens))
        req, tok = req_log.check(now, 1), tok_log.check(now, estimate)
        if req.admitted and tok.admitted:
            req_log.record(now, 1)
            tok_log.record(now, estimate)
            return self._headers(req, tok), None
        headers = self._headers(req, tok)
        if math.isinf(tok.retry_after):
            spec = tok_log.spec
            kind = "tokens"
            message = (f"Request too large for {model} in organization org-sandbox on {_per(spec.window, kind)}: "
                       f"Limit {spec.limit}, Requested {estimate}. The input or output tokens must be reduced in "
                       "order to run successfully.")
        else:
            kind, blocked, amount = ("requests", req_log, 1) if not req.admitted else ("tokens", tok_log, estimate)
            spec = blocked.spec
            wait = max(req.retry_after, tok.retry_after)  # both must fit before a retry can pass
            headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
            headers["retry-after"] = str(max(1, math.ceil(wait)))
            message = (f"Rate limit reached for {model} in organization org-sandbox on {_per(spec.window, kind)}: "
                       f"Limit {spec.limit}, Used {int(blocked.used(now))}, Requested {amount}. Please try again "
                       f"in {go_duration(wait)}. Visit https://platform.openai.com/account/rate-limits to learn "
                       "more.")
        body = {"error": {"message": message, "type": kind, "param": None, "code": "rate_limit_exceeded"}}
        return headers, Answer(429, body, headers, key=label)

    def _headers(self, req: Verdict, tok: Verdict) -> dict[str, str]:
        return {"x-ratelimit-limit-requests": str(req.limit), "x-ratelimit-remaining-requests": str(req.remaining),
                "x-ratelimit-reset-requests": go_duration(req.reset),
                "x-ratelimit-limit-tokens": str(tok.limit), "x-ratelimit-remaining-tokens": str(tok.remaining),
                "x-ratelimit-reset-tokens": go_duration(tok.reset)}

    def _cached(self, key: str, model: str, prompt: str, prompt_tokens: int, now: float) -> int:
        """Cached input tokens: a repeat of a prompt seen within the TTL, in OpenAI's steps."""
        cache_key = (key, model, prompt)
        seen = self._cache.get(cache_key)
        hit = seen is not None and now - seen < self.sim.cache_ttl_s
        if len(self._cache) > 100_000:
            self._cache = {k: t for k, t in self._cache.items() if now - t < self.sim.cache_ttl_s}
        if prompt_tokens < max(1, self.sim.cache_min_tokens):
            return 0
        self._cache[cache_key] = now
        if not hit:
            return 0
        step = max(1, self.sim.cache_increment)
        return self.sim.cache_min_tokens + (prompt_tokens - self.sim.cache_min_tokens) // step * step

    def _max_output(self, body: dict[str, Any], *names: str) -> int | Answer:
        for name in names:
            value = body.get(name)
            if value is not None:
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    return invalid_request(f"Invalid '{name}': integer below minimum value.", param=name,
                                           code="integer_below_min_value")
                return value
        return self.sim.default_max_output_tokens

    def _id(self, prefix: str) -> str:
        self._served += 1
        return f"{prefix}_{stable_int('openai-id', self.seed, self._served):016x}{self._served:08x}"

    async def _parse(self, request: Request, required: str) -> tuple[str, dict[str, Any]] | Answer:
        key = self._auth(request)
        if isinstance(key, Answer):
            return key
        body = await read_json(request)
        if body is None:
            return invalid_request("We could not parse the JSON body of your request. (HINT: This likely means "
                                   "you aren't using your HTTP library correctly.)", key=key_label(key))
        if not isinstance(body.get("model"), str) or not body["model"]:
            return invalid_request("you must provide a model parameter", key=key_label(key))
        if body.get(required) in (None, "", []):
            return invalid_request(f"Missing required parameter: '{required}'.", param=required,
                                   code="missing_required_parameter", key=key_label(key))
        return key, body

    # -- endpoints --------------------------------------------------------------------

    async def chat(self, request: Request, now: float) -> Answer:
        parsed = await self._parse(request, "messages")
        if isinstance(parsed, Answer):
            return parsed
        key, body = parsed
        model = body["model"]
        if not isinstance(body["messages"], list):
            return invalid_request("Invalid type for 'messages': expected an array.", param="messages",
                                   key=key_label(key))
        max_out = self._max_output(body, "max_completion_tokens", "max_tokens")
        if isinstance(max_out, Answer):
            return max_out
        prompt, prompt_tokens = message_tokens(body["messages"])
        headers, refused = self._admit(key, model, prompt_tokens + max_out, now)
        if refused:
            return refused
        gen = generate(prompt, model, max_out, body.get("reasoning_effort"))
        cached = self._cached(key, model, prompt, prompt_tokens, now)
        self.billed += prompt_tokens + gen.output_tokens
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": gen.output_tokens,
                 "total_tokens": prompt_tokens + gen.output_tokens,
                 "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
                 "completion_tokens_details": {"reasoning_tokens": gen.reasoning_tokens, "audio_tokens": 0,
                                               "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
        out = {"id": self._id("chatcmpl"), "object": "chat.completion", "created": int(now), "model": model,
               "choices": [{"index": 0, "message": {"role": "assistant", "content": gen.text, "refusal": None,
                                                    "annotations": []},
                            "logprobs": None, "finish_reason": "length" if gen.truncated else "stop"}],
               "usage": usage, "service_tier": "default", "system_fingerprint": "fp_sandbox"}
        return Answer(200, out, headers, key=key_label(key))

    async def responses(self, request: Request, now: float) -> Answer:
        parsed = await self._parse(request, "input")
        if isinstance(parsed, Answer):
            return parsed
        key, body = parsed
        model = body["model"]
        max_out = self._max_output(body, "max_output_tokens")
        if isinstance(max_out, Answer):
            return max_out
        raw = body["input"]
        items = [{"role": "user", "content": raw}] if isinstance(raw, str) else list(raw) if isinstance(raw, list) \
            else []
        instructions = body.get("instructions") if isinstance(body.get("instructions"), str) else None
        if instructions:
            items.insert(0, {"role": "developer", "content": instructions})
        prompt, prompt_tokens = message_tokens(items)
        tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
        searches = any(str(t.get("type", "")).startswith("web_search") for t in tools) \
            and body.get("tool_choice") != "none"
        input_tokens = prompt_tokens + (self.sim.web_search_context_tokens if searches else 0)
        headers, refused = self._admit(key, model, input_tokens + max_out, now)
        if refused:
            return refused
        reasoning: dict[str, Any] = body["reasoning"] if isinstance(body.get("reasoning"), dict) else {}
        gen = generate(prompt, model, max_out, reasoning.get("effort"))
        cached = self._cached(key, model, prompt, prompt_tokens, now)
        self.billed += input_tokens + gen.output_tokens
        output = self._output_items(gen, prompt, searches)
        usage = {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": cached},
                 "output_tokens": gen.output_tokens,
                 "output_tokens_details": {"reasoning_tokens": gen.reasoning_tokens},
                 "total_tokens": input_tokens + gen.output_tokens}
        text: dict[str, Any] = body["text"] if isinstance(body.get("text"), dict) else {}
        out = {"id": self._id("resp"), "object": "response", "created_at": int(now),
               "status": "incomplete" if gen.truncated else "completed", "error": None,
               "incomplete_details": {"reason": "max_output_tokens"} if gen.truncated else None,
               "instructions": instructions, "max_output_tokens": body.get("max_output_tokens"), "model": model,
               "output": output, "parallel_tool_calls": True, "previous_response_id": None,
               "reasoning": {"effort": reasoning.get("effort"), "summary": None},
               "store": body.get("store", True), "temperature": body.get("temperature", 1.0),
               "text": {"format": {"type": "text"}, "verbosity": text.get("verbosity", "medium")},
               "tool_choice": body.get("tool_choice", "auto"), "tools": tools, "top_p": 1.0,
               "truncation": "disabled", "usage": usage, "user": None, "metadata": {}}
        return Answer(200, out, headers, key=key_label(key))

    def _output_items(self, gen: Generation, prompt: str, searches: bool) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        if gen.reasoning_tokens:
            items.append({"id": self._id("rs"), "type": "reasoning", "summary": []})
        if searches:
            items.append({"id": self._id("ws"), "type": "web_search_call", "status": "completed",
                          "action": {"type": "search", "query": text_of(prompt)[:80]}})
        if gen.visible_tokens:
            annotations = []
            if searches and len(gen.text) > 20:
                n = stable_int("cite", prompt) % 1000
                annotations.append({"type": "url_citation", "start_index": 0, "end_index": 20,
                                    "url": f"https://pitchfork.example/reviews/{n}", "title": f"Review {n}"})
            items.append({"id": self._id("msg"), "type": "message", "status": "incomplete" if gen.truncated
                          else "completed", "role": "assistant",
                          "content": [{"type": "output_text", "text": gen.text, "annotations": annotations}]})
        return items
