"""What a simulated endpoint returns before faults and serialisation: an `Answer`.

Handlers are ``async (request, now) -> Answer``; the app turns answers into HTTP
responses, corrupting some on purpose and counting every one.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from scaling.sandbox.stats import Outcome

__all__ = ["Answer", "Endpoint", "Handler", "basic", "bearer", "key_label", "read_form", "read_json"]


@dataclass(frozen=True, slots=True)
class Answer:
    """One simulated answer.

    Attributes:
        status: HTTP status.
        body: a JSON-ready value.
        headers: extra response headers.
        outcome: how stats count it; None derives it from the status.
        key: the client key the limit was kept under (shown in stats; no secrets).
        content_type: the media type; a ``bytes`` body is sent as is.
    """

    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)
    outcome: Outcome | None = None
    key: str | None = None
    content_type: str = "application/json"

    def counted_as(self) -> Outcome:
        if self.outcome is not None:
            return self.outcome
        if self.status == 429:
            return Outcome.RATE_LIMITED
        if self.status >= 500:
            return Outcome.SERVER_ERROR
        if self.status >= 400:
            return Outcome.CLIENT_ERROR
        return Outcome.OK

    def encode(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False).encode()


Handler = Callable[[Request, float], Awaitable[Answer]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One route of one upstream.

    Attributes:
        upstream: the upstream it belongs to (faults and stats are per upstream).
        method: the HTTP method.
        path: the real API's path (Starlette syntax, e.g. ``/v1/albums/{id}``).
        name: the stats name, or a function of the request (Last.fm's ``method``).
        handler: ``async (request, now) -> Answer``; ``now`` is when the request is seen.
    """

    upstream: str
    method: str
    path: str
    name: str | Callable[[Request], str]
    handler: Handler


def bearer(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def basic(request: Request) -> tuple[str, str] | None:
    """The (user, password) of an ``Authorization: Basic`` header, or None."""
    scheme, _, blob = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(blob.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def key_label(key: str) -> str:
    """A key as stats show it: enough to tell keys apart, never the whole secret."""
    return key if len(key) <= 8 else key[:8] + "\u2026"


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (first value of each field)."""
    body = (await request.body()).decode("utf-8", "replace")
    return {k: v[0] for k, v in urllib.parse.parse_qs(body, keep_blank_values=True).items()}


async def read_json(request: Request) -> dict[str, Any] | None:
    """A JSON object body, or None if the body is not one."""
    try:
        value = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None
