"""Every read a page makes: `scaling.metrics.queries` through a short-lived shared cache.

Queries run through one ``st.cache_data`` function keyed by the metrics DB, the
query and its arguments, with a TTL near the collectors' interval: twenty sessions
refreshing every 30 s cost one query per TTL, not twenty. Time windows arrive
already snapped to 30 s (`dashboard.timerange.resolve`) so keys repeat.

Bucket widths are picked here for a chart's *whole* point budget (series × points
≤ `CHART_POINTS`), since Altair through Streamlit ships every row to the browser.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import streamlit as st

from dashboard.services import Services
from dashboard.timerange import HOUR, Window, bucket_for
from scaling.errors import StoreError
from scaling.metrics import queries
from scaling.metrics.records import UserCounts

__all__ = [
    "KNOWN_SOURCES", "TTL_S", "ai_cost", "alerts", "cache", "cache_summary", "cron_summary", "db_growth", "headroom",
    "jobs", "latest_db", "latest_headroom", "latest_users", "read", "runs", "source_count", "sources", "users",
]

TTL_S = 30
#: From this window length, rolled-up tables are read at ≥ 1 h buckets, i.e. from the
#: hourly roll-ups instead of every raw minute sample (30 days × 1,440 × series).
ROLLUP_FROM_S = 2 * 86400
#: Sources the metrics schema defines; "demo" appears only when demo history is loaded.
KNOWN_SOURCES: tuple[str, ...] = ("collectors", "worker", "demo")


@st.cache_data(ttl=TTL_S, show_spinner=False, max_entries=512)
def _cached(db_key: str, name: str, args: tuple[Any, ...], kwargs: tuple[tuple[str, Any], ...],
            _services: Services) -> Any:
    return getattr(queries, name)(_services.engine, *args, **dict(kwargs))


def read(svc: Services, name: str, *args: Any, **kwargs: Any) -> Any:
    """``queries.<name>(engine, *args, **kwargs)``, cached for `TTL_S` seconds across sessions."""
    if name not in queries.__all__:
        raise ValueError(f"unknown metrics query {name!r}")
    return _cached(svc.db_key, name, args, tuple(sorted(kwargs.items())), svc)


def sources(svc: Services) -> list[str]:
    """The sources worth offering: collectors and worker always, demo when its history is loaded."""
    try:
        present = read(svc, "latest_user_counts", source="demo") is not None
    except StoreError:  # unmigrated or unreachable: the page says so once; the sidebar still draws
        present = False
    return [s for s in KNOWN_SOURCES if s != "demo" or present]


def _in(window: Window, df: pd.DataFrame) -> pd.DataFrame:
    """Tag a frame with its window so its chart's time axis spans the picked range, not just the data."""
    df.attrs["window"] = (window.since, window.until)
    return df


def _rolled_bucket(window: Window, series: int) -> int:
    width = bucket_for(window, series)
    return max(width, HOUR) if window.seconds >= ROLLUP_FROM_S else width


def source_count(svc: Services, source: str | None) -> int:
    """How many sources a chart will show: 1 when one is chosen, else those holding data."""
    if source:
        return 1
    held = [s for s in KNOWN_SOURCES if read(svc, "latest_user_counts", source=s) is not None
            or len(read(svc, "recent_runs", source=s, limit=1))]
    return max(1, len(held))


def headroom(svc: Services, window: Window, source: str | None, *, series_per_chart: int = 6) -> pd.DataFrame:
    """Limiter headroom for every upstream, bucketed so each upstream's chart fits its budget."""
    return _in(window, read(svc, "headroom_series", window.since, window.until, source=source,
                            bucket_s=_rolled_bucket(window, series_per_chart)))


def latest_headroom(svc: Services, now: float, source: str | None) -> pd.DataFrame:
    return read(svc, "latest_headroom", now=now, source=source)


def users(svc: Services, window: Window, source: str | None) -> pd.DataFrame:
    return _in(window, read(svc, "user_count_series", window.since, window.until, source=source,
                            bucket_s=bucket_for(window, 3 * source_count(svc, source))))


def latest_users(svc: Services, source: str | None) -> dict[str, UserCounts]:
    """The newest user counts per source (only the chosen source when one is chosen)."""
    wanted = [source] if source else list(KNOWN_SOURCES)
    found = {s: read(svc, "latest_user_counts", source=s) for s in wanted}
    return {s: c for s, c in found.items() if c is not None}


def jobs(svc: Services, window: Window, source: str | None, job: str | None, *, series: int = 4) -> pd.DataFrame:
    return _in(window, read(svc, "job_runs", job, window.since, window.until, source=source,
                            bucket_s=bucket_for(window, series)))


def cron_summary(svc: Services, window: Window, source: str | None) -> pd.DataFrame:
    return read(svc, "cron_summary", window.since, window.until, source=source)


def runs(svc: Services, job: str | None, source: str | None, limit: int = 2000) -> pd.DataFrame:
    return read(svc, "recent_runs", job=job, source=source, limit=limit)


def db_growth(svc: Services, window: Window, source: str | None, *, series: int = 8) -> pd.DataFrame:
    return _in(window, read(svc, "db_growth", window.since, window.until, source=source,
                            bucket_s=bucket_for(window, series)))


def latest_db(svc: Services, source: str | None) -> pd.DataFrame:
    return read(svc, "latest_db_stats", source=source, limit_bytes=svc.settings.db_limit_bytes)


def cache(svc: Services, window: Window, source: str | None, *, series: int = 10) -> pd.DataFrame:
    return _in(window, read(svc, "cache_series", window.since, window.until, source=source,
                            bucket_s=_rolled_bucket(window, series)))


def cache_summary(svc: Services, window: Window, source: str | None) -> pd.DataFrame:
    return read(svc, "cache_summary", window.since, window.until, source=source)


def ai_cost(svc: Services, since: float, until: float, group_by: Sequence[str], source: str | None) -> pd.DataFrame:
    return read(svc, "ai_cost_by", since, until, tuple(group_by), source=source)


def alerts(svc: Services, since: float, source: str | None) -> pd.DataFrame:
    return read(svc, "alerts", since, source=source)
