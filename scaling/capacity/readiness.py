"""Phase readiness: which phase the user count requires, and each plan item's status from evidence.

`assess` is the one function: it takes an `Evidence` (plain numbers gathered by
`gather_evidence`) and returns a `Readiness`. Every rule is in `RULES` just below,
with its thresholds above it, in words and in code: change them there.

Statuses: READY (the evidence says the item works), AT_RISK (it works but is near
a limit, or the evidence is stale or partial), NOT_READY (the evidence says it
fails or is missing), UNKNOWN (no metrics of the kind the rule reads). The cron
rule also projects the prewarm run with Little's law at the forecast user count:
``T(N) ≈ overhead + max(⌈N/c⌉·W_p95, N/r)`` for N users polled, c = 6 parallel
connections (Cloudflare Workers' limit), W_p95 the measured time of one wave of
calls, r the Last.fm limiter's rate; T must stay within the deadline × headroom.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from scaling.capacity.cron_model import CONCURRENCY, CronModel
from scaling.capacity.evidence import FORECAST_DAYS, Evidence, LimiterEvidence, gather_evidence
from scaling.capacity.forecast import monthly_budget
from scaling.capacity.triggers import PHASES, TRIGGERS, next_trigger, required_phase
from scaling.settings import Settings

__all__ = [
    "RULES",
    "Evidence",
    "ItemStatus",
    "NextTrigger",
    "PhaseStatus",
    "Readiness",
    "Rule",
    "Status",
    "assess",
    "gather_evidence",
]


class Status(enum.Enum):
    READY = "ready"
    AT_RISK = "at risk"
    NOT_READY = "not ready"
    UNKNOWN = "unknown"


# --- thresholds -------------------------------------------------------------------------------
LIMITER_AT_RISK = 0.90        # peak utilisation of a limiter over 7 days
LIMITER_NOT_READY = 1.00
CLEANUP_MAX_AGE_S = 2 * 3600  # cleanup runs hourly; two missed runs is a failure
DB_AT_RISK = 0.80             # share of the DB limit used...
DB_FULL_SOON_DAYS = 30        # ...or the trend reaching the limit within this many days
CRON_READY = 0.50             # prewarm p95 as a share of its deadline
CRON_AT_RISK = 0.80
CRON_HEADROOM = 0.50          # the Little's-law projection must fit in deadline × this
MONITORING_MAX_AGE_S = 600    # newest headroom sample / alert evaluation
BATCH_READY = 1.5             # Spotify calls per prewarm ÷ the batched minimum (⌈refreshed / 20⌉)
BATCH_ONE_BY_ONE = 0.75       # calls per refreshed user at which batching is evidently off
DEDUP_READY, DEDUP_AT_RISK = 0.30, 0.10   # share of AI requests served from cache over 7 days
CACHE_READY, CACHE_AT_RISK = 0.80, 0.50   # cache hit ratio over 7 days
CACHE_STALE_S = 24 * 3600
BREAKER_LONG_OPEN_S = 30 * 60
SPEND_AT_RISK = 0.80          # month-to-date spend as a share of the monthly budget
AI_STALE_S = 24 * 3600
AI_UPSTREAMS = ("openai", "perplexity", "anthropic")

Verdict = tuple[Status, str, Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Rule:
    """One plan item: where it sits, how it is judged (in words), and the check that judges it."""

    item: str
    phase: int
    title: str
    description: str
    check: Callable[[Evidence, Settings], Verdict]
    in_scope: bool = True


RULES: tuple[Rule, ...] = (
    Rule("1.1", 1, "Spotify rate limiting",
         "no upstream 429 in 7 days and peak limiter use < 90% → ready; peak 90–100% → at risk; "
         "any 429 or peak ≥ 100% → not ready; no headroom samples → unknown",
         lambda e, s: _limiters(e, ("spotify",), "Spotify limiter")),
    Rule("1.2", 1, "AI rate limiting",
         "as 1.1, over every AI provider's limiters (OpenAI, Perplexity, Anthropic); the worst one decides",
         lambda e, s: _limiters(e, AI_UPSTREAMS, "AI limiters")),
    Rule("1.3", 1, "Database cleanup & indexes",
         "last successful cleanup within 2 h and no failure in 24 h → ready; a failure in 24 h, the DB at ≥ 80% "
         "of its limit or forecast to fill within 30 days → at risk; no successful run within 2 h or the DB full "
         "→ not ready; no job runs at all → unknown",
         lambda e, s: _cleanup(e, s)),
    Rule("2.1", 2, "Last.fm rate limiting", "as 1.1, for the Last.fm limiter",
         lambda e, s: _limiters(e, ("lastfm",), "Last.fm limiter")),
    Rule("2.2", 2, "Cron optimization",
         "prewarm p95 ≤ 50% of the deadline → ready, ≤ 80% → at risk, above it, any timeout or any active user "
         "skipped in 24 h → not ready; ready becomes at risk when the Little's-law projection at the forecast "
         "user count exceeds 50% of the deadline; no prewarm runs in 24 h → unknown",
         lambda e, s: _cron(e, s)),
    Rule("2.3", 2, "Monitoring & alerting",
         "headroom sampled and alert rules evaluated within 10 min, with a webhook to deliver alerts → ready; "
         "sampled but alerts not evaluated or not delivered → at risk; no sample within 10 min → not ready",
         lambda e, s: _monitoring(e, s)),
    Rule("3.1", 3, "Spotify batch APIs",
         "prewarm's Spotify calls ≤ 1.5 × the batched minimum ⌈refreshed/20⌉ → ready; ≥ 0.75 calls per "
         "refreshed user (one by one) → not ready; in between → at risk; no counts in prewarm reports → unknown",
         lambda e, s: _batching(e)),
    Rule("3.2", 3, "Request deduplication",
         "share of AI requests served from cache (single-flight followers count as hits) over 7 days: "
         "≥ 30% → ready, ≥ 10% → at risk, below → not ready; no AI requests → unknown",
         lambda e, s: _dedup(e)),
    Rule("3.3", 3, "Cache optimization",
         "cache hit ratio over 7 days ≥ 80% → ready, ≥ 50% → at risk, below → not ready; size not sampled "
         "in 24 h → at risk; no cache stats → unknown",
         lambda e, s: _caches(e)),
    Rule("4.1", 4, "Circuit breakers",
         "breaker alerts in 7 days all closed again → ready; one open for over 30 min → at risk; "
         "no breaker events → unknown (the breaker only shows when an upstream fails)",
         lambda e, s: _breakers(e)),
    Rule("4.2", 4, "Multi-region deployment",
         "always unknown: out of scope for a single-region app (Cloudflare's read-replication mode shown when "
         "collected)", lambda e, s: _multi_region(e), in_scope=False),
    Rule("4.3", 4, "Cost tracking",
         "AI usage recorded within 24 h and every provider under 80% of its monthly budget and projected under "
         "it → ready; over 80%, projected over, a provider without a budget or usage older than 24 h → at risk; "
         "over budget → not ready; no AI usage → unknown",
         lambda e, s: _costs(e, s)),
)
_SCORE = {Status.READY: 1.0, Status.AT_RISK: 0.5, Status.NOT_READY: 0.0, Status.UNKNOWN: 0.0}


# --- the result ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ItemStatus:
    """One plan item's verdict, the sentence an operator reads, and the numbers behind it.

    Attributes:
        in_scope: False for items no metric can judge (multi-region); they do not count in scores.
    """

    item: str
    phase: int
    title: str
    status: Status
    evidence: str
    numbers: Mapping[str, Any]
    rule: str
    in_scope: bool = True


@dataclass(frozen=True, slots=True)
class PhaseStatus:
    """A phase's items; ``score`` is the share ready (at risk counts half, out-of-scope items not at all)."""

    phase: int
    title: str
    trigger_users: int
    required: bool
    required_forecast: bool
    items: tuple[ItemStatus, ...]
    score: float

    @property
    def complete(self) -> bool:
        return all(i.status is Status.READY for i in self.items if i.in_scope)


