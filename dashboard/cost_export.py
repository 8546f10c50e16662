"""AI cost downloads: byte for byte what ``python -m scaling report costs`` writes for the same range.

The report command owns the format (`scaling.commands.report`: its row shaping,
totals and formula-safe CSV writer); this module only feeds it the dashboard's
`queries.ai_cost_by` frame, so a CSV downloaded from the AI cost page and one
exported from the command line for the same range and source are identical
(a test compares the bytes).
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime

import pandas as pd

from scaling.commands import report

__all__ = ["DEFAULT_GROUP_BY", "columns", "neutralise", "report_command", "to_csv", "to_json"]

DEFAULT_GROUP_BY: tuple[str, ...] = ("day", "provider", "model", "task")
neutralise = report.neutralise


def columns(group_by: Sequence[str] = DEFAULT_GROUP_BY) -> list[str]:
    """The export's columns: the time unit, the dimensions, then every measure."""
    times = [g for g in group_by if g in report.GROUPS[:4]]
    return [*times, *(g for g in group_by if g not in report.GROUPS[:4]), *report.MEASURES]


def to_csv(df: pd.DataFrame, group_by: Sequence[str] = DEFAULT_GROUP_BY) -> bytes:
    """The report's CSV for an `ai_cost_by` frame grouped by ``group_by``."""
    buf = io.StringIO()
    report.write_csv(list(report._rows(df, list(group_by))), columns(group_by), buf)
    return buf.getvalue().encode("utf-8")


def to_json(df: pd.DataFrame, *, since: float, until: float, group_by: Sequence[str] = DEFAULT_GROUP_BY) -> bytes:
    """The report's JSON document (query, columns, rows, totals) for the range [since, until)."""
    groups = list(group_by)
    rows = list(report._rows(df, groups))
    buf = io.StringIO()
    json.dump({"report": "costs", "since": _utc(since).isoformat(), "until": _utc(until).isoformat(),
               "group_by": groups, "columns": columns(groups), "rows": rows, "totals": report._totals(rows)},
              buf, indent=2)
    buf.write("\n")
    return buf.getvalue().encode("utf-8")


def report_command(since: float, until: float, source: str | None = None) -> str:
    """The command line that exports the same rows: ``python -m scaling report costs --since ... --until ...``."""
    start, end = (_utc(t).strftime("%Y-%m-%dT%H:%M:%SZ") for t in (since, until))
    return f"python -m scaling report costs --since {start} --until {end}" + (f" --source {source}" if source else "")


def _utc(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, tz=UTC)
