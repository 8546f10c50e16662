"""The simulator's inputs from production data, each with where it came from.

Three inputs are read from the metrics DB over a trailing window, when there is data:

- **page views per user per day**: Worker requests ÷ users ÷ days. Cloudflare's
  invocation counts are complete, so they win over ``wrangler tail`` fetch events (a
  capture covers only the time it ran). Cron runs are billed as requests
  (reference/cloudflare.md §4), so the Cloudflare count has the window's cron runs taken
  off. Every request counts as one page view: an upper bound if a page makes several.
  The simulator's parameter is the rate of an *inactive* user (active users make 4x), so
  the measured average ``m`` becomes ``m / (1 + 3 · active share)``.
- **active share**: active ÷ total users, averaged over the window's user-count
  samples. The Worker's ``[METRICS]`` lines come first; a line without
  ``activeUserCount`` is stored with active = total (the upstream cron has no active
  filter), so such samples say nothing about activity and are skipped. Headroom's
  own collectors (sessions active in the last 2 h, the simulator's definition) next.
- **CPU per cron run**, and per user polled: ``cpuTime`` of the tail's cron runs (their
  ``wallTime`` is reported beside it), else the Cloudflare collector's CPU per scheduled
  invocation. Users per run are the run's own ``[METRICS] polled`` (Headroom's prewarm)
  or ``userCount``, else the users with a Last.fm name at the time (the upstream cron
  polls them all, reference/upstream.md §4). Per-user CPU is a least-squares line when
  the runs' sizes differ enough, else the mean beyond the model's base. It replaces the
  model's ``per_fetch_ms``: a polled user is one Last.fm fetch, and what the model
  charges per user besides (its entry, ``KV_PER_POLLED_USER`` store calls) is taken off.

Without data an input keeps the scenario's value, labelled ``default: <source>``.
Demo rows (source ``demo``) are never read.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select

from scaling.capacity.cpu_model import CpuModel
from scaling.metrics import models as m
from scaling.metrics import queries as q
from scaling.metrics.db import translate_errors

__all__ = ["KV_PER_POLLED_USER", "Calibration", "Input", "calibrate"]

DAY = 86400.0
#: Store calls the CPU model charges per polled user besides its fetch: the limiter, the breaker, its entry.
KV_PER_POLLED_USER = 3
#: A capture shorter than this is not extrapolated to a daily rate.
MIN_SPAN_S = 3600.0
_SCENARIO = "scaling/capacity/simulate.py Scenario"
_MIN_FIT_RUNS = 3


@dataclass(frozen=True, slots=True)
class Input:
    """One simulator input: its value, whether production data gave it, and from what.

    ``value`` is None when a default has no single number (CPU per run depends on the run).
    """

    name: str
    value: float | None
    from_data: bool
    provenance: str

    def as_dict(self) -> dict[str, Any]:
        return {"input": self.name, "value": self.value, "from_data": self.from_data, "provenance": self.provenance}


@dataclass(frozen=True, slots=True)
class Calibration:
    """The calibrated inputs over ``[since, until)``; `apply` puts them into a scenario."""

    since: float
    until: float
    views_per_user_day: Input
    active_share: Input
    cpu_ms_per_run: Input
    cpu_ms_per_user: Input
    cpu: CpuModel

    @property
    def inputs(self) -> tuple[Input, ...]:
        return (self.views_per_user_day, self.active_share, self.cpu_ms_per_run, self.cpu_ms_per_user)

    @property
    def from_data(self) -> bool:
        """True when any input came from production data."""
        return any(i.from_data for i in self.inputs)

    def apply(self, scenario: Any, *, keep_active_share: bool = False) -> Any:
        """``scenario`` (a `Scenario`) with every input that came from data replaced.

        Args:
            keep_active_share: the operator gave the active share explicitly; it wins.
        """
        changes: dict[str, Any] = {}
        if self.views_per_user_day.from_data and self.views_per_user_day.value is not None:
            changes["views_per_user_day"] = self.views_per_user_day.value
        if self.active_share.from_data and self.active_share.value is not None and not keep_active_share:
            changes["active_share"] = self.active_share.value
        if self.cpu_ms_per_user.from_data:
            changes["cpu"] = self.cpu
        return dataclasses.replace(scenario, **changes) if changes else scenario

    def provenance(self) -> dict[str, str]:
        """Input name -> where its value came from (what the capacity results store)."""
        return {i.name: i.provenance for i in self.inputs} | {"cpu model": self.cpu.source}

    def as_dict(self) -> dict[str, Any]:
        return {"since": self.since, "until": self.until, "inputs": [i.as_dict() for i in self.inputs],
                "cpu_model": dataclasses.asdict(self.cpu)}


@dataclass(frozen=True, slots=True)
class _Users:
    total: float | None
    active_share: float | None
    samples: int
    active_samples: int
    source: str


@dataclass(frozen=True, slots=True)
class _Run:
    ts: float
    cpu_ms: float
    wall_ms: float
    users: float | None


def _days(s: float) -> str:
    return f"{s / DAY:.1f} days" if s >= DAY else f"{s / 3600:.1f} hours"


def _users(engine: Engine, since: float, until: float, tail_source: str) -> _Users | None:
    t = m.USER_COUNTS
    with translate_errors(engine, "read user counts"), engine.connect() as conn:
        rows = conn.execute(select(t.c.source, t.c.total, t.c.active).where(
            t.c.ts >= since, t.c.ts < until, t.c.source != "demo", t.c.total > 0)).all()
    by_source: dict[str, list[tuple[int, int]]] = {}
    for source, total, active in rows:
        by_source.setdefault(str(source), []).append((int(total), int(active)))
    order = [tail_source, "collectors", *sorted(s for s in by_source if s not in (tail_source, "collectors"))]
    chosen = [s for s in order if by_source.get(s)]
    if not chosen:
        return None
    totals = by_source[chosen[0]]
    for source in chosen:
        # A Worker line without activeUserCount was stored as active = total: no information.
        informative = [(n, a) for n, a in by_source[source] if source != tail_source or a < n]
        if informative:
            share = sum(a / n for n, a in informative) / len(informative)
            return _Users(sum(n for n, _ in totals) / len(totals), share, len(totals), len(informative), source)
    return _Users(sum(n for n, _ in totals) / len(totals), None, len(totals), 0, chosen[0])


def _requests_cloudflare(engine: Engine, since: float, until: float) -> tuple[float, float, int] | None:
    """(requests less cron runs, seconds covered, cron runs) from the Cloudflare collector."""
    u, c = m.CLOUDFLARE_USAGE, m.CLOUDFLARE_CRON_RUNS
    with translate_errors(engine, "read cloudflare_usage"), engine.connect() as conn:
        total, first, last = conn.execute(select(
            func.sum(u.c.value), func.min(u.c.ts), func.max(u.c.ts + u.c.bucket_s)).where(
            u.c.source == "cloudflare", u.c.dataset == "workersInvocationsAdaptive", u.c.metric == "requests",
            u.c.ts >= since, u.c.ts < until)).one()
        if total is None:
            return None
        crons = conn.execute(select(func.count()).select_from(c).where(
            c.c.source == "cloudflare", c.c.ts >= float(first), c.c.ts < float(last))).scalar_one()
    span = min(float(last), until) - float(first)
    return max(0.0, float(total) - int(crons)), span, int(crons)


def _requests_tail(engine: Engine, since: float, until: float, source: str) -> tuple[float, float] | None:
    """(fetch events, seconds covered) from ingested ``wrangler tail`` events (raw and rolled up)."""
    df = q.worker_series(engine, since, until, source=source)
    if df.empty:
        return None
    seen = df[df["events"] > 0]
    if seen.empty:
        return None
    width = float(df.attrs.get("bucket_s", 60))
    starts = seen["ts"].map(lambda t: t.timestamp())
    span = min(until, float(starts.max()) + width) - max(since, float(starts.min()))
    fetches = float(seen.loc[seen["event_type"] == "fetch", "events"].sum())
    return fetches, span


def _views(engine: Engine, since: float, until: float, users: _Users | None, share: float,
           tail_source: str, default: float) -> Input:
    name = "page views per user per day"
    fallback = Input(name, default, False, f"default: {default:g} a day for an inactive user, active users 4x "
                                           f"({_SCENARIO})")
    if users is None or not users.total:
        return dataclasses.replace(fallback, provenance=fallback.provenance + "; no user counts to divide by")
    cf = _requests_cloudflare(engine, since, until)
    found: tuple[float, float, str] | None = None
    if cf is not None and cf[1] >= MIN_SPAN_S:
        requests, span, crons = cf
        found = (requests, span, f"{requests:,.0f} Worker requests (Cloudflare, less {crons:,} cron runs)")
    else:
        tail = _requests_tail(engine, since, until, tail_source)
        if tail is not None and tail[0] > 0 and tail[1] >= MIN_SPAN_S:
            found = (tail[0], tail[1], f"{tail[0]:,.0f} tail fetch events")
    if found is None:
        return dataclasses.replace(fallback, provenance=fallback.provenance + "; no Worker requests in the window")
    requests, span, what = found
    mean = requests / (span / DAY) / users.total
    base = mean / (1 + 3 * share)
    return Input(name, round(base, 3), True,
                 f"from {what} over {_days(span)} ÷ {users.total:,.0f} users ({users.source}) = {mean:.2f} a day on "
                 f"average; {base:.2f} for an inactive user at {share:.0%} active (active users 4x)")


def _active(users: _Users | None, default: float) -> Input:
    name = "active share"
    if users is None or users.active_share is None:
        why = "no user-count samples" if users is None else "the user counts carry no active count"
        return Input(name, default, False, f"default: {default:.0%} ({_SCENARIO}; {why} in the window)")
    return Input(name, round(users.active_share, 4), True,
                 f"from {users.active_samples:,} user-count samples ({users.source}): active ÷ total users")


def _report_users(report: Any) -> tuple[float | None, str]:
    try:
        data = json.loads(report) if isinstance(report, str) else None
    except json.JSONDecodeError:
        return None, ""
    metrics = data.get("METRICS") if isinstance(data, dict) else None
    if isinstance(metrics, dict):
        for key, label in (("polled", "the run's [METRICS] polled"), ("lastfmUserCount", "the run's [METRICS]"),
                           ("userCount", "the run's [METRICS] userCount")):
            value = metrics.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                return float(value), label
    return None, ""


def _tail_runs(engine: Engine, since: float, until: float, source: str) -> tuple[list[_Run], str]:
    t = m.JOB_RUNS
    with translate_errors(engine, "read job runs"), engine.connect() as conn:
        rows = conn.execute(select(t.c.scheduled_at, t.c.report).where(
            t.c.source == source, t.c.job.like("worker-cron%"), t.c.scheduled_at >= since,
            t.c.scheduled_at < until)).all()
    runs, labels = [], set()
    for ts, report in rows:
        data = json.loads(report) if report else {}
        cpu = data.get("cpuMs") if isinstance(data, dict) else None
        if not isinstance(cpu, (int, float)) or cpu <= 0:
            continue
        users, label = _report_users(report)
        if label:
            labels.add(label)
        wall = data.get("wallMs")
        runs.append(_Run(float(ts), float(cpu), float(wall) if isinstance(wall, (int, float)) else 0.0, users))
    return runs, ", ".join(sorted(labels))


def _cloudflare_runs(engine: Engine, since: float, until: float) -> list[_Run]:
    c = m.CLOUDFLARE_CRON_RUNS
    with translate_errors(engine, "read cloudflare_cron_runs"), engine.connect() as conn:
        rows = conn.execute(select(c.c.ts, c.c.cpu_time_us).where(
            c.c.source == "cloudflare", c.c.ts >= since, c.c.ts < until, c.c.cpu_time_us > 0)).all()
    return [_Run(float(ts), float(us) / 1000.0, 0.0, None) for ts, us in rows]


def _fill_users(engine: Engine, runs: list[_Run], since: float, until: float) -> bool:
    """Users with a Last.fm name at each run without its own count (the nearest sample); True if any was filled."""
    t = m.USER_COUNTS
    with translate_errors(engine, "read user counts"), engine.connect() as conn:
        samples = sorted((float(ts), int(n)) for ts, n in conn.execute(select(t.c.ts, t.c.with_lastfm).where(
            t.c.ts >= since - DAY, t.c.ts < until, t.c.source != "demo", t.c.with_lastfm > 0)).all())
    if not samples:
        return False
    filled = False
    for i, run in enumerate(runs):
        if run.users is None:
            nearest = min(samples, key=lambda s: abs(s[0] - run.ts))
            runs[i] = dataclasses.replace(run, users=float(nearest[1]))
            filled = True
    return filled


def _per_user(runs: Sequence[_Run], base_ms: float) -> tuple[float, float | None]:
    """(ms per polled user, fitted base ms or None): a least-squares line when sizes differ, else the mean."""
    pairs = [(r.users, r.cpu_ms) for r in runs if r.users]
    xs = [float(u) for u, _ in pairs]
    ys = [c for _, c in pairs]
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if n >= _MIN_FIT_RUNS and len(set(xs)) >= 2 and sxx > 0 and max(xs) >= 1.5 * min(xs):
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
        if slope > 0:
            return slope, max(0.0, my - slope * mx)
    return max(0.0, (my - base_ms) / mx), None


def _cpu(engine: Engine, since: float, until: float, tail_source: str,
         cpu: CpuModel) -> tuple[Input, Input, CpuModel]:
    default_user = cpu.per_fetch_ms + cpu.per_user_ms + KV_PER_POLLED_USER * cpu.per_kv_ms
    run_default = Input("CPU ms per cron run", None, False,
                        "default: the per-operation CPU model sums each run's operations "
                        "(scaling/capacity/cpu_model.py)")
    user_default = Input("CPU ms per user polled", round(default_user, 3), False,
                         f"default: one fetch {cpu.per_fetch_ms:g} + user {cpu.per_user_ms:g} + "
                         f"{KV_PER_POLLED_USER} store calls × {cpu.per_kv_ms:g} ms (scaling/capacity/cpu_model.py)")
    runs, labels = _tail_runs(engine, since, until, tail_source)
    where = f"{len(runs):,} tail cron runs' cpuTime"
    if not runs:
        runs, labels = _cloudflare_runs(engine, since, until), ""
        where = f"{len(runs):,} Cloudflare scheduled invocations' CPU time"
    if not runs:
        note = "; no cron runs with CPU time in the window"
        return (dataclasses.replace(run_default, provenance=run_default.provenance + note),
                dataclasses.replace(user_default, provenance=user_default.provenance + note), cpu)
    span = max(r.ts for r in runs) - min(r.ts for r in runs)
    mean = sum(r.cpu_ms for r in runs) / len(runs)
    walls = [r.wall_ms for r in runs if r.wall_ms > 0]
    wall = f"; wall {sum(walls) / len(walls):,.0f} ms a run" if walls else ""
    per_run = Input("CPU ms per cron run", round(mean, 3), True,
                    f"from {where} over {_days(max(span, 1.0))}: mean {mean:,.1f} ms, max "
                    f"{max(r.cpu_ms for r in runs):,.1f} ms{wall}")
    if _fill_users(engine, runs, since, until):
        labels = ", ".join(x for x in (labels, "users with a Last.fm name at the time (the upstream cron polls all)")
                           if x)
    if not any(r.users for r in runs):
        return per_run, dataclasses.replace(
            user_default, provenance=user_default.provenance + "; no users-per-run count to divide by"), cpu
    per_user, base = _per_user(runs, cpu.base_ms)
    how = "a least-squares line over run sizes" if base is not None else f"(mean − {cpu.base_ms:g} ms base) ÷ users"
    user_input = Input("CPU ms per user polled", round(per_user, 4), True,
                       f"from {where}, {how}; users per run from {labels}")
    fitted = dataclasses.replace(
        cpu, per_fetch_ms=round(max(0.0, per_user - cpu.per_user_ms - KV_PER_POLLED_USER * cpu.per_kv_ms), 4),
        base_ms=round(base, 3) if base is not None else cpu.base_ms,
        source=f"fitted: {per_user:.3g} ms per polled user from {where}, charged to its Last.fm fetch"
               + (f"; base {base:.3g} ms" if base is not None else ""))
    return per_run, user_input, fitted


def calibrate(engine: Engine, *, now: float, window_days: float = 7.0, tail_source: str = "worker",
              defaults: Any = None) -> Calibration:
    """The simulator's inputs from the metrics DB over the ``window_days`` before ``now``.

    Args:
        tail_source: the ``source`` of ingested ``wrangler tail`` rows.
        defaults: a `Scenario` whose values stand in where there is no data (default: ``Scenario(users=1)``).

    Raises:
        StoreError: the metrics DB is unreachable or not migrated.
    """
    if defaults is None:
        from scaling.capacity.simulate import Scenario

        defaults = Scenario(users=1)
    since, until = now - window_days * DAY, now
    users = _users(engine, since, until, tail_source)
    active = _active(users, float(defaults.active_share))
    views = _views(engine, since, until, users, float(active.value if active.value is not None else 0.0),
                   tail_source, float(defaults.views_per_user_day))
    per_run, per_user, cpu = _cpu(engine, since, until, tail_source, defaults.cpu)
    return Calibration(since, until, views, active, per_run, per_user, cpu)
