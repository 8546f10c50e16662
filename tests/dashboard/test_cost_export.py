"""AI cost exports: the cost query's rows as CSV and JSON, totals intact, spreadsheet formulas neutralised."""

from __future__ import annotations

import csv
import io
import json

import pandas as pd
import pytest

from scaling.dashboard.cost_export import DEFAULT_GROUP_BY, neutralise, to_csv, to_json
from scaling.metrics import queries as q
from scaling.metrics.db import open_metrics_db
from tests.dashboard.conftest import NOW

pytestmark = pytest.mark.sqlite


@pytest.mark.parametrize("cell,safe", [("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"), ("+1", "'+1"), ("-2", "'-2"),
                                       ("@SUM(A1)", "'@SUM(A1)"), ("\tcmd", "'\tcmd"), ("albumDetail", "albumDetail")])
def test_text_cells_that_would_run_as_formulas_get_an_apostrophe(cell: str, safe: str) -> None:
    """Cells starting with =, +, -, @, tab or CR are neutralised; ordinary names are untouched."""
    assert neutralise(cell) == safe


def test_csv_rows_and_totals_match_the_cost_query(demo_url: str) -> None:
    """The CSV has one row per (day, provider, model, task) of `ai_cost_by`, with the same dollars and tokens."""
    df = q.ai_cost_by(open_metrics_db(demo_url), NOW - 7 * 86400, NOW, DEFAULT_GROUP_BY)
    rows = list(csv.DictReader(io.StringIO(to_csv(df).decode("utf-8"))))
    assert len(rows) == len(df)
    assert list(rows[0])[:5] == ["period", "provider", "model", "task", "calls"]
    assert sum(float(r["cost_usd"]) for r in rows) == pytest.approx(df["cost_usd"].sum(), abs=1e-6)
    assert sum(int(r["input_tokens"]) for r in rows) == df["input_tokens"].sum()
    assert rows[0]["period"] == df["ts"].iloc[0].strftime("%Y-%m-%d")


def test_json_carries_the_query_its_rows_and_totals(demo_url: str) -> None:
    """The JSON names the range, grouping and source, and its totals equal the rows' sums."""
    df = q.ai_cost_by(open_metrics_db(demo_url), NOW - 86400, NOW, DEFAULT_GROUP_BY)
    doc = json.loads(to_json(df, since=NOW - 86400, until=NOW, source="demo"))
    assert (doc["since"], doc["until"], doc["source"]) == ("2026-01-19T12:00:00Z", "2026-01-20T12:00:00Z", "demo")
    assert doc["group_by"] == list(DEFAULT_GROUP_BY) and len(doc["rows"]) == len(df)
    assert doc["totals"]["calls"] == df["calls"].sum()
    assert doc["totals"]["cost_usd"] == pytest.approx(df["cost_usd"].sum(), abs=1e-6)


def test_a_hostile_task_name_is_neutralised_in_the_csv() -> None:
    """A task name from logs that starts with '=' arrives in the CSV as text, not a formula."""
    df = pd.DataFrame({"ts": [pd.Timestamp("2026-01-01", tz="UTC")], "provider": ["openai"], "model": ["m"],
                       "task": ["=cmd|' /C calc'!A0"], "calls": [1], "input_tokens": [1], "cached_input_tokens": [0],
                       "output_tokens": [1], "reasoning_tokens": [0], "web_search_calls": [0], "cache_hits": [0],
                       "saved_tokens": [0], "cost_usd": [0.5], "latency_ms_avg": [float("nan")]})
    row = next(csv.DictReader(io.StringIO(to_csv(df).decode("utf-8"))))
    assert row["task"] == "'=cmd|' /C calc'!A0" and row["latency_ms_avg"] == ""
