"""The state store: one contract (`StateStore`), four backends chosen by URL.

    memory://                     in-process (tests, single process)
    sqlite:///data/state.db       SQLite file in WAL mode, shared by processes on a host
    postgresql://user@host/db     PostgreSQL, shared by every host
    redis://host:6379/0           Redis, shared by every host
"""

from __future__ import annotations

from urllib.parse import urlsplit

from scaling.errors import ConfigurationError
from scaling.store.base import StateStore
from scaling.store.gcra import GcraDecision, GcraRate, GcraSnapshot

__all__ = ["GcraDecision", "GcraRate", "GcraSnapshot", "StateStore", "open_store"]


def _memory(url: str, namespace: str) -> StateStore:
    from scaling.store.memory import MemoryStore

    return MemoryStore(namespace)


def _sqlite(url: str, namespace: str) -> StateStore:
    from scaling.store.sql import SqliteStore

    path = url.split("://", 1)[1]
    path = path[1:] if path.startswith("/") else path  # sqlite:///rel/path and sqlite:////abs/path
    if not path:
        raise ConfigurationError(f"state store URL {url!r} names no file", variable="HEADROOM_STATE_URL")
    return SqliteStore(path, namespace)


def _postgres(url: str, namespace: str) -> StateStore:
    from scaling.store.sql import PostgresStore

    return PostgresStore(url, namespace)


def _redis(url: str, namespace: str) -> StateStore:
    from scaling.store.redis_store import RedisStore

    return RedisStore(url, namespace)


_SCHEMES = {
    "memory": _memory,
    "sqlite": _sqlite,
    "postgresql": _postgres,
    "postgresql+psycopg": _postgres,
    "postgres": _postgres,
    "redis": _redis,
    "rediss": _redis,
}


def open_store(url: str, namespace: str = "headroom") -> StateStore:
    """Open the state store a URL names.

    Raises:
        ConfigurationError: the scheme is not one of memory, sqlite, postgresql, redis.
        StoreError: the server cannot be reached.
    """
    parts = urlsplit(url)
    scheme = parts.scheme
    try:
        parts.port  # noqa: B018 - parsing it is the check: a bad port is a config error, not a traceback
    except ValueError as exc:
        raise ConfigurationError(f"HEADROOM_STATE_URL: {exc}", variable="HEADROOM_STATE_URL") from None
    factory = _SCHEMES.get(scheme)
    if factory is None:
        raise ConfigurationError(f"HEADROOM_STATE_URL: unsupported scheme {scheme or '(none)'!r}; expected one of "
                                 f"{', '.join(sorted(_SCHEMES))}", variable="HEADROOM_STATE_URL")
    return factory(url, namespace)
