"""Spotify Web API client: client-credentials token, album, albums in batches of 20, search.

The token is cached (state store, family ``spotify:token``) until a minute before
Spotify's ``expires_in`` runs out, and fetched single-flight: when it expires, one
process across all of them asks the accounts service. A 401 (revoked token) drops
it and retries once. Albums are cached under ``spotify:album:v2``; `albums` serves
what it can from the cache and fetches the rest 20 ids per request (Spotify's
``GET /v1/albums?ids=``), falling back to one-by-one if the app lost the batch
endpoint (dev-mode apps did in Feb 2026).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Sequence
from typing import Any

from scaling.cache import Cache, Expiring
from scaling.clock import Clock, SystemClock
from scaling.errors import PermanentError
from scaling.fetch import Fetcher
from scaling.settings import Secret
from scaling.upstreams.body import Body
from scaling.upstreams.models import Album, ArtistRef, Image, SearchItem, SearchPage, Track

__all__ = ["BATCH_SIZE", "SpotifyClient", "app_key", "parse_album", "parse_search"]

log = logging.getLogger("headroom.spotify")

BATCH_SIZE = 20
TOKEN_MARGIN_S = 60.0  # the reference stores expires_in - 60 s
SEARCH_TYPES = ("album", "artist", "track")
_ID_RE = re.compile(r"^[A-Za-z0-9]{1,64}$")


def app_key(client_id: str | Secret) -> str:
    """A short, stable, non-reversible name for a Spotify app (limiter and token keys, logs)."""
    raw = client_id.reveal() if isinstance(client_id, Secret) else client_id
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


def _until(clock: Clock, budget_s: float | None) -> float | None:
    return None if budget_s is None else clock.now() + budget_s


def _left(clock: Clock, until: float | None) -> float | None:
    """What is left of a budget that ends at ``until`` (None: no budget of the caller's)."""
    return None if until is None else max(0.0, until - clock.now())


# -- parsing -------------------------------------------------------------------------------

def _images(b: Body) -> tuple[Image, ...]:
    return tuple(Image(i.text("url"), i.integer("height", None), i.integer("width", None))
                 for i in b.items("images", optional=True))


def _artists(b: Body) -> tuple[ArtistRef, ...]:
    return tuple(ArtistRef(a.text("id", ""), a.text("name")) for a in b.items("artists"))


def parse_album(b: Body) -> Album:
    """An album object (``/v1/albums/{id}`` or an element of ``albums[]``).

    Raises:
        MalformedResponse: a field the app reads is missing or of the wrong type.
    """
    tracks = b.opt_obj("tracks")
    items = tracks.items("items", optional=True) if tracks else []
    ext_ids = b.opt_obj("external_ids")
    return Album(
        id=b.text("id"), name=b.text("name"), artists=_artists(b), release_date=b.text("release_date"),
        total_tracks=b.integer("total_tracks"), url=b.obj("external_urls").text("spotify"), images=_images(b),
        genres=tuple(g.as_text() for g in b.items("genres", optional=True)), label=b.text("label", None),
        popularity=b.integer("popularity", None),
        copyrights=tuple(c.text("text") for c in b.items("copyrights", optional=True)),
        tracks=tuple(Track(t.integer("track_number"), t.text("name"), t.integer("duration_ms"),
                           t.text("preview_url", None), _artists(t)) for t in items),
        album_type=b.text("album_type", None), upc=ext_ids.text("upc", None) if ext_ids else None)


def _search_item(b: Body, kind: str) -> SearchItem:
    urls = b.opt_obj("external_urls")
    album = b.opt_obj("album") if kind == "track" else None
    return SearchItem(
        id=b.text("id"), name=b.text("name"), type=b.text("type", kind),
        url=urls.text("spotify", None) if urls else None,
        artists=_artists(b) if b.has("artists") else (), images=_images(album or b),
        album_type=b.text("album_type", None), release_date=(album or b).text("release_date", None),
        total_tracks=b.integer("total_tracks", None))


def parse_search(b: Body, kind: str) -> SearchPage:
    """The ``{albums|artists|tracks: paging}`` object of a search answer."""
    page = b.obj(kind + "s")
    return SearchPage(type=kind, items=tuple(_search_item(i, kind) for i in page.items("items")),
                      total=page.integer("total"), limit=page.integer("limit"), offset=page.integer("offset"),
                      next=page.text("next", None))


def _check_id(album_id: str) -> str:
    if not isinstance(album_id, str) or not _ID_RE.match(album_id):
        raise ValueError(f"not a Spotify id: {album_id!r} (expected 1-64 letters and digits)")
    return album_id


# -- the client ------------------------------------------------------------------------------

class SpotifyClient:
    """Spotify for one app (one client id).

    Args:
        fetcher: the API fetcher (base URL ``https://api.spotify.com`` or the sandbox).
        accounts: the fetcher for the token host (accounts.spotify.com or the sandbox).
        client_id, client_secret: the app's credentials.
        cache: the shared cache (tokens, albums, searches); None calls every time.
        clock: time source for token expiry.
    """

    upstream = "spotify"

    def __init__(self, fetcher: Fetcher, *, accounts: Fetcher, client_id: str | Secret, client_secret: str | Secret,
                 cache: Cache | None = None, clock: Clock | None = None) -> None:
        self.fetcher = fetcher
        self.accounts = accounts
        self._id = client_id if isinstance(client_id, Secret) else Secret(client_id)
        self._secret = client_secret if isinstance(client_secret, Secret) else Secret(client_secret)
        self.cache = cache
        self.clock: Clock = clock or SystemClock()
        self.app = app_key(self._id)
        self._token: tuple[str, float] | None = None  # (token, expires_at) in this process
        self._locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
        self._batch_ok = True

    def __repr__(self) -> str:
        return f"SpotifyClient(app={self.app})"

    # -- token --------------------------------------------------------------------------
    async def token(self, *, budget_s: float | None = None) -> str:
        """A valid bearer token: this process's copy, else the shared one, else a new one (single-flight).

        Args:
            budget_s: the longest a refresh may take, waits included (None: the fetcher's default).
        """
        if self._token and self.clock.now() < self._token[1] - TOKEN_MARGIN_S:
            return self._token[0]
        async with self._token_lock():  # one refresh per process; the cache makes it one across processes
            if self._token and self.clock.now() < self._token[1] - TOKEN_MARGIN_S:
                return self._token[0]
            return await self._refresh_token(budget_s)

    def _token_lock(self) -> asyncio.Lock:
        # One lock per event loop: a client may outlive the loop it was first used in (CLI, Streamlit).
        loop = asyncio.get_running_loop()
        if loop not in self._locks:
            self._locks = {lp: lk for lp, lk in self._locks.items() if not lp.is_closed()}
            self._locks[loop] = asyncio.Lock()
        return self._locks[loop]

    async def _refresh_token(self, budget_s: float | None) -> str:
        now = self.clock.now()
        until = _until(self.clock, budget_s)

        async def new_token() -> Expiring:
            return await self._new_token(_left(self.clock, until))

        if self.cache is not None:
            value = await self.cache.get_or_fetch("spotify:token", self.app, new_token, max_wait_s=budget_s)
        else:
            value = (await new_token()).value
        token, expires_at = str(value["access_token"]), float(value["expires_at"])
        if now >= expires_at - TOKEN_MARGIN_S:  # a shared copy about to expire: replace it
            if self.cache is not None:
                self.cache.delete("spotify:token", self.app)
            value = (await new_token()).value
            token, expires_at = str(value["access_token"]), float(value["expires_at"])
        self._token = (token, expires_at)
        return token

    async def _new_token(self, budget_s: float | None = None) -> Expiring:
        res = await self.accounts.request(
            "POST", "/api/token", endpoint="token", data={"grant_type": "client_credentials"},
            auth=(self._id.reveal(), self._secret.reveal()), budget_s=budget_s)
        b = Body(res.body, upstream="spotify", endpoint="token")
        token, kind, expires_in = b.text("access_token"), b.text("token_type"), b.integer("expires_in")
        if kind.lower() != "bearer" or expires_in <= 0:
            raise b.fail(f"is a {kind!r} token for {expires_in}s, expected a Bearer token with a positive lifetime")
        expires_at = self.clock.now() + expires_in
        return Expiring({"access_token": token, "expires_at": expires_at}, expires_in - TOKEN_MARGIN_S)

    def _drop_token(self) -> None:
        self._token = None
        if self.cache is not None:
            self.cache.delete("spotify:token", self.app)

    async def _get(self, path: str, *, endpoint: str, params: dict[str, Any] | None = None,
                   budget_s: float | None = None) -> Any:
        until = _until(self.clock, budget_s)
        for attempt in (1, 2):
            token = await self.token(budget_s=_left(self.clock, until))
            try:
                res = await self.fetcher.request("GET", path, endpoint=endpoint, params=params,
                                                 headers={"Authorization": f"Bearer {token}"},
                                                 budget_s=_left(self.clock, until))
                return res.body
            except PermanentError as exc:
                if exc.status == 401 and attempt == 1:
                    log.info("[Spotify] token refused (401); fetching a new one")
                    self._drop_token()
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    # -- albums ---------------------------------------------------------------------------
    async def _fetch_album(self, album_id: str, budget_s: float | None = None) -> Any:
        try:
            body = await self._get(f"/v1/albums/{album_id}", endpoint="album", budget_s=budget_s)
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise
        parse_album(Body(body, upstream="spotify", endpoint="album"))  # vet before caching
        return body

    async def album(self, album_id: str) -> Album | None:
        """One album, or None if Spotify has no album with this id.

        Raises:
            ValueError: ``album_id`` is not a Spotify id.
            UpstreamError, RateLimited, CircuitOpen: as `Fetcher.request`.
        """
        raw = await self._album_raw(_check_id(album_id))
        return None if raw is None else parse_album(Body(raw, upstream="spotify", endpoint="album"))

    async def _album_raw(self, album_id: str, budget_s: float | None = None) -> Any:
        if self.cache is not None:
            return await self.cache.get_or_fetch("spotify:album:v2", album_id,
                                                 lambda: self._fetch_album(album_id, budget_s), max_wait_s=budget_s)
        return await self._fetch_album(album_id, budget_s)

    async def albums(self, album_ids: Sequence[str], *, budget_s: float | None = None) -> list[Album | None]:
        """Albums for ``album_ids`` in order (None for unknown ids): cached ones from the
        cache, the rest in requests of up to 20 ids.

        Args:
            album_ids: Spotify album ids.
            budget_s: the longest the lookups may take, waits included (None: the fetcher's default).

        Raises:
            ValueError: an id is not a Spotify id.
            UpstreamError, RateLimited, CircuitOpen: as `Fetcher.request`.
        """
        unique = list(dict.fromkeys(_check_id(i) for i in album_ids))
        found: dict[str, Any] = self.cache.get_many("spotify:album:v2", unique) if self.cache is not None else {}
        missing = [i for i in unique if i not in found]
        chunks = [missing[i:i + BATCH_SIZE] for i in range(0, len(missing), BATCH_SIZE)]
        for fetched in await asyncio.gather(*(self._batch(chunk, budget_s) for chunk in chunks)):
            found.update(fetched)
        return [None if found.get(i) is None else parse_album(Body(found[i], upstream="spotify", endpoint="albums"))
                for i in album_ids]

    async def _batch(self, ids: list[str], budget_s: float | None) -> dict[str, Any]:
        if self._batch_ok:
            try:
                body = await self._get("/v1/albums", endpoint="albums", params={"ids": ",".join(ids)},
                                       budget_s=budget_s)
            except PermanentError as exc:
                if exc.status != 403:
                    raise
                log.warning("[Spotify] batch album endpoint refused (403): fetching albums one by one")
                self._batch_ok = False
            else:
                return self._vet_batch(body, ids)
        return dict(zip(ids, await asyncio.gather(*(self._album_raw(i, budget_s) for i in ids))))

    def _vet_batch(self, body: Any, ids: list[str]) -> dict[str, Any]:
        b = Body(body, upstream="spotify", endpoint="albums")
        items = b.items("albums")
        if len(items) != len(ids):
            raise b.fail(f"has {len(items)} albums for {len(ids)} ids (truncated?)")
        out: dict[str, Any] = {}
        for album_id, item in zip(ids, items):
            if item.data is None:
                out[album_id] = None  # unknown id: not cached, as the reference caches no misses here
                continue
            parse_album(item)
            out[album_id] = item.data
            if self.cache is not None:
                self.cache.set("spotify:album:v2", album_id, item.data)
        return out

    # -- search ---------------------------------------------------------------------------
    async def search(self, query: str, *, type: str = "album", limit: int = 5, offset: int = 0,
                     budget_s: float | None = None) -> SearchPage:
        """Search one type; queries may use field filters (``artist:"X" album:"Y"``).

        ``budget_s`` bounds the whole lookup, waits included (None: the fetcher's default).

        Raises:
            ValueError: empty query, unknown type, or limit outside 1-50.
        """
        if not query or not query.strip():
            raise ValueError("search query is empty")
        if type not in SEARCH_TYPES:
            raise ValueError(f"search type must be one of {', '.join(SEARCH_TYPES)}, got {type!r}")
        if not 1 <= limit <= 50 or offset < 0:
            raise ValueError(f"search limit must be 1-50 and offset >= 0, got limit={limit} offset={offset}")
        params = {"q": query.strip(), "type": type, "limit": limit, "offset": offset}

        async def fetch() -> Any:
            body = await self._get("/v1/search", endpoint="search", params=params, budget_s=budget_s)
            parse_search(Body(body, upstream="spotify", endpoint="search"), type)
            return body

        if self.cache is not None:
            # Unlike the reference's key, limit and offset are part of it: pages of different sizes differ.
            key = f"{type}:{limit}:{offset}:{' '.join(query.lower().split())}"
            body = await self.cache.get_or_fetch("spotify:search", key, fetch, max_wait_s=budget_s)
        else:
            body = await fetch()
        return parse_search(Body(body, upstream="spotify", endpoint="search"), type)

