"""State store on Redis. Every operation is one Lua script (``lua/kv.lua``,
``lua/gcra.lua``), so it is atomic on the server; `update` with an arbitrary Python
function uses an optimistic WATCH/MULTI transaction, retried a bounded number of
times on conflict (`StoreContention` after that, never a spin without end)."""

from __future__ import annotations

import random
import time
from importlib import resources
from typing import Any, TypeVar

from scaling.store import gcra
from scaling.store.base import StateStore, StoreContention, UpdateFn

__all__ = ["RedisStore", "StoreContention"]

T = TypeVar("T")

_SLACK_MS = 300_000  # physical expiry trails logical expiry; see lua/kv.lua
#: Optimistic `update` attempts before giving up: only a key written by many processes
#: in the same few milliseconds loses this often, and then a typed error beats a spin.
MAX_WATCH_ATTEMPTS = 100


def _script(name: str) -> str:
    return resources.files("scaling.store").joinpath(f"lua/{name}").read_text()


class RedisStore(StateStore):
    """`StateStore` on Redis (or Valkey); keys are hashes ``{v, x}``.

    Args:
        url: ``redis://host:port/db`` (``rediss://`` for TLS).
        namespace: key prefix.
        timeout: seconds one command (and one connect) may take before it fails: a stopped
            or unreachable server costs a caller this, never more.
    """

    backend = "redis"

    def __init__(self, url: str, namespace: str = "headroom", *, timeout: float = 2.0) -> None:
        import redis

        super().__init__(namespace)
        self.call_timeout_s = timeout
        self._redis = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                           socket_keepalive=True, health_check_interval=30)
        self._kv = self._redis.register_script(_script("kv.lua"))
        self._gcra = self._redis.register_script(_script("gcra.lua"))
        with self._translate("open"):
            self._redis.ping()

    def _is_driver_error(self, exc: BaseException) -> bool:
        import redis

        return isinstance(exc, redis.RedisError)

    def _call(self, what: str, script: Any, key: str, *args: object) -> Any:
        import redis

        with self._translate(what):
            try:
                # EVALSHA directly: redis-py's Script wrapper costs a fifth of a hot-path call.
                return self._redis.execute_command(  # type: ignore[no-untyped-call]  # untyped in redis-py
                    "EVALSHA", script.sha, 1, self._k(key), *args)
            except redis.exceptions.NoScriptError:
                return script(keys=[self._k(key)], args=list(args))  # loads the script, then runs it

    @staticmethod
    def _ttl(ttl: float | None) -> str:
        return "" if ttl is None else repr(float(ttl))

    def get(self, key: str, *, now: float) -> bytes | None:
        value = self._call("get", self._kv, key, "get", repr(now))
        return None if value is None else bytes(value)

    def set(self, key: str, value: bytes, *, now: float, ttl: float | None = None) -> None:
        self._call("set", self._kv, key, "set", repr(now), bytes(value), self._ttl(ttl))

    def delete(self, key: str) -> None:
        with self._translate("delete"):
            self._redis.delete(self._k(key))

    def incr(self, key: str, amount: int = 1, *, now: float, ttl: float | None = None) -> int:
        return int(self._call("incr", self._kv, key, "incr", repr(now), int(amount), self._ttl(ttl)))

    def add(self, key: str, value: bytes, *, now: float, ttl: float | None) -> bool:
        return bool(self._call("add", self._kv, key, "add", repr(now), bytes(value), self._ttl(ttl)))

    def compare_and_set(self, key: str, expected: bytes, new: bytes | None, *, now: float,
                        ttl: float | None = None) -> bool:
        return bool(self._call("compare_and_set", self._kv, key, "cas", repr(now), bytes(expected),
                               b"" if new is None else bytes(new), self._ttl(ttl), "1" if new is None else "0"))

    def update(self, key: str, fn: UpdateFn[T], *, now: float) -> T:
        import redis

        k = self._k(key)
        with self._translate("update"), self._redis.pipeline() as pipe:
            for attempt in range(MAX_WATCH_ATTEMPTS):
                try:
                    pipe.watch(k)  # type: ignore[no-untyped-call]  # untyped in redis-py
                    v, x = pipe.hmget(k, "v", "x")
                    live = v is not None and (x in (None, b"") or float(x) > now)
                    new, expires_at, result = fn(_raw(v) if live else None)
                    pipe.multi()
                    pipe.delete(k)
                    if new is not None:
                        if expires_at is None:
                            pipe.hset(k, mapping={"v": new})
                        else:
                            pipe.hset(k, mapping={"v": new, "x": f"{expires_at:.6f}"})
                            pipe.pexpire(k, max(1, int((expires_at - now) * 1000)) + _SLACK_MS)
                    pipe.execute()
                    return result
                except redis.WatchError:
                    # Back off a little, randomly, so a crowd of writers stops colliding.
                    time.sleep(random.uniform(0, 0.0005 * min(attempt + 1, 20)))
        raise StoreContention(f"redis update of {key!r} lost {MAX_WATCH_ATTEMPTS} optimistic transactions in a row",
                              backend=self.backend)

    def keys(self, prefix: str, *, now: float) -> list[str]:
        cut = len(self.namespace) + 1
        with self._translate("keys"):
            found = list(self._redis.scan_iter(match=_glob_escape(self._k(prefix)) + "*", count=1000))
            if not found:
                return []
            pipe = self._redis.pipeline(transaction=False)
            for k in found:
                pipe.hmget(k, "v", "x")
            out = []
            for k, (_v, x) in zip(found, pipe.execute(), strict=True):
                # Limiter hashes have no "v": they live until Redis expires them.
                if x in (None, b"") or float(x) > now:
                    out.append(k.decode()[cut:])
            return sorted(out)

    def time(self) -> float:
        with self._translate("time"):
            sec, usec = self._redis.time()
        return sec + usec / 1e6

    def purge_expired(self, *, now: float) -> int:
        # Redis drops keys itself (PEXPIRE slack); nothing to do eagerly.
        return 0

    def clear(self) -> None:
        with self._translate("clear"):
            batch = []
            for k in self._redis.scan_iter(match=_glob_escape(self.namespace) + ":*", count=1000):
                batch.append(k)
                if len(batch) >= 500:
                    self._redis.delete(*batch)
                    batch = []
            if batch:
                self._redis.delete(*batch)

    def close(self) -> None:
        super().close()
        self._redis.close()

    # -- limiter operations as single Lua calls --------------------------------------
    def gcra_acquire(self, key: str, rates: list[gcra.GcraRate], *, now: float,
                     max_wait: float) -> gcra.GcraDecision:
        args: list[object] = ["acquire", repr(now), repr(float(max_wait)), len(rates)]
        for r in rates:
            args += [repr(r.interval), repr(float(r.capacity)), repr(float(r.cost)), repr(r.window)]
        out = self._call("gcra_acquire", self._gcra, key, *args)
        used = float(out[4]) if len(out) > 4 else 0.0
        return gcra.GcraDecision(bool(out[0]), float(out[1]), float(out[2]), float(out[3]), used)

    def gcra_refund(self, key: str, units: list[float], rates: list[gcra.GcraRate], *, now: float) -> None:
        args: list[object] = ["refund", repr(now), len(units)]
        for amount, r in zip(units, rates):
            args += [repr(float(amount)), repr(r.interval)]
        self._call("gcra_refund", self._gcra, key, *args)

    def gcra_cooldown(self, key: str, until: float, *, now: float, window: float, throttle: bool = True) -> float:
        return float(self._call("gcra_cooldown", self._gcra, key, "cooldown", repr(now), repr(float(until)),
                                repr(float(window)), "1" if throttle else "0"))

    def gcra_snapshot(self, key: str, *, now: float, window: float) -> gcra.GcraSnapshot:
        used, backlog, cd, thr, wt, rej, n429 = self._call("gcra_snapshot", self._gcra, key, "snapshot", repr(now),
                                                           repr(float(window)))
        cdf = float(cd)
        return gcra.GcraSnapshot(used=float(used), backlog=float(backlog), cooldown_until=cdf if cdf > now else 0.0,
                                 throttled=int(float(thr)), wait_seconds=float(wt), rejected=int(float(rej)),
                                 upstream_429=int(float(n429)))


def _raw(value: bytes | str | None) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value or b"")


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
