"""One ``wrangler tail`` event -> the metric records it stands for.

Every event becomes a `WorkerEvent` (event type, outcome as reported, cron, wall and
CPU milliseconds, exception count). A scheduled event also becomes a `JobRun` of job
``worker-cron:<script>:<cron>``. Its duration is ``wallTime``, else the run's own
``[CRON] ... Total processing time`` line, else ``cronDurationMs`` from its
``[METRICS]`` line. The log lines add per-upstream `HeadroomSample` rows (429s,
cooldowns, rate-limit warnings), and ``[METRICS]``/``[DB_METRICS]``/``[CACHE_METRICS]``
payloads add `UserCounts`, `TableStats` and `CacheStats`.

Outcomes are an open set (``responseStreamDisconnected`` shows up in real logs), so
they are stored as reported; unknown fields are ignored but counted, so a summary can
say what the Worker sends that nothing stores yet. A field with a bad value (a
negative count, text where a number belongs) drops that one record, with a note.
"""

from __future__ import annotations

import hashlib
import marshal
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Union

from scaling.clock import Clock
from scaling.ingest.log_lines import (
    CooldownWait, CronTotal, DbSize, LocalLimit, Payload, RateLimitWarning, RetriesExhausted, Upstream429,
    join_message, parse_message,
)
from scaling.metrics.records import CacheStats, HeadroomSample, JobRun, TableStats, UserCounts, WorkerEvent

__all__ = ["CRON_JOB", "MappedEvent", "NotATailEvent", "Sample", "TailMapper", "event_key", "event_type"]

CRON_JOB = "worker-cron"
#: The Worker's own limiter windows, used for a 429 line when no warning line has named the limit.
WORKER_LIMITS: Mapping[str, float] = {"spotify": 150.0}
_FALLBACK_LIMIT = 150.0
_MAX_TEXT = 200
#: Top-level fields of a tail event that something here reads or knowingly ignores.
KNOWN_FIELDS = frozenset({
    "outcome", "scriptName", "entrypoint", "exceptions", "logs", "eventTimestamp", "event", "wallTime", "cpuTime",
    "scriptVersion", "executionModel", "truncated", "diagnosticsChannelEvents", "scriptTags", "durableObjectId",
    "eventType",
})
# Plan-style [DB_METRICS] counts -> app tables (anything else named "<x>Count" is kept in the run report only).
_COUNT_TABLES = {"userCount": "users", "sessionCount": "sessions", "searchCount": "searches",
                 "recentSearchCount": "recent_searches", "apiKeyCount": "api_keys", "apiUsageCount": "api_usage_log",
                 "apiUsageLogCount": "api_usage_log"}

Sample = Union[HeadroomSample, TableStats, CacheStats, UserCounts]


class NotATailEvent(ValueError):
    """A JSON object without any of a tail event's fields (``outcome``, ``event``, ``eventTimestamp``)."""


@dataclass(frozen=True, slots=True)
class MappedEvent:
    """What one tail event contributes to the metrics DB.

    Attributes:
        key: the event's identity for de-duplication (see `event_key`).
        event: the invocation row.
        run: the cron run, for scheduled events.
        samples: headroom, table, cache and user-count rows from its log lines.
        upstream_429: 429 lines seen.
        warnings: rate-limit warning lines seen.
        unknown_fields: top-level fields nothing reads.
        notes: values that were dropped and why.
    """

    key: str
    event: WorkerEvent
    run: JobRun | None = None
    samples: tuple[Sample, ...] = ()
    upstream_429: int = 0
    warnings: int = 0
    unknown_fields: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def event_key(data: Mapping[str, Any]) -> str:
    """A stable identity for an event, the same however the capture was formatted.

    A cron invocation is identified by script, cron and scheduled time, so two
    captures of one run (one with its logs truncated, say) are one event. Any other
    event is identified by its content, pretty-printed or compact alike.
    """
    ev = data.get("event")
    slot = ev.get("scheduledTime") if isinstance(ev, dict) else None
    if isinstance(ev, dict) and isinstance(ev.get("cron"), str) and isinstance(slot, (int, float)):
        identity: Any = ["scheduled", data.get("scriptName"), ev["cron"], ev["scheduledTime"]]
    else:
        identity = data
    # The decoded value's bytes, not the text: layout and escapes drop out. marshal format 2
    # (frozen, and without format 3's refcount-dependent back-references) is ~8x cheaper than
    # json.dumps(sort_keys=True). Key order counts; every capture of one event shares it.
    return hashlib.blake2b(marshal.dumps(identity, 2), digest_size=16).hexdigest()


