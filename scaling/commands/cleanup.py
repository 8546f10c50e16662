"""``python -m scaling cleanup``: delete expired sessions and old searches and usage rows, in batches."""

from __future__ import annotations

import argparse
import sys

from scaling.appdb.cleanup import DEFAULT_BATCH_SIZE, Retention, run_cleanup
from scaling.appdb.engine import display_url, make_engine
from scaling.appdb.migrate import not_at_head
from scaling.clock import SystemClock
from scaling.commands._args import positive_int
from scaling.commands._output import print_json
from scaling.settings import Settings

NAME = "cleanup"
HELP = ("delete expired sessions, searches past retention (90 d), recent searches and API usage "
        "rows past retention (30 d), in short batches; --dry-run only counts")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="count what would be deleted; delete nothing")
    parser.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE,
                        help=f"most rows deleted per transaction (default {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace, settings: Settings) -> int:
    url = settings.app_db_url
    problem = not_at_head(url)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    engine = make_engine(url)
    try:
        report = run_cleanup(engine, now=SystemClock().now(), retention=Retention.from_settings(settings),
                             batch_size=args.batch_size, dry_run=args.dry_run)
    finally:
        engine.dispose()
    if args.json:
        print_json(report.as_dict())
        return 0
    verb = "would delete" if report.dry_run else "deleted"
    print(f"cleanup of {display_url(url)}: {verb} {report.total_deleted:,} rows in {report.duration_s:.2f}s"
          + ("" if report.dry_run else f" ({report.batches} batches, longest {report.longest_batch_s * 1000:.0f} ms)"))
    for table, count in report.deleted.items():
        print(f"  {table:16} {verb} {count:>10,}  (before {report.cutoffs[table]} UTC)")
    stats = report.stats
    size = f"{stats.total_bytes / 1024**2:.1f} MB" if stats.total_bytes is not None else "size unknown"
    print(f"  now {stats.total_rows:,} rows, {size}")
    return 0
