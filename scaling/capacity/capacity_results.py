"""One capacity search as a stored answer: run the bisection, keep what the Overview shows.

A bisection runs the simulator for minutes, so it cannot run on page load. The
collectors' daily ``capacity`` job and ``python -m scaling simulate --capacity`` both
call `search_capacity` and `write_capacity`; the Overview reads the newest row
(`scaling.metrics.queries.latest_capacity`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from scaling.capacity.breaks import Break
from scaling.capacity.calibration import Calibration
from scaling.capacity.capacity_search import CapacityResult, find_capacity
from scaling.capacity.simulate import Scenario, SimResult, simulate
from scaling.metrics import models as m
from scaling.metrics.db import translate_errors
from scaling.metrics.records import CapacityRecord
from scaling.settings import Settings

__all__ = ["CapacitySearch", "search_capacity", "write_capacity"]

#: Runs one scenario (`simulate` by default; tests plant a limit around it).
Simulator = Callable[[Scenario], SimResult]


@dataclass
class CapacitySearch:
    """The bisection's answer, the run at the carried size, and where the inputs came from."""

    base: Scenario
    found: CapacityResult
    at: SimResult | None
    provenance: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0

    def record(self, *, computed_at: float, source: str) -> CapacityRecord:
        """The row to store, stamped ``computed_at``."""
        fb: Break | None = self.found.first_break
        return CapacityRecord(
            design=self.base.design, time_model=self.base.time_model, active_share=self.base.active_share,
            users_carried=self.found.carried, broken_at=self.found.broken_at,
            first_break_limit=fb.limit if fb else None, first_break_detail=fb.detail if fb else None,
            ai_usd_month=self.at.ai.get("usd_month") if self.at else None,
            platform_usd_month=self.at.platform.get("usd_month") if self.at else None,
            trial_hours=self.base.hours, wall_s=round(self.wall_s, 2),
            trials={str(n): lim for n, lim in sorted(self.found.trials.items())}, provenance=dict(self.provenance),
            computed_at=computed_at, source=source)


def search_capacity(base: Scenario, *, settings: Settings | None = None, calibration: Calibration | None = None,
                    keep_active_share: bool = False, start: int = 100, ceiling: int = 20_000,
                    check: Callable[[], None] | None = None, simulator: Simulator | None = None) -> CapacitySearch:
    """Find the most users ``base`` carries with no break (`find_capacity`), calibrated when given data.

    Args:
        calibration: replaces the inputs it found data for (`Calibration.apply`).
        keep_active_share: the operator's active share wins over the calibrated one.
        check: called before each trial; raising there ends the search (a collector run's deadline).
        simulator: runs one scenario (default: `simulate` with ``settings``).
    """
    wall = time.perf_counter()
    if calibration is not None:
        base = calibration.apply(base, keep_active_share=keep_active_share)
    run = simulator or (lambda sc: simulate(sc, settings=settings))
    runs: dict[int, SimResult] = {}

    def trial(n: int) -> Break | None:
        if check is not None:
            check()
        runs[n] = run(dataclasses.replace(base, users=n))
        return runs[n].first_break

    found = find_capacity(trial, start=start, ceiling=ceiling)
    provenance = calibration.provenance() if calibration is not None else {
        "inputs": "the scenario as given (no calibration)"}
    return CapacitySearch(base, found, runs.get(found.carried), provenance, time.perf_counter() - wall)


def write_capacity(engine: Engine, record: CapacityRecord) -> None:
    """Store one capacity result (``computed_at`` must be set).

    Raises:
        ValueError: ``computed_at`` is missing.
        StoreError: the metrics DB failed.
    """
    if record.computed_at is None:
        raise ValueError("a capacity result needs computed_at")
    row = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    row["trials"] = json.dumps(dict(record.trials), sort_keys=True)
    row["provenance"] = json.dumps(dict(record.provenance), sort_keys=True)
    with translate_errors(engine, "write capacity results"), engine.begin() as conn:
        conn.execute(m.CAPACITY_RESULTS.insert().values(**row))
