"""``python -m scaling simulate``: what breaks first at N users, in virtual time."""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from typing import Any

from sqlalchemy import Engine

from scaling.capacity.calibration import Calibration, calibrate
from scaling.capacity.capacity_results import search_capacity, write_capacity
from scaling.capacity.capacity_search import CapacityResult
from scaling.capacity.simulate import Scenario, SimResult, simulate
from scaling.clock import SystemClock
from scaling.commands._output import missing_sqlite_db, print_json
from scaling.errors import StoreError
from scaling.metrics.db import open_metrics_db
from scaling.metrics.migrate import current, head
from scaling.settings import Settings

NAME = "simulate"
HELP = ("run the real service layer against the sandbox for a simulated population in virtual time; "
        "--sweep finds the first limit to break")


def _share(text: str) -> float:
    value = text.strip()
    try:
        x = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a share like 0.1 or 10%, got {text!r}") from None
    if not 0 <= x <= 1:
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1 (0%-100%), got {text!r}")
    return x


def _users(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of users, got {text!r}") from None
    if not 1 <= n <= 20000:
        raise argparse.ArgumentTypeError(f"expected 1..20000 users, got {n}")
    return n


def _sweep(text: str) -> list[int]:
    try:
        values = [_users(p) for p in text.split(",") if p.strip()]
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"--sweep: {exc}") from None
    if not values:
        raise argparse.ArgumentTypeError("--sweep needs user counts like 20,50,100")
    return sorted(set(values))


def _hours(text: str) -> float:
    try:
        h = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected hours, got {text!r}") from None
    if not 0 < h <= 24 * 14:
        raise argparse.ArgumentTypeError(f"expected 0 < hours <= 336, got {text!r}")
    return h


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--users", type=_users, help="users to simulate")
    group.add_argument("--sweep", type=_sweep, metavar="N,N,...", help="simulate each user count, e.g. 20,50,100,150")
    group.add_argument("--capacity", action="store_true",
                       help="find by bisection the most users the design carries with no break, and what breaks next")
    parser.add_argument("--active-share", type=_share, default=None,
                        help="share active in the last 2 h (default 0.1; from data with --calibrate unless given)")
    parser.add_argument("--hours", type=_hours, default=None, help="virtual hours (default 24; 3 per sweep point)")
    parser.add_argument("--growth-per-week", type=_share, default=0.0, help="compounding growth, e.g. 5%% (default 0)")
    parser.add_argument("--design", choices=("headroom", "cron5m", "cron1m", "queues", "upstream", "both", "all"),
                        default="cron5m", help="prewarm design: cron5m (Headroom, = headroom), cron1m, queues, the "
                        "upstream app's; both = upstream + cron5m; all = every design")
    parser.add_argument("--time-model", choices=("plan", "documented", "both"), default="plan",
                        help="cron time limit: the plan's 30 s wall, the documented CPU/15 min wall limits, or both")
    parser.add_argument("--cold", action="store_true", help="start with empty caches instead of the steady state")
    parser.add_argument("--calibrate", action="store_true",
                        help="take page views per user, the active share and cron CPU from production data in the "
                        "metrics DB (ingested wrangler tail, the Cloudflare collector; the last 7 days) where there is "
                        "any, and say which inputs are defaults; off unless given (the collectors' daily capacity job "
                        "always calibrates). --capacity records its result in the metrics DB when it is migrated")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _row(r: SimResult) -> list[str]:
    c, sp = r.cron, r.upstreams["spotify"]
    fb = r.first_break
    days = r.db["days_until_10gb"]
    risk = r.at_risk[0] if r.at_risk else None
    verdict = f"{fb.limit}: {fb.detail}" if fb else (f"at risk: {risk.limit}" if risk else "nothing breaks")
    return [r.scenario.design, r.scenario.time_model, str(r.scenario.users), f"{c['p95_s']:.1f}/{c['max_s']:.1f}",
            f"{c['users_polled_p50']:.0f}",
            f"{c['max_staleness_min']:.0f}", f"{sp['peak_window']:.0f}/{sp['limit']:.0f}",
            f"{int(sum(u['upstream_429'] for u in r.upstreams.values()))}", f"{r.pages['p95_s']:.1f}",
            "never" if math.isinf(days) else f"{days:.0f}", f"{r.ai['usd_month']:.0f}",
            f"{r.platform['usd_month']:.0f}", f"{r.invocations.get('cpu_s_max', 0):.2f}", verdict]


