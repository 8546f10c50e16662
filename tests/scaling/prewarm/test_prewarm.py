"""The user-listens prewarm against the sandbox in virtual time."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import pytest

from scaling.clock import VirtualClock
from scaling.errors import TransientError
from scaling.prewarm import (
    AGGREGATE_KEY,
    ENTRY_KEY,
    Listen,
    PrewarmConfig,
    PrewarmReport,
    aggregate,
    plan,
    refresh_after,
    run_prewarm,
)
from scaling.prewarm_sources import LastfmListens, SpotifyArt
from scaling.sandbox import Sandbox, SandboxConfig
from scaling.services import Services
from scaling.settings import RateSpec, Settings
from scaling.store.memory import MemoryStore

NOW = 1_767_225_600.0


def listen(user: str, played: float | None, *, fetched: float = NOW, playing: bool = False,
           track: str | None = "t") -> Listen:
    return Listen(user, "a", "b", track, None, played, playing, fetched)


def test_plan_puts_active_and_new_users_first_then_the_stalest() -> None:
    """Active (listened in 2 h) and never-fetched users come first, then inactive users stalest first."""
    entries = {
        "old-fresh": listen("old-fresh", NOW - 10 * 3600, fetched=NOW - 60),
        "old-stale": listen("old-stale", NOW - 10 * 3600, fetched=NOW - 4000),
        "active": listen("active", NOW - 600),
        "playing": listen("playing", NOW - 9000, playing=True),
        "new": None,
    }
    order, n_active = plan(entries, now=NOW, active_window_s=7200)
    assert n_active == 3
    assert set(order[:3]) == {"active", "playing", "new"}
    assert order[3:] == ["old-stale", "old-fresh"]


def test_aggregate_is_now_playing_first_then_most_recent() -> None:
    """The home page shows now-playing tracks first, then by play time, top 5, never-scrobbled left out."""
    entries = [listen(f"u{i}", NOW - i * 100) for i in range(8)]
    entries += [listen("np", NOW - 99999, playing=True), listen("nothing", None, track=None)]
    top = aggregate(entries, top_n=5)
    assert [e.username for e in top] == ["np", "u0", "u1", "u2", "u3"]


def sandbox_services(clock: VirtualClock, listeners: int, active_share: float
                     ) -> tuple[Sandbox, Services, MemoryStore]:
    cfg = SandboxConfig.from_options(seed=1, latency="0.15-0.4", listeners=listeners, active_share=active_share)
    sandbox = Sandbox(cfg, clock)
    store = MemoryStore()
    services = Services(Settings.defaults(), clock=clock, store=store, transport=sandbox.transport())
    return sandbox, services, store


def run_every_five_minutes(clock: VirtualClock, services: Services, store: MemoryStore, names: list[str],
                           runs: int) -> list:  # type: ignore[type-arg]
    async def main() -> list:  # type: ignore[type-arg]
        reports = []
        for _ in range(runs):
            start = clock.now()
            reports.append(await run_prewarm(
                names, LastfmListens(services.lastfm, clock), store, clock, album_art=SpotifyArt(services.spotify),
                call_counter=lambda: {"lastfm": services.fetchers["lastfm"].stats.attempts,
                                      "lastfm_429": services.fetchers["lastfm"].stats.upstream_429}))
            await clock.sleep(start + 300 - clock.now())
        return reports

    return clock.run(main())


@pytest.mark.slow
def test_thousand_users_five_percent_active_stay_fresh(clock: VirtualClock) -> None:
    """1,000 users (5% active), Last.fm at 4/s, 150-400 ms latency, a run every 5 min for 4 h:
    every run inside 30 s, 0 upstream 429s, every active user every run, no inactive user
    staler than 75 min once the first pass is done (the physical bound is ~68 min)."""
    sandbox, services, store = sandbox_services(clock, 1000, 0.05)
    reports = run_every_five_minutes(clock, services, store, sandbox.population.names(), runs=48)
    assert max(r.duration_s for r in reports) <= 30.0
    assert sum(r.upstream_429 for r in reports) == 0
    assert sandbox.stats().upstream("lastfm").rate_limited == 0
    warm = reports[12:]  # the first hour is the initial pass over 1,000 never-fetched users
    assert all(r.active_skipped == 0 for r in warm)
    assert max(r.oldest_inactive_age_s for r in warm) <= 75 * 60
    assert min(r.polled for r in warm) >= 0.9 * 120  # >= 90% of the Last.fm budget used


def test_hundred_users_all_active_are_all_refreshed_every_run(clock: VirtualClock) -> None:
    """100 users who all listen right now: each is polled on every run, inside the deadline."""
    sandbox, services, store = sandbox_services(clock, 100, 1.0)
    reports = run_every_five_minutes(clock, services, store, sandbox.population.names(), runs=6)
    assert all(r.polled == 100 and r.skipped == 0 and r.failed == 0 for r in reports)
    assert max(r.duration_s for r in reports) <= 30.0
    agg = json.loads(store.get(AGGREGATE_KEY, now=clock.now()) or b"{}")
    assert len(agg["tracks"]) == 5 and agg["version"] == 2


def test_deadline_stops_cleanly_and_reports_who_was_skipped(clock: VirtualClock) -> None:
    """With 10 s of deadline and 200 users, the run ends in time, keeps what it got, names the rest."""
    sandbox, services, store = sandbox_services(clock, 200, 1.0)
    names = sandbox.population.names()

    async def main():  # type: ignore[no-untyped-def]
        return await run_prewarm(names, LastfmListens(services.lastfm, clock), store, clock,
                                 config=PrewarmConfig(deadline_s=10.0))

    report = clock.run(main())
    assert report.duration_s <= 10.0
    assert report.refreshed + report.skipped == 200 and report.skipped > 150
    fetched = [u for u in names if store.get(ENTRY_KEY.format(username=u), now=clock.now())]
    assert len(fetched) == report.refreshed
    assert set(report.skipped_users).isdisjoint(fetched)


class FlakySource:
    """Fails for one user; others answer."""

    def __init__(self, bad: str) -> None:
        self.bad = bad
        self.calls = 0

    async def latest_listen(self, username: str, *, budget_s: float, slot_budget_s: float) -> Listen | None:
        self.calls += 1
        if username == self.bad:
            raise TransientError("HTTP 503", upstream="lastfm", endpoint="user.getrecenttracks")
        return listen(username, NOW - 60, fetched=NOW)


def test_a_failure_keeps_the_users_last_good_entry(clock: VirtualClock) -> None:
    """An upstream error for one user leaves their previous entry untouched."""
    store = MemoryStore()
    good = replace(listen("bob", NOW - 30_000, fetched=NOW - 5000), track="last good")
    store.set(ENTRY_KEY.format(username="bob"), good.to_json(), now=clock.now())
    report = clock.run(run_prewarm(["amy", "bob"], FlakySource("bob"), store, clock))
    assert report.failed == 1 and report.refreshed == 1 and report.errors == {"TransientError": 1}
    kept = Listen.from_json(store.get(ENTRY_KEY.format(username="bob"), now=clock.now()) or b"")
    assert kept.track == "last good"


def test_a_spotify_cooldown_during_the_art_step_ends_the_run_inside_its_deadline(clock: VirtualClock) -> None:
    """A Spotify 429 during the art step does not outlast the run: under the collectors' own timeout the run
    ends inside its deadline and the home page's aggregate is written."""
    # Spotify allows one call per 20 s here, so the second art batch gets a 429 whose Retry-After is
    # longer than what is left of a 10 s run but shorter than a fetcher's default 30 s budget.
    cfg = SandboxConfig.from_options(seed=1, latency="0.15-0.4", listeners=60, active_share=1.0)
    sandbox = Sandbox(cfg.with_upstream("spotify", requests=RateSpec(1, 20.0)), clock)
    store = MemoryStore()
    services = Services(Settings.defaults(), clock=clock, store=store, transport=sandbox.transport())
    names = sandbox.population.names()
    for user, album_id in zip(names, sandbox.catalog.ids):  # earlier runs found ids; the art is still Last.fm's
        entry = Listen(user, "a", "b", "t", None, NOW - 60, False, clock.now() - 300, album_id=album_id)
        store.set(ENTRY_KEY.format(username=user), entry.to_json(), now=clock.now())
    config = PrewarmConfig(deadline_s=10.0)

    async def main() -> PrewarmReport:
        async with asyncio.timeout(config.deadline_s):  # how the collectors bound a run
            return await run_prewarm(names, LastfmListens(services.lastfm, clock), store, clock, config=config,
                                     album_art=SpotifyArt(services.spotify))

    report = clock.run(main())
    assert report.duration_s <= config.deadline_s
    assert sandbox.stats().upstream("spotify").rate_limited >= 1  # the art step did meet the cooldown
    agg = json.loads(store.get(AGGREGATE_KEY, now=clock.now()) or b"{}")
    assert agg["version"] == 2 and len(agg["tracks"]) == 5


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'"a string"', b'{"username": "amy", "surprise": 1}'])
def test_a_corrupt_entry_is_refetched_not_trusted(clock: VirtualClock, raw: bytes) -> None:
    """An entry that is not JSON, not an object, or not a listen's fields is polled again like a new user."""
    store = MemoryStore()
    store.set(ENTRY_KEY.format(username="amy"), raw, now=clock.now())
    source = FlakySource(bad="nobody")
    report = clock.run(run_prewarm(["amy"], source, store, clock))
    assert source.calls == 1 and report.refreshed == 1 and report.failed == 0
    fixed = Listen.from_json(store.get(ENTRY_KEY.format(username="amy"), now=clock.now()) or b"")
    assert fixed.username == "amy" and fixed.track == "t"


