"""Time buckets: one SQL expression for both backends, and how wide a bucket a range needs.

Buckets are aligned to the epoch (so to UTC midnight for days). Every width from an
hour up is a whole number of hours, so hourly roll-ups re-bucket exactly.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Double
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement, literal_column

__all__ = ["BUCKETS", "HOUR", "MAX_POINTS", "bucket_start", "choose_bucket", "epoch"]

MINUTE, HOUR, DAY = 60, 3600, 86400
#: Bucket widths the dashboard uses, narrowest first.
BUCKETS: tuple[int, ...] = (MINUTE, 5 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 3 * HOUR, 6 * HOUR,
                            12 * HOUR, DAY, 7 * DAY, 30 * DAY)
#: No chart gets more points than this per series.
MAX_POINTS = 2000


class bucket_start(FunctionElement[float]):  # noqa: N801 - reads like the SQL it renders
    """``ts`` rounded down to a multiple of ``seconds`` (epoch seconds, ts ≥ 0).

    SQLite's CAST truncates, which is floor for non-negative values; PostgreSQL's
    CAST rounds, so it gets FLOOR instead.
    """

    type = Double()
    inherit_cache = True
    name = "bucket_start"

    def __init__(self, ts: ColumnElement[Any], seconds: int) -> None:
        if int(seconds) != seconds or seconds <= 0:
            raise ValueError(f"bucket width must be a positive whole number of seconds, got {seconds!r}")
        # The width goes in as a literal clause, not an attribute, so it is part of the
        # statement cache key: a cached hourly query is never reused for days.
        super().__init__(ts, literal_column(str(int(seconds))))


@compiles(bucket_start)
def _bucket_default(element: bucket_start, compiler: Any, **kw: Any) -> str:
    ts, width = (compiler.process(c, **kw) for c in element.clauses)
    return f"(CAST(({ts}) / {width} AS INTEGER) * {width})"


@compiles(bucket_start, "postgresql")
def _bucket_pg(element: bucket_start, compiler: Any, **kw: Any) -> str:
    ts, width = (compiler.process(c, **kw) for c in element.clauses)
    return f"(FLOOR(({ts}) / {width}) * {width})"


def epoch(t: float | int | datetime) -> float:
    """Epoch seconds from a number or a datetime (naive datetimes are taken as UTC).

    Raises:
        ValueError: ``t`` is not a finite time.
    """
    if isinstance(t, datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
        return t.timestamp()
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
        raise ValueError(f"expected epoch seconds or a datetime, got {t!r}")
    return float(t)


def points(since: float, until: float, seconds: int) -> int:
    """How many buckets of ``seconds`` the half-open range [since, until) touches."""
    return int(math.floor((until - 1e-9) / seconds) - math.floor(since / seconds)) + 1


def choose_bucket(since: float, until: float, *, max_points: int = MAX_POINTS, minimum: int = MINUTE) -> int:
    """The narrowest bucket width that keeps [since, until) within ``max_points`` per series.

    Args:
        since: range start, epoch seconds.
        until: range end (exclusive), epoch seconds.
        max_points: the most points a series may have.
        minimum: the narrowest width allowed (e.g. `HOUR` when only roll-ups exist).

    Raises:
        ValueError: the range is empty or reversed.
    """
    if not until > since:
        raise ValueError(f"empty time range: until ({until}) must be after since ({since})")
    for width in BUCKETS:
        if width >= minimum and points(since, until, width) <= max_points:
            return width
    # Ranges beyond ~160 years: fall back to whatever width fits.
    return math.ceil((until - since) / (max_points - 1) / DAY) * DAY
