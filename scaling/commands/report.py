"""``python -m scaling report costs``: AI calls, tokens and dollars per day, provider, model and task.

The figures come from `scaling.metrics.queries.ai_cost_by`, the same query the
dashboard's cost page uses, so the totals are the ones on screen. CSV cells that
a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``,
tab or carriage return) are prefixed with ``'``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import math
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from scaling.clock import SystemClock
from scaling.commands._output import missing_sqlite_db
from scaling.errors import ConfigurationError
from scaling.settings import Settings

NAME = "report"
HELP = "export reports: `report costs` writes AI cost per day/provider/model/task as CSV or JSON"

GROUPS = ("hour", "day", "week", "month", "provider", "model", "task", "source")
MEASURES = ("calls", "cache_hits", "input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens",
            "web_search_calls", "saved_tokens", "cost_usd", "latency_ms_avg")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="report", metavar="REPORT", required=True)
    costs = sub.add_parser("costs", help="AI usage and cost, grouped", description=(
        "AI calls, tokens and dollars from the metrics DB, grouped by time and dimensions. Dates are UTC; "
        "--until DATE includes that whole day."))
    costs.add_argument("--since", metavar="DATE", help="first day (YYYY-MM-DD or an ISO time; default: "
                                                       "the 1st of this month)")
    costs.add_argument("--until", metavar="DATE", help="last day, inclusive (YYYY-MM-DD), or an exclusive ISO "
                                                       "time (default: today)")
    costs.add_argument("--group-by", default="day,provider,model,task", metavar="LIST",
                       help=f"comma-separated, from {', '.join(GROUPS)} (at most one time unit); "
                            "empty for one total row (default: day,provider,model,task)")
    costs.add_argument("--format", choices=("csv", "json"), default="csv", help="output format (default csv)")
    costs.add_argument("--json", action="store_true", help="same as --format json")
    costs.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")
    costs.add_argument("--source", help="only rows from this source (deployment)")
    costs.add_argument("--include", default="ai", metavar="LIST",
                       help="comma-separated, from ai, platform (default ai): platform adds each month's Cloudflare "
                            "Workers Paid bill lines (CSV: a second table after a blank line; JSON: a platform key)")


def _parse_time(text: str, option: str, *, end: bool) -> dt.datetime:
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
            return start + dt.timedelta(days=1) if end else start
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(f"{option}: expected a date like 2026-01-31 or an ISO time, got {text!r}",
                                 variable=option) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def time_range(since: str | None, until: str | None, *, now: float) -> tuple[dt.datetime, dt.datetime]:
    """The half-open UTC range [since, until) the options name.

    Raises:
        ConfigurationError: a malformed date, or until not after since.
    """
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    lo = _parse_time(since, "--since", end=False) if since else dt.datetime(today.year, today.month, 1,
                                                                            tzinfo=dt.UTC)
    hi = _parse_time(until, "--until", end=True) if until else _parse_time(today.isoformat(), "--until", end=True)
    if hi <= lo:
        raise ConfigurationError(f"--until ({hi:%Y-%m-%d %H:%M}) must be after --since ({lo:%Y-%m-%d %H:%M})",
                                 variable="--until")
    return lo, hi


def group_list(text: str) -> list[str]:
    """``"day,provider"`` -> ["day", "provider"], checked.

    Raises:
        ConfigurationError: unknown or repeated names, or two time units.
    """
    names = [g.strip().lower() for g in text.split(",") if g.strip()]
    bad = [g for g in names if g not in GROUPS]
    times = [g for g in names if g in GROUPS[:4]]
    if bad or len(times) > 1 or len(set(names)) != len(names):
        why = f"unknown {', '.join(bad)}" if bad else "more than one time unit" if len(times) > 1 else "a repeat"
        raise ConfigurationError(f"--group-by: {why}; choose from {', '.join(GROUPS)} with at most one of "
                                 "hour, day, week, month", variable="--group-by")
    return names


def neutralise(cell: Any) -> Any:
    """A CSV cell a spreadsheet will not run as a formula: a string whose first character is one of
    = + - @ tab CR LF, or whose first non-whitespace character is = + - @ (spreadsheets skip the
    whitespace: ``" =1+1"``, ``"\n=HYPERLINK(...)"``), gets a leading '."""
    if isinstance(cell, str) and (cell.startswith(_FORMULA_START) or cell.lstrip().startswith(_FORMULA_START[:4])):
        return "'" + cell
    return cell


