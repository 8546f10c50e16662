"""The user-listens cron: keep every user's latest listen fresh within the deadline.

The upstream app polls every user every run (batches of 4, a 1 s sleep between
batches) and so covers about 90 users in its 30 s. Here each user has their own
cache entry (``user-listen:individual:{username}``) and a run spends its Last.fm
budget where it matters:

1. users who listened in the last two hours (and new users) every run;
2. then everyone else, stalest first, as far as the spare budget goes, so each
   inactive user is refreshed at least every ``users / spare calls x interval``.

Calls are paced by the shared Last.fm limiter (not by sleeps), run a few at a time
(Workers allow 6 connections per invocation), and stop cleanly at the deadline:
results so far are kept and the users not reached are reported. A failure for one
user keeps their last good entry. Album art comes from Spotify's batch endpoint
(20 ids a call) for albums whose Spotify id is already known; the home page's
aggregate (top 5: now playing first, then most recent) is rebuilt from the
per-user entries at the end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from scaling.clock import Clock
from scaling.errors import RateLimited, ScalingError
from scaling.store import StateStore

__all__ = ["AlbumArt", "Listen", "ListenSource", "PrewarmConfig", "PrewarmReport", "aggregate", "refresh_after",
           "run_prewarm"]

log = logging.getLogger("headroom.prewarm")
metrics_log = logging.getLogger("headroom.metrics")

ENTRY_KEY = "user-listen:individual:{username}"
AGGREGATE_KEY = "user-listens:v2:recent"
ENTRY_TTL_S = 7 * 86400.0  # as the upstream's widget:recent entries
AGGREGATE_TTL_S = 420.0  # the upstream's TTL: survives one missed 5-minute run


@dataclass(frozen=True, slots=True)
class Listen:
    """One user's latest listen, as cached per user.

    Attributes:
        played_at: epoch seconds of the scrobble; for a now-playing track, when it was seen.
        fetched_at: when Last.fm was last asked (successfully) for this user.
        album_id: Spotify album id, once known (for batch art lookups).
    """

    username: str
    artist: str | None
    album: str | None
    track: str | None
    image: str | None
    played_at: float | None
    now_playing: bool
    fetched_at: float
    album_id: str | None = None

    def to_json(self) -> bytes:
        # Every field is a scalar: a plain dict is what asdict gives, without its deep copy.
        return json.dumps({f: getattr(self, f) for f in _LISTEN_FIELDS}, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Listen:
        """Decode a cached entry.

        Raises:
            ValueError: not JSON. TypeError: not an object, or not a listen's fields.
        """
        return _decode_listen(raw if isinstance(raw, bytes) else bytes(raw))


_LISTEN_FIELDS = tuple(Listen.__dataclass_fields__)


@functools.lru_cache(maxsize=1 << 15)
def _decode_listen(raw: bytes) -> Listen:
    # Every run (and the simulator's freshness probe) reads every user's entry and most have
    # not changed since the last read: equal bytes decode to an equal frozen value, so one
    # decode serves them all. The size holds the capacity search's 20,000-user ceiling plus
    # a run's changes; past it a full scan evicts as it goes and every read decodes again.
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise TypeError(f"a cached listen is a JSON object, not {type(data).__name__}")
    fields: dict[str, Any] = {k: data.get(k) for k in _LISTEN_FIELDS}
    return Listen(**fields)


class ListenSource(Protocol):
    """Where a user's latest listen comes from (the Last.fm client)."""

    async def latest_listen(self, username: str, *, budget_s: float, slot_budget_s: float) -> Listen | None:
        """The user's newest scrobble (or now-playing track), None if they have none.
        ``slot_budget_s`` bounds the wait for a rate-limit slot, ``budget_s`` the whole call."""


class AlbumArt(Protocol):
    """Spotify album art: find an album's id, then images for up to 20 ids per call."""

    async def resolve(self, artist: str, album: str, *, budget_s: float) -> str | None:
        """The album's Spotify id (None if not found), within ``budget_s`` seconds."""

    async def __call__(self, album_ids: Sequence[str], budget_s: float) -> dict[str, str]:
        """Image URLs by album id, within ``budget_s`` seconds, waits included."""


