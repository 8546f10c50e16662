"""The app around the pages: empty and unmigrated DBs, the password gate, exposure warning, sidebar controls."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from dashboard.auth import exposure_warning, is_loopback, password_matches
from scaling.metrics.db import open_metrics_db
from scaling.metrics.demo import generate
from scaling.settings import Secret
from tests.dashboard.conftest import NOW, PAGES, ROOT, charts, migrated, texts

pytestmark = pytest.mark.sqlite
OpenPage = Callable[..., AppTest]


@pytest.mark.parametrize("page", PAGES)
def test_an_empty_metrics_db_says_what_to_do(open_page: OpenPage, tmp_path: Path, page: str) -> None:
    """A migrated but empty metrics DB shows how to fill it on every page, not an exception."""
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    migrated(url)
    at = open_page(page, url)
    assert not at.exception, at.exception
    if page != "capacity_planner":
        assert "python -m scaling demo-metrics --days 90" in texts(at)


def test_an_unmigrated_metrics_db_names_the_migrate_command(open_page: OpenPage, tmp_path: Path) -> None:
    """A metrics DB without tables explains itself and points at `python -m scaling migrate`."""
    at = open_page("rate_limits", f"sqlite:///{tmp_path / 'new.db'}")
    assert not at.exception
    assert "python -m scaling migrate" in texts(at)


def test_a_malformed_setting_is_one_line_on_the_page(open_page: OpenPage) -> None:
    """A bad HEADROOM_METRICS_DB_URL stops the app with the configuration message, no traceback."""
    at = open_page("overview", "mysql://nope/metrics")
    assert not at.exception
    assert "Configuration problem" in at.error[0].value and "mysql" in at.error[0].value


def test_a_password_gates_every_page_and_is_never_shown(open_page: OpenPage, demo_url: str) -> None:
    """With a password set nothing but the login form renders until it is given; a wrong one is refused."""
    secret = "correct horse battery"
    at = open_page("overview", demo_url, env={"HEADROOM_DASHBOARD_PASSWORD": secret})
    assert [t.value for t in at.title] == ["Headroom"] and not at.metric and not charts(at)
    at.text_input[0].input("wrong")
    at.button[0].click().run()
    assert at.error[0].value == "Wrong password." and not at.metric
    at.text_input[0].input(secret)
    at.button[0].click().run()
    assert at.title[0].value == "Overview" and at.metric
    at.switch_page("app_pages/costs.py").run()
    assert at.title[0].value == "Costs"
    assert secret not in texts(at) and secret not in repr(at.session_state.to_dict())


def test_exposure_warning_only_without_password_off_loopback(open_page: OpenPage, demo_url: str) -> None:
    """Bound to every interface without a password, each page carries a warning banner."""
    old = st_config.get_option("server.address")
    st_config.set_option("server.address", "0.0.0.0")
    try:
        at = open_page("cache", demo_url)
    finally:
        st_config.set_option("server.address", old)
    assert "without a password" in at.warning[0].value
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("") and not is_loopback("0.0.0.0") and not is_loopback("dash.example.com")
    assert exposure_warning("0.0.0.0", Secret("x")) is None and exposure_warning("127.0.0.1", None) is None


def test_password_comparison() -> None:
    """No password configured lets everyone in; otherwise only the exact password does."""
    assert password_matches("", None)
    assert password_matches("s3cret", Secret("s3cret")) and not password_matches("s3cre", Secret("s3cret"))


def test_sources_sit_side_by_side_and_the_selector_picks_one(open_page: OpenPage, tmp_path: Path) -> None:
    """With demo and worker data, 'all' labels every series by source; choosing 'worker' shows only it."""
    url = f"sqlite:///{tmp_path / 'two.db'}"
    migrated(url)
    engine = open_metrics_db(url)
    generate(engine, now=NOW, days=2, users=60, source="demo")
    generate(engine, now=NOW, days=2, users=90, seed=1, source="worker")
    at = open_page("rate_limits", url)
    spotify = next(c for c in charts(at) if c["title"].startswith("spotify"))
    labels = set(spotify["rows"][spotify["layer"][1]["data"]["name"]]["series"])
    assert labels == {"web · demo", "bot · demo", "web · worker", "bot · worker"}
    at.selectbox(key="source").select("worker").run()
    spotify = next(c for c in charts(at) if c["title"].startswith("spotify"))
    assert set(spotify["rows"][spotify["layer"][1]["data"]["name"]]["series"]) == {"web", "bot"}
    at.selectbox(key="source").select("collectors").run()
    assert "from source 'collectors'" in texts(at)


def test_the_time_range_picker_changes_the_window(open_page: OpenPage, demo_url: str) -> None:
    """Picking "Last 24 hours" re-reads the page for that window, bucketed more finely."""
    at = open_page("cache", demo_url)
    assert "last 7 days: 2026-01-13 12:00 UTC" in texts(at)
    at.selectbox(key="range_preset").select("Last 24 hours").run()
    assert "last 24 hours: 2026-01-19 12:00 UTC" in texts(at)
    at.selectbox(key="range_preset").select("Custom dates…").run()
    assert not at.exception and at.date_input(key="range_dates")


def test_now_can_be_pinned_with_a_query_parameter(monkeypatch: pytest.MonkeyPatch, demo_url: str) -> None:
    """?now=<epoch seconds> pins the page's clock (for screenshots of recorded history)."""
    monkeypatch.setenv("HEADROOM_METRICS_DB_URL", demo_url)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params["now"] = str(NOW - 86400)
    at.run()
    assert "→ 2026-01-19 12:00 UTC" in texts(at)


def test_no_pages_folder_beside_the_entry_point() -> None:
    """A pages/ folder next to app.py would be run as a legacy multipage app, skipping the password gate."""
    assert not (ROOT / "pages").exists()
    assert (ROOT / "app_pages" / "overview.py").exists()


def test_the_page_body_is_a_fragment_rerun_on_the_chosen_interval(open_page: OpenPage, demo_url: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Live refresh re-runs only the page body, as a fragment with the sidebar's interval (or never)."""
    import streamlit as st

    seen: list[object] = []
    real = st.fragment

    def recording(func: object = None, **kwargs: object) -> object:
        seen.append(kwargs.get("run_every"))
        return real(func, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(st, "fragment", recording)
    at = open_page("database", demo_url)
    assert seen[-1] == 60
    at.selectbox(key="refresh").select("30 s").run()
    assert seen[-1] == 30
    at.selectbox(key="refresh").select("Off").run()
    assert seen[-1] is None and not at.exception
