"""Per-invocation accounting: what each simulated cron run or queue consumer did.

A design opens an invocation (``with meter.invocation("cron", clock) as inv``); every
upstream request and state-store call made from that task (and the tasks it starts,
which inherit its context) is counted on it. Page views run outside any invocation
and are counted on the whole run's totals instead (for the platform bill).

How store calls map to Worker operations (an assumption, stated):

- keys under ``ratelimit:`` and ``breaker:`` are coordination calls: a Worker must keep
  the limiter in a Durable Object (KV's read-modify-write is the race this project
  exists to fix), so each is a subrequest, not a KV operation;
- reads of per-user prewarm entries are bulk KV gets (100 keys count as one operation,
  KV limits page); every other store call is one KV operation.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import httpx

from scaling.capacity.cpu_model import Usage
from scaling.clock import Clock
from scaling.store.base import UpdateFn
from scaling.store.gcra import GcraDecision, GcraRate
from scaling.store.memory import MemoryStore

__all__ = ["Invocation", "Meter", "MeteredStore", "MeteredTransport"]

_ENTRY_PREFIX = "user-listen:individual:"
_COORDINATION = ("ratelimit:", "breaker:")
_BULK_KEYS = 100
T = TypeVar("T")


@dataclass
class Invocation:
    """One invocation's counters and times."""

    kind: str
    started: float
    ended: float = 0.0
    fetches: int = 0
    kv_ops: int = 0
    kv_reads: int = 0
    entry_reads: int = 0
    d1_queries: int = 0
    users: int = 0
    coordination: int = 0

    @property
    def wall_s(self) -> float:
        return self.ended - self.started

    def usage(self) -> Usage:
        return Usage(fetches=self.fetches, kv_ops=self.kv_ops + math.ceil(self.entry_reads / _BULK_KEYS),
                     d1_queries=self.d1_queries, users=self.users, coordination=self.coordination)

    @property
    def subrequests(self) -> int:
        """Upstream fetches plus binding and Durable Object calls (all count on Paid)."""
        u = self.usage()
        return u.fetches + u.kv_ops + u.d1_queries + u.coordination


@dataclass
class Meter:
    """Invocations of one simulation, and totals of everything else (page views)."""

    invocations: list[Invocation] = field(default_factory=list)
    outside: Invocation = field(default_factory=lambda: Invocation("pages", 0.0))
    _current: contextvars.ContextVar[Invocation | None] = field(
        default_factory=lambda: contextvars.ContextVar("invocation", default=None))

    @contextlib.contextmanager
    def invocation(self, kind: str, clock: Clock) -> Iterator[Invocation]:
        inv = Invocation(kind, clock.now())
        token = self._current.set(inv)
        try:
            yield inv
        finally:
            inv.ended = clock.now()
            self._current.reset(token)
            self.invocations.append(inv)

    def current(self) -> Invocation:
        return self._current.get() or self.outside

    def count_fetch(self) -> None:
        """One upstream request, on the current invocation."""
        self.current().fetches += 1

    def count_store(self, key: str, *, read: bool = False) -> None:
        inv = self.current()
        if key.startswith(_COORDINATION):
            inv.coordination += 1
        elif read and key.startswith(_ENTRY_PREFIX):
            inv.entry_reads += 1
        else:
            inv.kv_ops += 1
            inv.kv_reads += read


class MeteredStore(MemoryStore):
    """A `MemoryStore` that counts each call on the meter's current invocation."""

    def __init__(self, meter: Meter, namespace: str = "headroom") -> None:
        super().__init__(namespace)
        self.meter = meter

    def get(self, key: str, *, now: float) -> bytes | None:
        self.meter.count_store(key, read=True)
        return super().get(key, now=now)

    def observe(self, key: str, *, now: float) -> bytes | None:
        """Read without counting: the simulator's own look at the entries, not the design's."""
        return super().get(key, now=now)

    def set(self, key: str, value: bytes, *, now: float, ttl: float | None = None) -> None:
        self.meter.count_store(key)
        super().set(key, value, now=now, ttl=ttl)

    def delete(self, key: str) -> None:
        self.meter.count_store(key)
        super().delete(key)

    def incr(self, key: str, amount: int = 1, *, now: float, ttl: float | None = None) -> int:
        self.meter.count_store(key)
        return super().incr(key, amount, now=now, ttl=ttl)

    def add(self, key: str, value: bytes, *, now: float, ttl: float | None) -> bool:
        self.meter.count_store(key)
        return super().add(key, value, now=now, ttl=ttl)

    def update(self, key: str, fn: UpdateFn[T], *, now: float) -> T:
        self.meter.count_store(key)
        return super().update(key, fn, now=now)

    def gcra_acquire(self, key: str, rates: list[GcraRate], *, now: float, max_wait: float) -> GcraDecision:
        self.meter.count_store("ratelimit:")
        return super().gcra_acquire(key, rates, now=now, max_wait=max_wait)


class MeteredTransport(httpx.AsyncBaseTransport):
    """Counts each upstream request on the meter's current invocation, then sends it."""

    def __init__(self, inner: httpx.AsyncBaseTransport, meter: Meter) -> None:
        self.inner, self.meter = inner, meter

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.meter.count_fetch()
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
