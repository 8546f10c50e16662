"""Songlink client against a hand-written real-API fixture and its error answers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from scaling import errors
from scaling.clock import VirtualClock
from scaling.errors import MalformedResponse
from tests.scaling.upstreams.conftest import FakeApi, error_cases, error_response, fixture, run

URL = "https://open.spotify.com/track/0Jcij1eWd5bDMU5iPbxe2i"


def test_links_are_typed_and_cached(clock: VirtualClock) -> None:
    """Entities and per-platform links come back typed; the second lookup of a URL is served from the cache."""
    api = FakeApi().on("GET", "/v1-alpha.1/links", fixture("songlink_links"))

    async def go(s: Any) -> Any:
        await s.songlink.links(URL)
        return await s.songlink.links(URL)

    links = run(clock, api, go)
    assert links.entity_unique_id == "SPOTIFY_SONG::0Jcij1eWd5bDMU5iPbxe2i" and links.user_country == "US"
    assert links.link("appleMusic").startswith("https://geo.music.apple.com/")
    assert {e.title for e in links.entities} == {"Kitchen"} and len(links.links) == 2
    assert len(api.requests) == 1 and api.requests[0].url.params["url"] == URL


def test_unresolvable_url_is_none_and_not_cached(clock: VirtualClock) -> None:
    """A 404 could_not_resolve_entity means "no links" (None) and is asked again next time."""
    api = FakeApi().on("GET", "/v1-alpha.1/links",
                       httpx.Response(404, json={"statusCode": 404, "code": "could_not_resolve_entity"}))

    async def go(s: Any) -> list[Any]:
        return [await s.songlink.links(URL), await s.songlink.links(URL)]

    assert run(clock, api, go) == [None, None] and len(api.requests) == 2


@pytest.mark.parametrize(("name", "case"), error_cases("songlink"))
def test_errors_become_typed_errors_and_are_not_cached(clock: VirtualClock, name: str, case: dict[str, Any]) -> None:
    """429, 400 and 5xx raise their classes (the caller shows a stub); nothing is cached, so the next call asks."""
    api = FakeApi().on("GET", "/v1-alpha.1/links", error_response(case))

    async def go(s: Any) -> Any:
        with pytest.raises(getattr(errors, case["expect"])):
            await s.songlink.links(URL)
        assert s.cache.peek("songlink", f"US:{URL}") is None
        api.on("GET", "/v1-alpha.1/links", fixture("songlink_links"))
        await clock.sleep(600)  # past any cooldown the 429 started
        return await s.songlink.links(URL)

    assert run(clock, api, go).page_url == "https://song.link/s/0Jcij1eWd5bDMU5iPbxe2i"


def test_malformed_links_name_the_field(clock: VirtualClock) -> None:
    """A link without a url is a MalformedResponse naming the platform's path."""
    body = fixture("songlink_links")
    del body["linksByPlatform"]["spotify"]["url"]
    api = FakeApi().on("GET", "/v1-alpha.1/links", body)
    with pytest.raises(MalformedResponse, match=r"songlink links: \$\.linksByPlatform\.spotify\.url is missing"):
        run(clock, api, lambda s: s.songlink.links(URL))


def test_non_urls_are_refused(clock: VirtualClock) -> None:
    """Something that is not an http(s) URL is a ValueError before any call."""
    api = FakeApi()
    with pytest.raises(ValueError, match="not an http"):
        run(clock, api, lambda s: s.songlink.links("spotify:track:0Jcij1eWd5bDMU5iPbxe2i"))
    assert api.requests == []
