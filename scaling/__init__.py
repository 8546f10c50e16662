"""Headroom's service layer: limiters, fetch, breaker, cache, clients, cleanup, prewarm, costs, capacity."""

from __future__ import annotations

from scaling.clock import Clock, StoreTimeClock, SystemClock, VirtualClock
from scaling.errors import (
    CircuitOpen,
    ConfigurationError,
    MalformedResponse,
    PermanentError,
    QuotaExhausted,
    RateLimited,
    ScalingError,
    StoreError,
    Throttled,
    TransientError,
    UpstreamError,
)
from scaling.settings import RateSpec, Secret, Settings, UpstreamSettings

__all__ = [
    "CircuitOpen",
    "Clock",
    "ConfigurationError",
    "MalformedResponse",
    "PermanentError",
    "QuotaExhausted",
    "RateLimited",
    "RateSpec",
    "ScalingError",
    "Secret",
    "Settings",
    "StoreError",
    "StoreTimeClock",
    "SystemClock",
    "Throttled",
    "TransientError",
    "UpstreamError",
    "UpstreamSettings",
    "VirtualClock",
]
