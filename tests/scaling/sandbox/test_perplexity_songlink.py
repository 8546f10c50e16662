"""Simulated Perplexity (usage + citations, bare 429) and Songlink (links, rate headers, 429)."""

from __future__ import annotations

import httpx

from scaling.clock import VirtualClock
from scaling.sandbox import Sandbox
from tests.scaling.sandbox.conftest import drive

PPLX = {"Authorization": "Bearer pplx-test"}
ASK = {"model": "sonar", "messages": [{"role": "user", "content": "Who produced OK Computer?"}], "max_tokens": 200}
ALBUM_URL = "https://open.spotify.com/album/4aawyAB9vmqN3uQ7FjRGTy"


def test_perplexity_answers_chat_usage_and_citations(clock: VirtualClock, sandbox: Sandbox) -> None:
    """POST /chat/completions answers choices, usage{prompt,completion,total} and a list of citation URLs."""
    async def go(http: httpx.AsyncClient) -> httpx.Response:
        return await http.post("/chat/completions", json=ASK, headers=PPLX)

    body = drive(clock, sandbox, go).json()
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens"] <= 200 and body["choices"][0]["message"]["content"]
    assert body["citations"] and all(c.startswith("https://") for c in body["citations"])
    assert body["model"] == "sonar"


def test_perplexity_429_has_no_retry_after(clock: VirtualClock, sandbox: Sandbox) -> None:
    """The 51st call in a minute is a 429 with no Retry-After or rate headers."""
    async def go(http: httpx.AsyncClient) -> list[httpx.Response]:
        return [await http.post("/chat/completions", json=ASK, headers=PPLX) for _ in range(51)]

    answers = drive(clock, sandbox, go)
    assert [r.status_code for r in answers] == [200] * 50 + [429]
    assert "retry-after" not in answers[-1].headers
    assert not any(h.startswith("x-ratelimit") for h in answers[-1].headers)


def test_songlink_links_shape(clock: VirtualClock, sandbox: Sandbox) -> None:
    """Links answers entityUniqueId, userCountry, pageUrl, entitiesByUniqueId and linksByPlatform."""
    async def go(http: httpx.AsyncClient) -> tuple[httpx.Response, dict]:
        r = await http.get("/v1-alpha.1/links", params={"url": ALBUM_URL})
        auth = (await http.post("/api/token", auth=("c", "s"), data={"grant_type": "client_credentials"})).json()
        album = await http.get("/v1/albums/4aawyAB9vmqN3uQ7FjRGTy",
                               headers={"Authorization": f"Bearer {auth['access_token']}"})
        return r, album.json()

    r, album = drive(clock, sandbox, go)
    body = r.json()
    assert {"entityUniqueId", "userCountry", "pageUrl", "entitiesByUniqueId", "linksByPlatform"} <= set(body)
    entity = body["entitiesByUniqueId"][body["entityUniqueId"]]
    assert {"type", "title", "artistName", "thumbnailUrl"} <= set(entity)
    assert (entity["title"], entity["artistName"]) == (album["name"], album["artists"][0]["name"])
    for link in body["linksByPlatform"].values():
        assert link["url"].startswith("https://") and link["entityUniqueId"] in body["entitiesByUniqueId"]
    assert body["linksByPlatform"]["spotify"]["url"] == ALBUM_URL
    assert r.headers["x-ratelimit-remaining"] == "9" and int(r.headers["x-ratelimit-reset"]) > clock.now() - 1


def test_songlink_limits_ten_a_minute(clock: VirtualClock, sandbox: Sandbox) -> None:
    """The 11th call in a minute is a 429 whose x-ratelimit-reset is when the first call leaves the window."""
    async def go(http: httpx.AsyncClient) -> list[httpx.Response]:
        out = []
        for _ in range(11):
            out.append(await http.get("/v1-alpha.1/links", params={"url": ALBUM_URL}))
            await clock.sleep(1)
        return out

    start = clock.now()
    answers = drive(clock, sandbox, go)
    assert [r.status_code for r in answers] == [200] * 10 + [429]
    assert answers[-1].headers["x-ratelimit-remaining"] == "0"
    assert int(answers[-1].headers["x-ratelimit-reset"]) == int(start + 60)


def test_songlink_unknown_url_is_404(clock: VirtualClock, sandbox: Sandbox) -> None:
    """A URL it cannot resolve answers 404 could_not_resolve_entity."""
    async def go(http: httpx.AsyncClient) -> httpx.Response:
        return await http.get("/v1-alpha.1/links", params={"url": "https://open.spotify.com/album/unknown1"})

    r = drive(clock, sandbox, go)
    assert r.status_code == 404 and r.json()["code"] == "could_not_resolve_entity"
