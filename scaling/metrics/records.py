"""What a collector hands the metrics writer: one frozen dataclass per kind of row.

``ts`` left as None is stamped by the writer's clock. Counters (429s, throttled,
hits, misses, ...) are the change since the previous sample, never running totals.
Each record validates itself on construction, so a bad value fails at the call
site with one line naming the field, not later inside a batch insert.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = [
    "AiUsage", "AlertEvent", "CacheStats", "CapacityRecord", "HeadroomSample", "JobRun", "MetricRecord", "TableStats",
    "UserCounts", "WorkerEvent",
]

DEFAULT_SOURCE = "collectors"
#: Outcomes a finished job run can have.
FINISHED_OUTCOMES: tuple[str, ...] = ("ok", "failed", "timed_out", "skipped")


# Text fields that name something: empty text there is a bug, not a value.
_NAMES = frozenset({"upstream", "job", "family", "provider", "model", "task", "table_name", "rule",
                    "severity", "source", "event_type", "outcome"})


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def field_names(kind: type) -> tuple[str, ...]:
    """A record type's field names, worked out once per type (rows are built on the hot path)."""
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = tuple(f.name for f in fields(kind))
    return names


def _check(record: object) -> None:
    """Names must be non-empty text; numbers finite and not negative (except where noted)."""
    kind = type(record).__name__
    for name in field_names(type(record)):
        value = getattr(record, name)
        if value is None or isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            if not math.isfinite(value):
                raise ValueError(f"{kind}.{name} must be a finite number, got {value!r}")
            if value < 0:
                raise ValueError(f"{kind}.{name} must not be negative, got {value!r}")
        elif isinstance(value, str) and name in _NAMES and not value.strip():
            raise ValueError(f"{kind}.{name} must not be empty")


def report_json(report: Mapping[str, Any] | str | None) -> str | None:
    """A job report as compact JSON text (a string is checked to be JSON already).

    Raises:
        ValueError: the report is not JSON-serialisable or contains NaN/infinity.
    """
    if report is None:
        return None
    if isinstance(report, str):
        try:
            json.loads(report)
        except json.JSONDecodeError as exc:
            raise ValueError(f"job report is not valid JSON: {exc.msg} at position {exc.pos}") from None
        return report
    try:
        return json.dumps(report, separators=(",", ":"), sort_keys=True, allow_nan=False, default=str)
    except ValueError as exc:
        raise ValueError(f"job report cannot be stored as JSON: {exc}") from None


@dataclass(frozen=True, slots=True)
class HeadroomSample:
    """A limiter's state at ``ts``: how much of its limit is used, and what went wrong since the last sample."""

    upstream: str
    used: float
    limit: float
    remaining: float | None = None  # default: limit - used, floored at 0
    limiter_key: str = ""
    in_cooldown: bool = False
    cooldown_until: float | None = None
    upstream_429: int = 0
    throttled: int = 0
    wait_seconds: float = 0.0
    rejected: int = 0
    ts: float | None = None
    source: str = DEFAULT_SOURCE

    def __post_init__(self) -> None:
        _check(self)
        if self.limit <= 0:
            raise ValueError(f"HeadroomSample.limit must be positive, got {self.limit!r}")

    @property
    def utilisation(self) -> float:
        """Used share of the limit (can exceed 1 when a limiter overshoots)."""
        return self.used / self.limit


@dataclass(frozen=True, slots=True)
class JobRun:
    """A complete job run, for runs not claimed through `MetricsWriter.claim_run` (e.g. ingested)."""

    job: str
    scheduled_at: float
    started_at: float
    outcome: str
    duration_s: float | None = None
    error: str | None = None
    report: Mapping[str, Any] | str | None = None
    host: str | None = None
    source: str = DEFAULT_SOURCE

    def __post_init__(self) -> None:
        _check(self)
        if self.outcome not in FINISHED_OUTCOMES:
            raise ValueError(f"JobRun.outcome must be one of {', '.join(FINISHED_OUTCOMES)}; got {self.outcome!r}")


