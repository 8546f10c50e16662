"""The cloudflare collector job: scheduled only with an account configured, and its run report."""

from __future__ import annotations

from sqlalchemy import Engine

from collectors.jobs import cloudflare_job
from collectors.runs import JobContext
from collectors.scheduler import DEFAULT_JOBS, EXTRA_JOBS, Resources, job_specs
from scaling.clock import VirtualClock
from scaling.metrics.writer import MetricsWriter
from scaling.sandbox import Sandbox
from scaling.settings import Settings
from scaling.store import StateStore


def test_job_is_scheduled_only_with_a_token_and_account(settings: Settings, store: StateStore, engine: Engine,
                                                         clock: VirtualClock) -> None:
    """With CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID the default jobs include cloudflare, every 5 min."""
    res = Resources(settings=settings, clock=clock, store=store, metrics_engine=engine, app_engine=engine,
                    writer=MetricsWriter(engine, clock=clock))
    with_account = {s.name: s for s in job_specs(settings, res, names=DEFAULT_JOBS)}
    assert with_account["cloudflare"].interval_s == 300.0 and "cloudflare" in EXTRA_JOBS
    without = job_specs(Settings.from_env({}, dotenv_path=None), res, names=DEFAULT_JOBS)
    assert "cloudflare" not in {s.name for s in without}


def test_job_reports_what_it_collected(sandbox: Sandbox, store: StateStore, settings: Settings, engine: Engine,
                                       clock: VirtualClock) -> None:
    """One run through the job writes the account's usage and reports rows per dataset."""
    ctx = JobContext("cloudflare", clock.now(), clock.now(), clock.now() + 300, clock)
    report = clock.run(cloudflare_job(ctx, settings=settings, store=store, metrics_engine=engine,
                                      transport=sandbox.direct_transport()))
    assert report["stopped"] is None
    rows = report["rows"]
    assert isinstance(rows, dict) and rows["workersInvocationsAdaptive"] > 0
