"""What a store outage means to its callers: the policy, and the one async seam.

`OutagePolicy` is per upstream (``HEADROOM_<UP>_OUTAGE_POLICY``): ``closed`` turns a
store failure into a typed `StoreError` within the caller's budget, ``open`` keeps
calling at a per-process share of the rate. It is a `str` enum so settings that
still carry the plain word compare equal to it.

`offload` is the single place async code makes a store round trip. Store drivers are
synchronous; a round trip on the event loop would freeze every other task for as
long as the server takes (a stopped PostgreSQL froze callers for 60 s). So calls on
a networked or file store run on the store's own small thread pool and are abandoned
(as a `StoreError`) after the store's ``call_timeout_s`` plus a grace. MemoryStore
calls, and every call under a `VirtualClock` loop, run inline: they never block, and
a thread hop would let virtual time jump while the thread works, which would make
simulations non-deterministic.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable
from typing import TypeVar

from scaling.errors import ConfigurationError, StoreError
from scaling.store.base import StateStore, StoreContention

__all__ = ["OutagePolicy", "offload"]

T = TypeVar("T")

#: After a failed call, how long async callers get a `StoreError` at once instead of
#: asking the server again (then one caller tries; success clears it).
RECHECK_S = 1.0

#: Added to a store's own timeout before the seam gives up on a call: the driver's own
#: timeout should fire first and say more.
GRACE_S = 1.0


class OutagePolicy(enum.StrEnum):
    """What a limiter or breaker does while the state store is unreachable."""

    CLOSED = "closed"
    OPEN = "open"

    @classmethod
    def parse(cls, value: OutagePolicy | str) -> OutagePolicy:
        try:
            return cls(value)
        except ValueError:
            raise ConfigurationError(f"outage policy must be 'closed' or 'open', got {value!r}") from None


def _inline(store: StateStore) -> bool:
    if store.backend == "memory":
        return True
    # Imported here: clock imports nothing from the store, and must stay that way.
    from scaling.clock import running_virtual

    return running_virtual()


async def offload(store: StateStore, fn: Callable[[], T], what: str = "call") -> T:
    """Run ``fn`` (which talks to ``store``) without blocking the event loop.

    Raises:
        StoreError: whatever ``fn`` raised, or the call outlived the store's timeout.
    """
    if _inline(store):
        return fn()
    if time.monotonic() < store.failed_until:
        # A server that just failed a call is not asked again for a moment: otherwise every
        # caller would pay the full timeout, one after the other, for the same outage.
        raise StoreError(f"{store.backend} {what} skipped: the store failed {RECHECK_S:.0f}s ago or less",
                         backend=store.backend)
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(store.executor(), fn)
    limit = store.call_timeout_s + GRACE_S
    try:
        result = await asyncio.wait_for(future, timeout=limit)
    except TimeoutError:
        # The thread stays stuck on its connection until the server answers or its socket
        # times out; the caller is released now.
        store.failed_until = time.monotonic() + RECHECK_S
        raise StoreError(f"{store.backend} {what} gave no answer within {limit:.1f}s",
                         backend=store.backend) from None
    except StoreContention:
        raise  # the server is up, only busy
    except StoreError:
        store.failed_until = time.monotonic() + RECHECK_S
        raise
    store.failed_until = 0.0
    return result
