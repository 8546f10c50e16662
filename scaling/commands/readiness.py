"""``python -m scaling readiness``: the phase the user count requires, and each plan item's status with evidence."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from scaling.appdb.engine import display_url
from scaling.capacity.exhaustion import exhaustion_ranking
from scaling.capacity.readiness import Readiness, Status, assess, gather_evidence
from scaling.clock import SystemClock
from scaling.commands._output import missing_sqlite_db, print_json
from scaling.metrics.db import open_metrics_db
from scaling.metrics.migrate import current
from scaling.settings import Settings

NAME = "readiness"
HELP = ("which phase of the scaling plan the user count requires (now and forecast), each item's status "
        "with the evidence from the metrics DB, and when the next trigger is forecast to be crossed")

#: ``--range`` values, as in the dashboard's ``?range=``.
RANGES = {"1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "90d": 90 * 86400}
_MARK = {Status.READY: "READY", Status.AT_RISK: "AT RISK", Status.NOT_READY: "NOT READY", Status.UNKNOWN: "UNKNOWN"}


def _moment(text: str) -> float:
    """Epoch seconds, or an ISO date/datetime (UTC unless it carries an offset)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO date such as 2026-03-01 or 2026-03-01T12:00, or epoch seconds; got {text!r}") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--at", type=_moment, default=None, metavar="DATE",
                        help="assess as of this moment (ISO date/datetime in UTC, or epoch seconds); default now")
    parser.add_argument("--source", default=None,
                        help="metrics source to read (collectors, worker, demo); default: the one with the newest data")
    parser.add_argument("--range", dest="window", choices=list(RANGES), default=None,
                        help="judge limiters, caches, AI requests, alerts and job outcomes over this range before "
                             "--at (the dashboard's picked range); default 7 days (job outcomes 24 hours)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _date(epoch: float | None) -> str:
    return "—" if epoch is None else datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d")


def _print(r: Readiness, url: str) -> None:
    stamp = datetime.fromtimestamp(r.now, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"Readiness at {stamp} from {url} (source {r.source!r})")
    forecast = f"{r.users_forecast:,.0f}" if r.users_forecast is not None else "—"
    print(f"Users: {r.users if r.users is not None else '—'} now, {forecast} in {r.forecast_days} days "
          f"({r.users_trend})")
    print(f"Required phase: {r.required_phase or 'none yet'} now, {r.required_phase_forecast or 'none'} "
          f"in {r.forecast_days} days; readiness for phase {r.target_phase}: {r.readiness_pct:.0f}%")
    t = r.next_trigger
    if t is None:
        print("Next trigger: none (past the last one)" if r.users is not None else "Next trigger: no user counts")
    elif t.date is None:
        print(f"Next trigger: {t.users:,} users ({t.action}): not forecast to be crossed at the current trend")
    else:
        days = (t.date - r.now) / 86400
        print(f"Next trigger: {t.users:,} users ({t.action}) forecast {_date(t.date)}, in {days:.0f} days "
              f"(between {_date(t.earliest)} and {_date(t.latest)})")
    for w in r.warnings:
        print(f"WARNING: {w}")
    for p in r.phases:
        flag = " [required]" if p.required else " [required within forecast]" if p.required_forecast else ""
        print(f"\nPhase {p.phase}: {p.title} (from {p.trigger_users:,} users){flag}: {p.score:.0%} ready")
        for i in p.items:
            print(f"  {i.item} {i.title:28} {_MARK[i.status]:9}  {i.evidence}")


def run(args: argparse.Namespace, settings: Settings) -> int:
    url = settings.metrics_db_url
    missing = missing_sqlite_db(url, "metrics DB")
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 3
    engine = open_metrics_db(url)
    try:
        if current(engine) is None:
            print(f"error: the metrics DB at {display_url(url)} has no schema yet; run `python -m scaling migrate`, "
                  "then `python -m scaling demo-metrics` or start the collectors (`python -m collectors`)",
                  file=sys.stderr)
            return 1
        now = args.at if args.at is not None else SystemClock().now()
        window = RANGES[args.window] if getattr(args, "window", None) else None
        evidence = gather_evidence(engine, now=now, settings=settings, source=args.source, window_s=window)
        result = None if evidence.is_empty else assess(evidence, settings=settings)
        # The ranking reads the same source as the assessment (the newest one when --source is not given).
        ranking = [] if result is None or result.source is None else exhaustion_ranking(
            engine, now=now, settings=settings, source=result.source, window_s=window or RANGES["7d"])
    finally:
        engine.dispose()
    if result is None:
        which = f" for source {args.source!r}" if args.source else ""
        print(f"error: the metrics DB at {display_url(url)} holds no metrics{which} up to {_date(now)}; run "
              "`python -m scaling demo-metrics` for demo history, or start the collectors (`python -m collectors`)",
              file=sys.stderr)
        return 1
    if args.json:
        print_json({**result.as_dict(), "exhaustion": [r.as_dict() for r in ranking]})
    else:
        _print(result, display_url(url))
    return 0
