"""Machine-readable output the commands share: one strict JSON object per run.

Python's ``json`` writes ``Infinity`` and ``NaN`` by default, which no other JSON
reader accepts; `to_json` turns non-finite floats into ``null`` and then refuses
any that remain (``allow_nan=False``).
"""

from __future__ import annotations

import json
import math
import sys
from typing import TextIO

__all__ = ["print_json", "to_json"]

_Json = dict[str, object] | list[object] | str | int | float | bool | None


def _finite(value: object) -> object:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def to_json(obj: object, *, indent: int | None = None) -> str:
    """``obj`` as strict JSON: non-finite floats become null; unknown objects their ``str``."""
    return json.dumps(_finite(obj), default=str, allow_nan=False, indent=indent)


def print_json(obj: object, out: TextIO | None = None) -> None:
    """Print ``obj`` as one strict JSON document on one line."""
    print(to_json(obj), file=out or sys.stdout)


def missing_sqlite_db(url: str, what: str) -> str | None:
    """The error for a read-only command whose SQLite ``url`` names no file yet, else None.

    Opening it would create the directory and an empty database, hiding the real
    problem (the wrong path, or ``migrate`` not run) behind "no data".
    """
    from pathlib import Path

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return None
    if Path(database).expanduser().is_file():
        return None
    return f"no {what} at {database} — run `python -m scaling migrate` (or check HEADROOM_DATA_DIR / the URL)"
