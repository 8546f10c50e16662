"""The state store contract: what limiters, breakers, leases and the cache share
across processes (the Worker's KV, made atomic).

Every method takes ``now`` (epoch seconds from the caller's clock) so expiry is
decided on the caller's timeline: the virtual clock in tests and simulations, the
store's own clock (`scaling.clock.StoreTimeClock`) in production. Expired entries
read as absent; backends also drop them physically (Redis TTL with slack, SQL by
`purge_expired`).
"""

from __future__ import annotations

import contextlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from scaling.errors import StoreError
from scaling.store import gcra

__all__ = ["StateStore", "StoreContention", "UpdateFn"]

T = TypeVar("T")

#: ``fn(old) -> (new, expires_at, result)``; new None deletes, expires_at None keeps forever.
UpdateFn = Callable[[bytes | None], tuple[bytes | None, float | None, T]]


class StoreContention(StoreError):
    """An optimistic transaction lost to concurrent writers too many times in a row."""


class StateStore(ABC):
    """Atomic key/value state with logical expiry, shared by every process.

    Args:
        namespace: prefix for every key, so several deployments (or tests) share a server.
    """

    backend: str = "abstract"
    #: The longest one call may take before the driver gives up (socket, statement or
    #: busy timeout); `scaling.store.outage.offload` abandons a call a little after it.
    call_timeout_s: float = 2.0
    #: Threads async callers' round trips run on (one connection each for SQL stores).
    max_threads: int = 8

    def __init__(self, namespace: str = "headroom") -> None:
        self.namespace = namespace
        self._executor: ThreadPoolExecutor | None = None
        #: Monotonic time until which async callers skip this store after a failure (see outage.py).
        self.failed_until = 0.0
        self._executor_lock = threading.Lock()

    def executor(self) -> ThreadPoolExecutor:
        """This store's own thread pool: a stalled server ties up its threads, never the
        loop's default executor (which resolves host names for the HTTP clients)."""
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.max_threads, thread_name_prefix=f"store-{self.backend}")
            return self._executor

    def _k(self, key: str) -> str:
        return f"{self.namespace}:{key}"

    @staticmethod
    def _exp(now: float, ttl: float | None) -> float | None:
        return None if ttl is None else now + ttl

    @contextlib.contextmanager
    def _translate(self, what: str) -> Iterator[None]:
        """Driver errors become `StoreError` naming the backend and the operation."""
        try:
            yield
        except StoreError:
            raise
        except Exception as exc:  # every driver has its own tree
            if not self._is_driver_error(exc):
                raise
            raise StoreError(f"{self.backend} {what} failed: {exc.__class__.__name__}: {exc}",
                             backend=self.backend, original=exc) from exc

    def _is_driver_error(self, exc: BaseException) -> bool:
        return False

    # -- primitives ----------------------------------------------------------------
    @abstractmethod
    def get(self, key: str, *, now: float) -> bytes | None:
        """The value, or None if absent or expired."""

    @abstractmethod
    def set(self, key: str, value: bytes, *, now: float, ttl: float | None = None) -> None:
        """Store a value, replacing any other; ``ttl`` seconds from ``now`` or forever."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove a key if present."""

    @abstractmethod
    def incr(self, key: str, amount: int = 1, *, now: float, ttl: float | None = None) -> int:
        """Add to a counter atomically and return the new value. A missing or expired
        counter starts from zero and gets ``ttl``; a live one keeps its expiry."""

    @abstractmethod
    def add(self, key: str, value: bytes, *, now: float, ttl: float | None) -> bool:
        """Set only if absent or expired (a lease); True if this call set it."""

    @abstractmethod
    def compare_and_set(self, key: str, expected: bytes, new: bytes | None, *, now: float,
                        ttl: float | None = None) -> bool:
        """Replace (or delete, with ``new=None``) only if the live value equals ``expected``."""

    @abstractmethod
    def update(self, key: str, fn: UpdateFn[T], *, now: float) -> T:
        """Read-modify-write one key atomically in the store (row lock, write lock or
        optimistic transaction): no other process sees or makes a change in between."""

    @abstractmethod
    def keys(self, prefix: str, *, now: float) -> list[str]:
        """Live keys starting with ``prefix`` (namespace not included)."""

    @abstractmethod
    def time(self) -> float:
        """The store's clock in epoch seconds (what `StoreTimeClock` follows)."""

    @abstractmethod
    def purge_expired(self, *, now: float) -> int:
        """Physically drop expired entries; returns how many."""

    @abstractmethod
    def clear(self) -> None:
        """Remove every key of this namespace (tests, resets)."""

    def ping(self) -> None:
        """Raise `StoreError` if the store cannot be reached."""
        self.time()

    def close(self) -> None:
        """Release connections (subclasses call this too: it stops the thread pool)."""
        with self._executor_lock:
            pool, self._executor = self._executor, None
        if pool is not None:
            # Threads stuck on a stopped server must not hold the process open.
            pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- limiter operations (Redis overrides these with Lua) -------------------------
    def gcra_acquire(self, key: str, rates: list[gcra.GcraRate], *, now: float,
                     max_wait: float) -> gcra.GcraDecision:
        """Reserve a slot on every rate of a limiter key, or refuse (see `gcra.acquire`)."""

        def step(raw: bytes | None) -> tuple[bytes | None, float | None, gcra.GcraDecision]:
            state = gcra.decode(raw)
            decision = gcra.acquire(state, rates, now, max_wait)
            return gcra.encode(state), gcra.expiry(state, max(r.window for r in rates), now), decision

        return self.update(key, step, now=now)

    def gcra_refund(self, key: str, units: list[float], rates: list[gcra.GcraRate], *, now: float) -> None:
        """Return unused units (TPM reservations refunded from actual usage)."""

        def step(raw: bytes | None) -> tuple[bytes | None, float | None, None]:
            if raw is None:
                return None, None, None
            state = gcra.decode(raw)
            gcra.refund(state, units, rates, now)
            return gcra.encode(state), gcra.expiry(state, max(r.window for r in rates), now), None

        self.update(key, step, now=now)

    def gcra_cooldown(self, key: str, until: float, *, now: float, window: float, throttle: bool = True) -> float:
        """Start (or extend) the shared 429 cooldown; returns the cooldown's end.
        ``throttle=False``: hold sends without counting an upstream 429 (see `gcra.cooldown`)."""

        def step(raw: bytes | None) -> tuple[bytes | None, float | None, float]:
            state = gcra.decode(raw)
            gcra.cooldown(state, until, throttle=throttle)
            return gcra.encode(state), gcra.expiry(state, window, now), state.cd

        return self.update(key, step, now=now)

    def gcra_snapshot(self, key: str, *, now: float, window: float) -> gcra.GcraSnapshot:
        """Headroom stats for one limiter key (read-only)."""
        return gcra.snapshot(gcra.decode(self.get(key, now=now)), now, window)
