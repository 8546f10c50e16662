"""``python -m scaling ingest``: summaries for people and machines, stdin and pipes, one-line errors with exit 2."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from scaling.cli import main
from scaling.metrics import models as m
from scaling.metrics.db import open_metrics_db
from tests.scaling.ingest.conftest import DUMP, LINES, PRETTY

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def dbs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """Metrics and app DBs on SQLite, configured through the environment as an operator would."""
    metrics, app = f"sqlite:///{tmp_path}/metrics.db", f"sqlite:///{tmp_path}/app.db"
    monkeypatch.setenv("HEADROOM_METRICS_DB_URL", metrics)
    monkeypatch.setenv("HEADROOM_APP_DB_URL", app)
    return SimpleNamespace(metrics=metrics, app=app)


def worker_events(url: str, source: str = "worker") -> int:
    engine = open_metrics_db(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(m.WORKER_EVENTS)
                                    .where(m.WORKER_EVENTS.c.source == source)).scalar_one())
    finally:
        engine.dispose()


def test_a_capture_file_prints_the_summary(dbs: SimpleNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    """The command migrates the metrics DB, ingests and prints one summary; a rerun writes nothing new."""
    assert main(["ingest", "wrangler-tail", str(PRETTY)]) == 0
    first = capsys.readouterr().out
    assert first.startswith("ingested 7 events (fetch 3, scheduled 3, alarm 1); skipped 4 malformed (byte 0 line 1:")
    assert "3 cron runs, 1 upstream 429s, 1 rate-limit warnings" in first
    assert "wrote 17 metric rows (0 duplicates)" in first
    assert main(["ingest", "wrangler-tail", str(PRETTY)]) == 0
    assert "wrote 0 metric rows (7 duplicates)" in capsys.readouterr().out


def test_json_summary_from_stdin_with_a_source_label(dbs: SimpleNamespace, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`-` reads stdin; --json prints one object; --source labels the rows."""
    monkeypatch.setattr(sys, "stdin", SimpleNamespace(buffer=io.BytesIO(LINES.read_bytes())))
    assert main(["ingest", "wrangler-tail", "-", "--json", "--source", "staging"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["source"] == "staging" and report["events"] == 6 and report["skipped"] == 3
    assert report["skipped_details"][1] == {"offset": 1261, "line": 5, "bytes": 240,
                                            "reason": "Expecting ',' delimiter at line 5 column 226"}
    assert report["written"]["rows_by_table"]["worker_events"] == 6
    assert worker_events(dbs.metrics, "staging") == 6 and worker_events(dbs.metrics) == 0


@pytest.mark.parametrize(("argv", "message"), [
    (["ingest", "wrangler-tial", "x"], "invalid choice: 'wrangler-tial'"),
    (["ingest"], "the following arguments are required: KIND"),
    (["ingest", "wrangler-tail"], "the following arguments are required: FILE|-"),
    (["ingest", "wrangler-tail", "no-such-capture.json"], "no such file: no-such-capture.json"),
    (["ingest", "wrangler-tail", str(PRETTY), "--source", " "], "--source must not be empty"),
    (["ingest", "d1-export", "missing.sql"], "no such file: missing.sql"),
    (["ingest", "d1-export", "."], ". is a directory"),
])
def test_bad_arguments_are_one_line_and_exit_2(dbs: SimpleNamespace, capsys: pytest.CaptureFixture[str],
                                               argv: list[str], message: str) -> None:
    """A wrong subcommand, a missing argument or file prints one error line and exits 2."""
    with pytest.raises(SystemExit) as info:
        code = main(argv)
        raise SystemExit(code)
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert message in err and err.count("\n") == 1 and err.startswith("error: ")


def test_input_without_a_single_event_exits_1(dbs: SimpleNamespace, capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    """A file that is not a tail capture at all is reported as such (exit 1), not as a success."""
    wrong = tmp_path / "notes.txt"
    wrong.write_text("these are not the events you are looking for\n")
    assert main(["ingest", "wrangler-tail", str(wrong)]) == 1
    assert "ingested 0 events; skipped 1 malformed" in capsys.readouterr().out


def test_d1_export_reports_and_exits_1_when_rows_were_refused(dbs: SimpleNamespace,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """The dump loads into the app DB; refused rows make the exit code 1 and --json lists them."""
    assert main(["ingest", "d1-export", str(DUMP), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["rows_loaded"] == 8 and report["problem_count"] == 2
    assert report["not_executed"]["INSERT INTO d1_migrations"] == 2


def test_a_clean_dump_exits_0_and_a_dry_run_says_would(dbs: SimpleNamespace, capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path) -> None:
    """Without problems the load exits 0; --dry-run words the summary as what would happen."""
    clean = tmp_path / "clean.sql"
    clean.write_text("PRAGMA defer_foreign_keys=TRUE;\nINSERT INTO \"users\"(id, email) VALUES('u1', 'a@x');\n")
    assert main(["ingest", "d1-export", str(clean), "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("read 2 statements; would load 1 rows: users 1 (1 new)")
    assert main(["ingest", "d1-export", str(clean)]) == 0
    assert "loaded 1 rows: users 1 (1 new)" in capsys.readouterr().out


def test_d1_export_reads_stdin(dbs: SimpleNamespace, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """`-` spools the dump from stdin (loading needs two passes) and loads it the same way."""
    monkeypatch.setattr(sys, "stdin", SimpleNamespace(buffer=io.BytesIO(DUMP.read_bytes())))
    assert main(["ingest", "d1-export", "-"]) == 1
    assert "loaded 8 rows: users 3 (3 new)" in capsys.readouterr().out


@pytest.mark.e2e
def test_a_real_pipe_into_the_command(dbs: SimpleNamespace) -> None:
    """`cat capture | python -m scaling ingest wrangler-tail -` works as the live pipeline would."""
    env = {"HEADROOM_METRICS_DB_URL": dbs.metrics, "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "scaling", "ingest", "wrangler-tail", "-"], input=PRETTY.read_bytes(),
                          capture_output=True, cwd=ROOT, env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().startswith("ingested 7 events") and worker_events(dbs.metrics) == 7
