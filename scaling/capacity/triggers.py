"""The plan's scaling triggers: which phase a user count calls for (SCALING_PLAN.md, "Scaling Triggers").

| users | action |
|------:|--------|
|    50 | implement Phase 1 (critical fixes) |
|   100 | implement Phase 2 (scaling infrastructure) |
|   150 | Phase 2 must be complete (cron timeout risk) |
|   500 | implement Phase 3 (optimisation) + consider Cloudflare Queues |
|  1000 | implement Phase 4 (resilience) + evaluate architecture |
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PHASES", "TRIGGERS", "Trigger", "next_trigger", "required_phase"]

#: Phase number → the plan's name for it.
PHASES: dict[int, str] = {1: "Critical Fixes", 2: "Scaling Infrastructure", 3: "Optimization", 4: "Resilience"}


@dataclass(frozen=True, slots=True)
class Trigger:
    """At ``users`` users the plan requires ``phase``; ``must_complete`` means every item of it done."""

    users: int
    phase: int
    action: str
    must_complete: bool = False


TRIGGERS: tuple[Trigger, ...] = (
    Trigger(50, 1, "Implement Phase 1 (Critical Fixes)"),
    Trigger(100, 2, "Implement Phase 2 (Scaling Infrastructure)"),
    Trigger(150, 2, "Must complete Phase 2 (cron timeout risk)", must_complete=True),
    Trigger(500, 3, "Implement Phase 3 (Optimization) + consider Cloudflare Queues"),
    Trigger(1000, 4, "Implement Phase 4 (Resilience) + evaluate architecture"),
)


def required_phase(users: float) -> int:
    """The highest phase the trigger table requires at ``users`` users (0 below the first trigger)."""
    return max((t.phase for t in TRIGGERS if users >= t.users), default=0)


def next_trigger(users: float) -> Trigger | None:
    """The first trigger above ``users``, or None past the last one."""
    return next((t for t in TRIGGERS if users < t.users), None)
