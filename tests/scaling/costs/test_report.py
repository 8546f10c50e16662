"""``python -m scaling report costs``: the dashboard's totals, CSV and JSON, formula-safe cells, clear errors."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest

from scaling.ai_costs import CostEntry, CostTracker, MemorySink, MetricsSink, TokenUsage
from scaling.cli import main
from scaling.clock import VirtualClock
from scaling.commands.report import neutralise

JAN_10 = dt.datetime(2026, 1, 10, 12, tzinfo=dt.UTC).timestamp()


def _entries() -> list[CostEntry]:
    clock = VirtualClock(JAN_10)
    tracker = CostTracker(sink=MemorySink(), clock=clock)
    tracker.record("openai", "gpt-5.6-terra", "artistSummary", TokenUsage(1_000_000, 0, 0, 100_000))  # $3.20
    tracker.record("openai", "gpt-5.6-terra", "=HYPERLINK(\"http://x\")", TokenUsage(1000, 0, 0, 100))
    tracker.record_cache_hit("openai", "gpt-5.6-terra", "artistSummary", TokenUsage(1000, 0, 0, 500))
    clock.advance(86400)
    tracker.record("anthropic", "claude-sonnet-5", "userInsightsSummary",
                   TokenUsage(350_000, 200_000, 100_000, 10_000))  # $0.735
    clock.advance(40 * 86400)  # February: outside a January report
    tracker.record("openai", "gpt-5.6-terra", "artistSummary", TokenUsage(1_000_000, 0, 0, 0))
    assert isinstance(tracker.sink, MemorySink)
    return tracker.sink.entries


@pytest.fixture
def metrics_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    from scaling.metrics.db import open_metrics_db
    from scaling.metrics.migrate import upgrade
    from scaling.metrics.writer import MetricsWriter

    url = f"sqlite:///{tmp_path}/metrics.db"
    upgrade(url)
    engine = open_metrics_db(url)
    MetricsSink(MetricsWriter(engine, clock=VirtualClock(JAN_10), log_lines=False)).write(_entries())
    engine.dispose()
    monkeypatch.setenv("HEADROOM_METRICS_DB_URL", url)
    return url


def report(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["report", "costs", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_csv_rows_per_day_provider_model_task_with_the_dashboards_totals(
        metrics_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    """January's CSV has one row per day/provider/model/task and sums to the same dollars as ai_cost_by."""
    from scaling.metrics.db import open_metrics_db
    from scaling.metrics.queries import ai_cost_by

    code, out, _ = report(capsys, "--since", "2026-01-01", "--until", "2026-01-31")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0])[:4] == ["day", "provider", "model", "task"]
    assert {(r["day"], r["task"]) for r in rows} == {("2026-01-10", "artistSummary"),
                                                    ("2026-01-10", "'=HYPERLINK(\"http://x\")"),
                                                    ("2026-01-11", "userInsightsSummary")}
    total = sum(Decimal(r["cost_usd"]) for r in rows)
    engine = open_metrics_db(metrics_db)
    dashboard = ai_cost_by(engine, dt.datetime(2026, 1, 1), dt.datetime(2026, 2, 1), group_by=[])
    engine.dispose()
    assert round(total, 2) == round(Decimal(str(float(dashboard["cost_usd"].sum()))), 2) == Decimal("3.94")
    summary = next(r for r in rows if r["task"] == "artistSummary")
    assert (summary["calls"], summary["cache_hits"], summary["saved_tokens"]) == ("2", "1", "1500")


def test_json_has_rows_and_totals(metrics_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    """JSON grouped by provider carries the range, the rows and totals (calls, tokens, dollars)."""
    code, out, _ = report(capsys, "--since", "2026-01-01", "--until", "2026-01-31", "--group-by", "provider",
                          "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["group_by"] == ["provider"] and doc["until"].startswith("2026-02-01")
    by = {r["provider"]: r for r in doc["rows"]}
    assert by["anthropic"]["cost_usd"] == 0.735 and by["openai"]["calls"] == 3
    assert doc["totals"]["calls"] == 4 and round(doc["totals"]["cost_usd"], 6) == round(3.2 + 0.735 + 0.0032, 6)


def test_output_file_and_month_grouping(metrics_db: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """--output writes the file and prints a one-line summary; --group-by month,model spans both months."""
    target = tmp_path / "costs.csv"
    code, out, _ = report(capsys, "--since", "2026-01-01", "--until", "2026-02-28", "--group-by", "month,model",
                          "--output", str(target))
    assert code == 0 and out.startswith(f"wrote 3 rows to {target}")
    with target.open() as f:
        rows = list(csv.DictReader(f))
    assert {(r["month"], r["model"]) for r in rows} == {("2026-01-01", "gpt-5.6-terra"),
                                                      ("2026-01-01", "claude-sonnet-5"),
                                                      ("2026-02-01", "gpt-5.6-terra")}


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_formula_cells_are_neutralised(cell: str) -> None:
    """Strings a spreadsheet would evaluate get a leading quote; numbers and plain text are untouched."""
    assert neutralise(cell) == "'" + cell
    assert neutralise("artistSummary") == "artistSummary" and neutralise(-1.5) == -1.5


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "2026-13-01"], "--since: expected a date"),
    (["--since", "2026-02-01", "--until", "2026-01-01"], "--until (2026-01-02 00:00) must be after --since"),
    (["--group-by", "day,week"], "--group-by: more than one time unit"),
    (["--group-by", "user"], "--group-by: unknown user"),
])
def test_bad_options_are_one_line_errors(metrics_db: str, capsys: pytest.CaptureFixture[str], args: list[str],
                                         message: str) -> None:
    """Bad dates or groupings exit 2 with one line naming the option, and write nothing to stdout."""
    code, out, err = report(capsys, *args)
    assert code == 2 and out == "" and message in err and err.count("\n") == 1


def test_unmigrated_metrics_db_is_reported_not_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """An empty metrics DB exits 3 with a hint to migrate."""
    monkeypatch.setenv("HEADROOM_METRICS_DB_URL", f"sqlite:///{tmp_path}/empty.db")
    code, out, err = report(capsys, "--since", "2026-01-01", "--until", "2026-01-31")
    assert code == 3 and out == "" and "migrate" in err