@dataclass(frozen=True, slots=True)
class PrewarmConfig:
    """How a run spends its time.

    Attributes:
        deadline_s: the run must end by then (the Worker's 30 s).
        interval_s: how often runs start (for the staleness target).
        active_window_s: a user who listened this recently is "active".
        concurrency: Last.fm calls in flight at once (Workers allow 6; 3 cover 400 ms at 4/s
            without reserving slots far ahead that a deadline would waste).
        safety_s: stop starting calls this long before the deadline.
        top_n: entries in the home page's aggregate.
        max_calls: an upper bound on Last.fm calls per run (None: the limiter and deadline decide).
        refresh_after_s: an inactive user whose entry is younger than this is left for a later
            run (None: every user, stalest first). Without it a run with time to spare
            re-polls users it refreshed minutes ago: Last.fm calls, KV writes and CPU the
            platform bills, for entries that were already fresh (`refresh_after`).
    """

    deadline_s: float = 30.0
    interval_s: float = 300.0
    active_window_s: float = 7200.0
    concurrency: int = 3
    safety_s: float = 0.5
    top_n: int = 5
    max_calls: int | None = None
    refresh_after_s: float | None = None


@dataclass
class PrewarmReport:
    """What a run did; logged as one ``[METRICS]`` line and stored by the collectors."""

    started_at: float
    duration_s: float = 0.0
    deadline_s: float = 30.0
    users_total: int = 0
    users_active: int = 0
    polled: int = 0
    refreshed: int = 0
    failed: int = 0
    skipped: int = 0
    skipped_users: list[str] = field(default_factory=list)
    active_skipped: int = 0  # users known to be active (not merely new) that this run did not reach
    new_users: int = 0  # users with no entry yet (a first pass over a new population takes several runs)
    never_fetched: int = 0  # users still without an entry after this run
    phase_s: dict[str, float] = field(default_factory=dict)
    upstream_calls: dict[str, int] = field(default_factory=dict)
    upstream_429: int = 0
    oldest_entry_age_s: float = 0.0
    oldest_inactive_age_s: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)

    def failure(self) -> str | None:
        """Why this run counts as failed, or None. Failed means nothing was refreshed and at
        least one user failed: a run that refreshed anyone did its job (the rest keep their
        last good entry), and a run with nothing due did not fail."""
        if self.refreshed or not self.failed:
            return None
        causes = ", ".join(f"{k} x{v}" for k, v in self.errors.items()) or "errors"
        return f"0 of {self.users_total} users refreshed, {self.failed} failed ({causes})"

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["skipped_users"] = self.skipped_users[:20]  # a sample; the count is in "skipped"
        return d


def _load(store: StateStore, username: str, now: float) -> Listen | None:
    raw = store.get(ENTRY_KEY.format(username=username), now=now)
    if raw is None:
        return None
    try:
        return Listen.from_json(raw)
    except (ValueError, TypeError):
        return None  # a corrupt entry is refetched rather than trusted


def refresh_after(max_staleness_s: float, interval_s: float) -> float:
    """How old an inactive user's entry may get before a run polls it: two runs short of the
    staleness target, so one missed or overfull run still leaves it inside the target."""
    return max(interval_s, max_staleness_s - 2 * interval_s)


def plan(entries: dict[str, Listen | None], *, now: float, active_window_s: float,
         refresh_after_s: float | None = None) -> tuple[list[str], int]:
    """Order users for this run: active and new first (most recent first), then the
    rest stalest first, leaving out inactive users fetched less than ``refresh_after_s``
    ago. Returns the order and how many of it are active."""
    active, inactive = [], []
    for user, entry in entries.items():
        if entry is None or entry.now_playing or (entry.played_at or 0) >= now - active_window_s:
            active.append((-(entry.played_at or now) if entry else -now, user))
        elif refresh_after_s is None or now - entry.fetched_at >= refresh_after_s:
            inactive.append((entry.fetched_at, user))
    active.sort()
    inactive.sort()
    return [u for _, u in active] + [u for _, u in inactive], len(active)


async def run_prewarm(usernames: Sequence[str], source: ListenSource, store: StateStore, clock: Clock, *,
                      config: PrewarmConfig = PrewarmConfig(), album_art: AlbumArt | None = None,
                      call_counter: Callable[[], dict[str, int]] | None = None) -> PrewarmReport:
    """One prewarm run: plan, poll Last.fm (with Spotify art beside it), write the aggregate.

    Every step is timed on ``clock`` and bounded by the run's deadline.

    Args:
        usernames: Last.fm usernames of the users to keep fresh (public users with a Last.fm name).
        source: the Last.fm side (`latest_listen`).
        store: the state store holding the per-user entries and the aggregate.
        clock: time source; the deadline and every phase are measured on it.
        config: budget and ordering knobs.
        album_art: Spotify batch album lookup, or None to keep Last.fm's images.
        call_counter: returns upstream call and 429 counts (before/after deltas go in the report).

    Returns:
        The run's report (also logged as ``[METRICS] {json}``).
    """
    start = clock.now()
    run = _Run(config, store, clock, start + config.deadline_s,
               PrewarmReport(started_at=start, deadline_s=config.deadline_s, users_total=len(usernames)))
    before = call_counter() if call_counter else {}
    order, n_active = _plan_phase(run, usernames)
    reached = await _poll_phase(run, order, source, album_art)
    _count_skipped(run, order, n_active, reached)
    now = _aggregate_phase(run)
    _measure_staleness(run, now)
    if call_counter:
        _count_calls(run.report, before, call_counter())
    run.report.duration_s = round(clock.now() - start, 3)
    metrics_log.info("[METRICS] %s", json.dumps({"job": "prewarm", **run.report.as_dict()}, default=str))
    return run.report


