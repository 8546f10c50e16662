"""Calibration picks up ingested production data (tail captures, Cloudflare rows) and says which inputs are defaults."""

from __future__ import annotations

import io
import json
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from scaling.capacity.calibration import KV_PER_POLLED_USER, calibrate
from scaling.capacity.cpu_model import DEFAULT_CPU_MODEL
from scaling.capacity.simulate import Scenario
from scaling.clock import VirtualClock
from scaling.cloudflare.pull import PulledRow
from scaling.cloudflare.storage import write_cron_runs, write_usage
from scaling.ingest.ledger import LedgerWriter
from scaling.ingest.tail_ingest import ingest_tail
from scaling.ingest.tail_metrics import TailMapper
from scaling.metrics.db import open_metrics_db
from scaling.metrics.migrate import upgrade

BACKENDS = [pytest.param("sqlite", marks=pytest.mark.sqlite), pytest.param("postgres", marks=pytest.mark.postgres)]
T0 = 1_793_491_200.0  # 2026-11-01 00:00 UTC
DAY = 86400.0
NOW = T0 + 4 * DAY
USERS, ACTIVE, VIEWS = 40, 8, 5.0  # views: the measured average per user per day


@pytest.fixture(scope="module")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("calibration") / "metrics.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path, _template: Path) -> Iterator[Engine]:
    """A migrated, empty metrics DB on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        shutil.copyfile(_template, tmp_path / "metrics.db")
        url = f"sqlite:///{tmp_path}/metrics.db"
        eng = open_metrics_db(url)
        yield eng
        eng.dispose()
        return
    import psycopg

    pg = request.getfixturevalue("pg_url")
    schema = f"c_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = f"{pg}?options=-csearch_path%3D{schema}"
    upgrade(url)
    eng = open_metrics_db(url)
    try:
        yield eng
    finally:
        eng.dispose()
        with psycopg.connect(pg, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _capture(t0: float = T0) -> bytes:
    """Three days of a Worker: an hourly cron whose CPU is 2 ms + 0.8 ms per polled user, and 5 views/user/day."""
    lines = []
    for i in range(72):
        at = (t0 + i * 3600) * 1000
        polled = 20 + (i % 10) * 4
        metrics = json.dumps({"userCount": USERS, "activeUserCount": ACTIVE, "polled": polled})
        lines.append({"outcome": "ok", "scriptName": "listentomore", "exceptions": [], "eventTimestamp": at,
                      "event": {"cron": "0 * * * *", "scheduledTime": at}, "wallTime": 4000 + polled,
                      "cpuTime": 2 + 0.8 * polled, "logs": [{"message": ["[METRICS]", metrics], "level": "log",
                                                              "timestamp": at + 1}]})
    fetches = int(VIEWS * USERS * 3)
    for j in range(fetches):
        at = (t0 + 30 + j * (3 * DAY - 60) / fetches) * 1000
        lines.append({"outcome": "ok", "scriptName": "listentomore", "exceptions": [], "logs": [],
                      "eventTimestamp": at, "wallTime": 40, "cpuTime": 3,
                      "event": {"request": {"url": f"https://listentomore.com/album/{j}", "method": "GET"}}})
    return "\n".join(json.dumps(x) for x in lines).encode()


def _ingest(engine: Engine, t0: float = T0) -> None:
    summary = ingest_tail(io.BytesIO(_capture(t0)), mapper=TailMapper(source="worker", clock=VirtualClock()),
                          writer=LedgerWriter(engine, source="worker"))
    assert summary.events == 72 + int(VIEWS * USERS * 3) and summary.skipped == 0


def test_calibration_picks_up_an_ingested_tail_capture(engine: Engine) -> None:
    """Views, active share and CPU per run and per polled user come from the capture, and the scenario takes them."""
    _ingest(engine)
    cal = calibrate(engine, now=NOW)
    assert cal.active_share.from_data and cal.active_share.value == pytest.approx(ACTIVE / USERS)
    views = cal.views_per_user_day
    assert views.from_data and views.value == pytest.approx(VIEWS / (1 + 3 * ACTIVE / USERS), rel=0.01)
    assert "600 tail fetch events over 3.0 days" in views.provenance
    assert cal.cpu_ms_per_run.from_data
    polled = [20 + (i % 10) * 4 for i in range(72)]
    assert cal.cpu_ms_per_run.value == pytest.approx(2 + 0.8 * sum(polled) / len(polled), abs=1e-3)
    assert "72 tail cron runs' cpuTime" in cal.cpu_ms_per_run.provenance
    assert cal.cpu_ms_per_user.value == pytest.approx(0.8)
    assert cal.cpu.base_ms == pytest.approx(2.0, abs=1e-3)
    assert cal.cpu.per_fetch_ms == pytest.approx(0.8 - DEFAULT_CPU_MODEL.per_user_ms
                                                 - KV_PER_POLLED_USER * DEFAULT_CPU_MODEL.per_kv_ms, abs=1e-3)
    assert cal.cpu.source.startswith("fitted")

    sc = cal.apply(Scenario(users=100))
    assert (sc.views_per_user_day, sc.active_share, sc.cpu) == (views.value, cal.active_share.value, cal.cpu)
    # A simulated run's CPU follows the fitted model: a run polling 30 users costs what production's did.
    from scaling.capacity.cpu_model import Usage

    run = Usage(fetches=30, users=30, kv_ops=30, coordination=60)
    assert sc.cpu.cpu_s(run) * 1000 == pytest.approx(2 + 0.8 * 30, rel=0.01)
    assert cal.apply(Scenario(users=100, active_share=0.05), keep_active_share=True).active_share == 0.05


def test_cloudflare_rows_calibrate_views_and_cpu(engine: Engine) -> None:
    """Without tail events, Cloudflare's requests (less cron runs) and CPU per scheduled invocation are used."""
    from scaling.metrics.records import UserCounts
    from scaling.metrics.writer import MetricsWriter

    writer = MetricsWriter(engine, clock=VirtualClock(), log_lines=False)
    writer.record([UserCounts(total=50, with_lastfm=25, active=10, ts=T0 + h * 3600) for h in range(48)])
    hours = 48
    write_usage(engine, "workersInvocationsAdaptive", "listentomore", 3600.0,
                [PulledRow(T0 + h * 3600, "success", "requests", 12.0 + 12) for h in range(hours)], now=NOW)
    runs = [PulledRow(T0 + h * 3600, "0 * * * *", m, v) for h in range(hours)
            for m, v in (("status", "success"), ("cpu_time_us", 27_000.0))]
    write_cron_runs(engine, "listentomore", runs, now=NOW)
    cal = calibrate(engine, now=NOW)
    assert cal.active_share.value == pytest.approx(0.2) and "collectors" in cal.active_share.provenance
    # 24 requests an hour, one of them the cron: 23 x 24 = 552 page views a day over 50 users.
    mean = (24 - 1) * 24 / 50
    assert cal.views_per_user_day.value == pytest.approx(mean / (1 + 3 * 0.2), rel=1e-3)
    assert "Cloudflare, less 48 cron runs" in cal.views_per_user_day.provenance
    assert cal.cpu_ms_per_run.value == pytest.approx(27.0)
    # 25 users with Last.fm polled per run (the upstream cron polls them all): (27 - 2) / 25 ms each.
    assert cal.cpu_ms_per_user.value == pytest.approx(1.0)
    assert "Last.fm name" in cal.cpu_ms_per_user.provenance