@dataclass(frozen=True, slots=True)
class NextTrigger:
    """The next row of the trigger table and when the user trend is forecast to reach it (None: not at this trend)."""

    users: int
    phase: int
    action: str
    must_complete: bool
    date: float | None
    earliest: float | None
    latest: float | None


@dataclass(frozen=True, slots=True)
class Readiness:
    """What `assess` concludes.

    Attributes:
        users: total users now (None without user counts).
        users_forecast: users `FORECAST_DAYS` ahead on the trend.
        required_phase / required_phase_forecast: what the trigger table requires now and then (0: none yet).
        target_phase: the phase ``readiness_pct`` is about: the required one, at least 1.
        readiness_pct: the score of phases 1..target_phase together, 0–100.
        warnings: triggers passed whose phase is not complete, most urgent first.
    """

    now: float
    source: str | None
    users: int | None
    users_trend: str
    users_forecast: float | None
    forecast_days: int
    required_phase: int
    required_phase_forecast: int
    next_trigger: NextTrigger | None
    phases: tuple[PhaseStatus, ...]
    target_phase: int
    readiness_pct: float
    warnings: tuple[str, ...] = field(default_factory=tuple)
    #: The range the evidence was read over, and why it cannot be judged yet (None: enough data).
    window_s: float = 7 * 86400
    too_little: str | None = None

    def item(self, code: str) -> ItemStatus:
        return next(i for p in self.phases for i in p.items if i.item == code)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for phase in d["phases"]:
            phase["complete"] = self.phases[phase["phase"] - 1].complete
            for item in phase["items"]:
                item["status"] = item["status"].value
                item["numbers"] = dict(item["numbers"])
        return d


