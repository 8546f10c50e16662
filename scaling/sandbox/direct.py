"""`DirectTransport`: httpx requests straight to the sandbox's endpoint handlers.

`SandboxTransport` goes through ``httpx.ASGITransport`` and Starlette's middleware
and router; per request that is a few hundred microseconds of plumbing (and a
failed ``import sniffio``), which dominates a simulated day of ~40k calls. This
transport matches the endpoint itself, in the router's order, builds the Starlette
``Request`` the handler would have seen from the same ASGI scope, and turns the
handler's ``Response`` into an ``httpx.Response`` with the same status, headers and
body. Anything it does not route (the ``/_sandbox`` endpoints, a wrong method or
path) goes through the ASGI path, so 404s and 405s are Starlette's own.

The sandbox's behaviour is untouched: the same `Sandbox.serve` draws the same
faults, sleeps the same latency and counts the same stats, so a run through either
transport answers identically.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import httpx
from starlette.requests import Request
from starlette.routing import compile_path

from scaling.sandbox.answer import Endpoint

if TYPE_CHECKING:
    from scaling.sandbox.app import Sandbox

__all__ = ["Router"]

_Match = tuple[Endpoint, dict[str, Any]]


class Router:
    """The sandbox's endpoints matched as Starlette's router would (first full match wins).

    Args:
        endpoints: in route order.
    """

    def __init__(self, endpoints: list[Endpoint]) -> None:
        self._routes: list[tuple[str, re.Pattern[str], dict[str, Any], Endpoint]] = []
        for ep in endpoints:
            regex, _, convertors = compile_path(ep.path)
            self._routes.append((ep.method, regex, convertors, ep))

    def match(self, method: str, path: str) -> _Match | None:
        """The endpoint and path parameters for a request, or None (let Starlette answer)."""
        for ep_method, regex, convertors, ep in self._routes:
            if ep_method != method:
                continue
            m = regex.match(path)
            if m is not None:
                params = {k: convertors[k].convert(v) for k, v in m.groupdict().items()}
                return ep, params
        return None


async def send_direct(sandbox: Sandbox, router: Router, request: httpx.Request, client: tuple[str, int],
                      fallback: Callable[[httpx.Request], Awaitable[httpx.Response]]) -> httpx.Response:
    """Answer ``request`` from the handler it routes to, or through ``fallback`` (ASGI)."""
    url = request.url
    path = url.path
    found = router.match(request.method, path)
    if found is None:
        return await fallback(request)
    headers = [(k.lower(), v) for k, v in request.headers.raw]
    return await serve_routed(sandbox, found, request.method, url.scheme, (url.host, url.port), path,
                              url.raw_path.split(b"?")[0], url.query, headers, await request.aread(), client)


async def serve_routed(sandbox: Sandbox, found: _Match, method: str, scheme: str, server: tuple[str, int | None],
                       path: str, raw_path: bytes, query: bytes, headers: list[tuple[bytes, bytes]], body: bytes,
                       client: tuple[str, int]) -> httpx.Response:
    """The routed endpoint's answer to one request given by its parts."""
    ep, params = found
    # The scope ASGITransport would build, plus what Starlette's router adds.
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "headers": headers, "scheme": scheme, "path": path, "raw_path": raw_path,
             "query_string": query, "server": server, "client": client, "root_path": "", "path_params": params}
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    response = await sandbox.serve(ep, Request(scope, receive))
    content = response.body if isinstance(response.body, bytes) else bytes(response.body)
    return httpx.Response(response.status_code, headers=response.raw_headers, content=content)
