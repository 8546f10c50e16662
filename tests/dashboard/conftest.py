"""Dashboard fixtures: demo metrics at a fixed "now", and AppTest runs of each page against them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no stubs
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from scaling.metrics.db import open_metrics_db
from scaling.metrics.demo import generate
from scaling.metrics.migrate import upgrade_engine

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
#: 2026-01-20 12:00 UTC: mid-month, so month-to-date figures are not empty.
NOW = 1_768_910_400.0
PAGES = ("overview", "rate_limits", "cron", "database", "cache", "costs", "capacity_planner")


def migrated(url: str) -> None:
    engine = open_metrics_db(url)
    try:
        upgrade_engine(engine)
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite metrics DB with 30 days of demo history ending at `NOW` (120 users)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('dash') / 'metrics.db'}"
    migrated(url)
    engine = open_metrics_db(url)
    try:
        generate(engine, now=NOW, days=30, users=120, raw_days=7)
    finally:
        engine.dispose()
    return url


@pytest.fixture(autouse=True)
def fresh_streamlit_caches() -> Iterator[None]:
    """Streamlit's caches are process-wide: each test starts without another test's results."""
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def open_page(monkeypatch: pytest.MonkeyPatch) -> Callable[..., AppTest]:
    """Run ``app.py`` on a metrics DB, then switch to a page; returns the finished AppTest."""

    def run(page: str, url: str, *, now: float | None = NOW, env: dict[str, str] | None = None) -> AppTest:
        monkeypatch.setenv("HEADROOM_METRICS_DB_URL", url)
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        at = AppTest.from_file(APP, default_timeout=60)
        if now is not None:
            at.session_state["headroom_now"] = now
        at.run()
        if page != "overview" and not at.exception:
            at.switch_page(f"app_pages/{page}.py").run()
        return at

    return run


def charts(at: AppTest) -> list[dict[str, Any]]:
    """Every chart on the page: its Vega-Lite spec plus ``rows`` (data rows per dataset name)."""
    out = []
    for element in at.get("vega_lite_chart"):
        spec = json.loads(element.proto.spec)
        spec["rows"] = {d.name: pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in element.proto.datasets}
        out.append(spec)
    return out


def thresholds(chart: dict[str, Any]) -> dict[str, float]:
    """label -> value of the chart's threshold layer (empty without one)."""
    layer = next((layer for layer in chart.get("layer", []) if layer.get("name") == "thresholds"), None)
    if layer is None:
        return {}
    table = chart["rows"][layer["data"]["name"]]
    return dict(zip(table["label"], table["value"]))


def texts(at: AppTest) -> str:
    """All visible text of the page in one string (titles, markdown, captions, alerts, metrics)."""
    parts: list[str] = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success"):
        parts.extend(str(e.value) for e in getattr(at, kind))
    parts.extend(f"{m.label} {m.value} {m.proto.delta}" for m in at.metric)
    parts.extend(e.proto.label for e in at.get("expander"))
    return "\n".join(parts)
