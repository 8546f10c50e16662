"""Structured log lines the plan asks for (SCALING_PLAN.md §2.3), one JSON object each.

    [METRICS] {"timestamp": "...", "userCount": 120, ...}
    [RATE_LIMIT_WARNING] {"service": "spotify", "utilisation": 0.83, ...}
    [DB_METRICS] {"totalRows": 51234, "tables": {...}, ...}
    [CACHE_METRICS] {"families": {"spotify:album": {"hits": ..}}, ...}

Lines go to the ``headroom.metrics`` logger, so any handler (stderr, a file, a log
shipper) gets them; `parse_line` reads them back, e.g. from ``wrangler tail``.
Keys that name credentials are masked and `Secret` values never print.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = ["KINDS", "LOGGER_NAME", "format_line", "log_metrics", "parse_line"]

LOGGER_NAME = "headroom.metrics"
KINDS: tuple[str, ...] = ("METRICS", "RATE_LIMIT_WARNING", "DB_METRICS", "CACHE_METRICS")

_logger = logging.getLogger(LOGGER_NAME)
# "input_tokens" is a count, not a credential: only whole words like api_key or access_token match.
_SECRET_KEY = re.compile(r"(?i)(?:^|[_\-.])(?:api[_\-]?key|secret|client[_\-]?secret|password|passwd|authorization|"
                         r"auth[_\-]?token|access[_\-]?token|refresh[_\-]?token|session[_\-]?key|cookie)(?:$|[_\-.])")
_LINE = re.compile(r"\[(" + "|".join(KINDS) + r")\]\s*(\{.*\})\s*$")


def iso(ts: float) -> str:
    """Epoch seconds as an ISO-8601 UTC string with milliseconds, like JavaScript's toISOString."""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _clean(value: Any, key: str = "") -> Any:
    if key and _SECRET_KEY.search(key):
        return "***"
    if isinstance(value, Mapping):
        return {str(k): _clean(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or Infinity
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)  # Secret prints as '***'; anything else as its text


def format_line(kind: str, payload: Mapping[str, Any]) -> str:
    """``[KIND] {json}`` on one line.

    Raises:
        ValueError: ``kind`` is not one of `KINDS`.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown metrics log kind {kind!r}; expected one of {', '.join(KINDS)}")
    body = json.dumps(_clean(payload), separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    return f"[{kind}] {body}"


def log_metrics(kind: str, payload: Mapping[str, Any], *, level: int = logging.INFO) -> str:
    """Emit one ``[KIND] {json}`` line on the ``headroom.metrics`` logger and return it.

    Args:
        kind: "METRICS", "RATE_LIMIT_WARNING", "DB_METRICS" or "CACHE_METRICS".
        payload: JSON-able values; credential-named keys are masked.
        level: defaults to INFO; rate-limit warnings go out at WARNING.
    """
    line = format_line(kind, payload)
    _logger.log(logging.WARNING if kind == "RATE_LIMIT_WARNING" else level, "%s", line)
    return line


def parse_line(line: str) -> tuple[str, dict[str, Any]] | None:
    """``(kind, payload)`` from a line containing ``[KIND] {json}``; None for any other line."""
    match = _LINE.search(line)
    if match is None:
        return None
    try:
        payload = json.loads(match.group(2))
    except json.JSONDecodeError:
        return None
    return (match.group(1), payload) if isinstance(payload, dict) else None


def log_rate_limit_warning(sample: Any, *, now: float, reason: str) -> str:
    """``[RATE_LIMIT_WARNING]`` for a `HeadroomSample` whose demand exceeded its limit
    (``reason``: throttled, rejected, cooldown); the limiter's own backlog warning has these keys too."""
    return log_metrics("RATE_LIMIT_WARNING", {
        "timestamp": iso(sample.ts if sample.ts is not None else now), "service": sample.upstream,
        "key": sample.limiter_key, "used": sample.used, "limit": sample.limit,
        "utilisation": round(sample.utilisation, 4), "inCooldown": sample.in_cooldown,
        "cooldownUntil": iso(sample.cooldown_until) if sample.cooldown_until else None,
        "reason": reason, "waitS": round(sample.wait_seconds, 3), "upstream429": sample.upstream_429,
        "throttled": sample.throttled, "rejected": sample.rejected, "source": sample.source})


def log_db_stats(stats: Iterable[Any]) -> str:
    """``[DB_METRICS]`` for a set of `TableStats` (the ``'*'`` row gives the totals)."""
    stats = list(stats)
    tables = {s.table_name: {"rows": s.rows, "bytes": s.bytes} for s in stats if s.table_name != "*"}
    total = next((s for s in stats if s.table_name == "*"), None)
    return log_metrics("DB_METRICS", {
        "totalRows": total.rows if total else sum(t["rows"] for t in tables.values()),
        "totalBytes": total.bytes if total else None, "tables": tables})


def log_cache_stats(stats: Iterable[Any]) -> str:
    """``[CACHE_METRICS]`` for a set of `CacheStats`."""
    families = {}
    for s in stats:
        looked = s.hits + s.misses
        families[s.family] = {"hits": s.hits, "misses": s.misses,
                              "hitRatio": round(s.hits / looked, 4) if looked else None,
                              "keys": s.keys, "bytes": s.bytes, "evictions": s.evictions}
    return log_metrics("CACHE_METRICS", {"families": families})
