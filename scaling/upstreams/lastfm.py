"""Last.fm client: ``user.getrecenttracks`` (with now-playing) and ``user.getinfo``.

Last.fm reports errors in the body (``{"error": 29, "message": ...}``), sometimes
under HTTP 200; the fetch wrapper classifies them (29 throttled, 11/16 transient,
6/10/26 permanent), so this client only ever parses successes. Its JSON has
quirks handled here: numbers come as strings, a single track comes as an object
instead of a list, and a now-playing entry has ``@attr.nowplaying`` and no date.
Recent tracks are never cached (the reference does not); user info is, 30 days.
"""

from __future__ import annotations

from typing import Any

from scaling.cache import Cache
from scaling.fetch import Fetcher
from scaling.settings import Secret
from scaling.upstreams.body import Body
from scaling.upstreams.models import LastfmUser, RecentTrack, RecentTracks

__all__ = ["LastfmClient", "parse_recent_tracks", "parse_user_info"]

_IMAGE_SIZES = ("small", "medium", "large", "extralarge", "mega")


def _named(b: Body, key: str) -> tuple[str, str | None]:
    """``artist``/``album``: ``{"#text", "mbid"}`` (or ``{"name"}`` with extended=1)."""
    obj = b.obj(key)
    name = obj.text("#text", None)
    if name is None:
        name = obj.text("name")
    return name, obj.text("mbid", None) or None


def _track(b: Body) -> RecentTrack:
    artist, artist_mbid = _named(b, "artist")
    album, album_mbid = _named(b, "album")
    images = {}
    for img in b.items("image", optional=True):
        size, url = img.text("size", ""), img.text("#text", "")
        if size in _IMAGE_SIZES and url:
            images[size] = url
    attr = b.opt_obj("@attr")
    now_playing = attr is not None and attr.text("nowplaying", "").lower() == "true"
    date = b.opt_obj("date")
    played_at = float(date.integer("uts", numeric_string=True)) if date is not None else None
    if played_at is None and not now_playing:
        raise b.fail("has neither a date nor @attr.nowplaying")
    return RecentTrack(artist=artist, album=album, name=b.text("name"), url=b.text("url", None), images=images,
                       played_at=played_at, now_playing=now_playing, artist_mbid=artist_mbid,
                       album_mbid=album_mbid)


def parse_recent_tracks(body: Any) -> RecentTracks:
    """A ``user.getrecenttracks`` JSON answer.

    Raises:
        MalformedResponse: naming the first field that is not as documented.
    """
    root = Body(body, upstream="lastfm", endpoint="user.getrecenttracks").obj("recenttracks")
    # One track comes as an object, not a list; "track" is always present (maybe empty):
    # missing is not "no scrobbles".
    one = root.has("track") and isinstance(root.data["track"], dict)
    tracks = [root.obj("track")] if one else root.items("track")
    attr = root.obj("@attr")
    return RecentTracks(user=attr.text("user"), tracks=tuple(_track(t) for t in tracks),
                        page=attr.integer("page", numeric_string=True),
                        per_page=attr.integer("perPage", numeric_string=True),
                        total_pages=attr.integer("totalPages", numeric_string=True),
                        total=attr.integer("total", numeric_string=True))


def parse_user_info(body: Any) -> LastfmUser:
    """A ``user.getinfo`` JSON answer."""
    user = Body(body, upstream="lastfm", endpoint="user.getinfo").obj("user")
    registered = user.opt_obj("registered")
    unixtime = registered.integer("unixtime", None, numeric_string=True) if registered else None
    image = None
    for img in user.items("image", optional=True):
        if img.text("#text", ""):
            image = img.text("#text")
    country = user.text("country", None)
    return LastfmUser(name=user.text("name"), url=user.text("url", None),
                      playcount=user.integer("playcount", 0, numeric_string=True),
                      registered_at=float(unixtime) if unixtime is not None else None,
                      realname=user.text("realname", None) or None,
                      country=None if country in (None, "", "None") else country, image=image)


def _check_user(user: str) -> str:
    if not isinstance(user, str) or not user.strip() or len(user) > 64:
        raise ValueError(f"not a Last.fm username: {user!r}")
    return user.strip()


class LastfmClient:
    """Last.fm for one API key.

    Args:
        fetcher: the Last.fm fetcher (base ``https://ws.audioscrobbler.com`` or the sandbox).
        api_key: the API key (sent as a query parameter; never logged).
        cache: the shared cache for user info; None calls every time.
    """

    upstream = "lastfm"

    def __init__(self, fetcher: Fetcher, *, api_key: str | Secret, cache: Cache | None = None) -> None:
        self.fetcher = fetcher
        self._key = api_key if isinstance(api_key, Secret) else Secret(api_key)
        self.cache = cache

    def __repr__(self) -> str:
        return "LastfmClient()"

    async def _call(self, method: str, budget_s: float | None, slot_budget_s: float | None = None,
                    **params: Any) -> Any:
        res = await self.fetcher.request("GET", "/2.0/", endpoint=method, budget_s=budget_s,
                                         slot_budget_s=slot_budget_s, params={
            "method": method, **params, "api_key": self._key.reveal(), "format": "json"})
        return res.body

    async def recent_tracks(self, user: str, *, limit: int = 1, page: int = 1,
                            budget_s: float | None = None, slot_budget_s: float | None = None) -> RecentTracks:
        """A user's most recent scrobbles; a now-playing track comes first (so limit=1 may give 2).

        Args:
            user: the Last.fm username.
            limit: tracks per page (1-200).
            page: the page (from 1).
            budget_s: the call's total time budget (a cron passes what is left of its deadline).
            slot_budget_s: the longest wait for a rate-limit slot (see `Fetcher.request`).

        Raises:
            ValueError: bad username, limit or page.
            PermanentError: unknown user (Last.fm error 6), bad key (10), suspended key (26).
            Throttled, TransientError, MalformedResponse, RateLimited, CircuitOpen.
        """
        user = _check_user(user)
        if not 1 <= limit <= 200 or page < 1:
            raise ValueError(f"limit must be 1-200 and page >= 1, got limit={limit} page={page}")
        body = await self._call("user.getrecenttracks", budget_s, slot_budget_s, user=user, limit=limit, page=page)
        return parse_recent_tracks(body)

    async def user_info(self, user: str) -> LastfmUser:
        """A user's profile (cached 30 days under ``lastfm:userInfo``)."""
        user = _check_user(user)

        async def fetch() -> Any:
            body = await self._call("user.getinfo", None, user=user)
            parse_user_info(body)
            return body

        body = await self.cache.get_or_fetch("lastfm:userInfo", user.lower(), fetch) if self.cache else await fetch()
        return parse_user_info(body)
