"""Last.fm client against hand-written real-API fixtures: now playing, quirks, user info, error bodies."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from scaling import errors
from scaling.clock import VirtualClock
from scaling.errors import MalformedResponse
from tests.scaling.upstreams.conftest import FakeApi, error_cases, error_response, fixture, run


def lastfm(*answers: Any) -> FakeApi:
    return FakeApi().on("GET", "/2.0/", *answers)


def test_now_playing_comes_first_without_a_date(clock: VirtualClock) -> None:
    """With limit=1 a listening user gets 2 entries: the now-playing one (no date) and the last scrobble."""
    api = lastfm(fixture("lastfm_recent_nowplaying"))
    recent = run(clock, api, lambda s: s.lastfm.recent_tracks("rj", limit=1))
    assert (recent.user, recent.total, recent.per_page, recent.total_pages) == ("rj", 61203, 1, 61203)
    playing, last = recent.tracks
    assert playing.now_playing and playing.played_at is None and recent.now_playing is playing
    assert (playing.artist, playing.album, playing.name) == ("Radiohead", "In Rainbows", "Reckoner")
    assert playing.artist_mbid == "a74b1b7f-71a5-4011-9441-d0b5e4122711" and playing.album_mbid is None
    assert playing.image == "https://lastfm.freetls.fastly.net/i/u/300x300/1a2b.png"
    assert not last.now_playing and last.played_at == 1767220000.0 and last.image is None
    [req] = api.requests
    assert dict(req.url.params) == {"method": "user.getrecenttracks", "user": "rj", "limit": "1", "page": "1",
                                    "api_key": "sandbox-lastfm-key", "format": "json"}


def test_a_single_track_object_is_read_as_a_list_of_one(clock: VirtualClock) -> None:
    """Last.fm sends one track as an object instead of a list; it still parses."""
    recent = run(clock, lastfm(fixture("lastfm_recent_single")), lambda s: s.lastfm.recent_tracks("onetrack"))
    assert [t.name for t in recent.tracks] == ["Roygbiv"] and recent.latest is recent.tracks[0]


def test_user_without_scrobbles_has_no_tracks(clock: VirtualClock) -> None:
    """An empty history is an empty result, not an error."""
    recent = run(clock, lastfm(fixture("lastfm_recent_empty")), lambda s: s.lastfm.recent_tracks("newbie"))
    assert recent.tracks == () and recent.latest is None and recent.total == 0


def test_user_info_is_parsed_and_cached(clock: VirtualClock) -> None:
    """user.getinfo gives name, playcount, registration and country; a second lookup is served from the cache."""
    api = lastfm(fixture("lastfm_userinfo"))

    async def go(s: Any) -> Any:
        await s.lastfm.user_info("RJ")
        return await s.lastfm.user_info("rj ")

    user = run(clock, api, go)
    assert (user.name, user.playcount, user.registered_at, user.country) == ("rj", 150316, 1037793040.0,
                                                                            "United Kingdom")
    assert user.realname == "Richard Jones" and user.image and user.image.endswith("300x300/a.png")
    assert len(api.requests) == 1


@pytest.mark.parametrize(("name", "case"), error_cases("lastfm"))
def test_error_bodies_become_typed_errors(clock: VirtualClock, name: str, case: dict[str, Any]) -> None:
    """Every Last.fm error body, under HTTP 200 or an error status, raises its class and never leaks the key."""
    api = lastfm(error_response(case))
    with pytest.raises(getattr(errors, case["expect"])) as info:
        run(clock, api, lambda s: s.lastfm.recent_tracks("rj"))
    assert info.value.upstream == "lastfm" and info.value.endpoint == "user.getrecenttracks"
    assert f"Last.fm error {case['body']['error']}" in str(info.value)
    assert "sandbox-lastfm-key" not in str(info.value)


def test_rate_limit_under_200_is_retried_after_a_cooldown(clock: VirtualClock) -> None:
    """Error 29 served with HTTP 200 (read as "no track" upstream) is retried and the next answer used."""
    throttled = httpx.Response(200, json={"error": 29, "message": "Rate limit exceeded"})
    api = lastfm(throttled, fixture("lastfm_recent_single"))
    recent = run(clock, api, lambda s: s.lastfm.recent_tracks("onetrack"))
    assert recent.tracks[0].name == "Roygbiv" and len(api.requests) == 2


@pytest.mark.parametrize(("body", "where"), [
    ({"recenttracks": {"track": []}}, r"\$\.recenttracks\.@attr is missing"),
    ({"recenttracks": {"track": [{"artist": {"#text": "A"}, "album": {"#text": "B"}, "name": "C"}],
                       "@attr": {"user": "u", "page": "1", "perPage": "1", "totalPages": "1", "total": "1"}}},
     r"track\[0\] has neither a date nor @attr.nowplaying"),
    ({"recenttracks": {"track": [], "@attr": {"user": "u", "page": "one", "perPage": "1", "totalPages": "1",
                                              "total": "1"}}}, r"page is the string 'one'"),
    ({"lfm": {"status": "ok"}}, r"\$\.recenttracks is missing"),
    ({"recenttracks": {"@attr": {"user": "u", "page": "1", "perPage": "1", "totalPages": "1", "total": "1"}}},
     r"\$\.recenttracks\.track is missing"),
])
def test_malformed_bodies_name_the_field(clock: VirtualClock, body: dict[str, Any], where: str) -> None:
    """A body missing documented fields is a MalformedResponse naming Last.fm, the method and the field."""
    with pytest.raises(MalformedResponse, match=where) as info:
        run(clock, lastfm(body), lambda s: s.lastfm.recent_tracks("u"))
    assert str(info.value).startswith("lastfm user.getrecenttracks")


def test_bad_arguments_are_refused_before_any_call(clock: VirtualClock) -> None:
    """An empty username or a limit over 200 is a ValueError; nothing is sent."""
    api = lastfm(fixture("lastfm_recent_empty"))
    with pytest.raises(ValueError):
        run(clock, api, lambda s: s.lastfm.recent_tracks("  "))
    with pytest.raises(ValueError):
        run(clock, api, lambda s: s.lastfm.recent_tracks("rj", limit=500))
    assert api.requests == []