def assess(evidence: Evidence, *, settings: Settings) -> Readiness:
    """Judge every plan item from ``evidence`` and place the user count in the trigger table.

    Args:
        evidence: what `gather_evidence` read (or a hand-built one).
        settings: the cron deadline, DB limit, AI budgets, Last.fm rate, alert webhook.
    """
    e = evidence
    users = e.users_total
    now_phase = required_phase(users) if users is not None else 0
    ahead = max(users or 0, e.users_forecast or 0)
    later_phase = required_phase(ahead)
    items = [ItemStatus(r.item, r.phase, r.title, *r.check(e, settings), r.description, r.in_scope) for r in RULES]
    phases = []
    for number, title in PHASES.items():
        mine = tuple(i for i in items if i.phase == number)
        scored = [_SCORE[i.status] for i in mine if i.in_scope]
        trigger = min(t.users for t in TRIGGERS if t.phase == number)
        phases.append(PhaseStatus(number, title, trigger, number <= now_phase, number <= later_phase, mine,
                                  sum(scored) / len(scored)))
    target = max(now_phase, 1)
    scored = [_SCORE[i.status] for i in items if i.phase <= target and i.in_scope]
    nxt = next_trigger(users) if users is not None else None
    next_out = None
    if nxt is not None:
        same = e.next_trigger_users == nxt.users
        next_out = NextTrigger(nxt.users, nxt.phase, nxt.action, nxt.must_complete,
                               e.next_trigger_at if same else None, e.next_trigger_earliest if same else None,
                               e.next_trigger_latest if same else None)
    warnings, warned = [], set()
    # One warning per incomplete required phase, naming its most pressing trigger passed.
    for t in sorted(TRIGGERS, key=lambda t: (-t.must_complete, -t.users)):
        phase = phases[t.phase - 1]
        if users is not None and users >= t.users and not phase.complete and t.phase not in warned:
            warned.add(t.phase)
            short = [f"{i.item} {i.status.value}" for i in phase.items if i.status is not Status.READY and i.in_scope]
            warnings.append(f"{t.users:,} users passed ({t.action}): Phase {t.phase} still has {', '.join(short)}")
    return Readiness(e.now, e.source, users, e.users_trend, e.users_forecast, FORECAST_DAYS, now_phase, later_phase,
                     next_out, tuple(phases), target, round(100 * sum(scored) / len(scored), 1), tuple(warnings),
                     e.window_s, too_little(e))


