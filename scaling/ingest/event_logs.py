"""What one tail event's log lines add up to: limiter states, cron timing, structured payloads.

`LogReader.read` walks an event's ``logs`` once, turning each line's fact
(`scaling.ingest.log_lines`) into records: one `HeadroomSample` per limiter snapshot
line (a rate-limit warning, "limit reached", a 429), with cooldown waits and give-ups
added to the latest one; `UserCounts`, `TableStats` and `CacheStats` from
``[METRICS]``, ``[DB_METRICS]`` and ``[CACHE_METRICS]``; and the cron's own timing.
A payload value that fails a record's validation drops that record with a note.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scaling.ingest.log_lines import (
    CooldownWait,
    CronTotal,
    DbSize,
    LocalLimit,
    Payload,
    RateLimitWarning,
    RetriesExhausted,
    Upstream429,
    join_message,
    parse_message,
)
from scaling.metrics.records import CacheStats, HeadroomSample, TableStats, UserCounts

__all__ = ["NOTHING", "LogFindings", "LogReader", "Sample", "clip", "count_of", "epoch_s", "millis"]

#: Used for a 429 line's limit when no line has named one: the Worker's Spotify limiter window.
FALLBACK_LIMIT = 150.0
_MAX_TEXT = 200
# Plan-style [DB_METRICS] counts -> app tables (anything else named "<x>Count" is kept in the run report only).
_COUNT_TABLES = {"userCount": "users", "sessionCount": "sessions", "searchCount": "searches",
                 "recentSearchCount": "recent_searches", "apiKeyCount": "api_keys", "apiUsageCount": "api_usage_log",
                 "apiUsageLogCount": "api_usage_log"}

Sample = HeadroomSample | TableStats | CacheStats | UserCounts


def clip(text: str) -> str:
    """Text fit for a database column: at most 200 characters, no lone surrogates."""
    # Lone surrogates (undecodable bytes in the capture) cannot go into a database.
    text = text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT - 1] + "…"
    return text if text.isascii() else text.encode("utf-8", "replace").decode("utf-8")


def millis(value: Any) -> float:
    """A non-negative finite number of milliseconds, else 0."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    return 0.0


def epoch_s(value: Any) -> float | None:
    """Epoch seconds from a tail timestamp: milliseconds as a number, or an ISO-8601 string."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value) / 1000.0
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def count_of(value: Any) -> int | None:
    """A non-negative integer (an integral float counts), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, float) and math.isfinite(value) and value >= 0 and value.is_integer():
        return int(value)
    return None


class _Limiter:
    """One upstream limiter's state as a log line of the event shows it."""

    __slots__ = ("cooldown_until", "limit", "n429", "rejected", "throttled", "ts", "used", "wait_s")

    def __init__(self, ts: float, used: float | None = None, limit: float | None = None) -> None:
        self.used, self.limit = used, limit
        self.n429 = self.throttled = self.rejected = 0
        self.wait_s = 0.0
        self.cooldown_until: float | None = None
        self.ts = ts


@dataclass
class LogFindings:
    """The records and facts of one event's log lines."""

    # Per upstream, one state per snapshot line (warning, limit reached, 429), oldest first;
    # waits and give-ups are added to the latest state.
    limiters: dict[str, list[_Limiter]] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    tables: dict[str, tuple[Any, Any, float]] = field(default_factory=dict)
    payloads: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    cron_total_s: float | None = None
    metrics_duration_s: float | None = None
    n429: int = 0
    warnings: int = 0

    def snapshot(self, upstream: str, at: float, used: float | None, limit: float | None = None) -> _Limiter:
        state = _Limiter(at, used, limit)
        self.limiters.setdefault(upstream, []).append(state)
        return state

    def latest(self, upstream: str, at: float) -> _Limiter:
        states = self.limiters.get(upstream)
        if states:
            return states[-1]
        return self.snapshot(upstream, at, None)


#: What an event without log lines contributes (shared, never mutated).
NOTHING = LogFindings()


