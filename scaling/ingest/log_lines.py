"""The facts in the production Worker's ``console.log`` lines.

What the app prints today (upstream ``SpotifyRateLimiter``, ``spotifyFetch``, the
cron), and the structured lines the scaling plan adds (``[METRICS] {json}`` etc.,
also what Headroom's own `scaling.metrics.logs` prints):

    [Spotify] 429 received, entering cooldown for 30s
    [Spotify] Rate limit warning: 125/150 requests in window
    [Spotify] Local rate limit reached (150/150)...
    [Spotify] Rate limit cooldown, waiting 4000ms (attempt 1/3)
    [Spotify] Max retries (2) exceeded...
    [CRON] ... Total processing time: 6344ms
    [CRON] Database size: 12.5MB, 51234 total rows
    [METRICS] {"userCount": 120, ...}   (also DB_METRICS, CACHE_METRICS, RATE_LIMIT_WARNING)
    [RATE_LIMIT_WARNING] spotify at 80% capacity

The same wording appears under ``[openai]`` and ``[anthropic]``; the tag in brackets
names the upstream. Any other line is no fact (None), which is most lines.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CooldownWait", "CronTotal", "DbSize", "LocalLimit", "LogFact", "Payload", "RateLimitWarning",
    "RetriesExhausted", "Upstream429", "join_message", "parse_message", "upstream_name",
]

PAYLOAD_KINDS: tuple[str, ...] = ("METRICS", "DB_METRICS", "CACHE_METRICS", "RATE_LIMIT_WARNING")


@dataclass(frozen=True, slots=True)
class Upstream429:
    """The upstream answered 429; the Worker's limiter enters a cooldown of ``cooldown_s``."""

    upstream: str
    cooldown_s: float


@dataclass(frozen=True, slots=True)
class RateLimitWarning:
    """The Worker's limiter is at ``used`` of ``limit`` in its window (it warns from 80%)."""

    upstream: str
    used: float
    limit: float


@dataclass(frozen=True, slots=True)
class LocalLimit:
    """The Worker's limiter is full (``used``/``limit``) and makes the request wait."""

    upstream: str
    used: float
    limit: float


@dataclass(frozen=True, slots=True)
class CooldownWait:
    """A request waits ``wait_s`` because the limiter is in a cooldown."""

    upstream: str
    wait_s: float


@dataclass(frozen=True, slots=True)
class RetriesExhausted:
    """The fetch wrapper gave up after its retries."""

    upstream: str


@dataclass(frozen=True, slots=True)
class CronTotal:
    """The cron run's own measurement of its processing time."""

    seconds: float


@dataclass(frozen=True, slots=True)
class DbSize:
    """The cron's database-size line: megabytes (estimated) and total rows."""

    megabytes: float
    rows: int


@dataclass(frozen=True, slots=True)
class Payload:
    """A structured ``[KIND] {json}`` line (or the plan's ``[RATE_LIMIT_WARNING] x at N% capacity``)."""

    kind: str
    data: dict[str, Any]


LogFact = (Upstream429 | RateLimitWarning | LocalLimit | CooldownWait | RetriesExhausted | CronTotal | DbSize
           | Payload)

_NUM = r"(\d+(?:\.\d+)?)"
_TAG = r"\[([^\]\[]{1,40})\]\s*"
_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p, re.IGNORECASE), kind) for p, kind in (
    (_TAG + r"429 received, entering cooldown for " + _NUM + r"\s*(ms|s)?", "429"),
    (_TAG + r"Rate limit warning:\s*" + _NUM + r"\s*/\s*" + _NUM, "warning"),
    (_TAG + r"Local rate limit reached\s*\(\s*" + _NUM + r"\s*/\s*" + _NUM, "local"),
    (_TAG + r"Rate limit cooldown, waiting " + _NUM + r"\s*(ms|s)?", "cooldown"),
    (_TAG + r"Max retries \(\d+\) exceeded", "exhausted"),
))
_CRON_TOTAL = re.compile(r"\[CRON\].*?Total processing time:\s*" + _NUM + r"\s*(ms|s)?", re.IGNORECASE)
_DB_SIZE = re.compile(r"\[CRON\]\s*Database size:\s*" + _NUM + r"\s*MB,\s*(\d+) total rows", re.IGNORECASE)
_PAYLOAD = re.compile(r"\[(" + "|".join(PAYLOAD_KINDS) + r")\]\s*(\{.*\})\s*$", re.DOTALL)
_CAPACITY = re.compile(r"\[RATE_LIMIT_WARNING\]\s*(\S+) at " + _NUM + r"\s*% capacity", re.IGNORECASE)
_NOT_NAME = re.compile(r"[^a-z0-9]+")


def upstream_name(tag: str) -> str:
    """``"Spotify"`` -> ``"spotify"``, ``"Last.fm"`` -> ``"lastfm"``: Headroom's upstream names."""
    return _NOT_NAME.sub("", tag.lower()) or "unknown"


def join_message(parts: Any) -> str:
    """One line from a tail log's ``message`` (the arguments ``console.log`` got).

    Strings are joined with spaces as the console does; other values as compact JSON.
    """
    if isinstance(parts, str):
        return parts
    if not isinstance(parts, Sequence):
        return _text(parts)
    if len(parts) == 1 and isinstance(parts[0], str):
        return parts[0]
    return " ".join(_text(p) for p in parts)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def _seconds(value: str, unit: str | None, default_unit: str) -> float:
    return float(value) / 1000.0 if (unit or default_unit).lower() == "ms" else float(value)


def parse_message(text: str) -> LogFact | None:
    """The fact one log line states, or None when it states none we use.

    Examples:
        >>> parse_message("[Spotify] 429 received, entering cooldown for 30s")
        Upstream429(upstream='spotify', cooldown_s=30.0)
        >>> parse_message("polled 42 users") is None
        True
    """
    start = text.find("[")
    if start < 0:  # most lines; no regex work for them
        return None
    if text.startswith(("[METRICS]", "[DB_METRICS]", "[CACHE_METRICS]", "[RATE_LIMIT_WARNING]"), start):
        return _payload(text)
    if text.startswith("[CRON]", start) or text.startswith("[cron]", start):
        m = _CRON_TOTAL.search(text)
        if m:
            return CronTotal(_seconds(m.group(1), m.group(2), "ms"))
        m = _DB_SIZE.search(text)
        if m:
            return DbSize(float(m.group(1)), int(m.group(2)))
        return None
    if "429 received" not in text and "ate limit" not in text and "Max retries" not in text:
        return None
    for pattern, kind in _RULES:
        m = pattern.search(text, start)
        if m is None:
            continue
        up = upstream_name(m.group(1))
        if kind == "429":
            return Upstream429(up, _seconds(m.group(2), m.group(3), "s"))
        if kind == "warning":
            return RateLimitWarning(up, float(m.group(2)), float(m.group(3)))
        if kind == "local":
            return LocalLimit(up, float(m.group(2)), float(m.group(3)))
        if kind == "cooldown":
            return CooldownWait(up, _seconds(m.group(2), m.group(3), "ms"))
        return RetriesExhausted(up)
    return None


def _payload(text: str) -> Payload | None:
    m = _PAYLOAD.search(text)
    if m is not None:
        try:
            data = json.loads(m.group(2))
        except json.JSONDecodeError:
            return None
        return Payload(m.group(1), data) if isinstance(data, dict) else None
    m = _CAPACITY.search(text)
    if m is not None:
        return Payload("RATE_LIMIT_WARNING", {"service": upstream_name(m.group(1)),
                                              "utilisation": float(m.group(2)) / 100.0})
    return None