def _rows(df: Any, groups: Sequence[str]) -> Iterator[dict[str, Any]]:
    time_unit = next((g for g in groups if g in GROUPS[:4]), None)
    for rec in df.to_dict("records"):
        row: dict[str, Any] = {}
        if time_unit:
            ts = rec["ts"]
            row[time_unit] = ts.strftime("%Y-%m-%dT%H:00Z") if time_unit == "hour" else ts.strftime("%Y-%m-%d")
        for g in groups:
            if g not in GROUPS[:4]:
                row[g] = rec[g]
        for m in MEASURES:
            value = rec.get(m)
            if m == "cost_usd":
                row[m] = round(float(value or 0.0), 6)
            elif m == "latency_ms_avg":
                row[m] = None if value is None or (isinstance(value, float) and math.isnan(value)) \
                    else round(float(value), 1)
            else:
                row[m] = int(value or 0)
        yield row


def _totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {m: sum(r[m] for r in rows) for m in MEASURES if m != "latency_ms_avg"}
    out["cost_usd"] = round(out["cost_usd"], 6)
    return out


def write_csv(rows: list[dict[str, Any]], columns: Sequence[str], out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    # The minimal writer leaves a bare CR unquoted (only "\n" is the terminator), and a spreadsheet
    # starts a new row there; rows with a CR are written fully quoted instead.
    quoted = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(columns)
    for row in rows:
        cells = [neutralise("" if row[c] is None else row[c]) for c in columns]
        (quoted if any(isinstance(x, str) and "\r" in x for x in cells) else writer).writerow(cells)


def _include(text: str) -> set[str]:
    parts = {p.strip().lower() for p in text.split(",") if p.strip()}
    if not parts or parts - {"ai", "platform"}:
        raise ConfigurationError(f"--include: expected ai, platform or both, got {text!r}", variable="--include")
    return parts


def _platform(settings: Settings, since: dt.datetime, until: dt.datetime) -> dict[str, Any]:
    """The platform table: the Costs page's query and prices, per month in the range."""
    from scaling.commands.platform_report import PLATFORM_COLUMNS, platform_rows, platform_totals
    from scaling.metrics.db import open_metrics_db

    engine = open_metrics_db(settings.metrics_db_url)
    try:
        rows = platform_rows(engine, since, until, now=SystemClock().now())
    finally:
        engine.dispose()
    return {"columns": list(PLATFORM_COLUMNS), "rows": rows, "totals": platform_totals(rows)}


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.report != "costs":  # pragma: no cover - argparse only offers costs
        raise ConfigurationError(f"unknown report {args.report!r}")
    from scaling.metrics.db import open_metrics_db
    from scaling.metrics.queries import ai_cost_by

    since, until = time_range(args.since, args.until, now=SystemClock().now())
    groups = group_list(args.group_by)
    missing = missing_sqlite_db(settings.metrics_db_url, "metrics DB")
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 3
    engine = open_metrics_db(settings.metrics_db_url)
    try:
        df = ai_cost_by(engine, since, until, group_by=groups, source=args.source)
    except ValueError as exc:
        raise ConfigurationError(f"--group-by: {exc}", variable="--group-by") from None
    finally:
        engine.dispose()
    time_unit = [g for g in groups if g in GROUPS[:4]]
    columns = [*time_unit, *(g for g in groups if g not in GROUPS[:4]), *MEASURES]
    include = _include(args.include)
    rows = list(_rows(df, groups)) if "ai" in include else []
    totals = _totals(rows)
    platform = _platform(settings, since, until) if "platform" in include else None
    buf = io.StringIO()
    if args.format == "csv" and not args.json:
        if "ai" in include:
            write_csv(rows, columns, buf)
        if platform is not None:
            buf.write("\n" if "ai" in include else "")
            write_csv(platform["rows"], platform["columns"], buf)
    else:
        doc: dict[str, Any] = {"report": "costs", "since": since.isoformat(), "until": until.isoformat(),
                               "group_by": groups, "columns": columns, "rows": rows, "totals": totals}
        if platform is not None:
            doc["platform"] = platform
        json.dump(doc, buf, indent=2, allow_nan=False)
        buf.write("\n")
    if args.output:
        path = Path(args.output)
        try:
            path.write_text(buf.getvalue(), encoding="utf-8")
        except OSError as exc:
            print(f"error: cannot write {path}: {exc.strerror}", file=sys.stderr)
            return 1
        print(f"wrote {len(rows)} rows to {path}: {totals['calls']:,} calls, ${totals['cost_usd']:,.2f} "
              f"from {since:%Y-%m-%d} to {until:%Y-%m-%d %H:%M} UTC (exclusive)")
    else:
        sys.stdout.write(buf.getvalue())
    return 0
