"""`Services`: the one factory that wires settings, clock and state store into clients.

The CLI, prewarm, collectors, load test and simulator all build their clients here,
so every upstream call goes through the same limiter, breaker and fetch wrapper,
every cached value through the same cache, every AI call through the same cost
tracker. One ``httpx.AsyncClient`` per upstream, with ``httpx.Timeout`` from its
settings; a transport override (e.g. the in-process sandbox's) replaces the network.

Without API keys the base URLs point at the sandbox and the clients send
placeholder credentials it accepts; with a real base URL and no key, using that
client is a `ConfigurationError` naming the missing variable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from scaling.ai_costs import CostTracker, MetricsSink, UsageSink
from scaling.cache import Cache, Family
from scaling.circuit_breaker import CircuitBreaker
from scaling.clock import Clock, StoreTimeClock, SystemClock
from scaling.errors import ConfigurationError
from scaling.fetch import Fetcher, Sender
from scaling.prices import DEFAULT_PRICES, PriceTable
from scaling.rate_limit import RateLimiter
from scaling.settings import REAL_BASE_URLS, UPSTREAMS, RateSpec, Secret, Settings
from scaling.store import StateStore, open_store
from scaling.upstreams import (
    AiTasks,
    LastfmClient,
    OpenAIClient,
    PerplexityClient,
    SonglinkClient,
    SpotifyClient,
)
from scaling.upstreams.spotify import app_key

__all__ = ["SANDBOX_CREDENTIALS", "Services"]

#: What the clients send to the sandbox when no real key is configured.
SANDBOX_CREDENTIALS = {"spotify_client_id": "headroom-sandbox", "spotify_client_secret": "sandbox-secret",
                       "lastfm_api_key": "sandbox-lastfm-key", "openai_api_key": "sk-sandbox",
                       "perplexity_api_key": "pplx-sandbox"}
_KEY_VARS = {"spotify": "SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET", "lastfm": "LASTFM_API_KEY",
             "openai": "OPENAI_API_KEY", "perplexity": "PERPLEXITY_API_KEY"}
#: The token host is called about once an hour per app; this only stops a runaway loop.
ACCOUNTS_RATE = RateSpec(30, 60.0)
_POOL = httpx.Limits(max_connections=20, max_keepalive_connections=10)


class Services:
    """Clients, limiters, breakers, fetchers, cache and cost tracker for one process.

    Args:
        settings: the configuration.
        clock: the time source for everything built here (default `SystemClock`).
        store: the shared state store (default: opened from ``settings.state_url``, and closed by `aclose`).
        transport: an httpx transport every client uses instead of the network.
        sender: makes what each fetcher sends with, from the upstream's name and base URL,
            instead of its httpx client (the simulator's in-process `DirectClient`).
        usage_sink: where AI usage goes (default: kept in memory; `from_settings` writes the metrics DB).
        cache_families: cache families (default: the reference's).
        prices: the AI price table.
        limiters: limiters to use instead of the configured ones, by upstream (the
            simulator's upstream-app baseline hands in its fixed-window limiters).

    Attributes:
        spotify, lastfm, openai, perplexity, songlink: the clients.
        ai: AI tasks through the cache, with cost accounting.
        cache, costs: the shared cache and the cost tracker.
        limiters, breakers, fetchers, http: per upstream name (plus ``spotify-accounts``).
    """

    def __init__(self, settings: Settings, *, clock: Clock | None = None, store: StateStore | None = None,
                 transport: httpx.AsyncBaseTransport | None = None, usage_sink: UsageSink | None = None,
                 cache_families: Mapping[str, Family] | None = None, prices: PriceTable = DEFAULT_PRICES,
                 limiters: Mapping[str, RateLimiter] | None = None,
                 sender: Callable[[str, str], Sender] | None = None) -> None:
        self.settings = settings
        self._sender = sender
        self._owns_store = store is None
        self.store = store if store is not None else open_store(settings.state_url, settings.state_namespace)
        self.clock: Clock = clock or SystemClock()
        self.cache = Cache(self.store, clock=self.clock, families=cache_families)
        self.costs = CostTracker(sink=usage_sink, prices=prices, clock=self.clock, store=self.store,
                                 budgets={n: settings.upstream(n).monthly_budget_usd for n in ("openai", "perplexity")})
        self.http: dict[str, httpx.AsyncClient] = {}
        self.limiters: dict[str, RateLimiter] = {}
        self.breakers: dict[str, CircuitBreaker] = {}
        self.fetchers: dict[str, Fetcher] = {}
        self._missing: dict[str, str] = {}
        creds = {name: self._credential(name) for name in SANDBOX_CREDENTIALS}
        spotify_app = app_key(creds["spotify_client_id"] or Secret("missing"))
        for name in UPSTREAMS:
            up = settings.upstream(name)
            given = (limiters or {}).get(name)
            self._wire(name, up.base_url, up.timeout, transport,
                       given or RateLimiter.from_settings(self.store, settings, name, clock=self.clock,
                                                          key=spotify_app if name == "spotify" else "default"))
        spotify = settings.upstream("spotify")
        accounts_url = spotify.accounts_url or spotify.base_url
        self._wire("spotify-accounts", accounts_url, spotify.timeout, transport,
                   RateLimiter(self.store, "spotify-accounts", ACCOUNTS_RATE, key=spotify_app, clock=self.clock,
                               outage_policy=spotify.outage_policy))
        f = self.fetchers
        self._spotify = None if self._missing.get("spotify") else SpotifyClient(
            f["spotify"], accounts=f["spotify-accounts"], client_id=creds["spotify_client_id"],  # type: ignore[arg-type]
            client_secret=creds["spotify_client_secret"], cache=self.cache, clock=self.clock)  # type: ignore[arg-type]
        self._lastfm = None if self._missing.get("lastfm") else LastfmClient(
            f["lastfm"], api_key=creds["lastfm_api_key"], cache=self.cache)  # type: ignore[arg-type]
        self._openai = None if self._missing.get("openai") else OpenAIClient(
            f["openai"], api_key=creds["openai_api_key"], costs=self.costs, clock=self.clock)  # type: ignore[arg-type]
        self._perplexity = None if self._missing.get("perplexity") else PerplexityClient(
            f["perplexity"], api_key=creds["perplexity_api_key"], costs=self.costs,  # type: ignore[arg-type]
            clock=self.clock)
        self.songlink = SonglinkClient(f["songlink"], cache=self.cache)
        self.ai = AiTasks(self.cache, self.costs, openai=self._openai, clock=self.clock)

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock | None = None, persist_usage: bool = True,
                      **kwargs: Any) -> Services:
        """Services for a real process: the configured store, the store's clock, AI usage to the metrics DB."""
        store = open_store(settings.state_url, settings.state_namespace)
        clock = clock or (SystemClock() if store.backend == "memory" else StoreTimeClock(store.time))
        sink = MetricsSink.open(settings.metrics_db_url, clock) if persist_usage else None
        services = cls(settings, clock=clock, store=store, usage_sink=sink, **kwargs)
        services._owns_store = True
        return services

    def _credential(self, field: str) -> Secret | None:
        value: Secret | None = getattr(self.settings, field)
        if value is not None:
            return value
        upstream = field.split("_", 1)[0]
        base = self.settings.upstream(upstream).base_url.rstrip("/")
        if base == REAL_BASE_URLS[upstream]:
            self._missing[upstream] = f"{_KEY_VARS[upstream]} not set, and {upstream} points at its real API"
            return None
        return Secret(SANDBOX_CREDENTIALS[field])

    def _wire(self, name: str, base_url: str, timeout: float, transport: httpx.AsyncBaseTransport | None,
              limiter: RateLimiter) -> None:
        client = httpx.AsyncClient(base_url=base_url, transport=transport, limits=_POOL,
                                   timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)))
        self.http[name] = client
        self.limiters[name] = limiter
        self.breakers[name] = CircuitBreaker(self.store, name, clock=self.clock, outage_policy=limiter.outage_policy)
        sender = self._sender(name, base_url) if self._sender is not None else client
        self.fetchers[name] = Fetcher(sender, name.split("-")[0] if name == "spotify-accounts" else name, limiter,
                                      breaker=self.breakers[name], clock=self.clock, timeout_s=timeout)

    def _client(self, name: str, client: Any) -> Any:
        if client is None:
            raise ConfigurationError(f"{name} client unavailable: {self._missing[name]}",
                                     variable=_KEY_VARS[name].split(" ")[0])
        return client

    @property
    def spotify(self) -> SpotifyClient:
        return self._client("spotify", self._spotify)  # type: ignore[no-any-return]

    @property
    def lastfm(self) -> LastfmClient:
        return self._client("lastfm", self._lastfm)  # type: ignore[no-any-return]

    @property
    def openai(self) -> OpenAIClient:
        return self._client("openai", self._openai)  # type: ignore[no-any-return]

    @property
    def perplexity(self) -> PerplexityClient:
        return self._client("perplexity", self._perplexity)  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        """Flush cache counters, close every HTTP client, and the store if this object opened it."""
        try:
            self.cache.flush()
        finally:
            for client in self.http.values():
                await client.aclose()
            if self._owns_store:
                self.store.close()

    async def __aenter__(self) -> Services:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        urls = {n: self.settings.upstream(n).base_url for n in UPSTREAMS}
        return f"Services(store={self.store.backend}, upstreams={urls})"
