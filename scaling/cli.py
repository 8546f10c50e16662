"""``python -m scaling COMMAND``: the command line.

Each command lives in ``scaling/commands/<name>.py`` and exposes ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args, settings) -> int``; `COMMANDS` lists them.

Exit codes: 0 success; 1 the operation ran and failed (or found a problem it
reports, e.g. upstream 429s in a load test); 2 bad arguments or configuration;
3 a store or upstream could not be reached.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from scaling import redaction
from scaling.errors import ConfigurationError, StoreError
from scaling.settings import Settings

__all__ = ["COMMANDS", "main"]

#: Command modules under scaling.commands, in the order --help lists them.
COMMANDS: tuple[str, ...] = (
    "migrate",
    "demo_data",
    "demo_metrics",
    "sandbox",
    "cleanup",
    "prewarm",
    "loadtest",
    "simulate",
    "ingest",
    "report",
    "readiness",
    "settings_cmd",
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3


def _load(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"scaling.commands.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"scaling.commands.{name}":
            return None  # not built yet
        raise


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    parser = argparse.ArgumentParser(
        prog="python -m scaling",
        description="Headroom: keep ListenToMore inside its upstreams' limits, and see which limit comes next.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules: dict[str, ModuleType] = {}
    for name in COMMANDS:
        mod = _load(name)
        if mod is None:
            continue
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        modules[mod.NAME] = mod
    return parser, modules


def main(argv: Sequence[str] | None = None) -> int:
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    redaction.install()  # -v shows httpx's request lines, and Last.fm's key is a query parameter
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    try:
        settings = Settings.from_env()
        code = int(modules[args.command].run(args, settings) or 0)
        sys.stdout.flush()  # here, so a closed pipe (`| head -1`) is caught below, not at interpreter exit
        return code
    except BrokenPipeError:
        # The reader went away: stop quietly, and point stdout at /dev/null so the final flush is silent too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # what a shell reports for a process ended by SIGPIPE
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StoreError as exc:
        print(f"error: store unavailable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
