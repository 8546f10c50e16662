"""The Overview's capacity line (the newest stored result, dated by the user forecast); the planner's inputs."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import formatting as fmt
from dashboard.capacity import NO_RUN
from scaling.capacity.capacity_results import write_capacity
from scaling.capacity.forecast import forecast_users
from scaling.metrics.db import open_metrics_db
from scaling.metrics.queries import latest_capacity
from scaling.metrics.records import CapacityRecord
from tests.dashboard.conftest import NOW, texts

pytestmark = pytest.mark.sqlite
OpenPage = Callable[..., AppTest]


def _copy(demo_url: str, tmp_path: Path) -> str:
    shutil.copyfile(demo_url.removeprefix("sqlite:///"), tmp_path / "metrics.db")
    return f"sqlite:///{tmp_path}/metrics.db"


def _record(users: int, at: float, **kw: object) -> CapacityRecord:
    rec = CapacityRecord(
        design="headroom", time_model="documented", active_share=0.1, users_carried=users, broken_at=users + 20,
        first_break_limit="Last.fm budget per cron run", first_break_detail="1,210 of 1,200 calls",
        ai_usd_month=12.5, platform_usd_month=5.25, trial_hours=2.0,
        provenance={"active share": "from 96 user-count samples (collectors): active ÷ total users",
                    "page views per user per day": "default: 3 a day"}, computed_at=at, source="collectors")
    return dataclasses.replace(rec, **kw)  # type: ignore[arg-type]


def test_overview_shows_the_newest_capacity_row_and_the_date_users_reach_it(
        open_page: OpenPage, demo_url: str, tmp_path: Path) -> None:
    """The block states the newest row's users and first break, its cost, and the forecast date for that many users."""
    url = _copy(demo_url, tmp_path)
    engine = open_metrics_db(url)
    try:
        write_capacity(engine, _record(90, NOW - 2 * 86400, first_break_limit="an older limit"))
        write_capacity(engine, _record(1840, NOW - 3 * 3600))
        newest = latest_capacity(engine)
        fc = forecast_users(engine, now=NOW, thresholds=[("1,840 users", 1840.0)])
    finally:
        engine.dispose()
    assert newest is not None and newest.users_carried == 1840
    at = open_page("overview", url)
    assert not at.exception, at.exception
    page = texts(at)
    headline = f"this design carries ≈ {newest.users_carried:,} users; then {newest.first_break_limit} breaks"
    assert fmt.plain(headline) in page and "an older limit" not in page
    crossing = fc.thresholds[0].crossing
    when = (f"At the current trend, 1,840 users on {fmt.timestamp(crossing.date_epoch, with_time=False)}"
            if crossing else "Not at this trend")
    assert fmt.plain(when) in page
    assert fmt.plain(f"steady-state cost at that size {fmt.usd(newest.monthly_cost_usd)} a month") in page
    assert fmt.plain("by the collectors' daily capacity job; inputs from data: active share") in page


def test_overview_without_a_capacity_run_says_how_to_get_one(open_page: OpenPage, demo_url: str,
                                                             tmp_path: Path) -> None:
    """No stored result: the block says none ran yet, that it runs daily, and the command that runs one."""
    at = open_page("overview", _copy(demo_url, tmp_path))
    assert not at.exception, at.exception
    assert f"Capacity: {NO_RUN}" in texts(at)


def test_planner_lists_each_input_as_data_or_default(open_page: OpenPage, demo_url: str, tmp_path: Path) -> None:
    """The planner's Inputs table names each input with its value and whether it came from data (demo rows never do)."""
    at = open_page("capacity_planner", _copy(demo_url, tmp_path))
    assert not at.exception, at.exception
    table = next(df.value for df in at.dataframe if "provenance" in df.value.columns)
    assert list(table["input"]) == ["page views per user per day", "active share", "CPU ms per cron run",
                                    "CPU ms per user polled"]
    assert set(table["from"]) == {"default"} and all(p.startswith("default: ") for p in table["provenance"])
