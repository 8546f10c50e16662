"""A throttle without Retry-After costs about one window, not a fixed 5 s (side by side,
virtual time: limiter 19/s against the sandbox's true 20/s rolling window)."""

from __future__ import annotations

import httpx
import pytest

from scaling.clock import VirtualClock
from scaling.settings import RateSpec
from scaling.store.memory import MemoryStore
from scaling.store.outage import OutagePolicy
from tests.faults.stack import LastfmStack

pytestmark = pytest.mark.faults

CALLS = 8 * 40


class _OneThrottle(httpx.AsyncBaseTransport):
    """The sandbox, except that the 50th request gets one throttle answer instead."""

    def __init__(self, inner: httpx.AsyncBaseTransport, answer: httpx.Response) -> None:
        self.inner, self.answer, self.seen = inner, answer, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen += 1
        if self.seen == 50:
            return self.answer
        return await self.inner.handle_async_request(request)


def _achieved_rate(answer: httpx.Response) -> tuple[float, int, int]:
    clock = VirtualClock()
    stack = LastfmStack(MemoryStore(), clock, policy=OutagePolicy.CLOSED, limit="19/1s", upstream=RateSpec(20, 1.0))
    stack.fetcher.client = httpx.AsyncClient(base_url="http://lastfm.sandbox",
                                             transport=_OneThrottle(stack.sandbox.direct_transport(), answer))
    stack.fetcher.budget_s = 30.0
    start = clock.now()
    clock.run(stack.callers(8, 40))
    return stack.tally.ok / (clock.now() - start), stack.over_limit(), stack.tally.ok


def test_one_error_29_costs_about_a_window() -> None:
    """One Last.fm error 29 (no Retry-After) keeps the achieved rate near 19/s; a 5 s ban would cut it."""
    error_29 = httpx.Response(200, json={"error": 29, "message": "Rate limit exceeded"})
    five_s = httpx.Response(429, json={"error": 29, "message": "Rate limit exceeded"}, headers={"Retry-After": "5"})
    rate, over, ok = _achieved_rate(error_29)
    old_rate, _, _ = _achieved_rate(five_s)
    print(f"\n[faults] one error 29 over {CALLS} calls: achieved {rate:.2f} req/s (a 5 s cooldown: {old_rate:.2f})")
    assert ok == CALLS and over == 0
    assert rate >= 17.5 and rate > old_rate + 1.5
