"""`DirectClient`: what a `Fetcher` sends with, answered by the sandbox's handlers in-process.

A simulated day makes ~70k upstream calls, and through ``httpx.AsyncClient`` each pays
for building an ``httpx.Request`` (URL parsing and merging, header and cookie
handling) before any transport sees it: about 40% of a 1,000-user day. The simulator
hands each `Fetcher` this client instead. It takes exactly the keyword arguments
the upstream clients pass (``params``, ``headers``, ``json``, ``data``, ``auth``), encodes
them as httpx would (query values, compact JSON, form bodies, Basic auth), and calls
the routed endpoint through `serve_routed`, the function `DirectTransport` uses, so
the sandbox sees the same method, path, query, headers and body. Everything above the
client is the real service layer: fetcher, limiter, breaker, cache, classification.

What it skips, and why that cannot change an answer: cookies (no sandbox endpoint
sets one), redirects (none issued), the client-side read timeout (the `Fetcher`
already bounds every attempt by the same timeout or less). Anything it does not
route, and any absolute URL, goes through httpx and the ASGI app unchanged.
`bench/simulate.py` runs a day both ways and fails unless every number agrees.
"""

from __future__ import annotations

import base64
import json as jsonlib
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from scaling.sandbox.direct import serve_routed

if TYPE_CHECKING:
    from scaling.sandbox.app import Sandbox

__all__ = ["DirectClient"]

_USER_AGENT = f"python-httpx/{httpx.__version__}".encode()


class DirectClient:
    """A `scaling.fetch.Sender` into ``sandbox`` at ``base_url``.

    Args:
        sandbox: the in-process sandbox.
        base_url: the upstream's base URL (its path prefixes relative URLs, as httpx's does).
        on_send: called once per request before it is answered (the simulator's meter).
        client: the peer address the sandbox sees.
    """

    def __init__(self, sandbox: Sandbox, base_url: str, *, on_send: Callable[[], None] | None = None,
                 client: tuple[str, int] = ("127.0.0.1", 50000)) -> None:
        self._sandbox, self._on_send, self._client = sandbox, on_send, client
        self._base = httpx.URL(base_url)
        self._prefix = self._base.path.rstrip("/")
        self._server = (self._base.host, self._base.port)
        self._host = self._base.netloc
        self._fallback = sandbox.transport(client=client)

    async def request(self, method: str, url: str, *, params: Mapping[str, Any] | None = None,
                      headers: Mapping[str, str] | None = None, json: Any = None,
                      data: Mapping[str, Any] | None = None, auth: tuple[str, str] | None = None) -> httpx.Response:
        """Send one request; the same signature subset `Fetcher` uses of ``httpx.AsyncClient.request``."""
        if self._on_send is not None:
            self._on_send()
        path, _, query = url.partition("?")
        path = self._prefix + path
        found = None if "://" in url else self._sandbox.router.match(method, path)
        if found is None:
            return await self._via_httpx(method, url, params, headers, json, data, auth)
        if params:
            query = f"{query}&{_encode(params)}" if query else _encode(params)
        raw = [(b"host", self._host), (b"accept", b"*/*"), (b"accept-encoding", b"gzip, deflate"),
               (b"connection", b"keep-alive"), (b"user-agent", _USER_AGENT)]
        body = b""
        if json is not None:
            body = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
            raw += [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
        elif data is not None:
            body = _encode(data).encode()
            raw += [(b"content-length", str(len(body)).encode()),
                    (b"content-type", b"application/x-www-form-urlencoded")]
        for k, v in (headers or {}).items():
            raw.append((k.lower().encode("latin-1"), v.encode("latin-1")))
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            raw.append((b"authorization", f"Basic {token}".encode("latin-1")))
        return await serve_routed(self._sandbox, found, method, self._base.scheme, self._server, path,
                                  urllib.parse.quote(path, safe="/:@!$&'()*+,;=-._~").encode("ascii"),
                                  query.encode("ascii"), raw, body, self._client)

    async def _via_httpx(self, method: str, url: str, params: Mapping[str, Any] | None,
                         headers: Mapping[str, str] | None, json: Any, data: Mapping[str, Any] | None,
                         auth: tuple[str, str] | None) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self._base, transport=self._fallback) as http:
            return await http.request(method, url, params=params, headers=headers, json=json, data=data,
                                      auth=auth)


def _encode(params: Mapping[str, Any]) -> str:
    return urllib.parse.urlencode(list(_pairs(params)), quote_via=urllib.parse.quote)


def _pairs(params: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    # httpx's primitive_value_to_str: booleans lower-case, None empty, sequences repeat the key.
    for key, value in params.items():
        for v in value if isinstance(value, (list, tuple)) else (value,):
            yield key, "true" if v is True else "false" if v is False else "" if v is None else str(v)
