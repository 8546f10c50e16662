"""The plan's load test, through the real client path of one upstream.

``P`` processes x ``C`` concurrent callers share ``N`` requests; every request goes
through the same Services wiring production uses (limiter on the shared state store,
breaker, fetch wrapper, client), so what it measures is what the app would do.
Requests are chosen so no cache can answer them (unique search queries and URLs),
and they are harmless against the real APIs (a search, a user's latest track, a
16-token completion).
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing as mp
import queue
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from scaling.errors import RateLimited, ScalingError, StoreError, Throttled
from scaling.settings import RateSpec, Settings, UpstreamSettings

__all__ = ["SERVICES", "LoadResult", "WorkerFailed", "run_loadtest"]

#: How often the parent looks for dead workers while it waits for results.
_POLL_S = 0.5


class WorkerFailed(ScalingError):
    """A load-test process died or could not run (its store, its settings)."""

    def __init__(self, message: str, *, store_down: bool = False) -> None:
        super().__init__(message)
        self.store_down = store_down

SERVICES = ("spotify", "lastfm", "openai", "perplexity", "songlink")


@dataclass
class LoadResult:
    """What the load test saw, merged over every process."""

    service: str
    requests: int = 0
    ok: int = 0
    upstream_429: int = 0
    errors: int = 0
    rate_limited: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    achieved_rate: float = 0.0
    first_ok: float = 0.0
    last_ok: float = 0.0
    limit: str = ""
    state_url: str = ""
    dead_workers: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _request(service: str, svc: Any, i: int, tag: str, lastfm_user: str | None) -> Callable[[], Awaitable[Any]]:
    if service == "spotify":
        return lambda: svc.spotify.search(f"headroom load {tag} {i}", type="album", limit=1)
    if service == "lastfm":
        user = lastfm_user or f"listener{(i % 100) + 1:04d}"
        return lambda: svc.lastfm.recent_tracks(user, limit=1)
    if service == "openai":
        return lambda: svc.openai.chat([{"role": "user", "content": f"Say OK ({i})."}], model="gpt-5-nano",
                                       task="loadtest", max_tokens=16)
    if service == "perplexity":
        return lambda: svc.perplexity.chat([{"role": "user", "content": f"Say OK ({i})."}], task="loadtest")
    return lambda: svc.songlink.links(f"https://open.spotify.com/album/{tag}{i:06d}")


def _settings_for(settings: Settings, service: str, base_url: str | None, limit: RateSpec | None,
                  state_url: str | None) -> Settings:
    ups = dict(settings.upstreams)
    up: UpstreamSettings = settings.upstream(service)
    changes: dict[str, Any] = {}
    if base_url:
        changes["base_url"] = base_url.rstrip("/")
        if service == "spotify":
            changes["accounts_url"] = base_url.rstrip("/")
    if limit:
        changes["requests"] = limit
    ups[service] = dataclasses.replace(up, **changes)
    over: dict[str, Any] = {"upstreams": ups}
    if state_url:
        over["state_url"] = state_url
    return dataclasses.replace(settings, **over)


def _worker(settings: Settings, service: str, count: int, concurrency: int, tag: str, lastfm_user: str | None,
            budget_s: float, out: Any, index: int) -> None:
    from scaling.services import Services

    async def main() -> dict[str, Any]:
        svc = Services.from_settings(settings, persist_usage=False)
        fetcher = svc.fetchers[service]
        fetcher.budget_s = budget_s
        result: dict[str, Any] = {"ok_times": [], "errors": {}, "rate_limited": 0}
        todo = iter(range(index * count, (index + 1) * count))

        async def caller() -> None:
            for i in todo:
                try:
                    await _request(service, svc, i, tag, lastfm_user)()
                    result["ok_times"].append(time.time())
                except RateLimited:
                    result["rate_limited"] += 1
                except Throttled as exc:
                    result["errors"][type(exc).__name__] = result["errors"].get(type(exc).__name__, 0) + 1
                except ScalingError as exc:
                    result["errors"][type(exc).__name__] = result["errors"].get(type(exc).__name__, 0) + 1

        try:
            await asyncio.gather(*(caller() for _ in range(concurrency)))
        finally:
            result["upstream_429"] = fetcher.stats.upstream_429
            await svc.aclose()
        return result

    try:
        out.put({"index": index, **asyncio.run(main())})
    except StoreError as exc:  # the state store is unreachable: report, don't traceback
        out.put({"index": index, "fatal": str(exc), "store_down": True})
    except Exception as exc:  # noqa: BLE001 - whatever kills a worker is reported by the parent, not lost
        out.put({"index": index, "fatal": f"{type(exc).__name__}: {exc}"})


def run_loadtest(settings: Settings, *, service: str, requests: int, processes: int, concurrency: int,
                 base_url: str | None = None, limit: RateSpec | None = None, state_url: str | None = None,
                 lastfm_user: str | None = None, budget_s: float = 600.0) -> LoadResult:
    """Run the load test and merge what every process saw.

    Raises:
        ScalingError: a process could not start its services (bad store URL, store down).
    """
    cfg = _settings_for(settings, service, base_url, limit, state_url)
    tag = uuid.uuid4().hex[:8]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    per = [requests // processes + (1 if p < requests % processes else 0) for p in range(processes)]
    start = time.time()
    procs = [ctx.Process(target=_worker, args=(cfg, service, per[p], concurrency, tag, lastfm_user, budget_s, out, p))
             for p in range(processes)]
    for proc in procs:
        proc.start()
    parts, dead = _collect(procs, out)
    result = LoadResult(service=service, requests=requests, seconds=round(time.time() - start, 3),
                        limit=str(cfg.upstream(service).requests), state_url=cfg.state_url.split("@")[-1],
                        dead_workers=dead)
    fatal = [p for p in parts if "fatal" in p]
    if fatal:
        raise WorkerFailed(str(fatal[0]["fatal"]), store_down=any(p.get("store_down") for p in fatal))
    if not parts:
        raise WorkerFailed(f"every load-test process died: {'; '.join(dead)}")
    times = sorted(t for p in parts for t in p["ok_times"])
    result.ok = len(times)
    result.upstream_429 = sum(p["upstream_429"] for p in parts)
    result.rate_limited = sum(p["rate_limited"] for p in parts)
    for part in parts:
        for k, v in part["errors"].items():
            result.error_kinds[k] = result.error_kinds.get(k, 0) + v
    result.errors = sum(result.error_kinds.values()) + result.rate_limited
    if len(times) >= 2:
        result.first_ok, result.last_ok = times[0], times[-1]
        result.achieved_rate = round((len(times) - 1) / (times[-1] - times[0]), 3)
    return result


def _collect(procs: list[Any], out: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Every live worker's result; a worker that exits without one is reported, never waited for."""
    parts: dict[int, dict[str, Any]] = {}
    dead: list[str] = []
    while len(parts) + len(dead) < len(procs):
        try:
            part = out.get(timeout=_POLL_S)
            parts[int(part["index"])] = part
            continue
        except queue.Empty:
            pass
        for i, p in enumerate(procs):
            gone = i not in parts and not any(d.startswith(f"worker {i} ") for d in dead)
            if gone and p.exitcode is not None:
                try:  # its result may have landed between our get and its exit
                    part = out.get(timeout=_POLL_S)
                    parts[int(part["index"])] = part
                    continue
                except queue.Empty:
                    dead.append(f"worker {i} (pid {p.pid}) exited with code {p.exitcode} without a result")
    for p in procs:
        p.join(5)
        if p.is_alive():
            p.kill()
    return list(parts.values()), dead
