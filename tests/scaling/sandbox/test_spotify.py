"""Simulated Spotify: token, album, batch, search, auth, the rolling window and the escalating ban."""

from __future__ import annotations

import asyncio

import httpx

from scaling.clock import VirtualClock
from scaling.sandbox import Sandbox, SandboxConfig
from scaling.settings import RateSpec
from tests.scaling.sandbox.conftest import drive, lastfm_params, spotify_auth

ALBUM_FIELDS = {"id", "name", "artists", "release_date", "total_tracks", "genres", "external_urls", "images", "label",
                "popularity", "copyrights", "tracks", "external_ids"}


def test_token_endpoint_issues_a_bearer_token(clock: VirtualClock, sandbox: Sandbox) -> None:
    """POST /api/token with Basic auth and client_credentials answers access_token, Bearer, 3600."""
    async def go(http: httpx.AsyncClient) -> httpx.Response:
        return await http.post("/api/token", auth=("cid", "secret"), data={"grant_type": "client_credentials"})

    body = drive(clock, sandbox, go).json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["access_token"]
    assert "refresh_token" not in body


def test_token_endpoint_rejects_bad_or_missing_credentials(clock: VirtualClock) -> None:
    """Unknown secrets and missing credentials get 400 invalid_client; a missing grant_type is refused too."""
    sandbox = Sandbox(SandboxConfig().with_upstream("spotify", clients={"cid": "right"}), clock)

    async def go(http: httpx.AsyncClient) -> list[httpx.Response]:
        form = {"grant_type": "client_credentials"}
        return [await http.post("/api/token", auth=("cid", "wrong"), data=form),
                await http.post("/api/token", data=form),
                await http.post("/api/token", auth=("cid", "right")),
                await http.post("/api/token", auth=("cid", "right"), data=form)]

    wrong, missing, no_grant, right = drive(clock, sandbox, go)
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_client")
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_client")
    assert (no_grant.status_code, no_grant.json()["error"]) == (400, "unsupported_grant_type")
    assert right.status_code == 200


def test_album_has_the_documented_fields_and_is_deterministic(clock: VirtualClock, sandbox: Sandbox) -> None:
    """GET /v1/albums/{id} returns every field upstream reads, identical on a second call and a second sandbox."""
    album_id = "4aawyAB9vmqN3uQ7FjRGTy"

    async def go(http: httpx.AsyncClient) -> list[dict]:
        auth = await spotify_auth(http)
        return [(await http.get(f"/v1/albums/{album_id}", headers=auth)).json() for _ in range(2)]

    first, second = drive(clock, sandbox, go)
    assert set(first) >= ALBUM_FIELDS
    other = VirtualClock()
    assert first == second == drive(other, Sandbox(SandboxConfig(), other), go)[0]
    assert first["id"] == album_id and first["total_tracks"] == len(first["tracks"]["items"])
    assert first["external_urls"]["spotify"] == f"https://open.spotify.com/album/{album_id}"
    assert {"id", "name"} <= set(first["artists"][0])
    assert {"url", "height", "width"} <= set(first["images"][0]) and first["images"][0]["height"] == 640
    assert {"text"} <= set(first["copyrights"][0])
    assert "upc" in first["external_ids"]
    track = first["tracks"]["items"][0]
    assert {"track_number", "name", "duration_ms", "preview_url", "artists"} <= set(track)
    assert track["track_number"] == 1 and track["duration_ms"] > 0


def test_unknown_albums_are_404_alone_and_null_in_a_batch(clock: VirtualClock, sandbox: Sandbox) -> None:
    """Ids starting with 'unknown' do not exist: 404 with an error body, null inside /v1/albums?ids=."""
    async def go(http: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response]:
        auth = await spotify_auth(http)
        single = await http.get("/v1/albums/unknown42", headers=auth)
        batch = await http.get("/v1/albums", params={"ids": "4aawyAB9vmqN3uQ7FjRGTy,unknown42"}, headers=auth)
        return single, batch

    single, batch = drive(clock, sandbox, go)
    assert single.status_code == 404 and single.json()["error"]["status"] == 404
    albums = batch.json()["albums"]
    assert batch.status_code == 200 and albums[1] is None and albums[0]["id"] == "4aawyAB9vmqN3uQ7FjRGTy"


def test_unknown_share_makes_a_fraction_of_ids_missing(clock: VirtualClock) -> None:
    """With unknown_share 0.5 about half of arbitrary ids are 404."""
    sandbox = Sandbox(SandboxConfig().with_upstream("spotify", unknown_share=0.5), clock)

    async def go(http: httpx.AsyncClient) -> list[int]:
        auth = await spotify_auth(http)
        return [(await http.get(f"/v1/albums/id{i}", headers=auth)).status_code for i in range(100)]

    statuses = drive(clock, sandbox, go)
    assert set(statuses) == {200, 404} and 30 <= statuses.count(404) <= 70


