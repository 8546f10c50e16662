"""``python -m collectors``: one-line errors with exit 2, --once, and a clean stop on SIGINT/SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import func, select

from collectors.__main__ import main
from scaling.metrics import models as m
from scaling.metrics.db import open_metrics_db

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def data_env(tmp_path: Path, metrics_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Default-shaped settings: SQLite files in a data dir, an in-memory state store."""
    env = {"HEADROOM_DATA_DIR": str(tmp_path), "HEADROOM_METRICS_DB_URL": metrics_url,
           "HEADROOM_STATE_URL": f"sqlite:///{tmp_path}/state.db"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


@pytest.mark.parametrize("argv, fragment", [
    (["--run-for", "-3"], "argument --run-for: must be a positive number, got '-3'"),
    (["--interval-scale", "fast"], "argument --interval-scale: expected a number of seconds, got 'fast'"),
    (["--interval", "headroom"], "argument --interval: expected JOB=SECONDS, got 'headroom'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_arguments_are_one_line_and_exit_2(argv: list[str], fragment: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A bad option prints one line naming it, not a usage block or a traceback."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and fragment in err


@pytest.mark.sqlite
def test_unknown_job_is_one_line_and_exit_2(data_env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """--jobs with a name that is not a job: exit 2, listing the known ones."""
    assert main(["--once", "--jobs", "headroom,nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown job(s): nope; known: prewarm," in err


def test_bad_setting_names_its_variable_and_exits_2(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A bad environment variable stops startup with one line naming it."""
    monkeypatch.setenv("HEADROOM_HEADROOM_INTERVAL_S", "soon")
    assert main(["--once"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "HEADROOM_HEADROOM_INTERVAL_S: expected a number, got 'soon'" in err


@pytest.mark.redis
def test_unreachable_state_store_exits_3(data_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """The state store not answering at startup is exit 3 with one line, not a traceback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HEADROOM_STATE_URL", f"redis://127.0.0.1:{port}/0")
    assert main(["--once", "--no-migrate"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "store unavailable" in err


@pytest.mark.sqlite
def test_once_runs_each_job_and_prints_json(data_env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """--once --json runs every chosen job once and reports each outcome."""
    assert main(["--once", "--json", "--jobs", "headroom,db_stats,alerts"]) == 0
    outcomes = json.loads(capsys.readouterr().out)["outcomes"]  # one object, like every command's --json
    assert [(o["job"], o["outcome"], o["recorded"]) for o in outcomes] == [
        ("headroom", "ok", True), ("db_stats", "ok", True), ("alerts", "ok", True)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.e2e
@pytest.mark.sqlite
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_runs_on_schedule_serves_metrics_and_stops_cleanly(sig: signal.Signals, data_env: dict[str, str],
                                                           metrics_url: str) -> None:
    """The process records scheduled runs, serves /metrics when configured, and exits 0 on Ctrl-C or SIGTERM."""
    port = _free_port()
    env = {**os.environ, **data_env, "HEADROOM_PROMETHEUS_PORT": str(port), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "collectors", "--jobs", "headroom,alerts", "--interval-scale",
                             "0.01", "--run-for", "60"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    engine = open_metrics_db(metrics_url)
    try:
        deadline = time.monotonic() + 30
        runs = 0
        while runs < 4 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            with engine.connect() as conn:
                runs = conn.execute(select(func.count()).select_from(m.JOB_RUNS)
                                    .where(m.JOB_RUNS.c.outcome == "ok")).scalar_one()
        assert runs >= 4, proc.stderr.read() if proc.poll() is not None else "no runs recorded in 30 s"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read().decode()
        assert 'cron_runs_total{job="headroom",outcome="ok",source="collectors"}' in body
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()  # reaps it and closes its pipe
        engine.dispose()
    assert proc.returncode == 0
    # A run interrupted by the signal may still log its alert after the summary line.
    assert "collectors: stopped after" in err and "Traceback" not in err


@pytest.mark.sqlite
def test_alerts_job_delivers_to_the_configured_webhook(data_env: dict[str, str], metrics_url: str,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """With HEADROOM_ALERT_WEBHOOK_URL set, an alert the rules fire reaches the receiver, once."""
    from scaling.clock import SystemClock
    from scaling.metrics.records import TableStats
    from scaling.metrics.writer import MetricsWriter
    from tests.collectors.receiver import receiver

    engine = open_metrics_db(metrics_url)
    MetricsWriter(engine, clock=SystemClock(), log_lines=False).record_table_stats([TableStats("*", 1, 9 * 1024**3)])
    with receiver() as r:
        monkeypatch.setenv("HEADROOM_ALERT_WEBHOOK_URL", r.url)
        assert main(["--once", "--jobs", "alerts"]) == 0
        assert main(["--once", "--jobs", "alerts"]) == 0
    with engine.connect() as conn:
        [alert] = conn.execute(select(m.ALERT_EVENTS)).all()
    engine.dispose()
    assert (alert.rule, alert.state, bool(alert.delivered)) == ("db_size", "firing", True)
    assert len(r.bodies) == 1 and "app DB at 90% of its limit" in r.bodies[0]["content"]
