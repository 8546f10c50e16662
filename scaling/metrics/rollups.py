"""Which raw tables roll up into which hourly tables, and how each measure combines.

One `Rollup` describes a raw table, its hourly table, the key columns and each
measure's aggregate over raw rows plus how partial aggregates merge (SUM of sums,
MAX of maxima, ...). `scaling.metrics.retention` uses it to write the roll-ups;
`scaling.metrics.queries` uses the same description to read any bucket width from
raw rows, from roll-ups, or from both at once, so the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Double,
    Select,
    and_,
    case,
    cast,
    false,
    func,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Subquery

from scaling.metrics import models as m
from scaling.metrics.buckets import bucket_start

__all__ = ["AI", "CACHE", "HEADROOM", "ROLLUPS", "WORKER", "Measure", "Rollup", "distinct_sources"]

_MERGE: dict[str, Callable[[Any], Any]] = {"sum": func.sum, "max": func.max, "min": func.min}


@dataclass(frozen=True)
class Measure:
    """One column of a roll-up.

    Attributes:
        name: the hourly table's column (and the query's output column).
        raw: the aggregate over raw rows, given the raw table.
        merge: how partial aggregates combine: "sum", "max" or "min".
        integer: whether the value is a count (PostgreSQL's SUM of BIGINT is NUMERIC;
            casting keeps it an integer, not a Decimal, in pandas).
    """

    name: str
    raw: Callable[[Any], ColumnElement[Any]]
    merge: str
    integer: bool = False

    def typed(self, expr: ColumnElement[Any]) -> ColumnElement[Any]:
        return cast(expr, BigInteger() if self.integer else Double())


def _sum(col: str, integer: bool = True) -> Measure:
    return Measure(col, lambda t: func.sum(t.c[col]), "sum", integer)


def _count_if(name: str, col: str) -> Measure:
    return Measure(name, lambda t: func.sum(case((t.c[col], 1), else_=0)), "sum", True)


def _max(name: str, col: str, integer: bool = False) -> Measure:
    return Measure(name, lambda t: func.coalesce(func.max(t.c[col]), 0), "max", integer)


@dataclass(frozen=True)
class Rollup:
    """A raw table and its hourly roll-up."""

    raw: Any  # sqlalchemy Table
    hourly: Any
    keys: tuple[str, ...]  # grouping columns, "source" first
    measures: tuple[Measure, ...]

    @property
    def name(self) -> str:
        return str(self.raw.name)

    def from_raw(self, width: int, where: Sequence[ColumnElement[bool]]) -> Select[Any]:
        """Partial aggregates of raw rows per bucket of ``width`` seconds and key."""
        t = self.raw
        bucket = bucket_start(t.c.ts, width)
        cols = [bucket.label("bucket"), *(t.c[k] for k in self.keys),
                *(m_.typed(m_.raw(t)).label(m_.name) for m_ in self.measures)]
        return select(*cols).where(*where).group_by(bucket, *(t.c[k] for k in self.keys))

    def from_hourly(self, width: int, where: Sequence[ColumnElement[bool]]) -> Select[Any]:
        """Partial aggregates of hourly rows per bucket of ``width`` seconds (≥ 1 h) and key."""
        t = self.hourly
        bucket = bucket_start(t.c.hour, width)
        cols = [bucket.label("bucket"), *(t.c[k] for k in self.keys),
                *(m_.typed(_MERGE[m_.merge](t.c[m_.name])).label(m_.name) for m_ in self.measures)]
        return select(*cols).where(*where).group_by(bucket, *(t.c[k] for k in self.keys))

    def merged(self, parts: Sequence[Select[Any]], keys: Sequence[str] | None = None) -> Select[Any]:
        """One row per bucket and key from several partial-aggregate selects.

        Args:
            parts: selects shaped like `from_raw` / `from_hourly`.
            keys: the key columns to keep (default all); dropping one sums across it.
        """
        sub: Subquery = (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("parts")
        kept = list(self.keys if keys is None else keys)
        cols = [sub.c.bucket, *(sub.c[k] for k in kept),
                *(m_.typed(_MERGE[m_.merge](sub.c[m_.name])).label(m_.name) for m_ in self.measures)]
        return (select(*cols).group_by(sub.c.bucket, *(sub.c[k] for k in kept))
                .order_by(sub.c.bucket, *(sub.c[k] for k in kept)))

    def raw_tails(self, width: int, start: float, until: float, where: Sequence[ColumnElement[bool]],
                  sources: Sequence[str], watermarks: Mapping[str, float]) -> list[Select[Any]]:
        """Partial aggregates of the raw rows not yet rolled up, one select per source.

        Each source's rows from ``max(start, its rolled_until)`` to ``until`` are one
        range of the (source, ts) index, however many older raw rows there are.
        """
        t = self.raw
        parts = []
        for source in sources:
            lo = max(start, watermarks.get(source, start))
            if lo < until:
                parts.append(self.from_raw(width, [t.c.source == source, t.c.ts >= lo, t.c.ts < until, *where]))
        return parts

    def hourly_before(self, watermarks: Mapping[str, float]) -> ColumnElement[bool]:
        """Hourly rows that stand for rolled-up raw rows: per source, hour < its ``rolled_until``."""
        t = self.hourly
        if not watermarks:
            return false()
        return or_(*(and_(t.c.source == s, t.c.hour < w) for s, w in watermarks.items()))


def distinct_sources(conn: Connection, table: Any) -> list[str]:
    """The ``source`` values present in a table, by seeking its (source, ...) index once per source.

    A plain SELECT DISTINCT reads every row (PostgreSQL has no skip scan); this
    recursive walk costs one index probe per distinct value, on both backends.
    """
    name = conn.dialect.identifier_preparer.quote(table.name)
    sql = text(f"""
        WITH RECURSIVE s(src) AS (
            SELECT MIN(source) FROM {name}
            UNION ALL
            SELECT (SELECT MIN(source) FROM {name} WHERE source > s.src) FROM s WHERE s.src IS NOT NULL
        )
        SELECT src FROM s WHERE src IS NOT NULL""")
    return [str(v) for v in conn.execute(sql).scalars()]


HEADROOM = Rollup(
    m.HEADROOM_SAMPLES, m.HEADROOM_HOURLY, ("source", "upstream", "limiter_key"),
    (
        Measure("samples", lambda t: func.count(), "sum", True),
        Measure("used_sum", lambda t: func.sum(t.c.used), "sum"),
        _max("used_max", "used"),
        _max("limit_max", "limit"),
        Measure("remaining_min", lambda t: func.coalesce(func.min(t.c.remaining), 0), "min"),
        Measure("util_sum", lambda t: func.sum(t.c.utilisation), "sum"),
        _max("util_max", "utilisation"),
        _count_if("cooldown_samples", "in_cooldown"),
        _sum("upstream_429"), _sum("throttled"), _sum("wait_seconds", False), _sum("rejected"),
    ),
)

CACHE = Rollup(
    m.CACHE_STATS, m.CACHE_HOURLY, ("source", "family"),
    (
        Measure("samples", lambda t: func.count(), "sum", True),
        _sum("hits"), _sum("misses"), _sum("evictions"),
        _max("keys_max", "keys", True), _max("bytes_max", "bytes", True), _max("oldest_age_max", "oldest_age_s"),
    ),
)

AI = Rollup(
    m.AI_USAGE, m.AI_USAGE_HOURLY, ("source", "provider", "model", "task"),
    (
        Measure("calls", lambda t: func.count(), "sum", True),
        _sum("input_tokens"), _sum("cached_input_tokens"), _sum("output_tokens"), _sum("reasoning_tokens"),
        _sum("web_search_calls"), _count_if("cache_hits", "cache_hit"),
        Measure("latency_ms_sum", lambda t: func.sum(t.c.latency_ms), "sum"),
        _max("latency_ms_max", "latency_ms"),
        _sum("cost_usd", False), _sum("saved_tokens"),
    ),
)

WORKER = Rollup(
    m.WORKER_EVENTS, m.WORKER_HOURLY, ("source", "event_type", "outcome", "cron"),
    (
        Measure("events", lambda t: func.count(), "sum", True),
        Measure("wall_ms_sum", lambda t: func.sum(t.c.wall_ms), "sum"), _max("wall_ms_max", "wall_ms"),
        Measure("cpu_ms_sum", lambda t: func.sum(t.c.cpu_ms), "sum"), _max("cpu_ms_max", "cpu_ms"),
        _sum("exceptions"),
    ),
)

#: Every roll-up, by raw table name.
ROLLUPS: dict[str, Rollup] = {r.name: r for r in (HEADROOM, CACHE, AI, WORKER)}
