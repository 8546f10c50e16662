"""Simulated OpenAI: usage blocks, web search, reasoning, prompt caching, rate-limit headers, 429s, quota."""

from __future__ import annotations

import httpx

from scaling.clock import VirtualClock
from scaling.sandbox import Sandbox, SandboxConfig
from scaling.settings import RateSpec
from tests.scaling.sandbox.conftest import OPENAI, drive

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "You write about music."},
                                             {"role": "user", "content": "Describe Kid A in one paragraph."}],
        "max_tokens": 300}
RESPONSES = {"model": "gpt-5.6-terra", "instructions": "Be brief.", "input": "Summarise the artist Radiohead.",
             "max_output_tokens": 1500, "tools": [{"type": "web_search"}]}
RATE_HEADERS = [f"x-ratelimit-{what}-{unit}" for what in ("limit", "remaining", "reset")
                for unit in ("requests", "tokens")]


def _post(clock: VirtualClock, sandbox: Sandbox, path: str, *bodies: dict) -> list[httpx.Response]:
    async def go(http: httpx.AsyncClient) -> list[httpx.Response]:
        return [await http.post(path, json=body, headers=OPENAI) for body in bodies]

    return drive(clock, sandbox, go)


def test_chat_completion_usage_block(clock: VirtualClock, sandbox: Sandbox) -> None:
    """Chat answers choices[].message.content and usage with prompt/completion/total and both detail objects."""
    (r,) = _post(clock, sandbox, "/v1/chat/completions", CHAT)
    body = r.json()
    usage = body["usage"]
    assert r.status_code == 200 and body["model"] == "gpt-4o-mini"
    assert body["choices"][0]["message"]["content"] and body["choices"][0]["finish_reason"] == "stop"
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0
    assert 0 < usage["completion_tokens"] <= 300


def test_responses_usage_block_and_web_search_item(clock: VirtualClock, sandbox: Sandbox) -> None:
    """Responses answers usage{input,output,total + details} and a web_search_call item when the tool is offered."""
    without_tool = {k: v for k, v in RESPONSES.items() if k != "tools"}
    with_search, plain = _post(clock, sandbox, "/v1/responses", RESPONSES, without_tool)
    body = with_search.json()
    usage = body["usage"]
    assert body["model"] == "gpt-5.6-terra" and body["status"] == "completed"
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["input_tokens_details"]["cached_tokens"] == 0
    assert usage["output_tokens_details"]["reasoning_tokens"] > 0  # a gpt-5 model reasons
    assert usage["output_tokens"] <= 1500
    types = [item["type"] for item in body["output"]]
    assert "web_search_call" in types and types[-1] == "message"
    message = body["output"][-1]
    assert message["content"][0]["type"] == "output_text" and message["content"][0]["text"]
    assert "web_search_call" not in [item["type"] for item in plain.json()["output"]]


def test_same_prompt_answers_the_same(clock: VirtualClock, sandbox: Sandbox) -> None:
    """Token counts and text are a function of the request, so repeats are identical."""
    a, b = _post(clock, sandbox, "/v1/responses", RESPONSES, RESPONSES)
    assert a.json()["output"][-1] == {**b.json()["output"][-1], "id": a.json()["output"][-1]["id"]}
    assert a.json()["usage"]["output_tokens"] == b.json()["usage"]["output_tokens"]


def test_reasoning_can_eat_the_whole_output_budget(clock: VirtualClock, sandbox: Sandbox) -> None:
    """A gpt-5 call with a tiny max_output_tokens comes back incomplete, with no visible text."""
    (r,) = _post(clock, sandbox, "/v1/responses", {**RESPONSES, "max_output_tokens": 20, "tools": []})
    body = r.json()
    assert body["status"] == "incomplete" and body["incomplete_details"]["reason"] == "max_output_tokens"
    assert body["usage"]["output_tokens"] == 20 and "message" not in [i["type"] for i in body["output"]]


