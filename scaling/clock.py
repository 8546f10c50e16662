"""Clocks: what everything that waits or expires asks for the time.

`SystemClock` is wall time. `VirtualClock` is time that only moves when the code
under it waits: ``clock.run(coro)`` runs a coroutine on an event loop whose timers
fast-forward whenever no task is ready, so a simulated day of sleeps, timeouts and
rate-limit waits takes as long as the code takes to run, deterministically.
`StoreTimeClock` follows the state store's clock so hosts with skewed clocks agree.
"""

from __future__ import annotations

import asyncio
import logging
import selectors
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

__all__ = ["Clock", "StoreTimeClock", "SystemClock", "VirtualClock", "running_virtual"]

log = logging.getLogger("headroom.clock")

T = TypeVar("T")

#: 2026-01-01T00:00:00Z: virtual time starts at a real-looking epoch so dates render.
VIRTUAL_EPOCH = 1_767_225_600.0


class Clock(Protocol):
    """Epoch seconds now, and an awaitable sleep on the same timeline."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Wall-clock time (``time.time``) and ``asyncio.sleep``."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


class StoreTimeClock:
    """Wall time corrected to the state store's clock.

    Every process that shares a store then stamps limiter state on one timeline,
    even when host clocks are seconds apart. The offset is re-read every
    ``resync_every`` seconds: one extra round trip a minute, not one per call.

    If a resync fails (the store is down), the last offset is kept, one warning is
    logged, and the next attempt waits another ``resync_every``: asking the time must
    never fail, or the outage policy of every caller would be moot.

    Args:
        source: a callable returning the store's epoch seconds (``store.time``).
        resync_every: seconds between offset refreshes.
    """

    def __init__(self, source: Callable[[], float], *, resync_every: float = 60.0) -> None:
        self._source = source
        self._resync_every = resync_every
        self._offset = 0.0
        self._synced_at = float("-inf")
        self._failing = False

    def now(self) -> float:
        local = time.time()
        if local - self._synced_at >= self._resync_every:
            before = time.time()
            try:
                remote = self._source()
            except Exception as exc:  # noqa: BLE001 - any store failure: keep the last offset
                self._synced_at = time.time()
                if not self._failing:
                    log.warning("store clock unreachable (%s); keeping the last offset %+.3fs", exc, self._offset)
                    self._failing = True
                return self._synced_at + self._offset
            after = time.time()
            # The remote reading was taken somewhere in the round trip: assume the middle.
            self._offset = remote - (before + after) / 2
            self._synced_at = after
            local = after
            if self._failing:
                log.warning("store clock reachable again; offset %+.3fs", self._offset)
                self._failing = False
        return local + self._offset

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    @property
    def offset(self) -> float:
        """Seconds to add to local time to get store time (as of the last sync)."""
        return self._offset


class VirtualClock:
    """Deterministic time for tests and simulations.

    Time advances only through `advance` or when code running under `run` waits
    and nothing else is ready. `sleep` must be awaited inside `run`.

    Args:
        start: the epoch second the clock starts at.
    """

    def __init__(self, start: float = VIRTUAL_EPOCH) -> None:
        self._t = float(start)
        self._loop: _VirtualEventLoop | None = None

    def now(self) -> float:
        return self._t

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (for synchronous tests)."""
        if seconds < 0:
            raise ValueError("time cannot go backwards")
        self._t += seconds

    async def sleep(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            raise RuntimeError("VirtualClock.sleep must run inside VirtualClock.run()")
        await asyncio.sleep(max(0.0, seconds))

    def run(self, main: Coroutine[Any, Any, T] | Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine to completion in virtual time and return its result."""
        if self._loop is not None:
            raise RuntimeError("VirtualClock.run is not re-entrant")
        loop = _VirtualEventLoop(self)
        self._loop = loop
        try:
            coro = main() if callable(main) else main
            return loop.run_until_complete(coro)
        finally:
            try:
                _cancel_leftovers(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self._loop = None

    def __repr__(self) -> str:
        return f"VirtualClock(now={self._t:.3f})"


class _FastForwardSelector:
    """Wraps the loop's selector: when the loop would block until its next timer
    and no I/O is ready, move virtual time to that timer instead of waiting."""

    def __init__(self, inner: selectors.BaseSelector, clock: VirtualClock) -> None:
        self._inner = inner
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._inner.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            # No timers at all: only real I/O (e.g. a worker thread) can wake us.
            return self._inner.select(None)
        self._clock._t += timeout
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _VirtualEventLoop(asyncio.SelectorEventLoop):
    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self._virtual_clock = clock
        inner: selectors.BaseSelector = self._selector  # type: ignore[has-type]  # set by the base class
        # Duck-typed: the loop only calls select() and the registration methods it forwards.
        self._selector = _FastForwardSelector(inner, clock)
        # Timers due within this much of "now" run in the same tick; keep it tiny so
        # virtual time is exact to the microsecond.
        self._clock_resolution = 1e-6

    def time(self) -> float:
        return self._virtual_clock._t


def running_virtual() -> bool:
    """True inside `VirtualClock.run` (code that must not hop to threads: see `scaling.store.outage`)."""
    try:
        return isinstance(asyncio.get_running_loop(), _VirtualEventLoop)
    except RuntimeError:
        return False


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
