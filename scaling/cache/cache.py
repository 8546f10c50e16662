"""`Cache`: TTL'd JSON values on the state store, with single-flight across processes.

A lookup that finds a stored value is a hit (one store read). A miss joins this
process's flight for the key if there is one, else starts one. A flight first
tries to take the key's lease (``add``, so exactly one flight across all processes
wins); the winner (leader) runs the fetch in its own task, so no caller's
cancellation can cancel it, stores the value, then releases the lease. Losers
(followers) poll the value on the injected clock, 10 ms growing to 50 ms, and:

- get the leader's value as soon as it is stored;
- get the leader's error (same class and message) or "not found" from a short
  note the leader leaves when it stores nothing, so one failure is one upstream
  call, not one per waiting process; a failure is never cached as a value;
- if the lease vanishes with neither (the leader died, or was cancelled), race to
  become the next leader. A live leader renews its lease every third of its TTL,
  so a slow fetch is not mistaken for a dead one.

If the state store is down the cache steps aside: lookups fetch directly.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import json
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from scaling.cache import layout
from scaling.cache.families import DEFAULT_FAMILIES, Family, check_prefix_free
from scaling.cache.index import FamilyStats, SizeIndex
from scaling.cache.outcome import encode_outcome, rebuild_error
from scaling.clock import Clock, SystemClock
from scaling.errors import ConfigurationError, StoreError, TransientError
from scaling.store import StateStore
from scaling.store.outage import offload

__all__ = ["Cache", "Expiring", "Lookup", "Origin"]

log = logging.getLogger("headroom.cache")

Fetch = Callable[[], Awaitable[Any]]
_MISSING = object()


class Origin(enum.Enum):
    HIT = "hit"  # a stored value
    FETCHED = "fetched"  # this caller's flight ran the fetch
    COALESCED = "coalesced"  # another caller's fetch, in this process or another
    BYPASS = "bypass"  # not cached (family off, or the store is down): fetched directly


@dataclass(frozen=True, slots=True)
class Lookup:
    """A value and where it came from."""

    value: Any
    origin: Origin

    @property
    def called_upstream(self) -> bool:
        """True if this lookup's own fetch ran (what cost accounting charges)."""
        return self.origin in (Origin.FETCHED, Origin.BYPASS)


