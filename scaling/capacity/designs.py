"""The prewarm designs the planner compares, each driving the same service layer.

Every design keeps each user's latest listen fresh (`scaling.prewarm`'s entries)
through the same Last.fm client, limiter and state store; they differ in how work
is scheduled on the platform. Each invocation is metered (`scaling.capacity.metering`)
so the simulator can hold it to the platform's per-invocation limits.

- ``cron5m`` (Headroom today, also ``headroom``): `run_prewarm` every 5 minutes.
- ``cron1m``: the same run every minute.
- ``queues``: a producer cron enqueues stale users; a queue consumer drains them.
- ``upstream``: the upstream app's cron (`scaling.capacity.baseline`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from scaling.capacity.baseline import upstream_prewarm
from scaling.capacity.metering import Meter
from scaling.capacity.platform_limits import InvocationLimits
from scaling.clock import Clock
from scaling.errors import ScalingError
from scaling.prewarm import (
    ENTRY_KEY,
    ENTRY_TTL_S,
    AlbumArt,
    Listen,
    ListenSource,
    PrewarmConfig,
    PrewarmReport,
    refresh_after,
    run_prewarm,
)
from scaling.store import StateStore

__all__ = ["DESIGNS", "Cron", "Design", "DesignRun", "Queues", "UpstreamCron", "design_named"]

#: A run must end this long before the next one starts (runs of one cron never overlap).
_GAP_S = 10.0
#: Messages a consumer invocation receives at once (Queues' max_batch_size default).
BATCH_SIZE = 10
#: Queues operations per delivered message: write, read, delete (pricing page: "≈3 ops").
QUEUE_OPS_PER_MESSAGE = 3


@dataclass
class DesignRun:
    """What a design needs from the simulation, and what it leaves behind."""

    clock: Clock
    end: float
    population: Callable[[float], Sequence[str]]
    source: ListenSource
    art: AlbumArt | None
    store: StateStore
    meter: Meter
    limits: InvocationLimits
    consumer_limits: InvocationLimits
    deadline_s: float | None = None  # the design's own deadline (default: its invocation's wall limit)
    tick: Callable[[], None] = lambda: None
    reports: list[PrewarmReport] = field(default_factory=list)
    queue_ops: int = 0
    queue_peak: int = 0


class Design(Protocol):
    """One way to schedule the prewarm."""

    @property
    def name(self) -> str: ...

    @property
    def interval_s(self) -> float: ...

    @property
    def label(self) -> str: ...

    async def run(self, ctx: DesignRun) -> None:
        """Drive the design until ``ctx.end``."""


async def _every(ctx: DesignRun, interval_s: float, step: Callable[[], Awaitable[None]]) -> None:
    """Call ``step`` every ``interval_s`` until the end; a slow step delays the next."""
    while ctx.clock.now() < ctx.end:
        t0 = ctx.clock.now()
        await step()
        ctx.tick()
        if t0 + interval_s >= ctx.end:
            return
        await ctx.clock.sleep(max(0.0, t0 + interval_s - ctx.clock.now()))


@dataclass(frozen=True)
class Cron:
    """`run_prewarm` on a cron every ``interval_s``.

    Assumptions: one invocation per tick; it reads the user list with one D1 query
    and every entry with bulk KV gets; its deadline is the invocation's wall limit,
    but never past the next tick (minus 10 s), so runs of one cron never overlap;
    Last.fm calls go 3 at a time, paced by the shared limiter; album art beside them;
    an inactive user is polled once their entry is two runs short of the staleness target.
    """

    name: str = "cron5m"
    interval_s: float = 300.0
    label: str = "prewarm on a 5-minute cron"
    staleness_target_s: float = 4500.0  # inactive users are polled only when due (`refresh_after`)

    async def run(self, ctx: DesignRun) -> None:
        deadline = min(ctx.deadline_s or ctx.limits.wall_s, self.interval_s - _GAP_S)

        async def once() -> None:
            users = ctx.population(ctx.clock.now())
            with ctx.meter.invocation("cron", ctx.clock) as inv:
                inv.d1_queries += 1
                inv.users = len(users)
                cfg = PrewarmConfig(deadline_s=deadline, interval_s=self.interval_s,
                                    refresh_after_s=refresh_after(self.staleness_target_s, self.interval_s))
                ctx.reports.append(await run_prewarm(users, ctx.source, ctx.store, ctx.clock, config=cfg,
                                                     album_art=ctx.art))

        await _every(ctx, self.interval_s, once)


@dataclass(frozen=True)
class UpstreamCron:
    """The upstream app's cron (`scaling.capacity.baseline.upstream_prewarm`) every 5 minutes.

    Assumptions: fixed-window limiters as at the app's HEAD, every user every run in
    batches of 4 with a 1 s sleep, killed at the invocation's wall limit; no cleanup.
    """

    name: str = "upstream"
    interval_s: float = 300.0
    label: str = "the upstream app's cron"

    async def run(self, ctx: DesignRun) -> None:
        async def once() -> None:
            users = ctx.population(ctx.clock.now())
            with ctx.meter.invocation("cron", ctx.clock) as inv:
                inv.d1_queries += 1
                inv.users = len(users)
                ctx.reports.append(await upstream_prewarm(users, ctx.source, ctx.store, ctx.clock,
                                                          deadline_s=ctx.deadline_s or ctx.limits.wall_s))

        await _every(ctx, self.interval_s, once)


@dataclass(frozen=True)
class Queues:
    """A producer cron every 5 minutes enqueues stale users; a queue consumer drains them.

    Assumptions: the producer reads every entry (bulk KV gets) and enqueues each user
    who is active or new, and each inactive user whose entry is older than the
    staleness target minus one interval, unless already queued; one consumer at a
    time (more would not add Last.fm budget: the limiter is shared) takes batches of
    10 messages, polls them 3 at a time paced by the shared Last.fm limiter, and must
    finish a batch inside the consumer's limits (15 min wall, 30 s CPU by default);
    a failed message is retried in a later batch (one more read); Queues operations
    are priced at 3 per delivered message.
    """

    name: str = "queues"
    interval_s: float = 300.0
    label: str = "producer cron + queue consumer"
    staleness_target_s: float = 4500.0
    active_window_s: float = 7200.0

    async def run(self, ctx: DesignRun) -> None:
        queue: list[str] = []
        queued: set[str] = set()
        ready = asyncio.Event()
        produced_all = False

        async def produce() -> None:
            now = ctx.clock.now()
            users = ctx.population(now)
            with ctx.meter.invocation("producer", ctx.clock) as inv:
                inv.d1_queries += 1
                inv.users = len(users)
                for user in users:
                    raw = ctx.store.get(ENTRY_KEY.format(username=user), now=now)
                    if user not in queued and self._due(raw, now):
                        queue.append(user)
                        queued.add(user)
            ctx.queue_peak = max(ctx.queue_peak, len(queue))
            ready.set()

        async def producer() -> None:
            nonlocal produced_all
            await _every(ctx, self.interval_s, produce)
            produced_all = True
            ready.set()

        async def consume() -> None:
            while ctx.clock.now() < ctx.end:
                if not queue:
                    if produced_all:
                        return
                    ready.clear()
                    await ready.wait()
                    continue
                batch, queue[:] = queue[:BATCH_SIZE], queue[BATCH_SIZE:]
                await self._batch(ctx, batch, queue, queued)

        await asyncio.gather(producer(), consume())

    def _due(self, raw: bytes | None, now: float) -> bool:
        if raw is None:
            return True
        entry = Listen.from_json(raw)
        if entry.now_playing or (entry.played_at or 0.0) >= now - self.active_window_s:
            return True
        return now - entry.fetched_at >= self.staleness_target_s - self.interval_s

    async def _batch(self, ctx: DesignRun, batch: list[str], queue: list[str], queued: set[str]) -> None:
        with ctx.meter.invocation("consumer", ctx.clock) as inv:
            inv.users = len(batch)
            deadline = ctx.clock.now() + (ctx.deadline_s or ctx.consumer_limits.wall_s)
            todo = list(batch)

            async def worker() -> None:
                while todo:
                    user = todo.pop()
                    now = ctx.clock.now()
                    try:
                        listen = await ctx.source.latest_listen(user, budget_s=deadline - now,
                                                                slot_budget_s=deadline - now)
                    except ScalingError:
                        queue.append(user)  # redelivered later: one more read
                        ctx.queue_ops += 1
                        continue
                    now = ctx.clock.now()
                    listen = listen or Listen(user, None, None, None, None, None, False, now)
                    ctx.store.set(ENTRY_KEY.format(username=user), listen.to_json(), now=now, ttl=ENTRY_TTL_S)
                    queued.discard(user)
                    ctx.queue_ops += QUEUE_OPS_PER_MESSAGE

            await asyncio.gather(*(worker() for _ in range(3)))


DESIGNS: dict[str, Design] = {
    "cron5m": Cron(),
    "cron1m": Cron("cron1m", 60.0, "prewarm on a 1-minute cron"),
    "queues": Queues(),
    "upstream": UpstreamCron(),
}


def design_named(name: str, *, staleness_target_s: float | None = None) -> Design:
    """The design called ``name`` (``headroom`` is ``cron5m``).

    Raises:
        ValueError: an unknown name.
    """
    key = "cron5m" if name == "headroom" else name
    if key not in DESIGNS:
        raise ValueError(f"design must be one of {', '.join(['headroom', *DESIGNS])}, got {name!r}")
    design = DESIGNS[key]
    if isinstance(design, (Queues, Cron)) and staleness_target_s is not None:
        return dataclasses.replace(design, staleness_target_s=staleness_target_s)
    return design
