"""Each page rendered by AppTest on 30 days of demo metrics: no exception, its key numbers, its thresholds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import altair as alt
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import formatting as fmt
from scaling.capacity.exhaustion import exhaustion_ranking
from scaling.metrics import queries as q
from scaling.metrics.db import open_metrics_db
from scaling.settings import Settings
from tests.dashboard.conftest import APP, NOW, PAGES, charts, texts, thresholds

pytestmark = pytest.mark.sqlite
OpenPage = Callable[..., AppTest]


@pytest.fixture(scope="module")
def rendered(demo_url: str) -> Iterator[Callable[[str], AppTest]]:
    """Each page rendered once per module (AppTest runs are the slow part), shared by the tests that read it."""
    done: dict[str, AppTest] = {}

    def page(name: str) -> AppTest:
        if name not in done:
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("HEADROOM_METRICS_DB_URL", demo_url)
                st.cache_data.clear()
                st.cache_resource.clear()
                at = AppTest.from_file(APP, default_timeout=60)
                at.session_state["headroom_now"] = NOW
                at.run()
                if name != "overview" and not at.exception:
                    at.switch_page(f"app_pages/{name}.py").run()
                done[name] = at
        return done[name]

    yield page


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_its_title_and_charts_within_budget(rendered: Callable[[str], AppTest], page: str) -> None:
    """Every page runs without an exception, and no chart ships more than 2,000 data rows."""
    at = rendered(page)
    assert not at.exception, at.exception
    assert at.title[0].value == page.replace("_", " ").capitalize()
    for chart in charts(at):
        assert sum(len(rows) for rows in chart["rows"].values()) <= 2000, chart.get("title")
        spec = {k: v for k, v in chart.items() if k != "rows"}
        alt.LayerChart.from_dict(spec, validate=True)  # a valid Vega-Lite layer spec


def test_overview_shows_users_phase_readiness_forecast_and_alerts(rendered: Callable[[str], AppTest],
                                                                  demo_url: str) -> None:
    """The overview names the users now, the required phase, each item's evidence, the next trigger and alerts."""
    at = rendered("overview")
    users = q.latest_user_counts(open_metrics_db(demo_url))
    assert users is not None and users.total == 120
    assert metric(at, "Users") == "120"
    assert metric(at, "With Last.fm") == fmt.count(users.with_lastfm)
    assert metric(at, "Active") == fmt.count(users.active)
    assert metric(at, "Phase required now") == "Phase 2"
    nxt = next(m for m in at.metric if m.label.startswith("Next trigger"))
    assert nxt.label == "Next trigger: 150 users" and nxt.value[:4] == "2026"
    page = texts(at)
    assert "1.1 Spotify rate limiting" in page and "upstream 429s in 7 days" in page
    assert "2.2 Cron optimization" in page and "cron p95" in page
    assert "cleanup: last successful run" in page
    assert fmt.plain("cron_timeout") in page  # the demo's alert still firing, its name shown as typed
    users_chart = charts(at)[0]
    assert {50.0, 100.0, 150.0} <= set(thresholds(users_chart).values())


def test_rate_limits_draw_the_warning_and_the_limit_for_every_upstream(rendered: Callable[[str], AppTest],
                                                                      demo_url: str) -> None:
    """One chart per upstream with the 80% warning and the configured limit, 429s marked, cooldowns shaded."""
    at = rendered("rate_limits")
    per_upstream = [c for c in charts(at) if "share of limit" in c["title"]]
    assert sorted(c["title"].split(":")[0] for c in per_upstream) == ["lastfm", "openai", "perplexity", "songlink",
                                                                       "spotify"]
    for chart in per_upstream:
        lines = thresholds(chart)
        assert lines["80% warning"] == 0.8
        assert 1.0 in lines.values()
        names = [layer.get("name") for layer in chart["layer"]]
        assert "marker:upstream_429" in names and "band:cooldown_share" in names
        top = chart["layer"][names.index("data")]["encoding"]["y"]["scale"]["domain"][1]
        assert top > 1.0  # the limit line is inside the y-domain even when nothing nears it
    spotify = next(c for c in per_upstream if c["title"].startswith("spotify"))
    assert thresholds(spotify)["limit 120/60s"] == 1.0
    engine = open_metrics_db(demo_url)
    latest = q.latest_headroom(engine, now=NOW)
    spotify_now = latest[latest.upstream == "spotify"]["utilisation"].max()
    assert metric(at, "spotify") == fmt.percent(spotify_now)


