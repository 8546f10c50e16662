"""``python -m scaling loadtest``: the plan's load test through the real client path."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from urllib.parse import urlsplit

from scaling.loadtest import SERVICES, WorkerFailed, run_loadtest
from scaling.settings import RateSpec, Settings

NAME = "loadtest"
HELP = ("send N requests to one upstream from P processes x C callers through the limiter and fetch wrapper; "
        "report upstream 429s and the achieved rate")


def _count(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not low <= n <= high:
            raise argparse.ArgumentTypeError(f"expected {low}..{high}, got {n}")
        return n
    return parse


def _limit(text: str) -> RateSpec:
    from scaling.errors import ConfigurationError

    try:
        return RateSpec.parse(text, variable="--limit")
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None


def _url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"expected http(s)://host[:port], got {text!r}")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--service", required=True, choices=SERVICES, help="which upstream to load")
    parser.add_argument("--requests", type=_count(1, 1_000_000), default=200, help="total requests (default 200)")
    parser.add_argument("--processes", type=_count(1, 64), default=4, help="OS processes (default 4)")
    parser.add_argument("--concurrency", type=_count(1, 256), default=8, help="callers per process (default 8)")
    parser.add_argument("--base-url", type=_url, default=None,
                        help="replace the upstream's scheme://host:port, keep its real paths (default: settings)")
    parser.add_argument("--limit", type=_limit, default=None, metavar="N/WINDOW",
                        help="the limiter for this run, e.g. 171/30s (default: settings)")
    parser.add_argument("--state-url", default=None, help="state store shared by the processes (default: settings)")
    parser.add_argument("--lastfm-user", default=None, help="Last.fm user to ask for (default: sandbox listeners)")
    parser.add_argument("--budget", type=float, default=600.0, help="seconds one request may wait (default 600)")
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")


def run(args: argparse.Namespace, settings: Settings) -> int:
    state = args.state_url or settings.state_url
    if state.startswith("memory:") and args.processes > 1:
        print("error: --state-url memory:// is per process; several processes need a shared store "
              "(sqlite:///file, postgresql://..., redis://...)", file=sys.stderr)
        return 2
    if args.state_url:
        from scaling.store import open_store

        open_store(args.state_url, settings.state_namespace).close()  # fail early, in the parent, with one line
    try:
        result = run_loadtest(settings, service=args.service, requests=args.requests, processes=args.processes,
                              concurrency=args.concurrency, base_url=args.base_url, limit=args.limit,
                              state_url=args.state_url, lastfm_user=args.lastfm_user, budget_s=args.budget)
    except WorkerFailed as exc:
        print(f"error: {'store unavailable: ' if exc.store_down else ''}{exc}", file=sys.stderr)
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc), "store_down": exc.store_down}))
        return 3 if exc.store_down else 1
    for line in result.dead_workers:
        print(f"error: {line}", file=sys.stderr)
    print(f"loadtest {result.service}: {result.ok}/{result.requests} ok in {result.seconds:.1f}s, "
          f"{result.upstream_429} upstream 429s, {result.errors} errors"
          + (f" ({', '.join(f'{k} x{v}' for k, v in result.error_kinds.items())})" if result.error_kinds else "")
          + f"; achieved {result.achieved_rate:.2f} req/s with limiter {result.limit} on {result.state_url}",
          file=sys.stderr if args.json else sys.stdout)
    if args.json:
        out = result.as_dict()
        out.pop("first_ok"), out.pop("last_ok")
        print(json.dumps(out))
    if any(k == "StoreError" for k in result.error_kinds):
        return 3  # calls failed closed on a store outage: the store, not the upstream, is the problem
    return 1 if result.upstream_429 or result.errors or result.dead_workers else 0
