"""Opening the metrics DB, and the one place its driver errors become `StoreError`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import Engine, exc

from scaling.appdb.engine import backend_name, display_url, first_line, make_engine
from scaling.errors import StoreError

__all__ = ["open_metrics_db", "translate_errors"]


def open_metrics_db(url: str) -> Engine:
    """An engine for the metrics DB (SQLite in WAL mode, or PostgreSQL via psycopg 3).

    Raises:
        ConfigurationError: the URL is malformed or names another backend.
    """
    return make_engine(url)


@contextlib.contextmanager
def translate_errors(engine: Engine, what: str) -> Iterator[None]:
    """Turn "cannot connect", "no such table" and friends into a one-line `StoreError`.

    Args:
        engine: the metrics DB engine (named in the message, password hidden).
        what: what was being attempted, e.g. ``"write metrics"``.
    """
    try:
        yield
    except (exc.OperationalError, exc.InterfaceError, exc.ProgrammingError) as err:
        reason = first_line(err.orig or err)
        hint = ""
        if "no such table" in reason or ("relation" in reason and "does not exist" in reason):
            hint = " (is the metrics DB migrated? run `python -m scaling migrate`)"
        raise StoreError(f"cannot {what} at {display_url(engine.url)}: {reason}{hint}",
                         backend=backend_name(engine), original=err) from err
