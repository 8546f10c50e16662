"""End to end: `streamlit run app.py` on a free port, every page loaded in headless Chromium."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.dashboard.conftest import NOW, ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.sqlite, pytest.mark.slow]
CHROMIUM = "/usr/bin/chromium"
#: url path -> the page's title.
ROUTES = {"": "Overview", "rate-limits": "Rate limits", "cron": "Cron", "database": "Database", "cache": "Cache",
          "costs": "Costs", "capacity-planner": "Capacity planner"}
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(demo_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard served by a real Streamlit process on 127.0.0.1, stopped afterwards."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADROOM_")}
    env["HEADROOM_METRICS_DB_URL"] = demo_url
    log = (tmp_path_factory.mktemp("e2e") / "streamlit.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true",
                             "--browser.gatherUsageStats", "false"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"streamlit did not become healthy; see {log.name}")
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian's chromium at /usr/bin/chromium")
def test_every_page_loads_in_a_browser_with_its_title_and_no_error(server: str) -> None:
    """Each page, opened by its URL in a fresh browser page, shows its title and no exception or 404."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            for path, title in ROUTES.items():
                page.goto(f"{server}/{path}?now={NOW}")
                page.wait_for_selector("h1", timeout=30_000)
                page.wait_for_timeout(300)
                page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')",
                                       timeout=60_000)
                assert page.locator("h1").first.inner_text() == title, path
                assert page.locator("[data-testid=stException]").count() == 0, path
                assert "Page not found" not in page.content(), path
                if path:  # the sidebar controls are on every page
                    assert page.get_by_text("Time range").count() >= 1, path
        finally:
            browser.close()
