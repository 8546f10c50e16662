"""Generated metrics history, so the dashboard has months to show before collectors have run.

The story: users grow from 20 to ``users`` over ``days`` (about 70% with Last.fm,
about 10% active at a time); limiter load follows users with a daily cycle peaking
at 20:00 UTC, the prewarm cron hits Last.fm every 5 minutes, and a few 429
episodes strike Spotify, Last.fm and OpenAI. Prewarm runs slow down as users grow
until some time out near the end; cleanup runs hourly; the app DB and caches grow;
AI calls are priced with the models and prices of reference/upstream.md §5.

Everything is vectorised with numpy from one seeded generator, so the same seed
and ``now`` always give the same rows. It is stored the way retention leaves real
data: raw rows for the last ``raw_days``, hourly roll-ups before that (built by
aggregating the same minute-level series, so both views agree). Rows carry
``source='demo'`` and a re-run replaces them, leaving other sources untouched.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, delete, insert

from scaling.metrics import models as m
from scaling.metrics.db import translate_errors
from scaling.metrics.retention import _set_state, roll_up
from scaling.metrics.rollups import ROLLUPS

__all__ = ["MODEL_PRICES", "DemoReport", "generate"]

MIN, HOUR, DAY = 60, 3600, 86400
#: $ per 1M tokens (input, output), reference/upstream.md §5; cached input bills at 10%. Providers as in the
#: app: OpenAI and Perplexity (no Anthropic).
MODEL_PRICES: dict[str, tuple[str, float, float]] = {
    "gpt-5.6-terra": ("openai", 2.00, 12.00), "gpt-5.6-luna": ("openai", 0.20, 1.20),
    "gpt-5-nano": ("openai", 0.05, 0.40), "sonar": ("perplexity", 1.00, 1.00),
}
WEB_SEARCH_USD = 0.01  # $10 per 1K calls
PRICE_VERSION = "2026-01-upstream-md"
# task: (model, calls per user per day, mean input tokens, mean output tokens, web-search share, cache-hit share)
_TASKS: dict[str, tuple[str, float, int, int, float, float]] = {
    "artistSummary": ("gpt-5.6-terra", 0.9, 900, 1100, 0.0, 0.65),
    "albumDetail": ("gpt-5.6-terra", 1.2, 1000, 1200, 0.3, 0.6),
    "genreSummary": ("gpt-5.6-terra", 0.2, 800, 1000, 0.0, 0.7),
    "artistSentence": ("sonar", 0.6, 400, 90, 1.0, 0.7),  # the app asks Perplexity for web-grounded facts
    "albumRecommendations": ("gpt-5.6-terra", 0.3, 900, 700, 1.0, 0.4),
    "listenAi": ("gpt-5.6-terra", 0.25, 1200, 350, 0.0, 0.0),
    "playlistCoverPrompt": ("gpt-5-nano", 0.05, 600, 800, 0.0, 0.0),
    "userInsightsSummary": ("gpt-5.6-terra", 0.1, 3000, 2500, 0.0, 0.3),
    "userInsightsRecommendations": ("gpt-5.6-terra", 0.1, 2500, 1800, 0.0, 0.3),
}
# (upstream, limiter key, limit per window, base utilisation, share driven by users)
_LIMITERS = (("spotify", "web", 120, 0.06, 0.50), ("spotify", "bot", 120, 0.03, 0.12),
             ("lastfm", "", 4, 0.04, 0.10), ("openai", "requests", 60, 0.02, 0.25),
             ("openai", "tokens", 90000, 0.02, 0.30), ("perplexity", "", 30, 0.01, 0.04),
             ("songlink", "", 10, 0.04, 0.30))
_FAMILIES = {"spotify:album": (30 * DAY, 0.92, 6000), "spotify:artist": (30 * DAY, 0.9, 4000),
             "spotify:search": (30 * DAY, 0.55, 2500), "lastfm:topalbums": (HOUR, 0.75, 1500),
             "lastfm:artistDetail": (30 * DAY, 0.85, 3000), "user-listens": (420, 0.97, 50000),
             "songlink": (30 * DAY, 0.8, 900), "ai:artistSummary": (180 * DAY, 0.65, 5000),
             "ai:albumDetail": (120 * DAY, 0.6, 6000), "ai:genreSummary": (180 * DAY, 0.7, 5000)}
_TABLES = {"users": 1.0, "sessions": 2.5, "searches": 0.0, "recent_searches": 0.0, "api_keys": 0.15,
           "api_usage_log": 0.0}
_ROW_BYTES = {"users": 420, "sessions": 180, "searches": 120, "recent_searches": 150, "api_keys": 200,
              "api_usage_log": 110}
PREWARM_DEADLINE_S = 30.0


@dataclass
class DemoReport:
    """What `generate` wrote."""

    source: str
    since: float
    until: float
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "since": self.since, "until": self.until, "rows": dict(self.rows),
                "total_rows": sum(self.rows.values()), "seconds": round(self.seconds, 2)}


def _users(t: np.ndarray, start: float, end: float, u0: int, u1: int) -> np.ndarray:
    """Exponential growth from u0 to u1 users over [start, end]."""
    frac = np.clip((t - start) / max(end - start, 1.0), 0.0, 1.0)
    return np.round(u0 * (u1 / u0) ** frac)


def _cycle(t: np.ndarray) -> np.ndarray:
    hour = (t % DAY) / HOUR
    return 1.0 + 0.5 * np.cos(2 * np.pi * (hour - 20.0) / 24.0)


def _frame_rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = df.to_dict("records")
    return rows


class _Writer:
    def __init__(self, engine: Engine, report: DemoReport) -> None:
        self.engine, self.report = engine, report

    def put(self, table: Any, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        with self.engine.begin() as conn:
            for i in range(0, len(rows), 5000):
                conn.execute(insert(table), rows[i:i + 5000])
        self.report.rows[table.name] = self.report.rows.get(table.name, 0) + len(rows)


def generate(engine: Engine, *, now: float, days: int = 90, users: int = 120, seed: int = 0,
             source: str = "demo", raw_days: int = 14) -> DemoReport:
    """Replace ``source``'s rows with ``days`` of generated history ending at ``now``.

    Args:
        engine: a migrated metrics DB.
        now: the end of the history (epoch seconds); pass a fixed value for repeatable output.
        days: how much history (1-730).
        users: users at the end (growth starts at 20, or fewer if ``users`` < 20).
        seed: the random seed.
        source: the ``source`` column of every row.
        raw_days: the most recent days stored raw; older ones only as hourly roll-ups.

    Raises:
        ValueError: out-of-range arguments.
        StoreError: the metrics DB is unreachable or not migrated.
    """
    if not 1 <= days <= 730 or users < 1 or raw_days < 1:
        raise ValueError(f"need 1 <= days <= 730, users >= 1 and raw_days >= 1; got days={days}, users={users}, "
                         f"raw_days={raw_days}")
    began = time.perf_counter()
    end = math.floor(now / MIN) * MIN
    start = math.floor((end - days * DAY) / HOUR) * HOUR
    raw_start = max(start, math.floor((end - raw_days * DAY) / HOUR) * HOUR)
    report = DemoReport(source, float(start), float(end))
    rng = np.random.default_rng(seed)
    u0 = min(20, users)
    with translate_errors(engine, "write demo metrics"):
        _clear(engine, source)
        out = _Writer(engine, report)
        # Old history enters as roll-ups; mark it rolled and pruned so queries read it from there.
        with engine.begin() as conn:
            for name in ROLLUPS:
                _set_state(conn, name, source, rolled_until=raw_start, pruned_before=raw_start)
        _headroom(out, rng, start, raw_start, end, u0, users, source)
        _cache(out, rng, start, raw_start, end, u0, users, source)
        _ai(out, rng, start, raw_start, end, u0, users, source)
        _gauges(out, rng, start, end, u0, users, source)
        _jobs(out, rng, start, raw_start, end, u0, users, source)
        _alerts(out, end, source)
        for rollup in ROLLUPS.values():
            roll_up(engine, rollup, source, until=end)
    report.seconds = time.perf_counter() - began
    return report


def _clear(engine: Engine, source: str) -> None:
    with engine.begin() as conn:
        for table in m.metadata.sorted_tables:
            if "source" in table.c:
                conn.execute(delete(table).where(table.c.source == source))


def _headroom(out: _Writer, rng: np.random.Generator, start: float, raw_start: float, end: float, u0: int,
              u1: int, source: str) -> None:
    t = np.arange(start, end, MIN, dtype=np.float64)
    load = _users(t, start, end, u0, u1) / max(u1, 1) * _cycle(t)
    # 429 episodes: (limiter index, when as a fraction of the range, minutes); the last one is recent.
    episodes = [(0, rng.uniform(0.3, 0.5), 25), (2, rng.uniform(0.55, 0.7), 15), (3, rng.uniform(0.7, 0.8), 10),
                (0, max(0.0, 1 - rng.uniform(2, 5) * DAY / (end - start)), 40)]
    hourly, raw = [], []
    for i, (upstream, key, limit, base, share) in enumerate(_LIMITERS):
        util = (base + share * load) * rng.lognormal(0.0, 0.2, t.size)
        if upstream == "lastfm":  # the prewarm cron's burst every 5 minutes
            util = np.where((t % (5 * MIN)) == 0, np.minimum(0.95, 0.3 + 0.6 * load), util)
        c429 = np.zeros(t.size, dtype=np.int64)
        cooldown = np.zeros(t.size, dtype=bool)
        for idx, at, minutes in episodes:
            if idx == i:
                s0 = int(at * t.size)
                span = slice(s0, min(t.size, s0 + minutes))
                util[span] = rng.uniform(0.98, 1.12, len(util[span]))
                c429[span] = rng.poisson(3, len(c429[span]))
                cooldown[s0 + 2:s0 + minutes // 2] = True
        util = np.clip(util, 0.0, 1.25)
        throttled = rng.poisson(np.maximum(util - 0.8, 0) * 60)
        df = pd.DataFrame({"ts": t, "used": np.round(util * limit, 2), "utilisation": util, "upstream_429": c429,
                           "throttled": throttled, "in_cooldown": cooldown,
                           "wait_seconds": np.round(throttled * rng.uniform(0.2, 2.0, t.size), 3),
                           "rejected": rng.poisson(np.maximum(util - 1.0, 0) * 20)})
        df["utilisation"] = df["used"] / limit  # exactly what the writer would store
        df["remaining"] = np.maximum(0.0, limit - df["used"])
        df["limit"] = float(limit)
        df["cooldown_until"] = np.where(cooldown, t + 30.0, np.nan)
        df["upstream"], df["limiter_key"], df["source"] = upstream, key, source
        old = df[df.ts < raw_start]
        if len(old):
            g = old.groupby((old.ts // HOUR) * HOUR)
            h = pd.DataFrame({"samples": g.size(), "used_sum": g.used.sum(), "used_max": g.used.max(),
                              "limit_max": g["limit"].max(), "remaining_min": g.remaining.min(),
                              "util_sum": g.utilisation.sum(), "util_max": g.utilisation.max(),
                              "cooldown_samples": g.in_cooldown.sum(), "upstream_429": g.upstream_429.sum(),
                              "throttled": g.throttled.sum(), "wait_seconds": g.wait_seconds.sum(),
                              "rejected": g.rejected.sum()}).reset_index(names="hour")
            h["source"], h["upstream"], h["limiter_key"] = source, upstream, key
            hourly.extend(_frame_rows(h))
        new = df[df.ts >= raw_start].astype({"in_cooldown": bool})
        rows = _frame_rows(new)
        for r in rows:
            if r["cooldown_until"] != r["cooldown_until"]:  # NaN -> NULL
                r["cooldown_until"] = None
        raw.extend(rows)
    out.put(m.HEADROOM_HOURLY, hourly)
    out.put(m.HEADROOM_SAMPLES, raw)


def _cache(out: _Writer, rng: np.random.Generator, start: float, raw_start: float, end: float, u0: int,
           u1: int, source: str) -> None:
    t = np.arange(start, end, 5 * MIN, dtype=np.float64)
    users = _users(t, start, end, u0, u1)
    hourly, raw = [], []
    for family, (ttl, ratio, size) in _FAMILIES.items():
        lookups = rng.poisson(users * 0.4 * _cycle(t))
        hits = rng.binomial(lookups, ratio)
        keys = np.round(users * (size / 1000.0) * (0.5 + 0.5 * np.clip((t - start) / min(ttl * 2, end - start), 0, 1)))
        df = pd.DataFrame({"ts": t, "hits": hits, "misses": lookups - hits, "keys": keys.astype(np.int64),
                           "bytes": (keys * size).astype(np.int64), "evictions": rng.poisson(0.02 * users),
                           "oldest_age_s": np.minimum(t - start, ttl).astype(np.float64)})
        df["family"], df["source"] = family, source
        old = df[df.ts < raw_start]
        if len(old):
            g = old.groupby((old.ts // HOUR) * HOUR)
            h = pd.DataFrame({"samples": g.size(), "hits": g.hits.sum(), "misses": g.misses.sum(),
                              "evictions": g.evictions.sum(), "keys_max": g["keys"].max(),
                              "bytes_max": g["bytes"].max(), "oldest_age_max": g.oldest_age_s.max()}
                             ).reset_index(names="hour")
            h["family"], h["source"] = family, source
            hourly.extend(_frame_rows(h))
        raw.extend(_frame_rows(df[df.ts >= raw_start]))
    out.put(m.CACHE_HOURLY, hourly)
    out.put(m.CACHE_STATS, raw)


def _ai(out: _Writer, rng: np.random.Generator, start: float, raw_start: float, end: float, u0: int,
        u1: int, source: str) -> None:
    hours = np.arange(start, end, HOUR, dtype=np.float64)
    users = _users(hours, start, end, u0, u1)
    frames = []
    for task, (model, per_day, tin, tout, web, cached) in _TASKS.items():
        n = rng.poisson(users * per_day / 24 * _cycle(hours))
        ts = np.repeat(hours, n) + rng.uniform(0, HOUR, int(n.sum()))
        frames.append(_calls(rng, ts, task, model, tin, tout, web, cached))
    # randomFact: one luna call an hour from the prewarm cron.
    frames.append(_calls(rng, hours + 61.0, "randomFact", "gpt-5.6-luna", 300, 120, 0.0, 0.0))
    df = pd.concat(frames, ignore_index=True)
    df = df[df.ts < end].sort_values(["ts", "task"], kind="stable", ignore_index=True)
    df["source"] = source
    old = df[df.ts < raw_start]
    if len(old):
        g = old.groupby([(old.ts // HOUR) * HOUR, "provider", "model", "task"])
        h = pd.DataFrame({"calls": g.size(), "input_tokens": g.input_tokens.sum(),
                          "cached_input_tokens": g.cached_input_tokens.sum(), "output_tokens": g.output_tokens.sum(),
                          "reasoning_tokens": g.reasoning_tokens.sum(), "web_search_calls": g.web_search_calls.sum(),
                          "cache_hits": g.cache_hit.sum(), "latency_ms_sum": g.latency_ms.sum(),
                          "latency_ms_max": g.latency_ms.max(), "cost_usd": g.cost_usd.sum(),
                          "saved_tokens": g.saved_tokens.sum()}).reset_index().rename(columns={"ts": "hour"})
        h["source"] = source
        out.put(m.AI_USAGE_HOURLY, _frame_rows(h))
    out.put(m.AI_USAGE, _frame_rows(df[df.ts >= raw_start]))


def _calls(rng: np.random.Generator, ts: np.ndarray, task: str, model: str, tin: int, tout: int, web: float,
           cached: float) -> pd.DataFrame:
    provider, pin, pout = MODEL_PRICES[model]
    k = ts.size
    hit = rng.random(k) < cached  # served from the AI cache: no call, no cost
    inp = np.where(hit, 0, rng.poisson(tin, k))
    cin = np.where(hit, 0, rng.binomial(inp, 0.3))
    outp = np.where(hit, 0, rng.poisson(tout, k))
    reasoning = np.where(hit, 0, rng.binomial(outp, 0.25))  # counted within output, as OpenAI reports it
    searches = np.where(hit, 0, (rng.random(k) < web).astype(np.int64))
    cost = ((inp - cin) * pin + cin * pin * 0.1 + outp * pout) / 1e6 + searches * WEB_SEARCH_USD
    return pd.DataFrame({
        "ts": ts, "provider": provider, "model": model, "task": task, "input_tokens": inp,
        "cached_input_tokens": cin, "output_tokens": outp, "reasoning_tokens": reasoning,
        "web_search_calls": searches, "latency_ms": np.where(hit, rng.uniform(2, 20, k), rng.gamma(4, 900, k)).round(1),
        "cache_hit": hit, "cost_usd": np.round(cost, 8),
        "saved_tokens": np.where(hit, rng.poisson(tin + tout, k), 0), "price_version": PRICE_VERSION})


def _gauges(out: _Writer, rng: np.random.Generator, start: float, end: float, u0: int, u1: int,
            source: str) -> None:
    """Hourly user counts and app-DB table sizes (gauges are thinned to hourly anyway)."""
    t = np.arange(start, end, HOUR, dtype=np.float64)
    total = _users(t, start, end, u0, u1).astype(np.int64)
    lastfm = np.minimum(total, np.round(total * 0.7 + rng.normal(0, 0.5, t.size))).astype(np.int64)
    active = np.clip(np.round(total * 0.1 * _cycle(t) * rng.uniform(0.8, 1.2, t.size)), 0, total).astype(np.int64)
    out.put(m.USER_COUNTS, _frame_rows(pd.DataFrame({"ts": t, "source": source, "total": total,
                                                    "with_lastfm": lastfm, "active": active})))
    rows = {name: total * per_user for name, per_user in _TABLES.items()}
    rows["searches"] = np.minimum(np.cumsum(total * 25 / 24), total * 25 * 90)  # 90-day retention caps it
    rows["recent_searches"] = np.minimum(np.cumsum(total * 8 / 24), total * 8 * 30)
    rows["api_usage_log"] = np.minimum(np.cumsum(total * 40 / 24), total * 40 * 30)
    stats = []
    all_rows = np.zeros(t.size)
    all_bytes = np.zeros(t.size)
    for name, estimate in rows.items():
        n = np.round(estimate).astype(np.int64)
        size = n * _ROW_BYTES[name] * 1.3  # index overhead
        all_rows += n
        all_bytes += size
        stats.append(pd.DataFrame({"ts": t, "source": source, "table_name": name, "rows": n,
                                   "bytes": size.astype(np.int64)}))
    stats.append(pd.DataFrame({"ts": t, "source": source, "table_name": "*", "rows": all_rows.astype(np.int64),
                               "bytes": (all_bytes + 512 * 1024).astype(np.int64)}))
    out.put(m.DB_STATS, _frame_rows(pd.concat(stats, ignore_index=True)))


def _jobs(out: _Writer, rng: np.random.Generator, start: float, raw_start: float, end: float, u0: int,
          u1: int, source: str) -> None:
    rows: list[dict[str, Any]] = []
    # prewarm every 5 minutes: ~0.3 s per Last.fm user, so it nears its 30 s deadline at ~100 users.
    slots = np.arange(start, end - 5 * MIN, 5 * MIN, dtype=np.float64)
    users = _users(slots, start, end, u0, u1)
    lastfm = np.round(users * 0.7)
    duration = (1.0 + 0.3 * lastfm) * rng.lognormal(0.0, 0.12, slots.size)
    lateness = rng.gamma(1.5, 0.4, slots.size)
    roll = rng.random(slots.size)
    for i, at in enumerate(slots):
        outcome, error, d = "ok", None, float(duration[i])
        if d > PREWARM_DEADLINE_S:
            outcome, error, d = "timed_out", f"deadline {PREWARM_DEADLINE_S:.0f}s exceeded", PREWARM_DEADLINE_S
        elif roll[i] < 0.003:
            outcome, error = "failed", "lastfm /2.0/?method=user.getrecenttracks: TransientError 503"
        elif roll[i] > 0.998:
            outcome, error, d = "skipped", "previous run still holds the lease", 0.0
        report = None
        if at >= raw_start:
            fetched = int(lastfm[i]) if outcome == "ok" else int(lastfm[i] * min(1.0, PREWARM_DEADLINE_S / duration[i]))
            report = json.dumps({"users": int(users[i]), "lastfmUsers": int(lastfm[i]), "fetched": fetched,
                                 "skipped": int(lastfm[i]) - fetched, "lastfmCalls": fetched}, sort_keys=True)
        st = float(at + lateness[i])
        rows.append({"job": "prewarm", "scheduled_at": float(at), "source": source, "started_at": st,
                     "finished_at": st + d, "duration_s": round(d, 3), "lateness_s": float(lateness[i]),
                     "outcome": outcome, "error": error, "report": report, "host": "demo"})
    for at in np.arange(start, end - HOUR, HOUR, dtype=np.float64):
        n = _users(np.array([at]), start, end, u0, u1)[0]
        d = float(0.2 + 0.01 * n + rng.gamma(2, 0.1))
        report = json.dumps({"sessionsDeleted": int(rng.poisson(n * 0.05)), "searchesDeleted": int(rng.poisson(n)),
                             "recentSearchesDeleted": int(rng.poisson(n * 0.3)),
                             "usageLogDeleted": int(rng.poisson(n * 1.6))}, sort_keys=True) if at >= raw_start else None
        rows.append({"job": "cleanup", "scheduled_at": float(at), "source": source, "started_at": float(at) + 0.1,
                     "finished_at": float(at) + 0.1 + d, "duration_s": round(d, 3), "lateness_s": 0.1,
                     "outcome": "ok", "error": None, "report": report, "host": "demo"})
    out.put(m.JOB_RUNS, rows)


def _alerts(out: _Writer, end: float, source: str) -> None:
    rows = [
        {"source": source, "rule": "upstream_429", "subject": "spotify", "severity": "critical", "state": "resolved",
         "started_at": end - 4 * DAY, "resolved_at": end - 4 * DAY + 40 * MIN, "value": 12.0, "threshold": 0.0,
         "message": "spotify answered 429 (12 in 5 min); cooldown honoured by every process", "delivered": True},
        {"source": source, "rule": "headroom_utilisation", "subject": "lastfm", "severity": "warning",
         "state": "resolved", "started_at": end - 9 * DAY, "resolved_at": end - 9 * DAY + 2 * HOUR, "value": 0.93,
         "threshold": 0.8, "message": "lastfm limiter above 80% for 15 min", "delivered": True},
        {"source": source, "rule": "cron_timeout", "subject": "prewarm", "severity": "critical", "state": "firing",
         "started_at": end - 6 * HOUR, "resolved_at": None, "value": 30.0, "threshold": 30.0,
         "message": "prewarm hit its 30 s deadline in 3 of the last 12 runs", "delivered": True},
    ]
    out.put(m.ALERT_EVENTS, rows)
