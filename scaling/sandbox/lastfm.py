"""Simulated Last.fm ``/2.0/``: ``user.getrecenttracks`` and ``user.getinfo``.

Errors come in the body (``{"error": 29, "message": ...}``). A rate-limit answer
is sent with HTTP 429 or, with probability ``throttle_http200_share`` (seeded),
with HTTP 200, as the real API does, and never carries Retry-After.
"""

from __future__ import annotations

import functools
import math
import random
import time
import urllib.parse
from typing import Any

from starlette.requests import Request

from scaling.sandbox.answer import Answer, Endpoint, key_label
from scaling.sandbox.catalog import stable_int
from scaling.sandbox.config import LastfmSim
from scaling.sandbox.population import Listener, Play, Population
from scaling.sandbox.stats import Outcome
from scaling.sandbox.window import SlidingLog

__all__ = ["RATE_LIMIT_MESSAGE", "LastfmUpstream"]

RATE_LIMIT_MESSAGE = "Rate limit exceeded - Your IP has made too many requests in a short period"
_METHODS = ("user.getrecenttracks", "user.getinfo")
_SIZES = (("small", "34s"), ("medium", "64s"), ("large", "174s"), ("extralarge", "300x300"))
_XML_ONLY = (b'<?xml version="1.0" encoding="UTF-8"?>\n<lfm status="ok">\n'
             b"<!-- this sandbox answers JSON only; add format=json -->\n</lfm>\n")


def _error(code: int, message: str, status: int, key: str | None = None, outcome: Outcome | None = None) -> Answer:
    return Answer(status, {"error": code, "message": message}, outcome=outcome, key=key)


def method_of(request: Request) -> str:
    """The stats name of a Last.fm call: its ``method``, or ``invalid``."""
    method = request.query_params.get("method", "").lower()
    return method if method in _METHODS else "invalid"


class LastfmUpstream:
    """Last.fm's behaviour and state (a window per api_key).

    Args:
        sim: limits and knobs.
        seed: seeds the 200-vs-429 choice for error 29.
        population: the listeners.
    """

    name = "lastfm"

    def __init__(self, sim: LastfmSim, seed: int, population: Population) -> None:
        self.sim = sim
        self.population = population
        self._seed = f"{seed}:lastfm:http200"
        self.reset()

    def reset(self) -> None:
        self.windows: dict[str, SlidingLog] = {}
        self._rng = random.Random(self._seed)
        self._tracks: dict[tuple[str, int], dict[str, Any]] = {}

    def endpoints(self) -> list[Endpoint]:
        return [Endpoint("lastfm", "GET", "/2.0/", method_of, self.api),
                Endpoint("lastfm", "GET", "/2.0", method_of, self.api)]

    async def api(self, request: Request, now: float) -> Answer:
        params = request.query_params
        api_key = params.get("api_key", "")
        if not api_key or (self.sim.api_keys is not None and api_key not in self.sim.api_keys):
            return _error(10, "Invalid API key - You must be granted a valid key by last.fm", 403,
                          key_label(api_key) if api_key else None)
        key = key_label(api_key)
        window = self.windows.setdefault(api_key, SlidingLog(self.sim.requests))
        if not window.admit(now).admitted:
            status = 200 if self._rng.random() < self.sim.throttle_http200_share else 429
            return _error(29, RATE_LIMIT_MESSAGE, status, key, Outcome.RATE_LIMITED)
        method = params.get("method", "").lower()
        if method not in _METHODS:
            return _error(3, "Invalid Method - No method with that name in this package", 400, key)
        if params.get("format", "").lower() != "json":
            return Answer(200, _XML_ONLY, key=key, content_type="text/xml; charset=utf-8")
        user = params.get("user", "").strip()
        if not user:
            return _error(6, "Invalid parameters - Your request is missing a required parameter", 400, key)
        listener = self.population.find(user)
        if listener is None:
            return _error(6, "User not found", 404, key)
        if method == "user.getinfo":
            return Answer(200, self._info(listener, now), key=key)
        try:
            limit = int(params.get("limit", 50))
            page = int(params.get("page", 1))
        except ValueError:
            return _error(6, "Invalid parameters - limit and page must be integers", 400, key)
        limit = 50 if limit < 1 else min(limit, 200)
        page = max(1, page)
        return Answer(200, self._recent(listener, now, limit, page), key=key)

    def _recent(self, listener: Listener, now: float, limit: int, page: int) -> dict[str, Any]:
        current, plays, total = self.population.recent(listener, now, limit=limit, page=page)
        tracks = [self._track(p) for p in plays]
        if current is not None and page == 1:
            tracks.insert(0, self._track(current))
        return {"recenttracks": {"track": tracks, "@attr": {
            "user": listener.name, "totalPages": str(math.ceil(total / limit)), "page": str(page),
            "perPage": str(limit), "total": str(total)}}}

    def _track(self, play: Play) -> dict[str, Any]:
        # The same tracks are asked for run after run: their fixed fields (three digests and
        # two URL quotes) are built once; answers share them, as they are only serialised.
        track_key = (play.album_id, play.track_number)
        fixed = self._tracks.get(track_key)
        if fixed is None:
            if len(self._tracks) >= 100_000:
                self._tracks.clear()
            fixed = self._tracks[track_key] = self._fixed_fields(play)
        out = dict(fixed)
        if play.now_playing:
            out["@attr"] = {"nowplaying": "true"}
        else:
            out["date"] = {"uts": str(int(play.started)), "#text": _lastfm_date(play.started)}
        return out

    def _fixed_fields(self, play: Play) -> dict[str, Any]:
        core = self.population.catalog.album(play.album_id)
        assert core is not None  # catalogue albums always exist
        title = core.tracks[play.track_number - 1][0]
        artist = core.artist_name
        art = "" if stable_int("noart", core.id) % 20 == 0 else \
            f"{stable_int('lfm-img', core.id):016x}{stable_int('lfm-img2', core.id):016x}"
        images = [{"size": size, "#text": f"https://lastfm.freetls.fastly.net/i/u/{px}/{art}.png" if art else ""}
                  for size, px in _SIZES]
        return {"artist": {"mbid": "", "#text": artist}, "streamable": "0", "image": images,
                "mbid": "", "album": {"mbid": "", "#text": core.name}, "name": title,
                "url": f"https://www.last.fm/music/{_slug(artist)}/_/{_slug(title)}"}

    def _info(self, listener: Listener, now: float) -> dict[str, Any]:
        plays = listener.scrobbles(now)
        registered = int(listener.registered)
        return {"user": {
            "name": listener.name, "age": "0", "subscriber": "0", "realname": "", "bootstrap": "0",
            "playcount": str(plays), "artist_count": str(min(plays, 25)), "playlists": "0",
            "track_count": str(min(plays, 300)), "album_count": str(min(plays, 30)),
            "image": [{"size": size, "#text": ""} for size, _ in _SIZES],
            "registered": {"unixtime": str(registered), "#text": registered}, "country": "None", "gender": "n",
            "url": f"https://www.last.fm/user/{listener.name}", "type": "user"}}


def _slug(text: str) -> str:
    return urllib.parse.quote_plus(text)


@functools.lru_cache(maxsize=65_536)
def _lastfm_date(epoch: float) -> str:
    return time.strftime("%d %b %Y, %H:%M", time.gmtime(epoch))
