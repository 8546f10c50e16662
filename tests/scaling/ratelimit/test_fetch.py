"""The fetch wrapper against scripted upstream answers (httpx.MockTransport), in virtual time."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from scaling.circuit_breaker import BreakerState, CircuitBreaker
from scaling.clock import VirtualClock
from scaling.errors import (
    CircuitOpen,
    MalformedResponse,
    PermanentError,
    QuotaExhausted,
    RateLimited,
    Throttled,
    TransientError,
)
from scaling.fetch import Fetcher
from scaling.rate_limit import RateLimiter
from scaling.settings import RateSpec
from scaling.store.memory import MemoryStore


class Script:
    """Answers in order, then the last one forever; records when each request came."""

    def __init__(self, clock: VirtualClock, *answers: Callable[[httpx.Request], httpx.Response]) -> None:
        self.clock = clock
        self.answers = list(answers)
        self.times: list[float] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.times.append(self.clock.now())
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request)


def ok(body: object = None) -> Callable[[httpx.Request], httpx.Response]:
    return lambda r: httpx.Response(200, json=body if body is not None else {"ok": True})


def status(code: int, body: object = None, headers: dict[str, str] | None = None
           ) -> Callable[[httpx.Request], httpx.Response]:
    return lambda r: httpx.Response(code, content=json.dumps(body or {}).encode(), headers=headers or {})


def make(clock: VirtualClock, script: Script, upstream: str = "spotify", *, budget: float = 30.0,
         limit: str = "600/60s", breaker: bool = True) -> Fetcher:
    store = MemoryStore()
    client = httpx.AsyncClient(transport=httpx.MockTransport(script), base_url="http://up")
    lim = RateLimiter(store, upstream, RateSpec.parse(limit), clock=clock)
    br = CircuitBreaker(store, upstream, clock=clock) if breaker else None
    return Fetcher(client, upstream, lim, breaker=br, clock=clock, budget_s=budget)


def test_ok_answer_is_returned_with_its_body(clock: VirtualClock) -> None:
    """A 200 comes back parsed, after one attempt."""
    script = Script(clock, ok({"id": "a"}))
    f = make(clock, script)
    res = clock.run(f.request("GET", "/v1/albums/a"))
    assert res.body == {"id": "a"} and res.attempts == 1


def test_429_cools_down_for_retry_after_then_succeeds(clock: VirtualClock) -> None:
    """After a 429 with Retry-After: 7 the retry goes out 7 s later, not sooner."""
    script = Script(clock, status(429, headers={"Retry-After": "7"}), ok())
    f = make(clock, script)
    res = clock.run(f.request("GET", "/v1/albums/a"))
    assert res.attempts == 2
    assert script.times[1] - script.times[0] >= 7.0
    assert f.limiter.headroom().upstream_429 == 1
    assert f.breaker is not None and f.breaker.snapshot().state is BreakerState.CLOSED


def test_http_date_retry_after_is_honoured(clock: VirtualClock) -> None:
    """A Retry-After date (which the upstream app read as NaN) sets a real cooldown."""
    from email.utils import formatdate

    when = formatdate(clock.now() + 20, usegmt=True)
    script = Script(clock, status(429, headers={"Retry-After": when}), ok())
    f = make(clock, script)
    clock.run(f.request("GET", "/x"))
    assert script.times[1] - script.times[0] >= 20.0 - 1e-6


def test_ban_longer_than_budget_fails_fast(clock: VirtualClock) -> None:
    """A 37,000 s Retry-After with a 30 s budget raises Throttled at once, without waiting."""
    script = Script(clock, status(429, headers={"Retry-After": "37000"}))
    f = make(clock, script)
    t0 = clock.now()
    with pytest.raises(Throttled) as info:
        clock.run(f.request("GET", "/x"))
    assert clock.now() - t0 < 1 and info.value.retry_after == pytest.approx(37000)
    # ... and everyone else is now held back without calling the upstream.
    with pytest.raises(RateLimited):
        clock.run(f.request("GET", "/x"))
    assert len(script.times) == 1


def test_lastfm_error_29_under_200_is_throttling(clock: VirtualClock) -> None:
    """Last.fm's rate-limit error inside a 200 triggers the cooldown and a retry."""
    script = Script(clock, ok({"error": 29, "message": "Rate limit exceeded"}), ok({"recenttracks": {}}))
    f = make(clock, script, "lastfm")
    res = clock.run(f.request("GET", "/2.0/"))
    assert res.body == {"recenttracks": {}} and f.stats.upstream_429 == 1


def test_quota_is_never_retried(clock: VirtualClock) -> None:
    """insufficient_quota raises QuotaExhausted after one attempt."""
    script = Script(clock, status(429, {"error": {"code": "insufficient_quota", "message": "pay"}}))
    f = make(clock, script, "openai")
    with pytest.raises(QuotaExhausted):
        clock.run(f.request("POST", "/v1/chat/completions"))
    assert len(script.times) == 1


