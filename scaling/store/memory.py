"""In-process state store: one dict behind a lock. For tests, simulations and a
single-process deployment; state is not shared across processes.

Limiter keys keep their decoded GCRA state between steps (`_Gcra`) instead of
JSON bytes: the limiter runs on every upstream call, and encoding and parsing
its state each time was a large part of a call's cost. The bytes are made only
when something reads the key as a value, so every other operation sees exactly
what the other backends store.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from scaling.store import gcra
from scaling.store.base import StateStore, UpdateFn

__all__ = ["MemoryStore"]

T = TypeVar("T")


class _Gcra:
    """A limiter key's state as `scaling.store.gcra` works on it; encoded once on demand."""

    __slots__ = ("_raw", "state")

    def __init__(self, state: gcra.GcraState) -> None:
        self.state = state
        self._raw: bytes | None = None

    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = gcra.encode(self.state)
        return self._raw


class MemoryStore(StateStore):
    """`StateStore` on a dict; thread-safe, not process-shared."""

    backend = "memory"

    def __init__(self, namespace: str = "headroom") -> None:
        super().__init__(namespace)
        self._data: dict[str, tuple[bytes | _Gcra, float | None]] = {}
        self._lock = threading.RLock()

    def _live(self, k: str, now: float) -> bytes | None:
        item = self._data.get(k)
        if item is None:
            return None
        value, exp = item
        # Expired entries stay until purge_expired: another caller's clock may be behind.
        if exp is not None and exp <= now:
            return None
        return value.raw() if isinstance(value, _Gcra) else value

    def _live_state(self, k: str, now: float) -> gcra.GcraState | None:
        """A private copy of a live limiter key's decoded state (None if absent or expired)."""
        item = self._data.get(k)
        if item is None or (item[1] is not None and item[1] <= now):
            return None
        value = item[0]
        return value.state.copy() if isinstance(value, _Gcra) else gcra.decode(value)

    def get(self, key: str, *, now: float) -> bytes | None:
        with self._lock:
            return self._live(self._k(key), now)

    def set(self, key: str, value: bytes, *, now: float, ttl: float | None = None) -> None:
        with self._lock:
            self._data[self._k(key)] = (bytes(value), self._exp(now, ttl))

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(self._k(key), None)

    def incr(self, key: str, amount: int = 1, *, now: float, ttl: float | None = None) -> int:
        with self._lock:
            k = self._k(key)
            current = self._live(k, now)
            if current is None:
                self._data[k] = (str(amount).encode(), self._exp(now, ttl))
                return amount
            value = int(current) + amount
            self._data[k] = (str(value).encode(), self._data[k][1])
            return value

    def add(self, key: str, value: bytes, *, now: float, ttl: float | None) -> bool:
        with self._lock:
            k = self._k(key)
            if self._live(k, now) is not None:
                return False
            self._data[k] = (bytes(value), self._exp(now, ttl))
            return True

    def compare_and_set(self, key: str, expected: bytes, new: bytes | None, *, now: float,
                        ttl: float | None = None) -> bool:
        with self._lock:
            k = self._k(key)
            if self._live(k, now) != expected:
                return False
            if new is None:
                del self._data[k]
            else:
                self._data[k] = (bytes(new), self._exp(now, ttl))
            return True

    def update(self, key: str, fn: UpdateFn[T], *, now: float) -> T:
        with self._lock:
            k = self._k(key)
            new, expires_at, result = fn(self._live(k, now))
            if new is None:
                self._data.pop(k, None)
            else:
                self._data[k] = (bytes(new), expires_at)
            return result

    # -- limiter operations: the base class's steps, on decoded state ------------------
    def _gcra_step(self, key: str, now: float, window: float, step: Callable[[gcra.GcraState], T],
                   *, create: bool = True) -> T | None:
        with self._lock:
            k = self._k(key)
            state = self._live_state(k, now)
            if state is None:
                if not create:
                    self._data.pop(k, None)  # as the base class's update with a None value
                    return None
                state = gcra.decode(None)
            result = step(state)
            self._data[k] = (_Gcra(state), gcra.expiry(state, window, now))
            return result

    def gcra_acquire(self, key: str, rates: list[gcra.GcraRate], *, now: float,
                     max_wait: float) -> gcra.GcraDecision:
        decision = self._gcra_step(key, now, max(r.window for r in rates),
                                   lambda state: gcra.acquire(state, rates, now, max_wait))
        assert decision is not None
        return decision

    def gcra_refund(self, key: str, units: list[float], rates: list[gcra.GcraRate], *, now: float) -> None:
        self._gcra_step(key, now, max(r.window for r in rates), lambda state: gcra.refund(state, units, rates, now),
                        create=False)

    def gcra_cooldown(self, key: str, until: float, *, now: float, window: float, throttle: bool = True) -> float:
        def step(state: gcra.GcraState) -> float:
            gcra.cooldown(state, until, throttle=throttle)
            return state.cd

        until_ = self._gcra_step(key, now, window, step)
        assert until_ is not None
        return until_

    def gcra_snapshot(self, key: str, *, now: float, window: float) -> gcra.GcraSnapshot:
        with self._lock:
            state = self._live_state(self._k(key), now)
        return gcra.snapshot(state if state is not None else gcra.decode(None), now, window)

    def keys(self, prefix: str, *, now: float) -> list[str]:
        with self._lock:
            full = self._k(prefix)
            cut = len(self.namespace) + 1
            return sorted(k[cut:] for k in list(self._data) if k.startswith(full) and self._live(k, now) is not None)

    def time(self) -> float:
        return time.time()

    def purge_expired(self, *, now: float) -> int:
        with self._lock:
            dead = [k for k, (_, exp) in self._data.items() if exp is not None and exp <= now]
            for k in dead:
                del self._data[k]
            return len(dead)

    def clear(self) -> None:
        with self._lock:
            prefix = self.namespace + ":"
            for k in [k for k in self._data if k.startswith(prefix)]:
                del self._data[k]
