"""Many processes racing on one key of a shared store: nothing is lost or doubled."""

from __future__ import annotations

import itertools
import multiprocessing as mp

import pytest

from scaling.store import open_store
from scaling.store.gcra import GcraRate

NOW = 1_767_225_600.0
PROCS = 8


def _incr_worker(url: str, ns: str, n: int) -> None:
    store = open_store(url, ns)
    for _ in range(n):
        store.incr("counter", now=NOW)
    store.close()


def _update_worker(url: str, ns: str, n: int) -> None:
    store = open_store(url, ns)

    def bump(old: bytes | None) -> tuple[bytes | None, float | None, None]:
        return str(int(old or b"0") + 1).encode(), None, None

    for _ in range(n):
        store.update("rmw", bump, now=NOW)
    store.close()


def _gcra_worker(url: str, ns: str, n: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    store = open_store(url, ns)
    rates = [GcraRate(interval=0.1, capacity=1, cost=1, window=10, limit=100)]
    slots = [store.gcra_acquire("lim", rates, now=NOW, max_wait=1e9).send_at for _ in range(n)]
    out.put(slots)
    store.close()


def _run(target: object, args: tuple[object, ...]) -> None:
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=target, args=args) for _ in range(PROCS)]  # type: ignore[arg-type]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0


def test_eight_processes_increment_one_counter_exactly(shared_store_url: str, namespace: str) -> None:
    """8 processes x 1,000 increments of one counter give exactly 8,000."""
    _run(_incr_worker, (shared_store_url, namespace, 1000))
    store = open_store(shared_store_url, namespace)
    assert store.get("counter", now=NOW) == b"8000"
    store.clear()
    store.close()


def test_eight_processes_read_modify_write_without_lost_updates(shared_store_url: str, namespace: str) -> None:
    """`update` is atomic across processes: 8 x 200 read-modify-writes lose none."""
    _run(_update_worker, (shared_store_url, namespace, 200))
    store = open_store(shared_store_url, namespace)
    assert store.get("rmw", now=NOW) == b"1600"
    store.clear()
    store.close()


def test_limiter_slots_are_unique_and_paced_across_processes(shared_store_url: str, namespace: str) -> None:
    """8 processes reserving 100 slots each get 800 distinct slots exactly one interval apart."""
    ctx = mp.get_context("fork")
    out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=_gcra_worker, args=(shared_store_url, namespace, 100, out)) for _ in range(PROCS)]
    for p in procs:
        p.start()
    slots = sorted(s for _ in procs for s in out.get(timeout=120))
    for p in procs:
        p.join(60)
    assert len(slots) == 800
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert min(gaps) == pytest.approx(0.1, abs=1e-5) and max(gaps) == pytest.approx(0.1, abs=1e-5)
    store = open_store(shared_store_url, namespace)
    store.clear()
    store.close()
