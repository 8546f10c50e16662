"""Headroom's collectors: scheduled jobs that sample limits, caches and databases into the metrics DB.

``python -m collectors`` runs them (`collectors.__main__`). Modules:

- `collectors.runs`: the timed run wrapper (claim once across replicas, deadline, record).
- `collectors.loop`: where async jobs run (one event loop per process, or the virtual clock's).
- `collectors.jobs`: the jobs, plain functions given their dependencies.
- `collectors.alerts`: rules over the metrics, hold times, episodes, delivery.
- `collectors.webhook`: Slack- and Discord-compatible webhook delivery with retries, and of
  alert notices not yet delivered.
- `collectors.scheduler`: wiring of jobs to resources and to APScheduler.
"""

from __future__ import annotations

from collectors.runs import DeadlineExceeded, JobContext, RunOutcome, SkipRun, run_job

__all__ = ["DeadlineExceeded", "JobContext", "RunOutcome", "SkipRun", "run_job"]
