"""State store on SQL: SQLite (WAL, shared by every process on the host) and
PostgreSQL (shared by every host). One table ``headroom_state(k, v, x)``: key,
value bytes, logical expiry. Single-statement UPSERTs for counters and leases;
`update` runs in a write-locked (SQLite ``BEGIN IMMEDIATE``) or row-locked
(PostgreSQL ``SELECT ... FOR UPDATE``) transaction.

Connections are per thread and re-made after a fork, since neither driver's
connections may cross those boundaries.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, TypeVar

from scaling.errors import StoreError
from scaling.store.base import StateStore, UpdateFn

__all__ = ["PostgresStore", "SqliteStore"]

T = TypeVar("T")


class _PerThread:
    """A connection per (process, thread), made on first use."""

    def __init__(self, connect: Any) -> None:
        self._connect = connect
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()

    def get(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            conn = self._connect()
            self._local.conn, self._local.pid = conn, os.getpid()
            with self._lock:
                self._all.append(conn)
        return conn

    def drop(self) -> None:
        """Forget this thread's connection (after an error it may be broken)."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with contextlib.suppress(Exception):  # it is already broken
                conn.close()

    def close_all(self) -> None:
        with self._lock:
            for conn in self._all:
                with contextlib.suppress(Exception):
                    conn.close()
            self._all.clear()
        self._local = threading.local()


