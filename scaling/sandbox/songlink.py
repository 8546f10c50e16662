"""Simulated Songlink/Odesli ``GET /v1-alpha.1/links?url=``.

Keyless callers are limited per IP (a ``key`` parameter gets its own window).
Every answer carries ``x-ratelimit-remaining`` and ``x-ratelimit-reset`` (epoch
seconds at which the oldest counted request leaves the window).
"""

from __future__ import annotations

import math
import re
from typing import Any

from starlette.requests import Request

from scaling.sandbox.answer import Answer, Endpoint, key_label
from scaling.sandbox.catalog import Catalog, stable_int
from scaling.sandbox.config import SongLinkSim
from scaling.sandbox.window import SlidingLog

__all__ = ["SongLinkUpstream"]

_SPOTIFY_RE = re.compile(r"^https?://open\.spotify\.com/(?:intl-\w+/)?(album|track)/([A-Za-z0-9]+)")
#: platform -> (api provider prefix, url template)
_PLATFORMS = {
    "spotify": ("SPOTIFY", "https://open.spotify.com/{kind}/{id}"),
    "appleMusic": ("ITUNES", "https://geo.music.apple.com/us/{kind}/_/{num}?app=music"),
    "itunes": ("ITUNES", "https://geo.music.apple.com/us/{kind}/_/{num}?app=itunes"),
    "youtubeMusic": ("YOUTUBE", "https://music.youtube.com/watch?v={yt}"),
    "youtube": ("YOUTUBE", "https://www.youtube.com/watch?v={yt}"),
    "deezer": ("DEEZER", "https://www.deezer.com/{kind}/{num}"),
    "tidal": ("TIDAL", "https://listen.tidal.com/{kind}/{num}"),
    "amazonMusic": ("AMAZON", "https://music.amazon.com/albums/B0{num}"),
}


class SongLinkUpstream:
    """Songlink's behaviour and state (a window per caller).

    Args:
        sim: limits and knobs.
        catalog: resolves Spotify album and track URLs to titles and artists.
    """

    name = "songlink"

    def __init__(self, sim: SongLinkSim, catalog: Catalog) -> None:
        self.sim = sim
        self.catalog = catalog
        self.reset()

    def reset(self) -> None:
        self.windows: dict[str, SlidingLog] = {}

    def endpoints(self) -> list[Endpoint]:
        return [Endpoint("songlink", "GET", "/v1-alpha.1/links", "links", self.links)]

    async def links(self, request: Request, now: float) -> Answer:
        params = request.query_params
        api_key = params.get("key")
        caller = api_key or (request.client.host if request.client else "unknown")
        label = key_label(api_key) if api_key else caller
        window = self.windows.setdefault(caller, SlidingLog(self.sim.requests))
        verdict = window.admit(now)
        headers = {"x-ratelimit-remaining": str(verdict.remaining),
                   "x-ratelimit-reset": str(math.ceil(now + window.retry_after(now)))}
        if not verdict.admitted:
            return Answer(429, {"statusCode": 429, "code": "too_many_requests"}, headers, key=label)
        url = params.get("url", "").strip()
        if not url:
            return Answer(400, {"statusCode": 400, "code": "could_not_resolve_entity"}, headers, key=label)
        entity = self._resolve(url)
        if entity is None:
            return Answer(404, {"statusCode": 404, "code": "could_not_resolve_entity"}, headers, key=label)
        return Answer(200, entity | {"userCountry": params.get("userCountry", "US")}, headers, key=label)

    def _resolve(self, url: str) -> dict[str, Any] | None:
        if "unknown" in url.lower():
            return None
        m = _SPOTIFY_RE.match(url)
        h = stable_int("songlink", url)
        if m:
            kind, sid = m.group(1), m.group(2)
            core = self.catalog.album(sid if kind == "album" else f"t{sid}")
            if core is None:
                return None
            title = core.name if kind == "album" else core.tracks[0][0]
            artist, thumb = core.artist_name, core.images()[1]["url"]
        else:
            kind, sid = "track", f"{h:x}"
            core = self.catalog.album(f"u{h:x}")
            if core is None:
                return None
            title, artist, thumb = core.tracks[0][0], core.artist_name, core.images()[1]["url"]
        entity_type = "album" if kind == "album" else "song"
        entities: dict[str, Any] = {}
        links: dict[str, Any] = {}
        for platform, (provider, template) in _PLATFORMS.items():
            native = sid if provider == "SPOTIFY" else f"{stable_int(provider, url) % 10**10}"
            uid = f"{provider}_{entity_type.upper()}::{native}"
            entities.setdefault(uid, {"id": native, "type": entity_type, "title": title, "artistName": artist,
                                      "thumbnailUrl": thumb, "thumbnailWidth": 300, "thumbnailHeight": 300,
                                      "apiProvider": provider.lower(), "platforms": []})
            entities[uid]["platforms"].append(platform)
            link = template.format(kind=kind, id=sid, num=native, yt=f"{stable_int('yt', url):011x}"[:11])
            links[platform] = {"country": "US", "url": link, "entityUniqueId": uid}
        first = f"SPOTIFY_{entity_type.upper()}::{sid}"
        page = "album.link" if entity_type == "album" else "song.link"
        return {"entityUniqueId": first, "pageUrl": f"https://{page}/s/{sid}", "entitiesByUniqueId": entities,
                "linksByPlatform": links}
