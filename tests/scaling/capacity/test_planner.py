"""The planner's second generation: platform limits that bind on CPU or wall time, steady-state
caches, budgets as breaks, the queue design, and one capacity number by bisection."""

from __future__ import annotations

import dataclasses

import pytest

from scaling.capacity.breaks import Break
from scaling.capacity.capacity_search import find_capacity
from scaling.capacity.cpu_model import CpuModel
from scaling.capacity.measure import Freshness
from scaling.capacity.metering import Meter, MeteredStore
from scaling.capacity.platform_limits import TimeModel, cron_cpu_limit_s, limits_for
from scaling.capacity.simulate import Scenario, simulate
from scaling.capacity.steady_state import hit_probability
from scaling.prewarm import ENTRY_KEY, Listen, _decode_listen
from scaling.settings import Settings


def _settings(**changes: object) -> Settings:
    return dataclasses.replace(Settings.defaults(), **changes)  # type: ignore[arg-type]  # test-only overrides


def test_documented_limits_follow_the_cron_interval_and_the_operators_budget() -> None:
    """A sub-hourly cron gets 30 s CPU and 15 min wall; an operator's stricter wall budget wins."""
    assert cron_cpu_limit_s(300) == 30.0 and cron_cpu_limit_s(3600) == 900.0
    doc = limits_for(TimeModel.DOCUMENTED, 300)
    assert (doc.wall_s, doc.cpu_s, doc.wall_source) == (900.0, 30.0, "platform")
    assert limits_for(TimeModel.DOCUMENTED, 300, operator_wall_s=20.0).wall_s == 20.0
    assert limits_for(TimeModel.PLAN, 300).cpu_s is None


def test_a_run_breaks_on_cpu_while_wall_time_is_fine() -> None:
    """With a CPU-hungry fetch (10 s each), runs exceed 30 s of CPU though they end well inside 15 min of wall."""
    r = simulate(Scenario(users=60, hours=0.25, time_model="documented", cpu=CpuModel(per_fetch_ms=10_000.0)))
    assert r.invocations["cpu_s_over"] > 0 and r.invocations["wall_s_over"] == 0
    assert r.first_break is not None and r.first_break.limit == "CPU time per invocation"


def test_a_run_breaks_on_wall_time_while_cpu_is_fine() -> None:
    """An operator's 20 s wall budget and a run that takes 60 s: wall breaks, CPU stays far below 30 s."""
    r = simulate(Scenario(users=400, hours=0.25, time_model="documented", deadline_s=60.0, steady_state=False),
                 settings=_settings(cron_deadline_s=20.0))  # a cold start: every user is due
    assert r.invocations["wall_s_over"] > 0 and r.invocations["cpu_s_over"] == 0
    assert r.invocations["cpu_s_max"] < 1.0
    assert r.first_break is not None and r.first_break.limit == "wall time per invocation"


def test_an_ai_budget_overrun_is_a_break_not_green() -> None:
    """Steady-state AI spend over a (tiny) monthly budget shows as a break named 'AI budget'."""
    base = Settings.defaults()
    ups = {**base.upstreams, "openai": dataclasses.replace(base.upstream("openai"), monthly_budget_usd=1.0)}
    r = simulate(Scenario(users=100, hours=2.0, views_per_user_day=20.0, ai_share=1.0),
                 settings=_settings(upstreams=ups))
    assert r.ai["usd_month"] > 1.0
    assert any(b.limit == "AI budget" for b in r.breaks)


def test_steady_state_hit_rate_matches_the_analytical_one() -> None:
    """After the analytical warm-up, album and AI-summary hit rates over an hour are within 5% of λτ/(1+λτ)."""
    r = simulate(Scenario(users=100, hours=1.0, views_per_user_day=200.0))
    for family in ("spotify:album:v2", "ai:albumDetail"):
        assert r.cache[f"{family} measured"] == pytest.approx(r.cache[f"{family} analytical"], abs=0.05), family
    cold = simulate(Scenario(users=100, hours=1.0, views_per_user_day=200.0, steady_state=False))
    assert cold.ai["usd_month"] > 3 * r.ai["usd_month"]


def test_hit_probability_is_the_renewal_formula() -> None:
    """λτ/(1+λτ): 1 request per TTL gives one half; no requests never hit; no expiry always does."""
    assert hit_probability(1 / 60, 60.0) == pytest.approx(0.5)
    assert hit_probability(0.0, 60.0) == 0.0 and hit_probability(1.0, None) == 1.0


def test_queue_design_carries_more_users_than_the_5_minute_cron_within_the_limiter() -> None:
    """At 1,000 users (10% active) the 5-minute cron cannot keep entries within 75 min; the queue can,
    with the same Last.fm limiter, no 429 and no window over the upstream's limit."""
    cron = simulate(Scenario(users=1000, hours=0.5, design="cron5m"))
    queue = simulate(Scenario(users=1000, hours=0.5, design="queues"))
    assert cron.first_break is not None and cron.first_break.limit.startswith(("staleness", "Last.fm budget"))
    assert queue.first_break is None
    lf = queue.upstreams["lastfm"]
    assert lf["upstream_429"] == 0 and lf["peak_window"] <= lf["limit"]
    assert queue.platform["queue_ops_month"] > 0


def test_bisection_finds_a_planted_break_point_exactly() -> None:
    """A stubbed limit that breaks above 1,234 users: the search answers 1,234 and names it."""
    def trial(n: int) -> Break | None:
        return Break("stub limit", f"{n} > 1234", 1) if n > 1234 else None

    found = find_capacity(trial, start=100, tolerance=0.0)
    assert (found.carried, found.broken_at) == (1234, 1235)
    assert found.first_break is not None and found.first_break.limit == "stub limit"
    assert "≈ 1,234 users; then stub limit breaks" in found.sentence("cron5m")


def test_bisection_reports_a_design_that_breaks_at_once_and_one_that_never_does() -> None:
    """Broken at 1 user: carries 0; never broken: carries the ceiling, no break named."""
    assert find_capacity(lambda n: Break("x", "", 1), start=10).carried == 0
    never = find_capacity(lambda n: None, start=10, ceiling=80)
    assert never.carried == 80 and never.first_break is None


def test_freshness_probe_sees_a_refreshed_entry_and_agrees_with_decoding_every_time() -> None:
    """The probe decodes an entry only when it changed; its ages equal decoding every entry each time."""
    store = MeteredStore(Meter())
    users = ["a", "b"]
    probe_memo, probe_fresh = (Freshness(store, None, Settings.defaults()) for _ in range(2))

    def put(user: str, fetched_at: float, played_at: float) -> None:
        listen = Listen(user, "x", "y", "z", None, played_at, False, fetched_at)
        store.set(ENTRY_KEY.format(username=user), listen.to_json(), now=fetched_at)

    put("a", 0.0, 0.0)
    put("b", 0.0, -9000.0)  # inactive (no listen in two hours)
    probe_memo.probe(600.0, users)
    put("a", 900.0, 850.0)  # refreshed between probes
    for now in (1200.0, 1500.0):
        probe_memo.probe(now, users)
        _decode_listen.cache_clear()
        probe_fresh.probe(now, users)
    assert probe_memo.probes[1:] == probe_fresh.probes
    assert probe_memo.probes[1] == (1200.0, 300.0, 0, 1200.0, 0)  # a's new age, not the first probe's 600 s
