"""The trigger table, each readiness rule at its thresholds, assess, and evidence gathered from a real metrics DB."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from scaling.capacity.cron_model import CronModel
from scaling.capacity.evidence import CronEvidence, Evidence, JobEvidence, LimiterEvidence
from scaling.capacity.readiness import RULES, Readiness, Status, assess
from scaling.capacity.triggers import next_trigger, required_phase
from scaling.settings import Settings
from tests.scaling.capacity.conftest import NOW

HOOK = "https://hooks.example/alerts"
SETTINGS = Settings.defaults(alert_webhook_url=HOOK)
GB = 1024**3


def _ready() -> Evidence:
    """Evidence on which every rule in scope says READY."""
    ok = LimiterEvidence(samples=10_000, upstream_429=0, peak_utilisation=0.5)
    return Evidence(
        now=NOW, source="collectors", users_total=40, users_with_lastfm=30, users_active=5,
        users_trend="+0.2 users/day", users_forecast=45, users_forecast_high=50, next_trigger_users=50,
        next_trigger_at=NOW + 40 * 86400, next_trigger_earliest=NOW + 30 * 86400, next_trigger_latest=NOW + 55 * 86400,
        limiters={"spotify": ok, "lastfm": ok, "openai": ok, "perplexity": ok}, headroom_age_s=30,
        jobs={"cleanup": JobEvidence(runs_24h=24, ok_24h=24, last_run_age_s=600, last_ok_age_s=600),
              "prewarm": JobEvidence(runs_24h=288, ok_24h=288, duration_p50_s=5, duration_p95_s=6,
                                     last_run_age_s=60, last_ok_age_s=60),
              "alerts": JobEvidence(runs_24h=1440, ok_24h=1440, last_run_age_s=20, last_ok_age_s=20)},
        cleanup_rows_deleted=3204,
        cron=CronEvidence(reports=288, polled=30, wanted=30, users=40, wave_p95_s=0.5, overhead_p95_s=0.5,
                          spotify_calls=576, refreshed=8000, batched_min_calls=576),
        db_bytes=0.1 * GB, cache_hits=900, cache_misses=100, cache_bytes=1e8, cache_age_s=300,
        ai_requests_7d=1000, ai_cache_hits_7d=400, ai_saved_tokens_7d=10**6, ai_age_s=60,
        ai_spend_mtd={"openai": 10.0, "perplexity": 2.0}, ai_spend_projected={"openai": 30.0, "perplexity": 6.0},
        breaker_opens_7d=2, breakers_open=0, breaker_open_longest_s=90)


def _status(item: str, evidence: Evidence, settings: Settings = SETTINGS) -> Status:
    return assess(evidence, settings=settings).item(item).status


def _job(e: Evidence, name: str, **changes: Any) -> Evidence:
    return replace(e, jobs={**e.jobs, name: replace(e.jobs[name], **changes)})


def _limiter(e: Evidence, name: str, **changes: Any) -> Evidence:
    return replace(e, limiters={**e.limiters, name: replace(e.limiters[name], **changes)})


# --- trigger table ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("users", "phase", "next_users"), [(0, 0, 50), (49, 0, 50), (50, 1, 100), (99, 1, 100),
                                                             (100, 2, 150), (150, 2, 500), (499, 2, 500),
                                                             (500, 3, 1000), (1000, 4, None), (5000, 4, None)])
def test_trigger_table(users: int, phase: int, next_users: int | None) -> None:
    """The plan's table: 50 → phase 1, 100 and 150 → phase 2, 500 → phase 3, 1,000 → phase 4."""
    assert required_phase(users) == phase
    nxt = next_trigger(users)
    assert (nxt.users if nxt else None) == next_users


def test_rules_table_covers_every_item_once() -> None:
    """Twelve items, 1.1 to 4.3, each with a description; only multi-region is out of scope."""
    assert [r.item for r in RULES] == ["1.1", "1.2", "1.3", "2.1", "2.2", "2.3", "3.1", "3.2", "3.3",
                                       "4.1", "4.2", "4.3"]
    assert all(r.description and r.phase == int(r.item[0]) for r in RULES)
    assert [r.item for r in RULES if not r.in_scope] == ["4.2"]


