"""Alerts over the recorded metrics: rules, hold times, episodes and their delivery.

A `Rule` measures one value per subject (an upstream, a job, the app DB, a provider)
from the metrics DB and compares it with its threshold. A breach must last
``hold_s`` before the rule fires, like Prometheus' ``for``: the time a breach was
first seen is kept in the shared state store (``alerts:pending:{rule}:{subject}``),
so whichever replica runs the next alerts slot continues the count.

An **episode** is one row in ``alert_events``: inserted ``firing`` when the rule
fires, updated ``resolved`` when the value is back within the threshold (or the
subject has no data any more). Nothing fires twice while a row is firing, so every
replica and every run agrees on one episode. ``delivered`` means the notice for the
row's current state went out: firing sets it once the firing notice is sent,
resolving clears it until the resolution notice is sent; `collectors.webhook.deliver_pending`
sends what is undelivered, so a webhook outage delays notices for up to a day, never loses them.

Hold times and look-back windows scale with ``scale`` (``--interval-scale``), so a
demo running every job 20x faster also alerts 20x faster.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select, update

from scaling.capacity.forecast import forecast_db_bytes
from scaling.errors import StoreError
from scaling.metrics import models as m
from scaling.metrics import queries as q
from scaling.metrics.records import DEFAULT_SOURCE, AlertEvent
from scaling.metrics.writer import MetricsWriter
from scaling.store import StateStore

__all__ = [
    "Evidence", "JobTiming", "Reading", "Rule", "default_rules", "duration_text", "evaluate", "month_spend",
]

log = logging.getLogger("headroom.alerts")

@dataclass(frozen=True, slots=True)
class JobTiming:
    """A scheduled job's interval, deadline and misfire grace, in seconds."""

    interval_s: float
    deadline_s: float
    grace_s: float


@dataclass(frozen=True, slots=True)
class Evidence:
    """What rules read: the metrics DB as of ``now``, and what "too much" means here.

    Attributes:
        jobs: the scheduled jobs (runs of other jobs are not judged on timing).
        db_limit_bytes: the app DB's storage limit.
        budgets: monthly AI budget per provider, dollars.
        exclude_sources: metric sources that are not evidence (generated demo history).
        scale: multiplies look-back windows, like the intervals.
        default_deadline_s: the deadline of jobs not in ``jobs`` (e.g. ingested Worker crons).
        source: the source the collectors record under.
    """

    engine: Engine
    now: float
    jobs: Mapping[str, JobTiming] = field(default_factory=dict)
    db_limit_bytes: int = q.D1_LIMIT_BYTES
    budgets: Mapping[str, float] = field(default_factory=dict)
    exclude_sources: tuple[str, ...] = ("demo",)
    scale: float = 1.0
    default_deadline_s: float = 30.0
    source: str = DEFAULT_SOURCE


@dataclass(frozen=True, slots=True)
class Reading:
    """One subject's value for a rule."""

    subject: str
    value: float
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Rule:
    """A threshold over a measured value, held for ``hold_s`` before it fires.

    Attributes:
        name: the ``rule`` column.
        severity: "warning" or "critical".
        measure: the value per subject from the evidence.
        threshold: the line; breached above it (or below it when ``below``).
        hold_s: how long a breach must last before firing.
        message: a template over ``subject``, ``value``, ``threshold``, ``detail``, ``hold``.
    """

    name: str
    severity: str
    measure: Callable[[Evidence], Iterable[Reading]]
    threshold: float
    hold_s: float
    message: str
    below: bool = False

    def breached(self, value: float) -> bool:
        return value < self.threshold if self.below else value > self.threshold

    def describe(self, reading: Reading) -> str:
        return self.message.format(subject=reading.subject, value=reading.value, threshold=self.threshold,
                                   detail=reading.detail, hold=duration_text(self.hold_s))


# --- measures -----------------------------------------------------------------------------------

def _kept(df: Any, ev: Evidence) -> Any:
    return df[~df["source"].isin(ev.exclude_sources)] if len(df) else df


def _subject(upstream: str, key: str) -> str:
    return upstream if key in ("", "default") else f"{upstream}:{key}"


