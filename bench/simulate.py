"""How fast the capacity simulator runs: one virtual day of the real service layer.

    .venv/bin/python bench/simulate.py [--users 100 1000] [--hours 24] [--skip-asgi]

Target (issue 8, item 2): a day for 1,000 users in under 30 s of wall time on one
core. Each run is ``simulate(Scenario(users=N, hours=H))`` in a fresh process, so
it pays the imports a user's first run pays. Two configurations run live:

- ``asgi``: today's code, but the sandbox reached through ``httpx.ASGITransport``
  and Starlette (the transport the simulator used before), to show what the
  direct transport alone is worth;
- ``direct``: what ``simulate()`` does now.

``BEFORE`` holds the same runs measured on the code before the speed work (the
simulator over ASGI, without the hot-path changes), which no longer exists in the
tree: measured on this 2-core machine while other work shared it, so expect a
spread of 10-20% between runs of either version.

Every figure: wall seconds (what ``SimResult.wall_s`` reports), CPU seconds of the
process, the speed-up over ``BEFORE`` and over ``asgi``, and simulated seconds per
wall second. The ``asgi`` and ``direct`` runs must agree on every number the
simulator reports (same seed): the script says so, or prints what differs.

A run at the time of writing (1,000 users): before 83.0 s, asgi 50.9 s, direct
44.1 s (1.9x; 100 users: 57.9 -> 29.5 s). The rest is the real code: about a
third httpx's own client work (URL parsing, cookies: ~250 us a request), then
the prewarm cron's per-run reads and album-art parses, the cache's JSON, asyncio.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: (wall s, CPU s) of a 24 h run before the speed work, by users (see the docstring).
BEFORE: dict[int, tuple[float, float]] = {100: (57.9, 58.5), 1000: (83.0, 81.8)}

_CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
t0 = time.process_time()
from scaling.capacity.simulate import Scenario, simulate
if {asgi!r}:
    from scaling.sandbox import Sandbox
    Sandbox.direct_transport = Sandbox.transport  # the ASGI path, everything else as today
r = simulate(Scenario(users={users}, hours={hours}))
d = r.as_dict()
d.pop("wall_s")
print(json.dumps({{"wall_s": r.wall_s, "cpu_s": time.process_time() - t0, "result": d}}, default=str))
"""


def run(users: int, hours: float, *, asgi: bool) -> dict[str, Any]:
    """One simulation in a fresh interpreter; its wall and CPU seconds and its result."""
    code = _CHILD.format(root=str(ROOT), asgi=asgi, users=users, hours=hours)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _diff(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _diff(a.get(k), b.get(k), f"{path}.{k}")]
    return [] if a == b else [f"{path}: asgi {a!r}, direct {b!r}"]


def _ratio(before: float, after: float) -> str:
    return f"{before / after:5.2f}x" if before and after else "    -"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--skip-asgi", action="store_true", help="only the direct (current) configuration")
    args = parser.parse_args(argv)

    print(f"simulate(Scenario(users=N, hours={args.hours:g})), one fresh process per run\n")
    header = (f"{'users':>6} {'config':<7} {'wall s':>7} {'cpu s':>7} {'vs before':>10} {'vs asgi':>8} "
              f"{'sim s / wall s':>15}")
    print(header)
    print("-" * len(header))
    exit_code = 0
    for users in args.users:
        before = BEFORE.get(users, (0.0, 0.0)) if args.hours == 24 else (0.0, 0.0)
        if before[0]:
            print(f"{users:>6} {'before':<7} {before[0]:>7.1f} {before[1]:>7.1f} {'':>10} {'':>8} "
                  f"{args.hours * 3600 / before[0]:>15,.0f}")
        asgi = None if args.skip_asgi else run(users, args.hours, asgi=True)
        if asgi is not None:
            print(f"{users:>6} {'asgi':<7} {asgi['wall_s']:>7.1f} {asgi['cpu_s']:>7.1f} "
                  f"{_ratio(before[0], asgi['wall_s']):>10} {'':>8} {args.hours * 3600 / asgi['wall_s']:>15,.0f}")
        direct = run(users, args.hours, asgi=False)
        print(f"{users:>6} {'direct':<7} {direct['wall_s']:>7.1f} {direct['cpu_s']:>7.1f} "
              f"{_ratio(before[0], direct['wall_s']):>10} "
              f"{_ratio(asgi['wall_s'], direct['wall_s']) if asgi else '    -':>8} "
              f"{args.hours * 3600 / direct['wall_s']:>15,.0f}")
        if asgi is not None:
            diffs = _diff(asgi["result"], direct["result"])
            print(f"{'':>6} results asgi vs direct: {'identical' if not diffs else f'{len(diffs)} differ'}")
            for d in diffs[:10]:
                print(f"{'':>8}{d}")
            exit_code = exit_code or (1 if diffs else 0)
    if 1000 in args.users and args.hours == 24:
        print("\ntarget: a day for 1,000 users in under 30 s of wall time")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