def test_everything_ready_scores_100() -> None:
    """The all-ready evidence is ready everywhere in scope, 4.2 is unknown and does not count."""
    r = assess(_ready(), settings=SETTINGS)
    statuses = {i.item: i.status for p in r.phases for i in p.items}
    assert {k for k, v in statuses.items() if v is not Status.READY} == {"4.2"}
    assert r.readiness_pct == 100 and all(p.score == 1 for p in r.phases) and all(p.complete for p in r.phases)


# --- rate limiters (1.1, 1.2, 2.1) --------------------------------------------------------------------------

@pytest.mark.parametrize(("peak", "n429", "status"), [
    (0.89, 0, Status.READY), (0.90, 0, Status.AT_RISK), (0.99, 0, Status.AT_RISK), (1.00, 0, Status.NOT_READY),
    (0.40, 1, Status.NOT_READY)])
@pytest.mark.parametrize(("item", "upstream"), [("1.1", "spotify"), ("1.2", "perplexity"), ("2.1", "lastfm")])
def test_limiter_rules_at_their_thresholds(item: str, upstream: str, peak: float, n429: int, status: Status) -> None:
    """Peak < 90 % and no 429 is ready, 90–100 % at risk, any 429 or ≥ 100 % not ready; the worst provider decides."""
    e = _limiter(_ready(), upstream, peak_utilisation=peak, upstream_429=n429)
    assert _status(item, e) is status


def test_limiter_evidence_reads_like_the_dashboard() -> None:
    """The sentence names the 429s and the peak, and the numbers carry them."""
    r = assess(_limiter(_ready(), "spotify", peak_utilisation=0.71), settings=SETTINGS).item("1.1")
    assert r.evidence == "Spotify limiter: 0 upstream 429s in 7 days, peak 71% of limit"
    assert r.numbers["peak_utilisation"] == 0.71 and r.numbers["upstream_429_7d"] == 0


def test_limiters_without_samples_are_unknown() -> None:
    """No headroom samples for an upstream means no evidence."""
    e = replace(_ready(), limiters={"spotify": LimiterEvidence(samples=10, peak_utilisation=0.1)})
    assert _status("2.1", e) is Status.UNKNOWN and _status("1.2", e) is Status.UNKNOWN
    assert _status("1.1", e) is Status.READY


# --- cleanup (1.3) ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("changes", "status"), [
    ({"last_ok_age_s": 2 * 3600 - 1}, Status.READY),
    ({"last_ok_age_s": 2 * 3600 + 1}, Status.NOT_READY),
    ({"last_ok_age_s": None}, Status.NOT_READY),
    ({"failed_24h": 1}, Status.AT_RISK),
    ({"timed_out_24h": 1}, Status.AT_RISK)])
def test_cleanup_rule_by_recency_and_failures(changes: dict[str, Any], status: Status) -> None:
    """A successful run within 2 h and no failure in 24 h is ready; a failure is at risk; staleness not ready."""
    assert _status("1.3", _job(_ready(), "cleanup", **changes)) is status


@pytest.mark.parametrize(("db", "status"), [({"db_bytes": 0.79 * 10 * GB}, Status.READY),
                                            ({"db_bytes": 0.80 * 10 * GB}, Status.AT_RISK),
                                            ({"db_bytes": 10 * GB}, Status.NOT_READY),
                                            ({"db_full_in_days": 29.0}, Status.AT_RISK),
                                            ({"db_full_in_days": 31.0}, Status.READY)])
def test_cleanup_rule_by_database_headroom(db: dict[str, Any], status: Status) -> None:
    """The DB at 80 % of its limit, or forecast full within 30 days, is at risk; full is not ready."""
    assert _status("1.3", replace(_ready(), **db)) is status


