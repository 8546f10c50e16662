"""Counters (Python and HTTP), reset, and configuration parsing."""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from scaling.clock import VirtualClock
from scaling.errors import ConfigurationError
from scaling.sandbox import Outcome, Sandbox, SandboxConfig, parse_latency
from scaling.settings import RateSpec
from tests.scaling.sandbox.conftest import drive, lastfm_params, spotify_auth


def test_counters_per_upstream_and_endpoint(clock: VirtualClock) -> None:
    """Requests, ok, 429s and client errors are counted per endpoint, with the time and status of each answer."""
    sandbox = Sandbox(SandboxConfig().with_upstream("spotify", requests=RateSpec(2, 30.0)), clock)

    async def go(http: httpx.AsyncClient) -> None:
        auth = await spotify_auth(http)
        await http.get("/v1/albums/abc", headers=auth)
        await clock.sleep(1)
        await http.get("/v1/albums/unknown1", headers=auth)
        await http.get("/v1/albums/abc", headers=auth)
        await http.get("/2.0/", params=lastfm_params("listener0001"))

    start = clock.now()
    drive(clock, sandbox, go)
    stats = sandbox.stats()
    album = stats.endpoint("spotify", "album")
    assert (album.requests, album.ok, album.client_errors, album.rate_limited) == (3, 1, 1, 1)
    assert [(s.time - start, s.status) for s in album.served] == [(0, 200), (1, 404), (1, 429)]
    assert album.served[2].outcome is Outcome.RATE_LIMITED and album.served[0].key == "app-one"
    assert stats.endpoint("spotify", "token").ok == 1
    assert stats.upstream("spotify").requests == 4
    assert stats.endpoint("lastfm", "user.getrecenttracks").ok == 1
    assert stats.total().requests == 5
    assert stats.endpoint("openai", "responses").requests == 0


def test_api_keys_never_appear_whole_in_stats(clock: VirtualClock, sandbox: Sandbox) -> None:
    """Stats show only a prefix of an API key."""
    async def go(http: httpx.AsyncClient) -> None:
        await http.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
                        headers={"Authorization": "Bearer sk-very-secret-key"})

    drive(clock, sandbox, go)
    key = sandbox.stats().endpoint("openai", "chat.completions").served[0].key
    assert key is not None and "very-secret-key" not in key


def test_http_stats_and_reset(clock: VirtualClock) -> None:
    """GET /_sandbox/stats mirrors stats(); POST /_sandbox/reset clears counters and lets a banned client back in."""
    sandbox = Sandbox(SandboxConfig().with_upstream("spotify", requests=RateSpec(1, 30.0)), clock)

    async def go(http: httpx.AsyncClient) -> tuple[dict, dict, list[int]]:
        auth = await spotify_auth(http)
        codes = [(await http.get("/v1/albums/abc", headers=auth)).status_code for _ in range(2)]
        before = (await http.get("/_sandbox/stats")).json()
        assert (await http.post("/_sandbox/reset")).json()["reset"] is True
        after = (await http.get("/_sandbox/stats", params={"served": 0})).json()
        codes.append((await http.get("/v1/albums/abc", headers=auth)).status_code)
        return before, after, codes

    before, after, codes = drive(clock, sandbox, go)
    album = before["upstreams"]["spotify"]["endpoints"]["album"]
    assert (album["requests"], album["ok"], album["rate_limited"]) == (2, 1, 1)
    assert [s["status"] for s in album["served"]] == [200, 429]
    assert before["upstreams"]["spotify"]["total"]["requests"] == 3
    assert after["upstreams"] == {}
    assert codes == [200, 429, 200]
    assert sandbox.stats().endpoint("spotify", "album").requests == 1


def test_health_endpoint_reports_limits(clock: VirtualClock, sandbox: Sandbox) -> None:
    """GET /_sandbox/health says ok and lists each upstream's limit."""
    async def go(http: httpx.AsyncClient) -> dict:
        return (await http.get("/_sandbox/health")).json()

    body = drive(clock, sandbox, go)
    assert body["ok"] is True and body["limits"]["spotify"] == "180/30s" and body["limits"]["lastfm"] == "5/1s"


def test_defaults_are_the_documented_upstream_limits() -> None:
    """Spotify 180/30s, Last.fm 5/1s, OpenAI 500/60s and 200k tokens/60s, Perplexity 50/60s, Songlink 10/60s."""
    c = SandboxConfig()
    assert (c.spotify.requests, c.lastfm.requests, c.openai.requests, c.openai.tokens, c.perplexity.requests,
            c.songlink.requests) == (RateSpec(180, 30.0), RateSpec(5, 1.0), RateSpec(500, 60.0),
                                     RateSpec(200_000, 60.0), RateSpec(50, 60.0), RateSpec(10, 60.0))


def test_from_options_builds_limits_and_faults() -> None:
    """Flat options set limits on their upstream and faults on all of them."""
    c = SandboxConfig.from_options(seed=7, latency="0.15-0.4", error_rate=0.1, spotify_limit="100/30s",
                                   openai_token_limit="5000/1m", listeners=50, active_share=0.5)
    assert c.seed == 7 and c.spotify.requests == RateSpec(100, 30.0) and c.openai.tokens == RateSpec(5000, 60.0)
    assert c.lastfm.listeners == 50 and c.lastfm.active_share == 0.5
    assert all(c.upstream(n).faults.latency == (0.15, 0.4) and c.upstream(n).faults.error_rate == 0.1
               for n in ("spotify", "lastfm", "openai", "perplexity", "songlink"))


@pytest.mark.parametrize(("options", "names"), [
    ({"spotify_limit": "fast"}, "--spotify-limit"),
    ({"latency": "0.4-0.1"}, "--latency"),
    ({"error_rate": 1.5}, "--error-rate"),
    ({"active_share": -0.1}, "--active-share"),
    ({"listeners": 0}, "--listeners"),
])
def test_from_options_names_the_bad_option(options: dict, names: str) -> None:
    """A bad option raises ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match=names):
        SandboxConfig.from_options(**options)


def test_with_upstream_rejects_unknown_settings() -> None:
    """Misspelt settings are refused instead of silently ignored."""
    with pytest.raises(ConfigurationError, match="ban_fator"):
        SandboxConfig().with_upstream("spotify", ban_fator=3)
    with pytest.raises(ConfigurationError, match="unknown upstream"):
        SandboxConfig().with_upstream("tidal", requests=RateSpec(1, 1.0))


def test_parse_latency_forms() -> None:
    """Latency accepts seconds ranges, millisecond ranges and single values."""
    assert parse_latency("0.15-0.4") == (0.15, 0.4)
    assert parse_latency("150-400ms") == pytest.approx((0.15, 0.4))
    assert parse_latency("0.2") == (0.2, 0.2)


def test_served_log_is_bounded_but_counters_stay_exact(clock: VirtualClock) -> None:
    """Beyond served_log answers the oldest are dropped from served, while counters count everything."""
    sandbox = Sandbox(dataclasses.replace(SandboxConfig.from_options(error_rate=0.5), served_log=10), clock)

    async def go(http: httpx.AsyncClient) -> None:
        for i in range(40):
            await http.get("/v1-alpha.1/links", params={"url": "x", "key": f"k{i}"})

    drive(clock, sandbox, go)
    links = sandbox.stats().endpoint("songlink", "links")
    assert links.requests == 40 and len(links.served) == 10
    assert links.ok + links.server_errors == 40 and links.faults == links.server_errors > 0
