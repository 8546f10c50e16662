"""What the simulator reads from the sandbox it runs against: in-process, or on a port (real time).

The sandbox plays the upstreams with their *real* limits (Spotify 180 per 30 s,
Last.fm 5 per second, OpenAI 500 per minute); Headroom's own limiters run at the
plan's conservative ones (120 per 60 s, 4 per second, 60 per minute). A peak is
judged against the upstream's limit, where a 429 would come from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx

from scaling.sandbox import Sandbox, SandboxConfig
from scaling.sandbox.catalog import Catalog
from scaling.sandbox.population import Population
from scaling.settings import RateSpec

__all__ = ["SandboxView", "local_view", "remote_view"]


@dataclass(frozen=True)
class SandboxView:
    """The upstreams' real limits, the catalogue and listeners (in-process only) and what was served.

    ``served(name)`` returns the requests an upstream received and the times it answered them.
    """

    limits: dict[str, RateSpec]
    catalog: Catalog | None
    population: Population | None
    served: Callable[[str], tuple[int, list[float]]]


def _limits(config: SandboxConfig) -> dict[str, RateSpec]:
    return {name: config.upstream(name).requests for name in ("spotify", "lastfm", "openai", "perplexity",
                                                              "songlink")}


def local_view(sandbox: Sandbox) -> SandboxView:
    def served(name: str) -> tuple[int, list[float]]:
        up = sandbox.stats().upstream(name)
        return up.requests, [s.time for s in up.served]

    return SandboxView(_limits(sandbox.config), sandbox.catalog, sandbox.population, served)


def remote_view(url: str) -> SandboxView:
    """A sandbox on a port: its counters over HTTP (``/_sandbox/stats``), default limits."""
    base = url.rstrip("/")

    def served(name: str) -> tuple[int, list[float]]:
        data = httpx.get(f"{base}/_sandbox/stats", timeout=10).json()["upstreams"]
        total = data.get(name, {}).get("total", {})  # an upstream nobody called is absent
        return int(total.get("requests", 0)), [float(s["time"]) for s in total.get("served", [])]

    return SandboxView(_limits(SandboxConfig()), None, None, served)
