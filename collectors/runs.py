"""The timed run wrapper: one scheduled slot of one job, run once across replicas, timed, recorded.

`run_job` is plain code on an injected clock, so tests drive it without APScheduler:

1. **Claim.** A lease ``lease:job:{name}:{slot}`` is added to the shared state store
   (atomic ``add``, TTL deadline + grace + a minute), then the slot is claimed in the
   metrics DB (``INSERT`` guarded by UNIQUE(job, scheduled_at, source)). Only the
   caller that wins both runs the job; the others get ``not_claimed``. If one of the
   two stores is down the other still guards the slot (and the run is logged as
   unrecorded); if both are down the run is not started, since nothing could stop
   every replica from running it.
2. **Misfire.** A claim later than ``grace_s`` after its slot is recorded ``skipped``
   ("missed: ..."). Slots on the job's grid that nobody claimed since its newest
   recorded run (every replica down or busy) are recorded ``skipped`` too, at most
   `collectors.slots.MAX_BACKFILL` of them.
3. **Deadline.** Async jobs run under ``asyncio.timeout`` on the clock's timeline;
   sync jobs run in their own thread, may call `JobContext.check` to stop
   cooperatively, and are abandoned (left running, recorded ``timed_out``) when the
   deadline passes in real time. A job that returns after its deadline is
   ``timed_out`` as well.
4. **Record.** ``ok``, ``failed`` (any exception, one line), ``timed_out`` or
   ``skipped`` (the job raised `SkipRun`) goes to ``finish_run`` with the job's report.
   Nothing here raises: a failure to record is logged and the scheduler goes on.

A replica killed mid-run leaves its row ``running`` and its lease to expire; the key
of the next slot differs, so the next run happens on whichever replica claims it.
`close_abandoned` later marks such rows failed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from collectors.slots import LEASE_MARGIN_S, close_abandoned, lease_key, record_missed, slot_of, take_lease
from scaling.clock import Clock
from scaling.errors import StoreError
from scaling.metrics.records import DEFAULT_SOURCE
from scaling.metrics.writer import MetricsWriter
from scaling.store import StateStore

if TYPE_CHECKING:
    from collectors.loop import AsyncRunner

__all__ = [
    "DeadlineExceeded", "Interrupted", "JobContext", "JobFailed", "JobFn", "RunOutcome", "RunPlace", "SkipRun",
    "SlotTiming", "close_abandoned", "lease_key", "run_job", "slot_of",
]

log = logging.getLogger("headroom.collectors")

#: Outcomes of `run_job` that are not recorded outcomes: another replica had the slot,
#: or neither store could guard it.
NOT_CLAIMED, NOT_RUN = "not_claimed", "not_run"
#: How often a waiting wrapper looks at the stop event.
POLL_S = 0.05

JobFn = Callable[["JobContext"], Any]


class SkipRun(Exception):
    """Raised by a job that has nothing to do now; recorded as ``skipped`` with its message."""


class JobFailed(Exception):
    """Raised by a job that ran to the end but achieved nothing (e.g. every user failed):
    recorded as ``failed`` with its message, and with its report kept as evidence."""

    def __init__(self, message: str, report: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.report = report


class DeadlineExceeded(Exception):
    """The run's deadline passed (raised by `JobContext.check`, or for the job by the wrapper)."""


class Interrupted(Exception):
    """The collector is shutting down; the run was abandoned."""


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a job gets besides its dependencies: its slot, its clock, its deadline.

    Attributes:
        job: the job's name.
        scheduled_at: the slot (epoch seconds) this run is for.
        started_at: when the run started, on ``clock``.
        deadline_at: when it must have finished, on ``clock``.
        clock: the injected clock.
        stop: set when the collector shuts down.
    """

    job: str
    scheduled_at: float
    started_at: float
    deadline_at: float
    clock: Clock
    stop: threading.Event = field(default_factory=threading.Event)

    def remaining(self) -> float:
        """Seconds left before the deadline (negative once past it)."""
        return self.deadline_at - self.clock.now()

    def check(self) -> None:
        """Stop here if the deadline has passed or the collector is stopping.

        Raises:
            DeadlineExceeded: the deadline has passed.
            Interrupted: the collector is shutting down.
        """
        if self.stop.is_set():
            raise Interrupted("the collector is shutting down")
        if self.clock.now() > self.deadline_at:
            raise DeadlineExceeded(f"past its deadline of {self.deadline_at - self.started_at:g}s")


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How one call of `run_job` ended.

    Attributes:
        outcome: "ok", "failed", "timed_out", "skipped"; or "not_claimed" (another
            replica has the slot) or "not_run" (neither store could guard it).
        lateness_s: claim time minus the slot.
        duration_s: the job's run time on the clock (0 if it did not run).
        recorded: the run's end is in the metrics DB.
    """

    job: str
    scheduled_at: float
    outcome: str
    lateness_s: float = 0.0
    duration_s: float = 0.0
    error: str | None = None
    report: Mapping[str, Any] | None = None
    recorded: bool = False

    @property
    def ran(self) -> bool:
        """This caller owned the slot (whatever the outcome)."""
        return self.outcome not in (NOT_CLAIMED, NOT_RUN)


