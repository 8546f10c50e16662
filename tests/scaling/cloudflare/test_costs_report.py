"""``report costs --include ai,platform``: the platform lines in CSV and JSON, the Costs page's numbers."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import httpx
import pytest
from sqlalchemy import Engine

from scaling.cli import main
from scaling.clock import VirtualClock
from scaling.cloudflare import collect, open_account
from scaling.cloudflare.usage import platform_month
from scaling.sandbox import Sandbox
from scaling.settings import Settings
from scaling.store import StateStore

FEB_1 = dt.datetime(2026, 2, 1, tzinfo=dt.UTC).timestamp()


@pytest.fixture
def collected(sandbox: Sandbox, store: StateStore, settings: Settings, engine: Engine, clock: VirtualClock,
              metrics_url: str, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """Four days of the sandbox account's January usage in the metrics DB the CLI reads."""
    clock.run(clock.sleep(2 * 86400))

    async def go() -> None:
        async with httpx.AsyncClient(transport=sandbox.direct_transport()) as http:
            await collect(open_account(settings, store, http, clock=clock), engine, now=clock.now())

    clock.run(go())
    monkeypatch.setenv("HEADROOM_METRICS_DB_URL", metrics_url)
    return engine


def report(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["report", "costs", "--since", "2026-01-01", "--until", "2026-01-31", *args]) == 0
    return capsys.readouterr().out


def test_platform_json_matches_the_costs_page(collected: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    """January's platform total in the JSON export equals the Costs page's figure for that month, to the cent."""
    doc = json.loads(report(capsys, "--format", "json", "--include", "ai,platform"))
    page = platform_month(collected, FEB_1 - 1).month_to_date
    assert doc["platform"]["totals"]["2026-01 billed"] == pytest.approx(page.total_usd, abs=1e-6)
    lines = {r["item"]: r for r in doc["platform"]["rows"]}
    assert lines["workers_requests"]["used"] == pytest.approx(page.line("workers_requests").used, abs=1e-6)
    assert lines["workers_requests"]["used"] > 0 and lines["base_fee"]["cost_usd"] == 5.0
    assert "rows" in doc and "totals" in doc  # the AI part is still there


def test_platform_csv_has_the_same_lines_as_the_json(collected: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    """The CSV's platform table (after the AI table and a blank line) carries the JSON's costs."""
    doc = json.loads(report(capsys, "--format", "json", "--include", "platform"))
    assert doc["rows"] == []
    text = report(capsys, "--include", "ai,platform")
    platform_csv = text.split("\n\n", 1)[1]
    rows = list(csv.DictReader(io.StringIO(platform_csv)))
    assert [(r["item"], float(r["cost_usd"])) for r in rows] == [
        (r["item"], r["cost_usd"]) for r in doc["platform"]["rows"]]


def test_unknown_include_is_a_clear_error(collected: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    """--include with an unknown part exits 2 naming the option."""
    assert main(["report", "costs", "--include", "ai,gpu"]) == 2
    assert "--include" in capsys.readouterr().err
