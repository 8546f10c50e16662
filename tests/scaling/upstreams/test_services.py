"""The Services factory: one client per upstream, keys hashed, placeholders only for the sandbox."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from scaling.clock import VirtualClock
from scaling.errors import ConfigurationError
from scaling.services import Services
from scaling.settings import Settings
from scaling.store.memory import MemoryStore


def build(env: dict[str, str], clock: VirtualClock) -> Services:
    return Services(Settings.from_env(env, dotenv_path=None), clock=clock, store=MemoryStore())


def test_one_client_limiter_breaker_and_fetcher_per_upstream(clock: VirtualClock) -> None:
    """Each upstream gets its own httpx client with its base URL and timeout, limiter and breaker."""
    s = build({"HEADROOM_OPENAI_TIMEOUT_S": "45"}, clock)
    names = {"spotify", "spotify-accounts", "lastfm", "openai", "perplexity", "songlink"}
    assert set(s.http) == set(s.limiters) == set(s.breakers) == set(s.fetchers) == names
    assert str(s.http["lastfm"].base_url) == "http://127.0.0.1:8765"
    assert s.http["openai"].timeout.read == 45.0 and s.fetchers["openai"].timeout_s == 45.0
    assert s.fetchers["openai"].limiter.tokens is not None
    clock.run(s.aclose())
    assert all(c.is_closed for c in s.http.values())


def test_spotify_limiter_key_is_a_hash_of_the_client_id(clock: VirtualClock) -> None:
    """Each Spotify app gets its own budget, keyed by a short hash; the id itself never appears."""
    env = {"SPOTIFY_CLIENT_ID": "my-secret-client-id", "SPOTIFY_CLIENT_SECRET": "shh"}
    a = build(env, clock)
    b = build({**env, "SPOTIFY_CLIENT_ID": "another-app"}, clock)
    assert a.limiters["spotify"].key != b.limiters["spotify"].key
    assert len(a.limiters["spotify"].key) == 12
    shown = " ".join(repr(x) for x in (a, a.spotify, a.limiters["spotify"], a.fetchers["spotify"].limiter))
    assert "my-secret-client-id" not in shown and "shh" not in shown
    assert str(a.http["spotify"].base_url) == "https://api.spotify.com"
    assert str(a.http["spotify-accounts"].base_url) == "https://accounts.spotify.com"


def test_real_api_without_a_key_is_a_clear_error_on_use(clock: VirtualClock) -> None:
    """Pointing OpenAI at its real API with no key names the missing variable when the client is used."""
    s = build({"HEADROOM_OPENAI_REAL": "1"}, clock)
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY not set"):
        s.openai  # noqa: B018 - the property access is what raises
    assert s.lastfm is not None  # the others still point at the sandbox


def test_transport_override_reaches_every_client(clock: VirtualClock) -> None:
    """A transport given to Services carries every upstream's requests (e.g. into the in-process sandbox)."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(404, json={"statusCode": 404, "code": "could_not_resolve_entity"})

    s = Services(Settings.defaults(), clock=clock, store=MemoryStore(), transport=httpx.MockTransport(handler))

    async def go() -> Any:
        try:
            return await s.songlink.links("https://open.spotify.com/album/x1")
        finally:
            await s.aclose()

    assert clock.run(go()) is None and seen == ["/v1-alpha.1/links"]


def test_budgets_come_from_settings(clock: VirtualClock) -> None:
    """Monthly AI budgets per provider are the configured ones."""
    s = build({"HEADROOM_OPENAI_MONTHLY_BUDGET_USD": "12.5"}, clock)
    assert s.costs.budget_status("openai").budget_usd == 12.5 and s.costs.budget_status("perplexity").budget_usd == 20
