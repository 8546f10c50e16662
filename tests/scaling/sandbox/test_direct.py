"""The direct transport and the direct client answer exactly as the ASGI app, without its plumbing."""

from __future__ import annotations

import httpx
import pytest

from scaling.clock import VirtualClock
from scaling.fetch import Sender
from scaling.sandbox import Faults, Sandbox, SandboxConfig
from scaling.sandbox.direct_client import DirectClient

from .conftest import OPENAI, lastfm_params

_FAULTY = Faults(latency=(0.05, 0.3), error_rate=0.1, malformed_rate=0.15)


def _config() -> SandboxConfig:
    cfg = SandboxConfig.from_options(seed=3, listeners=50, active_share=0.3)
    for name in ("spotify", "lastfm", "openai"):
        cfg = cfg.with_upstream(name, faults=_FAULTY)
    return cfg


async def _session(http: Sender) -> list[httpx.Response]:
    # Only ``request`` with the keyword arguments the upstream clients pass: all a `Sender` has.
    send = http.request
    out = [await send("POST", "/api/token", auth=("app-one", "s3cret"), data={"grant_type": "client_credentials"})]
    auth = {"Authorization": f"Bearer {out[0].json()['access_token']}"} if out[0].status_code == 200 else {}
    for i in range(1, 8):
        out.append(await send("GET", "/2.0/", params=lastfm_params(f"listener{i:04d}", limit=2)))
    out += [
        await send("GET", "/2.0", params=lastfm_params("listener0003", method="user.getinfo")),
        await send("GET", "/2.0/", params=lastfm_params("nobody")),
        await send("GET", "/2.0/", params={"method": "user.getinfo", "user": "listener0001", "api_key": "k"}),
        await send("GET", "/v1/albums/4aawyAB9vmqN3uQ7FjRGTy", headers=auth),
        await send("GET", "/v1/albums/unknown1", headers=auth),
        await send("GET", "/v1/albums", params={"ids": "4aawyAB9vmqN3uQ7FjRGTy,unknown2"}, headers=auth),
        await send("GET", "/v1/search", params={"q": 'album:"velvet" & ünï', "type": "album,artist", "limit": 3,
                                                "include_external": True}, headers=auth),
        await send("POST", "/v1/chat/completions", headers=OPENAI,
                   json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi, ünïcode"}]}),
        await send("POST", "/chat/completions", json={"model": "sonar", "messages": []}),
        await send("GET", "/v1-alpha.1/links", params={"url": "https://open.spotify.com/album/4aawyAB9vmqN3uQ7FjRGTy"}),
        await send("GET", "/v1/nothing-here"),
        await send("DELETE", "/v1/search"),
        await send("GET", "/_sandbox/health"),
    ]
    return out


def _run(how: str) -> tuple[list[httpx.Response], dict[str, object]]:
    clock = VirtualClock()
    sandbox = Sandbox(_config(), clock)

    async def main() -> list[httpx.Response]:
        if how == "client":
            return await _session(DirectClient(sandbox, "http://sandbox"))
        transport = sandbox.direct_transport() if how == "transport" else sandbox.transport()
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
            return await _session(http)

    return clock.run(main()), sandbox.stats().to_dict()


@pytest.mark.parametrize("how", ["transport", "client"])
def test_direct_paths_answer_and_count_exactly_as_asgi(how: str) -> None:
    """Same requests under the same seed and faults: same statuses, headers, bodies and stats,
    whether through `DirectTransport` under httpx or the simulator's `DirectClient`."""
    via_asgi, asgi_stats = _run("asgi")
    via_direct, direct_stats = _run(how)
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
