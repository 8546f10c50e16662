"""Fault injection: virtual latency, 5xx rates, hangs, malformed bodies; seeded and per upstream."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from scaling.clock import VirtualClock
from scaling.errors import ConfigurationError
from scaling.sandbox import Faults, Sandbox, SandboxConfig
from tests.scaling.sandbox.conftest import drive, lastfm_params, spotify_auth


def _lastfm_calls(clock: VirtualClock, sandbox: Sandbox, n: int, **client: object) -> list[httpx.Response]:
    async def go(http: httpx.AsyncClient) -> list[httpx.Response]:
        out = []
        for _ in range(n):
            out.append(await http.get("/2.0/", params=lastfm_params("listener0001", limit=1)))
            await clock.sleep(0.25)  # stay under Last.fm's 5/s
        return out

    return drive(clock, sandbox, go, **client)


def test_latency_is_virtual(clock: VirtualClock) -> None:
    """100 calls at 300 ms latency take 30 s of clock time but nothing like 30 s of real time."""
    sandbox = Sandbox(SandboxConfig.from_options(latency="0.3"), clock)

    async def go(http: httpx.AsyncClient) -> list[int]:
        return [(await http.get("/v1-alpha.1/links", params={"url": "x", "key": f"k{i}"})).status_code
                for i in range(100)]

    start, real = clock.now(), time.perf_counter()
    statuses = drive(clock, sandbox, go)
    assert statuses == [200] * 100
    assert clock.now() - start == pytest.approx(30.0, abs=1e-3)
    assert time.perf_counter() - real < 10  # a real sleep would take 30 s


def test_latency_range_is_uniform_within_bounds(clock: VirtualClock) -> None:
    """Latency drawn from 150-400ms stays inside the range and varies."""
    sandbox = Sandbox(SandboxConfig.from_options(latency="150-400ms"), clock)

    async def go(http: httpx.AsyncClient) -> list[float]:
        gaps = []
        for i in range(50):
            before = clock.now()
            await http.get("/v1-alpha.1/links", params={"url": "x", "key": f"k{i}"})
            gaps.append(clock.now() - before)
        return gaps

    gaps = drive(clock, sandbox, go)
    assert all(0.15 - 1e-6 <= g <= 0.4 + 1e-6 for g in gaps) and max(gaps) - min(gaps) > 0.1


def test_error_rate_injects_gateway_errors(clock: VirtualClock) -> None:
    """At error rate 0.3, about 30% of answers are 502/503/504 HTML pages, counted as 5xx and faults."""
    sandbox = Sandbox(SandboxConfig.from_options(error_rate=0.3), clock)
    answers = _lastfm_calls(clock, sandbox, 200)
    errors = [r for r in answers if r.status_code >= 500]
    assert 40 <= len(errors) <= 80
    assert {r.status_code for r in errors} == {502, 503, 504}
    assert all(r.headers["content-type"].startswith("text/html") for r in errors)
    stats = sandbox.stats().upstream("lastfm")
    assert stats.server_errors == stats.faults == len(errors) and stats.ok == 200 - len(errors)


def test_faults_are_seeded(clock: VirtualClock) -> None:
    """The same seed gives the same fault sequence; another seed gives another."""
    def statuses(seed: int) -> list[int]:
        c = VirtualClock()
        return [r.status_code for r in _lastfm_calls(c, Sandbox(SandboxConfig.from_options(seed=seed,
                                                                                           error_rate=0.3), c), 40)]

    assert statuses(1) == statuses(1) != statuses(2)


def test_faults_apply_per_upstream(clock: VirtualClock) -> None:
    """Faults configured on Spotify leave Last.fm alone."""
    config = SandboxConfig().with_upstream("spotify", faults=Faults(error_rate=1.0))
    sandbox = Sandbox(config, clock)

    async def go(http: httpx.AsyncClient) -> tuple[int, int]:
        spotify = await http.post("/api/token", auth=("a", "b"), data={"grant_type": "client_credentials"})
        lastfm = await http.get("/2.0/", params=lastfm_params("listener0001"))
        return spotify.status_code, lastfm.status_code

    spotify, lastfm = drive(clock, sandbox, go)
    assert spotify >= 500 and lastfm == 200


def test_a_hung_request_answers_504_after_the_hang(clock: VirtualClock) -> None:
    """With timeout rate 1, a client without a timeout waits the full 120 s and gets a 504."""
    sandbox = Sandbox(SandboxConfig.from_options(timeout_rate=1.0), clock)
    start = clock.now()
    (r,) = _lastfm_calls(clock, sandbox, 1, timeout=None)
    assert r.status_code == 504 and clock.now() - start == pytest.approx(120.25, abs=1e-3)
    served = sandbox.stats().upstream("lastfm").served[0]
    assert (served.status, served.fault, served.time) == (504, "timeout", start)


def test_a_hung_request_trips_the_client_timeout_in_clock_time(clock: VirtualClock) -> None:
    """The sandbox transport raises httpx.ReadTimeout after the client's timeout, measured on the virtual clock."""
    sandbox = Sandbox(SandboxConfig.from_options(timeout_rate=1.0), clock)
    start, real = clock.now(), time.perf_counter()
    with pytest.raises(httpx.ReadTimeout):
        _lastfm_calls(clock, sandbox, 1, timeout=10.0)
    assert clock.now() - start == pytest.approx(10.0, abs=1e-3) and time.perf_counter() - real < 10
    assert sandbox.stats().upstream("lastfm").faults == 1


