"""Spotify client against hand-written real-API fixtures: token, album, batches of 20, search, every error."""

from __future__ import annotations

import asyncio
import base64
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from scaling import errors
from scaling.clock import VirtualClock
from scaling.errors import MalformedResponse, PermanentError
from scaling.upstreams import Album
from tests.scaling.upstreams.conftest import FakeApi, error_cases, error_response, fixture, run, spotify_api

ALBUM_ID = "4aawyAB9vmqN3uQ7FjRGTy"


def album_json(album_id: str) -> dict[str, Any]:
    body = fixture("spotify_album")
    body["id"] = album_id
    return body


def batch_answer(request: httpx.Request) -> httpx.Response:
    ids = request.url.params["ids"].split(",")
    return httpx.Response(200, json={"albums": [None if i.startswith("unknown") else album_json(i) for i in ids]})


def test_album_parses_every_field_the_app_reads(clock: VirtualClock) -> None:
    """The real album fixture becomes an Album with artists, tracks, images, label, UPC and URL."""
    api = spotify_api().on("GET", f"/v1/albums/{ALBUM_ID}", fixture("spotify_album"))
    album: Album = run(clock, api, lambda s: s.spotify.album(ALBUM_ID))
    assert (album.name, album.artist_name, album.release_date, album.total_tracks) == \
        ("Global Warming", "Pitbull", "2012-11-16", 2)
    assert album.url == f"https://open.spotify.com/album/{ALBUM_ID}" and album.upc == "886443671584"
    assert album.image is not None and album.image.width == 640 and len(album.images) == 3
    assert [t.name for t in album.tracks] == ["Global Warming (feat. Sensato)", "Don't Stop the Party (feat. TJR)"]
    assert album.tracks[0].preview_url is None and album.tracks[1].artists[1].name == "TJR"
    assert album.label == "Mr.305/Polo Grounds Music/RCA Records" and album.popularity == 56
    assert album.copyrights[0].startswith("(P) 2012")


def test_token_is_client_credentials_and_reused_until_a_minute_before_expiry(clock: VirtualClock) -> None:
    """One Basic-auth client_credentials call serves every request until expires_in - 60 s."""
    api = spotify_api().on("GET", f"/v1/albums/{ALBUM_ID}", fixture("spotify_album"))

    async def go(s: Any) -> None:
        await s.spotify.album(ALBUM_ID)
        s.cache.delete("spotify:album:v2", ALBUM_ID)
        await clock.sleep(3500)
        await s.spotify.album(ALBUM_ID)
        s.cache.delete("spotify:album:v2", ALBUM_ID)
        await clock.sleep(100)  # 3600 s after the first token: past expires_in - 60
        await s.spotify.album(ALBUM_ID)

    run(clock, api, go)
    tokens = api.calls("/api/token")
    assert len(tokens) == 2
    auth = base64.b64decode(tokens[0].headers["authorization"].split()[1]).decode()
    assert auth == "headroom-sandbox:sandbox-secret"
    assert parse_qs(tokens[0].content.decode()) == {"grant_type": ["client_credentials"]}
    assert all(r.headers["authorization"].startswith("Bearer BQDBKJ") for r in api.calls(f"/v1/albums/{ALBUM_ID}"))


def test_cold_token_is_fetched_once_for_fifty_concurrent_calls(clock: VirtualClock) -> None:
    """50 concurrent lookups with no token make one token request (single-flight), not 50."""
    api = spotify_api().on("GET", "/v1/albums", batch_answer)
    for n in range(50):
        api.on("GET", f"/v1/albums/a{n}", album_json(f"a{n}"))
    run(clock, api, lambda s: asyncio.gather(*(s.spotify.album(f"a{n}") for n in range(50))))
    assert len(api.calls("/api/token")) == 1


def test_revoked_token_is_replaced_once(clock: VirtualClock) -> None:
    """A 401 drops the token, fetches a new one and retries the call once."""
    expired = httpx.Response(401, json={"error": {"status": 401, "message": "The access token expired"}})
    api = spotify_api().on("GET", f"/v1/albums/{ALBUM_ID}", expired, fixture("spotify_album"))
    album = run(clock, api, lambda s: s.spotify.album(ALBUM_ID))
    assert album.name == "Global Warming" and len(api.calls("/api/token")) == 2