@dataclass(frozen=True, slots=True)
class TableStats:
    """Rows (and bytes, when the backend can tell) of one app-DB table; ``table_name='*'`` is the whole DB."""

    table_name: str
    rows: int
    bytes: int | None = None
    ts: float | None = None
    source: str = DEFAULT_SOURCE

    def __post_init__(self) -> None:
        _check(self)


@dataclass(frozen=True, slots=True)
class CacheStats:
    """One cache key family: hits, misses and evictions since the last sample; keys, bytes, oldest age now."""

    family: str
    hits: int = 0
    misses: int = 0
    keys: int = 0
    bytes: int = 0
    evictions: int = 0
    oldest_age_s: float | None = None
    ts: float | None = None
    source: str = DEFAULT_SOURCE

    def __post_init__(self) -> None:
        _check(self)


@dataclass(frozen=True, slots=True)
class AiUsage:
    """One AI call (or cache hit that avoided one), priced by `scaling.costs`."""

    provider: str
    model: str
    task: str
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    web_search_calls: int = 0
    latency_ms: float = 0.0
    cache_hit: bool = False
    cost_usd: float = 0.0
    saved_tokens: int = 0
    price_version: str | None = None
    ts: float | None = None
    source: str = DEFAULT_SOURCE

    def __post_init__(self) -> None:
        _check(self)


@dataclass(frozen=True, slots=True)
class UserCounts:
    """How many users the app has, how many linked Last.fm, how many were active recently."""

    total: int
    with_lastfm: int
    active: int
    ts: float | None = None
    source: str = DEFAULT_SOURCE

    def __post_init__(self) -> None:
        _check(self)


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """An alert that started firing: which rule, about what, the value against its threshold."""

    rule: str
    severity: str
    subject: str = ""
    value: float | None = None
    threshold: float | None = None
    message: str = ""
    started_at: float | None = None
    source: str = DEFAULT_SOURCE

    def __post_init__(self) -> None:
        _check(self)


@dataclass(frozen=True, slots=True)
class WorkerEvent:
    """One invocation of the production Worker, as ``wrangler tail`` reports it."""

    event_type: str
    outcome: str
    cron: str = ""
    wall_ms: float = 0.0
    cpu_ms: float = 0.0
    exceptions: int = 0
    ts: float | None = None
    source: str = "worker"

    def __post_init__(self) -> None:
        _check(self)


@dataclass(frozen=True, slots=True)
class CapacityRecord:
    """One capacity search's answer (`scaling.capacity.capacity_results`): how many users a design carries.

    ``first_break_limit`` None means nothing broke up to the search's ceiling. Costs are the
    steady-state monthly AI and platform spend of the run at ``users_carried`` (None if unknown).
    ``provenance`` says where each simulator input came from (data or a default).
    """

    design: str
    time_model: str
    active_share: float
    users_carried: int
    broken_at: int | None = None
    first_break_limit: str | None = None
    first_break_detail: str | None = None
    ai_usd_month: float | None = None
    platform_usd_month: float | None = None
    trial_hours: float = 0.0
    wall_s: float = 0.0
    trials: Mapping[str, str | None] = field(default_factory=dict)
    provenance: Mapping[str, str] = field(default_factory=dict)
    computed_at: float | None = None
    source: str = DEFAULT_SOURCE

    def __post_init__(self) -> None:
        _check(self)

    @property
    def monthly_cost_usd(self) -> float | None:
        """AI plus platform spend a month at ``users_carried``, when both are known."""
        if self.ai_usd_month is None or self.platform_usd_month is None:
            return None
        return self.ai_usd_month + self.platform_usd_month


MetricRecord = HeadroomSample | TableStats | CacheStats | AiUsage | UserCounts | WorkerEvent