def test_cleanup_evidence_and_missing_data() -> None:
    """The sentence gives the last run and rows deleted; no job runs at all is unknown, no cleanup job not ready."""
    item = assess(_ready(), settings=SETTINGS).item("1.3")
    assert item.evidence.startswith("cleanup: last successful run 10 min ago, 3,204 rows deleted; 0 failures in 24 h")
    assert _status("1.3", replace(_ready(), jobs={})) is Status.UNKNOWN
    jobs = {k: v for k, v in _ready().jobs.items() if k != "cleanup"}
    assert _status("1.3", replace(_ready(), jobs=jobs)) is Status.NOT_READY


# --- cron (2.2) ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("p95", "status"), [(15.0, Status.READY), (15.1, Status.AT_RISK), (24.0, Status.AT_RISK),
                                             (24.1, Status.NOT_READY)])
def test_cron_rule_by_p95_share_of_deadline(p95: float, status: Status) -> None:
    """p95 ≤ 50 % of the 30 s deadline is ready, ≤ 80 % at risk, above not ready."""
    assert _status("2.2", _job(_ready(), "prewarm", duration_p95_s=p95)) is status


def test_cron_rule_follows_the_configured_deadline() -> None:
    """With a 60 s deadline a 24 s p95 is ready."""
    e = _job(_ready(), "prewarm", duration_p95_s=24.0)
    assert _status("2.2", e, Settings.defaults(cron_deadline_s=60.0, alert_webhook_url=HOOK)) is Status.READY


def test_cron_timeouts_or_skipped_active_users_are_not_ready() -> None:
    """A timeout or an active user left unpolled in 24 h fails the cron whatever its p95."""
    assert _status("2.2", _job(_ready(), "prewarm", timed_out_24h=1)) is Status.NOT_READY
    assert _status("2.2", replace(_ready(), cron=replace(_ready().cron, active_skipped=1))) is Status.NOT_READY
    assert _status("2.2", replace(_ready(), jobs={})) is Status.UNKNOWN


def test_cron_projection_at_forecast_users_downgrades_ready() -> None:
    """Fast today but projected past 50 % of the deadline at the forecast user count: at risk, with the numbers."""
    e = replace(_ready(), cron=replace(_ready().cron, wave_p95_s=2.0), users_forecast=200)
    item = assess(e, settings=SETTINGS).item("2.2")
    assert item.status is Status.AT_RISK
    # 30 of 40 users polled; 200 users → 150 polled → 25 waves × 2 s + 0.5 s overhead.
    assert item.numbers["projected_s"] == pytest.approx(50.5)
    # Within 15 s: 7 waves (14.5 s) poll 42 users, i.e. 56 users at 30 polled per 40.
    assert item.numbers["max_users_within_headroom"] == 56
    assert "fits 56 users" in item.evidence and "200 users (90-day forecast) → 50.5 s" in item.evidence


def test_littles_law_worked_example() -> None:
    """W 0.5 s, c 6, 30 s × 50 % headroom: at most 180 users, so 150 pass and 500 fail."""
    model = CronModel(wave_s=0.5, concurrency=6)
    assert model.max_polled(15.0) == 180
    assert model.duration(150) <= 15.0 < model.duration(500)


def test_littles_law_respects_the_lastfm_rate() -> None:
    """At 4 calls/s, polling 150 users takes at least 37.5 s however fast each call is."""
    model = CronModel(wave_s=0.1, concurrency=6, rate_per_s=4.0)
    assert model.duration(150) == pytest.approx(37.5)
    assert model.max_polled(15.0) == 60


# --- monitoring (2.3) -------------------------------------------------------------------------------------------------