def test_batch_rejects_more_than_twenty_ids_and_can_be_disabled(clock: VirtualClock) -> None:
    """21 ids is a 400; with batch_albums off (dev mode) the endpoint answers 403."""
    sandbox = Sandbox(SandboxConfig(), clock)
    off = Sandbox(SandboxConfig().with_upstream("spotify", batch_albums=False), clock)
    ids = ",".join(f"a{i}" for i in range(21))

    async def go(http: httpx.AsyncClient) -> httpx.Response:
        return await http.get("/v1/albums", params={"ids": ids}, headers=await spotify_auth(http))

    too_many = drive(clock, sandbox, go)
    assert too_many.status_code == 400 and too_many.json()["error"]["status"] == 400
    assert drive(clock, off, go).status_code == 403


def test_search_is_keyed_by_plural_type_and_limits_to_ten(clock: VirtualClock, sandbox: Sandbox) -> None:
    """Search answers {albums|artists|tracks: paging object}; limit 11 is a 400 as in dev mode."""
    async def go(http: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response]:
        auth = await spotify_auth(http)
        ok = await http.get("/v1/search", params={"q": "velvet", "type": "album,artist,track", "limit": 5},
                            headers=auth)
        big = await http.get("/v1/search", params={"q": "velvet", "type": "album", "limit": 11}, headers=auth)
        return ok, big

    ok, big = drive(clock, sandbox, go)
    body = ok.json()
    assert set(body) == {"albums", "artists", "tracks"}
    for page in body.values():
        assert {"href", "items", "limit", "next", "offset", "previous", "total"} <= set(page)
        assert page["limit"] == 5 and len(page["items"]) <= 5 and page["offset"] == 0
    album = body["albums"]["items"][0]
    assert {"album_type", "artists", "images", "release_date", "total_tracks", "external_urls"} <= set(album)
    assert body["albums"]["total"] > 5 and body["albums"]["next"] is not None
    assert big.status_code == 400


def test_search_finds_the_album_a_listener_played(clock: VirtualClock, sandbox: Sandbox) -> None:
    """An artist/album field query built from a Last.fm recent track finds that album on Spotify."""
    async def go(http: httpx.AsyncClient) -> tuple[dict, dict]:
        track = (await http.get("/2.0/", params=lastfm_params("listener0001", limit=1))).json()
        played = track["recenttracks"]["track"][-1]
        q = f'artist:"{played["artist"]["#text"]}" album:"{played["album"]["#text"]}"'
        found = await http.get("/v1/search", params={"q": q, "type": "album", "limit": 1},
                               headers=await spotify_auth(http))
        return played, found.json()["albums"]["items"][0]

    played, album = drive(clock, sandbox, go)
    assert album["name"] == played["album"]["#text"]
    assert album["artists"][0]["name"] == played["artist"]["#text"]


def test_web_api_requires_a_valid_unexpired_bearer_token(clock: VirtualClock, sandbox: Sandbox) -> None:
    """No token, a forged token and an expired token all get 401 with error{status, message}."""
    async def go(http: httpx.AsyncClient) -> list[httpx.Response]:
        auth = await spotify_auth(http)
        none = await http.get("/v1/albums/abc")
        forged = await http.get("/v1/albums/abc", headers={"Authorization": auth["Authorization"] + "x"})
        fresh = await http.get("/v1/albums/abc", headers=auth)
        await clock.sleep(3600)
        expired = await http.get("/v1/albums/abc", headers=auth)
        return [none, forged, fresh, expired]

    none, forged, fresh, expired = drive(clock, sandbox, go)
    for r in (none, forged, expired):
        assert r.status_code == 401 and r.json()["error"]["status"] == 401 and r.json()["error"]["message"]
    assert fresh.status_code == 200
    assert "expired" in expired.json()["error"]["message"]


def test_rolling_window_admits_exactly_the_limit(clock: VirtualClock, sandbox: Sandbox) -> None:
    """180 calls in 30 s pass, the 181st gets 429 with Retry-After to the oldest's exit, then passes again."""
    async def go(http: httpx.AsyncClient) -> tuple[list[int], httpx.Response, int]:
        auth = await spotify_auth(http)
        statuses = [(await http.get("/v1/albums/abc", headers=auth)).status_code for _ in range(180)]
        await clock.sleep(10)
        refused = await http.get("/v1/albums/abc", headers=auth)
        await clock.sleep(20)  # exactly when the first 180 leave the window
        again = await http.get("/v1/albums/abc", headers=auth)
        return statuses, refused, again.status_code

    statuses, refused, again = drive(clock, sandbox, go)
    assert statuses == [200] * 180
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "20"
    assert refused.json() == {"error": {"status": 429, "message": "API rate limit exceeded"}}
    assert again == 200