def _utilisation(ev: Evidence) -> list[Reading]:
    every = ev.jobs["headroom"].interval_s if "headroom" in ev.jobs else 60.0 * ev.scale
    df = _kept(q.latest_headroom(ev.engine, now=ev.now, max_age_s=3 * every), ev)
    best: dict[str, float] = {}
    for r in df.itertuples():
        s = _subject(r.upstream, r.limiter_key)
        best[s] = max(best.get(s, 0.0), float(r.utilisation))
    return [Reading(s, v) for s, v in sorted(best.items())]


def _upstream_429(ev: Evidence) -> list[Reading]:
    t = m.HEADROOM_SAMPLES
    since = ev.now - 300.0 * ev.scale
    with ev.engine.connect() as conn:
        rows = conn.execute(select(t.c.upstream, t.c.limiter_key, func.sum(t.c.upstream_429))
                            .where(t.c.ts >= since, t.c.ts <= ev.now, t.c.source.not_in(ev.exclude_sources))
                            .group_by(t.c.upstream, t.c.limiter_key)).all()
    out: dict[str, float] = {}
    for upstream, key, n in rows:
        s = _subject(upstream, key)
        out[s] = out.get(s, 0.0) + float(n or 0)
    return [Reading(s, v, f"in the last {duration_text(300.0 * ev.scale)}") for s, v in sorted(out.items())]


def _cron_p95(ev: Evidence) -> list[Reading]:
    df = _kept(q.cron_summary(ev.engine, ev.now - 86400.0 * ev.scale, ev.now + 1), ev)
    out = []
    for r in df.itertuples():
        finished = int(r.runs) - int(r.running)
        if finished < 3 or r.duration_p95 is None or math.isnan(float(r.duration_p95)):
            continue
        own = r.source == ev.source
        deadline = ev.jobs[r.job].deadline_s if own and r.job in ev.jobs else ev.default_deadline_s
        subject = r.job if own else f"{r.job}@{r.source}"
        out.append(Reading(subject, float(r.duration_p95) / deadline,
                           f"p95 {float(r.duration_p95):.2f}s of a {deadline:g}s deadline over {finished} runs"))
    return out


def _latest_runs(ev: Evidence) -> dict[str, tuple[Any, float | None]]:
    """Per scheduled job: its newest finished run (or None) and its newest slot of any state."""
    t = m.JOB_RUNS
    out = {}
    with ev.engine.connect() as conn:
        for job in ev.jobs:
            mine = (t.c.job == job, t.c.source == ev.source)
            last = conn.execute(select(t.c.outcome, t.c.error, t.c.scheduled_at).where(*mine, t.c.outcome != "running")
                                .order_by(t.c.scheduled_at.desc()).limit(1)).first()
            newest = conn.execute(select(func.max(t.c.scheduled_at)).where(*mine)).scalar()
            out[job] = (last, None if newest is None else float(newest))
    return out


def _latest_is(outcome: str) -> Callable[[Evidence], list[Reading]]:
    def measure(ev: Evidence) -> list[Reading]:
        out = []
        for job, (last, _) in sorted(_latest_runs(ev).items()):
            if last is not None:
                bad = last.outcome == outcome
                out.append(Reading(job, 1.0 if bad else 0.0, (last.error or "") if bad else ""))
        return out

    return measure


def _missed(ev: Evidence) -> list[Reading]:
    out = []
    for job, (last, newest) in sorted(_latest_runs(ev).items()):
        if newest is None:
            continue  # never ran here: a new job, not a missed one
        timing = ev.jobs[job]
        silent = ev.now - newest - timing.interval_s
        if silent > timing.interval_s + timing.grace_s:
            n = math.floor(silent / timing.interval_s)
            out.append(Reading(job, float(n), f"no run recorded for {duration_text(ev.now - newest)}"))
        elif last is not None and last.outcome == "skipped" and (last.error or "").startswith("missed"):
            out.append(Reading(job, 1.0, last.error or ""))
        else:
            out.append(Reading(job, 0.0))
    return out


def _latest_db_bytes(ev: Evidence) -> float | None:
    t = m.DB_STATS
    with ev.engine.connect() as conn:
        value = conn.execute(select(t.c.bytes).where(t.c.table_name == "*", t.c.source == ev.source,
                                                     t.c.bytes.is_not(None))
                             .order_by(t.c.ts.desc()).limit(1)).scalar()
    return None if value is None else float(value)


