"""``python -m scaling ingest``: bring the production Worker's own data into Headroom.

    python -m scaling ingest wrangler-tail FILE|-      tail events -> metrics DB (source "worker")
    python -m scaling ingest d1-export FILE.sql        D1 dump -> app DB (app-schema rows only)

``wrangler tail --format=json | python -m scaling ingest wrangler-tail -`` ingests
live; Ctrl-C stops it after writing what was read. Re-ingesting adds nothing twice.
"""

from __future__ import annotations

import argparse
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from scaling.appdb import migrate as app_migrate
from scaling.appdb.engine import display_url, make_engine
from scaling.clock import SystemClock
from scaling.commands._output import print_json
from scaling.errors import ConfigurationError
from scaling.ingest.d1_export import load_d1_export
from scaling.ingest.ledger import LedgerWriter
from scaling.ingest.tail_ingest import ingest_tail
from scaling.ingest.tail_metrics import TailMapper
from scaling.ingest.tail_stream import MAX_EVENT_BYTES, TailReader
from scaling.metrics import migrate as metrics_migrate
from scaling.metrics.db import open_metrics_db
from scaling.settings import Settings

NAME = "ingest"
HELP = "load the production Worker's telemetry (wrangler tail JSON) or D1 export into Headroom's databases"

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _one_line_errors(parser: argparse.ArgumentParser) -> None:
    """Bad arguments print one ``error:`` line (not argparse's usage block) and exit 2."""

    def error(message: str) -> NoReturn:
        print(f"error: {parser.prog}: {message} (see --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)

    parser.error = error  # type: ignore[method-assign]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _one_line_errors(parser)
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    tail = kinds.add_parser("wrangler-tail", help="`wrangler tail --format=json` output, from a file or - (stdin)",
                            description="Ingest Worker invocations from `wrangler tail --format=json` (pretty-printed "
                                        "or one event per line) into the metrics DB, labelled with --source.")
    tail.add_argument("file", metavar="FILE|-", help="a saved capture, or - to read stdin (live)")
    tail.add_argument("--source", default="worker", help="the source label of every row written (default: worker)")
    tail.add_argument("--db", metavar="URL", help="metrics DB URL (default: HEADROOM_METRICS_DB_URL)")
    tail.add_argument("--max-event-mb", type=float, default=MAX_EVENT_BYTES / 2**20,
                      help="skip events larger than this (default: 16)")
    tail.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    _one_line_errors(tail)
    d1 = kinds.add_parser("d1-export", help="a `wrangler d1 export` SQL dump, into the app DB",
                          description="Load the app-schema rows of a `wrangler d1 export` dump into the app DB "
                                      "(upserts; everything else is reported, never executed).")
    d1.add_argument("file", metavar="FILE.sql", help="the dump (or - for stdin)")
    d1.add_argument("--db", metavar="URL", help="app DB URL (default: HEADROOM_APP_DB_URL)")
    d1.add_argument("--dry-run", action="store_true", help="load inside a transaction and roll it back")
    d1.add_argument("--json", action="store_true", help="print the report as one JSON object")
    _one_line_errors(d1)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.kind == "wrangler-tail":
        return _wrangler_tail(args, settings)
    return _d1_export(args, settings)


def _open_input(name: str) -> tuple[BinaryIO, bool]:
    """The input stream and whether it is live (a pipe or terminal rather than a regular file)."""
    if name == "-":
        stream: BinaryIO = sys.stdin.buffer
    else:
        path = Path(name)
        if path.is_dir():
            raise ConfigurationError(f"{name} is a directory, not a capture file")
        try:
            stream = open(path, "rb")  # noqa: SIM115 - closed by the caller
        except FileNotFoundError:
            raise ConfigurationError(f"no such file: {name}") from None
        except OSError as exc:
            raise ConfigurationError(f"cannot read {name}: {exc.strerror}") from None
    try:
        live = not stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):
        live = False
    return stream, live


def _wrangler_tail(args: argparse.Namespace, settings: Settings) -> int:
    if not args.source.strip():
        raise ConfigurationError("--source must not be empty")
    if not args.max_event_mb > 0:
        raise ConfigurationError("--max-event-mb must be positive")
    url = args.db or settings.metrics_db_url
    stream, live = _open_input(args.file)
    try:
        metrics_migrate.upgrade(url)
        engine = open_metrics_db(url)
        try:
            clock = SystemClock()
            reader = TailReader(stream, max_event_bytes=int(args.max_event_mb * 2**20))
            summary = ingest_tail(stream, mapper=TailMapper(source=args.source, clock=clock),
                                  writer=LedgerWriter(engine, source=args.source), live=live, reader=reader)
        finally:
            engine.dispose()
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    if args.json:
        print_json({"metrics_db": display_url(url), "source": args.source, **summary.as_dict()})
    else:
        print(summary.text())
    if summary.events == 0 and summary.skipped:
        return EXIT_FAILED  # the input had content but not one event: probably not a tail capture
    return EXIT_OK


def _d1_export(args: argparse.Namespace, settings: Settings) -> int:
    url = args.db or settings.app_db_url
    spooled: Any = None
    if args.file == "-":
        # Loading needs two passes (parents before children), so stdin is spooled to a temporary file.
        spooled = tempfile.NamedTemporaryFile(prefix="d1-export-", suffix=".sql", delete=False)  # noqa: SIM115
        with spooled:
            shutil.copyfileobj(sys.stdin.buffer, spooled)
        path = Path(spooled.name)
    else:
        path = Path(args.file)
        if path.is_dir():
            raise ConfigurationError(f"{args.file} is a directory, not a SQL dump")
        if not path.exists():
            raise ConfigurationError(f"no such file: {args.file}")
    try:
        app_migrate.upgrade(url)
        engine = make_engine(url)
        try:
            report = load_d1_export(path, engine, dry_run=args.dry_run)
        except PermissionError as exc:
            raise ConfigurationError(f"cannot read {args.file}: {exc.strerror}") from None
        finally:
            engine.dispose()
    finally:
        if spooled is not None:
            os.unlink(spooled.name)
    if args.json:
        print_json({"app_db": display_url(url), **report.as_dict()})
    else:
        print(report.text())
    # Rows refused or statements unreadable: the load ran, but the app DB differs from the dump.
    return EXIT_FAILED if report.problem_count else EXIT_OK