@dataclass(frozen=True, slots=True)
class SlotTiming:
    """How one job's slots are timed.

    Attributes:
        deadline_s: the longest a run may take.
        grace_s: the latest a run may start after its slot (None: any lateness).
        interval_s: the job's interval, to record slots nobody ran as missed (None: don't).
        not_before: record missed slots only from this time on (when this replica
            started: earlier gaps are downtime, which the ``job_missed`` alert reports).
    """

    deadline_s: float
    grace_s: float | None = None
    interval_s: float | None = None
    not_before: float | None = None


@dataclass(frozen=True, slots=True)
class RunPlace:
    """Where runs are claimed, recorded and executed: shared by every job of a process.

    Attributes:
        writer: records the claim and the outcome (its ``host`` owns the lease by default).
        clock: measures lateness, duration and the deadline.
        lease_store: the shared state store for the lease (None: the DB claim alone guards).
        async_runner: how ``async def`` jobs run (None: `collectors.loop.clock_runner` on ``clock``).
        stop: set to abandon runs (shutdown).
        owner: written into the lease (None: the writer's host).
        source: the ``source`` column.
    """

    writer: MetricsWriter
    clock: Clock
    lease_store: StateStore | None = None
    async_runner: AsyncRunner | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    owner: str | None = None
    source: str = DEFAULT_SOURCE


def run_job(name: str, scheduled_at: float, fn: JobFn, *, place: RunPlace, timing: SlotTiming) -> RunOutcome:
    """Claim, run, time and record one scheduled slot of a job. Never raises.

    Args:
        name: the job's name (the ``job`` column).
        scheduled_at: the slot's scheduled time, epoch seconds.
        fn: ``fn(ctx)`` returning a report (a mapping, an object with ``as_dict()``, or
            None); ``async def`` functions are run through ``place.async_runner``.
        place: where the run is claimed, recorded and executed.
        timing: the job's deadline, grace, interval.

    Returns:
        The `RunOutcome`.
    """
    slot = round(float(scheduled_at), 3)
    try:
        return _run(name, slot, fn, place, timing)
    except Exception as exc:  # the wrapper must never take the scheduler down
        log.exception("collector job %s (slot %.3f): the run wrapper failed", name, slot)
        return RunOutcome(name, slot, "failed", error=_one_line(exc))


def _run(name: str, slot: float, fn: JobFn, place: RunPlace, timing: SlotTiming) -> RunOutcome:
    now = place.clock.now()
    lateness = now - slot
    claimed = _claim(name, slot, place, timing, now=now)
    if isinstance(claimed, RunOutcome):
        return claimed
    if timing.grace_s is not None and lateness > timing.grace_s:
        missed = f"missed: started {lateness:.3f}s after its slot (grace {timing.grace_s:g}s)"
        return _finish(place, name, slot, "skipped", lateness, 0.0, missed, None, claimed)
    start = place.clock.now()
    ctx = JobContext(job=name, scheduled_at=slot, started_at=start, deadline_at=start + timing.deadline_s,
                     clock=place.clock, stop=place.stop)
    outcome, error, report = _attempt(fn, ctx, timing.deadline_s, place)
    return _finish(place, name, slot, outcome, lateness, place.clock.now() - start, error, report, claimed)


def _claim(name: str, slot: float, place: RunPlace, timing: SlotTiming, *, now: float) -> bool | RunOutcome:
    """Take the slot's lease and its DB row; True: ours and recorded, False: ours but unrecorded
    (the DB did not answer); a `RunOutcome` when this caller must not run it."""
    leased = take_lease(place.lease_store, name, slot, now=now,
                         ttl=timing.deadline_s + (timing.grace_s or 0.0) + LEASE_MARGIN_S,
                         owner=place.owner or place.writer.host)
    if leased is False:
        return RunOutcome(name, slot, NOT_CLAIMED, now - slot)
    try:
        claimed: bool | None = place.writer.claim_run(name, slot, source=place.source)
    except StoreError as exc:
        log.warning("collector job %s: cannot claim slot %.3f in the metrics DB (%s); "
                    "the lease alone guards it and this run goes unrecorded", name, slot, exc)
        claimed = None
    if claimed is False:
        return RunOutcome(name, slot, NOT_CLAIMED, now - slot)
    if claimed is None and leased is None:
        log.error("collector job %s: slot %.3f not run: neither the state store nor the metrics DB "
                  "answered, so nothing stops another replica from running it too", name, slot)
        return RunOutcome(name, slot, NOT_RUN, now - slot)
    if claimed and timing.interval_s:
        record_missed(place.writer, name, slot, timing.interval_s, now=now, source=place.source,
                       not_before=timing.not_before)
    return claimed is True


