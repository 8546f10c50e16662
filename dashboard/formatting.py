"""How the dashboard writes numbers, sizes, durations and times: one place, so pages agree."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

__all__ = ["ago", "bytes_", "count", "duration", "percent", "plain", "timestamp", "usd"]

_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


#: Everything Streamlit's Markdown gives a meaning to: emphasis, links and images, code, HTML, headings,
#: tables and its own ``:colour[...]`` directives (text is one line, so list and heading markers
#: at a line start cannot occur).
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+!|<>~$])")


def plain(text: object) -> str:
    """``text`` escaped so Streamlit's Markdown shows it as typed.

    Alert messages, subjects and labels come from ingested Worker logs: rendered as
    Markdown, ``![x](https://tracker/p.png)`` would make every viewer's browser fetch
    that image. Escaped, it reads as the characters it is.
    """
    return _MARKDOWN.sub(r"\\\1", str(text)).replace("\n", " ")


def count(value: float | None) -> str:
    """``3204`` -> ``"3,204"``; fractions keep one decimal; missing -> ``"–"``."""
    if _missing(value):
        return "–"
    assert value is not None
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def percent(share: float | None, digits: int = 0) -> str:
    """A share (0.71) as ``"71%"``."""
    if _missing(share):
        return "–"
    assert share is not None
    return f"{share * 100:.{digits}f}%"


def bytes_(value: float | None) -> str:
    """Binary sizes: ``10 * 1024**3`` -> ``"10.0 GB"`` (the 10 GB D1 limit reads as 10 GB)."""
    if _missing(value):
        return "–"
    assert value is not None
    size, unit = float(value), 0
    while abs(size) >= 1024 and unit < len(_UNITS) - 1:
        size /= 1024
        unit += 1
    return f"{size:.0f} {_UNITS[unit]}" if unit == 0 else f"{size:.1f} {_UNITS[unit]}"


def duration(seconds: float | None) -> str:
    """``8.14`` -> ``"8.1 s"``, ``754`` -> ``"12 min"``, ``7200`` -> ``"2.0 h"``, ``3 * 86400`` -> ``"3.0 d"``."""
    if _missing(seconds):
        return "–"
    assert seconds is not None
    s = float(seconds)
    if abs(s) < 1:
        return f"{s * 1000:.0f} ms"
    if abs(s) < 120:
        return f"{s:.1f} s"
    if abs(s) < 2 * 3600:
        return f"{s / 60:.0f} min"
    if abs(s) < 2 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def ago(then: float | None, now: float) -> str:
    """``"12 min ago"``; a time in the future reads ``"in 5 min"``."""
    if _missing(then):
        return "never"
    assert then is not None
    delta = now - float(then)
    return f"in {duration(-delta)}" if delta < 0 else f"{duration(delta)} ago"


def usd(value: float | None) -> str:
    """Dollars: two decimals, four below a cent so tiny AI calls do not read as $0.00."""
    if _missing(value):
        return "–"
    assert value is not None
    v = float(value)
    return f"${v:,.4f}" if 0 < abs(v) < 0.01 else f"${v:,.2f}"


def timestamp(epoch_s: float | None, *, with_time: bool = True) -> str:
    """Epoch seconds as UTC text, ``"2026-01-01 12:00 UTC"`` (or just the date)."""
    if _missing(epoch_s):
        return "–"
    assert epoch_s is not None
    when = datetime.fromtimestamp(float(epoch_s), tz=UTC)
    return when.strftime("%Y-%m-%d %H:%M UTC") if with_time else when.strftime("%Y-%m-%d")