HEAD = ["design", "time model", "users", "cron p95/max s", "polled/run", "stale min", "spotify peak", "429s",
        "page p95 s", "days to 10GB", "AI $/mo*", "CF $/mo*", "cpu max s", "first limit to break"]


def _table(results: list[SimResult]) -> str:
    rows = [HEAD] + [_row(r) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEAD) - 1)]
    lines = []
    for row in rows:
        lines.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
                     + "  " + row[-1])
    return "\n".join(lines)


def _summary(results: list[SimResult]) -> list[str]:
    out = []
    for design, model in dict.fromkeys((r.scenario.design, r.scenario.time_model) for r in results):
        mine = [r for r in results if (r.scenario.design, r.scenario.time_model) == (design, model)]
        broken = [(r, r.first_break) for r in mine if r.first_break]
        if broken:
            first, fb = broken[0]
            out.append(f"{design} [{model}]: first limit to break is '{fb.limit}' at {first.scenario.users} "
                       f"users" + (f" (fine at {mine[mine.index(first) - 1].scenario.users})"
                                    if mine.index(first) else ""))
        else:
            out.append(f"{design} [{model}]: nothing breaks up to {mine[-1].scenario.users} users")
    return out


def _designs(choice: str) -> list[str]:
    return {"both": ["upstream", "cron5m"], "all": ["upstream", "cron5m", "cron1m", "queues"]}.get(choice, [choice])


def _models(choice: str) -> list[str]:
    return ["plan", "documented"] if choice == "both" else [choice]


def _metrics_db(settings: Settings) -> tuple[Engine | None, str]:
    """The metrics DB when it exists and is migrated to head, else None and why (nothing is created)."""
    missing = missing_sqlite_db(settings.metrics_db_url, "metrics DB")
    if missing:
        return None, missing
    engine = open_metrics_db(settings.metrics_db_url)
    try:
        rev = current(engine)
    except StoreError as exc:
        engine.dispose()
        return None, str(exc)
    if rev != head():
        engine.dispose()
        return None, "the metrics DB is not migrated to the newest schema (run `python -m scaling migrate`)"
    return engine, ""


def _calibration(args: argparse.Namespace, settings: Settings) -> tuple[Calibration | None, int]:
    """The calibration `--calibrate` asks for (None without the flag), or an exit code when it cannot be had."""
    if not args.calibrate:
        return None, 0
    engine, why = _metrics_db(settings)
    if engine is None:
        print(f"error: --calibrate: {why}", file=sys.stderr)
        return None, 3
    try:
        defaults = Scenario(users=1, active_share=_active(args))
        return calibrate(engine, now=SystemClock().now(), defaults=defaults), 0
    finally:
        engine.dispose()


def _active(args: argparse.Namespace) -> float:
    return 0.1 if args.active_share is None else float(args.active_share)


def _print_calibration(cal: Calibration) -> None:
    print("inputs (--calibrate; metrics DB, 7 days):")
    for i in cal.inputs:
        value = "–" if i.value is None else f"{i.value:g}"
        print(f"  {i.name:<30} {value:>8}  {'data' if i.from_data else 'default'}: {i.provenance}")


