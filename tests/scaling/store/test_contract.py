"""The state store contract, run on memory, SQLite, PostgreSQL and Redis."""

from __future__ import annotations

import json

import pytest

from scaling.errors import ConfigurationError, StoreError
from scaling.store import StateStore, open_store
from scaling.store import gcra as pure
from scaling.store.gcra import GcraRate

NOW = 1_767_225_600.0


def test_get_set_delete_round_trip(store: StateStore) -> None:
    """A value set is read back byte for byte, and gone once deleted."""
    payload = bytes(range(256))
    store.set("a", payload, now=NOW)
    assert store.get("a", now=NOW) == payload
    store.delete("a")
    assert store.get("a", now=NOW) is None


def test_ttl_is_decided_on_the_callers_clock(store: StateStore) -> None:
    """An entry lives until now + ttl on the caller's timeline, not the server's."""
    store.set("t", b"v", now=NOW, ttl=10)
    assert store.get("t", now=NOW + 9.9) == b"v"
    assert store.get("t", now=NOW + 10) is None
    store.set("forever", b"v", now=NOW)
    assert store.get("forever", now=NOW + 10**7) == b"v"


def test_incr_counts_and_restarts_after_expiry(store: StateStore) -> None:
    """Counters add atomically; an expired counter starts again from zero with a new TTL."""
    assert store.incr("c", now=NOW, ttl=60) == 1
    assert store.incr("c", 4, now=NOW + 1, ttl=60) == 5
    assert store.incr("c", now=NOW + 59, ttl=60) == 6  # ttl is not extended by later increments
    assert store.incr("c", now=NOW + 60, ttl=60) == 1


def test_add_is_a_lease(store: StateStore) -> None:
    """`add` succeeds only for the first caller until the lease expires."""
    assert store.add("lease", b"me", now=NOW, ttl=5)
    assert not store.add("lease", b"you", now=NOW + 4, ttl=5)
    assert store.get("lease", now=NOW) == b"me"
    assert store.add("lease", b"you", now=NOW + 5, ttl=5)
    assert store.get("lease", now=NOW + 5) == b"you"


def test_compare_and_set_only_on_expected_value(store: StateStore) -> None:
    """CAS replaces or deletes only when the live value matches."""
    store.set("k", b"one", now=NOW)
    assert not store.compare_and_set("k", b"two", b"three", now=NOW)
    assert store.compare_and_set("k", b"one", b"two", now=NOW, ttl=3)
    assert store.get("k", now=NOW) == b"two"
    assert not store.compare_and_set("k", b"two", None, now=NOW + 3)  # expired: nothing to match
    store.set("k", b"x", now=NOW)
    assert store.compare_and_set("k", b"x", None, now=NOW)
    assert store.get("k", now=NOW) is None


def test_update_reads_and_writes_atomically(store: StateStore) -> None:
    """`update` sees the current value and its result is returned to the caller."""
    def bump(old: bytes | None) -> tuple[bytes | None, float | None, int]:
        n = int(old or b"0") + 1
        return str(n).encode(), NOW + 100, n

    assert [store.update("u", bump, now=NOW) for _ in range(3)] == [1, 2, 3]
    assert store.get("u", now=NOW + 99) == b"3"
    assert store.get("u", now=NOW + 100) is None
    assert store.update("u", lambda old: (None, None, old), now=NOW + 50) == b"3"
    assert store.get("u", now=NOW + 50) is None


def test_update_rolls_back_when_the_function_raises(store: StateStore) -> None:
    """A failing update changes nothing."""
    store.set("r", b"keep", now=NOW)

    def boom(old: bytes | None) -> tuple[bytes | None, float | None, None]:
        raise ValueError("no")

    with pytest.raises(ValueError):
        store.update("r", boom, now=NOW)
    assert store.get("r", now=NOW) == b"keep"


def test_keys_lists_live_entries_under_a_prefix(store: StateStore) -> None:
    """`keys` lists live keys under a prefix, without the namespace."""
    store.set("cache:a", b"1", now=NOW)
    store.set("cache:b", b"1", now=NOW, ttl=1)
    store.set("other:c", b"1", now=NOW)
    assert store.keys("cache:", now=NOW) == ["cache:a", "cache:b"]
    assert store.keys("cache:", now=NOW + 2) == ["cache:a"]


def test_namespaces_do_not_see_each_other(store: StateStore, tmp_path: object) -> None:
    """Two namespaces on one server are independent, and clear() touches only its own."""
    store.set("x", b"mine", now=NOW)
    assert store.keys("", now=NOW) == ["x"]
    store.clear()
    assert store.get("x", now=NOW) is None


def test_purge_expired_keeps_live_entries(store: StateStore) -> None:
    """Purging drops only what has expired."""
    store.set("old", b"1", now=NOW, ttl=1)
    store.set("new", b"1", now=NOW, ttl=100)
    store.purge_expired(now=NOW + 2)
    assert store.get("new", now=NOW + 2) == b"1"
    assert store.get("old", now=NOW + 2) is None


def test_time_is_close_to_wall_time(store: StateStore) -> None:
    """The store's clock is a real epoch clock (StoreTimeClock follows it)."""
    import time

    assert abs(store.time() - time.time()) < 5


