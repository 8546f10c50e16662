"""``python -m scaling readiness``: output, JSON, and exit codes for empty, unmigrated and unreachable DBs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scaling.cli import main
from scaling.metrics.writer import MetricsWriter
from tests.scaling.capacity.conftest import NOW, fill

AT = "2026-01-02T12:00"  # NOW


def test_prints_phase_items_and_next_trigger(writer: MetricsWriter, metrics_url: str, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """On a filled DB: required phase, each item with its evidence, and the next trigger's forecast date; exit 0."""
    fill(writer)
    monkeypatch.setenv("HEADROOM_METRICS_DB_URL", metrics_url)
    assert main(["readiness", "--at", AT]) == 0
    out = capsys.readouterr().out
    assert "Required phase: 2 now" in out
    assert "Next trigger: 150 users (Must complete Phase 2 (cron timeout risk)) forecast 2026-01-18" in out
    assert ("1.3 Database cleanup & indexes   AT RISK    cleanup: last successful run 30 min ago, "
            "3,204 rows deleted") in out
    assert "2.1 Last.fm rate limiting        NOT READY  Last.fm limiter: 1 upstream 429s in 7 days" in out


def test_json_output(writer: MetricsWriter, metrics_url: str, monkeypatch: pytest.MonkeyPatch,
                     capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints one object with the phases, items and numbers."""
    fill(writer)
    monkeypatch.setenv("HEADROOM_METRICS_DB_URL", metrics_url)
    assert main(["readiness", "--json", "--at", str(NOW)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["required_phase"] == 2 and data["users"] == 118 and data["next_trigger"]["users"] == 150
    items = {i["item"]: i for p in data["phases"] for i in p["items"]}
    assert items["1.1"]["status"] == "ready" and items["2.2"]["numbers"]["duration_p95_s"] == 9.0


def test_empty_metrics_db_says_what_to_run(metrics_url: str, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A migrated but empty DB exits 1 pointing at demo-metrics and the collectors."""
    monkeypatch.setenv("HEADROOM_METRICS_DB_URL", metrics_url)
    assert main(["readiness"]) == 1
    err = capsys.readouterr().err
    assert "holds no metrics" in err and "python -m scaling demo-metrics" in err and "python -m collectors" in err


@pytest.mark.sqlite
def test_unmigrated_db_exits_1_with_migrate_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A DB without the schema exits 1 and names `migrate` (a missing file is exit 3: tests/hostile)."""
    (tmp_path / "none.db").touch()
    monkeypatch.setenv("HEADROOM_METRICS_DB_URL", f"sqlite:///{tmp_path}/none.db")
    assert main(["readiness"]) == 1
    assert "python -m scaling migrate" in capsys.readouterr().err


@pytest.mark.postgres
def test_unreachable_db_exits_3(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing listening where the metrics DB should be: exit 3 with a one-line error."""
    monkeypatch.setenv("HEADROOM_METRICS_DB_URL", "postgresql://postgres@127.0.0.1:1/metrics")
    assert main(["readiness"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: store unavailable:") and len(err.strip().splitlines()) == 1


def test_bad_date_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """--at that is not a date exits 2 naming the expected forms."""
    with pytest.raises(SystemExit) as exc:
        main(["readiness", "--at", "yesterday"])
    assert exc.value.code == 2
    assert "expected an ISO date" in capsys.readouterr().err
