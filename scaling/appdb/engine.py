"""SQLAlchemy engines from store URLs, configured the way Headroom's SQL stores need.

Used by the app DB and the metrics DB alike, so nothing here knows about either
schema. SQLite gets WAL (readers never block the writer), a 5 s busy timeout (a
writer waits for the lock instead of failing at once) and enforced foreign keys
(SQLite leaves them off by default, and the app schema relies on ON DELETE CASCADE).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, exc
from sqlalchemy.engine import URL, Engine, make_url

from scaling.errors import ConfigurationError, StoreError

__all__ = ["backend_name", "display_url", "first_line", "make_engine", "normalize_url", "translate_errors"]

SQLITE_BUSY_TIMEOUT_MS = 5000
#: Seconds to wait for a PostgreSQL server before saying it is unreachable.
PG_CONNECT_TIMEOUT_S = 5


def normalize_url(url: str) -> URL:
    """Parse a store URL and pick the driver Headroom installs.

    ``postgres://`` and ``postgresql://`` become ``postgresql+psycopg://`` (psycopg 3).

    Raises:
        ConfigurationError: the URL cannot be parsed or names another backend.
    """
    try:
        parsed = make_url(url)
    except exc.ArgumentError:
        raise ConfigurationError(f"not a database URL: {_hide_password(url)!r}") from None
    if parsed.drivername in ("postgres", "postgresql", "postgresql+psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        return parsed
    raise ConfigurationError(
        f"unsupported database URL scheme {parsed.drivername!r} in {display_url(parsed)!r}; "
        "expected sqlite:/// or postgresql://")


def display_url(url: str | URL) -> str:
    """The URL with any password replaced by ``***``, safe to print or log."""
    if isinstance(url, str):
        try:
            parsed = make_url(url)
        except exc.ArgumentError:
            return _hide_password(url)
        return parsed.render_as_string(hide_password=True)
    return url.render_as_string(hide_password=True)


def backend_name(engine: Engine) -> str:
    """``"sqlite"`` or ``"postgresql"``."""
    return engine.dialect.name


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """Create an engine for a SQLite file or a PostgreSQL database.

    For SQLite the file's parent directory is created, and every connection gets WAL
    journal mode, ``busy_timeout`` 5000 ms and ``foreign_keys`` ON. PostgreSQL
    connections time out after a few seconds rather than hanging on a dead host.

    Args:
        url: ``sqlite:///path.db``, ``postgresql://user@host/db`` (or ``postgres://``).
        **kwargs: passed on to `sqlalchemy.create_engine`.

    Raises:
        ConfigurationError: the URL is malformed or names another backend.
        StoreError: the SQLite file's directory cannot be created.
    """
    parsed = normalize_url(url) if isinstance(url, str) else normalize_url(url.render_as_string(False))
    if parsed.get_backend_name() == "sqlite":
        _ensure_parent_dir(parsed)
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    connect_args = dict(kwargs.pop("connect_args", {}))
    connect_args.setdefault("connect_timeout", PG_CONNECT_TIMEOUT_S)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, connect_args=connect_args, **kwargs)


@contextlib.contextmanager
def translate_errors(engine: Engine, what: str) -> Iterator[None]:
    """Turn a driver's "cannot connect / operation failed" into one-line `StoreError`.

    Args:
        engine: whose backend and URL to name in the message.
        what: what was being done, e.g. ``"migrate the app DB"``.
    """
    try:
        yield
    except exc.OperationalError as err:
        raise StoreError(f"cannot {what} at {display_url(engine.url)}: {first_line(err.orig or err)}",
                         backend=backend_name(engine), original=err) from err
    except exc.InterfaceError as err:
        raise StoreError(f"cannot {what} at {display_url(engine.url)}: {first_line(err.orig or err)}",
                         backend=backend_name(engine), original=err) from err


def first_line(error: BaseException) -> str:
    """The first non-empty line of an error's message (drivers often add hints below)."""
    for line in str(error).splitlines():
        if line.strip():
            return line.strip()
    return type(error).__name__


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        # NORMAL is durable in WAL mode except for the last commits on power loss,
        # and avoids an fsync per transaction (which would dominate batched deletes).
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _ensure_parent_dir(url: URL) -> None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    parent = Path(database).expanduser().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(f"cannot create the directory {str(parent)!r} for {database!r}: {err.strerror}",
                         backend="sqlite", original=err) from err


def _hide_password(url: str) -> str:
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else url
