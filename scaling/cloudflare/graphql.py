"""The GraphQL Analytics client: one POST per query, every failure classified.

Each HTTP request takes a slot from the ``cloudflare`` limiter (300 / 5 min, shared
by every collector replica through the state store) and goes through its breaker.
It does not go through `scaling.fetch.Fetcher`: GraphQL's HTTP 429 means either
"budget spent" (a shared 5-minute cooldown) or "query too expensive" (ask for a
smaller window, no cooldown at all), and its errors mostly arrive under HTTP 200,
so the generic status-based classification would start cooldowns for expensive
queries and miss budget errors entirely. Only the limiter's and breaker's public
API is used.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from scaling.circuit_breaker import CircuitBreaker
from scaling.clock import Clock
from scaling.cloudflare.errors import CloudflareError, Problem, classify_messages
from scaling.rate_limit import RateLimiter
from scaling.settings import Secret

__all__ = ["BUDGET_COOLDOWN_S", "GraphQLClient", "JsonObject"]

#: "rate limiter budget depleted, try again after 5 minutes".
BUDGET_COOLDOWN_S = 300.0

JsonObject = dict[str, object]


@dataclass
class GraphQLStats:
    """Requests this client sent and how they ended (for the run report)."""

    requests: int = 0
    errors_under_200: int = 0
    by_problem: dict[str, int] | None = None

    def count(self, problem: Problem) -> None:
        self.by_problem = self.by_problem or {}
        self.by_problem[problem.value] = self.by_problem.get(problem.value, 0) + 1


class GraphQLClient:
    """Posts queries to ``{base_url}/graphql``.

    Args:
        http: the httpx client (real network, or the sandbox's transport).
        base_url: ``https://api.cloudflare.com/client/v4`` or the sandbox's.
        token: the API token (Account Analytics Read).
        limiter: the ``cloudflare`` upstream's limiter.
        breaker: its breaker (optional).
        clock: the injected clock (timeouts).
        timeout_s: per-request timeout.
    """

    def __init__(self, http: httpx.AsyncClient, base_url: str, token: Secret, limiter: RateLimiter, *,
                 breaker: CircuitBreaker | None, clock: Clock, timeout_s: float = 30.0) -> None:
        self.http = http
        self.url = base_url.rstrip("/") + "/graphql"
        self._token = token
        self.limiter = limiter
        self.breaker = breaker
        self.clock = clock
        self.timeout_s = timeout_s
        self.stats = GraphQLStats()

    async def query(self, query: str, variables: Mapping[str, object], *, max_wait_s: float = 10.0) -> JsonObject:
        """Run one query; returns its ``data`` object.

        Raises:
            CloudflareError: any failure, with its `Problem` (budget errors also start
                the shared 5-minute cooldown).
            RateLimited: no limiter slot within ``max_wait_s`` (e.g. another replica hit the budget).
            CircuitOpen: the breaker is open.
        """
        ticket = self.breaker.before_call() if self.breaker else None
        await self.limiter.acquire(max_wait=max_wait_s)
        self.stats.requests += 1
        headers = {"Authorization": f"Bearer {self._token.reveal()}", "Content-Type": "application/json"}
        try:
            response = await asyncio.wait_for(
                self.http.post(self.url, json={"query": query, "variables": dict(variables)}, headers=headers),
                timeout=self.timeout_s)
        except (TimeoutError, httpx.TransportError) as exc:
            if self.breaker and ticket is not None:
                self.breaker.record_failure(ticket)
            raise CloudflareError(f"Cloudflare GraphQL: {exc.__class__.__name__}", problem=Problem.TRANSIENT,
                                  upstream="cloudflare", endpoint="/graphql") from None
        body = _json(response)
        data = body.get("data") if isinstance(body, dict) else None
        errors = _errors(body)
        if response.status_code == 200 and not errors and isinstance(data, dict):
            if self.breaker and ticket is not None:
                self.breaker.record_success(ticket)
            return data
        messages = [m for m, _ in errors]
        codes = [c for _, c in errors if c]
        problem = (classify_messages(response.status_code, messages, codes) if errors or response.status_code != 200
                   else Problem.MALFORMED)
        self.stats.count(problem)
        if response.status_code == 200 and errors:
            self.stats.errors_under_200 += 1
        if self.breaker and ticket is not None:
            # Only the service's ill health trips the breaker; throttling and our own query's faults do not.
            (self.breaker.record_failure if problem is Problem.TRANSIENT else self.breaker.record_success)(ticket)
        if problem is Problem.BUDGET:
            self.limiter.record_429(BUDGET_COOLDOWN_S)
        first = messages[0] if messages else f"HTTP {response.status_code}, no data"
        raise CloudflareError(f"Cloudflare GraphQL {problem.value}: {first[:300]}", problem=problem,
                              upstream="cloudflare", endpoint="/graphql", status=response.status_code,
                              messages=messages)


def _json(response: httpx.Response) -> object:
    try:
        return json.loads(response.content) if response.content else None
    except (ValueError, UnicodeDecodeError):
        return None


def _errors(body: object) -> list[tuple[str, str | None]]:
    """(message, extensions.code) of each error; a non-empty list is a failure whatever the status."""
    if not isinstance(body, dict) or not isinstance(body.get("errors"), list):
        return []
    out: list[tuple[str, str | None]] = []
    for err in body["errors"]:
        if isinstance(err, dict):
            ext = err.get("extensions")
            code = ext.get("code") if isinstance(ext, dict) else None
            out.append((str(err.get("message", "")), str(code) if code is not None else None))
        else:
            out.append((str(err), None))
    return out
