"""The cache's bookkeeping: per-family counters, per-key size and last access, LRU eviction.

Hits are the hot path, so they cost no extra round trip: counters are summed in
the process and flushed with one ``incr`` per counter at most every
``flush_every_s``, and a key's last access is rewritten at most once per
``touch_every_s`` per process. Writes (misses) keep a running byte total per
family with ``incr``; when it passes the family budget one process (holding the
eviction lease) scans the family's metadata, corrects the total (expired keys
drop out of it here) and deletes least-recently-used keys down to 90% of budget.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from dataclasses import asdict, dataclass

from scaling.cache import layout
from scaling.clock import Clock
from scaling.errors import StoreError
from scaling.store import StateStore

__all__ = ["COUNTERS", "Entry", "FamilyStats", "SizeIndex"]

log = logging.getLogger("headroom.cache")

COUNTERS = ("hits", "misses", "fetches", "coalesced", "errors", "evictions")
#: Eviction frees down to this share of the budget, so it does not run again on the next write.
LOW_WATER = 0.9
_TOUCHED_MAX = 20_000


@dataclass(frozen=True, slots=True)
class Entry:
    """One live key's metadata."""

    key: str
    size: int
    created: float
    expires_at: float | None
    last_access: float


@dataclass(frozen=True, slots=True)
class FamilyStats:
    """One family's counters (cumulative, all processes) and its current contents.

    Attributes:
        hits: lookups served from a stored value.
        misses: lookups that found no stored value (``fetches + coalesced`` of them
            were answered by a fetch).
        fetches: fetches run by a single-flight leader (upstream calls made).
        coalesced: misses answered by another caller's fetch (same process or another).
        errors: fetches that failed (never cached as values).
        evictions: keys deleted to keep the family under its byte budget.
        keys, bytes: live keys and their JSON size now.
        oldest_age_s: age of the oldest live entry, None if empty.
    """

    family: str
    hits: int
    misses: int
    fetches: int
    coalesced: int
    errors: int
    evictions: int
    keys: int
    bytes: int
    oldest_age_s: float | None
    max_bytes: int | None
    ttl_s: float | None

    @property
    def hit_ratio(self) -> float | None:
        total = self.hits + self.misses
        return self.hits / total if total else None

    def as_dict(self) -> dict[str, object]:
        return asdict(self) | {"hit_ratio": self.hit_ratio}


def _decode_meta(key: str, raw: bytes) -> Entry | None:
    try:
        size, created, expires_at, last = json.loads(raw)
        return Entry(key, int(size), float(created), None if expires_at is None else float(expires_at), float(last))
    except (ValueError, TypeError):
        return None


