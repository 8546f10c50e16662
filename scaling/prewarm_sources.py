"""What the prewarm cron reads from: the app DB's users, Last.fm's recent tracks, and
Spotify's album art, adapted to `scaling.prewarm`'s small interfaces."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import func, or_, select
from sqlalchemy.engine import Engine

from scaling.appdb.engine import make_engine, translate_errors
from scaling.appdb.models import User
from scaling.clock import Clock
from scaling.errors import PermanentError
from scaling.prewarm import Listen, PrewarmConfig, PrewarmReport, refresh_after, run_prewarm
from scaling.services import Services
from scaling.settings import Settings
from scaling.store import StateStore
from scaling.upstreams.models import Album, RecentTracks, SearchPage

__all__ = ["AlbumCatalog", "LastfmListens", "RecentTracksApi", "SpotifyArt", "load_usernames", "prewarm_config",
           "prewarm_job"]

log = logging.getLogger("headroom.prewarm")


def load_usernames(engine: Engine) -> list[str]:
    """Last.fm usernames of public users, in a stable order (the upstream cron's population)."""
    stmt = (select(User.lastfm_username)
            .where(User.lastfm_username.is_not(None), User.lastfm_username != "",
                   or_(User.profile_visibility.is_(None), func.lower(User.profile_visibility) == "public"))
            .order_by(User.lastfm_username))
    with translate_errors(engine, "read users"), engine.connect() as conn:
        return [str(u) for u in conn.execute(stmt).scalars()]


class RecentTracksApi(Protocol):
    """The part of `scaling.upstreams.lastfm.LastfmClient` the prewarm uses."""

    async def recent_tracks(self, user: str, *, limit: int = 1, page: int = 1, budget_s: float | None = None,
                            slot_budget_s: float | None = None) -> RecentTracks: ...


class AlbumCatalog(Protocol):
    """The part of `scaling.upstreams.spotify.SpotifyClient` the prewarm uses."""

    async def search(self, query: str, *, type: str = "album", limit: int = 5, offset: int = 0,
                     budget_s: float | None = None) -> SearchPage: ...

    async def albums(self, album_ids: Sequence[str], *, budget_s: float | None = None) -> list[Album | None]: ...


class LastfmListens:
    """`ListenSource` on the Last.fm client: one ``user.getrecenttracks&limit=1`` per user."""

    def __init__(self, lastfm: RecentTracksApi, clock: Clock) -> None:
        self._lastfm = lastfm
        self._clock = clock

    async def latest_listen(self, username: str, *, budget_s: float, slot_budget_s: float) -> Listen | None:
        try:
            page = await self._lastfm.recent_tracks(username, limit=1, budget_s=max(0.0, budget_s),
                                                    slot_budget_s=max(0.0, slot_budget_s))
        except PermanentError as exc:
            if exc.status in (404,) or "error 6" in str(exc):
                return None  # the user no longer exists on Last.fm: nothing to show
            raise
        track = page.latest
        now = self._clock.now()
        if track is None:
            return None
        return Listen(username=username, artist=track.artist or None, album=track.album or None,
                      track=track.name or None, image=track.image, played_at=track.played_at or now,
                      now_playing=track.now_playing, fetched_at=now)


class SpotifyArt:
    """`AlbumArt` from Spotify: the album id via (cached) search, the images in batches of 20,
    each call within the budget it is given."""

    def __init__(self, spotify: AlbumCatalog) -> None:
        self._spotify = spotify

    async def resolve(self, artist: str, album: str, *, budget_s: float) -> str | None:
        page = await self._spotify.search(f'artist:"{artist}" album:"{album}"', type="album", limit=1,
                                          budget_s=max(0.0, budget_s))
        return page.items[0].id if page.items else None

    async def __call__(self, album_ids: Sequence[str], budget_s: float) -> dict[str, str]:
        albums = await self._spotify.albums(list(album_ids), budget_s=max(0.0, budget_s))
        out: dict[str, str] = {}
        for album_id, album in zip(album_ids, albums):
            if album is not None and album.images:
                out[album_id] = max(album.images, key=lambda i: i.width or 0).url
        return out


async def prewarm_job(settings: Settings, *, clock: Clock, store: StateStore, services: Services | None = None,
                      app_engine: Engine | None = None, config: PrewarmConfig | None = None) -> PrewarmReport:
    """One prewarm run wired from settings: users from the app DB, Last.fm and Spotify via `Services`.

    Args:
        services: shared services on ``clock`` (None: built for this run and closed after it).
        app_engine: the app DB (None: opened from settings for this run).
        config: the run's knobs (None: from settings).
    """
    own = services is None
    svc = services if services is not None else Services(settings, clock=clock, store=store)
    engine = app_engine or make_engine(settings.app_db_url)
    try:
        usernames = load_usernames(engine)
        cfg = config or prewarm_config(settings, deadline_s=settings.cron_deadline_s)

        def counts() -> dict[str, int]:
            out = {}
            for name in ("lastfm", "spotify"):
                st = svc.fetchers[name].stats
                out[name] = st.attempts
                out[f"{name}_429"] = st.upstream_429
            return out

        return await run_prewarm(usernames, LastfmListens(svc.lastfm, clock), store, clock, config=cfg,
                                 album_art=SpotifyArt(svc.spotify), call_counter=counts)
    finally:
        if app_engine is None:
            engine.dispose()
        if own:
            await svc.aclose()


def prewarm_config(settings: Settings, *, deadline_s: float) -> PrewarmConfig:
    """The prewarm's knobs from settings: its interval, active window and when an inactive
    user is due (`refresh_after` of the staleness target)."""
    return PrewarmConfig(deadline_s=deadline_s, interval_s=settings.prewarm_interval_s,
                         active_window_s=settings.prewarm_active_window_s,
                         refresh_after_s=refresh_after(settings.prewarm_max_staleness_s, settings.prewarm_interval_s))