def _attempt(fn: JobFn, ctx: JobContext, deadline_s: float,
             place: RunPlace) -> tuple[str, str | None, Mapping[str, Any] | None]:
    """Run the job under its deadline; returns (outcome, error, report)."""
    clock, stop = place.clock, place.stop
    try:
        report = _as_report(_execute(fn, ctx, deadline_s, place.async_runner or _clock_runner(clock), stop))
        took = clock.now() - ctx.started_at
        if took > deadline_s:
            return "timed_out", f"finished after {took:.3f}s, past its deadline of {deadline_s:g}s", report
        return "ok", None, report
    except SkipRun as exc:
        return "skipped", str(exc) or "skipped", None
    except JobFailed as exc:
        log.warning("collector job %s (slot %.3f) failed: %s", ctx.job, ctx.scheduled_at, exc)
        return "failed", " ".join(str(exc).split()), exc.report
    except DeadlineExceeded as exc:
        return "timed_out", f"timed out: {exc}", None
    except Interrupted as exc:
        return "failed", f"interrupted: {exc}", None
    except (Exception, asyncio.CancelledError) as exc:  # a job's failure is data
        if stop.is_set() and isinstance(exc, (concurrent.futures.CancelledError, asyncio.CancelledError)):
            # Shutdown cancelled the run: say so plainly, without a traceback.
            return "failed", "interrupted: the collector is shutting down", None
        error = _one_line(exc)
        log.warning("collector job %s (slot %.3f) failed: %s", ctx.job, ctx.scheduled_at, error, exc_info=exc)
        return "failed", error, None


def _clock_runner(clock: Clock) -> AsyncRunner:
    from collectors.loop import clock_runner

    return clock_runner(clock)


def _execute(fn: JobFn, ctx: JobContext, deadline_s: float, async_runner: AsyncRunner,
             stop: threading.Event) -> Any:
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "func", None)):
        backstop = deadline_s + 1.0  # asyncio.timeout fires first; this catches a job that ignores cancellation
        return async_runner(_bounded(fn, ctx, deadline_s), stop=stop, backstop_s=backstop)
    return _in_thread(fn, ctx, deadline_s, stop)


async def _bounded(fn: Callable[[JobContext], Awaitable[Any]], ctx: JobContext, deadline_s: float) -> Any:
    cm = asyncio.timeout(deadline_s)
    try:
        async with cm:
            return await fn(ctx)
    except TimeoutError:
        if cm.expired():  # ours, not a TimeoutError the job raised itself
            raise DeadlineExceeded(f"past its deadline of {deadline_s:g}s") from None
        raise


def _in_thread(fn: JobFn, ctx: JobContext, deadline_s: float, stop: threading.Event) -> Any:
    box: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            result = fn(ctx)
            box["result"] = result
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting wrapper
            box["error"] = exc
        finally:
            done.set()

    # A thread of its own (daemon): a hung job can be left behind without holding up
    # the scheduler's pool or the process exit.
    threading.Thread(target=target, name=f"job-{ctx.job}", daemon=True).start()
    until = time.monotonic() + deadline_s
    while not done.wait(POLL_S):
        if stop.is_set():
            raise Interrupted("the collector is shutting down")
        if time.monotonic() > until:
            raise DeadlineExceeded(f"still running after {deadline_s:g}s; left running in the background")
    if "error" in box:
        raise box["error"]
    return box.get("result")


def _finish(place: RunPlace, name: str, slot: float, outcome: str, lateness: float, duration: float,
            error: str | None, report: Mapping[str, Any] | None, claimed: bool) -> RunOutcome:
    recorded = False
    writer, source = place.writer, place.source
    if claimed:
        try:
            try:
                recorded = writer.finish_run(name, slot, outcome=outcome, error=error, report=report, source=source)
            except ValueError as exc:  # the report is not JSON: keep the outcome, say why
                recorded = writer.finish_run(name, slot, outcome=outcome, error=error,
                                             report={"unrecordable_report": str(exc)}, source=source)
        except StoreError as exc:
            log.warning("collector job %s: ran (%s) but could not record its end: %s", name, outcome, exc)
    log.info("collector job %s slot %.3f: %s in %.3fs (late %.3fs)%s", name, slot, outcome, duration, lateness,
             f": {error}" if error else "")
    return RunOutcome(name, slot, outcome, lateness, duration, error, report, recorded)


def _as_report(result: Any) -> Mapping[str, Any] | None:
    if result is None:
        return None
    if isinstance(result, Mapping):
        return result
    as_dict = getattr(result, "as_dict", None)
    if callable(as_dict):
        out = as_dict()
        return out if isinstance(out, Mapping) else {"result": out}
    return {"result": result}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