def _db_share(ev: Evidence) -> list[Reading]:
    size = _latest_db_bytes(ev)
    if size is None:
        return []
    text = f"{size / 1024**3:.2f} GB of {ev.db_limit_bytes / 1024**3:g} GB"
    return [Reading("app_db", size / ev.db_limit_bytes, text)]


def _db_forecast(ev: Evidence) -> list[Reading]:
    series = forecast_db_bytes(ev.engine, now=ev.now, limit_bytes=ev.db_limit_bytes, source=ev.source)
    limit = next((t for t in series.thresholds if t.threshold >= ev.db_limit_bytes), None)
    if limit is None or limit.reached or limit.crossing is None:
        return []  # no usable trend (or already over: `db_size` says so)
    days = max(0.0, float(limit.crossing.days_from_now))
    return [Reading("app_db", days, f"the trend reaches {ev.db_limit_bytes / 1024**3:g} GB on "
                                    f"{limit.crossing.date:%Y-%m-%d}")]


def month_spend(engine: Engine, *, since: float, now: float, exclude_sources: tuple[str, ...]) -> dict[str, float]:
    """Dollars per provider since ``since`` (raw calls and roll-ups), ``exclude_sources`` left out."""
    df = q.ai_cost_by(engine, since, now + 1, ("provider", "source"))
    df = df[~df["source"].isin(exclude_sources)]
    return {str(p): float(v) for p, v in df.groupby("provider")["cost_usd"].sum().items()}


