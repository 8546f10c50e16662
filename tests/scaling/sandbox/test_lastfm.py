"""Simulated Last.fm: recent-tracks and user-info shapes, now playing, errors in the body, error 29."""

from __future__ import annotations

import httpx

from scaling.clock import VirtualClock
from scaling.sandbox import Sandbox, SandboxConfig
from tests.scaling.sandbox.conftest import drive, lastfm_params

TRACK_FIELDS = {"artist", "album", "name", "url", "streamable", "image"}


def _now_playing_listener(sandbox: Sandbox, now: float) -> str:
    for name in sandbox.population.names():
        listener = sandbox.population.find(name)
        assert listener is not None
        if listener.playing(now) is not None:
            return name
    raise AssertionError("nobody is playing")


def test_recent_tracks_has_the_documented_shape(clock: VirtualClock, sandbox: Sandbox) -> None:
    """recenttracks{track[], @attr{user,page,perPage,totalPages,total}} with artist/album #text, images and dates."""
    name = next(n for n in sandbox.population.names()
                if sandbox.population.find(n).playing(clock.now()) is None)  # type: ignore[union-attr]

    async def go(http: httpx.AsyncClient) -> dict:
        return (await http.get("/2.0/", params=lastfm_params(name, limit=3))).json()

    body = drive(clock, sandbox, go)["recenttracks"]
    assert body["@attr"]["user"] == name
    assert {"page", "perPage", "totalPages", "total"} <= set(body["@attr"])
    assert body["@attr"]["perPage"] == "3" and int(body["@attr"]["total"]) > 3
    assert len(body["track"]) == 3
    for track in body["track"]:
        assert set(track) >= TRACK_FIELDS
        assert {"#text", "mbid"} <= set(track["artist"]) and {"#text", "mbid"} <= set(track["album"])
        assert [i["size"] for i in track["image"]] == ["small", "medium", "large", "extralarge"]
        assert {"uts", "#text"} <= set(track["date"]) and int(track["date"]["uts"]) <= clock.now()
    dates = [int(t["date"]["uts"]) for t in body["track"]]
    assert dates == sorted(dates, reverse=True)


def test_a_now_playing_listener_gets_two_items_for_limit_one(clock: VirtualClock, sandbox: Sandbox) -> None:
    """The now-playing entry has @attr.nowplaying and no date, and comes on top of the last scrobble."""
    name = _now_playing_listener(sandbox, clock.now())

    async def go(http: httpx.AsyncClient) -> list[dict]:
        return (await http.get("/2.0/", params=lastfm_params(name, limit=1))).json()["recenttracks"]["track"]

    playing, last = drive(clock, sandbox, go)
    assert playing["@attr"] == {"nowplaying": "true"} and "date" not in playing
    assert "date" in last and "@attr" not in last


def test_pages_continue_each_other(clock: VirtualClock, sandbox: Sandbox) -> None:
    """Page 2 starts where page 1 ended: no overlap, dates keep descending."""
    async def go(http: httpx.AsyncClient) -> list[list[dict]]:
        pages = []
        for page in (1, 2):
            body = (await http.get("/2.0/", params=lastfm_params("listener0003", limit=5, page=page))).json()
            pages.append([t for t in body["recenttracks"]["track"] if "date" in t])
        return pages

    first, second = drive(clock, sandbox, go)
    dates = [int(t["date"]["uts"]) for t in first + second]
    assert len(dates) == 10 and dates == sorted(dates, reverse=True) and len(set(dates)) == 10


def test_history_is_consistent_as_time_passes(clock: VirtualClock, sandbox: Sandbox) -> None:
    """What was the newest scrobble is still in the history an hour later, at the same date."""
    async def go(http: httpx.AsyncClient) -> tuple[dict, list[dict]]:
        params = lastfm_params("listener0007", limit=50)
        before = [t for t in (await http.get("/2.0/", params=params)).json()["recenttracks"]["track"] if "date" in t]
        await clock.sleep(3600)
        after = (await http.get("/2.0/", params=params)).json()["recenttracks"]["track"]
        return before[0], after

    newest, later = drive(clock, sandbox, go)
    assert newest in later


