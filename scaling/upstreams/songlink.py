"""Songlink (Odesli) client: ``GET /v1-alpha.1/links?url=`` -> links on every platform.

About 10 requests a minute without a key; answers are cached 30 days under
``songlink``. A URL Songlink cannot resolve (404) is None and not cached; a 429 or
5xx is raised (the caller shows its stub), never cached.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from scaling.cache import Cache
from scaling.errors import PermanentError
from scaling.fetch import Fetcher
from scaling.upstreams.body import Body
from scaling.upstreams.models import PlatformLink, SonglinkEntity, SonglinkLinks

__all__ = ["SonglinkClient", "parse_links"]


def parse_links(body: Any) -> SonglinkLinks:
    """A links answer.

    Raises:
        MalformedResponse: naming the first field that is not as documented.
    """
    b = Body(body, upstream="songlink", endpoint="links")
    entities = b.obj("entitiesByUniqueId")
    links = b.obj("linksByPlatform")
    return SonglinkLinks(
        entity_unique_id=b.text("entityUniqueId"), page_url=b.text("pageUrl"), user_country=b.text("userCountry", None),
        entities=tuple(SonglinkEntity(uid, e.text("type"), e.text("title", None), e.text("artistName", None),
                                      e.text("thumbnailUrl", None))
                       for uid in sorted(entities.data) for e in [entities.obj(uid)]),
        links=tuple(PlatformLink(p, link.text("url"), link.text("entityUniqueId", None))
                    for p in sorted(links.data) for link in [links.obj(p)]))


class SonglinkClient:
    """Songlink, keyless.

    Args:
        fetcher: the Songlink fetcher (base ``https://api.song.link`` or the sandbox).
        cache: the shared cache; None calls every time.
    """

    upstream = "songlink"

    def __init__(self, fetcher: Fetcher, *, cache: Cache | None = None) -> None:
        self.fetcher = fetcher
        self.cache = cache

    async def _fetch(self, url: str, user_country: str) -> Any:
        try:
            res = await self.fetcher.request("GET", "/v1-alpha.1/links", endpoint="links",
                                             params={"url": url, "userCountry": user_country})
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise
        parse_links(res.body)
        return res.body

    async def links(self, url: str, *, user_country: str = "US") -> SonglinkLinks | None:
        """Where a track or album URL lives on every platform, or None if Songlink cannot resolve it.

        Raises:
            ValueError: ``url`` is not an http(s) URL.
            Throttled, TransientError, PermanentError, MalformedResponse, RateLimited, CircuitOpen.
        """
        parts = urlsplit(url.strip()) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not an http(s) URL: {url!r}")
        url = url.strip()
        if self.cache is not None:
            body = await self.cache.get_or_fetch("songlink", f"{user_country}:{url}",
                                                 lambda: self._fetch(url, user_country))
        else:
            body = await self._fetch(url, user_country)
        return None if body is None else parse_links(body)