def test_monitoring_rule() -> None:
    """Fresh samples, evaluated alerts and a webhook are ready; each gap lowers it; no samples is unknown."""
    e = _ready()
    assert _status("2.3", e) is Status.READY
    assert _status("2.3", replace(e, headroom_age_s=600)) is Status.READY
    assert _status("2.3", replace(e, headroom_age_s=601)) is Status.NOT_READY
    assert _status("2.3", _job(e, "alerts", last_ok_age_s=601)) is Status.AT_RISK
    assert _status("2.3", e, Settings.defaults()) is Status.AT_RISK  # no webhook: alerts go nowhere
    assert _status("2.3", replace(e, headroom_age_s=None)) is Status.UNKNOWN


# --- phase 3 ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("calls", "status"), [(576, Status.READY), (864, Status.READY), (865, Status.AT_RISK),
                                               (5999, Status.AT_RISK), (6000, Status.NOT_READY)])
def test_batch_rule(calls: int, status: Status) -> None:
    """Spotify calls within 1.5× the batched minimum are ready; ≥ 0.75 per refreshed user is one by one."""
    assert _status("3.1", replace(_ready(), cron=replace(_ready().cron, spotify_calls=calls))) is status


def test_batch_rule_without_counts_is_unknown() -> None:
    """Prewarm reports without Spotify call counts give no evidence."""
    assert _status("3.1", replace(_ready(), cron=CronEvidence())) is Status.UNKNOWN


@pytest.mark.parametrize(("hits", "status"), [(300, Status.READY), (299, Status.AT_RISK), (100, Status.AT_RISK),
                                              (99, Status.NOT_READY)])
def test_dedup_rule(hits: int, status: Status) -> None:
    """≥ 30 % of AI requests from cache is ready, ≥ 10 % at risk, below not ready."""
    assert _status("3.2", replace(_ready(), ai_cache_hits_7d=hits)) is status
    assert _status("3.2", replace(_ready(), ai_requests_7d=0, ai_cache_hits_7d=0)) is Status.UNKNOWN


@pytest.mark.parametrize(("hits", "misses", "status"), [(80, 20, Status.READY), (79, 21, Status.AT_RISK),
                                                        (50, 50, Status.AT_RISK), (49, 51, Status.NOT_READY),
                                                        (0, 0, Status.AT_RISK)])
def test_cache_rule(hits: int, misses: int, status: Status) -> None:
    """A hit ratio ≥ 80 % is ready, ≥ 50 % at risk, below not ready; stats without lookups are at risk."""
    assert _status("3.3", replace(_ready(), cache_hits=hits, cache_misses=misses)) is status


def test_cache_rule_staleness_and_absence() -> None:
    """Cache stats older than a day are at risk; none at all unknown."""
    assert _status("3.3", replace(_ready(), cache_age_s=86401)) is Status.AT_RISK
    assert _status("3.3", replace(_ready(), cache_age_s=None)) is Status.UNKNOWN


# --- phase 4 ----------------------------------------------------------------------------------------------------------

def test_breaker_rule() -> None:
    """Opened and closed again is ready; open over 30 min at risk; no events unknown."""
    assert _status("4.1", _ready()) is Status.READY
    assert _status("4.1", replace(_ready(), breakers_open=1, breaker_open_longest_s=1801)) is Status.AT_RISK
    assert _status("4.1", replace(_ready(), breakers_open=1, breaker_open_longest_s=1799)) is Status.READY
    assert _status("4.1", replace(_ready(), breaker_opens_7d=0)) is Status.UNKNOWN


def test_multi_region_is_always_unknown_and_explained() -> None:
    """4.2 is out of scope whatever the evidence, and says why."""
    item = assess(_ready(), settings=SETTINGS).item("4.2")
    assert item.status is Status.UNKNOWN and "single-region" in item.evidence


@pytest.mark.parametrize(("mtd", "projected", "status"), [(39.9, 49.0, Status.READY), (40.0, 49.0, Status.AT_RISK),
                                                          (30.0, 50.1, Status.AT_RISK), (50.1, 60.0, Status.NOT_READY)])