RATES = [GcraRate(interval=0.5, capacity=1, cost=1, window=30, limit=60)]


def test_gcra_hands_out_paced_slots_without_polling(store: StateStore) -> None:
    """Each acquire reserves the next free slot; the wait is exact, no retries needed."""
    waits = [store.gcra_acquire("lim", RATES, now=NOW, max_wait=60).wait for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])


def test_gcra_refuses_beyond_the_wait_budget_without_consuming(store: StateStore) -> None:
    """A refused acquire does not take a slot."""
    for _ in range(4):
        store.gcra_acquire("lim", RATES, now=NOW, max_wait=60)
    refused = store.gcra_acquire("lim", RATES, now=NOW, max_wait=1.0)
    assert not refused.admitted and refused.wait == pytest.approx(2.0)
    nxt = store.gcra_acquire("lim", RATES, now=NOW, max_wait=60)
    assert nxt.admitted and nxt.wait == pytest.approx(2.0)
    snap = store.gcra_snapshot("lim", now=NOW, window=30)
    assert snap.rejected == 1 and snap.throttled == 4 and snap.used == pytest.approx(5)


def test_gcra_cooldown_blocks_everyone_until_it_ends(store: StateStore) -> None:
    """After a 429 nobody is admitted before the cooldown ends, then pacing resumes."""
    store.gcra_acquire("lim", RATES, now=NOW, max_wait=60)
    until = store.gcra_cooldown("lim", NOW + 36_000, now=NOW, window=30)
    assert until == NOW + 36_000
    d = store.gcra_acquire("lim", RATES, now=NOW + 10, max_wait=60)
    assert not d.admitted and d.cooldown_until == NOW + 36_000
    later = [store.gcra_acquire("lim", RATES, now=NOW + 36_000, max_wait=60).wait for _ in range(3)]
    assert later == pytest.approx([0.0, 0.5, 1.0])
    # A ten-hour ban is not forgotten by a fixed TTL.
    assert store.gcra_snapshot("lim", now=NOW + 35_000, window=30).cooldown_until == NOW + 36_000
    assert store.gcra_snapshot("lim", now=NOW + 35_000, window=30).upstream_429 == 1


def test_gcra_multi_rate_debits_together_and_refunds(store: StateStore) -> None:
    """Requests and tokens are charged in one step; unused tokens are refunded."""
    req = GcraRate(interval=1.0, capacity=1, cost=1, window=60, limit=60)
    tok = GcraRate(interval=0.01, capacity=1000, cost=1000, window=60, limit=7000)
    a = store.gcra_acquire("ai", [req, tok], now=NOW, max_wait=60)
    b = store.gcra_acquire("ai", [req, tok], now=NOW, max_wait=60)
    assert a.wait == 0 and b.wait == pytest.approx(10.0)  # tokens bind: 1000 x 0.01 s
    store.gcra_refund("ai", [0, 900], [req, tok], now=NOW)  # b used only 100 tokens
    c = store.gcra_acquire("ai", [req, tok], now=NOW, max_wait=60)
    assert c.wait == pytest.approx(11.0)  # 20 s of token time minus 9 s refunded


def test_gcra_backends_match_the_reference_step(store: StateStore) -> None:
    """Every backend (Redis runs Lua) makes the same decisions as the Python reference."""
    import random

    rng = random.Random(7)
    state = pure.decode(None)
    rates = [GcraRate(0.25, 2, 1, 1.0, 5), GcraRate(0.001, 500, 100, 60, 60000)]
    t = NOW
    for i in range(60):
        t += rng.choice([0, 0, 0.05, 0.3, 1.2])
        budget = rng.choice([0.0, 0.5, 5.0])
        if i == 30:
            assert store.gcra_cooldown("ref", t + 2, now=t, window=60) == pytest.approx(pure.cooldown(state, t + 2)
                                                                                   or state.cd)
            continue
        expected = pure.acquire(state, rates, t, budget)
        got = store.gcra_acquire("ref", rates, now=t, max_wait=budget)
        assert (got.admitted, round(got.wait, 4)) == (expected.admitted, round(expected.wait, 4)), i
        assert round(got.used, 4) == round(expected.used, 4), i


def test_unknown_scheme_is_a_configuration_error() -> None:
    """A store URL with an unknown scheme names the variable to fix."""
    with pytest.raises(ConfigurationError, match="HEADROOM_STATE_URL"):
        open_store("mongodb://localhost/x")


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "postgresql://postgres@127.0.0.1:1/test"])
def test_unreachable_server_is_a_store_error(url: str) -> None:
    """A server that is not there gives a StoreError naming the backend, not a driver traceback."""
    with pytest.raises(StoreError) as info:
        open_store(url)
    assert info.value.backend in ("redis", "postgresql")
    assert info.value.original is not None


@pytest.mark.sqlite
def test_sqlite_store_is_shared_between_instances(tmp_path: object) -> None:
    """Two SqliteStore objects on one file see each other's writes (as two processes would)."""
    url = f"sqlite:///{tmp_path}/s.db"
    a, b = open_store(url, "n"), open_store(url, "n")
    a.set("k", json.dumps({"x": 1}).encode(), now=NOW)
    assert json.loads(b.get("k", now=NOW) or b"") == {"x": 1}
    a.close()
    b.close()
