"""MemoryStore keeps limiter state decoded between steps, yet reads back as the JSON every backend stores."""

from __future__ import annotations

import json

from scaling.store import gcra as pure
from scaling.store.gcra import GcraRate
from scaling.store.memory import MemoryStore

NOW = 1_700_000_000.0
RATES = [GcraRate(interval=0.25, capacity=2, cost=1, window=1.0, limit=5)]


def test_limiter_key_reads_as_the_reference_json_state() -> None:
    """After acquires, a cooldown and a refund, get() returns the reference step's state as JSON."""
    store = MemoryStore()
    state = pure.decode(None)
    for i in range(4):
        store.gcra_acquire("lim", RATES, now=NOW + i * 0.1, max_wait=5)
        pure.acquire(state, RATES, NOW + i * 0.1, 5)
    store.gcra_cooldown("lim", NOW + 3, now=NOW + 0.5, window=1.0)
    pure.cooldown(state, NOW + 3)
    store.gcra_refund("lim", [1.0], RATES, now=NOW + 0.6)
    pure.refund(state, [1.0], RATES, NOW + 0.6)
    raw = store.get("lim", now=NOW + 0.6)
    assert raw is not None and pure.decode(raw) == state


def test_value_writes_and_limiter_steps_interleave() -> None:
    """A plain update of a limiter key is seen by the next acquire, and vice versa."""
    store = MemoryStore()
    store.gcra_acquire("lim", RATES, now=NOW, max_wait=5)

    def ban(raw: bytes | None) -> tuple[bytes, float | None, None]:
        state = json.loads(raw or b"{}")
        state["cd"] = NOW + 10
        return json.dumps(state).encode(), None, None

    store.update("lim", ban, now=NOW)
    refused = store.gcra_acquire("lim", RATES, now=NOW + 1, max_wait=5)
    assert not refused.admitted and refused.wait == 9.0
    assert json.loads(store.get("lim", now=NOW + 1) or b"{}")["rej"] == 1


def test_limiter_state_expires_like_any_key() -> None:
    """Once every reservation and two windows have passed, the limiter key reads as absent and starts fresh."""
    store = MemoryStore()
    first = store.gcra_acquire("lim", RATES, now=NOW, max_wait=5)
    assert store.get("lim", now=NOW + 10) is None
    store.gcra_refund("lim", [1.0], RATES, now=NOW + 10)  # nothing to refund on a forgotten key
    assert store.keys("lim", now=NOW + 10) == []
    again = store.gcra_acquire("lim", RATES, now=NOW + 10, max_wait=5)
    assert (first.wait, again.wait, again.used) == (0.0, 0.0, 1.0)