class SqliteStore(StateStore):
    """`StateStore` in a SQLite file (WAL), safe across processes on one host.

    Args:
        path: the database file; its directory is created.
        namespace: key prefix.
        busy_timeout: seconds a writer waits for the lock before failing (async callers
            wait for it off the event loop, see `scaling.store.outage`).
    """

    backend = "sqlite"

    def __init__(self, path: str | Path, namespace: str = "headroom", *, busy_timeout: float = 5.0) -> None:
        super().__init__(namespace)
        self.path = str(path)
        if self.path != ":memory:":
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"sqlite cannot create {Path(self.path).parent}: {exc.strerror or exc}",
                                 backend=self.backend, original=exc) from None
        self._busy = busy_timeout
        self.call_timeout_s = busy_timeout
        self._conns = _PerThread(self._connect)
        with self._translate("open"):
            self._conns.get()

    def _is_driver_error(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.Error)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self._busy, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
        conn.execute("CREATE TABLE IF NOT EXISTS headroom_state (k TEXT PRIMARY KEY, v BLOB, x REAL)")
        conn.execute("CREATE INDEX IF NOT EXISTS headroom_state_x ON headroom_state(x)")
        return conn

    def _exec(self, what: str, sql: str, params: Any = ()) -> sqlite3.Cursor:
        with self._translate(what):
            try:
                cursor: sqlite3.Cursor = self._conns.get().execute(sql, params)
                return cursor
            except sqlite3.Error:
                self._conns.drop()
                raise

    def get(self, key: str, *, now: float) -> bytes | None:
        row = self._exec("get", "SELECT v FROM headroom_state WHERE k=? AND (x IS NULL OR x>?)",
                         (self._k(key), now)).fetchone()
        return None if row is None else _as_bytes(row[0])

    def set(self, key: str, value: bytes, *, now: float, ttl: float | None = None) -> None:
        self._exec("set", "INSERT INTO headroom_state(k,v,x) VALUES(?,?,?) "
                          "ON CONFLICT(k) DO UPDATE SET v=excluded.v, x=excluded.x",
                   (self._k(key), bytes(value), self._exp(now, ttl)))

    def delete(self, key: str) -> None:
        self._exec("delete", "DELETE FROM headroom_state WHERE k=?", (self._k(key),))

    def incr(self, key: str, amount: int = 1, *, now: float, ttl: float | None = None) -> int:
        row = self._exec(
            "incr",
            "INSERT INTO headroom_state(k,v,x) VALUES(:k, CAST(:a AS TEXT), :x) ON CONFLICT(k) DO UPDATE SET "
            "v = CASE WHEN headroom_state.x IS NOT NULL AND headroom_state.x <= :now THEN excluded.v "
            "         ELSE CAST(CAST(CAST(headroom_state.v AS TEXT) AS INTEGER) + :a AS TEXT) END, "
            "x = CASE WHEN headroom_state.x IS NOT NULL AND headroom_state.x <= :now THEN excluded.x "
            "         ELSE headroom_state.x END "
            "RETURNING v",
            {"k": self._k(key), "a": amount, "x": self._exp(now, ttl), "now": now}).fetchone()
        return int(row[0])

    def add(self, key: str, value: bytes, *, now: float, ttl: float | None) -> bool:
        row = self._exec(
            "add",
            "INSERT INTO headroom_state(k,v,x) VALUES(?,?,?) ON CONFLICT(k) DO UPDATE SET v=excluded.v, "
            "x=excluded.x WHERE headroom_state.x IS NOT NULL AND headroom_state.x <= ? RETURNING 1",
            (self._k(key), bytes(value), self._exp(now, ttl), now)).fetchone()
        return row is not None

    def compare_and_set(self, key: str, expected: bytes, new: bytes | None, *, now: float,
                        ttl: float | None = None) -> bool:
        live = "k=? AND v=? AND (x IS NULL OR x>?)"
        if new is None:
            cur = self._exec("compare_and_set", f"DELETE FROM headroom_state WHERE {live}",
                             (self._k(key), bytes(expected), now))
        else:
            cur = self._exec("compare_and_set", f"UPDATE headroom_state SET v=?, x=? WHERE {live}",
                             (bytes(new), self._exp(now, ttl), self._k(key), bytes(expected), now))
        return cur.rowcount == 1

    def update(self, key: str, fn: UpdateFn[T], *, now: float) -> T:
        k = self._k(key)
        with self._translate("update"):
            conn = self._conns.get()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    row = conn.execute("SELECT v FROM headroom_state WHERE k=? AND (x IS NULL OR x>?)",
                                       (k, now)).fetchone()
                    new, expires_at, result = fn(None if row is None else _as_bytes(row[0]))
                    if new is None:
                        conn.execute("DELETE FROM headroom_state WHERE k=?", (k,))
                    else:
                        conn.execute("INSERT INTO headroom_state(k,v,x) VALUES(?,?,?) ON CONFLICT(k) "
                                     "DO UPDATE SET v=excluded.v, x=excluded.x", (k, bytes(new), expires_at))
                    conn.execute("COMMIT")
                    return result
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error:
                self._conns.drop()
                raise

    def keys(self, prefix: str, *, now: float) -> list[str]:
        full = self._k(prefix)
        rows = self._exec("keys", "SELECT k FROM headroom_state WHERE substr(k,1,?)=? AND (x IS NULL OR x>?) "
                                  "ORDER BY k", (len(full), full, now)).fetchall()
        cut = len(self.namespace) + 1
        return [r[0][cut:] for r in rows]

    def time(self) -> float:
        # One file on one host: the host's clock is the store's clock.
        return time.time()

    def ping(self) -> None:
        self._exec("ping", "SELECT 1")

    def purge_expired(self, *, now: float) -> int:
        return self._exec("purge", "DELETE FROM headroom_state WHERE x IS NOT NULL AND x<=? AND substr(k,1,?)=?",
                          (now, len(self.namespace) + 1, self.namespace + ":")).rowcount

    def clear(self) -> None:
        self._exec("clear", "DELETE FROM headroom_state WHERE substr(k,1,?)=?",
                   (len(self.namespace) + 1, self.namespace + ":"))

    def close(self) -> None:
        super().close()
        self._conns.close_all()