def test_transient_errors_are_retried_with_backoff(clock: VirtualClock) -> None:
    """502 then 503 then 200: three attempts, spaced by backoff."""
    script = Script(clock, status(502), status(503), ok())
    f = make(clock, script)
    res = clock.run(f.request("GET", "/x"))
    assert res.attempts == 3
    assert script.times[1] > script.times[0] and script.times[2] > script.times[1]


def test_transient_errors_exhaust_attempts(clock: VirtualClock) -> None:
    """Persistent 503s end in TransientError naming the upstream and endpoint."""
    f = make(clock, Script(clock, status(503)))
    with pytest.raises(TransientError, match="spotify /v1/albums/a"):
        clock.run(f.request("GET", "/v1/albums/a"))
    assert f.stats.attempts == 3


def test_permanent_errors_are_not_retried(clock: VirtualClock) -> None:
    """A 404 raises PermanentError with the status, after one attempt."""
    script = Script(clock, status(404, {"error": {"status": 404, "message": "non existing id"}}))
    f = make(clock, script)
    with pytest.raises(PermanentError) as info:
        clock.run(f.request("GET", "/v1/albums/zz"))
    assert info.value.status == 404 and len(script.times) == 1


def test_malformed_body_is_a_typed_error(clock: VirtualClock) -> None:
    """A truncated body raises MalformedResponse, never a JSON traceback."""
    script = Script(clock, lambda r: httpx.Response(200, content=b'{"albums": [{"id"'))
    with pytest.raises(MalformedResponse, match="spotify"):
        clock.run(make(clock, script).request("GET", "/v1/albums"))


def test_timeout_is_measured_on_the_injected_clock(clock: VirtualClock) -> None:
    """An upstream that hangs for minutes times out after 10 virtual seconds per attempt."""
    async def hang(request: httpx.Request) -> httpx.Response:
        await clock.sleep(600)
        return httpx.Response(200, json={})

    store = MemoryStore()
    client = httpx.AsyncClient(transport=httpx.MockTransport(hang), base_url="http://up")
    lim = RateLimiter(store, "spotify", RateSpec.parse("600/60s"), clock=clock)
    f = Fetcher(client, "spotify", lim, clock=clock, timeout_s=10, budget_s=60)
    t0 = clock.now()
    with pytest.raises(TransientError, match="no answer"):
        clock.run(f.request("GET", "/x"))
    assert clock.now() - t0 <= 60


def test_budget_caps_the_whole_call(clock: VirtualClock) -> None:
    """Retries stop when the budget is spent: a cron's deadline is never blown."""
    f = make(clock, Script(clock, status(503)), budget=3.0)
    t0 = clock.now()
    with pytest.raises(TransientError):
        clock.run(f.request("GET", "/x"))
    assert clock.now() - t0 <= 3.0 + 1e-6


def test_breaker_opens_after_five_failures_and_429s_do_not_count(clock: VirtualClock) -> None:
    """100 429s leave the breaker closed; 5 consecutive 5xx open it and calls stop."""
    script = Script(clock, status(429, headers={"Retry-After": "0"}))
    f = make(clock, script, budget=1000, limit="100000/1s")
    for _ in range(34):
        with pytest.raises(Throttled):
            clock.run(f.request("GET", "/x", budget_s=0.001))
    assert f.breaker is not None and f.breaker.snapshot().state is BreakerState.CLOSED
    f2 = make(clock, Script(clock, status(503)), budget=100)
    with pytest.raises(TransientError):
        clock.run(f2.request("GET", "/x"))  # attempts 1-3 fail
    with pytest.raises(CircuitOpen):
        clock.run(f2.request("GET", "/x"))  # attempts 4-5 fail, the 5th opens it, the 3rd is refused
    assert len(f2_script_times(f2)) == 5
    assert f2.breaker is not None and f2.breaker.snapshot().state is BreakerState.OPEN
    with pytest.raises(CircuitOpen):
        clock.run(f2.request("GET", "/x"))


def f2_script_times(f: Fetcher) -> list[float]:
    return f.client._transport.handler.times  # type: ignore[attr-defined]


def test_token_reservation_is_settled_from_usage(clock: VirtualClock) -> None:
    """An AI call reserves prompt + max tokens and settles to the usage the body reports."""
    script = Script(clock, ok({"usage": {"total_tokens": 120}}))
    store = MemoryStore()
    client = httpx.AsyncClient(transport=httpx.MockTransport(script), base_url="http://up")
    lim = RateLimiter(store, "openai", RateSpec.parse("600/60s"), tokens=RateSpec.parse("8000/60s"), clock=clock)
    f = Fetcher(client, "openai", lim, clock=clock)
    clock.run(f.request("POST", "/v1/chat/completions", tokens=2000,
                        usage_tokens=lambda b: b["usage"]["total_tokens"]))
    # Only 120 tokens stay charged, which refill in 1.2 s; unsettled, the next 2000-token call would wait 20 s.
    p = clock.run(lim.acquire(tokens=2000, max_wait=30))
    assert p.waited == pytest.approx(1.2, rel=1e-3)
