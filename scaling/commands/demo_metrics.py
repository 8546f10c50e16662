"""``python -m scaling demo-metrics``: generate months of metrics history for the dashboard."""

from __future__ import annotations

import argparse
import sys

from scaling.appdb.engine import display_url
from scaling.clock import SystemClock
from scaling.commands._output import print_json
from scaling.metrics.db import open_metrics_db
from scaling.metrics.demo import generate
from scaling.metrics.migrate import current, head
from scaling.settings import Settings

NAME = "demo-metrics"
HELP = ("replace the metrics DB's demo history (source 'demo') with generated samples, job runs, "
        "DB/cache stats, AI costs, user counts and alerts; other sources are untouched")


def _int_between(low: int, high: int) -> type:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value
    return parse  # type: ignore[return-value]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--days", type=_int_between(1, 730), default=90, help="days of history (default 90)")
    parser.add_argument("--users", type=_int_between(1, 1_000_000), default=120,
                        help="users at the end of the history; growth starts at 20 (default 120)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same data")
    parser.add_argument("--now", type=float, default=None,
                        help="end of the history as epoch seconds (default: now); fixes the output for a seed")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace, settings: Settings) -> int:
    url = settings.metrics_db_url
    engine = open_metrics_db(url)
    try:
        revision = current(engine)
        if revision != head():
            print(f"error: the metrics DB at {display_url(url)} is at revision {revision or 'none'}, not {head()}; "
                  "run `python -m scaling migrate` first", file=sys.stderr)
            return 1
        now = args.now if args.now is not None else SystemClock().now()
        report = generate(engine, now=now, days=args.days, users=args.users, seed=args.seed)
    finally:
        engine.dispose()
    if args.json:
        print_json(report.as_dict())
        return 0
    print(f"demo metrics in {display_url(url)} (source 'demo', seed {args.seed}, {args.days} days, "
          f"{report.seconds:.1f}s)")
    for table, count in sorted(report.rows.items()):
        print(f"  {table:18} {count:>10,}")
    return 0
