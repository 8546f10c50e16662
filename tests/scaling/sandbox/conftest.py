"""Sandbox test helpers: build a sandbox on the virtual clock and drive it in-process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest

from scaling.clock import VirtualClock
from scaling.sandbox import Sandbox, SandboxConfig

T = TypeVar("T")


@pytest.fixture
def sandbox(clock: VirtualClock) -> Sandbox:
    """A sandbox with the default (documented) limits and no faults."""
    return Sandbox(SandboxConfig(), clock)


def drive(clock: VirtualClock, sandbox: Sandbox, fn: Callable[[httpx.AsyncClient], Awaitable[T]],
          **client_kwargs: Any) -> T:
    """Run ``fn(http)`` in virtual time with a client wired into ``sandbox``."""

    async def main() -> T:
        async with sandbox.client(**client_kwargs) as http:
            return await fn(http)

    return clock.run(main())


async def spotify_auth(http: httpx.AsyncClient, client_id: str = "app-one", secret: str = "s3cret") -> dict[str, str]:
    """Bearer headers for a Spotify client, via the token endpoint."""
    r = await http.post("/api/token", auth=(client_id, secret), data={"grant_type": "client_credentials"})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def lastfm_params(user: str, method: str = "user.getrecenttracks", **extra: Any) -> dict[str, Any]:
    return {"method": method, "user": user, "api_key": "lfm-key", "format": "json", **extra}


OPENAI = {"Authorization": "Bearer sk-test-key-123"}