def test_window_rolls_rather_than_resetting(clock: VirtualClock, sandbox: Sandbox) -> None:
    """90 calls at t=0 and 90 at t=20: at t=31 only the first 90 have left, so exactly 90 more pass."""
    async def go(http: httpx.AsyncClient) -> list[int]:
        auth = await spotify_auth(http)

        async def burst(n: int) -> list[int]:
            return [(await http.get("/v1/albums/abc", headers=auth)).status_code for _ in range(n)]

        first = await burst(90)
        await clock.sleep(20)
        second = await burst(90)
        await clock.sleep(11)
        third = await burst(91)
        return first + second + third

    statuses = drive(clock, sandbox, go)
    assert statuses[:270] == [200] * 270 and statuses[270] == 429


def test_calling_through_a_cooldown_escalates_the_ban(clock: VirtualClock) -> None:
    """Each call made before Retry-After elapses doubles what is left of the ban, up to the cap; other apps are
    unaffected."""
    config = SandboxConfig().with_upstream("spotify", requests=RateSpec(2, 30.0), ban_cap_s=100.0)
    sandbox = Sandbox(config, clock)

    async def go(http: httpx.AsyncClient) -> tuple[list[int], int]:
        auth = await spotify_auth(http)
        for _ in range(2):
            await http.get("/v1/albums/abc", headers=auth)
        waits = []
        for _ in range(6):
            r = await http.get("/v1/albums/abc", headers=auth)
            assert r.status_code == 429
            waits.append(int(r.headers["Retry-After"]))
            await clock.sleep(1)
        other = await http.get("/v1/albums/abc", headers=await spotify_auth(http, "app-two"))
        return waits, other.status_code

    waits, other = drive(clock, sandbox, go)
    assert waits == [30, 58, 100, 100, 100, 100]  # 30; (30-1)*2; (58-1)*2 capped at 100 ...
    assert other == 200


def test_waiting_out_retry_after_avoids_escalation(clock: VirtualClock) -> None:
    """A client that sleeps exactly Retry-After is admitted, with no longer ban."""
    sandbox = Sandbox(SandboxConfig().with_upstream("spotify", requests=RateSpec(1, 30.0)), clock)

    async def go(http: httpx.AsyncClient) -> list[int]:
        auth = await spotify_auth(http)
        await http.get("/v1/albums/abc", headers=auth)
        r = await http.get("/v1/albums/abc", headers=auth)
        await clock.sleep(int(r.headers["Retry-After"]))
        return [r.status_code, (await http.get("/v1/albums/abc", headers=auth)).status_code]

    assert drive(clock, sandbox, go) == [429, 200]


def test_quota_mode_answers_quota_exceeded_across_client_ids(clock: VirtualClock) -> None:
    """A developer-account quota counts every client id together and answers reason QUOTA_EXCEEDED."""
    sandbox = Sandbox(SandboxConfig().with_upstream("spotify", quota=RateSpec(5, 86_400.0)), clock)

    async def go(http: httpx.AsyncClient) -> list[httpx.Response]:
        one, two = await spotify_auth(http, "one"), await spotify_auth(http, "two")
        return [await http.get("/v1/albums/abc", headers=one if i % 2 else two) for i in range(6)]

    answers = drive(clock, sandbox, go)
    assert [r.status_code for r in answers] == [200] * 5 + [429]
    assert answers[-1].json()["error"]["reason"] == "QUOTA_EXCEEDED"
    assert int(answers[-1].headers["Retry-After"]) == 86_400
    assert sandbox.stats().endpoint("spotify", "album").quota == 1


def test_concurrent_jittered_burst_is_admitted_exactly(clock: VirtualClock) -> None:
    """400 concurrent calls with 150-400 ms latency from one app: exactly 180 pass, as the served log shows."""
    sandbox = Sandbox(SandboxConfig.from_options(latency="150-400ms"), clock)

    async def go(http: httpx.AsyncClient) -> list[int]:
        auth = await spotify_auth(http)
        answers = await asyncio.gather(*(http.get("/v1/albums/abc", headers=auth) for _ in range(400)))
        return [r.status_code for r in answers]

    statuses = drive(clock, sandbox, go)
    assert statuses.count(200) == 180 and statuses.count(429) == 220
    served = sandbox.stats().endpoint("spotify", "album").served
    ok_times = [s.time for s in served if s.status == 200]
    assert max(ok_times) - min(ok_times) < 30