def event_type(data: Mapping[str, Any]) -> str:
    """``fetch``, ``scheduled``, ``alarm``, ``queue``, ``rpc``, ``email``, ``tail``, ``websocket`` or ``unknown``.

    An alarm's ``event`` has only ``scheduledTime`` (an ISO string); a cron's also has ``cron``.
    """
    declared = data.get("eventType")
    if isinstance(declared, str) and declared.strip():  # Logpush-style captures say it outright
        return _clip(declared.strip())
    ev = data.get("event")
    if not isinstance(ev, dict):
        return "unknown"
    if "cron" in ev:
        return "scheduled"
    if "request" in ev:
        return "fetch"
    if "queue" in ev:
        return "queue"
    if "rpcMethod" in ev:
        return "rpc"
    if "mailFrom" in ev or "rcptTo" in ev:
        return "email"
    if "consumedEvents" in ev:
        return "tail"
    if "webSocketEventType" in ev:
        return "websocket"
    if "scheduledTime" in ev:
        return "alarm"
    return "unknown"


def _clip(text: str) -> str:
    # Lone surrogates (undecodable bytes in the capture) cannot go into a database.
    text = text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT - 1] + "…"
    return text if text.isascii() else text.encode("utf-8", "replace").decode("utf-8")


def _ms(value: Any) -> float:
    """A non-negative finite number of milliseconds, else 0."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    return 0.0


def _epoch(value: Any) -> float | None:
    """Epoch seconds from a tail timestamp: milliseconds as a number, or an ISO-8601 string."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value) / 1000.0
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, float) and math.isfinite(value) and value >= 0 and value.is_integer():
        return int(value)
    return None


class _Limiter:
    """One upstream limiter's state as a log line of the event shows it."""

    __slots__ = ("used", "limit", "n429", "throttled", "wait_s", "rejected", "cooldown_until", "ts")

    def __init__(self, ts: float, used: float | None = None, limit: float | None = None) -> None:
        self.used, self.limit = used, limit
        self.n429 = self.throttled = self.rejected = 0
        self.wait_s = 0.0
        self.cooldown_until: float | None = None
        self.ts = ts


@dataclass
class _Collected:
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
_NOTHING = _Collected()