class LogReader:
    """Reads events' log lines into records for one source.

    Args:
        source: the ``source`` of every record.
        limits: the Worker limiters' window per upstream; warning lines update it, so a
            limit learnt earlier in the stream serves later 429 lines that name none.
    """

    def __init__(self, source: str, limits: MutableMapping[str, float]) -> None:
        self.source = source
        self.limits = limits

    def read(self, logs: Any, ts: float) -> LogFindings:
        """The findings of one event's ``logs`` (its own ``ts`` stands in for lines without a timestamp)."""
        if not logs or not isinstance(logs, list):
            return NOTHING
        found = LogFindings()
        for entry in logs:
            if not isinstance(entry, dict):
                continue
            fact = parse_message(join_message(entry.get("message")))
            if fact is None:
                continue
            at = epoch_s(entry.get("timestamp")) or ts
            if isinstance(fact, CronTotal):
                found.cron_total_s = fact.seconds
            elif isinstance(fact, DbSize):
                self._table(found, "*", fact.rows, int(fact.megabytes * 1024 * 1024), at)
            elif isinstance(fact, Payload):
                self._payload(found, fact, at)
            else:
                self._limiter_line(found, fact, at)
        for name, (rows, nbytes, at) in found.tables.items():
            self._keep(found, TableStats, clip(name), rows=rows, bytes=nbytes, ts=at)
        found.samples.extend(self._headroom(up, lim) for up, states in found.limiters.items() for lim in states)
        return found

    def _limiter_line(self, found: LogFindings, fact: Any, at: float) -> None:
        if isinstance(fact, Upstream429):
            found.n429 += 1
            # The Worker's recordRateLimitResponse resets its count as it starts the cooldown.
            state = found.snapshot(fact.upstream, at, 0.0)
            state.n429 += 1
            state.cooldown_until = at + fact.cooldown_s
        elif isinstance(fact, (RateLimitWarning, LocalLimit)):
            state = found.snapshot(fact.upstream, at, fact.used, fact.limit)
            if fact.limit > 0:
                self.limits[fact.upstream] = fact.limit
            if isinstance(fact, RateLimitWarning):
                found.warnings += 1
            else:
                state.throttled += 1
        elif isinstance(fact, CooldownWait):
            state = found.latest(fact.upstream, at)
            state.throttled += 1
            state.wait_s += fact.wait_s
            state.used = 0.0 if state.used is None else state.used
            state.cooldown_until = max(state.cooldown_until or 0.0, at + fact.wait_s)
        elif isinstance(fact, RetriesExhausted):
            found.latest(fact.upstream, at).rejected += 1

    def _headroom(self, upstream: str, lim: _Limiter) -> HeadroomSample:
        limit = lim.limit if lim.limit and lim.limit > 0 else self.limits.get(upstream, FALLBACK_LIMIT)
        return HeadroomSample(upstream=upstream, used=lim.used or 0.0, limit=limit,
                              in_cooldown=lim.cooldown_until is not None and lim.cooldown_until > lim.ts,
                              cooldown_until=lim.cooldown_until, upstream_429=lim.n429, throttled=lim.throttled,
                              wait_seconds=lim.wait_s, rejected=lim.rejected, ts=lim.ts, source=self.source)

    # --- structured payloads --------------------------------------------------------------

    def _keep(self, found: LogFindings, kind: type[Sample], *args: Any, **kwargs: Any) -> None:
        """Add a record built from payload values, or a note when a value is invalid."""
        try:
            kwargs["source"] = self.source
            found.samples.append(kind(*args, **kwargs))
        except (ValueError, TypeError) as exc:
            found.notes.append(str(exc))

    def _payload(self, found: LogFindings, fact: Payload, at: float) -> None:
        data = fact.data
        found.payloads.setdefault(fact.kind, data)
        if fact.kind == "METRICS":
            self._metrics(found, data, at)
        elif fact.kind == "DB_METRICS":
            self._db_metrics(found, data, at)
        elif fact.kind == "CACHE_METRICS":
            self._cache_metrics(found, data, at)
        else:
            self._warning_payload(found, data, at)

    def _metrics(self, found: LogFindings, data: Mapping[str, Any], at: float) -> None:
        duration = data.get("cronDurationMs")
        if millis(duration) > 0:
            found.metrics_duration_s = millis(duration) / 1000.0
        if "userCount" not in data:
            return
        total = count_of(data.get("userCount"))
        if total is None:
            found.notes.append(f"[METRICS] userCount must be a non-negative integer, got {data.get('userCount')!r}")
            return
        # The cron polls every public user with a Last.fm name and has no active filter (upstream §4),
        # so a count the line leaves out equals the users it polled.
        with_lastfm = count_of(data.get("lastfmUserCount"))
        active = count_of(data.get("activeUserCount"))
        self._keep(found, UserCounts, total=total, with_lastfm=total if with_lastfm is None else with_lastfm,
                   active=total if active is None else active, ts=at)

    def _db_metrics(self, found: LogFindings, data: Mapping[str, Any], at: float) -> None:
        tables = data.get("tables")
        if isinstance(tables, Mapping):  # Headroom's own format: {"tables": {name: {rows, bytes}}}
            for name, info in tables.items():
                if isinstance(info, Mapping):
                    self._table(found, str(name), info.get("rows"), info.get("bytes"), at)
        for key, table in _COUNT_TABLES.items():
            if key in data:
                self._table(found, table, data[key], None, at)
        if "totalRows" in data:
            self._table(found, "*", data["totalRows"], data.get("totalBytes"), at)

    def _table(self, found: LogFindings, name: str, rows: Any, nbytes: Any, at: float) -> None:
        n = count_of(rows)
        if n is None:
            found.notes.append(f"[DB_METRICS] rows of {name!r} must be a non-negative integer, got {rows!r}")
            return
        # One row per table per event: the [CRON] size line and [DB_METRICS] both give the total.
        earlier = found.tables.get(name)
        size = count_of(nbytes)
        if size is None and earlier is not None:
            size = earlier[1]
        found.tables[name] = (n, size, at)

    def _cache_metrics(self, found: LogFindings, data: Mapping[str, Any], at: float) -> None:
        families = data.get("families")
        if not isinstance(families, Mapping):
            nested = {k: v for k, v in data.items() if isinstance(v, Mapping)}
            families = nested or {"*": data}  # a flat {hits, misses, ...} is the whole cache
        for family, info in families.items():
            if not isinstance(info, Mapping):
                continue
            values = {name: count_of(info.get(name)) for name in ("hits", "misses", "keys", "bytes", "evictions")}
            if all(v is None for v in values.values()):
                found.notes.append(f"[CACHE_METRICS] family {family!r} has no hits, misses, keys, bytes or evictions")
                continue
            self._keep(found, CacheStats, clip(str(family)), **{k: n or 0 for k, n in values.items()}, ts=at)

    def _warning_payload(self, found: LogFindings, data: Mapping[str, Any], at: float) -> None:
        service = data.get("service") or data.get("upstream")
        if not isinstance(service, str) or not service.strip():
            found.notes.append("[RATE_LIMIT_WARNING] names no service")
            return
        found.warnings += 1
        upstream = clip(service.strip().lower())
        lim = found.snapshot(upstream, at, None)
        limit = data.get("limit")
        if isinstance(limit, (int, float)) and not isinstance(limit, bool) and math.isfinite(limit) and limit > 0:
            lim.limit = float(limit)
        used = data.get("used")
        if isinstance(used, (int, float)) and not isinstance(used, bool) and math.isfinite(used) and used >= 0:
            lim.used = float(used)
        elif isinstance(data.get("utilisation"), (int, float)):
            base = lim.limit or self.limits.get(upstream, FALLBACK_LIMIT)
            lim.limit, lim.used = base, max(0.0, float(data["utilisation"])) * base
        n429 = count_of(data.get("upstream429")) or 0
        lim.n429 += n429
        found.n429 += n429
        lim.throttled += count_of(data.get("throttled")) or 0
        until = epoch_s(data.get("cooldownUntil"))
        if until is not None:
            lim.cooldown_until = max(lim.cooldown_until or 0.0, until)
