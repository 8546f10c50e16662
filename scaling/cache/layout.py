"""Where the cache keeps things in the state store.

    cache:{family}:{key}                 the value, JSON, with the family's TTL
    cachemeta:{family}:{key}             [bytes, created, expires_at, last_access], same TTL
    cachelease:{family}:{key}            the single-flight lease: the leader's flight id
    cachedone:{family}:{key}:{flight}    a flight's outcome when no value was stored (error, not found)
    cachestat:{family}:{counter}         hits, misses, fetches, coalesced, errors, evictions, bytes
    cacheevict:{family}                  the eviction lease (one process evicts at a time)

Keys longer than `MAX_KEY_CHARS` are shortened to a prefix plus a hash, so a long
search query cannot blow a backend's key limit.
"""

from __future__ import annotations

import hashlib

__all__ = ["MAX_KEY_CHARS", "done_key", "evict_key", "lease_key", "meta_key", "meta_prefix", "stat_key",
           "storage_key", "value_key"]

MAX_KEY_CHARS = 200


def storage_key(key: str) -> str:
    """``key`` as stored: unchanged if short, else its first 150 characters plus a digest."""
    if len(key) <= MAX_KEY_CHARS:
        return key
    digest = hashlib.blake2b(key.encode(), digest_size=12).hexdigest()
    return f"{key[:150]}#{digest}"


def value_key(family: str, key: str) -> str:
    return f"cache:{family}:{storage_key(key)}"


def meta_key(family: str, key: str) -> str:
    return f"cachemeta:{family}:{storage_key(key)}"


def meta_prefix(family: str) -> str:
    return f"cachemeta:{family}:"


def lease_key(family: str, key: str) -> str:
    return f"cachelease:{family}:{storage_key(key)}"


def done_key(family: str, key: str, flight: str) -> str:
    return f"cachedone:{family}:{storage_key(key)}:{flight}"


def stat_key(family: str, counter: str) -> str:
    return f"cachestat:{family}:{counter}"


def evict_key(family: str) -> str:
    return f"cacheevict:{family}"