class TailMapper:
    """Turns tail events into metric records for one source.

    Args:
        source: the ``source`` column of every row (``"worker"`` by default).
        clock: stamps events that carry no timestamp at all.
        limits: the Worker limiters' window sizes per upstream, for 429 lines that name none.
    """

    def __init__(self, *, source: str = "worker", clock: Clock, limits: Mapping[str, float] = WORKER_LIMITS) -> None:
        if not source.strip():
            raise ValueError("source must not be empty")
        self.source = source
        self.clock = clock
        # Limits learnt from warning lines earlier in the stream win over the defaults.
        self._limits = dict(limits)

    def map(self, data: Mapping[str, Any]) -> MappedEvent:
        """The records for one decoded event.

        Raises:
            NotATailEvent: the object has none of a tail event's fields.
        """
        if "outcome" not in data and "event" not in data and "eventTimestamp" not in data:
            raise NotATailEvent("object has no outcome, event or eventTimestamp: not a tail event")
        kind = event_type(data)
        ev = data.get("event")
        ev = ev if isinstance(ev, dict) else {}  # decoded JSON: dict, not the slower Mapping ABC check
        raw_outcome = data.get("outcome")
        outcome = _clip(raw_outcome) if isinstance(raw_outcome, str) and raw_outcome.strip() else "unknown"
        cron = _clip(ev["cron"]) if isinstance(ev.get("cron"), str) else ""
        ts = _epoch(data.get("eventTimestamp"))
        if ts is None and kind in ("scheduled", "alarm"):
            ts = _epoch(ev.get("scheduledTime"))
        if ts is None:
            ts = self.clock.now()
        exceptions = data.get("exceptions")
        exceptions = exceptions if isinstance(exceptions, list) else []
        wall_ms, cpu_ms = _ms(data.get("wallTime")), _ms(data.get("cpuTime"))
        worker_event = WorkerEvent(event_type=kind, outcome=outcome, cron=cron, wall_ms=wall_ms, cpu_ms=cpu_ms,
                                   exceptions=len(exceptions), ts=ts, source=self.source)
        found = self._read_logs(data.get("logs"), ts)
        samples = found.samples + [self._headroom(up, lim) for up, states in found.limiters.items() for lim in states]
        run = None
        if kind == "scheduled":
            run = self._run(data, ev, outcome, cron, ts, wall_ms, cpu_ms, exceptions, found)
            if not wall_ms and run.duration_s:
                # Without wallTime the run's own measurement is the best wall time there is.
                worker_event = replace(worker_event, wall_ms=run.duration_s * 1000.0)
        extra = data.keys() - KNOWN_FIELDS
        unknown = tuple(k for k in data if k in extra) if extra else ()
        return MappedEvent(event_key(data), worker_event, run, tuple(samples), found.n429, found.warnings,
                           unknown, tuple(found.notes))

    # --- cron runs ---------------------------------------------------------------------

    def _run(self, data: Mapping[str, Any], ev: Mapping[str, Any], outcome: str, cron: str, ts: float,
             wall_ms: float, cpu_ms: float, exceptions: list[Any], found: _Collected) -> JobRun:
        scheduled = _epoch(ev.get("scheduledTime"))
        scheduled = ts if scheduled is None else scheduled
        if wall_ms > 0:
            duration, measured_by = wall_ms / 1000.0, "wallTime"
        elif found.cron_total_s is not None:
            duration, measured_by = found.cron_total_s, "[CRON] Total processing time"
        elif found.metrics_duration_s is not None:
            duration, measured_by = found.metrics_duration_s, "[METRICS] cronDurationMs"
        else:
            duration, measured_by = None, None
        error = None
        if outcome != "ok":
            first = exceptions[0] if exceptions and isinstance(exceptions[0], Mapping) else {}
            name, message = first.get("name"), first.get("message")
            error = _clip(f"{name or 'Error'}: {message}") if message or name else f"outcome {outcome}"
        script = data.get("scriptName")
        job = f"{CRON_JOB}:{_clip(script)}:{cron}" if isinstance(script, str) and script else f"{CRON_JOB}:{cron}"
        report: dict[str, Any] = {"outcome": outcome, "cron": cron, "wallMs": wall_ms, "cpuMs": cpu_ms,
                                  "exceptions": len(exceptions), "durationFrom": measured_by}
        report.update(found.payloads)
        return JobRun(job=job, scheduled_at=scheduled, started_at=ts, outcome="ok" if outcome == "ok" else "failed",
                      duration_s=duration, error=error, report=report, source=self.source)

    # --- log lines ---------------------------------------------------------------------

    def _read_logs(self, logs: Any, ts: float) -> _Collected:
        if not logs or not isinstance(logs, list):
            return _NOTHING
        found = _Collected()
        for entry in logs:
            if not isinstance(entry, dict):
                continue
            fact = parse_message(join_message(entry.get("message")))
            if fact is None:
                continue
            at = _epoch(entry.get("timestamp")) or ts
            if isinstance(fact, CronTotal):
                found.cron_total_s = fact.seconds
            elif isinstance(fact, DbSize):
                self._table(found, "*", fact.rows, int(fact.megabytes * 1024 * 1024), at)
            elif isinstance(fact, Payload):
                self._payload(found, fact, at)
            else:
                self._limiter_line(found, fact, at)
        for name, (rows, nbytes, at) in found.tables.items():
            self._keep(found, TableStats, _clip(name), rows=rows, bytes=nbytes, ts=at)
        return found

    def _limiter_line(self, found: _Collected, fact: Any, at: float) -> None:
        if isinstance(fact, Upstream429):
            found.n429 += 1
            # The Worker's recordRateLimitResponse resets its count as it starts the cooldown.
            state = found.snapshot(fact.upstream, at, 0.0)
            state.n429 += 1
            state.cooldown_until = at + fact.cooldown_s
        elif isinstance(fact, (RateLimitWarning, LocalLimit)):
            state = found.snapshot(fact.upstream, at, fact.used, fact.limit)
            if fact.limit > 0:
                self._limits[fact.upstream] = fact.limit
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
        limit = lim.limit if lim.limit and lim.limit > 0 else self._limits.get(upstream, _FALLBACK_LIMIT)
        return HeadroomSample(upstream=upstream, used=lim.used or 0.0, limit=limit,
                              in_cooldown=lim.cooldown_until is not None and lim.cooldown_until > lim.ts,
                              cooldown_until=lim.cooldown_until, upstream_429=lim.n429, throttled=lim.throttled,
                              wait_seconds=lim.wait_s, rejected=lim.rejected, ts=lim.ts, source=self.source)

    # --- structured payloads --------------------------------------------------------------

    def _keep(self, found: _Collected, kind: type[Sample], *args: Any, **kwargs: Any) -> None:
        """Add a record built from payload values, or a note when a value is invalid."""
        try:
            kwargs["source"] = self.source
            found.samples.append(kind(*args, **kwargs))
        except (ValueError, TypeError) as exc:
            found.notes.append(str(exc))

    def _payload(self, found: _Collected, fact: Payload, at: float) -> None:
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

    def _metrics(self, found: _Collected, data: Mapping[str, Any], at: float) -> None:
        duration = data.get("cronDurationMs")
        if _ms(duration) > 0:
            found.metrics_duration_s = _ms(duration) / 1000.0
        if "userCount" not in data:
            return
        total = _count(data.get("userCount"))
        if total is None:
            found.notes.append(f"[METRICS] userCount must be a non-negative integer, got {data.get('userCount')!r}")
            return
        # The cron polls every public user with a Last.fm name and has no active filter (upstream §4),
        # so a count the line leaves out equals the users it polled.
        with_lastfm = _count(data.get("lastfmUserCount"))
        active = _count(data.get("activeUserCount"))
        self._keep(found, UserCounts, total=total, with_lastfm=total if with_lastfm is None else with_lastfm,
                   active=total if active is None else active, ts=at)

    def _db_metrics(self, found: _Collected, data: Mapping[str, Any], at: float) -> None:
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

    def _table(self, found: _Collected, name: str, rows: Any, nbytes: Any, at: float) -> None:
        n = _count(rows)
        if n is None:
            found.notes.append(f"[DB_METRICS] rows of {name!r} must be a non-negative integer, got {rows!r}")
            return
        # One row per table per event: the [CRON] size line and [DB_METRICS] both give the total.
        earlier = found.tables.get(name)
        size = _count(nbytes)
        if size is None and earlier is not None:
            size = earlier[1]
        found.tables[name] = (n, size, at)

    def _cache_metrics(self, found: _Collected, data: Mapping[str, Any], at: float) -> None:
        families = data.get("families")
        if not isinstance(families, Mapping):
            nested = {k: v for k, v in data.items() if isinstance(v, Mapping)}
            families = nested or {"*": data}  # a flat {hits, misses, ...} is the whole cache
        for family, info in families.items():
            if not isinstance(info, Mapping):
                continue
            values = {name: _count(info.get(name)) for name in ("hits", "misses", "keys", "bytes", "evictions")}
            if all(v is None for v in values.values()):
                found.notes.append(f"[CACHE_METRICS] family {family!r} has no hits, misses, keys, bytes or evictions")
                continue
            self._keep(found, CacheStats, _clip(str(family)), **{k: n or 0 for k, n in values.items()}, ts=at)

    def _warning_payload(self, found: _Collected, data: Mapping[str, Any], at: float) -> None:
        service = data.get("service") or data.get("upstream")
        if not isinstance(service, str) or not service.strip():
            found.notes.append("[RATE_LIMIT_WARNING] names no service")
            return
        found.warnings += 1
        upstream = _clip(service.strip().lower())
        lim = found.snapshot(upstream, at, None)
        limit = data.get("limit")
        if isinstance(limit, (int, float)) and not isinstance(limit, bool) and math.isfinite(limit) and limit > 0:
            lim.limit = float(limit)
        used = data.get("used")
        if isinstance(used, (int, float)) and not isinstance(used, bool) and math.isfinite(used) and used >= 0:
            lim.used = float(used)
        elif isinstance(data.get("utilisation"), (int, float)):
            base = lim.limit or self._limits.get(upstream, _FALLBACK_LIMIT)
            lim.limit, lim.used = base, max(0.0, float(data["utilisation"])) * base
        n429 = _count(data.get("upstream429")) or 0
        lim.n429 += n429
        found.n429 += n429
        lim.throttled += _count(data.get("throttled")) or 0
        until = _epoch(data.get("cooldownUntil"))
        if until is not None:
            lim.cooldown_until = max(lim.cooldown_until or 0.0, until)
