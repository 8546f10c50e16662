"""``python -m scaling demo-data``: fill the app DB with realistic, reproducible demo rows."""

from __future__ import annotations

import argparse
import sys

from scaling.appdb.demo import NotADemoDatabase, fill_demo_data
from scaling.appdb.engine import display_url, make_engine
from scaling.appdb.migrate import not_at_head
from scaling.clock import SystemClock
from scaling.commands._args import positive_int
from scaling.commands._output import print_json
from scaling.settings import Settings

NAME = "demo-data"
HELP = ("replace the app DB's contents with demo users, sessions, searches and API usage "
        "(clear-and-refill: reruns never duplicate; refuses a DB with real users)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=positive_int, required=True, help="how many users to create")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same data")
    parser.add_argument("--days", type=positive_int, default=180, help="how many days back the data reaches")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace, settings: Settings) -> int:
    url = settings.app_db_url
    problem = not_at_head(url)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    engine = make_engine(url)
    try:
        report = fill_demo_data(engine, users=args.users, seed=args.seed, days=args.days, now=SystemClock().now())
    except NotADemoDatabase as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    if args.json:
        print_json(report.as_dict())
        return 0
    replaced = sum(report.cleared.values())
    print(f"demo data in {display_url(url)} (seed {report.seed}, {report.days} days, {report.duration_s:.1f}s)"
          + (f"; replaced {replaced} earlier rows" if replaced else ""))
    for table, count in report.rows.items():
        print(f"  {table:16} {count:>10,}")
    return 0
