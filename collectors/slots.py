"""Slots of scheduled jobs: their grid, their leases, the missed ones and the abandoned ones.

`collectors.runs.run_job` claims a slot with a lease (`take_lease`) and a DB row; here
is how slots are named, how slots no replica ran are recorded (`record_missed`), and
how runs whose replica died are closed (`close_abandoned`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

from sqlalchemy import Engine, func, select, update

from scaling.errors import StoreError
from scaling.metrics import models as m
from scaling.metrics.records import DEFAULT_SOURCE, JobRun
from scaling.metrics.writer import MetricsWriter
from scaling.store import StateStore

__all__ = ["LEASE_MARGIN_S", "MAX_BACKFILL", "close_abandoned", "lease_key", "record_missed", "slot_of", "take_lease"]

log = logging.getLogger("headroom.collectors")

#: Missed slots recorded per claim, at most (a replica back from a long outage does not write a day of rows).
MAX_BACKFILL = 10
#: The lease outlives the deadline by this much, so a late replica still finds it.
LEASE_MARGIN_S = 60.0

def slot_of(t: float, interval_s: float) -> float:
    """The start of the ``interval_s`` slot (aligned to the epoch) that ``t`` falls in.

    Integer milliseconds, not float division: 1767225600.6 / 0.6 lands a hair under
    a whole number and would name the previous slot.
    """
    step = max(1, round(interval_s * 1000))
    return (math.floor(t * 1000 + 1e-3) // step) * step / 1000


def lease_key(job: str, slot: float) -> str:
    """The state-store key guarding one slot of one job."""
    return f"lease:job:{job}:{slot:.3f}"


def take_lease(store: StateStore | None, name: str, slot: float, *, now: float, ttl: float,
                owner: str) -> bool | None:
    """True: ours; False: another replica's; None: no store or it did not answer."""
    if store is None:
        return None
    try:
        return store.add(lease_key(name, slot), owner.encode(), now=now, ttl=ttl)
    except StoreError as exc:
        log.warning("collector job %s: state store unavailable for the lease (%s); the DB claim alone guards "
                    "slot %.3f", name, exc, slot)
        return None


def record_missed(writer: MetricsWriter, name: str, slot: float, interval_s: float, *, now: float,
                   source: str, not_before: float | None) -> int:
    """Record grid slots between the newest recorded run and ``slot`` as missed (at most `MAX_BACKFILL`)."""
    t = m.JOB_RUNS
    lo = slot - (MAX_BACKFILL + 1) * interval_s
    if not_before is not None:
        lo = max(lo, not_before)
    try:
        with writer.engine.connect() as conn:
            latest = conn.execute(select(func.max(t.c.scheduled_at)).where(
                t.c.job == name, t.c.source == source, t.c.scheduled_at >= lo, t.c.scheduled_at < slot - 0.0005,
            )).scalar()
        if latest is None:
            return 0  # a first start, or an outage longer than the backfill window: nothing to compare with
        missed = 0
        s = slot_of(float(latest), interval_s) + interval_s
        while s < slot - 0.0005 and missed < MAX_BACKFILL:
            run = JobRun(name, s, started_at=max(now, s), outcome="skipped", host=writer.host, source=source,
                         error="missed: no replica started this run")
            missed += writer.record_run(run)
            s = round(s + interval_s, 3)
        if missed:
            log.warning("collector job %s: %d run(s) before slot %.3f were missed by every replica", name, missed, slot)
        return missed
    except StoreError as exc:
        log.warning("collector job %s: could not check for missed runs: %s", name, exc)
        return 0


def close_abandoned(engine: Engine, *, now: float, deadlines: Mapping[str, float], margin_s: float = LEASE_MARGIN_S,
                    source: str = DEFAULT_SOURCE) -> int:
    """Mark runs still ``running`` well past their deadline as failed: their replica died.

    Args:
        deadlines: per job, its deadline in seconds (jobs not listed are left alone).
        margin_s: extra time before a run counts as abandoned.

    Returns:
        How many runs were closed.
    """
    t = m.JOB_RUNS
    closed = 0
    with engine.begin() as conn:
        for job, deadline in deadlines.items():
            closed += max(0, conn.execute(
                update(t).where(t.c.job == job, t.c.source == source, t.c.outcome == "running",
                                t.c.started_at < now - deadline - margin_s)
                .values(outcome="failed", finished_at=now,
                        error="abandoned: the run never recorded its end (its replica died?)")).rowcount)
    return closed
