"""In-process state store: one dict behind a lock. For tests, simulations and a
single-process deployment; state is not shared across processes."""

from __future__ import annotations

import threading
import time
from typing import TypeVar

from scaling.store.base import StateStore, UpdateFn

__all__ = ["MemoryStore"]

T = TypeVar("T")


class MemoryStore(StateStore):
    """`StateStore` on a dict; thread-safe, not process-shared."""

    backend = "memory"

    def __init__(self, namespace: str = "headroom") -> None:
        super().__init__(namespace)
        self._data: dict[str, tuple[bytes, float | None]] = {}
        self._lock = threading.RLock()

    def _live(self, k: str, now: float) -> bytes | None:
        item = self._data.get(k)
        if item is None:
            return None
        value, exp = item
        # Expired entries stay until purge_expired: another caller's clock may be behind.
        return None if exp is not None and exp <= now else value

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
