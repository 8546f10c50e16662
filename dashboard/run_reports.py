"""Reading the JSON reports job runs carry: users polled vs skipped, phase timings, rows deleted.

Two shapes exist side by side: the collectors store `PrewarmReport.as_dict()` /
`CleanupReport.as_dict()` (``polled``, ``phase_s``, ``deleted: {table: n}``), while
older runs and the demo history use the Worker's camelCase log fields (``fetched``,
``sessionsDeleted``, ...). Both read the same here; a report that is missing or not
JSON counts as nothing rather than breaking a page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

__all__ = ["cleanup_deleted", "cleanup_frame", "prewarm_counts", "prewarm_frame"]

_CAMEL_TABLES = {"sessionsDeleted": "sessions", "searchesDeleted": "searches",
                 "recentSearchesDeleted": "recent_searches", "usageLogDeleted": "api_usage_log"}


def _parse(report: str | Mapping[str, Any] | None) -> dict[str, Any]:
    if report is None or (isinstance(report, float) and report != report):
        return {}
    if isinstance(report, Mapping):
        return dict(report)
    try:
        value = json.loads(report)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def prewarm_counts(report: str | Mapping[str, Any] | None) -> dict[str, float]:
    """``polled``, ``skipped`` and ``phase:<name>`` seconds from a prewarm report (absent keys left out)."""
    data = _parse(report)
    out: dict[str, float] = {}
    polled = _number(data.get("polled", data.get("fetched")))
    if polled is not None:
        out["polled"] = polled
    skipped = _number(data.get("skipped"))
    if skipped is not None:
        out["skipped"] = skipped
    phases = data.get("phase_s")
    if isinstance(phases, Mapping):
        out.update({f"phase:{k}": v for k, v in ((k, _number(v)) for k, v in phases.items()) if v is not None})
    # The Worker's own [METRICS] line: phase1DurationMs / phase2DurationMs.
    for key, value in data.items():
        m = re.fullmatch(r"(phase\d+)DurationMs", key)
        if m and _number(value) is not None:
            out[f"phase:{m.group(1)}"] = float(value) / 1000.0
    return out


def cleanup_deleted(report: str | Mapping[str, Any] | None) -> dict[str, float]:
    """Rows deleted per table by one cleanup run."""
    data = _parse(report)
    deleted = data.get("deleted")
    if isinstance(deleted, Mapping):
        return {str(k): v for k, v in ((k, _number(v)) for k, v in deleted.items()) if v is not None}
    return {table: float(data[key]) for key, table in _CAMEL_TABLES.items() if _number(data.get(key)) is not None}


def prewarm_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run with report: ``ts, source, outcome, polled, skipped, phase:<name>...``."""
    rows = [{"ts": r.scheduled_at, "source": r.source, "outcome": r.outcome, **prewarm_counts(r.report)}
            for r in runs.itertuples(index=False)]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["ts", "source", "outcome"])


def cleanup_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """Long form: ``ts, source, table_name, deleted`` for every cleanup run that reported deletions."""
    rows = [{"ts": r.scheduled_at, "source": r.source, "table_name": table, "deleted": n}
            for r in runs.itertuples(index=False) for table, n in cleanup_deleted(r.report).items()]
    return pd.DataFrame(rows, columns=["ts", "source", "table_name", "deleted"])
