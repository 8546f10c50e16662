"""The rolling window and the ban, checked directly against a brute-force oracle."""

from __future__ import annotations

import math
import random

from scaling.sandbox.window import Ban, SlidingLog, ceil_seconds
from scaling.settings import RateSpec


def test_sliding_log_never_exceeds_the_limit_in_any_window() -> None:
    """Random arrivals: every admitted time has at most L admissions in the W seconds before it, and refusals were
    full."""
    spec = RateSpec(7, 3.0)
    log = SlidingLog(spec)
    rng = random.Random(4)
    t, admitted, refused = 0.0, [], []
    for _ in range(2000):
        t += rng.expovariate(4.0)
        (admitted if log.admit(t).admitted else refused).append(t)
    for a in admitted:
        assert sum(1 for b in admitted if a - spec.window < b <= a) <= spec.limit
    for r in refused:
        assert sum(1 for b in admitted if r - spec.window < b <= r) == spec.limit
    assert refused  # the load was high enough to matter


def test_retry_after_is_when_enough_weight_leaves() -> None:
    """With weights, retry_after is the time the oldest entries free enough room for the amount asked."""
    log = SlidingLog(RateSpec(100, 60.0))
    log.record(0.0, 50)
    log.record(10.0, 40)
    assert log.retry_after(20.0, 10) == 0
    assert log.retry_after(20.0, 11) == 40.0  # the 50 at t=0 leave at t=60
    assert log.retry_after(20.0, 61) == 50.0  # both must leave
    assert math.isinf(log.retry_after(20.0, 101))
    assert log.reset(20.0) == 50.0


def test_an_entry_leaves_exactly_one_window_later() -> None:
    """A request at t occupies [t, t + W): at t + W it no longer counts."""
    log = SlidingLog(RateSpec(1, 30.0))
    assert log.admit(100.0).admitted
    assert not log.admit(129.999).admitted
    assert log.admit(130.0).admitted


def test_ban_escalates_and_caps() -> None:
    """A ban doubles what is left per call made during it, never beyond its cap."""
    ban = Ban(2.0, 1000.0)
    assert ban.start(0.0, 4.2) == 5 and ban.remaining(0.0) == 5
    assert ban.escalate(1.0) == 8
    assert ban.escalate(2.0) == 14
    assert ban.remaining(16.0) == 0
    big = Ban(2.0, 1000.0)
    big.start(0.0, 900)
    assert big.escalate(0.0) == 1000


def test_retry_after_seconds_round_up_to_at_least_one() -> None:
    """Retry-After is whole seconds, rounded up, never 0."""
    assert [ceil_seconds(x) for x in (0.0, 0.001, 1.0, 1.2, 20.0000000001)] == [1, 1, 1, 2, 20]
