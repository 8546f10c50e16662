"""Every client against the in-process sandbox, in virtual time: shapes, limits and injected faults."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from scaling.ai_costs import MemorySink
from scaling.clock import VirtualClock
from scaling.errors import MalformedResponse, PermanentError, QuotaExhausted, RateLimited, Throttled, TransientError
from scaling.sandbox import Faults, Sandbox, SandboxConfig
from scaling.services import Services
from scaling.settings import RateSpec, Settings
from scaling.store.memory import MemoryStore


def on_sandbox(clock: VirtualClock, fn: Callable[[Services, Sandbox], Any], config: SandboxConfig | None = None,
               **env: str) -> Any:
    """Run ``await fn(services, sandbox)`` with every client wired into one in-process sandbox.

    ``env`` holds HEADROOM_* variables for the settings (e.g. a limiter set above the sandbox's limit).
    """
    sandbox = Sandbox(config or SandboxConfig(), clock)
    settings = Settings.from_env(env, dotenv_path=None)
    svc = Services(settings, clock=clock, store=MemoryStore(), transport=sandbox.transport())

    async def main() -> Any:
        try:
            return await fn(svc, sandbox)
        finally:
            await svc.aclose()

    return clock.run(main())


def test_spotify_album_batch_and_search(clock: VirtualClock) -> None:
    """Token, single album, a 25-id batch (2 requests, nulls for unknown ids) and search all parse."""
    async def go(s: Services, sb: Sandbox) -> tuple[Any, ...]:
        ids = [*sb.catalog.ids[:23], "unknown1", "unknown2"]
        one = await s.spotify.album(ids[0])
        many = await s.spotify.albums(ids)
        page = await s.spotify.search(f'album:"{one.name}"', limit=3)  # type: ignore[union-attr]
        return one, many, page, sb.stats()

    one, many, page, stats = on_sandbox(clock, go)
    assert one.id and one.tracks and one.image.width == 640
    assert [a is None for a in many] == [False] * 23 + [True, True] and many[0] == one
    assert one.id in [i.id for i in page.items]
    assert stats.endpoint("spotify", "albums").requests == 2 and stats.endpoint("spotify", "token").requests == 1


def test_spotify_ban_becomes_throttled_without_hammering(clock: VirtualClock) -> None:
    """Above the sandbox's Spotify window the 429's Retry-After sets the shared cooldown; calls past the budget fail
    fast."""
    config = SandboxConfig().with_upstream("spotify", requests=RateSpec(5, 30.0))

    async def go(s: Services, sb: Sandbox) -> tuple[list[Any], Any]:
        ids = sb.catalog.ids[:12]
        results = await asyncio.gather(*(s.spotify.album(i) for i in ids), return_exceptions=True)
        return results, sb.stats().endpoint("spotify", "album")

    results, album_stats = on_sandbox(clock, go, config)
    assert sum(1 for r in results if not isinstance(r, Exception)) >= 5
    assert all(isinstance(r, (Throttled, RateLimited)) for r in results if isinstance(r, Exception))
    assert album_stats.statuses().count(429) <= 1  # the cooldown holds everyone back after the first 429


def test_lastfm_recent_tracks_now_playing_and_user_info(clock: VirtualClock) -> None:
    """Sandbox listeners' recent tracks parse (now-playing first when listening); user info and unknown users too."""
    async def go(s: Services, sb: Sandbox) -> tuple[Any, ...]:
        now = clock.now()
        names = sb.population.names()
        playing = next(n for n in names if sb.population.find(n).playing(now) is not None)  # type: ignore[union-attr]
        recent = await s.lastfm.recent_tracks(playing, limit=1)
        info = await s.lastfm.user_info(playing)
        with pytest.raises(PermanentError, match=r"Last\.fm error 6"):
            await s.lastfm.recent_tracks("nobody-here")
        return playing, recent, info

    name, recent, info = on_sandbox(clock, go)
    assert recent.user == name and len(recent.tracks) == 2 and recent.tracks[0].now_playing
    assert recent.tracks[1].played_at is not None and info.name == name and info.playcount > 0


def test_lastfm_error_29_is_never_read_as_no_track(clock: VirtualClock) -> None:
    """Above the sandbox's Last.fm limit, error 29 (under 200 or 429) is throttling: retried or raised, never "no
    track"."""
    async def go(s: Services, sb: Sandbox) -> tuple[list[Any], Any]:
        names = sb.population.names()[:40]
        got = await asyncio.gather(*(s.lastfm.recent_tracks(n) for n in names), return_exceptions=True)
        return list(got), sb.stats().upstream("lastfm")

    got, stats = on_sandbox(clock, go, HEADROOM_LASTFM_LIMIT="8/1s")
    assert stats.rate_limited > 0  # the sandbox did throttle us
    ok = [r for r in got if not isinstance(r, Exception)]
    assert len(ok) >= 20 and all(r.tracks for r in ok)
    assert all(isinstance(r, (Throttled, RateLimited)) for r in got if isinstance(r, Exception))


def test_openai_responses_and_chat_with_prompt_caching(clock: VirtualClock) -> None:
    """Responses and chat parse; a repeated long prompt reports cached tokens, priced at the cached rate."""
    prompt = "Describe this album in detail. " * 400  # well over 1,024 tokens

    async def go(s: Services, sb: Sandbox) -> tuple[Any, ...]:
        first = await s.openai.respond(prompt, model="gpt-5.6-terra", task="albumDetail", web_search=True)
        second = await s.openai.respond(prompt, model="gpt-5.6-terra", task="albumDetail", web_search=True)
        chat = await s.openai.chat([{"role": "user", "content": "hi"}], model="gpt-5-nano", task="playlistCoverPrompt")
        sink = s.costs.sink
        assert isinstance(sink, MemorySink)
        return first, second, chat, sink.entries

    first, second, chat, entries = on_sandbox(clock, go)
    assert first.text and first.web_search_used and first.citations
    assert first.usage.cached_input_tokens == 0 and second.usage.cached_input_tokens >= 1024
    assert entries[1].cost_usd < entries[0].cost_usd  # same tokens, most of them cached
    assert chat.model == "gpt-5-nano" and [e.task for e in entries] == ["albumDetail", "albumDetail",
                                                                        "playlistCoverPrompt"]
    assert all(e.cost_usd > 0 for e in entries)


def test_openai_quota_exhaustion_is_not_retried(clock: VirtualClock) -> None:
    """Once the sandbox's billed-token quota is spent, insufficient_quota raises at once."""
    config = SandboxConfig().with_upstream("openai", token_quota=10)

    async def go(s: Services, sb: Sandbox) -> int:
        await s.openai.respond("hello", model="gpt-5.6-luna", max_output_tokens=50)
        with pytest.raises(QuotaExhausted):
            await s.openai.respond("hello again", model="gpt-5.6-luna", max_output_tokens=50)
        return sb.stats().endpoint("openai", "responses").requests

    assert on_sandbox(clock, go, config) == 2


def test_perplexity_and_songlink(clock: VirtualClock) -> None:
    """Perplexity answers with citations and a recorded cost; Songlink resolves a catalogue album and caches it."""
    async def go(s: Services, sb: Sandbox) -> tuple[Any, ...]:
        answer = await s.perplexity.chat([{"role": "user", "content": "Who made OK Computer?"}], task="albumDetail")
        url = f"https://open.spotify.com/album/{sb.catalog.ids[0]}"
        links = await s.songlink.links(url)
        again = await s.songlink.links(url)
        missing = await s.songlink.links("https://open.spotify.com/album/unknown9")
        return answer, links, again, missing, s.costs.month_spend("perplexity"), sb.stats()

    answer, links, again, missing, spend, stats = on_sandbox(clock, go)
    assert answer.citations and answer.provider == "perplexity" and spend > Decimal(0)
    assert links == again and links.link("spotify").endswith(links.entity_unique_id.split("::")[1])
    assert missing is None and stats.upstream("songlink").requests == 2


@pytest.mark.parametrize("kind", ["truncated", "content_type", "missing_fields"])
def test_corrupted_answers_become_malformed_errors(clock: VirtualClock, kind: str) -> None:
    """With every answer corrupted, clients raise MalformedResponse naming the upstream, never KeyError."""
    upstreams = ("spotify", "lastfm", "openai", "perplexity", "songlink")
    config = SandboxConfig().with_faults(Faults(malformed_rate=1.0, malformed_kinds=(kind,)), upstreams=upstreams)

    async def go(s: Services, sb: Sandbox) -> list[Any]:
        calls = [s.spotify.album(sb.catalog.ids[0]),
                 s.lastfm.recent_tracks(sb.population.names()[0]),
                 s.openai.respond("x", model="gpt-5.6-luna"),
                 s.perplexity.chat([{"role": "user", "content": "x"}]),
                 s.songlink.links(f"https://open.spotify.com/album/{sb.catalog.ids[0]}")]
        return list(await asyncio.gather(*calls, return_exceptions=True))

    for result, upstream in zip(on_sandbox(clock, go, config), upstreams):
        if kind == "missing_fields" and not isinstance(result, Exception):
            continue  # an optional field was dropped: still a valid answer
        assert isinstance(result, MalformedResponse) and result.upstream == upstream


def test_injected_5xx_are_retried_then_reported(clock: VirtualClock) -> None:
    """A sandbox that always answers 502/503 gives a TransientError after the fetch wrapper's retries."""
    config = SandboxConfig().with_faults(Faults(error_rate=1.0), upstreams=("spotify",))

    async def go(s: Services, sb: Sandbox) -> int:
        with pytest.raises(TransientError):
            await s.spotify.album(sb.catalog.ids[0])
        return sb.stats().upstream("spotify").requests

    assert on_sandbox(clock, go, config) == 3  # the token call gets a 5xx three times
