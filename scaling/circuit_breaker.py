"""A circuit breaker per upstream, its state shared through the state store.

Five consecutive failures (5xx, timeouts, malformed bodies) open it; while open no
process calls the upstream. After ``reset_timeout`` exactly one process, across all
of them, gets the half-open probe (a lease in the same atomic update); its success
closes the breaker, its failure re-opens it, and if it dies the lease expires and
another process probes. Throttling (429) and client errors are not failures: a
backend that says "slow down" or "no such album" is healthy.
"""

from __future__ import annotations

import enum
import json
import logging
import uuid
from dataclasses import dataclass, replace

from scaling.clock import Clock, SystemClock
from scaling.errors import CircuitOpen, StoreError
from scaling.store import StateStore
from scaling.store.outage import OutagePolicy, offload

__all__ = ["BreakerSnapshot", "BreakerState", "CircuitBreaker", "Ticket"]

log = logging.getLogger("headroom.breaker")


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class Ticket:
    """Permission to make one call; ``probe`` marks the single half-open probe."""

    probe: bool = False
    probe_id: str = ""


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    state: BreakerState
    failures: int
    open_until: float
    opened_count: int


@dataclass(frozen=True, slots=True)
class _State:
    """The breaker's shared record. Stored as JSON with the short keys the store has
    always held (``s f ou pu pid n``), so old records keep reading."""

    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    open_until: float = 0.0
    probe_until: float = 0.0
    probe_id: str = ""
    opened: int = 0

    @classmethod
    def decode(cls, raw: bytes | None) -> _State:
        if not raw:
            return cls()
        d = json.loads(raw)
        return cls(BreakerState(str(d.get("s", "closed"))), int(d.get("f", 0)), float(d.get("ou", 0.0)),
                   float(d.get("pu", 0.0)), str(d.get("pid", "")), int(d.get("n", 0)))

    def encode(self) -> bytes:
        return json.dumps({"s": self.state.value, "f": self.failures, "ou": self.open_until, "pu": self.probe_until,
                           "pid": self.probe_id, "n": self.opened}).encode()

    def blocked_until(self) -> float:
        return self.open_until if self.state is BreakerState.OPEN else self.probe_until


class _Probe(enum.Enum):
    """What the atomic probe step found."""

    TAKEN = "taken"
    CLOSED = "closed"
    BLOCKED = "blocked"


