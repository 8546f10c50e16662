"""Helpers for client tests: recorded real-API fixtures served by a scripted fake API."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from scaling.clock import VirtualClock
from scaling.services import Services
from scaling.settings import Settings
from scaling.store.memory import MemoryStore

FIXTURES = Path(__file__).parent / "fixtures"

Answer = httpx.Response | Callable[[httpx.Request], httpx.Response]


def fixture(name: str) -> Any:
    """A hand-written real-API fixture (``fixtures/<name>.json``)."""
    return json.loads((FIXTURES / f"{name}.json").read_text())


def error_cases(upstream: str) -> list[tuple[str, dict[str, Any]]]:
    return [(case["name"], case) for case in fixture("errors")[upstream]]


def error_response(case: dict[str, Any]) -> httpx.Response:
    if "text" in case:
        return httpx.Response(case["status"], text=case["text"], headers={"content-type": "text/html"})
    return httpx.Response(case["status"], json=case["body"], headers=case.get("headers", {}))


class FakeApi:
    """Scripted answers per (method, path); the last answer repeats. Records every request."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Answer]] = {}
        self.requests: list[httpx.Request] = []

    def on(self, method: str, path: str, *answers: Answer | Any) -> FakeApi:
        self.routes[(method, path)] = [a if isinstance(a, httpx.Response) or callable(a)
                                       else httpx.Response(200, json=a) for a in answers]
        return self

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answers = self.routes.get((request.method, request.url.path))
        if not answers:
            return httpx.Response(404, json={"error": {"status": 404, "message": "no route in FakeApi"}})
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        return answer(request) if callable(answer) and not isinstance(answer, httpx.Response) else answer

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)

    def calls(self, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == path]


def services(clock: VirtualClock, transport: httpx.AsyncBaseTransport, **settings: Any) -> Services:
    """Services on a memory store and the given transport, with sandbox-default settings."""
    return Services(Settings.defaults(**settings), clock=clock, store=MemoryStore(), transport=transport)


def spotify_api() -> FakeApi:
    """A fake Spotify whose token endpoint answers the real token fixture."""
    return FakeApi().on("POST", "/api/token", fixture("spotify_token"))


def run(clock: VirtualClock, api: FakeApi, fn: Callable[[Services], Any]) -> Any:
    """Run ``await fn(services)`` in virtual time against ``api``, closing the services after."""
    svc = services(clock, api.transport())

    async def main() -> Any:
        try:
            return await fn(svc)
        finally:
            await svc.aclose()

    return clock.run(main())
