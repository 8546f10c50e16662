"""Text an attacker controls that the dashboard or an export renders: CSV cells a spreadsheet would run, and
password guessing at the login form (throttled with the injected clock, no sleeping)."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest

from dashboard.auth import FREE_ATTEMPTS, GLOBAL_FAILURES, MAX_DELAY_S, LoginThrottle
from dashboard.cost_export import neutralise, to_csv
from scaling.clock import VirtualClock

pytestmark = pytest.mark.hostile

FORMULAS = ["=1+1", " =1+1", "  @SUM(A1)", "\t=cmd", "\r=cmd", "\n=HYPERLINK(\"http://x\")", " \n +1", "-2+3",
            "\r\n@x", "+", "@"]


@pytest.mark.parametrize("cell", FORMULAS)
def test_a_cell_a_spreadsheet_would_evaluate_is_neutralised(cell: str) -> None:
    """Leading spaces, tabs, CR or LF before = + - @ do not let a formula through: the cell gains a leading '."""
    assert neutralise(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["albumDetail", "a=b", " plain", "", "x-1", "1e5 @"])
def test_ordinary_text_is_left_alone(cell: str) -> None:
    """Only a formula start is neutralised; text with = or - later on is unchanged."""
    assert neutralise(cell) == cell


def test_every_hostile_cell_reaches_the_csv_as_text() -> None:
    """Each formula-like task name arrives in the downloaded CSV with its ' prefix, rows intact."""
    n = len(FORMULAS)
    df = pd.DataFrame({"ts": [pd.Timestamp("2026-01-01", tz="UTC")] * n, "provider": ["openai"] * n,
                       "model": ["m"] * n, "task": FORMULAS, "calls": [1] * n, "input_tokens": [1] * n,
                       "cached_input_tokens": [0] * n, "output_tokens": [1] * n, "reasoning_tokens": [0] * n,
                       "web_search_calls": [0] * n, "cache_hits": [0] * n, "saved_tokens": [0] * n,
                       "cost_usd": [0.5] * n, "latency_ms_avg": [1.0] * n})
    rows = list(csv.DictReader(io.StringIO(to_csv(df).decode("utf-8"), newline="")))
    assert [r["task"] for r in rows] == ["'" + c for c in FORMULAS]


def test_wrong_passwords_beyond_the_free_attempts_wait_longer_each_time() -> None:
    """After 5 wrong passwords a client waits 1 s, then 2 s, 4 s … capped; time is advanced, not slept."""
    clock = VirtualClock()
    throttle = LoginThrottle(clock.now)
    for _ in range(FREE_ATTEMPTS - 1):
        assert throttle.wait_s("a") == 0
        throttle.failed("a")
    waits = []
    for _ in range(12):
        assert throttle.wait_s("a") == 0
        throttle.failed("a")
        waits.append(throttle.wait_s("a"))
        clock.advance(waits[-1])
    assert waits[:4] == [1.0, 2.0, 4.0, 8.0] and waits[-1] == MAX_DELAY_S
    assert throttle.wait_s("b") == 0  # another client is not punished for a's guesses


def test_guessing_from_many_sessions_meets_the_global_cap() -> None:
    """A fresh session per guess gains nothing: 30 failures a minute across clients blocks everyone until it passes."""
    clock = VirtualClock()
    throttle = LoginThrottle(clock.now)
    for i in range(GLOBAL_FAILURES):
        throttle.failed(f"session-{i}")
    assert throttle.wait_s("session-new") == pytest.approx(60.0)
    clock.advance(60.0)
    assert throttle.wait_s("session-new") == 0


def test_the_right_password_clears_a_clients_failures() -> None:
    """Signing in forgets the client's earlier mistakes."""
    clock = VirtualClock()
    throttle = LoginThrottle(clock.now)
    for _ in range(FREE_ATTEMPTS + 2):
        throttle.failed("a")
    throttle.succeeded("a")
    assert throttle.wait_s("a") == 0
