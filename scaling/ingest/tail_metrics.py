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
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from scaling.clock import Clock
from scaling.ingest.event_logs import LogFindings, LogReader, Sample, clip, epoch_s, millis
from scaling.metrics.records import JobRun, WorkerEvent

__all__ = ["CRON_JOB", "MappedEvent", "NotATailEvent", "Sample", "TailMapper", "event_key", "event_type"]

CRON_JOB = "worker-cron"
#: The Worker's own limiter windows, used for a 429 line when no warning line has named the limit.
WORKER_LIMITS: Mapping[str, float] = {"spotify": 150.0}
#: Top-level fields of a tail event that something here reads or knowingly ignores.
KNOWN_FIELDS = frozenset({
    "outcome", "scriptName", "entrypoint", "exceptions", "logs", "eventTimestamp", "event", "wallTime", "cpuTime",
    "scriptVersion", "executionModel", "truncated", "diagnosticsChannelEvents", "scriptTags", "durableObjectId",
    "eventType",
})


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
        return clip(declared.strip())
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
        self._logs = LogReader(source, dict(limits))

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
        outcome = clip(raw_outcome) if isinstance(raw_outcome, str) and raw_outcome.strip() else "unknown"
        cron = clip(ev["cron"]) if isinstance(ev.get("cron"), str) else ""
        ts = epoch_s(data.get("eventTimestamp"))
        if ts is None and kind in ("scheduled", "alarm"):
            ts = epoch_s(ev.get("scheduledTime"))
        if ts is None:
            ts = self.clock.now()
        exceptions = data.get("exceptions")
        exceptions = exceptions if isinstance(exceptions, list) else []
        wall_ms, cpu_ms = millis(data.get("wallTime")), millis(data.get("cpuTime"))
        worker_event = WorkerEvent(event_type=kind, outcome=outcome, cron=cron, wall_ms=wall_ms, cpu_ms=cpu_ms,
                                   exceptions=len(exceptions), ts=ts, source=self.source)
        found = self._logs.read(data.get("logs"), ts)
        run = None
        if kind == "scheduled":
            run = self._run(data, ev, outcome, cron, ts, wall_ms, cpu_ms, exceptions, found)
            if not wall_ms and run.duration_s:
                # Without wallTime the run's own measurement is the best wall time there is.
                worker_event = replace(worker_event, wall_ms=run.duration_s * 1000.0)
        extra = data.keys() - KNOWN_FIELDS
        unknown = tuple(k for k in data if k in extra) if extra else ()
        return MappedEvent(event_key(data), worker_event, run, tuple(found.samples), found.n429, found.warnings,
                           unknown, tuple(found.notes))

    # --- cron runs ---------------------------------------------------------------------

    def _run(self, data: Mapping[str, Any], ev: Mapping[str, Any], outcome: str, cron: str, ts: float,
             wall_ms: float, cpu_ms: float, exceptions: list[Any], found: LogFindings) -> JobRun:
        scheduled = epoch_s(ev.get("scheduledTime"))
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
            error = clip(f"{name or 'Error'}: {message}") if message or name else f"outcome {outcome}"
        script = data.get("scriptName")
        job = f"{CRON_JOB}:{clip(script)}:{cron}" if isinstance(script, str) and script else f"{CRON_JOB}:{cron}"
        report: dict[str, Any] = {"outcome": outcome, "cron": cron, "wallMs": wall_ms, "cpuMs": cpu_ms,
                                  "exceptions": len(exceptions), "durationFrom": measured_by}
        report.update(found.payloads)
        return JobRun(job=job, scheduled_at=scheduled, started_at=ts, outcome="ok" if outcome == "ok" else "failed",
                      duration_s=duration, error=error, report=report, source=self.source)
