"""The shared TTL cache: key families, single-flight across processes, stats and LRU eviction."""

from __future__ import annotations

from scaling.cache.cache import Cache, Expiring, Lookup, Origin
from scaling.cache.families import (
    AI_TASK_TTL_DAYS,
    DEFAULT_FAMILIES,
    Family,
    ai_family,
    parse_overrides,
    with_overrides,
)
from scaling.cache.index import FamilyStats

__all__ = [
    "AI_TASK_TTL_DAYS",
    "DEFAULT_FAMILIES",
    "Cache",
    "Expiring",
    "Family",
    "FamilyStats",
    "Lookup",
    "Origin",
    "ai_family",
    "parse_overrides",
    "with_overrides",
]