@dataclass(frozen=True, slots=True)
class Expiring:
    """What a fetch returns to store a value for its own TTL (e.g. a token's ``expires_in``)."""

    value: Any
    ttl_s: float


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class Cache:
    """The shared TTL cache.

    Args:
        store: the state store every process shares.
        clock: time source for TTLs, polling and leases.
        families: the key families (default: the reference's, `DEFAULT_FAMILIES`).
        lease_ttl_s: how long a leader that stops renewing keeps followers waiting.
        poll_initial_s, poll_max_s: followers' polling interval, growing 1.5x per poll.
        wait_budget_s: the longest a follower waits for a live leader before giving up.
        flush_every_s, touch_every_s: see `SizeIndex`.
    """

    def __init__(self, store: StateStore, *, clock: Clock | None = None,
                 families: Mapping[str, Family] | None = None, lease_ttl_s: float = 10.0,
                 poll_initial_s: float = 0.01, poll_max_s: float = 0.05, wait_budget_s: float = 60.0,
                 flush_every_s: float = 1.0, touch_every_s: float = 60.0) -> None:
        if lease_ttl_s <= 0 or poll_initial_s <= 0 or poll_max_s < poll_initial_s or wait_budget_s <= 0:
            raise ConfigurationError("cache: lease_ttl_s, poll_initial_s, wait_budget_s must be positive and "
                                     "poll_max_s >= poll_initial_s")
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.families: dict[str, Family] = dict(families if families is not None else DEFAULT_FAMILIES)
        check_prefix_free(self.families.values())
        self.lease_ttl_s = lease_ttl_s
        self.poll_initial_s = poll_initial_s
        self.poll_max_s = poll_max_s
        self.wait_budget_s = wait_budget_s
        self.index = SizeIndex(store, self.clock, flush_every_s=flush_every_s, touch_every_s=touch_every_s)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._flights: dict[tuple[str, str], asyncio.Future[Lookup]] = {}
        self._seq = 0
        self._store_down = False

    def family(self, name: str) -> Family:
        try:
            return self.families[name]
        except KeyError:
            raise ConfigurationError(f"unknown cache family {name!r}; known: {', '.join(sorted(self.families))}",
                                     variable="cache family") from None

    # -- the main entry point ------------------------------------------------------------
    async def get_or_fetch(self, family: str, key: str, fetch: Fetch, *, max_wait_s: float | None = None) -> Any:
        """The cached value of ``family``/``key``, fetching it once across all processes on a miss.

        Args:
            family: a family name (`families`).
            key: the key within the family (callers normalise it).
            fetch: an async callable returning a JSON-able value, `Expiring`, or None
                for "not found" (stored only in families with ``negative_ttl_s``).
            max_wait_s: the longest to wait for another process's fetch.

        Raises:
            Whatever ``fetch`` raises (followers get the leader's error).
            TransientError: the leader held its lease longer than ``max_wait_s``.
        """
        return (await self.lookup(family, key, fetch, max_wait_s=max_wait_s)).value

    async def lookup(self, family: str, key: str, fetch: Fetch, *, max_wait_s: float | None = None) -> Lookup:
        """Like `get_or_fetch`, also saying whether it was a hit, a fetch or a coalesced wait."""
        fam = self.family(family)
        if not fam.cached:
            return Lookup(_unwrap(await fetch())[0], Origin.BYPASS)
        counted = False
        while True:
            try:
                found = self._found(fam, key, await self._get(layout.value_key(fam.name, key)))
            except StoreError as exc:
                self._degraded(exc)
                return Lookup(_unwrap(await fetch())[0], Origin.BYPASS)
            if found is not _MISSING:
                return Lookup(found, Origin.HIT)
            if not counted:
                self.index.count(fam.name, "misses")
                counted = True
            slot = (fam.name, layout.storage_key(key))
            flight = self._flights.get(slot)
            joined = flight is not None
            if flight is None:
                flight = asyncio.ensure_future(self._fly(fam, key, fetch, max_wait_s))
                self._flights[slot] = flight
                flight.add_done_callback(functools.partial(self._landed, slot))
            try:
                result = await asyncio.shield(flight)
            except asyncio.CancelledError:
                if flight.cancelled() and not _being_cancelled():
                    continue  # the flight was cancelled, not us: its fate must not be ours
                raise
            except StoreError as exc:
                self._degraded(exc)
                return Lookup(_unwrap(await fetch())[0], Origin.BYPASS)
            if joined or result.origin is Origin.COALESCED:
                self.index.count(fam.name, "coalesced")
                return Lookup(result.value, Origin.COALESCED)
            return result

    def _landed(self, slot: tuple[str, str], flight: asyncio.Future[Lookup]) -> None:
        if self._flights.get(slot) is flight:
            del self._flights[slot]
        if not flight.cancelled():
            flight.exception()  # retrieved here so a flight nobody awaits any more is not reported

    def _read(self, fam: Family, key: str) -> Any:
        return self._found(fam, key, self.store.get(layout.value_key(fam.name, key), now=self.clock.now()))

    def _found(self, fam: Family, key: str, raw: bytes | None) -> Any:
        # On the loop's thread: the index's counters are not shared with store threads.
        if self._store_down:
            log.warning("state store is back; cache in use again")
            self._store_down = False
        if raw is None:
            return _MISSING
        self.index.count(fam.name, "hits")
        self.index.touch(fam.name, key)
        return json.loads(raw)

    def _degraded(self, exc: StoreError) -> None:
        if not self._store_down:
            log.warning("state store unavailable (%s); cache bypassed, fetching directly", exc)
            self._store_down = True

    # -- flights ---------------------------------------------------------------------------
    async def _fly(self, fam: Family, key: str, fetch: Fetch, max_wait_s: float | None) -> Lookup:
        vkey, lkey = layout.value_key(fam.name, key), layout.lease_key(fam.name, key)
        budget = self.wait_budget_s if max_wait_s is None else max_wait_s
        deadline = self.clock.now() + budget
        while True:
            raw = await self._get(vkey)
            if raw is not None:
                return Lookup(json.loads(raw), Origin.COALESCED)
            self._seq += 1
            flight_id = f"{self.owner}:{self._seq}"
            lease = flight_id.encode()
            if await offload(self.store, lambda: self.store.add(lkey, lease, now=self.clock.now(),  # noqa: B023
                                                                ttl=self.lease_ttl_s), "cache lease"):
                return await self._lead(fam, key, fetch, flight_id)
            following = await self._get(lkey)
            if following is None:
                continue  # released between our add and get: read the value again
            found = await self._follow(fam, key, following, budget, deadline)
            if found is not None:
                return found

    async def _get(self, key: str) -> bytes | None:
        # Every round trip of a flight goes through the seam: none may block the loop.
        return await offload(self.store, lambda: self.store.get(key, now=self.clock.now()), "cache get")

    async def _follow(self, fam: Family, key: str, following: bytes, budget: float, deadline: float) -> Lookup | None:
        """Wait for the leader's value or outcome; None when the leader vanished without one."""
        vkey, lkey = layout.value_key(fam.name, key), layout.lease_key(fam.name, key)
        clock = self.clock
        delay = self.poll_initial_s
        while True:
            if clock.now() >= deadline:
                raise TransientError(f"waited {budget:.0f}s for another process's fetch of this key",
                                     upstream=f"cache:{fam.name}", endpoint=key[:80])
            await clock.sleep(min(delay, max(0.0, deadline - clock.now())))
            delay = min(delay * 1.5, self.poll_max_s)
            raw = await self._get(vkey)
            if raw is not None:
                return Lookup(json.loads(raw), Origin.COALESCED)
            current = await self._get(lkey)
            if current == following:
                continue
            note = await self._get(layout.done_key(fam.name, key, following.decode()))
            if note is not None:
                return self._from_note(note)
            if current is None:
                return None  # the leader died or gave up without an answer: try to lead
            following = current  # a successor took over

    def _from_note(self, note: bytes) -> Lookup:
        body = json.loads(note)
        if "error" in body:
            err = rebuild_error(body["error"])
            if err is None:
                err = TransientError(f"another process's fetch failed: {body['error'].get('type')}: "
                                     f"{body['error'].get('message', '')}", upstream="cache")
            raise err
        return Lookup(body.get("value"), Origin.COALESCED)

    async def _lead(self, fam: Family, key: str, fetch: Fetch, flight_id: str) -> Lookup:
        lkey = layout.lease_key(fam.name, key)
        heartbeat = asyncio.ensure_future(self._heartbeat(lkey, flight_id))
        try:
            raw = await self._get(layout.value_key(fam.name, key))
            if raw is not None:  # an earlier flight stored it between our miss and our lease
                return Lookup(json.loads(raw), Origin.COALESCED)
            self.index.count(fam.name, "fetches")
            try:
                produced = await fetch()
            except Exception as exc:
                self.index.count(fam.name, "errors")
                await self._anote(fam, key, flight_id, error=exc)
                raise
            value, ttl = _unwrap(produced)
            try:
                stored = await self._astore_value(fam, key, value, ttl)
            except StoreError as exc:
                self._degraded(exc)
                stored = False
            if not stored:
                await self._anote(fam, key, flight_id, value=value)
            return Lookup(value, Origin.FETCHED)
        finally:
            heartbeat.cancel()
            try:
                await offload(self.store, lambda: self.store.compare_and_set(lkey, flight_id.encode(), None,
                                                                             now=self.clock.now()), "cache release")
            except StoreError as exc:
                log.warning("cache lease %s not released (expires by itself): %s", lkey, exc)

    async def _heartbeat(self, lkey: str, flight_id: str) -> None:
        me = flight_id.encode()
        while True:
            await self.clock.sleep(self.lease_ttl_s / 3)
            try:
                if not await offload(self.store, lambda: self.store.compare_and_set(
                        lkey, me, me, now=self.clock.now(), ttl=self.lease_ttl_s), "cache lease renewal"):
                    return
            except StoreError:
                continue

    async def _anote(self, fam: Family, key: str, flight_id: str, *, value: Any = None,
                     error: BaseException | None = None) -> None:
        try:
            await offload(self.store, lambda: self._note(fam, key, flight_id, value=value, error=error), "cache note")
        except StoreError as exc:
            log.warning("cache outcome for %s not shared: %s", fam.name, exc)

    def _note(self, fam: Family, key: str, flight_id: str, *, value: Any = None,
              error: BaseException | None = None) -> None:
        """Leave the flight's outcome for its followers (long enough for a slow poller to read it)."""
        try:
            self.store.set(layout.done_key(fam.name, key, flight_id), encode_outcome(value=value, error=error),
                           now=self.clock.now(), ttl=max(30.0, self.lease_ttl_s * 3))
        except (StoreError, TypeError, ValueError) as exc:
            log.warning("cache outcome for %s not shared: %s", fam.name, exc)

    async def _astore_value(self, fam: Family, key: str, value: Any, ttl_s: float | None) -> bool:
        """`_store_value` with the write off the loop and the index kept on it."""
        if (value is None and fam.negative_ttl_s is None) or ttl_s == 0:
            return False
        ttl = fam.negative_ttl_s if value is None else (ttl_s if ttl_s is not None else fam.ttl_s)
        data = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        now = self.clock.now()
        await offload(self.store, lambda: self.store.set(layout.value_key(fam.name, key), data, now=now, ttl=ttl),
                      "cache write")
        self._indexed(fam, key, len(data), None if ttl is None else now + ttl)
        return True

    def _indexed(self, fam: Family, key: str, size: int, expires: float | None) -> None:
        total = self.index.written(fam.name, key, size, expires)
        if fam.max_bytes is not None and total > fam.max_bytes:
            self.index.evict(fam.name, fam.max_bytes)

    def _store_value(self, fam: Family, key: str, value: Any, ttl_s: float | None) -> bool:
        if (value is None and fam.negative_ttl_s is None) or ttl_s == 0:
            return False
        ttl = fam.negative_ttl_s if value is None else (ttl_s if ttl_s is not None else fam.ttl_s)
        data = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        now = self.clock.now()
        self.store.set(layout.value_key(fam.name, key), data, now=now, ttl=ttl)
        self._indexed(fam, key, len(data), None if ttl is None else now + ttl)
        return True

    # -- direct access ----------------------------------------------------------------------
    def peek(self, family: str, key: str) -> Lookup | None:
        """The stored value (counted as a hit) or None on a miss (not counted)."""
        fam = self.family(family)
        if not fam.cached:
            return None
        found = self._read(fam, key)
        return None if found is _MISSING else Lookup(found, Origin.HIT)

    def get_many(self, family: str, keys: Iterable[str]) -> dict[str, Any]:
        """Stored values of several keys (hits counted; absent keys left out and counted as misses)."""
        fam = self.family(family)
        out: dict[str, Any] = {}
        if not fam.cached:
            return out
        for key in dict.fromkeys(keys):
            try:
                found = self._read(fam, key)
            except StoreError as exc:
                self._degraded(exc)
                return out
            if found is _MISSING:
                self.index.count(fam.name, "misses")
            else:
                out[key] = found
        return out

    def set(self, family: str, key: str, value: Any, *, ttl_s: float | None = None) -> bool:
        """Store a value directly (e.g. each album of a batch); False if the family is not cached."""
        fam = self.family(family)
        return fam.cached and self._store_value(fam, key, value, ttl_s)

    def delete(self, family: str, key: str) -> None:
        fam = self.family(family)
        self.store.delete(layout.value_key(fam.name, key))
        self.index.removed(fam.name, key)

    def flush(self) -> None:
        """Send this process's pending hit/miss counts to the store."""
        self.index.flush()

    def evict(self, family: str) -> int:
        """Run LRU eviction for one family now (normally triggered by writes)."""
        fam = self.family(family)
        return 0 if fam.max_bytes is None else self.index.evict(fam.name, fam.max_bytes)

    def stats(self, families: Iterable[str] | None = None) -> list[FamilyStats]:
        """Counters and contents per family (scans each family's keys: for collectors, not hot paths)."""
        self.flush()
        now = self.clock.now()
        out = []
        for name in families if families is not None else sorted(self.families):
            fam = self.family(name)
            c = self.index.counters(name)
            entries = self.index.entries(name)
            oldest = min((e.created for e in entries), default=None)
            out.append(FamilyStats(family=name, hits=c["hits"], misses=c["misses"], fetches=c["fetches"],
                                   coalesced=c["coalesced"], errors=c["errors"], evictions=c["evictions"],
                                   keys=len(entries), bytes=sum(e.size for e in entries),
                                   oldest_age_s=None if oldest is None else max(0.0, now - oldest),
                                   max_bytes=fam.max_bytes, ttl_s=fam.ttl_s))
        return out


def _unwrap(produced: Any) -> tuple[Any, float | None]:
    """(value, ttl): ttl None means the family's, 0 means do not store (already expired)."""
    if isinstance(produced, Expiring):
        return produced.value, max(0.0, produced.ttl_s)
    return produced, None
