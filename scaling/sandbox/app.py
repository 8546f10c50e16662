"""`Sandbox`: every simulated upstream in one ASGI app, on the real APIs' paths.

A client swaps only scheme, host and port. In-process, under a virtual clock::

    sandbox = Sandbox(SandboxConfig(), clock)
    async with httpx.AsyncClient(transport=sandbox.transport(), base_url="http://sandbox") as http:
        ...

Each request goes: latency (slept on the clock) -> the time the sandbox "sees" it
-> an injected 5xx or hang, if drawn -> the upstream's own answer (auth, limits,
data) -> an injected corruption, if drawn and the answer was a success -> counted.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from scaling.clock import Clock, SystemClock
from scaling.sandbox.answer import Endpoint
from scaling.sandbox.catalog import Catalog
from scaling.sandbox.cloudflare import CloudflareSim, CloudflareUpstream
from scaling.sandbox.config import Faults, SandboxConfig
from scaling.sandbox.direct import Router, send_direct
from scaling.sandbox.faults import FaultInjector, corrupt, gateway_page
from scaling.sandbox.lastfm import LastfmUpstream
from scaling.sandbox.openai import OpenAIUpstream
from scaling.sandbox.perplexity import PerplexityUpstream
from scaling.sandbox.population import Population
from scaling.sandbox.songlink import SongLinkUpstream
from scaling.sandbox.spotify import SpotifyUpstream
from scaling.sandbox.stats import Outcome, SandboxStats, Served, StatsRecorder
from scaling.settings import UPSTREAMS

__all__ = ["DirectTransport", "Sandbox", "SandboxTransport"]


class Sandbox:
    """Simulated Spotify, Last.fm, OpenAI, Perplexity and Songlink.

    Args:
        config: limits, faults and data knobs (defaults: the documented real limits, no faults).
        clock: whose time windows, bans, latency and hangs use; `VirtualClock` in
            tests and simulations, `SystemClock` (default) when serving for real.

    Attributes:
        app: the ASGI application.
        catalog: the albums (Spotify, Songlink, and what listeners play).
        population: the Last.fm listeners.
        upstreams: each upstream's state object by name (windows, bans, billed tokens).
    """

    def __init__(self, config: SandboxConfig | None = None, clock: Clock | None = None) -> None:
        self.config = config or SandboxConfig()
        self.clock: Clock = clock or SystemClock()
        cfg = self.config
        self.anchor = self.clock.now()
        self.catalog = Catalog(cfg.seed, cfg.spotify.catalog_size, cfg.spotify.unknown_share)
        lf = cfg.lastfm
        self.population = Population(cfg.seed, lf.listeners, self.anchor, self.catalog, active_share=lf.active_share,
                                     now_playing_share=lf.now_playing_share, empty_share=lf.empty_share)
        self.upstreams: dict[str, Any] = {
            "spotify": SpotifyUpstream(cfg.spotify, cfg.seed, self.catalog),
            "lastfm": LastfmUpstream(cfg.lastfm, cfg.seed, self.population),
            "openai": OpenAIUpstream(cfg.openai, cfg.seed),
            "perplexity": PerplexityUpstream(cfg.perplexity, cfg.seed),
            "songlink": SongLinkUpstream(cfg.songlink, self.catalog),
        }
        self._faults = {name: FaultInjector(cfg.upstream(name).faults, cfg.seed, name) for name in UPSTREAMS}
        # The production account's Cloudflare APIs, driven by the same population (no injected faults:
        # its documented failures are its own).
        self.cloudflare = CloudflareUpstream(CloudflareSim(), cfg.seed, self.population)
        self.upstreams["cloudflare"] = self.cloudflare
        self._faults["cloudflare"] = FaultInjector(Faults(), cfg.seed, "cloudflare")
        self._stats = StatsRecorder(cfg.served_log)
        routes = [self._route(ep) for up in self.upstreams.values() for ep in up.endpoints()]
        routes += [Route("/_sandbox/stats", self._stats_endpoint, methods=["GET"]),
                   Route("/_sandbox/reset", self._reset_endpoint, methods=["POST"]),
                   Route("/_sandbox/health", self._health_endpoint, methods=["GET"])]
        self.app = Starlette(routes=routes)
        self.router = Router([ep for up in self.upstreams.values() for ep in up.endpoints()])

    def stats(self) -> SandboxStats:
        """A snapshot of every counter (see `SandboxStats`)."""
        return self._stats.snapshot()

    def reset(self) -> None:
        """Forget all traffic: counters, windows, bans, quotas, caches; reseed the fault streams.

        The catalogue and the population (a function of seed and start time) stay.
        """
        self._stats.clear()
        for upstream in self.upstreams.values():
            upstream.reset()
        for injector in self._faults.values():
            injector.reset()

    def transport(self, *, client: tuple[str, int] = ("127.0.0.1", 50000)) -> SandboxTransport:
        """An httpx transport into this sandbox that also enforces httpx timeouts (in clock time)."""
        return SandboxTransport(self.app, client=client)

    def direct_transport(self, *, client: tuple[str, int] = ("127.0.0.1", 50000)) -> DirectTransport:
        """Like `transport`, but calls the endpoint handlers without the ASGI and Starlette
        plumbing (several times cheaper per request; the same answers)."""
        return DirectTransport(self, client=client)

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` on `transport`, base URL ``http://sandbox`` unless given."""
        kwargs.setdefault("base_url", "http://sandbox")
        return httpx.AsyncClient(transport=self.transport(), **kwargs)

    # -- serving ----------------------------------------------------------------------

    def _route(self, ep: Endpoint) -> Route:
        async def serve(request: Request) -> Response:
            return await self.serve(ep, request)

        return Route(ep.path, serve, methods=[ep.method], name=f"{ep.upstream}:{ep.path}")

    async def serve(self, ep: Endpoint, request: Request) -> Response:
        """One endpoint's answer to ``request``: latency, faults, the handler, stats."""
        name = ep.name if isinstance(ep.name, str) else ep.name(request)
        draw = self._faults[ep.upstream].draw()
        if draw.latency > 0:
            await self.clock.sleep(draw.latency)
        now = self.clock.now()
        if draw.kind == "timeout":
            # Counted when seen, so a client that gives up still shows in the stats.
            self._stats.record(ep.upstream, name, Served(now, 504, Outcome.SERVER_ERROR, None, "timeout"))
            await self.clock.sleep(self._faults[ep.upstream].faults.timeout_s)
            return Response(gateway_page(504), 504, media_type="text/html")
        if draw.kind == "5xx":
            self._stats.record(ep.upstream, name, Served(now, draw.status, Outcome.SERVER_ERROR, None, "5xx"))
            return Response(gateway_page(draw.status), draw.status, media_type="text/html")
        answer = await ep.handler(request, now)
        outcome = answer.counted_as()
        content, media_type, fault = answer.encode(), answer.content_type, None
        if draw.kind == "malformed" and outcome is Outcome.OK and isinstance(answer.body, (dict, list)):
            content, media_type = corrupt(answer.body, content, draw.malformed, draw.pick)
            outcome, fault = Outcome.MALFORMED, draw.malformed
        self._stats.record(ep.upstream, name, Served(now, answer.status, outcome, answer.key, fault))
        return Response(content, answer.status, headers=dict(answer.headers), media_type=media_type)

    async def _stats_endpoint(self, request: Request) -> Response:
        served = request.query_params.get("served", "1").lower() not in ("0", "false", "no")
        return JSONResponse({"time": self.clock.now(), "upstreams": self.stats().to_dict(with_served=served)})

    async def _reset_endpoint(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"reset": True, "time": self.clock.now()})

    async def _health_endpoint(self, request: Request) -> Response:
        limits = {name: str(self.config.upstream(name).requests) for name in UPSTREAMS}
        return JSONResponse({"ok": True, "time": self.clock.now(), "seed": self.config.seed, "limits": limits,
                             "listeners": self.population.size})