def test_a_repeated_long_prompt_gets_cached_tokens(clock: VirtualClock, sandbox: Sandbox) -> None:
    """A prompt of 1024+ tokens seen before is billed with cached tokens in 128-token steps; short prompts never."""
    long = {**CHAT, "messages": [{"role": "user", "content": "lyrics " * 1000}]}
    first, second, _short1, short2 = _post(clock, sandbox, "/v1/chat/completions", long, long, CHAT, CHAT)
    assert first.json()["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    prompt = second.json()["usage"]["prompt_tokens"]
    cached = second.json()["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert 1024 <= cached <= prompt and (cached - 1024) % 128 == 0 and prompt - cached < 128
    assert short2.json()["usage"]["prompt_tokens_details"]["cached_tokens"] == 0


def test_rate_limit_headers_on_every_success(clock: VirtualClock, sandbox: Sandbox) -> None:
    """Successes carry x-ratelimit-{limit,remaining,reset}-{requests,tokens}; remaining counts down."""
    a, b = _post(clock, sandbox, "/v1/chat/completions", CHAT, CHAT)
    for r in (a, b):
        assert all(h in r.headers for h in RATE_HEADERS)
    assert a.headers["x-ratelimit-limit-requests"] == "500" and a.headers["x-ratelimit-limit-tokens"] == "200000"
    assert int(a.headers["x-ratelimit-remaining-requests"]) - int(b.headers["x-ratelimit-remaining-requests"]) == 1
    assert a.headers["x-ratelimit-reset-requests"] == "1m0s"


def test_request_limit_answers_rate_limit_exceeded(clock: VirtualClock) -> None:
    """Over the request limit: 429 type requests, code rate_limit_exceeded, retry-after-ms and retry-after."""
    sandbox = Sandbox(SandboxConfig().with_upstream("openai", requests=RateSpec(3, 60.0)), clock)
    *ok, refused = _post(clock, sandbox, "/v1/chat/completions", CHAT, CHAT, CHAT, CHAT)
    assert [r.status_code for r in ok] == [200] * 3
    error = refused.json()["error"]
    assert refused.status_code == 429 and error["type"] == "requests" and error["code"] == "rate_limit_exceeded"
    assert refused.headers["retry-after-ms"] == "60000" and refused.headers["retry-after"] == "60"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert "requests per min (RPM): Limit 3, Used 3" in error["message"]


def test_token_limit_counts_max_tokens_up_front(clock: VirtualClock) -> None:
    """A request reserves prompt + max_tokens, so the second 600-token reservation overflows a 1000 TPM limit."""
    sandbox = Sandbox(SandboxConfig().with_upstream("openai", tokens=RateSpec(1000, 60.0)), clock)
    body = {**CHAT, "max_tokens": 600}
    ok, refused = _post(clock, sandbox, "/v1/chat/completions", body, body)
    assert ok.status_code == 200
    assert refused.status_code == 429 and refused.json()["error"]["type"] == "tokens"
    assert int(refused.headers["retry-after-ms"]) == 60000
    assert int(ok.headers["x-ratelimit-remaining-tokens"]) == 1000 - 600 - ok.json()["usage"]["prompt_tokens"]


def test_requests_pass_again_when_the_window_rolls(clock: VirtualClock) -> None:
    """After retry-after-ms the refused request passes."""
    sandbox = Sandbox(SandboxConfig().with_upstream("openai", requests=RateSpec(1, 60.0)), clock)

    async def go(http: httpx.AsyncClient) -> list[int]:
        await http.post("/v1/chat/completions", json=CHAT, headers=OPENAI)
        r = await http.post("/v1/chat/completions", json=CHAT, headers=OPENAI)
        await clock.sleep(int(r.headers["retry-after-ms"]) / 1000)
        return [r.status_code, (await http.post("/v1/chat/completions", json=CHAT, headers=OPENAI)).status_code]

    assert drive(clock, sandbox, go) == [429, 200]


def test_insufficient_quota_once_the_token_quota_is_spent(clock: VirtualClock) -> None:
    """After the quota is billed every call is 429 insufficient_quota, and waiting does not help."""
    sandbox = Sandbox(SandboxConfig.from_options(openai_token_quota=100), clock)

    async def go(http: httpx.AsyncClient) -> list[httpx.Response]:
        first = await http.post("/v1/chat/completions", json=CHAT, headers=OPENAI)
        second = await http.post("/v1/responses", json=RESPONSES, headers=OPENAI)
        await clock.sleep(3600)
        return [first, second, await http.post("/v1/chat/completions", json=CHAT, headers=OPENAI)]

    first, *refused = drive(clock, sandbox, go)
    assert first.status_code == 200
    for r in refused:
        assert r.status_code == 429
        assert r.json()["error"]["code"] == "insufficient_quota" and r.json()["error"]["type"] == "insufficient_quota"
    assert sandbox.stats().upstream("openai").quota == 2


def test_bad_requests_and_missing_keys(clock: VirtualClock, sandbox: Sandbox) -> None:
    """No API key is a 401; a body without a model is a 400 invalid_request_error."""
    async def go(http: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response]:
        return (await http.post("/v1/chat/completions", json=CHAT),
                await http.post("/v1/chat/completions", json={"messages": []}, headers=OPENAI))

    no_key, no_model = drive(clock, sandbox, go)
    assert no_key.status_code == 401 and no_key.json()["error"]["message"]
    assert no_model.status_code == 400 and no_model.json()["error"]["type"] == "invalid_request_error"