def _capacity(args: argparse.Namespace, settings: Settings) -> int:
    hours = args.hours or 2.0
    cal, code = _calibration(args, settings)
    if code:
        return code
    engine, why = _metrics_db(settings)
    rows: list[tuple[str, str, CapacityResult, SimResult | None, Scenario]] = []
    recorded: str | None = None
    try:
        for model in _models(args.time_model):
            for design in _designs(args.design):
                base = Scenario(users=1, active_share=_active(args), hours=hours,
                                growth_per_week=args.growth_per_week, design=design, seed=args.seed, time_model=model,
                                steady_state=not args.cold)
                search = search_capacity(base, settings=settings, calibration=cal,
                                         keep_active_share=args.active_share is not None, start=100)
                rows.append((design, model, search.found, search.at, search.base))
                if engine is not None:
                    write_capacity(engine, search.record(computed_at=SystemClock().now(), source="cli"))
                    recorded = "recorded in the metrics DB (the Overview shows the newest)"
    finally:
        if engine is not None:
            engine.dispose()
    recorded = recorded or f"not recorded: {why}"
    if args.json:
        print_json({"capacity": [_capacity_json(d, m, c, r, b) for d, m, c, r, b in rows], "recorded": recorded,
                    "calibration": cal.as_dict() if cal else None})
        return 0
    if cal is not None:
        _print_calibration(cal)
    share = rows[0][4].active_share if rows else _active(args)
    print(f"capacity, {share:.0%} active, {hours:g} virtual hours per trial, steady state: {not args.cold}")
    for design, model, found, at, _ in rows:
        cost = (f"; at that size AI ${at.ai['usd_month']:.2f} + platform ${at.platform['usd_month']:.2f} a month"
                if at else "")
        print(f"  [{model}] {found.sentence(design)}" + (f" ({found.first_break.detail})" if found.first_break else "")
              + cost)
    print(recorded)
    return 0


def _capacity_json(design: str, model: str, found: CapacityResult, at: SimResult | None,
                   base: Scenario) -> dict[str, Any]:
    return {"design": design, "time_model": model, "active_share": base.active_share, "carried": found.carried,
            "broken_at": found.broken_at,
            "first_break": dataclasses.asdict(found.first_break) if found.first_break else None,
            "trials": found.trials, "ai_usd_month": at.ai["usd_month"] if at else None,
            "platform_usd_month": at.platform["usd_month"] if at else None}


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.capacity:
        return _capacity(args, settings)
    cal, code = _calibration(args, settings)
    if code:
        return code
    counts = args.sweep or [args.users]
    hours = args.hours or (3.0 if args.sweep else 24.0)
    designs = _designs(args.design)
    jobs = [(d, m, n) for m in _models(args.time_model) for d in designs for n in counts]
    results: list[SimResult] = []
    show = sys.stderr.isatty() and not args.json
    for i, (design, model, n) in enumerate(jobs):
        scenario = Scenario(users=n, active_share=_active(args), hours=hours, growth_per_week=args.growth_per_week,
                            design=design, seed=args.seed, time_model=model, steady_state=not args.cold)
        if cal is not None:
            scenario = cal.apply(scenario, keep_active_share=args.active_share is not None)

        def progress(f: float, i: int = i, design: str = design, n: int = n) -> None:
            if show:
                done = (i + f) / len(jobs)
                bar = "#" * int(done * 30)
                print(f"\r  [{bar:<30}] {done:4.0%}  {design} {n} users", end="", file=sys.stderr, flush=True)

        results.append(simulate(scenario, settings=settings, progress=progress))
    if show:
        print(file=sys.stderr)
    if args.json:
        out: dict[str, Any] = {"hours": hours, "results": [r.as_dict() for r in results],
                               "summary": _summary(results), "calibration": cal.as_dict() if cal else None}
        print_json(out)
        return 0
    if cal is not None:
        _print_calibration(cal)
    share = results[0].scenario.active_share if results else _active(args)
    print(f"{hours:g} virtual hours, {share:.0%} active, growth {args.growth_per_week:.0%}/week; "
          f"wall {sum(r.wall_s for r in results):.1f}s")
    print(_table(results))
    for line in _summary(results):
        print(line)
    print("* AI and platform $/month at the steady state (caches warmed analytically; --cold starts empty); a "
          "steady-state budget overrun is a break. Peaks are judged against the upstream's real limit.")
    return 0