class PostgresStore(StateStore):
    """`StateStore` in PostgreSQL, shared by every host; time from the server.

    Args:
        url: a ``postgresql://`` URL.
        namespace: key prefix.
        connect_timeout: seconds to wait for a connection.
        statement_timeout: seconds the server lets one statement (lock waits included) run.

    A dead or unreachable server is noticed by TCP keepalives within about
    ``keepalives_idle + keepalives_interval * keepalives_count`` seconds and by
    ``tcp_user_timeout`` for unacknowledged writes; a server that is stopped but whose
    kernel still acknowledges is bounded by `scaling.store.outage.offload` for async
    callers (the statement timeout cannot fire in a stopped server).
    """

    backend = "postgresql"

    def __init__(self, url: str, namespace: str = "headroom", *, connect_timeout: float = 2.0,
                 statement_timeout: float = 2.0) -> None:
        super().__init__(namespace)
        self._url = _libpq_url(url)
        self._timeout = connect_timeout
        self._statement_ms = max(1, int(statement_timeout * 1000))
        self.call_timeout_s = max(connect_timeout, statement_timeout)
        self._conns = _PerThread(self._connect)
        with self._translate("open"):
            conn = self._conns.get()
            with conn.transaction():
                # Concurrent first starts race on CREATE TABLE; serialise them.
                conn.execute("SELECT pg_advisory_xact_lock(8675309)")
                conn.execute("CREATE TABLE IF NOT EXISTS headroom_state "
                             "(k TEXT PRIMARY KEY, v BYTEA, x DOUBLE PRECISION)")
                conn.execute("CREATE INDEX IF NOT EXISTS headroom_state_x ON headroom_state(x)")

    def _is_driver_error(self, exc: BaseException) -> bool:
        import psycopg

        return isinstance(exc, psycopg.Error)

    def _connect(self) -> Any:
        import psycopg

        ms = self._statement_ms
        # Server-side bounds travel in the startup packet, so they hold for every statement
        # (and survive a pooler that resets session state).
        return psycopg.connect(self._url, autocommit=True, connect_timeout=max(1, round(self._timeout)),
                               options=f"-c statement_timeout={ms} -c lock_timeout={ms}",
                               keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=2,
                               tcp_user_timeout=int(self.call_timeout_s * 1000) + 3000)

    def _exec(self, what: str, sql: str, params: Any = ()) -> Any:
        with self._translate(what):
            try:
                return self._conns.get().execute(sql, params)
            except Exception:
                self._conns.drop()
                raise

    def get(self, key: str, *, now: float) -> bytes | None:
        row = self._exec("get", "SELECT v FROM headroom_state WHERE k=%s AND v IS NOT NULL AND (x IS NULL OR x>%s)",
                         (self._k(key), now)).fetchone()
        return None if row is None else bytes(row[0])

    def set(self, key: str, value: bytes, *, now: float, ttl: float | None = None) -> None:
        self._exec("set", "INSERT INTO headroom_state(k,v,x) VALUES(%s,%s,%s) "
                          "ON CONFLICT(k) DO UPDATE SET v=excluded.v, x=excluded.x",
                   (self._k(key), bytes(value), self._exp(now, ttl)))

    def delete(self, key: str) -> None:
        self._exec("delete", "DELETE FROM headroom_state WHERE k=%s", (self._k(key),))

    def incr(self, key: str, amount: int = 1, *, now: float, ttl: float | None = None) -> int:
        row = self._exec(
            "incr",
            "INSERT INTO headroom_state AS s(k,v,x) VALUES(%(k)s, convert_to(%(a)s::text,'UTF8'), %(x)s) "
            "ON CONFLICT(k) DO UPDATE SET "
            "v = CASE WHEN s.x IS NOT NULL AND s.x <= %(now)s THEN excluded.v "
            "         ELSE convert_to((convert_from(s.v,'UTF8')::bigint + %(a)s)::text,'UTF8') END, "
            "x = CASE WHEN s.x IS NOT NULL AND s.x <= %(now)s THEN excluded.x ELSE s.x END "
            "RETURNING convert_from(v,'UTF8')::bigint",
            {"k": self._k(key), "a": amount, "x": self._exp(now, ttl), "now": now}).fetchone()
        return int(row[0])

    def add(self, key: str, value: bytes, *, now: float, ttl: float | None) -> bool:
        row = self._exec(
            "add",
            "INSERT INTO headroom_state AS s(k,v,x) VALUES(%s,%s,%s) ON CONFLICT(k) DO UPDATE SET v=excluded.v, "
            "x=excluded.x WHERE s.x IS NOT NULL AND s.x <= %s RETURNING 1",
            (self._k(key), bytes(value), self._exp(now, ttl), now)).fetchone()
        return row is not None

    def compare_and_set(self, key: str, expected: bytes, new: bytes | None, *, now: float,
                        ttl: float | None = None) -> bool:
        live = "k=%s AND v=%s AND (x IS NULL OR x>%s)"
        if new is None:
            cur = self._exec("compare_and_set", f"DELETE FROM headroom_state WHERE {live}",
                             (self._k(key), bytes(expected), now))
        else:
            cur = self._exec("compare_and_set", f"UPDATE headroom_state SET v=%s, x=%s WHERE {live}",
                             (bytes(new), self._exp(now, ttl), self._k(key), bytes(expected), now))
        return bool(cur.rowcount == 1)

    def update(self, key: str, fn: UpdateFn[T], *, now: float) -> T:
        k = self._k(key)
        with self._translate("update"):
            conn = self._conns.get()
            try:
                with conn.transaction():
                    row = conn.execute("SELECT v, x FROM headroom_state WHERE k=%s FOR UPDATE", (k,)).fetchone()
                    if row is None:
                        # No row to lock yet: create a dead one; the loser of a race waits on the winner's lock.
                        conn.execute("INSERT INTO headroom_state(k,v,x) VALUES(%s,NULL,%s) ON CONFLICT(k) DO NOTHING",
                                     (k, now - 1.0))
                        row = conn.execute("SELECT v, x FROM headroom_state WHERE k=%s FOR UPDATE", (k,)).fetchone()
                    live = row[0] is not None and (row[1] is None or row[1] > now)
                    new, expires_at, result = fn(bytes(row[0]) if live else None)
                    if new is None:
                        conn.execute("DELETE FROM headroom_state WHERE k=%s", (k,))
                    else:
                        conn.execute("UPDATE headroom_state SET v=%s, x=%s WHERE k=%s", (bytes(new), expires_at, k))
                    return result
            except Exception as exc:
                if self._is_driver_error(exc):
                    self._conns.drop()
                raise

    def keys(self, prefix: str, *, now: float) -> list[str]:
        full = self._k(prefix)
        rows = self._exec("keys", "SELECT k FROM headroom_state WHERE left(k, %s)=%s AND v IS NOT NULL "
                                  "AND (x IS NULL OR x>%s) ORDER BY k", (len(full), full, now)).fetchall()
        cut = len(self.namespace) + 1
        return [r[0][cut:] for r in rows]

    def time(self) -> float:
        return float(self._exec("time", "SELECT extract(epoch from clock_timestamp())::float8").fetchone()[0])

    def purge_expired(self, *, now: float) -> int:
        return int(self._exec("purge", "DELETE FROM headroom_state WHERE x IS NOT NULL AND x<=%s AND left(k,%s)=%s",
                              (now, len(self.namespace) + 1, self.namespace + ":")).rowcount)

    def clear(self) -> None:
        self._exec("clear", "DELETE FROM headroom_state WHERE left(k,%s)=%s",
                   (len(self.namespace) + 1, self.namespace + ":"))

    def close(self) -> None:
        super().close()
        self._conns.close_all()


def _as_bytes(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def _libpq_url(url: str) -> str:
    """psycopg wants plain ``postgresql://``; SQLAlchemy-style driver suffixes are dropped."""
    scheme, rest = url.split("://", 1)
    return "postgresql://" + rest if scheme.startswith("postgres") else url
