"""What the prewarm cron reads from: the app DB's users, Last.fm's recent tracks, and
Spotify's album art, adapted to `scaling.prewarm`'s small interfaces."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.engine import Engine

from scaling.appdb.engine import make_engine, translate_errors
from scaling.appdb.models import User
from scaling.clock import Clock
from scaling.errors import PermanentError
from scaling.prewarm import Listen, PrewarmConfig, PrewarmReport, run_prewarm
from scaling.settings import Settings
from scaling.store import StateStore

__all__ = ["LastfmListens", "SpotifyArt", "load_usernames", "prewarm_job"]

log = logging.getLogger("headroom.prewarm")


def load_usernames(engine: Engine) -> list[str]:
    """Last.fm usernames of public users, in a stable order (the upstream cron's population)."""
    stmt = (select(User.lastfm_username)
            .where(User.lastfm_username.is_not(None), User.lastfm_username != "",
                   or_(User.profile_visibility.is_(None), func.lower(User.profile_visibility) == "public"))
            .order_by(User.lastfm_username))
    with translate_errors(engine, "read users"), engine.connect() as conn:
        return [str(u) for u in conn.execute(stmt).scalars()]


class LastfmListens:
    """`ListenSource` on the Last.fm client: one ``user.getrecenttracks&limit=1`` per user."""

    def __init__(self, lastfm: Any, clock: Clock) -> None:
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
    """Album art from Spotify: the album id via (cached) search, the images in batches of 20."""

    def __init__(self, spotify: Any) -> None:
        self._spotify = spotify

    async def resolve(self, artist: str, album: str) -> str | None:
        page = await self._spotify.search(f'artist:"{artist}" album:"{album}"', type="album", limit=1)
        items = getattr(page, "items", ())
        return getattr(items[0], "id", None) if items else None

    async def __call__(self, album_ids: Sequence[str], budget_s: float) -> dict[str, str]:
        albums = await self._spotify.albums(list(album_ids))
        out: dict[str, str] = {}
        for album_id, album in zip(album_ids, albums):
            images = getattr(album, "images", ()) if album is not None else ()
            if images:
                out[album_id] = max(images, key=lambda i: (i.width or 0)).url
        return out


async def prewarm_job(settings: Settings, *, clock: Clock, store: StateStore, services: Any = None,
                      app_engine: Engine | None = None, config: PrewarmConfig | None = None) -> PrewarmReport:
    """One prewarm run wired from settings: users from the app DB, Last.fm and Spotify via `Services`."""
    from scaling.services import Services

    own = services is None
    svc = services if services is not None else Services(settings, clock=clock, store=store)
    engine = app_engine or make_engine(settings.app_db_url)
    try:
        usernames = load_usernames(engine)
        cfg = config or PrewarmConfig(deadline_s=settings.cron_deadline_s, interval_s=settings.prewarm_interval_s,
                                      active_window_s=settings.prewarm_active_window_s)
        art = SpotifyArt(svc.spotify)

        def counts() -> dict[str, int]:
            out = {}
            for name in ("lastfm", "spotify"):
                st = svc.fetchers[name].stats
                out[name] = st.attempts
                out[f"{name}_429"] = st.upstream_429
            return out

        return await run_prewarm(usernames, LastfmListens(svc.lastfm, clock), store, clock, config=cfg,
                                 album_art=art, call_counter=counts)
    finally:
        if app_engine is None:
            engine.dispose()
        if own:
            await svc.aclose()
