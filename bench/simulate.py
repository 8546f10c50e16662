"""How fast the capacity simulator runs, beside a baseline it runs itself in the same process.

    .venv/bin/python bench/simulate.py [--users 100 1000] [--hours 24] [--skip-baseline] [--capacity]

Targets (issue 15): a simulated day for 1,000 users in <= 15 s on one core, a day
for 10,000 users in <= 3 min, one capacity bisection in <= 2 min.

Two configurations of ``simulate(Scenario(users=N, hours=H))`` run one after the
other in this process (imports paid once, before either):

- ``baseline``: every fetcher sends through ``httpx.AsyncClient`` into the in-process
  sandbox's Starlette app (``httpx.ASGITransport``): the whole client stack;
- ``direct``: what ``simulate()`` does: each fetcher sends with
  ``scaling.sandbox.direct_client.DirectClient``, which encodes the request as httpx
  would and calls the routed handler in-process (no ``httpx.Request``, no ASGI).

Both must agree on every number the simulator reports (same seed): the script
says so or prints what differs, and exits 1 if anything does. Every figure is wall
and CPU seconds of that run, the speed-up over the baseline, and simulated seconds
per wall second. ``--capacity`` also times one bisection (`simulate --capacity`
for cron5m at 10% active, 1 virtual hour per trial).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scaling.capacity.breaks import Break
from scaling.capacity.capacity_search import find_capacity
from scaling.capacity.simulate import Scenario, SimResult, simulate


def _timed(scenario: Scenario, *, asgi: bool) -> tuple[SimResult, float, float]:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = simulate(scenario, asgi=asgi)
    return result, time.perf_counter() - wall0, time.process_time() - cpu0


def _diff(a: object, b: object, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str) for d in _diff(a.get(k), b.get(k), f"{path}.{k}")]
    return [] if a == b else [f"{path}: baseline {a!r}, direct {b!r}"]


def _comparable(r: SimResult) -> dict[str, object]:
    d = r.as_dict()
    d.pop("wall_s")
    return d


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--skip-baseline", action="store_true", help="only the direct (current) configuration")
    parser.add_argument("--capacity", action="store_true", help="also time one capacity bisection")
    args = parser.parse_args(argv)

    print(f"simulate(Scenario(users=N, hours={args.hours:g})), both configurations in this process\n")
    header = f"{'users':>6} {'config':<9} {'wall s':>7} {'cpu s':>7} {'vs baseline':>12} {'sim s / wall s':>15}"
    print(header)
    print("-" * len(header))
    exit_code = 0
    for users in args.users:
        scenario = Scenario(users=users, hours=args.hours)
        base = None if args.skip_baseline else _timed(scenario, asgi=True)
        if base is not None:
            print(f"{users:>6} {'baseline':<9} {base[1]:>7.1f} {base[2]:>7.1f} {'':>12} "
                  f"{args.hours * 3600 / base[1]:>15,.0f}")
        direct = _timed(scenario, asgi=False)
        ratio = f"{base[1] / direct[1]:.2f}x" if base else "-"
        print(f"{users:>6} {'direct':<9} {direct[1]:>7.1f} {direct[2]:>7.1f} {ratio:>12} "
              f"{args.hours * 3600 / direct[1]:>15,.0f}")
        if base is not None:
            diffs = _diff(_comparable(base[0]), _comparable(direct[0]))
            print(f"{'':>6} results baseline vs direct: {'identical' if not diffs else f'{len(diffs)} differ'}")
            for d in diffs[:10]:
                print(f"{'':>8}{d}")
            exit_code = exit_code or (1 if diffs else 0)
    if args.capacity:
        sc = Scenario(users=1, hours=1.0, active_share=0.1)

        def trial(n: int) -> Break | None:
            return simulate(dataclasses.replace(sc, users=n)).first_break

        wall0 = time.perf_counter()
        found = find_capacity(trial, start=100)
        print(f"\none bisection (cron5m, 10% active, 1 h per trial, {len(found.trials)} trials): "
              f"{time.perf_counter() - wall0:.1f} s; {found.sentence('cron5m')}")
    print("\ntargets: a day for 1,000 users <= 15 s; 10,000 users <= 3 min; one bisection <= 2 min")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