@dataclass
class _Run:
    """What the steps of one run share: its knobs, store, clock and deadline, the entries and the report."""

    config: PrewarmConfig
    store: StateStore
    clock: Clock
    deadline: float
    report: PrewarmReport
    entries: dict[str, Listen | None] = field(default_factory=dict)

    @property
    def stop_at(self) -> float:
        """No call starts after this: the deadline less the safety margin."""
        return self.deadline - self.config.safety_s


def _plan_phase(run: _Run, usernames: Sequence[str]) -> tuple[list[str], int]:
    """Load every user's entry and order the users (`plan`); returns the order and how many are active."""
    t0 = run.clock.now()
    run.entries = {u: _load(run.store, u, t0) for u in dict.fromkeys(usernames)}
    order, n_active = plan(run.entries, now=t0, active_window_s=run.config.active_window_s,
                           refresh_after_s=run.config.refresh_after_s)
    run.report.users_active = n_active
    if run.config.max_calls is not None:
        order = order[: run.config.max_calls]
    run.report.phase_s["plan"] = round(run.clock.now() - t0, 4)
    return order, n_active


async def _poll_phase(run: _Run, order: list[str], source: ListenSource, album_art: AlbumArt | None) -> set[str]:
    """Poll Last.fm for the users in ``order`` until the deadline; Spotify art for what earlier
    runs found runs beside it (a different upstream, so it costs none of Last.fm's budget,
    but it is bounded by the same deadline). Returns the users reached."""
    t0 = run.clock.now()
    poller = _Poller(run, source, list(reversed(order)))
    art_s: dict[str, float] = {}

    async def art() -> None:
        if album_art is not None:
            a0 = run.clock.now()
            await _enrich(run.entries, album_art, run.store, run.clock, run.stop_at)
            art_s["spotify"] = round(run.clock.now() - a0, 3)

    await asyncio.gather(art(), *(poller.work() for _ in range(max(1, run.config.concurrency))))
    run.report.phase_s["lastfm"] = round(run.clock.now() - t0, 3)
    run.report.phase_s.update(art_s)
    return poller.reached


class _Poller:
    """Last.fm polling: a few workers take users off one queue until the deadline."""

    def __init__(self, run: _Run, source: ListenSource, queue: list[str]) -> None:
        self.run = run
        self.source = source
        self.queue = queue  # reversed: pop() takes the next user
        self.reached: set[str] = set()
        self.latencies: list[float] = [0.5]  # a prior until we have measured some

    async def work(self) -> None:
        run, report = self.run, self.run.report
        while self.queue:
            expected = sorted(self.latencies)[int(len(self.latencies) * 0.9)]
            if run.clock.now() + expected > run.stop_at:
                return
            user = self.queue.pop()
            t0 = run.clock.now()
            try:
                listen = await self.source.latest_listen(user, budget_s=run.stop_at - t0,
                                                         slot_budget_s=run.stop_at - t0 - expected)
            except RateLimited:
                self.queue.clear()  # no slot before the deadline: these users wait for the next run
                return
            except ScalingError as exc:
                self.reached.add(user)
                report.polled += 1
                report.failed += 1
                kind = type(exc).__name__
                report.errors[kind] = report.errors.get(kind, 0) + 1
                continue  # keep the last good entry
            self.reached.add(user)
            report.polled += 1
            self.latencies.append(run.clock.now() - t0)
            self._store(user, listen)
            report.refreshed += 1

    def _store(self, user: str, listen: Listen | None) -> None:
        run = self.run
        if listen is None:  # the user has never scrobbled: remember we looked
            listen = Listen(user, None, None, None, None, None, False, run.clock.now())
        old = run.entries.get(user)
        if old is not None and old.album_id and old.album == listen.album and old.artist == listen.artist:
            listen = dataclasses.replace(listen, album_id=old.album_id, image=listen.image or old.image)
        run.entries[user] = listen
        run.store.set(ENTRY_KEY.format(username=user), listen.to_json(), now=run.clock.now(), ttl=ENTRY_TTL_S)


