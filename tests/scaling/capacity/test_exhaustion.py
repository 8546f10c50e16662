"""The exhaustion ranking on seeded demo metrics: its figures equal plain SQL, its order is soonest first,
and ``readiness --json`` carries the same rows."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import Engine, text

from scaling.capacity.exhaustion import Exhaustion, exhaustion_ranking
from scaling.cli import main
from scaling.metrics.db import open_metrics_db
from scaling.metrics.demo import generate
from scaling.metrics.migrate import upgrade
from scaling.settings import Settings
from tests.scaling.capacity.conftest import DAY, NOW

pytestmark = pytest.mark.sqlite
WEEK = 7 * DAY


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Engine]]:
    """30 days of "demo" history (the last 7 raw) and 3 days of "collectors", both ending at NOW."""
    url = f"sqlite:///{tmp_path_factory.mktemp('exhaustion') / 'metrics.db'}"
    upgrade(url)
    engine = open_metrics_db(url)
    generate(engine, now=NOW, days=30, users=120, raw_days=7)
    generate(engine, now=NOW, days=3, users=60, raw_days=3, seed=7, source="collectors")
    try:
        yield url, engine
    finally:
        engine.dispose()


def _one(engine: Engine, sql: str, **args: object) -> float:
    with engine.connect() as conn:
        return float(conn.execute(text(sql), {"hi": NOW, **args}).scalar() or 0.0)


def _by_limit(rows: list[Exhaustion]) -> dict[str, Exhaustion]:
    return {r.limit: r for r in rows}


def test_figures_equal_sql_and_rows_run_soonest_first(seeded: tuple[str, Engine]) -> None:
    """Today's share of each kind of limit is the SQL figure; reached rows lead, then by date, then never."""
    _, engine = seeded
    settings = Settings()
    rows = exhaustion_ranking(engine, now=NOW, settings=settings, source="demo", window_s=WEEK)
    named = _by_limit(rows)
    lo = NOW - WEEK
    with engine.connect() as conn:
        upstreams = {str(u) for u in conn.execute(text(
            "SELECT DISTINCT upstream FROM headroom_samples WHERE source = 'demo' AND ts >= :lo AND ts < :hi"),
            {"lo": lo, "hi": NOW}).scalars()}
        durations = [float(d) for d in conn.execute(text(
            "SELECT duration_s FROM job_runs WHERE job = 'prewarm' AND source = 'demo' AND outcome IN "
            "('ok', 'timed_out') AND scheduled_at >= :lo AND scheduled_at <= :hi AND duration_s IS NOT NULL"),
            {"lo": lo, "hi": NOW}).scalars()]
    assert {f"{u} rate limit" for u in upstreams} <= set(named)
    for upstream in upstreams:
        peak = _one(engine, "SELECT MAX(utilisation) FROM headroom_samples WHERE upstream = :u AND source = 'demo' "
                            "AND ts >= :lo AND ts < :hi", u=upstream, lo=lo)
        row = named[f"{upstream} rate limit"]
        assert row.share == pytest.approx(peak), upstream
        assert row.reached == (peak >= 1.0), upstream  # the view's peak, as on the Rate limits page
    size = _one(engine, "SELECT bytes FROM db_stats WHERE table_name = '*' AND source = 'demo' AND ts <= :hi "
                        "ORDER BY ts DESC LIMIT 1")
    assert named["database size"].share == pytest.approx(size / settings.db_limit_bytes)
    cron = next(r for r in rows if r.limit.startswith("cron deadline"))
    assert cron.share == pytest.approx(float(np.quantile(durations, 0.95)) / settings.cron_deadline_s)
    assert any(r.limit.startswith("Last.fm budget per run") for r in rows)
    assert {"openai budget ($50/month)", "perplexity budget ($20/month)"} <= set(named)

    # Order: reached now, then forecast dates ascending, then "not at this trend".
    groups = [0 if r.reached else 1 if r.date is not None else 2 for r in rows]
    assert groups == sorted(groups) and 0 in groups
    dates = [r.date for r in rows if r.date is not None]
    assert dates == sorted(dates) and all(d >= NOW for d in dates)
    for r in rows:
        assert r.reached or r.date is None or "/week over" in r.trend, r


def test_a_short_history_says_too_little_data(seeded: tuple[str, Engine]) -> None:
    """Three days of collectors give shares but no dates: each trend says "too little data"."""
    _, engine = seeded
    rows = exhaustion_ranking(engine, now=NOW, settings=Settings(), source="collectors", window_s=WEEK)
    assert rows and all(r.source == "collectors" for r in rows)
    assert all(r.date is None for r in rows)
    assert all(r.reached or r.trend.startswith("too little data (") for r in rows), rows


def test_readiness_json_carries_the_same_rows(seeded: tuple[str, Engine], monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """``readiness --json``'s "exhaustion" is the library's ranking for the same view, row for row."""
    url, engine = seeded
    monkeypatch.setenv("HEADROOM_METRICS_DB_URL", url)
    assert main(["readiness", "--json", "--at", str(NOW), "--range", "7d", "--source", "demo"]) == 0
    out = json.loads(capsys.readouterr().out)
    want = exhaustion_ranking(engine, now=NOW, settings=Settings(), source="demo", window_s=WEEK)
    got = out["exhaustion"]
    assert [(r["limit"], r["reached"], r["trend"]) for r in got] == [(r.limit, r.reached, r.trend) for r in want]
    for row, expected in zip(got, want):
        assert row["share"] == pytest.approx(expected.share) and row["date"] == pytest.approx(expected.date)
