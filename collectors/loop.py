"""Where async jobs run: one long-lived event loop per collector process, or the virtual clock's loop.

Clients bound to an event loop (``httpx.AsyncClient`` in `scaling.services.Services`)
must be used on the loop they first ran on, so production runs every async job on one
loop in a daemon thread (`LoopThread`); tests run them on `VirtualClock.run`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Coroutine
from typing import Any, Protocol

from collectors.runs import POLL_S, DeadlineExceeded, Interrupted
from scaling.clock import Clock

__all__ = ["AsyncRunner", "LoopThread", "clock_runner"]

log = logging.getLogger("headroom.collectors")


class AsyncRunner(Protocol):
    """Runs a coroutine to completion from a scheduler thread and returns its result."""

    def __call__(self, coro: Coroutine[Any, Any, Any], *, stop: threading.Event, backstop_s: float) -> Any: ...


class LoopThread:
    """One event loop in a daemon thread, shared by every async job of the process.

    Clients bound to a loop (httpx.AsyncClient) then live across runs. A run that
    outlives ``backstop_s`` of real time, or is running when ``stop`` is set, is cancelled.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="collectors-loop", daemon=True)
        self._thread.start()

    def __call__(self, coro: Coroutine[Any, Any, Any], *, stop: threading.Event, backstop_s: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        until = time.monotonic() + backstop_s
        while True:
            try:
                return future.result(timeout=POLL_S)
            except TimeoutError:
                if future.done():
                    return future.result()
                if stop.is_set():
                    future.cancel()
                    raise Interrupted("the collector is shutting down") from None
                if time.monotonic() > until:
                    future.cancel()
                    raise DeadlineExceeded(f"still running {backstop_s:g}s after it started") from None

    def close(self) -> None:
        """Cancel what is still running on the loop, then stop and close it."""

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(timeout=2.0)
            except Exception as exc:  # noqa: BLE001 - a task ignoring cancellation must not block exit
                log.debug("collectors loop: tasks did not finish cancelling: %s", exc)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=2.0)
        if not self._thread.is_alive():
            self.loop.close()


def clock_runner(clock: Clock) -> AsyncRunner:
    """The runner for a clock: `VirtualClock.run` for virtual time, else a fresh ``asyncio.run``."""
    run = getattr(clock, "run", None)

    def runner(coro: Coroutine[Any, Any, Any], *, stop: threading.Event, backstop_s: float) -> Any:
        return run(coro) if run is not None else asyncio.run(coro)

    return runner
