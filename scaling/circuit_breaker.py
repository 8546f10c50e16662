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
from dataclasses import dataclass

from scaling.clock import Clock, SystemClock
from scaling.errors import CircuitOpen
from scaling.store import StateStore

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


_CLOSED = {"s": "closed", "f": 0, "ou": 0.0, "pu": 0.0, "pid": "", "n": 0}


class CircuitBreaker:
    """Shared breaker for one upstream.

    Args:
        store: the shared state store.
        name: the upstream's name.
        clock: time source.
        failure_threshold: consecutive failures that open the breaker.
        reset_timeout: seconds open before a probe is allowed.
        probe_timeout: seconds the probe's lease lasts (then another process may probe).
    """

    def __init__(self, store: StateStore, name: str, *, clock: Clock | None = None, failure_threshold: int = 5,
                 reset_timeout: float = 30.0, probe_timeout: float = 15.0) -> None:
        self.store = store
        self.name = name
        self.clock: Clock = clock or SystemClock()
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.probe_timeout = probe_timeout
        self._key = f"breaker:{name}"

    def _read(self, raw: bytes | None) -> dict:  # type: ignore[type-arg]
        state = dict(_CLOSED)
        if raw:
            state.update(json.loads(raw))
        return state

    def before_call(self) -> Ticket:
        """Ask to call the upstream.

        Raises:
            CircuitOpen: the breaker is open, or another process holds the probe.
        """
        now = self.clock.now()
        state = self._read(self.store.get(self._key, now=now))
        if state["s"] == "closed":
            return Ticket()
        if state["s"] == "open" and now < state["ou"]:
            raise CircuitOpen(self.name, state["ou"] - now)
        if state["s"] == "half_open" and now < state["pu"]:
            raise CircuitOpen(self.name, state["pu"] - now)
        probe_id = uuid.uuid4().hex

        def take_probe(raw: bytes | None) -> tuple[bytes | None, float | None, float]:
            st = self._read(raw)
            if st["s"] == "closed":
                return raw, None, 0.0
            blocked_until = st["ou"] if st["s"] == "open" else st["pu"]
            if now < blocked_until:
                return raw, None, blocked_until - now
            st.update(s="half_open", pu=now + self.probe_timeout, pid=probe_id)
            return json.dumps(st).encode(), None, -1.0

        wait = self.store.update(self._key, take_probe, now=now)
        if wait == -1.0:
            log.info("[%s] circuit half-open: this process probes", self.name)
            return Ticket(probe=True, probe_id=probe_id)
        if wait == 0.0:
            return Ticket()
        raise CircuitOpen(self.name, wait)

    def record_success(self, ticket: Ticket) -> None:
        """A healthy answer: closes a half-open breaker and resets the failure run."""
        now = self.clock.now()
        if not ticket.probe:
            state = self._read(self.store.get(self._key, now=now))
            if state["s"] == "closed" and state["f"] == 0:
                return  # nothing to reset: no write on the hot path

        def close(raw: bytes | None) -> tuple[bytes | None, float | None, bool]:
            st = self._read(raw)
            if st["s"] == "half_open" and st["pid"] != ticket.probe_id:
                return raw, None, False  # a stale answer must not close someone else's probe
            was = st["s"]
            st.update(s="closed", f=0, ou=0.0, pu=0.0, pid="")
            return json.dumps(st).encode(), None, was != "closed"

        if self.store.update(self._key, close, now=now):
            log.warning("[%s] circuit closed: upstream healthy again", self.name)

    def record_failure(self, ticket: Ticket) -> None:
        """A failed call (5xx, timeout, malformed body): may open the breaker."""
        now = self.clock.now()

        def fail(raw: bytes | None) -> tuple[bytes | None, float | None, bool]:
            st = self._read(raw)
            if ticket.probe and st["s"] == "half_open" and st["pid"] == ticket.probe_id:
                st.update(s="open", ou=now + self.reset_timeout, pu=0.0, pid="", n=st["n"] + 1)
                return json.dumps(st).encode(), None, True
            if st["s"] != "closed":
                return raw, None, False
            st["f"] += 1
            if st["f"] >= self.failure_threshold:
                st.update(s="open", ou=now + self.reset_timeout, n=st["n"] + 1)
                return json.dumps(st).encode(), None, True
            return json.dumps(st).encode(), None, False

        if self.store.update(self._key, fail, now=now):
            log.warning("[%s] circuit opened for %.0fs after repeated failures", self.name, self.reset_timeout)

    def snapshot(self) -> BreakerSnapshot:
        now = self.clock.now()
        st = self._read(self.store.get(self._key, now=now))
        return BreakerSnapshot(BreakerState(st["s"]), int(st["f"]), float(st["ou"]), int(st["n"]))
