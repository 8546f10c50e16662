"""The direct transport answers exactly as the ASGI one, without the ASGI plumbing."""

from __future__ import annotations

import httpx
import pytest

from scaling.clock import VirtualClock
from scaling.sandbox import Faults, Sandbox, SandboxConfig

from .conftest import OPENAI, lastfm_params

_FAULTY = Faults(latency=(0.05, 0.3), error_rate=0.1, malformed_rate=0.15)


def _config() -> SandboxConfig:
    cfg = SandboxConfig.from_options(seed=3, listeners=50, active_share=0.3)
    for name in ("spotify", "lastfm", "openai"):
        cfg = cfg.with_upstream(name, faults=_FAULTY)
    return cfg


async def _session(http: httpx.AsyncClient) -> list[httpx.Response]:
    out = [await http.post("/api/token", auth=("app-one", "s3cret"), data={"grant_type": "client_credentials"})]
    auth = {"Authorization": f"Bearer {out[0].json()['access_token']}"} if out[0].status_code == 200 else {}
    for i in range(1, 8):
        out.append(await http.get("/2.0/", params=lastfm_params(f"listener{i:04d}", limit=2)))
    out += [
        await http.get("/2.0", params=lastfm_params("listener0003", method="user.getinfo")),
        await http.get("/2.0/", params=lastfm_params("nobody")),
        await http.get("/2.0/", params={"method": "user.getinfo", "user": "listener0001", "api_key": "k"}),
        await http.get("/v1/albums/4aawyAB9vmqN3uQ7FjRGTy", headers=auth),
        await http.get("/v1/albums/unknown1", headers=auth),
        await http.get("/v1/albums", params={"ids": "4aawyAB9vmqN3uQ7FjRGTy,unknown2"}, headers=auth),
        await http.get("/v1/search", params={"q": 'album:"velvet"', "type": "album,artist", "limit": 3}, headers=auth),
        await http.post("/v1/chat/completions", headers=OPENAI,
                        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}),
        await http.post("/chat/completions", json={"model": "sonar", "messages": []}),
        await http.get("/v1-alpha.1/links", params={"url": "https://open.spotify.com/album/4aawyAB9vmqN3uQ7FjRGTy"}),
        await http.get("/v1/nothing-here"),
        await http.delete("/v1/search"),
        await http.get("/_sandbox/health"),
    ]
    return out


def _run(direct: bool) -> tuple[list[httpx.Response], dict[str, object]]:
    clock = VirtualClock()
    sandbox = Sandbox(_config(), clock)
    transport = sandbox.direct_transport() if direct else sandbox.transport()

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
            return await _session(http)

    return clock.run(main()), sandbox.stats().to_dict()


def test_direct_transport_answers_and_counts_exactly_as_asgi() -> None:
    """Same requests under the same seed and faults: same statuses, headers, bodies and stats."""
    via_asgi, asgi_stats = _run(direct=False)
    via_direct, direct_stats = _run(direct=True)
    assert [r.status_code for r in via_direct] == [r.status_code for r in via_asgi]
    assert {r.status_code for r in via_asgi} >= {200, 404, 405}
    for a, d in zip(via_asgi, via_direct):
        assert d.headers.multi_items() == a.headers.multi_items(), a.request.url
        assert d.content == a.content, a.request.url
    assert direct_stats == asgi_stats


def test_direct_transport_times_out_a_hung_request_in_clock_time(clock: VirtualClock) -> None:
    """A hang raises httpx.ReadTimeout after the client's read timeout, on the virtual clock."""
    sandbox = Sandbox(SandboxConfig.from_options(timeout_rate=1.0), clock)
    start = clock.now()

    async def main() -> None:
        async with httpx.AsyncClient(transport=sandbox.direct_transport(), base_url="http://sandbox",
                                     timeout=7.0) as http:
            await http.get("/2.0/", params=lastfm_params("listener0001"))

    with pytest.raises(httpx.ReadTimeout):
        clock.run(main())
    assert clock.now() - start == pytest.approx(7.0, abs=1e-3)
