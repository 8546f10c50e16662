"""AI cost downloads: the same bytes as `python -m scaling report costs` for the same range and source."""

from __future__ import annotations

import csv
import io
import json
import shlex
from pathlib import Path

import pandas as pd
import pytest

from dashboard.cost_export import DEFAULT_GROUP_BY, neutralise, report_command, to_csv, to_json
from scaling.cli import main
from scaling.metrics import queries as q
from scaling.metrics.db import open_metrics_db
from tests.dashboard.conftest import NOW

pytestmark = pytest.mark.sqlite
SINCE, UNTIL = NOW - 7 * 86400 + 30, NOW + 30  # a dashboard window: not day-aligned


def exported(monkeypatch: pytest.MonkeyPatch, url: str, tmp_path: Path, fmt: str, source: str | None) -> bytes:
    monkeypatch.setenv("HEADROOM_METRICS_DB_URL", url)
    out = tmp_path / f"costs.{fmt}"
    argv = shlex.split(report_command(SINCE, UNTIL, source))[3:]
    assert main([*argv, "--format", fmt, "--output", str(out)]) == 0
    return out.read_bytes()


@pytest.mark.parametrize("source", [None, "demo"])
def test_csv_download_is_byte_identical_to_the_report_command(monkeypatch: pytest.MonkeyPatch, demo_url: str,
                                                               tmp_path: Path, source: str | None) -> None:
    """The page's CSV and `report costs` over the same window and source are the same bytes."""
    df = q.ai_cost_by(open_metrics_db(demo_url), SINCE, UNTIL, DEFAULT_GROUP_BY, source=source)
    assert to_csv(df) == exported(monkeypatch, demo_url, tmp_path, "csv", source)


def test_json_download_is_byte_identical_to_the_report_command(monkeypatch: pytest.MonkeyPatch, demo_url: str,
                                                                tmp_path: Path) -> None:
    """The page's JSON and `report costs --format json` over the same window are the same bytes."""
    df = q.ai_cost_by(open_metrics_db(demo_url), SINCE, UNTIL, DEFAULT_GROUP_BY)
    mine = to_json(df, since=SINCE, until=UNTIL)
    assert mine == exported(monkeypatch, demo_url, tmp_path, "json", None)
    doc = json.loads(mine)
    assert doc["totals"]["calls"] == df["calls"].sum() and len(doc["rows"]) == len(df)
    assert doc["totals"]["cost_usd"] == pytest.approx(df["cost_usd"].sum(), abs=1e-5)


def test_csv_totals_match_the_cost_query(demo_url: str) -> None:
    """The CSV's rows add up to the query's dollars and tokens: what the page shows is what downloads."""
    df = q.ai_cost_by(open_metrics_db(demo_url), SINCE, UNTIL, DEFAULT_GROUP_BY)
    rows = list(csv.DictReader(io.StringIO(to_csv(df).decode("utf-8"))))
    assert len(rows) == len(df) and list(rows[0])[:4] == ["day", "provider", "model", "task"]
    assert sum(float(r["cost_usd"]) for r in rows) == pytest.approx(df["cost_usd"].sum(), abs=1e-4)
    assert sum(int(r["input_tokens"]) for r in rows) == df["input_tokens"].sum()


def test_a_hostile_task_name_is_neutralised_in_the_csv() -> None:
    """A task name from logs that starts with '=' arrives in the CSV as text, not a formula."""
    assert neutralise("@SUM(A1)") == "'@SUM(A1)" and neutralise("albumDetail") == "albumDetail"
    df = pd.DataFrame({"ts": [pd.Timestamp("2026-01-01", tz="UTC")], "provider": ["openai"], "model": ["m"],
                       "task": ["=cmd|' /C calc'!A0"], "calls": [1], "input_tokens": [1], "cached_input_tokens": [0],
                       "output_tokens": [1], "reasoning_tokens": [0], "web_search_calls": [0], "cache_hits": [0],
                       "saved_tokens": [0], "cost_usd": [0.5], "latency_ms_avg": [float("nan")]})
    row = next(csv.DictReader(io.StringIO(to_csv(df).decode("utf-8"))))
    assert row["task"] == "'=cmd|' /C calc'!A0" and row["latency_ms_avg"] == ""
