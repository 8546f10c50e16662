"""Simulated upstreams (Spotify, Last.fm, OpenAI, Perplexity, Songlink) that enforce the
documented limits over true rolling windows and fail on purpose, in virtual or real time.

See `Sandbox` (the ASGI app, stats, reset) and `SandboxConfig` (limits, faults, data).
"""

from __future__ import annotations

from scaling.sandbox.app import Sandbox, SandboxTransport
from scaling.sandbox.config import (
    Faults,
    LastfmSim,
    OpenAISim,
    PerplexitySim,
    SandboxConfig,
    SongLinkSim,
    SpotifySim,
    UpstreamSim,
    parse_latency,
)
from scaling.sandbox.population import Listener, Population
from scaling.sandbox.stats import EndpointStats, Outcome, SandboxStats, Served
from scaling.sandbox.window import SlidingLog

__all__ = [
    "EndpointStats",
    "Faults",
    "LastfmSim",
    "Listener",
    "OpenAISim",
    "Outcome",
    "PerplexitySim",
    "Population",
    "Sandbox",
    "SandboxConfig",
    "SandboxStats",
    "SandboxTransport",
    "Served",
    "SlidingLog",
    "SongLinkSim",
    "SpotifySim",
    "UpstreamSim",
    "parse_latency",
]
