"""A load-test worker killed mid-run is reported and never waited for."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from typing import Any

import pytest

from scaling.loadtest import _collect

pytestmark = pytest.mark.faults


def _finishes(out: Any, index: int) -> None:
    out.put({"index": index, "ok_times": [1.0], "errors": {}, "rate_limited": 0, "upstream_429": 0})


def _killed(out: Any, index: int) -> None:
    time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGKILL)


def test_sigkilled_worker_is_reported_not_waited_for() -> None:
    """One of two workers SIGKILLed before reporting: the parent returns within seconds and names it."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_finishes, args=(out, 0)), ctx.Process(target=_killed, args=(out, 1))]
    for p in procs:
        p.start()
    start = time.monotonic()
    parts, dead = _collect(procs, out)
    took = time.monotonic() - start
    print(f"\n[faults] loadtest worker SIGKILL: parent returned after {took:.2f}s; dead={dead}")
    assert [p["index"] for p in parts] == [0]
    assert len(dead) == 1 and "worker 1" in dead[0] and "-9" in dead[0]
    assert took < 5
