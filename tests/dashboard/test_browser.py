"""Every page × every range × every source in Debian's Chromium: no console error, no exception, no empty chart.

AppTest never runs Vega, so a chart whose spec Vega rejects (the blank frames of issue 13)
passes there and fails here. One server (demo history ending now, plus one real collectors
run against the sandbox), one browser, one tab reused for every view: views are URLs
(``/<page>?range=…&source=…``), so each visit is what a pasted link shows.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert

from scaling.metrics import models as m
from scaling.metrics.db import open_metrics_db
from scaling.metrics.demo import generate
from tests.dashboard.conftest import ROOT
from tests.dashboard.test_e2e import BROWSER_ARGS, CHROMIUM, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.sqlite, pytest.mark.slow,
              pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian's chromium at /usr/bin/chromium")]

RANGES = ("1h", "6h", "24h", "7d", "30d", "90d")
SOURCES = ("all", "collectors", "worker", "demo")
#: An alert text carrying a Markdown image, as an ingested Worker log line could (issue 14, defect 10).
TRACKER = "tracker.invalid"
HOSTILE = f"upstream said ![pixel](http://{TRACKER}/p.png) **bold** :red[red]"
#: Console noise that is the network, not the app: the sandboxed machine resolves no outside name
#: (Material icons for the favicon), and Streamlit probes its health endpoint under a page's path.
_NETWORK = re.compile(r"Failed to load resource: net::ERR_(NAME_NOT_RESOLVED|INTERNET_DISCONNECTED|CONNECTION_REFUSED)"
                      r"|Failed to load resource: the server responded with a status of 404")
#: True once every chart frame on the page holds a rendered Vega view.
_DRAWN_JS = """() => Array.from(document.querySelectorAll('[data-testid=stVegaLiteChart]')).every(
  c => c.querySelector('.vega-embed g.role-mark'))"""
#: Every drawn mark of a chart's own layers (threshold rules and labels excluded), per chart on the page.
_MARKS_JS = """() => Array.from(document.querySelectorAll('.vega-embed')).map(e => {
  const groups = Array.from(e.querySelectorAll('g.role-mark')).filter(
      g => !/threshold|band|marker/.test(g.getAttribute('class') || ''));
  return groups.reduce((n, g) => n + g.querySelectorAll(':scope > path, :scope > g > path').length, 0);
})"""


def _run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def _healthy(base: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(base, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # answering at all is up (the sandbox has no page at /)
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{what} did not start")
            time.sleep(0.2)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard on demo history ending now plus one collectors run against the sandbox."""
    data = tmp_path_factory.mktemp("browser")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADROOM_")}
    sandbox_port, port = free_port(), free_port()
    env.update(HEADROOM_DATA_DIR=str(data), HEADROOM_METRICS_DB_URL=f"sqlite:///{data}/metrics.db",
               HEADROOM_APP_DB_URL=f"sqlite:///{data}/app.db", HEADROOM_STATE_URL=f"sqlite:///{data}/state.db",
               HEADROOM_SANDBOX_URL=f"http://127.0.0.1:{sandbox_port}")
    for step in (["-m", "scaling", "migrate"], ["-m", "scaling", "demo-data", "--users", "40"]):
        done = _run(step, env)
        assert done.returncode == 0, done.stderr
    engine = open_metrics_db(env["HEADROOM_METRICS_DB_URL"])
    try:
        generate(engine, now=time.time(), days=90, users=120, raw_days=7)
        with engine.begin() as conn:
            conn.execute(insert(m.ALERT_EVENTS).values(
                source="worker", rule="worker_log", subject="**subject**", severity="warning", state="firing",
                started_at=time.time() - 60, message=HOSTILE))
    finally:
        engine.dispose()
    procs = [subprocess.Popen([sys.executable, "-m", "scaling", "sandbox", "--port", str(sandbox_port)], cwd=ROOT,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        _healthy(f"http://127.0.0.1:{sandbox_port}/", procs[0], "the sandbox")
        once = _run(["-m", "collectors", "--once", "-q"], env, timeout=180)
        assert once.returncode in (0, 1), once.stderr  # 1: a job failed, which the pages must show too
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.address",
             "127.0.0.1", "--server.headless", "true", "--server.fileWatcherType", "none",
             "--browser.gatherUsageStats", "false"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL))
        _healthy(f"http://127.0.0.1:{port}/_stcore/health", procs[1], "streamlit")
        yield f"http://127.0.0.1:{port}"
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.mark.timeout(900)
def test_every_page_range_and_source_renders_without_errors_or_empty_charts(live: str) -> None:
    """Each view loads with no console/page error, no exception box, every chart drawn, no image fetched from data."""
    from playwright.sync_api import ConsoleMessage, Request, sync_playwright
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    shots = Path(tempfile.mkdtemp(prefix="headroom-shots-"))
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[*BROWSER_ARGS, "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1400})
            errors: list[str] = []
            fetched: list[str] = []

            def console(msg: ConsoleMessage) -> None:
                if msg.type == "error" and not _NETWORK.search(msg.text):
                    errors.append(msg.text.splitlines()[0])

            def request(req: Request) -> None:
                if TRACKER in req.url:
                    fetched.append(req.url)

            page.on("console", console)
            page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            page.on("request", request)
            page.goto(f"{live}/?range=24h&source=all")
            page.wait_for_selector("[data-testid=stSidebarNav] a", timeout=60_000)
            paths = sorted({(a.get_attribute("href") or "").rsplit("/", 1)[-1]
                            for a in page.locator("[data-testid=stSidebarNav] a").all()})
            assert {"", "rate-limits", "cron", "database", "cache"} <= set(paths), paths
            for path in paths:
                for window in RANGES:
                    for source in SOURCES:
                        view = f"/{path}?range={window}&source={source}"
                        errors.clear()
                        page.goto(live + view)
                        try:  # app.py draws this after the page: everything above it is there
                            page.wait_for_selector(".st-key-page-end", timeout=120_000)
                        except PlaywrightTimeout:
                            problems.append(f"{view}: the page never finished drawing")
                            continue
                        try:  # Vega renders after the script finishes, each chart on its own
                            page.wait_for_function(_DRAWN_JS, timeout=20_000)
                        except PlaywrightTimeout:
                            problems.append(f"{view}: a chart frame never drew")
                        marks = page.evaluate(_MARKS_JS)
                        empty = [i for i, n in enumerate(marks) if n == 0]
                        if page.locator("[data-testid=stException]").count():
                            problems.append(f"{view}: exception box")
                        if errors:
                            problems.append(f"{view}: {sorted(set(errors))[:3]}")
                        if empty:
                            problems.append(f"{view}: charts {empty} of {len(marks)} drawn empty")
                        print(view, marks, problems[-1:] if problems and problems[-1].startswith(view) else "",
                              flush=True)
                        if window in ("24h", "30d") and source in ("all", "demo"):
                            page.screenshot(path=shots / f"{path or 'overview'}-{window}-{source}.png", full_page=True)
        finally:
            browser.close()
    print(f"screenshots in {shots}")
    assert not fetched, f"a page fetched an image named in data: {fetched}"
    assert not problems, "\n".join(problems)
