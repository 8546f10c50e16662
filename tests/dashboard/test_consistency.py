"""One truth per view: each page's headline figures equal plain SQL, each other and ``readiness --json``.

A view is (range, source). For two sources and two ranges, the figures an operator
compares across pages (Spotify's 429s and peak share, prewarm timeouts, alerts firing,
readiness %, how long ago cleanup finished) are read off the rendered pages, recomputed
here straight from the metrics tables, and taken from the CLI's JSON.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable

import pytest
from sqlalchemy import text
from streamlit.testing.v1 import AppTest

from dashboard import formatting as fmt
from scaling.metrics.db import open_metrics_db
from scaling.metrics.demo import generate
from tests.dashboard.conftest import NOW, ROOT, migrated, texts

pytestmark = [pytest.mark.sqlite, pytest.mark.slow]
RANGES = {"24h": ("Last 24 hours", 86400), "7d": ("Last 7 days", 7 * 86400)}
SOURCES = ("demo", "collectors")


@pytest.fixture(scope="module")
def two_sources(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A metrics DB with two histories side by side: 30 days of "demo" and 10 days of "collectors"."""
    url = f"sqlite:///{tmp_path_factory.mktemp('consistency') / 'metrics.db'}"
    migrated(url)
    engine = open_metrics_db(url)
    try:
        generate(engine, now=NOW, days=30, users=120, raw_days=7)
        generate(engine, now=NOW, days=10, users=60, raw_days=7, seed=7, source="collectors")
    finally:
        engine.dispose()
    return url


def _sql(url: str, since: float, source: str) -> dict[str, float]:
    """The headline figures straight from the tables."""
    engine = open_metrics_db(url)
    args = {"lo": since, "hi": NOW, "src": source}
    try:
        with engine.connect() as conn:
            def one(sql: str) -> float:
                return float(conn.execute(text(sql), args).scalar() or 0)
            raw_from = one("SELECT MIN(ts) FROM headroom_samples WHERE source = :src")
            assert raw_from <= since, "the windows must lie in raw history for this plain SQL to hold"
            return {
                "429": one("SELECT SUM(upstream_429) FROM headroom_samples WHERE upstream = 'spotify' "
                           "AND source = :src AND ts >= :lo AND ts < :hi"),
                "peak": one("SELECT MAX(utilisation) FROM headroom_samples WHERE upstream = 'spotify' "
                            "AND source = :src AND ts >= :lo AND ts < :hi"),
                "timeouts": one("SELECT COUNT(*) FROM job_runs WHERE job = 'prewarm' AND outcome = 'timed_out' "
                                "AND source = :src AND scheduled_at >= :lo AND scheduled_at < :hi"),
                "firing": one("SELECT COUNT(*) FROM alert_events WHERE source = :src AND started_at <= :hi AND "
                              "(resolved_at IS NULL OR resolved_at > :hi)"),
                "cleanup_age": NOW - one("SELECT MAX(finished_at) FROM job_runs WHERE job = 'cleanup' "
                                         "AND outcome = 'ok' AND source = :src AND finished_at <= :hi"),
            }
    finally:
        engine.dispose()


def _cli(url: str, window: str, source: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-m", "scaling", "readiness", "--json", "--at", str(NOW), "--range", window,
                           "--source", source], cwd=ROOT, capture_output=True, text=True, check=False,
                          env={"HEADROOM_METRICS_DB_URL": url, "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode == 0, done.stderr
    parsed: dict[str, object] = json.loads(done.stdout)
    return parsed


def _page(open_page: Callable[..., AppTest], page: str, url: str, window: str, source: str) -> AppTest:
    at: AppTest = open_page(page, url, env={})
    at.session_state["range_preset"] = RANGES[window][0]
    at.session_state["source"] = source
    at.run()
    assert not at.exception, at.exception
    return at


def _item(cli: dict[str, object], code: str) -> dict[str, object]:
    phases = cli["phases"]
    assert isinstance(phases, list)
    return next(i for p in phases for i in p["items"] if i["item"] == code)


@pytest.mark.parametrize("window", list(RANGES))
@pytest.mark.parametrize("source", SOURCES)
def test_headline_figures_agree_across_pages_sql_and_the_cli(open_page: Callable[..., AppTest], two_sources: str,
                                                              window: str, source: str) -> None:
    """429s, peak share, prewarm timeouts, alerts firing, readiness % and cleanup age agree everywhere."""
    span = RANGES[window][1]
    want = _sql(two_sources, NOW - span, source)
    cli = _cli(two_sources, window, source)
    spotify, cron, monitoring, cleanup = (_item(cli, c)["numbers"] for c in ("1.1", "2.2", "2.3", "1.3"))
    assert isinstance(spotify, dict) and isinstance(cron, dict)
    assert isinstance(monitoring, dict) and isinstance(cleanup, dict)
    # CLI == SQL
    assert spotify["upstream_429_7d"] == want["429"]
    assert spotify["peak_utilisation"] == pytest.approx(want["peak"])
    assert cron["timed_out_24h"] == want["timeouts"]
    assert monitoring["alerts_firing"] == want["firing"]
    assert cleanup["last_ok_age_s"] == pytest.approx(want["cleanup_age"])

    overview = _page(open_page, "overview", two_sources, window, source)
    page = texts(overview)
    # Readiness: the card is the CLI's object; its evidence names the picked range.
    card = next(m for m in overview.metric if "ready" in m.label and "Phase" in m.label)
    assert card.value == f"{cli['readiness_pct']:.0f}%"
    words = "24 hours" if window == "24h" else "7 days"
    line = next(x for x in page.splitlines() if "1.1 Spotify rate limiting" in x)
    assert f"{int(want['429']):,} upstream 429s in {words}, peak {want['peak']:.0%}" in line, line
    assert f"{int(want['timeouts'])} timeouts in {words}" in page
    assert f"alerts firing: {int(want['firing'])}" in page
    assert len(overview.error) == int(want["firing"])  # one red box per firing alert of this source

    rate_limits = _page(open_page, "rate_limits", two_sources, window, source)
    caption = next(c.value for c in rate_limits.caption if "× 429" in c.value)  # spotify is the first upstream
    assert f"peak {fmt.percent(want['peak'])} · {fmt.count(want['429'])} × 429" in caption

    # The exhaustion ranking's "today's share" of Spotify's limit is that same peak: Overview, CLI and SQL.
    ranking = next(d.value for d in overview.dataframe if "today's share" in d.value.columns)
    assert ranking.set_index("limit").loc["spotify rate limit", "today's share"] == fmt.percent(want["peak"])
    rows = cli["exhaustion"]
    assert isinstance(rows, list)
    assert next(r["share"] for r in rows if r["limit"] == "spotify rate limit") == pytest.approx(want["peak"])
    assert [r["limit"] for r in rows] == list(ranking["limit"])  # same rows, same order

    cron_page = _page(open_page, "cron", two_sources, window, source)
    failed = next(m for m in cron_page.metric if m.label == "Failed or timed out")
    assert re.match(rf"{fmt.count(want['timeouts'])} timed out", failed.proto.delta)

    database = _page(open_page, "database", two_sources, window, source)
    last = next(c.value for c in database.caption if c.value.startswith("Last cleanup finished"))
    assert f"Last cleanup finished {fmt.ago(NOW - want['cleanup_age'], NOW)}" in last
