"""``python -m scaling migrate``: bring the app DB and the metrics DB to the newest schema."""

from __future__ import annotations

import argparse
from typing import Any

from scaling.appdb import migrate as app_migrate
from scaling.appdb.engine import display_url
from scaling.commands._output import print_json
from scaling.metrics import migrate as metrics_migrate
from scaling.settings import Settings

NAME = "migrate"
HELP = "apply pending schema migrations to the app DB and/or the metrics DB (safe to rerun)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", choices=("app", "metrics", "all"), default="all",
                        help="which database to migrate (default: all)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace, settings: Settings) -> int:
    results: dict[str, dict[str, Any]] = {}
    if args.target in ("app", "all"):
        applied = app_migrate.upgrade(settings.app_db_url)
        results["app"] = {"url": display_url(settings.app_db_url), "applied": applied,
                          "revision": app_migrate.current(settings.app_db_url)}
    if args.target in ("metrics", "all"):
        results["metrics"] = {"url": display_url(settings.metrics_db_url),
                              "applied": metrics_migrate.upgrade(settings.metrics_db_url)}
    if args.json:
        print_json(results)
        return 0
    for name, info in results.items():
        label = f"{name} DB ({info['url']})"
        if info["applied"]:
            print(f"{label}: applied {', '.join(info['applied'])}"
                  + (f"; now at {info['revision']}" if info.get("revision") else ""))
        else:
            at = f" ({info['revision']})" if info.get("revision") else ""
            print(f"{label}: already at head{at}, nothing to do")
    return 0
