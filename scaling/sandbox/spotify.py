"""Simulated Spotify: the accounts token endpoint and the Web API album/search calls.

Limits are kept per client app (the client id inside the bearer token) over a
rolling window. A 429 starts a ban of Retry-After whole seconds; every call made
before it ends multiplies what is left (the Dec-2025 incident saw 37,000+ s).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import urllib.parse
from typing import Any

from starlette.requests import Request

from scaling.sandbox.answer import Answer, Endpoint, basic, bearer, read_form
from scaling.sandbox.catalog import AlbumCore, Catalog, stable_int
from scaling.sandbox.config import SpotifySim
from scaling.sandbox.stats import Outcome
from scaling.sandbox.window import Ban, SlidingLog, ceil_seconds

__all__ = ["SpotifyUpstream"]

_ID_RE = re.compile(r"^[A-Za-z0-9]{1,64}$")
_TYPES = ("album", "artist", "track")
MAX_BATCH = 20


def _error(status: int, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"status": status, "message": message, **extra}}


class SpotifyUpstream:
    """Spotify's behaviour and state (windows, bans, quota).

    Args:
        sim: limits and knobs.
        seed: signs tokens, so tokens stay valid across restarts with the same seed.
        catalog: the albums.
    """

    name = "spotify"

    def __init__(self, sim: SpotifySim, seed: int, catalog: Catalog) -> None:
        self.sim = sim
        self.catalog = catalog
        self._key = f"{seed}:spotify-token".encode()
        self.reset()

    def reset(self) -> None:
        self.windows: dict[str, SlidingLog] = {}
        self.bans: dict[str, Ban] = {}
        self.quota = SlidingLog(self.sim.quota) if self.sim.quota else None

    def endpoints(self) -> list[Endpoint]:
        return [Endpoint("spotify", "POST", "/api/token", "token", self.token),
                Endpoint("spotify", "GET", "/v1/albums/{id}", "album", self.album),
                Endpoint("spotify", "GET", "/v1/albums", "albums", self.albums),
                Endpoint("spotify", "GET", "/v1/search", "search", self.search)]

    # -- tokens -------------------------------------------------------------------

    def _sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()[:24]

    def issue(self, client_id: str, now: float) -> str:
        """A bearer token for ``client_id`` valid for ``token_ttl_s`` from ``now``."""
        payload = f"{client_id}|{int(now) + self.sim.token_ttl_s}"
        blob = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
        return f"BQ{blob}.{self._sign(payload)}"

    def _client_of(self, token: str, now: float) -> str | Answer:
        blob, _, sig = token.removeprefix("BQ").rpartition(".")
        try:
            payload = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4)).decode()
            client_id, _, expiry = payload.rpartition("|")
            expires = int(expiry)
        except (ValueError, UnicodeDecodeError):
            return Answer(401, _error(401, "Invalid access token"))
        if not token.startswith("BQ") or not hmac.compare_digest(sig, self._sign(payload)):
            return Answer(401, _error(401, "Invalid access token"))
        if now >= expires:
            return Answer(401, _error(401, "The access token expired"), key=client_id)
        return client_id

    async def token(self, request: Request, now: float) -> Answer:
        form = await read_form(request)
        creds = basic(request) or (form.get("client_id", ""), form.get("client_secret", ""))
        client_id, secret = creds
        grant = form.get("grant_type")
        if not grant:
            return Answer(400, {"error": "unsupported_grant_type",
                                "error_description": "grant_type parameter is missing"}, key=client_id or None)
        if grant != "client_credentials":
            return Answer(400, {"error": "unsupported_grant_type",
                                "error_description": "grant_type must be client_credentials, authorization_code "
                                                     "or refresh_token"}, key=client_id or None)
        known = self.sim.clients
        if not client_id or not secret or (known is not None and known.get(client_id) != secret):
            return Answer(400, {"error": "invalid_client", "error_description": "Invalid client"},
                          key=client_id or None)
        return Answer(200, {"access_token": self.issue(client_id, now), "token_type": "Bearer",
                            "expires_in": self.sim.token_ttl_s}, key=client_id)

    # -- limits -------------------------------------------------------------------

    def _gate(self, request: Request, now: float) -> str | Answer:
        """Authenticate and apply the limits: the client id if admitted, else the refusal."""
        token = bearer(request)
        if token is None:
            return Answer(401, _error(401, "No token provided"))
        client = self._client_of(token, now)
        if isinstance(client, Answer):
            return client
        ban = self.bans.setdefault(client, Ban(self.sim.ban_factor, self.sim.ban_cap_s))
        if ban.remaining(now) > 0:
            return self._too_many(ban.escalate(now), client)
        window = self.windows.setdefault(client, SlidingLog(self.sim.requests))
        verdict = window.check(now)
        if not verdict.admitted:
            return self._too_many(ban.start(now, verdict.retry_after), client)
        if self.quota is not None:
            quota = self.quota.check(now)
            if not quota.admitted:
                return Answer(429, _error(429, "API quota exceeded", reason="QUOTA_EXCEEDED"),
                              {"Retry-After": str(ceil_seconds(quota.retry_after))}, Outcome.QUOTA, client)
            self.quota.record(now)
        window.record(now)
        return client

    @staticmethod
    def _too_many(retry_after: int, client: str) -> Answer:
        return Answer(429, _error(429, "API rate limit exceeded"), {"Retry-After": str(retry_after)}, key=client)

    # -- endpoints ----------------------------------------------------------------

    async def album(self, request: Request, now: float) -> Answer:
        client = self._gate(request, now)
        if isinstance(client, Answer):
            return client
        album_id = request.path_params["id"]
        if not _ID_RE.match(album_id):
            return Answer(400, _error(400, "invalid id"), key=client)
        core = self.catalog.album(album_id)
        if core is None:
            return Answer(404, _error(404, "Resource not found"), key=client)
        return Answer(200, core.full(), key=client)

    async def albums(self, request: Request, now: float) -> Answer:
        client = self._gate(request, now)
        if isinstance(client, Answer):
            return client
        if not self.sim.batch_albums:
            return Answer(403, _error(403, "Forbidden"), key=client)
        ids = [i for i in request.query_params.get("ids", "").split(",") if i]
        if not ids:
            return Answer(400, _error(400, "invalid id"), key=client)
        if len(ids) > MAX_BATCH:
            return Answer(400, _error(400, "Too many ids requested"), key=client)
        if not all(_ID_RE.match(i) for i in ids):
            return Answer(400, _error(400, "invalid id"), key=client)
        cores = [self.catalog.album(i) for i in ids]
        return Answer(200, {"albums": [c.full() if c else None for c in cores]}, key=client)

    async def search(self, request: Request, now: float) -> Answer:
        client = self._gate(request, now)
        if isinstance(client, Answer):
            return client
        params = request.query_params
        query = params.get("q", "")
        if not query.strip():
            return Answer(400, _error(400, "No search query"), key=client)
        types = [t.strip() for t in params.get("type", "").split(",") if t.strip()]
        if not types:
            return Answer(400, _error(400, "Missing parameter type"), key=client)
        if any(t not in _TYPES for t in types):
            return Answer(400, _error(400, "Bad search type field"), key=client)
        try:
            limit = int(params.get("limit", min(20, self.sim.search_max_limit)))
            offset = int(params.get("offset", 0))
        except ValueError:
            return Answer(400, _error(400, "Invalid limit"), key=client)
        if not 0 <= limit <= self.sim.search_max_limit:
            return Answer(400, _error(400, "Invalid limit"), key=client)
        if not 0 <= offset <= 1000:
            return Answer(400, _error(400, "Invalid offset"), key=client)
        albums = self.catalog.search(query)
        body = {}
        for kind in types:
            items = _items(kind, albums, query)
            body[kind + "s"] = _page(kind, items, query, limit, offset)
        return Answer(200, body, key=client)


def _items(kind: str, albums: list[AlbumCore], query: str) -> list[dict[str, Any]]:
    if kind == "album":
        return [a.simple() for a in albums]
    if kind == "artist":
        seen: dict[str, dict[str, Any]] = {}
        for a in albums:
            for ref in a.artists:
                if ref.id not in seen:
                    seen[ref.id] = _artist(ref.id, ref.name, a)
        return list(seen.values())
    wanted = ""
    m = re.search(r'track:(?:"([^"]*)"|(\S+))', query)
    if m:
        wanted = (m.group(1) or m.group(2) or "").lower()
    tracks = []
    for a in albums:
        for n in range(1, len(a.tracks) + 1):
            if not wanted or wanted in a.tracks[n - 1][0].lower():
                track = a.track(n)
                track.update({"album": a.simple(), "popularity": max(0, a.popularity - n),
                              "external_ids": {"isrc": f"US{stable_int(track['id']) % 10**10:010d}"}})
                tracks.append(track)
    return tracks


def _artist(artist_id: str, name: str, album: AlbumCore) -> dict[str, Any]:
    img = f"{stable_int('artist-img', artist_id):016x}{stable_int('artist-img2', artist_id) % 16**8:08x}"
    return {"external_urls": {"spotify": f"https://open.spotify.com/artist/{artist_id}"},
            "followers": {"href": None, "total": stable_int("followers", artist_id) % 2_000_000},
            "genres": list(album.genres), "href": f"https://api.spotify.com/v1/artists/{artist_id}",
            "id": artist_id, "images": [{"url": f"https://i.scdn.co/image/ab6761610000e5eb{img}", "height": 640,
                                         "width": 640}],
            "name": name, "popularity": stable_int("artist-pop", artist_id) % 101, "type": "artist",
            "uri": f"spotify:artist:{artist_id}"}


def _page(kind: str, items: list[dict[str, Any]], query: str, limit: int, offset: int) -> dict[str, Any]:
    def href(at: int) -> str:
        qs = urllib.parse.urlencode({"offset": at, "limit": limit, "query": query, "type": kind})
        return f"https://api.spotify.com/v1/search?{qs}"

    total = len(items)
    return {"href": href(offset), "items": items[offset:offset + limit], "limit": limit,
            "next": href(offset + limit) if limit and offset + limit < total else None, "offset": offset,
            "previous": href(max(0, offset - limit)) if offset > 0 else None, "total": total}

