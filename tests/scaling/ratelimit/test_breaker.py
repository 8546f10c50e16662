"""The shared circuit breaker: failures open it, 429s do not, and exactly one process probes."""

from __future__ import annotations

import multiprocessing as mp

import pytest

from scaling.circuit_breaker import BreakerState, CircuitBreaker, Ticket
from scaling.clock import VirtualClock
from scaling.errors import CircuitOpen
from scaling.store import StateStore, open_store
from scaling.store.memory import MemoryStore


def test_five_consecutive_failures_open_it(clock: VirtualClock, store: StateStore) -> None:
    """Four failures keep it closed; the fifth opens it for reset_timeout."""
    b = CircuitBreaker(store, "spotify", clock=clock, reset_timeout=30)
    for _ in range(4):
        b.record_failure(b.before_call())
    assert b.snapshot().state is BreakerState.CLOSED
    b.record_failure(b.before_call())
    assert b.snapshot().state is BreakerState.OPEN
    with pytest.raises(CircuitOpen) as info:
        b.before_call()
    assert info.value.retry_after == pytest.approx(30)


def test_a_success_resets_the_run_of_failures(clock: VirtualClock) -> None:
    """Failures must be consecutive to open the breaker."""
    b = CircuitBreaker(MemoryStore(), "lastfm", clock=clock)
    for _ in range(4):
        b.record_failure(b.before_call())
    b.record_success(b.before_call())
    for _ in range(4):
        b.record_failure(b.before_call())
    assert b.snapshot().state is BreakerState.CLOSED


def test_half_open_allows_one_probe_whose_result_decides(clock: VirtualClock, store: StateStore) -> None:
    """After the timeout one caller probes; others are refused; success closes, failure re-opens."""
    a = CircuitBreaker(store, "openai", clock=clock, reset_timeout=10)
    other = CircuitBreaker(store, "openai", clock=clock, reset_timeout=10)  # another process
    for _ in range(5):
        a.record_failure(Ticket())
    clock.advance(10)
    probe = a.before_call()
    assert probe.probe
    with pytest.raises(CircuitOpen):
        other.before_call()
    a.record_failure(probe)
    assert a.snapshot().state is BreakerState.OPEN
    clock.advance(10)
    probe = other.before_call()
    other.record_success(probe)
    assert a.snapshot().state is BreakerState.CLOSED
    assert not a.before_call().probe


def test_a_dead_probe_is_replaced_after_its_lease(clock: VirtualClock) -> None:
    """If the probing process dies, another probes once the lease expires."""
    store = MemoryStore()
    b = CircuitBreaker(store, "x", clock=clock, reset_timeout=10, probe_timeout=5)
    for _ in range(5):
        b.record_failure(Ticket())
    clock.advance(10)
    assert b.before_call().probe  # ... and this process dies
    clock.advance(5)
    assert CircuitBreaker(store, "x", clock=clock).before_call().probe


def test_a_new_instance_does_not_reset_shared_state(clock: VirtualClock, store: StateStore) -> None:
    """Constructing a breaker (a process restart) leaves an open circuit open."""
    b = CircuitBreaker(store, "x", clock=clock)
    for _ in range(5):
        b.record_failure(Ticket())
    assert CircuitBreaker(store, "x", clock=clock).snapshot().state is BreakerState.OPEN


def _try_probe(url: str, ns: str, now: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    clock = VirtualClock(now)
    b = CircuitBreaker(open_store(url, ns), "spotify", clock=clock, reset_timeout=10)
    try:
        out.put(b.before_call().probe)
    except CircuitOpen:
        out.put(False)


def test_exactly_one_probe_across_32_processes(shared_store_url: str, namespace: str) -> None:
    """32 processes racing for the half-open probe: exactly one gets it."""
    clock = VirtualClock()
    b = CircuitBreaker(open_store(shared_store_url, namespace), "spotify", clock=clock, reset_timeout=10)
    for _ in range(5):
        b.record_failure(Ticket())
    ctx = mp.get_context("fork")
    q: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=_try_probe, args=(shared_store_url, namespace, clock.now() + 11, q))
             for _ in range(32)]
    for p in procs:
        p.start()
    results = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    b.store.close()
    assert sum(results) == 1