def test_cron_compares_durations_with_the_deadline(rendered: Callable[[str], AppTest], demo_url: str) -> None:
    """Cron shows p95 against 30 s, the 24 s warning and 30 s deadline lines, failures and users polled."""
    at = rendered("cron")
    engine = open_metrics_db(demo_url)
    summary = q.cron_summary(engine, NOW - 7 * 86400, NOW + 30)
    prewarm = summary[summary.job == "prewarm"].iloc[0]
    assert metric(at, "p95 duration") == fmt.duration(prewarm.duration_p95)
    assert metric(at, "Runs") == fmt.count(prewarm.runs)
    assert metric(at, "Failed or timed out") == fmt.count(prewarm.failed + prewarm.timed_out)
    duration = charts(at)[0]
    assert thresholds(duration) == {"24 s warning": 24.0, "30 s deadline": 30.0}
    titles = [c["title"] for c in charts(at)]
    assert "Users polled and skipped per run (mean per bucket)" in titles
    assert "Outcomes per bucket" in titles


def test_database_measures_size_against_the_10_gb_limit(rendered: Callable[[str], AppTest], demo_url: str) -> None:
    """Database shows the size, its share of 10 GB, the limit line, rows deleted and the forecast."""
    at = rendered("database")
    engine = open_metrics_db(demo_url)
    latest = q.latest_db_stats(engine)
    whole = latest[latest.table_name == "*"].iloc[0]
    assert metric(at, "Database size") == fmt.bytes_(whole.bytes)
    assert metric(at, "Rows") == fmt.count(whole.rows)
    share = fmt.percent(whole.bytes / (10 * 1024**3), 2)
    size_chart = next(c for c in charts(at) if c["title"] == f"Database size ({share} of the 10.0 GB limit)")
    # Far below the limit, the axis follows the data (MB) and the title names the limit instead of a
    # 0–10 GB axis flattening the line.
    assert thresholds(size_chart) == {}
    assert size_chart["layer"][0]["encoding"]["y"]["title"] == "MB"
    assert metric(at, "Reaches the limit") in ("> 10 years", "reached") or metric(at, "Reaches the limit")[:2] == "20"
    assert "rows deleted" in texts(at)


def test_cache_shows_hit_rate_and_size_per_family(rendered: Callable[[str], AppTest], demo_url: str) -> None:
    """Cache shows the overall hit rate the summary query gives, and one series per key family."""
    at = rendered("cache")
    engine = open_metrics_db(demo_url)
    summary = q.cache_summary(engine, NOW - 7 * 86400, NOW + 30)
    rate = summary.hits.sum() / (summary.hits.sum() + summary.misses.sum())
    assert metric(at, "Hit rate") == fmt.percent(rate, 1)
    hit_chart = charts(at)[0]
    data = hit_chart["rows"][hit_chart["layer"][0]["data"]["name"]]
    assert set(data["series"]) == set(summary.family)


def test_ai_cost_shows_spend_budgets_projection_and_exports(rendered: Callable[[str], AppTest], demo_url: str) -> None:
    """AI cost shows the range's spend from the cost query, budget lines, month-to-date and two downloads."""
    at = rendered("costs")
    engine = open_metrics_db(demo_url)
    spend = q.ai_cost_by(engine, NOW - 7 * 86400, NOW + 30)["cost_usd"].sum()
    assert metric(at, "Spend in range") == fmt.usd(spend)
    month = q.ai_cost_by(engine, 1_767_225_600.0, NOW, ())["cost_usd"].sum()
    assert metric(at, "Month to date") == fmt.usd(month)
    assert metric(at, "Monthly budgets") == "$70.00"
    assert metric(at, "Projected month end").startswith("$")
    per_day = charts(at)[0]
    assert per_day["title"] == "Spend per day by provider"
    assert list(thresholds(per_day)) == ["budget pace $2.30/day"]
    cumulative = next(c for c in charts(at) if c["title"].startswith("Cumulative spend"))
    # Both providers the app (and the demo) spends on: OpenAI and Perplexity, each against its budget.
    assert thresholds(cumulative) == {"openai budget $50.00": 50.0, "perplexity budget $20.00": 20.0}
    assert [b.proto.label for b in at.get("download_button")] == ["Download CSV", "Download JSON"]


def test_capacity_planner_simulates_a_scenario_with_its_limits(open_page: OpenPage, demo_url: str) -> None:
    """The planner runs a small scenario in virtual time and shows the cron, pages, AI and each upstream's peak."""
    at = open_page("capacity_planner", demo_url)
    assert at.number_input[0].value == 120  # defaults to the users the metrics DB has now
    at.number_input[0].set_value(20)
    at.number_input[1].set_value(0.25)
    at.button[0].click().run()
    assert not at.exception, at.exception
    verdict = (at.success or at.error or at.warning)[0].value
    assert verdict.startswith("cron5m: ") and "20 users" in verdict
    assert {"Invocation wall max", "Invocation CPU max", "AI per month (steady)", "Cloudflare per month"} <= {
        m.label for m in at.metric}
    peaks = next(c for c in charts(at) if c["title"].startswith("Busiest window"))
    assert thresholds(peaks) == {"80% warning": 0.8, "limit": 1.0}


