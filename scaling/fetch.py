"""The one way every upstream call is made: acquire → request → classify → retry.

`Fetcher` wraps an ``httpx.AsyncClient`` it is given (it never builds its own). Per
attempt it asks the breaker, takes a limiter slot within what is left of the call's
budget, sends with a timeout on the injected clock, and classifies the answer:

- ok: return it (and settle reserved AI tokens from the body's usage);
- throttled (429, Last.fm 29 even under HTTP 200): start the shared cooldown for
  as long as Retry-After says, then retry through the limiter, unless the cooldown
  outlasts the budget: then fail fast with `Throttled`;
- quota exhausted: `QuotaExhausted` at once, never retried;
- transient (502/503/504, timeouts, connection errors) and malformed bodies:
  count against the breaker, back off with jitter (stamina) and retry;
- permanent (other 4xx): `PermanentError` at once.

The budget caps the whole call, waits included, so a cron never blows its deadline.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import stamina
import stamina.instrumentation

from scaling.circuit_breaker import CircuitBreaker, Ticket
from scaling.classify import Answer, Outcome, classify
from scaling.clock import Clock, SystemClock
from scaling.errors import (
    MalformedResponse,
    PermanentError,
    QuotaExhausted,
    Throttled,
    TransientError,
    UpstreamError,
)
from scaling.rate_limit import RateLimiter

__all__ = ["FetchResult", "FetchStats", "Fetcher", "Sender"]

log = logging.getLogger("headroom.fetch")


def _retry_scheduled(details: stamina.instrumentation.RetryDetails) -> None:
    # stamina's own hook logs every retry raw at WARNING; ours is one DEBUG line (the
    # fetch stats count retries, and the breaker and limiter warn when it matters).
    log.debug("retry %d of %s in %.2fs after %s: %s", details.retry_num, details.name, details.wait_for,
              type(details.caused_by).__name__, details.caused_by)


stamina.instrumentation.set_on_retry_hooks([_retry_scheduled])


class Sender(Protocol):
    """What a `Fetcher` sends with: ``httpx.AsyncClient`` in production; the simulator's
    `scaling.sandbox.direct_client.DirectClient` calls the sandbox's handlers in-process.
    These keyword arguments are the ones the upstream clients pass through `Fetcher.request`."""

    async def request(self, method: str, url: str, *, params: Any = ..., headers: Any = ..., json: Any = ...,
                      data: Any = ..., auth: Any = ...) -> httpx.Response: ...


@dataclass(frozen=True, slots=True)
class FetchResult:
    """A successful answer.

    Attributes:
        status: HTTP status.
        body: the parsed JSON body.
        headers: response headers.
        attempts: HTTP attempts made (1 = no retry).
        waited_s: seconds spent waiting for limiter slots and cooldowns.
    """

    status: int
    body: Any
    headers: httpx.Headers
    attempts: int
    waited_s: float


@dataclass
class FetchStats:
    """Counters one `Fetcher` keeps (per process), for run reports."""

    calls: int = 0
    attempts: int = 0
    ok: int = 0
    upstream_429: int = 0
    transient: int = 0
    failed: int = 0
    waited_s: float = 0.0
    by_outcome: dict[str, int] = field(default_factory=dict)


class _Retry(Exception):
    """An attempt that may be retried; carries the classified answer."""

    def __init__(self, error: UpstreamError, answer: Answer | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.answer = answer


class Fetcher:
    """Resilient calls to one upstream.

    Args:
        client: what to send with: an httpx client (real network, ASGI or mock transport) or another `Sender`.
        upstream: the upstream's name (used in errors, the breaker and classification).
        limiter: its rate limiter.
        breaker: its circuit breaker (optional).
        clock: time source for budgets and timeouts.
        timeout_s: per-attempt timeout.
        budget_s: default total budget per call, waits included.
        max_attempts: HTTP attempts per call.
        backoff_max_s: the longest backoff between transient retries.
    """

    def __init__(self, client: Sender, upstream: str, limiter: RateLimiter, *,
                 breaker: CircuitBreaker | None = None, clock: Clock | None = None, timeout_s: float = 10.0,
                 budget_s: float = 30.0, max_attempts: int = 3, backoff_max_s: float = 4.0) -> None:
        self.client = client
        self.upstream = upstream
        self.limiter = limiter
        self.breaker = breaker
        self.clock: Clock = clock or SystemClock()
        self.timeout_s = timeout_s
        self.budget_s = budget_s
        self.max_attempts = max_attempts
        self.backoff_max_s = backoff_max_s
        self.stats = FetchStats()

    async def request(self, method: str, url: str, *, endpoint: str | None = None, tokens: int = 0,
                      budget_s: float | None = None, slot_budget_s: float | None = None,
                      usage_tokens: Callable[[Any], int] | None = None, **kwargs: Any) -> FetchResult:
        """Make one logical call, retrying as the answer allows.

        Args:
            method: HTTP method.
            url: absolute URL or a path relative to the client's base URL.
            endpoint: a secret-free name for errors and logs (defaults to the path).
            tokens: AI tokens to reserve on the token rate (prompt + max output).
            budget_s: total seconds this call may take, waits included.
            slot_budget_s: the longest wait for a limiter slot (default: the whole budget);
                a cron passes its deadline minus the expected latency, so it never
                takes a slot it cannot use.
            usage_tokens: reads the actual token usage from a successful body, to settle the reservation.
            **kwargs: passed to ``httpx.AsyncClient.request`` (params, json, headers, auth ...).

        Raises:
            RateLimited: no limiter slot within the budget (nothing was sent).
            CircuitOpen: the upstream's breaker is open (nothing was sent).
            Throttled, QuotaExhausted, TransientError, PermanentError, MalformedResponse.
            StoreError: the state store is down and the limiter fails closed.
        """
        name = endpoint or _path(url)
        start = self.clock.now()
        deadline = start + (self.budget_s if budget_s is None else budget_s)
        send_by = deadline if slot_budget_s is None else min(deadline, start + slot_budget_s)
        self.stats.calls += 1
        attempts = 0
        waited = 0.0

        def should_retry(exc: Exception) -> bool | float:
            if not isinstance(exc, _Retry):
                return False
            remaining = deadline - self.clock.now()
            if isinstance(exc.error, Throttled):
                # The limiter holds everyone back until the cooldown ends; go straight to it.
                return 0.0 if remaining > 0 else False
            return remaining > self.backoff_max_s

        def done(result: httpx.Response, body: Any) -> FetchResult:
            self.stats.ok += 1
            self.stats.waited_s += waited
            return FetchResult(result.status_code, body, result.headers, attempts, waited)

        try:
            # Most calls succeed at once: make the first attempt before building stamina's
            # retry machinery (a noticeable cost per call). A retryable failure is then
            # replayed as stamina's first attempt, so its backoff, hooks and attempt
            # count are exactly those of a loop that had been entered up front.
            failed: _Retry | None = None
            attempts += 1
            try:
                result, body, slot_wait = await self._attempt(method, url, name, tokens, deadline, send_by,
                                                              usage_tokens, kwargs)
            except _Retry as exc:
                failed = exc
            else:
                waited += slot_wait
                return done(result, body)
            async for attempt in stamina.retry_context(on=should_retry, attempts=self.max_attempts, timeout=None,
                                                       wait_initial=0.25, wait_max=self.backoff_max_s,
                                                       wait_jitter=0.5):
                with attempt:
                    if failed is not None:
                        first, failed = failed, None
                        raise first
                    attempts += 1
                    result, body, slot_wait = await self._attempt(method, url, name, tokens, deadline, send_by,
                                                                  usage_tokens, kwargs)
                    waited += slot_wait
                    return done(result, body)
        except _Retry as exc:
            self.stats.failed += 1
            raise exc.error from None
        except UpstreamError:
            self.stats.failed += 1
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, method: str, url: str, name: str, tokens: int, deadline: float, send_by: float,
                       usage_tokens: Callable[[Any], int] | None, kwargs: dict[str, Any]
                       ) -> tuple[httpx.Response, Any, float]:
        ticket = await self.breaker.abefore_call() if self.breaker else Ticket()
        now = self.clock.now()
        permit = await self.limiter.acquire(tokens=tokens, max_wait=max(0.0, send_by - now))
        remaining = deadline - self.clock.now()
        if remaining <= 0:
            raise TransientError("call budget spent before sending", upstream=self.upstream, endpoint=name)
        self.stats.attempts += 1
        try:
            response = await asyncio.wait_for(self.client.request(method, url, **kwargs),
                                              timeout=min(self.timeout_s, remaining))
        except (TimeoutError, httpx.TimeoutException):
            self._count("timeout")
            await self._failure(ticket)
            raise _Retry(TransientError(f"no answer within {min(self.timeout_s, remaining):.1f}s",
                                        upstream=self.upstream, endpoint=name), None) from None
        except httpx.TransportError as exc:
            self._count("connection")
            await self._failure(ticket)
            raise _Retry(TransientError(f"connection failed: {exc.__class__.__name__}", upstream=self.upstream,
                                        endpoint=name), None) from None
        answer = classify(self.upstream, response, now=self.clock.now())
        self._count(answer.outcome.value)
        if answer.outcome is Outcome.OK:
            await self._success(ticket)
            if usage_tokens is not None:
                try:
                    used = int(usage_tokens(answer.body))
                except (KeyError, TypeError, ValueError, AttributeError):
                    used = permit.tokens  # unknown usage: keep the reservation rather than guess low
                await self.limiter.asettle(permit, used)
            return response, answer.body, permit.waited
        await self.limiter.asettle(permit, permit.tokens)
        if answer.outcome is Outcome.THROTTLED:
            self.stats.upstream_429 += 1
            await self._success(ticket)  # throttling is not ill health
            cooldown = await self.limiter.arecord_429(answer.retry_after)
            err = Throttled(answer.detail, upstream=self.upstream, endpoint=name, status=answer.status,
                            retry_after=cooldown)
            if self.clock.now() + cooldown > deadline:
                raise err  # a ban longer than our budget: fail fast, do not queue into it
            raise _Retry(err, answer)
        if answer.outcome is Outcome.QUOTA:
            await self._success(ticket)
            raise QuotaExhausted(answer.detail, upstream=self.upstream, endpoint=name, status=answer.status)
        if answer.outcome is Outcome.PERMANENT:
            await self._success(ticket)
            raise PermanentError(answer.detail, upstream=self.upstream, endpoint=name, status=answer.status)
        await self._failure(ticket)
        if answer.outcome is Outcome.MALFORMED:
            raise _Retry(MalformedResponse(answer.detail, upstream=self.upstream, endpoint=name,
                                           status=answer.status), answer)
        self.stats.transient += 1
        raise _Retry(TransientError(answer.detail, upstream=self.upstream, endpoint=name, status=answer.status),
                     answer)

    def _count(self, outcome: str) -> None:
        self.stats.by_outcome[outcome] = self.stats.by_outcome.get(outcome, 0) + 1

    async def _success(self, ticket: Ticket) -> None:
        # Never raises for the store: the answer is in hand and is returned whatever happens.
        if self.breaker:
            await self.breaker.arecord_success(ticket)

    async def _failure(self, ticket: Ticket) -> None:
        if self.breaker:
            await self.breaker.arecord_failure(ticket)


@functools.lru_cache(maxsize=4096)
def _path(url: str) -> str:
    """The path of a request URL, for errors and logs (parsing a URL costs more than a call's
    own bookkeeping, and the same few URLs recur)."""
    return httpx.URL(url).path or url