def test_without_data_every_input_is_a_labelled_default(engine: Engine) -> None:
    """An empty metrics DB leaves the scenario as it was and labels each input 'default: ...'."""
    cal = calibrate(engine, now=NOW)
    assert not cal.from_data
    assert all(i.provenance.startswith("default: ") and not i.from_data for i in cal.inputs)
    sc = Scenario(users=100, active_share=0.05)
    assert cal.apply(sc) == sc
    assert cal.cpu == DEFAULT_CPU_MODEL


@pytest.mark.sqlite
def test_cli_calibrate_feeds_the_simulation_and_the_stored_capacity(
        tmp_path: Path, _template: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`simulate --calibrate` runs with the data's inputs; `--capacity` stores its answer with their provenance."""
    from scaling.cli import main
    from scaling.metrics.queries import latest_capacity

    shutil.copyfile(_template, tmp_path / "metrics.db")
    url = f"sqlite:///{tmp_path}/metrics.db"
    engine = open_metrics_db(url)
    try:
        _ingest(engine, t0=time.time() - 4 * DAY)
        monkeypatch.setenv("HEADROOM_METRICS_DB_URL", url)
        assert main(["simulate", "--users", "5", "--hours", "0.05", "--calibrate", "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        scenario = out["results"][0]["scenario"]
        assert scenario["active_share"] == pytest.approx(ACTIVE / USERS)
        assert scenario["views_per_user_day"] == pytest.approx(VIEWS / (1 + 3 * ACTIVE / USERS), rel=0.01)
        assert scenario["cpu"]["source"].startswith("fitted")
        assert [i["from_data"] for i in out["calibration"]["inputs"]] == [True] * 4

        assert main(["simulate", "--capacity", "--design", "upstream", "--hours", "0.1", "--calibrate"]) == 0
        text = capsys.readouterr().out
        assert "active share" in text and "recorded in the metrics DB" in text
        rec = latest_capacity(engine)
        assert rec is not None and rec.source == "cli" and rec.design == "upstream"
        assert rec.active_share == pytest.approx(ACTIVE / USERS)
        assert rec.provenance["active share"].startswith("from 72 user-count samples (worker)")
        assert f"≈ {rec.users_carried:,} users; then {rec.first_break_limit} breaks" in text
    finally:
        engine.dispose()
