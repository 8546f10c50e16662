"""Reading how long an upstream wants us to wait.

RFC 9110 §10.2.3: ``Retry-After: HTTP-date / delay-seconds``; recipients accept the
IMF-fixdate, RFC 850 and asctime date forms (§5.6.7). Vendors add ``retry-after-ms``
(OpenAI) and fractional seconds. The upstream app parsed with ``parseInt`` and got
NaN from a date: no cooldown and an immediate retry. Here every form parses, a past
date means "now", and anything unreadable or negative is reported as unknown (None)
so the caller falls back to its own default rather than to zero.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime

__all__ = ["parse_duration", "parse_retry_after", "retry_after_from_headers"]

_SECONDS = re.compile(r"^\s*\+?(\d+(?:\.\d+)?)\s*$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value.

    Args:
        value: the header value: ``"120"``, ``"1.5"``, or an HTTP-date in any RFC 9110 form.
        now: epoch seconds, to turn a date into a delay.

    Returns:
        Seconds (0 for a date in the past), or None when the value is missing,
        negative or unreadable.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    m = _SECONDS.match(text)
    if m:
        seconds = float(m.group(1))
        return seconds if math.isfinite(seconds) else None
    if text.lstrip().startswith("-"):
        return None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # asctime carries no zone; HTTP dates are always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def parse_duration(value: str | None) -> float | None:
    """Seconds from an OpenAI reset duration such as ``1s``, ``6m0s``, ``12ms``, ``1h2m3.5s``."""
    if value is None:
        return None
    text = value.strip().lower()
    if not text:
        return None
    m = _SECONDS.match(text)
    if m:
        return float(m.group(1))
    total, pos = 0.0, 0
    for part in _DURATION_PART.finditer(text):
        if part.start() != pos:
            return None
        total += float(part.group(1)) * _UNIT[part.group(2)]
        pos = part.end()
    return total if pos == len(text) and pos > 0 else None


def retry_after_from_headers(headers: Mapping[str, str], *, now: float) -> float | None:
    """The wait an answer asks for, preferring the most precise header present:
    ``retry-after-ms``, then ``Retry-After`` (seconds or date)."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        m = _SECONDS.match(ms)
        if m:
            return float(m.group(1)) / 1000.0
    return parse_retry_after(headers.get("retry-after"), now=now)
