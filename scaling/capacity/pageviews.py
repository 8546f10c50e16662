"""Simulated page views: what one visitor's page asks of the service layer, and what
it writes to the app DB (usage log, sessions, searches) as the real app does."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import random
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Engine

from scaling.appdb.models import ApiUsageLog, RecentSearch, Search, Session
from scaling.capacity.steady_state import Demand
from scaling.clock import Clock
from scaling.errors import ScalingError

__all__ = ["PageViews"]

#: Internal /api calls logged per page view (a home page makes 40+; album pages a handful).
USAGE_ROWS_PER_VIEW = 8
NEW_SESSION_SHARE = 0.1
PROFILE_SHARE = 0.3
#: Distinct search queries visitors type (uniformly): ``album 0`` .. ``album 4999``.
SEARCH_QUERIES = 5000
#: Active users make this many times the views of the others.
ACTIVE_FACTOR = 4
_FLUSH_ROWS = 5000


def _text(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class PageViews:
    """Album pages (Spotify album, an AI summary), searches, profile pages (Last.fm)."""

    def __init__(self, services: Any, engine: Engine, clock: Clock, rng: random.Random, names: Sequence[str], *,
                 sandbox_catalog: Any, ai_share: float, search_share: float, budget_s: float) -> None:
        self.svc, self.engine, self.clock, self.rng = services, engine, clock, rng
        self.names = names
        ids = list(sandbox_catalog.ids) if sandbox_catalog is not None else []
        self.album_ids = ids or [uuid.UUID(int=rng.getrandbits(128)).hex[:22] for _ in range(2000)]
        # Popularity is Zipf-like: a few albums get most views, as on any music site.
        self.weights = [1.0 / (i + 1) ** 0.9 for i in range(len(self.album_ids))]
        # What random.choices accumulates from the weights on every call (the same draws, once).
        self._cum_weights = list(itertools.accumulate(self.weights))
        self.ai_share, self.search_share, self.budget_s = ai_share, search_share, budget_s
        self.latencies: list[float] = []
        self.failed = 0
        self.errors: dict[str, int] = {}
        self._rows: dict[Any, list[dict[str, Any]]] = {ApiUsageLog: [], Session: [], Search: [], RecentSearch: []}
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, user: str) -> None:
        """Start one visitor's page view; `drain` waits for every view started."""
        self._tasks.add(asyncio.ensure_future(self.view(user)))

    async def view(self, user: str) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        t0 = self.clock.now()
        rng = self.rng
        album = rng.choices(self.album_ids, cum_weights=self._cum_weights)[0]
        want_ai, want_search, want_profile = (rng.random() < self.ai_share, rng.random() < self.search_share,
                                              rng.random() < PROFILE_SHARE)
        query = f"album {rng.randrange(SEARCH_QUERIES)}"
        try:
            async with asyncio.timeout(self.budget_s):
                await self.svc.spotify.album(album)
                if want_ai:
                    await self.svc.ai.ask("albumDetail", [album], f"Describe the album {album} in 200 words.")
                if want_search:
                    await self.svc.spotify.search(query, type="album", limit=5)
                if want_profile:
                    await self.svc.lastfm.user_info(user)
            self.latencies.append(self.clock.now() - t0)
        except (ScalingError, TimeoutError) as exc:
            self.failed += 1
            kind = type(exc).__name__
            self.errors[kind] = self.errors.get(kind, 0) + 1
        finally:
            self._write(user, album, query if want_search else None, t0)
            if task is not None:
                self._tasks.discard(task)

    def _write(self, user: str, album: str, query: str | None, ts: float) -> None:
        when = _text(ts)
        self._rows[ApiUsageLog].extend({"endpoint": "/api/internal/album", "method": "GET", "status_code": 200,
                                        "response_time_ms": 40, "created_at": when}
                                       for _ in range(USAGE_ROWS_PER_VIEW))
        if self.rng.random() < NEW_SESSION_SHARE:
            self._rows[Session].append({"id": uuid.UUID(int=self.rng.getrandbits(128)).hex, "user_id": user,
                                        "token_hash": uuid.UUID(int=self.rng.getrandbits(128)).hex,
                                        "created_at": when, "expires_at": _iso(ts + 30 * 86400),
                                        "last_active_at": when})
        if query:
            self._rows[Search].append({"id": uuid.UUID(int=self.rng.getrandbits(128)).hex, "user_id": user,
                                       "search_type": "album", "query": query, "searched_at": when})
            self._rows[RecentSearch].append({"id": uuid.UUID(int=self.rng.getrandbits(128)).hex,
                                             "spotify_id": album, "album_name": query, "artist_name": "x",
                                             "searched_at": when})
        if sum(len(v) for v in self._rows.values()) >= _FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        with self.engine.begin() as conn:
            for model, rows in self._rows.items():
                if rows:
                    conn.execute(insert(model), rows)
                    rows.clear()

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self.flush()

    def demands(self, views_per_s: float, active: int, users: int) -> list[Demand]:
        """Each cached item's request rate when views arrive at ``views_per_s`` (see `pick_user`)."""
        total_w = self._cum_weights[-1]
        out = [Demand("spotify:album:v2", a, views_per_s * w / total_w) for a, w in zip(self.album_ids, self.weights)]
        out += [Demand("ai:albumDetail", a, views_per_s * self.ai_share * w / total_w)
                for a, w in zip(self.album_ids, self.weights)]
        out += [Demand("spotify:search", f"album {q}", views_per_s * self.search_share / SEARCH_QUERIES)
                for q in range(SEARCH_QUERIES)]
        p_active = ACTIVE_FACTOR * active / (users + (ACTIVE_FACTOR - 1) * active)
        for i, name in enumerate(self.names[:users]):
            p = (1 - p_active) / users + (p_active / active if i < active else 0.0)
            out.append(Demand("lastfm:userInfo", name, views_per_s * PROFILE_SHARE * p))
        return out

    def pick_user(self, active: int, users: int) -> str:
        """A visitor: one of the first ``active`` users ``ACTIVE_FACTOR`` times as often as the others."""
        rng = self.rng
        if rng.random() < ACTIVE_FACTOR * active / (users + (ACTIVE_FACTOR - 1) * active):
            return self.names[rng.randrange(active)]
        return self.names[rng.randrange(users)]

    async def warm(self, demand: Demand) -> None:
        """Fetch one item as a page would, so it is cached (the steady-state warm-up)."""
        try:
            if demand.family == "spotify:album:v2":
                await self.svc.spotify.album(demand.key)
            elif demand.family == "ai:albumDetail":
                await self.svc.ai.ask("albumDetail", [demand.key], f"Describe the album {demand.key} in 200 words.")
            elif demand.family == "spotify:search":
                await self.svc.spotify.search(demand.key, type="album", limit=5)
            elif demand.family == "lastfm:userInfo":
                await self.svc.lastfm.user_info(demand.key)
        except ScalingError:
            pass  # an item the warm-up could not fetch starts cold, as after an outage

    def summary(self) -> dict[str, float]:
        views = len(self.latencies) + self.failed
        return {"views": float(views), "failed": float(self.failed),
                "failed_share": round(self.failed / views, 4) if views else 0.0,
                "p50_s": round(sorted(self.latencies)[len(self.latencies) // 2], 3) if self.latencies else 0.0,
                "p95_s": round(sorted(self.latencies)[int(len(self.latencies) * 0.95)], 3) if self.latencies
                else 0.0}
