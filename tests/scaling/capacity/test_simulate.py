"""The capacity simulator: the upstream design breaks where its docs say, Headroom's carries on,
and virtual time agrees with real time."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from scaling.capacity.simulate import Scenario, simulate
from scaling.clock import SystemClock

ROOT = Path(__file__).resolve().parents[3]


def test_upstream_design_is_fine_at_50_users_and_breaks_on_the_cron_deadline_at_100() -> None:
    """Batches of 4 with 1 s sleeps: fine at 50 users, the 30 s Worker limit at 100 (every run killed)."""
    fine = simulate(Scenario(users=50, hours=1, design="upstream"))
    broken = simulate(Scenario(users=100, hours=1, design="upstream"))
    assert fine.first_break is None
    assert broken.first_break is not None and broken.first_break.limit == "wall time per invocation"
    assert broken.cron["timed_out_runs"] == broken.cron["runs"] > 0


def test_headroom_design_keeps_500_users_inside_the_deadline() -> None:
    """At 500 users every cron run ends inside 30 s with no upstream 429, polling only the users that are
    due (the active ones and inactive entries near the staleness target), and every target is met."""
    r = simulate(Scenario(users=500, hours=0.5, active_share=0.05))
    assert r.cron["max_s"] <= 30.0 and r.cron["timed_out_runs"] == 0
    assert sum(u["upstream_429"] for u in r.upstreams.values()) == 0
    assert r.upstreams["lastfm"]["peak_window"] <= r.upstreams["lastfm"]["limit"]
    assert 25 <= r.cron["users_polled_p50"] < 120  # the 25 active and those due, not the whole budget
    assert r.cron["probes_with_stale_active"] == 0 and r.cron["never_refreshed"] == 0
    assert r.cron["max_staleness_min"] <= r.cron["target_inactive_min"]


def test_headroom_design_counts_its_own_deadline_overruns() -> None:
    """A Headroom run given a deadline past the 30 s invocation limit is counted as timed out, and breaks."""
    # A cold start: every user is due, so the first run has 75 s of Last.fm calls to make.
    r = simulate(Scenario(users=300, hours=0.25, deadline_s=60.0, steady_state=False))
    assert r.cron["timed_out_runs"] > 0
    assert r.first_break is not None and r.first_break.limit == "wall time per invocation"


def test_first_break_is_named_with_its_numbers() -> None:
    """A break says which limit and shows the numbers (not just 'failed')."""
    r = simulate(Scenario(users=150, hours=1, design="upstream"))
    assert r.first_break is not None
    assert "30s limit" in r.first_break.detail and "invocations" in r.first_break.detail


def test_same_seed_same_answer() -> None:
    """A scenario is deterministic for its seed (virtual time, seeded sandbox and traffic)."""
    a = simulate(Scenario(users=60, hours=0.5, seed=3))
    b = simulate(Scenario(users=60, hours=0.5, seed=3))
    assert a.cron == b.cron and a.upstreams == b.upstreams


@pytest.mark.parametrize("bad", [{"users": 0}, {"users": 10, "active_share": 2}, {"users": 10, "design": "x"},
                                 {"users": 10, "hours": 0}, {"users": 10, "time_model": "x"}])
def test_bad_scenarios_are_refused(bad: dict[str, object]) -> None:
    """Nonsense scenarios raise a clear ValueError before anything runs."""
    with pytest.raises(ValueError):
        Scenario(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("args", "message"), [
    (["--users", "0"], "1..20000"), (["--sweep", "10,abc"], "--sweep"), (["--users", "5", "--active-share", "150%"],
                                                                         "between 0 and 1"),
    (["--users", "5", "--hours", "-1"], "0 < hours"), ([], "one of the arguments"),
])
def test_cli_rejects_bad_arguments_in_one_line(args: list[str], message: str) -> None:
    """Wrong CLI arguments exit 2 with a message naming the problem."""
    run = subprocess.run([sys.executable, "-m", "scaling", "simulate", *args], check=False, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr


@pytest.mark.e2e
def test_virtual_time_agrees_with_real_time_within_20_percent() -> None:
    """20 users, a cron every 15 s (a 5 s deadline), 40 s: real time against a sandbox on a port and virtual time
    in-process agree within 20% on cron duration and requests per upstream.

    A cold start (no steady-state warm-up): every user is stale, so the first run polls all 20
    through Last.fm and Spotify with the sandbox's 0.15-0.4 s latency, and later runs poll the
    active ones; the warm-up's 120 s wait for the limiter windows would also be real time here."""
    proc = subprocess.Popen([sys.executable, "-m", "scaling", "sandbox", "--port", "0", "--listeners", "20",
                             "--active-share", "0.1", "--latency", "0.15-0.4", "--seed", "0"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        url = next(w for w in proc.stdout.readline().split() if w.startswith("http://")).rstrip("/")
        for _ in range(100):
            try:
                httpx.get(f"{url}/_sandbox/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        scenario = Scenario(users=20, hours=40 / 3600, cron_interval_s=15.0, steady_state=False, seed=0)
        started = time.perf_counter()
        real = simulate(scenario, clock=SystemClock(), base_url=url)
        real_wall = time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
    virtual = simulate(scenario)
    assert real_wall < 40 + 15  # the real-time run ends at its end (plus in-flight pages), not minutes later
    assert real.cron["runs"] == virtual.cron["runs"] == 3
    assert virtual.upstreams["lastfm"]["requests"] >= 20 and virtual.cron["max_s"] >= 1.0  # real work
    # Real time adds the service layer's own CPU and the loopback HTTP round trips to each run:
    # 0.25 s absolute slack keeps "within 20%" from failing on that overhead alone.
    for q in ("p50_s", "max_s"):
        assert real.cron[q] == pytest.approx(virtual.cron[q], rel=0.2, abs=0.25), q
    for name in ("lastfm", "spotify"):
        assert real.upstreams[name]["requests"] == pytest.approx(virtual.upstreams[name]["requests"], rel=0.2), name
