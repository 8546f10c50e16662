"""The Cloudflare API limiters (GraphQL 300 / 5 min, REST 1,200 / 5 min) are sampled by the
collectors' headroom job and drawn on the Rate limits page with the app's upstreams."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from collectors import jobs
from collectors.runs import JobContext
from scaling.clock import VirtualClock
from scaling.metrics.db import open_metrics_db
from scaling.metrics.writer import MetricsWriter
from scaling.settings import Secret, Settings
from scaling.store.memory import MemoryStore
from tests.dashboard.conftest import NOW, charts, migrated, thresholds

pytestmark = pytest.mark.sqlite
CF_ENV = {"CLOUDFLARE_API_TOKEN": "cf-test-token", "CLOUDFLARE_ACCOUNT_ID": "acct-1"}


def test_cloudflare_limiters_are_sampled_and_drawn(tmp_path: Path, open_page: Callable[..., AppTest]) -> None:
    url = f"sqlite:///{tmp_path / 'metrics.db'}"
    migrated(url)
    engine = open_metrics_db(url)
    clock, store = VirtualClock(NOW - 60), MemoryStore()
    settings = Settings.defaults(cloudflare_api_token=Secret("cf-test-token"), cloudflare_account_id="acct-1")
    assert jobs.platform_limiters(Settings.defaults(), store, clock) == []  # no account: nothing to sample
    gql, rest = jobs.platform_limiters(settings, store, clock)

    async def use() -> None:  # what the cloudflare collector spent: 30 queries, 120 REST calls
        for lim, n in ((gql, 30), (rest, 120)):
            for _ in range(n):
                await lim.acquire(max_wait=300)

    clock.run(use())
    ctx = JobContext("headroom", clock.now(), clock.now(), clock.now() + 30, clock)
    report = jobs.headroom_job(ctx, limiters=[gql, rest], store=store, writer=MetricsWriter(engine, clock=clock))
    engine.dispose()
    assert report["utilisation"] == {"cloudflare:default": 0.1, "cloudflare_rest:default": 0.1}

    at = open_page("rate_limits", url, now=clock.now(), env=CF_ENV)
    assert not at.exception
    drawn = {c["title"].split(":")[0]: thresholds(c) for c in charts(at) if "share of limit" in c["title"]}
    assert drawn["cloudflare"]["limit 300/300s"] == 1.0
    assert drawn["cloudflare_rest"]["limit 1,200/300s"] == 1.0