def _malformed(clock: VirtualClock, kind: str) -> tuple[httpx.Response, Sandbox]:
    sandbox = Sandbox(SandboxConfig().with_upstream("spotify", faults=Faults(malformed_rate=1.0,
                                                                             malformed_kinds=(kind,))), clock)

    async def go(http: httpx.AsyncClient) -> httpx.Response:
        # The token answer is corrupted too, so build the header by hand.
        token = sandbox.upstreams["spotify"].issue("app", clock.now())
        return await http.get("/v1/albums/4aawyAB9vmqN3uQ7FjRGTy", headers={"Authorization": f"Bearer {token}"})

    return drive(clock, sandbox, go), sandbox


def test_malformed_truncated_json(clock: VirtualClock) -> None:
    """A truncated body is a 200 application/json that does not parse."""
    r, sandbox = _malformed(clock, "truncated")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.content)
    stats = sandbox.stats().endpoint("spotify", "album")
    assert stats.faults == 1 and stats.ok == 0 and stats.served[0].fault == "truncated"


def test_malformed_wrong_content_type(clock: VirtualClock) -> None:
    """A wrong-content-type body is a 200 HTML page."""
    r, _ = _malformed(clock, "content_type")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")


def test_malformed_missing_field(clock: VirtualClock) -> None:
    """A missing-field body parses but lacks one documented album field."""
    r, _ = _malformed(clock, "missing_fields")
    body = r.json()
    expected = {"id", "name", "artists", "release_date", "total_tracks", "genres", "external_urls", "images",
                "label", "popularity", "copyrights", "tracks", "external_ids", "album_type", "href",
                "release_date_precision", "type", "uri"}
    assert len(expected - set(body)) == 1


def test_errors_are_never_corrupted(clock: VirtualClock) -> None:
    """Only successes are corrupted: a 404 keeps its JSON error body."""
    sandbox = Sandbox(SandboxConfig().with_upstream("spotify", faults=Faults(malformed_rate=1.0)), clock)

    async def go(http: httpx.AsyncClient) -> httpx.Response:
        token = sandbox.upstreams["spotify"].issue("app", clock.now())
        return await http.get("/v1/albums/unknown1", headers={"Authorization": f"Bearer {token}"})

    assert drive(clock, sandbox, go).json()["error"]["status"] == 404


def test_fault_rates_must_add_up(clock: VirtualClock) -> None:
    """Rates above 1 in total are refused with a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="must not exceed 1"):
        Faults(error_rate=0.6, timeout_rate=0.6)


def test_spotify_auth_helper_still_works_with_latency(clock: VirtualClock) -> None:
    """Latency does not break the token flow (a sanity check of the full path)."""
    sandbox = Sandbox(SandboxConfig.from_options(latency="0.1-0.2"), clock)

    async def go(http: httpx.AsyncClient) -> int:
        return (await http.get("/v1/albums/abc", headers=await spotify_auth(http))).status_code

    assert drive(clock, sandbox, go) == 200