def _ai_spend(ev: Evidence) -> list[Reading]:
    start = datetime.fromtimestamp(ev.now, tz=UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    spend = month_spend(ev.engine, since=start.timestamp(), now=ev.now, exclude_sources=ev.exclude_sources)
    return [Reading(p, spend.get(p, 0.0) / budget, f"${spend.get(p, 0.0):,.2f} of ${budget:,.2f}")
            for p, budget in sorted(ev.budgets.items()) if budget and budget > 0]


def default_rules(scale: float = 1.0) -> tuple[Rule, ...]:
    """The issue's rules; hold times scale with ``scale``."""
    return (
        Rule("rate_limit_usage", "warning", _utilisation, 0.8, 300.0 * scale,
             "{subject}: rate limit {value:.0%} used (over {threshold:.0%} for {hold})"),
        Rule("upstream_429", "warning", _upstream_429, 0.0, 0.0,
             "{subject}: {value:.0f} upstream 429 response(s) {detail}"),
        Rule("cron_p95", "warning", _cron_p95, 0.5, 0.0,
             "{subject}: run time p95 is {value:.0%} of its deadline (over {threshold:.0%}): {detail}"),
        Rule("job_timed_out", "critical", _latest_is("timed_out"), 0.5, 0.0,
             "{subject}: the latest run timed out: {detail}"),
        Rule("job_missed", "critical", _missed, 0.5, 0.0, "{subject}: run(s) missed: {detail}"),
        Rule("job_failed", "warning", _latest_is("failed"), 0.5, 0.0, "{subject}: the latest run failed: {detail}"),
        Rule("db_size", "critical", _db_share, 0.8, 0.0,
             "app DB at {value:.0%} of its limit (over {threshold:.0%}): {detail}"),
        Rule("db_forecast", "warning", _db_forecast, 30.0, 0.0,
             "app DB forecast to reach its limit in {value:.0f} days: {detail}", below=True),
        Rule("ai_spend", "warning", _ai_spend, 0.8, 0.0,
             "{subject}: AI spend at {value:.0%} of the monthly budget (over {threshold:.0%}): {detail}"),
    )


# --- evaluation ------------------------------------------------------------------------------------

def evaluate(rules: Iterable[Rule], ev: Evidence, *, writer: MetricsWriter, store: StateStore | None,
             every_s: float = 60.0) -> dict[str, Any]:
    """Measure every rule, fire new episodes, resolve ended ones.

    A rule whose measure fails is skipped this run: its firing episodes stay firing
    (no data is not evidence of recovery).

    Args:
        every_s: how often evaluation runs (pending breaches expire after 3 missed runs).

    Returns:
        ``fired``, ``resolved``, ``pending``, ``firing`` (as "rule/subject") and ``errors`` per rule.
    """
    a = m.ALERT_EVENTS
    with writer.engine.connect() as conn:
        firing = {(r.rule, r.subject): (int(r.id), r.value) for r in conn.execute(
            select(a.c.id, a.c.rule, a.c.subject, a.c.value).where(a.c.state == "firing", a.c.source == ev.source))}
    fired: list[str] = []
    resolved: list[str] = []
    pending: list[str] = []
    errors: dict[str, str] = {}
    for rule in rules:
        try:
            readings = {r.subject: r for r in rule.measure(ev)}
        except Exception as exc:  # noqa: BLE001 - one broken rule must not silence the others
            errors[rule.name] = f"{type(exc).__name__}: {exc}"
            log.warning("alert rule %s could not be evaluated: %s", rule.name, exc)
            continue
        for subject, reading in readings.items():
            tag = f"{rule.name}/{subject}"
            if not rule.breached(reading.value):
                if rule.hold_s > 0:
                    _forget(store, rule, subject)
                if (rule.name, subject) in firing:
                    _resolve(writer.engine, firing[(rule.name, subject)][0], now=ev.now, value=reading.value)
                    resolved.append(tag)
                continue
            if (rule.name, subject) in firing:
                continue
            if rule.hold_s > 0:
                since = _breach_since(store, rule, subject, now=ev.now, ttl=rule.hold_s + 3 * every_s)
                if since is None or ev.now - since < rule.hold_s:
                    pending.append(tag)
                    continue
            writer.fire_alert(AlertEvent(rule=rule.name, severity=rule.severity, subject=subject, value=reading.value,
                                         threshold=rule.threshold, message=rule.describe(reading), started_at=ev.now,
                                         source=ev.source))
            if rule.hold_s > 0:
                _forget(store, rule, subject)
            fired.append(tag)
            log.warning("alert firing: %s: %s", tag, rule.describe(reading))
        for (name, subject), (alert_id, _value) in firing.items():
            if name == rule.name and subject not in readings:
                _resolve(writer.engine, alert_id, now=ev.now, value=None)  # the subject has no data any more
                resolved.append(f"{name}/{subject}")
    for tag in resolved:
        log.info("alert resolved: %s", tag)
    still = sorted({f"{r}/{s}" for r, s in firing} - set(resolved) | set(fired))
    return {"fired": fired, "resolved": resolved, "pending": pending, "firing": still, "errors": errors}


def _pending_key(rule: Rule, subject: str) -> str:
    return f"alerts:pending:{rule.name}:{subject}"


def _breach_since(store: StateStore | None, rule: Rule, subject: str, *, now: float, ttl: float) -> float | None:
    """When this breach was first seen (now, if it is new); None without a store to remember it."""
    if store is None:
        return None
    key = _pending_key(rule, subject)
    try:
        store.add(key, repr(now).encode(), now=now, ttl=ttl)
        raw = store.get(key, now=now)
        if raw is None:
            return None
        store.set(key, raw, now=now, ttl=ttl)  # still breached: keep remembering
        return float(raw)
    except (StoreError, ValueError) as exc:
        log.warning("alert rule %s: cannot track its hold time: %s", rule.name, exc)
        return None


def _forget(store: StateStore | None, rule: Rule, subject: str) -> None:
    if store is None:
        return
    try:
        store.delete(_pending_key(rule, subject))
    except StoreError as exc:
        log.warning("alert rule %s: cannot clear its hold time: %s", rule.name, exc)


def _resolve(engine: Engine, alert_id: int, *, now: float, value: float | None) -> None:
    # One statement: resolved and "resolution notice not yet sent" must not be seen apart.
    a = m.ALERT_EVENTS
    values: dict[str, Any] = {"state": "resolved", "resolved_at": now, "delivered": False}
    if value is not None:
        values["value"] = value
    with engine.begin() as conn:
        conn.execute(update(a).where(a.c.id == alert_id, a.c.state == "firing").values(**values))


def duration_text(seconds: float) -> str:
    """Seconds as a short human duration: "45s", "12 min", "3.5 h", "2.0 days"."""
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