def _count_skipped(run: _Run, order: list[str], n_active: int, reached: set[str]) -> None:
    report = run.report
    skipped = [u for u in order if u not in reached]
    report.skipped = len(skipped)
    report.skipped_users = skipped
    new = {u for u, e in run.entries.items() if e is None}
    report.new_users = len(new)
    report.active_skipped = sum(1 for u in order[:n_active] if u not in reached and u not in new)


def _aggregate_phase(run: _Run) -> float:
    """Rebuild the home page's aggregate from the entries; returns when it was written."""
    now = run.clock.now()
    top = aggregate([e for e in run.entries.values() if e is not None], top_n=run.config.top_n)
    run.store.set(AGGREGATE_KEY, json.dumps({"tracks": [asdict(e) for e in top], "lastUpdated": now,
                                             "version": 2}).encode(), now=now, ttl=AGGREGATE_TTL_S)
    run.report.phase_s["aggregate"] = round(run.clock.now() - now, 3)
    return now


def _measure_staleness(run: _Run, now: float) -> None:
    report = run.report
    report.never_fetched = sum(1 for e in run.entries.values() if e is None)
    ages = [(now - e.fetched_at, e) for e in run.entries.values() if e is not None]
    report.oldest_entry_age_s = round(max((a for a, _ in ages), default=0.0), 3)
    report.oldest_inactive_age_s = round(max(
        (a for a, e in ages if not e.now_playing and (e.played_at or 0) < now - run.config.active_window_s),
        default=0.0), 3)


def _count_calls(report: PrewarmReport, before: dict[str, int], after: dict[str, int]) -> None:
    report.upstream_calls = {k: after.get(k, 0) - before.get(k, 0) for k in after if not k.endswith("_429")}
    report.upstream_429 = sum(after.get(k, 0) - before.get(k, 0) for k in after if k.endswith("_429"))


async def _enrich(entries: dict[str, Listen | None], album_art: AlbumArt, store: StateStore, clock: Clock,
                  deadline: float, resolve_limit: int = 20) -> None:
    """Swap Last.fm's small images for Spotify's: find ids for a few new albums per run
    (searches are cached 30 days), then fetch art 20 albums a call; every call gets
    what is left before ``deadline`` as its budget."""
    unknown = sorted({(e.artist, e.album) for e in entries.values()
                      if e is not None and e.artist and e.album and not e.album_id})[:resolve_limit]
    by_album: dict[tuple[str | None, str | None], list[str]] = {}
    for user, e in entries.items():
        if e is not None:
            by_album.setdefault((e.artist, e.album), []).append(user)
    for artist, album in unknown:
        if clock.now() >= deadline:
            return
        try:
            album_id = await album_art.resolve(artist or "", album or "", budget_s=deadline - clock.now())
        except ScalingError as exc:
            log.info("album id lookup stopped: %s", exc)
            break
        if not album_id:
            continue
        for user in by_album[(artist, album)]:
            e = entries[user]
            if e is not None:
                entries[user] = dataclasses.replace(e, album_id=album_id)
    holders: dict[str, list[str]] = {}
    for user, e in entries.items():
        if e is not None and e.album_id and not _spotify(e.image):
            holders.setdefault(e.album_id, []).append(user)
    want = sorted(holders)
    for i in range(0, len(want), 20):
        if clock.now() >= deadline:
            return
        try:
            art = await album_art(want[i:i + 20], deadline - clock.now())
        except ScalingError as exc:
            log.warning("album art lookup failed: %s", exc)
            return
        now = clock.now()
        for album_id, image in art.items():
            for user in holders.get(album_id, ()):
                e = entries[user]
                if e is not None:
                    updated = dataclasses.replace(e, image=image)
                    entries[user] = updated
                    store.set(ENTRY_KEY.format(username=user), updated.to_json(), now=now, ttl=ENTRY_TTL_S)


def _spotify(image: str | None) -> bool:
    return bool(image) and "scdn.co" in (image or "")


def aggregate(entries: Sequence[Listen], *, top_n: int = 5) -> list[Listen]:
    """The home page's list: now playing first, then most recently played; users who
    never scrobbled are left out."""
    shown = [e for e in entries if e.track]
    shown.sort(key=lambda e: (not e.now_playing, -(e.played_at or 0.0), e.username))
    return shown[:top_n]
