"""AI cost exports: the rows of `queries.ai_cost_by` as CSV and JSON bytes.

Pure functions of the frame, so the dashboard's download buttons and the
``report costs`` command can hand over identical bytes for the same query. Text
cells that a spreadsheet would run as a formula (leading ``=``, ``+``, ``-``,
``@``, tab or carriage return) get a leading apostrophe: task and model names come
from logs and must not execute when the CSV is opened (CWE-1236).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import pandas as pd

__all__ = ["DEFAULT_GROUP_BY", "export_rows", "neutralise", "to_csv", "to_json"]

DEFAULT_GROUP_BY: tuple[str, ...] = ("day", "provider", "model", "task")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_INT_COLUMNS = ("calls", "input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens",
                "web_search_calls", "cache_hits", "saved_tokens")


def neutralise(cell: str) -> str:
    """A text cell made safe to open in a spreadsheet."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def _time_text(ts: pd.Timestamp, unit: str | None) -> str:
    if unit == "hour":
        return ts.strftime("%Y-%m-%dT%H:00Z")
    if unit == "month":
        return ts.strftime("%Y-%m")
    return ts.strftime("%Y-%m-%d")


def export_rows(df: pd.DataFrame, group_by: Sequence[str] = DEFAULT_GROUP_BY) -> list[dict[str, Any]]:
    """Plain rows (str, int, float or None) in the frame's column order; time as ISO text."""
    unit = next((g for g in group_by if g in ("hour", "day", "week", "month")), None)
    rows: list[dict[str, Any]] = []
    for record in df.to_dict("records"):
        row: dict[str, Any] = {}
        for col, value in record.items():
            if col == "ts":
                row["period"] = _time_text(value, unit)
            elif col in _INT_COLUMNS:
                row[col] = int(value)
            elif isinstance(value, float) or col in ("cost_usd", "latency_ms_avg"):
                number = float(value) if value is not None else math.nan
                row[col] = None if math.isnan(number) else round(number, 8 if col == "cost_usd" else 1)
            else:
                row[col] = str(value)
        rows.append(row)
    return rows


def to_csv(df: pd.DataFrame, group_by: Sequence[str] = DEFAULT_GROUP_BY) -> bytes:
    """UTF-8 CSV with a header row; empty cells for missing numbers."""
    rows = export_rows(df, group_by)
    columns = ["period" if c == "ts" else c for c in df.columns]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row[c] is None else neutralise(row[c]) if isinstance(row[c], str) else row[c]
                         for c in columns])
    return out.getvalue().encode("utf-8")


def to_json(df: pd.DataFrame, *, since: float, until: float, group_by: Sequence[str] = DEFAULT_GROUP_BY,
            source: str | None = None) -> bytes:
    """One JSON object: the query (range, grouping, source), its rows and their totals."""
    rows = export_rows(df, group_by)
    totals = {c: (sum(int(r[c]) for r in rows) if c in _INT_COLUMNS else round(sum(r[c] or 0.0 for r in rows), 8))
              for c in (*_INT_COLUMNS, "cost_usd") if c in df.columns}
    doc = {"since": _iso(since), "until": _iso(until), "group_by": list(group_by), "source": source or "all",
           "rows": rows, "totals": totals}
    return (json.dumps(doc, indent=2, sort_keys=False) + "\n").encode("utf-8")


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, tz=timezone.utc).isoformat().replace("+00:00", "Z")