def test_active_share_is_exact_over_the_population(clock: VirtualClock) -> None:
    """With 40 listeners and active share 0.25, exactly 10 scrobbled or are playing within the last 2 h."""
    sandbox = Sandbox(SandboxConfig.from_options(listeners=40, active_share=0.25), clock)

    async def go(http: httpx.AsyncClient) -> int:
        active = 0
        for name in sandbox.population.names():
            await clock.sleep(0.25)  # stay under 5/s
            tracks = (await http.get("/2.0/", params=lastfm_params(name, limit=1))).json()["recenttracks"]["track"]
            newest = tracks[0] if tracks else None
            if newest and ("date" not in newest or clock.now() - int(newest["date"]["uts"]) < 7200):
                active += 1
        return active

    assert drive(clock, sandbox, go) == 10


def test_user_info_has_playcount_and_registration(clock: VirtualClock, sandbox: Sandbox) -> None:
    """user.getinfo answers user{name, playcount, registered{unixtime}, url, image}."""
    async def go(http: httpx.AsyncClient) -> dict:
        return (await http.get("/2.0/", params=lastfm_params("LISTENER0002", "user.getinfo"))).json()["user"]

    user = drive(clock, sandbox, go)
    assert user["name"] == "listener0002" and int(user["playcount"]) > 0
    assert int(user["registered"]["unixtime"]) < clock.now()
    assert user["url"] == "https://www.last.fm/user/listener0002"


def test_errors_come_in_the_body(clock: VirtualClock, sandbox: Sandbox) -> None:
    """An unknown user is error 6 'User not found'; a missing api_key is error 10."""
    async def go(http: httpx.AsyncClient) -> tuple[dict, dict]:
        unknown = await http.get("/2.0/", params=lastfm_params("nobody"))
        no_key = await http.get("/2.0/", params={"method": "user.getrecenttracks", "user": "listener0001",
                                                 "format": "json"})
        return unknown.json(), no_key.json()

    unknown, no_key = drive(clock, sandbox, go)
    assert unknown == {"error": 6, "message": "User not found"}
    assert no_key["error"] == 10


def _throttled(clock: VirtualClock, share: float) -> list[httpx.Response]:
    sandbox = Sandbox(SandboxConfig.from_options(lastfm_http200_share=share), clock)

    async def go(http: httpx.AsyncClient) -> list[httpx.Response]:
        return [await http.get("/2.0/", params=lastfm_params("listener0001", limit=1)) for _ in range(25)]

    answers = drive(clock, sandbox, go)
    assert all(r.status_code == 200 and "recenttracks" in r.json() for r in answers[:5])
    assert sandbox.stats().endpoint("lastfm", "user.getrecenttracks").rate_limited == 20
    return answers[5:]


def test_error_29_with_http_429(clock: VirtualClock) -> None:
    """Past 5 calls in a second, Last.fm answers error 29 with HTTP 429 and no Retry-After."""
    for r in _throttled(clock, 0.0):
        assert r.status_code == 429 and "retry-after" not in r.headers
        assert r.json()["error"] == 29 and r.json()["message"].startswith("Rate limit exceeded")


def test_error_29_with_http_200(clock: VirtualClock) -> None:
    """Error 29 can come with HTTP 200, so only the body tells the client it was throttled."""
    for r in _throttled(clock, 1.0):
        assert r.status_code == 200 and r.json()["error"] == 29


def test_error_29_status_is_a_seeded_mix_by_default(clock: VirtualClock) -> None:
    """By default error 29 comes sometimes with 200 and sometimes with 429."""
    statuses = {r.status_code for r in _throttled(clock, 0.5)}
    assert statuses == {200, 429}


def test_limit_is_per_api_key_and_rolls_after_a_second(clock: VirtualClock, sandbox: Sandbox) -> None:
    """Another api_key has its own 5/s, and the first key is admitted again a second later."""
    async def go(http: httpx.AsyncClient) -> list[int]:
        def call(key: str) -> object:
            return http.get("/2.0/", params={**lastfm_params("listener0001"), "api_key": key})

        for _ in range(5):
            await call("a")
        blocked = await call("a")
        other = await call("b")
        await clock.sleep(1)
        again = await call("a")
        return ["error" in r.json() for r in (blocked, other, again)]

    assert drive(clock, sandbox, go) == [True, False, False]