def test_unknown_album_is_none_and_not_cached(clock: VirtualClock) -> None:
    """A 404 is "no such album" (None), and asking again asks Spotify again."""
    api = spotify_api().on("GET", "/v1/albums/nope1",
                           httpx.Response(404, json={"error": {"status": 404, "message": "Resource not found"}}))

    async def go(s: Any) -> list[Any]:
        return [await s.spotify.album("nope1"), await s.spotify.album("nope1")]

    assert run(clock, api, go) == [None, None] and len(api.calls("/v1/albums/nope1")) == 2


def test_albums_are_fetched_twenty_ids_per_request_with_nulls_for_unknown(clock: VirtualClock) -> None:
    """45 ids take 3 batch requests of at most 20; unknown ids are None; order and duplicates are kept."""
    ids = [f"id{n}" for n in range(43)] + ["unknownA", "unknownB"]
    api = spotify_api().on("GET", "/v1/albums", batch_answer)
    got = run(clock, api, lambda s: s.spotify.albums([*ids, "id0"]))
    sizes = sorted(len(r.url.params["ids"].split(",")) for r in api.calls("/v1/albums"))
    assert sizes == [5, 20, 20]
    assert [a.id if a else None for a in got] == [*ids[:43], None, None, "id0"]


def test_albums_already_cached_are_not_requested_again(clock: VirtualClock) -> None:
    """A second batch asks Spotify only for ids it has not seen (unknown ids are asked again)."""
    api = spotify_api().on("GET", "/v1/albums", batch_answer)

    async def go(s: Any) -> list[Any]:
        await s.spotify.albums(["a1", "a2", "unknown1"])
        return await s.spotify.albums(["a1", "a2", "a3", "unknown1"])

    got = run(clock, api, go)
    assert [r.url.params["ids"] for r in api.calls("/v1/albums")] == ["a1,a2,unknown1", "a3,unknown1"]
    assert [a.id if a else None for a in got] == ["a1", "a2", "a3", None]


def test_lost_batch_endpoint_falls_back_to_single_albums(clock: VirtualClock) -> None:
    """A 403 on /v1/albums (dev-mode apps lost it) switches to one request per album."""
    api = spotify_api().on("GET", "/v1/albums", httpx.Response(403, json={"error": {"status": 403,
                                                                                    "message": "Forbidden"}}))
    for i in ("b1", "b2"):
        api.on("GET", f"/v1/albums/{i}", album_json(i))
    got = run(clock, api, lambda s: s.spotify.albums(["b1", "b2"]))
    assert [a.id for a in got] == ["b1", "b2"] and len(api.calls("/v1/albums")) == 1


def test_truncated_batch_is_malformed_not_misaligned(clock: VirtualClock) -> None:
    """A batch answer with fewer albums than ids is a MalformedResponse, never albums paired with wrong ids."""
    api = spotify_api().on("GET", "/v1/albums", {"albums": [album_json("c1")]})
    with pytest.raises(MalformedResponse, match=r"spotify albums: .*1 albums for 2 ids"):
        run(clock, api, lambda s: s.spotify.albums(["c1", "c2"]))


def test_search_reads_the_plural_keyed_page(clock: VirtualClock) -> None:
    """A field-filtered album search returns typed items and paging; repeated searches come from the cache."""
    api = spotify_api().on("GET", "/v1/search", fixture("spotify_search_albums"))

    async def go(s: Any) -> Any:
        q = 'artist:"Radiohead" album:"OK Computer"'
        await s.spotify.search(q, limit=1)
        return await s.spotify.search(q, limit=1)

    page = run(clock, api, go)
    assert (page.type, page.total, page.limit, page.offset) == ("album", 14, 1, 0)
    item = page.items[0]
    assert (item.name, item.release_date, item.total_tracks, item.album_type) == ("OK Computer", "1997-05-28", 12,
                                                                                   "album")
    assert item.artists[0].name == "Radiohead" and item.images[0].width == 640
    [req] = api.calls("/v1/search")
    assert req.url.params["type"] == "album" and req.url.params["limit"] == "1"


