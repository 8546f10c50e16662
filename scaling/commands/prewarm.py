"""``python -m scaling prewarm``: one run of the user-listens cron, as the collectors run it."""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from urllib.parse import urlsplit

from scaling.appdb.engine import make_engine
from scaling.appdb.migrate import not_at_head
from scaling.commands._output import print_json
from scaling.prewarm import PrewarmReport
from scaling.prewarm_sources import prewarm_config, prewarm_job
from scaling.services import Services
from scaling.settings import Settings

NAME = "prewarm"
HELP = ("refresh the home page's 'what we're listening to': active users first, the rest stalest first, "
        "paced by the Last.fm limiter, within the cron deadline")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"expected 0 < seconds <= 3600, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--deadline", type=_positive, default=None,
                        help="seconds the run may take (default HEADROOM_CRON_DEADLINE_S, 30)")
    parser.add_argument("--json", action="store_true", help="print the run report as one JSON object")


def unreachable(base_url: str, *, timeout_s: float = 2.0) -> str | None:
    """Why nothing listens at ``base_url``'s host and port, or None if a TCP connection opens.

    A preflight rather than a breaker scoped by URL: a one-off run pointed at a stopped
    sandbox or a mistyped URL would otherwise fail every user through the limiter and
    breaker, whose state lives in the store the running collectors share, and open their
    breaker. Refusing before the first call keeps the shared state untouched and names
    the real cause (a connection failure), not "CircuitOpen x 74"."""
    parts = urlsplit(base_url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        return str(exc)
    if not parts.hostname:
        return "no host in the URL"
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            return None
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__


def run(args: argparse.Namespace, settings: Settings) -> int:
    problem = not_at_head(settings.app_db_url)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    lastfm = settings.upstream("lastfm").base_url
    reason = unreachable(lastfm)
    if reason:
        print(f"error: cannot reach lastfm at {lastfm} ({reason})", file=sys.stderr)
        return 3
    deadline = args.deadline or settings.cron_deadline_s
    config = prewarm_config(settings, deadline_s=deadline)

    async def main() -> PrewarmReport:
        services = Services.from_settings(settings)
        engine = make_engine(settings.app_db_url)
        try:
            return await prewarm_job(settings, clock=services.clock, store=services.store, services=services,
                                     app_engine=engine, config=config)
        finally:
            engine.dispose()
            await services.aclose()

    report = asyncio.run(main())
    if args.json:
        print_json(report.as_dict())
    else:
        print(f"prewarm: {report.refreshed} of {report.users_total} users refreshed in {report.duration_s:.1f}s "
              f"(deadline {report.deadline_s:.0f}s); {report.users_active} active, {report.skipped} left for later "
              f"runs, {report.failed} failed, {report.upstream_429} upstream 429s")
        if report.errors:
            print("  errors: " + ", ".join(f"{k} x{v}" for k, v in report.errors.items()))
        print("  calls: " + ", ".join(f"{k} {v}" for k, v in report.upstream_calls.items())
              + f"; oldest entry {report.oldest_entry_age_s / 60:.0f} min")
    if report.users_total and report.refreshed == 0 and report.failed:
        return 1
    return 0