class _Art:
    """Album art for albums "x" and "y"; records the id batches it was asked for."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    async def resolve(self, artist: str, album: str, *, budget_s: float) -> str | None:
        return {"x": "id-x", "y": "id-y"}.get(album)

    async def __call__(self, album_ids: list[str], budget_s: float) -> dict[str, str]:
        self.batches.append(album_ids)
        return {i: f"https://i.scdn.co/image/{i}" for i in album_ids}


def test_the_art_step_gives_every_listener_of_an_album_its_art(clock: VirtualClock) -> None:
    """Users who share an album get its id and its Spotify image from one lookup each; the stored
    entries carry them."""
    store = MemoryStore()
    users = {"u1": "x", "u2": "x", "u3": "y", "u4": "z"}
    for user, album in users.items():
        entry = replace(listen(user, NOW - 30_000, fetched=clock.now()), album=album)
        store.set(ENTRY_KEY.format(username=user), entry.to_json(), now=clock.now())
    art = _Art()
    config = PrewarmConfig(max_calls=0)
    clock.run(run_prewarm(list(users), FlakySource(bad="nobody"), store, clock, config=config, album_art=art))
    assert art.batches == [["id-x", "id-y"]]
    stored = {u: Listen.from_json(store.get(ENTRY_KEY.format(username=u), now=clock.now()) or b"") for u in users}
    assert {u: (e.album_id, e.image) for u, e in stored.items()} == {
        "u1": ("id-x", "https://i.scdn.co/image/id-x"), "u2": ("id-x", "https://i.scdn.co/image/id-x"),
        "u3": ("id-y", "https://i.scdn.co/image/id-y"), "u4": (None, None)}


def test_plan_leaves_inactive_users_that_are_not_due_for_a_later_run() -> None:
    """With refresh_after_s, an inactive user fetched more recently than that is not polled; active and new
    users always are. Due means two runs short of the staleness target (75 min, 5-minute runs: 65 min)."""
    due = refresh_after(4500.0, 300.0)
    assert due == 3900.0 and refresh_after(600.0, 300.0) == 300.0
    entries = {
        "fresh": listen("fresh", NOW - 10 * 3600, fetched=NOW - 600),
        "due": listen("due", NOW - 10 * 3600, fetched=NOW - due),
        "stale": listen("stale", NOW - 10 * 3600, fetched=NOW - 5000),
        "active": listen("active", NOW - 600, fetched=NOW - 60),
        "new": None,
    }
    order, n_active = plan(entries, now=NOW, active_window_s=7200, refresh_after_s=due)
    assert (order, n_active) == (["new", "active", "stale", "due"], 2)
    assert plan(entries, now=NOW, active_window_s=7200)[0][-1] == "fresh"  # without it: everyone


def test_a_run_with_time_to_spare_polls_only_the_users_that_are_due(clock: VirtualClock) -> None:
    """Inactive users refreshed minutes ago are not polled again (no call, no write); they are not 'skipped'."""
    store = MemoryStore()
    for user, age in (("recent", 300.0), ("old", 5000.0)):
        entry = listen(user, NOW - 30_000, fetched=clock.now() - age)
        store.set(ENTRY_KEY.format(username=user), entry.to_json(), now=clock.now())
    source = FlakySource(bad="nobody")
    config = PrewarmConfig(refresh_after_s=refresh_after(4500.0, 300.0))
    report = clock.run(run_prewarm(["recent", "old"], source, store, clock, config=config))
    assert source.calls == 1 and report.refreshed == 1 and report.skipped == 0
