"""``python -m collectors``: run the collector jobs on their schedule until Ctrl-C or SIGTERM.

    python -m collectors                         every job, on the configured intervals
    python -m collectors --once                  each job once, now, then exit (1 if any failed)
    python -m collectors --run-for 600           stop after ten minutes
    python -m collectors --interval-scale 0.05   every job 20x as often (demos, tests)
    python -m collectors --jobs headroom,alerts --interval headroom=5

Exit codes: 0 done; 1 ``--once`` and a run failed or timed out; 2 bad arguments or
settings; 3 the metrics DB or state store could not be reached at startup.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

from scaling import redaction
from scaling.errors import ConfigurationError, StoreError
from scaling.settings import Settings

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from collectors.scheduler import Collectors, Resources

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage block: the problem is the message.
        print(f"python -m collectors: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _interval(text: str) -> tuple[str, float]:
    name, sep, seconds = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected JOB=SECONDS, got {text!r}")
    return name.strip(), _positive(seconds)


def build_parser() -> argparse.ArgumentParser:
    from collectors.scheduler import DEFAULT_JOBS, EXTRA_JOBS

    p = _Parser(prog="python -m collectors",
                description="Run Headroom's collector jobs (metrics, cleanup, prewarm, alerts) on a schedule. "
                            "Start several replicas against one metrics DB and state store: each slot runs once.")
    p.add_argument("--once", action="store_true", help="run each job once now, then exit")
    p.add_argument("--run-for", type=_positive, metavar="SECONDS", help="stop after this many seconds")
    p.add_argument("--interval-scale", type=_positive, default=1.0, metavar="X",
                   help="multiply every interval (and alert hold time) by X, e.g. 0.05 for 20x as often")
    p.add_argument("--jobs", metavar="A,B", help=f"only these jobs (default: {','.join(DEFAULT_JOBS)}; "
                                                 f"also: {','.join(EXTRA_JOBS)})")
    p.add_argument("--interval", type=_interval, action="append", default=[], metavar="JOB=SECONDS",
                   help="set one job's interval in seconds (not scaled); repeatable")
    p.add_argument("--heartbeat-work-s", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--no-migrate", action="store_true", help="do not bring the metrics DB schema up to date first")
    p.add_argument("--json", action="store_true", help="with --once: print the outcomes as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="log every run (INFO) to stderr")
    p.add_argument("-q", "--quiet", action="store_true", help="log only errors")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.ERROR if args.quiet else logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    redaction.install()
    logging.getLogger("apscheduler").setLevel(max(level, logging.WARNING))
    if args.once and args.run_for is not None:
        return _usage("--once and --run-for do not go together")
    try:
        settings = Settings.from_env()
    except ConfigurationError as exc:
        print(f"python -m collectors: error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    from collectors.scheduler import DEFAULT_JOBS, Collectors, job_specs, open_resources

    names = [n.strip() for n in args.jobs.split(",") if n.strip()] if args.jobs else list(DEFAULT_JOBS)
    intervals = dict(args.interval)
    stop = threading.Event()
    try:
        if not args.no_migrate:
            _migrate(settings.metrics_db_url)
        res = open_resources(settings)
    except ConfigurationError as exc:
        print(f"python -m collectors: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StoreError as exc:
        print(f"python -m collectors: error: store unavailable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    try:
        try:
            specs = job_specs(settings, res, names=names, scale=args.interval_scale, intervals=intervals,
                              heartbeat_work_s=args.heartbeat_work_s)
        except ValueError as exc:
            return _usage(str(exc))
        unknown = set(intervals) - {s.name for s in specs}
        if unknown:
            return _usage(f"--interval names job(s) not scheduled: {', '.join(sorted(unknown))}")
        collectors = Collectors(specs, res, stop=stop)
        if args.once:
            return _once(collectors, as_json=args.json)
        return _forever(collectors, settings, res, stop, run_for=args.run_for)
    finally:
        res.close()


def _usage(message: str) -> int:
    print(f"python -m collectors: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _migrate(url: str) -> None:
    # The app DB's runner takes an advisory lock on PostgreSQL, so replicas starting together take turns.
    from scaling.appdb.migrate import run_upgrade
    from scaling.metrics.migrate import _SCRIPTS, VERSION_TABLE

    run_upgrade(url, script_location=str(_SCRIPTS), version_table=VERSION_TABLE, what="migrate the metrics DB")


def _once(collectors: Collectors, *, as_json: bool) -> int:
    outcomes = collectors.run_once()
    if as_json:
        print(json.dumps({"outcomes": [{"job": o.job, "outcome": o.outcome, "duration_s": round(o.duration_s, 3),
                                        "error": o.error, "recorded": o.recorded} for o in outcomes]},
                         allow_nan=False))
    else:
        for o in outcomes:
            print(f"{o.job:12} {o.outcome:10} {o.duration_s:8.3f}s" + (f"  {o.error}" if o.error else ""))
    return EXIT_FAILED if any(o.outcome in ("failed", "timed_out") for o in outcomes) else EXIT_OK


def _forever(collectors: Collectors, settings: Settings, res: Resources, stop: threading.Event, *,
             run_for: float | None) -> int:
    sched = collectors.scheduler()
    started = time.monotonic()

    def request_stop() -> None:
        stop.set()

        def shut() -> None:
            deadline = time.monotonic() + 10.0
            while not sched.running and time.monotonic() < deadline:
                time.sleep(0.02)  # a stop during startup waits for the scheduler to exist
            if sched.running:
                sched.shutdown(wait=False)

        threading.Thread(target=shut, name="collectors-stop", daemon=True).start()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        request_stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if run_for is not None:
        timer = threading.Timer(run_for, request_stop)
        timer.daemon = True
        timer.start()
    server = _prometheus(settings, res)
    jobs = ", ".join(f"{s.name} every {s.interval_s:g}s" for s in collectors.specs.values())
    print(f"collectors: {jobs}; Ctrl-C stops", file=sys.stderr, flush=True)
    try:
        if not stop.is_set():
            collectors.catch_up()
            sched.start()
    finally:
        if server is not None:
            server.shutdown()
    counts = ", ".join(f"{k} {v}" for k, v in sorted(collectors.outcomes.items())) or "none"
    print(f"collectors: stopped after {time.monotonic() - started:.0f}s; runs: {counts}", file=sys.stderr)
    return EXIT_OK


def _prometheus(settings: Settings, res: Resources) -> WSGIServer | None:
    if settings.prometheus_port <= 0:
        return None
    from scaling.metrics.prometheus import serve

    try:
        server, _ = serve(settings.prometheus_port, res.metrics_engine)
    except OSError as exc:  # another replica on this host has the port: the DB is the same, so is /metrics
        logging.getLogger("headroom.collectors").warning(
            "HEADROOM_PROMETHEUS_PORT: cannot serve /metrics on port %d: %s", settings.prometheus_port, exc)
        return None
    print(f"collectors: /metrics on http://127.0.0.1:{settings.prometheus_port}/metrics", file=sys.stderr)
    return server


if __name__ == "__main__":
    sys.exit(main())