def test_cost_rule_against_budget(mtd: float, projected: float, status: Status) -> None:
    """Under 80 % of the $50 OpenAI budget and projected under it is ready; over budget is not ready."""
    e = replace(_ready(), ai_spend_mtd={"openai": mtd}, ai_spend_projected={"openai": projected})
    assert _status("4.3", e) is status


def test_cost_rule_needs_budgets_and_fresh_usage() -> None:
    """A provider without a budget, or usage older than a day, is at risk; no usage at all unknown."""
    e = _ready()
    assert _status("4.3", replace(e, ai_spend_mtd={**e.ai_spend_mtd, "anthropic": 3.0})) is Status.AT_RISK
    assert _status("4.3", replace(e, ai_age_s=86401)) is Status.AT_RISK
    assert _status("4.3", replace(e, ai_age_s=None)) is Status.UNKNOWN
    item = assess(e, settings=SETTINGS).item("4.3")
    assert "openai $10.00 of $50 (projected $30.00)" in item.evidence


# --- assess -----------------------------------------------------------------------------------------------------------

def test_required_phase_now_and_at_the_forecast() -> None:
    """120 users require phase 2, a forecast of 600 phase 3; the score covers phases 1–2 and the cron projection."""
    e = replace(_limiter(_ready(), "lastfm", upstream_429=3), users_total=120, users_forecast=600)
    r = assess(e, settings=SETTINGS)
    assert (r.required_phase, r.required_phase_forecast, r.target_phase) == (2, 3, 2)
    assert [p.required for p in r.phases] == [True, True, False, False]
    assert [p.required_forecast for p in r.phases] == [True, True, True, False]
    # 2.1 not ready (0) and 2.2 at risk (½: 450 users polled at 600 take 112 s at Last.fm's 4/s) of six items.
    assert r.readiness_pct == 75.0
    assert r.warnings == (("100 users passed (Implement Phase 2 (Scaling Infrastructure)): "
                           "Phase 2 still has 2.1 not ready, 2.2 at risk"),)


def test_must_complete_warning_comes_first_once_per_phase() -> None:
    """Past 150 users an incomplete phase 2 is warned once, as the must-complete trigger, before phase 1."""
    e = replace(_job(_limiter(_ready(), "spotify", upstream_429=1), "prewarm", duration_p95_s=20.0),
                users_total=160)
    r = assess(e, settings=SETTINGS)
    assert r.warnings == ("150 users passed (Must complete Phase 2 (cron timeout risk)): Phase 2 still has 2.2 at risk",
                          "50 users passed (Implement Phase 1 (Critical Fixes)): Phase 1 still has 1.1 not ready")


def test_next_trigger_carries_the_forecast_date() -> None:
    """The next trigger comes from the table, its dates from the user forecast when it is the same trigger."""
    r = assess(_ready(), settings=SETTINGS)
    assert r.next_trigger is not None and r.next_trigger.users == 50 and r.next_trigger.phase == 1
    assert r.next_trigger.date == NOW + 40 * 86400 and r.next_trigger.earliest == NOW + 30 * 86400
    past_all = assess(replace(_ready(), users_total=1200), settings=SETTINGS)
    assert past_all.next_trigger is None


def test_below_the_first_trigger_targets_phase_1() -> None:
    """Under 50 users nothing is required yet, and the percentage is about phase 1."""
    r = assess(replace(_ready(), users_total=20), settings=SETTINGS)
    assert r.required_phase == 0 and r.target_phase == 1 and r.warnings == ()


def test_empty_evidence_is_unknown_everywhere_and_serialisable() -> None:
    """No data gives unknown items, a 0 % score and a JSON-ready dict."""
    r = assess(Evidence(now=NOW), settings=SETTINGS)
    assert isinstance(r, Readiness)
    assert {i.status for p in r.phases for i in p.items} == {Status.UNKNOWN}
    assert r.readiness_pct == 0 and r.users is None and r.next_trigger is None
    d = json.loads(json.dumps(r.as_dict()))
    assert d["phases"][0]["items"][0]["status"] == "unknown" and d["phases"][0]["complete"] is False