class SizeIndex:
    """Counters, sizes and eviction for every family of one `Cache`.

    Args:
        store: the shared state store.
        clock: time source.
        flush_every_s: the longest counters stay in this process before reaching the store.
        touch_every_s: the least time between two last-access updates of one key by this process.
    """

    def __init__(self, store: StateStore, clock: Clock, *, flush_every_s: float = 1.0,
                 touch_every_s: float = 60.0) -> None:
        self.store = store
        self.clock = clock
        self.flush_every_s = flush_every_s
        self.touch_every_s = touch_every_s
        self._pending: dict[tuple[str, str], int] = {}
        self._flushed_at = clock.now()
        self._touched: OrderedDict[str, float] = OrderedDict()

    # -- counters ---------------------------------------------------------------------
    def count(self, family: str, counter: str, n: int = 1) -> None:
        self._pending[(family, counter)] = self._pending.get((family, counter), 0) + n
        if self.clock.now() - self._flushed_at >= self.flush_every_s:
            self.flush()

    def flush(self) -> None:
        """Send this process's pending counts to the store (a lost flush only loses counts)."""
        pending, self._pending = self._pending, {}
        self._flushed_at = self.clock.now()
        now = self.clock.now()
        try:
            for (family, counter), n in pending.items():
                if n:
                    self.store.incr(layout.stat_key(family, counter), n, now=now)
        except StoreError as exc:
            log.warning("cache counters not flushed: %s", exc)

    # -- sizes and access ----------------------------------------------------------------
    def written(self, family: str, key: str, size: int, expires_at: float | None) -> int:
        """Record a stored value; returns the family's running byte total."""
        now = self.clock.now()
        mkey = layout.meta_key(family, key)
        old = self.store.get(mkey, now=now)
        old_size = 0
        if old is not None:
            entry = _decode_meta(key, old)
            old_size = entry.size if entry else 0
        ttl = None if expires_at is None else max(expires_at - now, 0.001)
        self.store.set(mkey, json.dumps([size, now, expires_at, now]).encode(), now=now, ttl=ttl)
        self._touched[mkey] = now
        return self.store.incr(layout.stat_key(family, "bytes"), size - old_size, now=now)

    def removed(self, family: str, key: str) -> int:
        """Forget a deleted value; returns the bytes it held."""
        now = self.clock.now()
        mkey = layout.meta_key(family, key)
        raw = self.store.get(mkey, now=now)
        self.store.delete(mkey)
        entry = _decode_meta(key, raw) if raw is not None else None
        if entry is None:
            return 0
        self.store.incr(layout.stat_key(family, "bytes"), -entry.size, now=now)
        return entry.size

    def touch(self, family: str, key: str) -> None:
        """Note an access, at most once per ``touch_every_s`` per key in this process."""
        now = self.clock.now()
        mkey = layout.meta_key(family, key)
        last = self._touched.get(mkey)
        if last is not None and now - last < self.touch_every_s:
            return
        self._touched[mkey] = now
        self._touched.move_to_end(mkey)
        while len(self._touched) > _TOUCHED_MAX:
            self._touched.popitem(last=False)

        def bump(raw: bytes | None) -> tuple[bytes | None, float | None, None]:
            entry = _decode_meta(key, raw) if raw is not None else None
            if entry is None:
                return raw, None, None
            return json.dumps([entry.size, entry.created, entry.expires_at, now]).encode(), entry.expires_at, None

        try:
            self.store.update(mkey, bump, now=now)
        except StoreError as exc:
            log.warning("cache access time not recorded for %s: %s", family, exc)

    # -- reading -------------------------------------------------------------------------
    def entries(self, family: str) -> list[Entry]:
        """Every live key of a family with its metadata (one read per key: for collectors, not hot paths)."""
        now = self.clock.now()
        prefix = layout.meta_prefix(family)
        out = []
        for mkey in self.store.keys(prefix, now=now):
            raw = self.store.get(mkey, now=now)
            entry = _decode_meta(mkey[len(prefix):], raw) if raw is not None else None
            if entry is not None:
                out.append(entry)
        return out

    def counters(self, family: str) -> dict[str, int]:
        now = self.clock.now()
        out = {}
        for name in (*COUNTERS, "bytes"):
            raw = self.store.get(layout.stat_key(family, name), now=now)
            out[name] = int(raw) if raw is not None else 0
        return out

    # -- eviction ------------------------------------------------------------------------
    def evict(self, family: str, max_bytes: int, *, lease_s: float = 30.0) -> int:
        """Delete least-recently-used keys until the family fits in ``max_bytes`` x 0.9.

        Returns:
            Keys evicted (0 if another process holds the eviction lease or nothing was over).
        """
        now = self.clock.now()
        lease = layout.evict_key(family)
        if not self.store.add(lease, b"1", now=now, ttl=lease_s):
            return 0
        try:
            counted_raw = self.store.get(layout.stat_key(family, "bytes"), now=now)
            counted = int(counted_raw) if counted_raw is not None else 0
            entries = self.entries(family)
            total = sum(e.size for e in entries)
            # Expired keys left the store without telling the counter: true it up.
            freed = 0
            evicted = 0
            if total > max_bytes:
                target = int(max_bytes * LOW_WATER)
                for e in sorted(entries, key=lambda e: (e.last_access, e.created)):
                    if total - freed <= target:
                        break
                    self.store.delete(layout.value_key(family, e.key))
                    self.store.delete(layout.meta_key(family, e.key))
                    freed += e.size
                    evicted += 1
            self.store.incr(layout.stat_key(family, "bytes"), (total - freed) - counted, now=now)
            if evicted:
                self.store.incr(layout.stat_key(family, "evictions"), evicted, now=now)
                log.info("cache %s over its %d-byte budget: evicted %d keys (%d bytes)", family, max_bytes,
                         evicted, freed)
            return evicted
        finally:
            self.store.delete(lease)
