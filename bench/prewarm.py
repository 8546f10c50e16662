"""Prewarm capacity: worst staleness by users x active share, Headroom vs the upstream design.

    .venv/bin/python bench/prewarm.py [--hours 3] [--users 100,500,1000,2000] [--active 0.05,0.1,0.3]

Both designs run against the same in-process sandbox (Last.fm 5/s with 150-400 ms
latency) in virtual time, a run every 5 minutes with a 30 s deadline. Headroom:
active users first, the rest stalest first, paced at the plan's 4/s. Upstream: every
user every run, batches of 4 with a 1 s sleep, killed at 30 s. "Worst staleness" is
the oldest entry after the first full pass; "never" means some users are never
refreshed at all (the upstream cron always stops at the same place in its list).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scaling.capacity.baseline import upstream_prewarm
from scaling.clock import VirtualClock
from scaling.prewarm import run_prewarm
from scaling.prewarm_sources import LastfmListens
from scaling.sandbox import Sandbox, SandboxConfig
from scaling.services import Services
from scaling.settings import Settings
from scaling.store.memory import MemoryStore


def one(users: int, active: float, hours: float, design: str) -> tuple[str, str, int, float]:
    clock = VirtualClock()
    sandbox = Sandbox(SandboxConfig.from_options(seed=1, latency="0.15-0.4", listeners=users, active_share=active),
                      clock)
    store = MemoryStore()
    svc = Services(Settings.defaults(), clock=clock, store=store, transport=sandbox.transport())
    names = sandbox.population.names()
    source = LastfmListens(svc.lastfm, clock)

    async def main() -> list:  # type: ignore[type-arg]
        reports = []
        for _ in range(int(hours * 12)):
            t0 = clock.now()
            if design == "upstream":
                reports.append(await upstream_prewarm(names, source, store, clock))
            else:
                reports.append(await run_prewarm(names, source, store, clock))
            await clock.sleep(t0 + 300 - clock.now())
        await svc.aclose()
        return reports

    reports = clock.run(main())
    full = next((i for i, r in enumerate(reports) if r.never_fetched == 0), None)
    if full is None:
        worst = "never"
    else:
        worst = f"{max(r.oldest_entry_age_s for r in reports[full + 1:] or reports[-1:]) / 60:.0f} min"
    skipped_active = sum(1 for r in reports[(full or 0) + 1:] if r.active_skipped and design == "headroom")
    return worst, f"{max(r.duration_s for r in reports):.1f}", sandbox.stats().upstream("lastfm").rate_limited, \
        skipped_active


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=3.0)
    ap.add_argument("--users", default="100,500,1000,2000")
    ap.add_argument("--active", default="0.05,0.1,0.3")
    args = ap.parse_args()
    users = [int(x) for x in args.users.split(",")]
    shares = [float(x) for x in args.active.split(",")]
    start = time.perf_counter()
    print(f"{'users':>6} {'active':>6} | {'headroom worst':>14} {'max run s':>9} {'429s':>4}"
          f" {'runs w/ active skipped':>22} | {'upstream worst':>14} {'max run s':>9} {'429s':>4}")
    for n in users:
        for a in shares:
            h = one(n, a, args.hours, "headroom")
            u = one(n, a, args.hours, "upstream")
            print(f"{n:>6} {a:>6.0%} | {h[0]:>14} {h[1]:>9} {h[2]:>4} {h[3]:>22} | {u[0]:>14} {u[1]:>9} {u[2]:>4}")
    print(f"\n{args.hours:g} virtual hours per cell; wall {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