def _forecast(chart: dict[str, Any]) -> Any:
    """The rows of a chart's forecast line layer (None without one)."""
    layer = next((layer for layer in chart.get("layer", []) if layer.get("name") == "forecast"), None)
    return None if layer is None else chart["rows"][layer["data"]["name"]]


def test_overview_ranks_every_limit_soonest_first(rendered: Callable[[str], AppTest], demo_url: str) -> None:
    """The ranking on the Overview is the library's, row for row, worded: reached now, dates, shares, trends."""
    at = rendered("overview")
    table = next(d.value for d in at.dataframe if "today's share" in d.value.columns)
    engine = open_metrics_db(demo_url)
    want = exhaustion_ranking(engine, now=NOW, settings=Settings(), source="demo", window_s=7 * 86400)
    assert list(table["limit"]) == [r.limit for r in want]
    assert list(table["trend"]) == [r.trend for r in want]
    assert "source" not in table.columns  # one source in the DB: no source column
    reached = [w == "reached now" for w in table["forecast to be reached"]]
    assert reached == [r.reached for r in want] and reached[0]
    spotify = table.set_index("limit").loc["spotify rate limit"]
    peak = q.limiter_totals(engine, NOW - 7 * 86400, NOW)
    assert spotify["today's share"] == fmt.percent(peak[peak.upstream == "spotify"]["util_max"].max())
    assert "Which limit runs out first" in texts(at)


def test_users_database_and_spend_charts_draw_their_forecast_with_a_band(rendered: Callable[[str], AppTest]) -> None:
    """Users, Database size and cumulative AI spend each carry a dashed trend ahead of the data and a band
    around it (low ≤ forecast ≤ high), starting where the data ends."""
    users = charts(rendered("overview"))[0]
    size = next(c for c in charts(rendered("database")) if c["title"].startswith("Database size"))
    spend = next(c for c in charts(rendered("costs")) if c["title"].startswith("Cumulative spend"))
    for chart in (users, size, spend):
        ahead = _forecast(chart)
        assert ahead is not None and len(ahead), chart["title"]
        assert any(layer.get("name") == "forecast band" for layer in chart["layer"])
        assert (ahead["low"] <= ahead["forecast"] + 1e-9).all() and (ahead["forecast"] <= ahead["high"] + 1e-9).all()
        assert ahead["ts"].min() <= pd.Timestamp(NOW, unit="s", tz="UTC") < ahead["ts"].max()
    # Users: the trend starts at today's 120 and rises.
    first, last = _forecast(users).sort_values("ts").iloc[[0, -1]]["forecast"]
    assert first == pytest.approx(120, rel=0.1) and last > first


def test_database_says_when_a_range_holds_no_size_sample(open_page: Callable[..., AppTest], demo_url: str) -> None:
    """An hour after the newest hourly sample, "Last hour" holds none: the page says so in place of the size
    and rows charts (it drew two empty frames), and the cards still show the newest figures."""
    at = open_page("database", demo_url, now=NOW + 3660)
    at.selectbox(key="range_preset").select("Last hour").run()
    assert not at.exception
    shown = texts(at)
    assert "Database size: no sample in this range; the cards above show the newest." in shown
    assert "Rows per table: no sample in this range." in shown
    assert [c["title"] for c in charts(at)] == ["Size per table now"]
    engine = open_metrics_db(demo_url)
    whole = q.latest_db_stats(engine).query("table_name == '*'").iloc[0]
    assert metric(at, "Database size") == fmt.bytes_(whole.bytes)


def test_overview_says_when_a_range_holds_no_user_count(open_page: Callable[..., AppTest], demo_url: str) -> None:
    """An hour after the newest hourly user count, "Last hour" holds none: a caption replaces the users chart
    (an empty frame before), and the user cards still show the newest counts."""
    at = open_page("overview", demo_url, now=NOW + 3660)
    at.selectbox(key="range_preset").select("Last hour").run()
    assert not at.exception
    assert "Users over time: no user-count sample in this range; the cards above show the newest." in texts(at)
    assert not [c for c in charts(at) if c["title"].startswith("Users over time")]
    assert metric(at, "Users") == "120"