@pytest.mark.parametrize(("name", "case"), error_cases("spotify"))
def test_error_answers_become_typed_errors(clock: VirtualClock, name: str, case: dict[str, Any]) -> None:
    """Each documented Spotify error shape raises its error class, naming upstream and endpoint."""
    api = spotify_api().on("GET", f"/v1/albums/{ALBUM_ID}", error_response(case))
    with pytest.raises(getattr(errors, case["expect"])) as info:
        run(clock, api, lambda s: s.spotify.album(ALBUM_ID))
    assert info.value.upstream == "spotify" and info.value.endpoint == "album"
    assert "sandbox-secret" not in str(info.value)


@pytest.mark.parametrize(("answer", "where"), [
    (httpx.Response(200, content=b'{"id": "4aawyAB9vmqN3uQ7FjRGTy", "name": "Glo'), "not JSON"),
    (httpx.Response(200, text="<!DOCTYPE html><html>Just a moment...</html>"), "not JSON"),
    (httpx.Response(200, json={k: v for k, v in fixture("spotify_album").items() if k != "name"}),
     r"\$\.name is missing"),
    (httpx.Response(200, json={**fixture("spotify_album"), "total_tracks": "2"}), r"\$\.total_tracks is the string"),
    (httpx.Response(200, json={**fixture("spotify_album"), "artists": [{"id": "x"}]}), r"\$\.artists\[0\]\.name"),
])
def test_malformed_bodies_are_typed_errors_naming_the_field(clock: VirtualClock, answer: httpx.Response,
                                                           where: str) -> None:
    """Truncated JSON, an HTML page under 200 and missing or mistyped fields raise MalformedResponse, never KeyError."""
    api = spotify_api().on("GET", f"/v1/albums/{ALBUM_ID}", answer)
    with pytest.raises(MalformedResponse, match=where) as info:
        run(clock, api, lambda s: s.spotify.album(ALBUM_ID))
    assert str(info.value).startswith("spotify album")


def test_token_answer_without_a_token_is_malformed(clock: VirtualClock) -> None:
    """A token answer missing access_token is a MalformedResponse about the token endpoint."""
    api = FakeApi().on("POST", "/api/token", {"token_type": "Bearer", "expires_in": 3600})
    with pytest.raises(MalformedResponse, match=r"spotify token: \$\.access_token is missing"):
        run(clock, api, lambda s: s.spotify.album(ALBUM_ID))


def test_bad_credentials_are_a_permanent_error(clock: VirtualClock) -> None:
    """invalid_client from the token endpoint is permanent (not retried)."""
    api = FakeApi().on("POST", "/api/token", httpx.Response(400, json={"error": "invalid_client",
                                                                       "error_description": "Invalid client"}))
    with pytest.raises(PermanentError, match="spotify token"):
        run(clock, api, lambda s: s.spotify.album(ALBUM_ID))
    assert len(api.calls("/api/token")) == 1


@pytest.mark.parametrize("bad", ["", "has space", "x" * 65, "a/b"])
def test_bad_ids_are_refused_before_any_call(clock: VirtualClock, bad: str) -> None:
    """An id that cannot be a Spotify id is a ValueError, and nothing is sent."""
    api = spotify_api()
    with pytest.raises(ValueError, match="not a Spotify id"):
        run(clock, api, lambda s: s.spotify.albums(["ok1", bad]))
    assert api.requests == []


def test_cold_token_is_fetched_once_even_without_a_cache(clock: VirtualClock) -> None:
    """Without a shared cache, concurrent callers in one process still share one token request."""
    api = spotify_api()
    for n in range(30):
        api.on("GET", f"/v1/albums/n{n}", album_json(f"n{n}"))

    async def go(s: Any) -> list[Any]:
        s.spotify.cache = None
        return list(await asyncio.gather(*(s.spotify.album(f"n{n}") for n in range(30))))

    assert len(run(clock, api, go)) == 30 and len(api.calls("/api/token")) == 1