# --- the checks ------------------------------------------------------------------------------------

def _pct(x: float) -> str:
    return f"{x:.0%}"


def span_words(seconds: float) -> str:
    """A window length as an operator says it: "1 hour", "24 hours", "7 days", "10 minutes"."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= (2 * size if unit == "day" else size):  # "24 hours", as the range picker says
            n = round(seconds / size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds:.0f} seconds"


#: A source recording for less than this share of the window cannot judge it.
MIN_COVERAGE = 0.5


def too_little(e: Evidence) -> str | None:
    """"collectors: 10 minutes of data, too little to judge 7 days", or None when the data covers the window."""
    if e.data_span_s is None or e.data_span_s >= MIN_COVERAGE * e.window_s:
        return None
    return f"{e.source}: {span_words(e.data_span_s)} of data, too little to judge {span_words(e.window_s)}"


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def _limiters(e: Evidence, names: tuple[str, ...], label: str) -> Verdict:
    seen = {n: e.limiters[n] for n in names if n in e.limiters and e.limiters[n].samples > 0}
    span = span_words(e.window_s)
    if not seen:
        return Status.UNKNOWN, f"{label}: no headroom samples for {', '.join(names)} in {span}", {}
    worst: LimiterEvidence = max(seen.values(), key=lambda x: (x.upstream_429 > 0, x.peak_utilisation))
    n429 = sum(x.upstream_429 for x in seen.values())
    peak = worst.peak_utilisation
    if n429 > 0 or peak >= LIMITER_NOT_READY:
        status = Status.NOT_READY
    elif peak >= LIMITER_AT_RISK:
        status = Status.AT_RISK
    else:
        status = Status.READY
    if len(seen) == 1:
        x = next(iter(seen.values()))
        text = f"{label}: {x.upstream_429:,} upstream 429s in {span}, peak {_pct(x.peak_utilisation)} of limit"
    else:
        text = f"{label}: " + "; ".join(f"{n} {x.upstream_429:,} 429s, peak {_pct(x.peak_utilisation)}"
                                        for n, x in seen.items()) + f" ({span})"
    numbers = {"upstream_429_7d": n429, "peak_utilisation": peak,
               "throttled_7d": sum(x.throttled for x in seen.values()),
               "rejected_7d": sum(x.rejected for x in seen.values()), "window_s": e.window_s}
    short = too_little(e)
    if short and status is Status.READY:  # a 429 seen is a verdict; its absence over minutes is not
        return Status.UNKNOWN, f"{short}; {text}", numbers
    return status, text, numbers


def _cleanup(e: Evidence, s: Settings) -> Verdict:
    if not e.jobs:
        return Status.UNKNOWN, "cleanup: no job runs recorded", {}
    job = e.jobs.get("cleanup")
    age = job.last_ok_age_s if job else None
    failures = (job.failed_24h + job.timed_out_24h) if job else 0
    share = None if e.db_bytes is None else e.db_bytes / s.db_limit_bytes
    numbers = {"last_ok_age_s": age, "failures_24h": failures, "rows_deleted": e.cleanup_rows_deleted,
               "db_bytes": e.db_bytes, "db_share": share, "db_full_in_days": e.db_full_in_days}
    deleted = f", {e.cleanup_rows_deleted:,} rows deleted" if e.cleanup_rows_deleted is not None else ""
    db = "" if e.db_bytes is None else (f"; DB {e.db_bytes / 1024**2:,.0f} MB of {s.db_limit_bytes / 1024**3:g} GB "
                                        f"({e.db_bytes / s.db_limit_bytes:.1%})")
    full = (f", full in {e.db_full_in_days:.0f} days at this trend"
            if e.db_full_in_days is not None and e.db_full_in_days <= DB_FULL_SOON_DAYS else "")
    text = f"cleanup: last successful run {_ago(age)}{deleted}; {failures} failures in 24 h{db}{full}"
    cf = e.cloudflare
    if cf is not None and cf.d1_bytes is not None and cf.d1_share is not None:
        # The production D1 itself, from Cloudflare: its 10 GB cap cannot be raised.
        text += f"; production D1 {cf.d1_bytes / 1e9:,.2f} GB of 10 GB ({cf.d1_share:.1%})"
        numbers["d1_share"] = cf.d1_share
        share = max(share or 0.0, cf.d1_share)
    if age is None or age > CLEANUP_MAX_AGE_S or (share is not None and share >= 1.0):
        return Status.NOT_READY, text, numbers
    if failures or (share is not None and share >= DB_AT_RISK) or full:
        return Status.AT_RISK, text, numbers
    return Status.READY, text, numbers


def _cron(e: Evidence, s: Settings) -> Verdict:
    job = e.jobs.get("prewarm")
    if job is None or job.runs_24h == 0 or job.duration_p95_s is None:
        return Status.UNKNOWN, f"cron: no prewarm runs in {span_words(e.window_s)}", {}
    deadline = s.cron_deadline_s
    ratio = job.duration_p95_s / deadline
    status = Status.READY if ratio <= CRON_READY else Status.AT_RISK if ratio <= CRON_AT_RISK else Status.NOT_READY
    text = (f"cron p95 {job.duration_p95_s:.1f} s of {deadline:.0f} s; {job.timed_out_24h} timeouts in "
            f"{span_words(e.window_s)}, {e.cron.active_skipped} active users skipped in 24 h")
    if job.timed_out_24h or e.cron.active_skipped:
        status = Status.NOT_READY
    numbers: dict[str, Any] = {"duration_p95_s": job.duration_p95_s, "deadline_s": deadline, "share": ratio,
                               "timed_out_24h": job.timed_out_24h, "active_skipped_24h": e.cron.active_skipped}
    c = e.cron
    if c.wave_p95_s is None:
        return status, text + "; reports lack the per-user figures the model needs", numbers
    model = CronModel(c.wave_p95_s, CONCURRENCY, s.upstream("lastfm").requests.per_second, c.overhead_p95_s or 0.0)
    users_now = c.users or e.users_total
    # Users a run must poll per user the app has (Last.fm users, or active-first subsets);
    # without both figures assume every user is polled.
    share = (c.wanted / users_now) if c.wanted and users_now else 1.0
    budget = deadline * CRON_HEADROOM
    fits = int(model.max_polled(budget) / share)
    target = max(e.users_total or 0, e.users_forecast or 0)
    projected = model.duration(share * target)
    measured_model = model.duration(c.polled or 0)
    numbers.update({"wave_p95_s": c.wave_p95_s, "poll_share": share, "max_users_within_headroom": fits,
                    "forecast_users": target, "projected_s": projected, "model_s_now": measured_model,
                    "model_error": measured_model / job.duration_p95_s - 1})
    at: list[tuple[float, str]] = [(e.next_trigger_users, "next trigger")] if e.next_trigger_users else []
    at.append((target, f"{FORECAST_DAYS}-day forecast"))
    text += (f"; model (W {c.wave_p95_s:.2f} s, c {CONCURRENCY}): fits {fits:,} users within "
             f"{_pct(CRON_HEADROOM)} of the deadline; " +
             ", ".join(f"{n:,.0f} users ({why}) → {model.duration(share * n):.1f} s" for n, why in at))
    if status is Status.READY and projected > budget:
        status = Status.AT_RISK
    return status, text, numbers


def _monitoring(e: Evidence, s: Settings) -> Verdict:
    if e.headroom_age_s is None:
        return Status.UNKNOWN, "monitoring: no headroom samples recorded", {}
    alerts = e.jobs.get("alerts")
    evaluated = alerts.last_ok_age_s if alerts else None
    webhook = s.alert_webhook_url is not None
    numbers = {"headroom_age_s": e.headroom_age_s, "alerts_evaluated_age_s": evaluated, "webhook": webhook,
               "alerts_firing": e.alerts_firing}
    text = (f"headroom sampled {_ago(e.headroom_age_s)}; alert rules evaluated {_ago(evaluated)}; "
            f"alerts firing: {e.alerts_firing}; webhook {'set' if webhook else 'not set (HEADROOM_ALERT_WEBHOOK_URL)'}")
    if e.cloudflare is not None:
        text += f"; Cloudflare usage collected {_ago(e.cloudflare.age_s)}"
    if e.headroom_age_s > MONITORING_MAX_AGE_S:
        return Status.NOT_READY, text, numbers
    if evaluated is None or evaluated > MONITORING_MAX_AGE_S or not webhook:
        return Status.AT_RISK, text, numbers
    return Status.READY, text, numbers


def _batching(e: Evidence) -> Verdict:
    c = e.cron
    if c.spotify_calls is None or c.refreshed == 0:
        return Status.UNKNOWN, "batch APIs: prewarm reports in 24 h carry no Spotify call counts", {}
    ratio = c.spotify_calls / max(c.batched_min_calls, 1)
    numbers = {"spotify_calls_24h": c.spotify_calls, "refreshed_24h": c.refreshed,
               "batched_min_calls": c.batched_min_calls, "ratio_to_minimum": ratio}
    text = (f"prewarm: {c.spotify_calls:,} Spotify calls for {c.refreshed:,} refreshed users in 24 h "
            f"(batched minimum {c.batched_min_calls:,})")
    if ratio <= BATCH_READY:
        return Status.READY, text, numbers
    if c.spotify_calls >= BATCH_ONE_BY_ONE * c.refreshed:
        return Status.NOT_READY, text, numbers
    return Status.AT_RISK, text, numbers


def _dedup(e: Evidence) -> Verdict:
    if e.ai_requests_7d == 0:
        return Status.UNKNOWN, f"dedup: no AI requests in {span_words(e.window_s)}", {}
    share = e.ai_cache_hits_7d / e.ai_requests_7d
    numbers = {"ai_requests_7d": e.ai_requests_7d, "served_from_cache": share, "saved_tokens_7d": e.ai_saved_tokens_7d}
    text = (f"AI: {_pct(share)} of {e.ai_requests_7d:,} requests in {span_words(e.window_s)} served from cache "
            f"({e.ai_saved_tokens_7d:,} tokens saved)")
    status = Status.READY if share >= DEDUP_READY else Status.AT_RISK if share >= DEDUP_AT_RISK else Status.NOT_READY
    return status, text, numbers


def _caches(e: Evidence) -> Verdict:
    looked = e.cache_hits + e.cache_misses
    if e.cache_age_s is None:
        return Status.UNKNOWN, "caches: no cache stats recorded", {}
    ratio = e.cache_hits / looked if looked else None
    numbers = {"hit_ratio_7d": ratio, "evictions_7d": e.cache_evictions, "bytes": e.cache_bytes,
               "stats_age_s": e.cache_age_s}
    size = f", {e.cache_bytes / 1024**2:,.0f} MB" if e.cache_bytes is not None else ""
    text = (f"caches: {'no lookups' if ratio is None else _pct(ratio) + ' hit ratio'} over "
            f"{span_words(e.window_s)}{size}, "
            f"{e.cache_evictions:,} evictions; sampled {_ago(e.cache_age_s)}")
    if e.cloudflare is not None:
        text += (f"; production KV {e.cloudflare.kv_reads_24h:,.0f} reads / {e.cloudflare.kv_writes_24h:,.0f} "
                 "writes in 24 h")
    if ratio is None or e.cache_age_s > CACHE_STALE_S:
        return Status.AT_RISK, text, numbers
    status = Status.READY if ratio >= CACHE_READY else Status.AT_RISK if ratio >= CACHE_AT_RISK else Status.NOT_READY
    return status, text, numbers


def _breakers(e: Evidence) -> Verdict:
    numbers = {"opens_7d": e.breaker_opens_7d, "open_now": e.breakers_open, "longest_open_s": e.breaker_open_longest_s}
    if e.breaker_opens_7d == 0:
        return (Status.UNKNOWN, (f"circuit breakers: no breaker opened in {span_words(e.window_s)}, so nothing "
                "shows they work "
                "(the breaker only acts when an upstream fails)"), numbers)
    longest = (e.breaker_open_longest_s or 0) / 60
    text = (f"circuit breakers: opened {e.breaker_opens_7d}× in {span_words(e.window_s)}, {e.breakers_open} open now, "
            f"longest {longest:.0f} min")
    if e.breakers_open and (e.breaker_open_longest_s or 0) > BREAKER_LONG_OPEN_S:
        return Status.AT_RISK, text, numbers
    return Status.READY, text, numbers


def _multi_region(e: Evidence) -> Verdict:
    if e.cloudflare is not None:
        return (Status.UNKNOWN, f"out of scope for a single-region app; {e.cloudflare.replication_text()}",
                {"read_replication": e.cloudflare.read_replication})
    return (Status.UNKNOWN, ("out of scope for a single-region app: D1 is single-region, and read replicas or "
            "Durable Objects are an architecture decision the metrics cannot show"), {})


def _costs(e: Evidence, s: Settings) -> Verdict:
    if e.ai_age_s is None and e.cloudflare is None:
        return Status.UNKNOWN, "cost tracking: no AI usage recorded", {}
    status, parts = Status.READY, []
    numbers: dict[str, Any] = {"ai_usage_age_s": e.ai_age_s}
    for provider in sorted(set(e.ai_spend_mtd) | set(e.ai_spend_projected)):
        spent, projected = e.ai_spend_mtd.get(provider, 0.0), e.ai_spend_projected.get(provider, 0.0)
        budget = monthly_budget(s, provider)
        numbers[provider] = {"mtd_usd": spent, "projected_usd": projected, "budget_usd": budget}
        if not budget:
            parts.append(f"{provider} ${spent:,.2f} this month, no budget set")
            status = max(status, Status.AT_RISK, key=_severity)
            continue
        parts.append(f"{provider} ${spent:,.2f} of ${budget:,.0f} (projected ${projected:,.2f})")
        if spent > budget:
            status = Status.NOT_READY
        elif spent >= SPEND_AT_RISK * budget or projected > budget:
            status = max(status, Status.AT_RISK, key=_severity)
    cf = e.cloudflare
    if cf is not None:
        budget = s.platform_monthly_budget_usd
        numbers["platform"] = {"mtd_usd": cf.platform_mtd_usd, "projected_usd": cf.platform_projected_usd,
                               "budget_usd": budget}
        parts.append(f"platform ${cf.platform_mtd_usd:,.2f}" + (f" of ${budget:,.0f}" if budget else ", no budget set")
                     + f" (projected ${cf.platform_projected_usd:,.2f}); D1 rows {cf.d1_rows_read_24h:,.0f} read / "
                     f"{cf.d1_rows_written_24h:,.0f} written, KV {cf.kv_reads_24h:,.0f} reads in 24 h")
        if budget and cf.platform_mtd_usd > budget:
            status = Status.NOT_READY
        elif not budget or cf.platform_projected_usd > budget:
            status = max(status, Status.AT_RISK, key=_severity)
    text = f"cost tracking: AI usage recorded {_ago(e.ai_age_s)}; " + ("; ".join(parts) or "no spend this month")
    if e.ai_age_s is not None and e.ai_age_s > AI_STALE_S:
        status = max(status, Status.AT_RISK, key=_severity)
    return status, text, numbers


def _severity(status: Status) -> int:
    return (Status.READY, Status.UNKNOWN, Status.AT_RISK, Status.NOT_READY).index(status)

