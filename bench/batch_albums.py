"""1,000 album lookups against the sandbox: one request per album vs batches of 20.

    .venv/bin/python bench/batch_albums.py [--lookups 1000] [--distinct 1000] [--unknown 20]

Each mode gets a fresh in-process sandbox (Spotify's documented limits) and fresh
`Services` on a memory store, under a virtual clock: "simulated s" is how long the
lookups take at the app's Spotify limit (120/60 s, paced by the limiter), "wall s"
what the run cost this machine (mostly the simulator building album JSON). Upstream
calls are counted by the sandbox (the token call included). The upstream app fetched albums one at a time in parallel
(reference §6); the plan expected ~90% fewer calls from the batch endpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scaling.clock import VirtualClock
from scaling.sandbox import Sandbox, SandboxConfig
from scaling.services import Services
from scaling.settings import Settings
from scaling.store.memory import MemoryStore


def lookups(sandbox: Sandbox, total: int, distinct: int, unknown: int) -> list[str]:
    known = sandbox.catalog.ids[:max(0, distinct - unknown)]
    ids = known + [f"unknown{n}" for n in range(unknown)]
    return [ids[i % len(ids)] for i in range(total)]


def run_mode(mode: str, total: int, distinct: int, unknown: int) -> dict[str, Any]:
    clock = VirtualClock()
    sandbox = Sandbox(SandboxConfig(), clock)
    ids = lookups(sandbox, total, distinct, unknown)
    services = Services(Settings.defaults(), clock=clock, store=MemoryStore(), transport=sandbox.transport())
    if mode == "one-by-one, no cache":
        services.spotify.cache = None
    services.fetchers["spotify"].budget_s = 3600.0  # measure pacing, not the page budget

    async def main() -> tuple[int, int, float]:
        start = clock.now()
        try:
            if mode == "batches of 20 + cache":
                found = await services.spotify.albums(ids)
            else:
                found = list(await asyncio.gather(*(services.spotify.album(i) for i in ids)))
        finally:
            await services.aclose()
        return sum(a is not None for a in found), sum(a is None for a in found), clock.now() - start

    wall = time.perf_counter()
    ok, missing, simulated = clock.run(main())
    wall = time.perf_counter() - wall
    stats = sandbox.stats().upstream("spotify")
    return {"mode": mode, "lookups": total, "distinct": len(set(ids)), "found": ok, "null": missing,
            "calls": stats.requests, "429s": stats.rate_limited, "simulated_s": simulated, "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lookups", type=int, default=1000)
    parser.add_argument("--distinct", type=int, default=1000, help="distinct album ids among the lookups")
    parser.add_argument("--unknown", type=int, default=20, help="distinct ids Spotify does not know")
    args = parser.parse_args()
    modes = ("one-by-one, no cache", "one-by-one + cache", "batches of 20 + cache")
    rows = [run_mode(m, args.lookups, args.distinct, args.unknown) for m in modes]
    print(f"{'mode':24} {'lookups':>7} {'distinct':>8} {'found':>6} {'null':>5} {'calls':>6} {'429s':>5} "
          f"{'simulated s':>11} {'wall s':>7}")
    for r in rows:
        print(f"{r['mode']:24} {r['lookups']:>7} {r['distinct']:>8} {r['found']:>6} {r['null']:>5} {r['calls']:>6} "
              f"{r['429s']:>5} {r['simulated_s']:>11.1f} {r['wall_s']:>7.2f}")
    base, batch = rows[0], rows[-1]
    print(f"\nbatch vs one-by-one: {batch['calls']} vs {base['calls']} upstream calls "
          f"({1 - batch['calls'] / base['calls']:.1%} fewer; the plan expected ~90%), "
          f"{batch['simulated_s']:.0f} s vs {base['simulated_s']:.0f} s at the app's Spotify limit")


if __name__ == "__main__":
    main()