class SandboxTransport(httpx.AsyncBaseTransport):
    """`httpx.ASGITransport` into a sandbox, plus the read timeout a network would impose.

    ``ASGITransport`` ignores httpx timeouts, so a hung sandbox request would hang the
    client too; this raises ``httpx.ReadTimeout`` after the request's read timeout,
    measured on the running loop's clock (virtual under `VirtualClock.run`).
    """

    def __init__(self, app: Any, *, client: tuple[str, int] = ("127.0.0.1", 50000)) -> None:
        self._inner = httpx.ASGITransport(app=app, client=client)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        limit = (request.extensions.get("timeout") or {}).get("read")
        if limit is None:
            return await self._send(request)
        try:
            async with asyncio.timeout(limit):
                return await self._send(request)
        except TimeoutError:
            raise httpx.ReadTimeout(f"no response within {limit}s", request=request) from None

    async def _send(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class DirectTransport(SandboxTransport):
    """`SandboxTransport` that dispatches routed requests straight to the handlers
    (see `scaling.sandbox.direct`); the same read timeout, the same answers."""

    def __init__(self, sandbox: Sandbox, *, client: tuple[str, int] = ("127.0.0.1", 50000)) -> None:
        super().__init__(sandbox.app, client=client)
        self._sandbox = sandbox
        self._client = client

    async def _send(self, request: httpx.Request) -> httpx.Response:
        return await send_direct(self._sandbox, self._sandbox.router, request, self._client,
                                 self._inner.handle_async_request)