class CircuitBreaker:
    """Shared breaker for one upstream.

    Args:
        store: the shared state store.
        name: the upstream's name.
        clock: time source.
        failure_threshold: consecutive failures that open the breaker.
        reset_timeout: seconds open before a probe is allowed.
        probe_timeout: seconds the probe's lease lasts (then another process may probe).
        outage_policy: while the store is down, ``open`` lets calls through (the limiter
            then paces them at the per-process share) and ``closed`` raises `StoreError`.
            Recording an outcome never raises: the answer is already in hand.
    """

    def __init__(self, store: StateStore, name: str, *, clock: Clock | None = None, failure_threshold: int = 5,
                 reset_timeout: float = 30.0, probe_timeout: float = 15.0,
                 outage_policy: OutagePolicy | str = OutagePolicy.CLOSED) -> None:
        self.store = store
        self.name = name
        self.clock: Clock = clock or SystemClock()
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.probe_timeout = probe_timeout
        self.outage_policy = OutagePolicy.parse(outage_policy)
        self._key = f"breaker:{name}"
        self._store_down = False

    # -- outage handling --------------------------------------------------------------
    def _admit_during_outage(self, exc: StoreError) -> Ticket:
        if self.outage_policy is OutagePolicy.CLOSED:
            raise exc
        if not self._store_down:
            log.warning("[%s] state store unavailable (%s); breaker bypassed (outage policy open)", self.name, exc)
            self._store_down = True
        return Ticket()

    def _unrecorded(self, what: str, exc: StoreError) -> None:
        if not self._store_down:
            log.warning("[%s] %s not recorded, state store unavailable: %s", self.name, what, exc)
            self._store_down = True

    def _store_back(self) -> None:
        if self._store_down:
            log.warning("[%s] state store is back; breaker shared again", self.name)
            self._store_down = False

    # -- before the call ----------------------------------------------------------------
    def before_call(self) -> Ticket:
        """Ask to call the upstream.

        Raises:
            CircuitOpen: the breaker is open, or another process holds the probe.
            StoreError: the store is down and the outage policy is closed.
        """
        try:
            ticket = self._before_call()
        except StoreError as exc:
            return self._admit_during_outage(exc)
        self._store_back()
        return ticket

    async def abefore_call(self) -> Ticket:
        """`before_call` for async code: the store round trip does not block the loop."""
        try:
            ticket = await offload(self.store, self._before_call, "breaker read")
        except StoreError as exc:
            return self._admit_during_outage(exc)
        self._store_back()
        return ticket

    def _before_call(self) -> Ticket:
        now = self.clock.now()
        state = _State.decode(self.store.get(self._key, now=now))
        if state.state is BreakerState.CLOSED:
            return Ticket()
        if now < state.blocked_until():
            raise CircuitOpen(self.name, state.blocked_until() - now)
        probe_id = uuid.uuid4().hex

        def take_probe(raw: bytes | None) -> tuple[bytes | None, float | None, tuple[_Probe, float]]:
            st = _State.decode(raw)
            if st.state is BreakerState.CLOSED:
                return raw, None, (_Probe.CLOSED, 0.0)
            if now < st.blocked_until():
                return raw, None, (_Probe.BLOCKED, st.blocked_until() - now)
            taken = replace(st, state=BreakerState.HALF_OPEN, probe_until=now + self.probe_timeout, probe_id=probe_id)
            return taken.encode(), None, (_Probe.TAKEN, 0.0)

        found, wait = self.store.update(self._key, take_probe, now=now)
        if found is _Probe.TAKEN:
            log.info("[%s] circuit half-open: this process probes", self.name)
            return Ticket(probe=True, probe_id=probe_id)
        if found is _Probe.CLOSED:
            return Ticket()
        raise CircuitOpen(self.name, wait)

    # -- after the call -------------------------------------------------------------------
    def record_success(self, ticket: Ticket) -> None:
        """A healthy answer: closes a half-open breaker and resets the failure run.
        Never raises for the store: the answer was served and must not be discarded."""
        try:
            self._record_success(ticket)
        except StoreError as exc:
            self._unrecorded("success", exc)

    async def arecord_success(self, ticket: Ticket) -> None:
        """`record_success` off the event loop."""
        try:
            await offload(self.store, lambda: self._record_success(ticket), "breaker success")
        except StoreError as exc:
            self._unrecorded("success", exc)

    def record_failure(self, ticket: Ticket) -> None:
        """A failed call (5xx, timeout, malformed body): may open the breaker."""
        try:
            self._record_failure(ticket)
        except StoreError as exc:
            self._unrecorded("failure", exc)

    async def arecord_failure(self, ticket: Ticket) -> None:
        """`record_failure` off the event loop."""
        try:
            await offload(self.store, lambda: self._record_failure(ticket), "breaker failure")
        except StoreError as exc:
            self._unrecorded("failure", exc)

    def _record_success(self, ticket: Ticket) -> None:
        now = self.clock.now()
        if not ticket.probe:
            state = _State.decode(self.store.get(self._key, now=now))
            if state.state is BreakerState.CLOSED and state.failures == 0:
                return  # nothing to reset: no write on the hot path

        def close(raw: bytes | None) -> tuple[bytes | None, float | None, bool]:
            st = _State.decode(raw)
            if st.state is BreakerState.HALF_OPEN and st.probe_id != ticket.probe_id:
                return raw, None, False  # a stale answer must not close someone else's probe
            closed = replace(st, state=BreakerState.CLOSED, failures=0, open_until=0.0, probe_until=0.0, probe_id="")
            return closed.encode(), None, st.state is not BreakerState.CLOSED

        if self.store.update(self._key, close, now=now):
            log.warning("[%s] circuit closed: upstream healthy again", self.name)

    def _record_failure(self, ticket: Ticket) -> None:
        now = self.clock.now()

        def fail(raw: bytes | None) -> tuple[bytes | None, float | None, bool]:
            st = _State.decode(raw)
            if ticket.probe and st.state is BreakerState.HALF_OPEN and st.probe_id == ticket.probe_id:
                reopened = replace(st, state=BreakerState.OPEN, open_until=now + self.reset_timeout, probe_until=0.0,
                                   probe_id="", opened=st.opened + 1)
                return reopened.encode(), None, True
            if st.state is not BreakerState.CLOSED:
                return raw, None, False
            st = replace(st, failures=st.failures + 1)
            if st.failures >= self.failure_threshold:
                st = replace(st, state=BreakerState.OPEN, open_until=now + self.reset_timeout, opened=st.opened + 1)
                return st.encode(), None, True
            return st.encode(), None, False

        if self.store.update(self._key, fail, now=now):
            log.warning("[%s] circuit opened for %.0fs after repeated failures", self.name, self.reset_timeout)

    def snapshot(self) -> BreakerSnapshot:
        now = self.clock.now()
        st = _State.decode(self.store.get(self._key, now=now))
        return BreakerSnapshot(st.state, st.failures, st.open_until, st.opened)
