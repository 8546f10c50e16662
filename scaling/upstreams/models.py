"""What the clients return: frozen dataclasses, never raw dicts.

Field names follow the app's vocabulary; where they map to an API field with a
different name, the attribute docs say which (``reference/upstream.md`` §6).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scaling.ai_costs import TokenUsage

__all__ = [
    "AiResult",
    "Album",
    "ArtistRef",
    "Image",
    "LastfmUser",
    "PlatformLink",
    "RecentTrack",
    "RecentTracks",
    "SearchItem",
    "SearchPage",
    "SonglinkEntity",
    "SonglinkLinks",
    "Track",
]


# -- Spotify --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Image:
    url: str
    height: int | None = None
    width: int | None = None


@dataclass(frozen=True, slots=True)
class ArtistRef:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Track:
    """A track of an album (``tracks.items[]``)."""

    number: int
    name: str
    duration_ms: int
    preview_url: str | None
    artists: tuple[ArtistRef, ...]


def _largest(images: tuple[Image, ...]) -> Image | None:
    return max(images, key=lambda i: (i.width or 0) * (i.height or 0), default=None)


@dataclass(frozen=True, slots=True)
class Album:
    """``GET /v1/albums/{id}``; ``url`` is ``external_urls.spotify``, ``upc`` from ``external_ids``."""

    id: str
    name: str
    artists: tuple[ArtistRef, ...]
    release_date: str
    total_tracks: int
    url: str
    images: tuple[Image, ...]
    genres: tuple[str, ...] = ()
    label: str | None = None
    popularity: int | None = None
    copyrights: tuple[str, ...] = ()
    tracks: tuple[Track, ...] = ()
    album_type: str | None = None
    upc: str | None = None

    @property
    def image(self) -> Image | None:
        """The largest cover image."""
        return _largest(self.images)

    @property
    def artist_name(self) -> str:
        return ", ".join(a.name for a in self.artists)


@dataclass(frozen=True, slots=True)
class SearchItem:
    """One search result (album, artist or track); fields a type lacks are None."""

    id: str
    name: str
    type: str
    url: str | None
    artists: tuple[ArtistRef, ...] = ()
    images: tuple[Image, ...] = ()
    album_type: str | None = None
    release_date: str | None = None
    total_tracks: int | None = None


@dataclass(frozen=True, slots=True)
class SearchPage:
    """``GET /v1/search``: one page of one type (the body keys it by the plural type)."""

    type: str
    items: tuple[SearchItem, ...]
    total: int
    limit: int
    offset: int
    next: str | None = None


# -- Last.fm --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RecentTrack:
    """One ``recenttracks.track[]`` entry; ``played_at`` is ``date.uts`` (None while now playing)."""

    artist: str
    album: str
    name: str
    url: str | None
    images: Mapping[str, str] = field(default_factory=dict)
    played_at: float | None = None
    now_playing: bool = False
    artist_mbid: str | None = None
    album_mbid: str | None = None

    @property
    def image(self) -> str | None:
        """The ``extralarge`` image (what the app shows), else the largest there is."""
        for size in ("extralarge", "large", "medium", "small"):
            if self.images.get(size):
                return self.images[size]
        return None


@dataclass(frozen=True, slots=True)
class RecentTracks:
    """``user.getrecenttracks``: the tracks (a now-playing entry first) and ``@attr`` paging."""

    user: str
    tracks: tuple[RecentTrack, ...]
    page: int
    per_page: int
    total_pages: int
    total: int

    @property
    def now_playing(self) -> RecentTrack | None:
        return next((t for t in self.tracks if t.now_playing), None)

    @property
    def latest(self) -> RecentTrack | None:
        """What the home page shows: the now-playing track, else the last scrobble."""
        return self.tracks[0] if self.tracks else None


@dataclass(frozen=True, slots=True)
class LastfmUser:
    """``user.getinfo``; ``registered_at`` is ``registered.unixtime``."""

    name: str
    url: str | None
    playcount: int
    registered_at: float | None = None
    realname: str | None = None
    country: str | None = None
    image: str | None = None


# -- Songlink -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SonglinkEntity:
    unique_id: str
    type: str
    title: str | None = None
    artist_name: str | None = None
    thumbnail_url: str | None = None


@dataclass(frozen=True, slots=True)
class PlatformLink:
    platform: str
    url: str
    entity_unique_id: str | None = None


@dataclass(frozen=True, slots=True)
class SonglinkLinks:
    """``/v1-alpha.1/links``: the entity asked about and its link on each platform."""

    entity_unique_id: str
    page_url: str
    user_country: str | None
    entities: tuple[SonglinkEntity, ...]
    links: tuple[PlatformLink, ...]

    def link(self, platform: str) -> str | None:
        return next((p.url for p in self.links if p.platform == platform), None)


# -- AI -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AiResult:
    """One AI answer with what it cost to make.

    Attributes:
        provider: "openai", "perplexity", "anthropic".
        api: "responses", "chat_completions".
        model: the model as the API reported it.
        text: the answer's text ("" if the model produced none).
        usage: tokens (and web searches) used, in the one shape costs are priced from.
        status: "completed", "incomplete", or the chat ``finish_reason`` ("stop", "length").
        response_id: the provider's id for the answer.
        citations: URLs the answer cites (web search annotations, Perplexity citations).
        latency_ms: time on the wire, limiter waits excluded.
    """

    provider: str
    api: str
    model: str
    text: str
    usage: TokenUsage
    status: str
    response_id: str = ""
    citations: tuple[str, ...] = ()
    latency_ms: float = 0.0

    @property
    def web_search_used(self) -> bool:
        return self.usage.web_search_calls > 0

    def to_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "api": self.api, "model": self.model, "text": self.text,
                "usage": self.usage.to_dict(), "status": self.status, "response_id": self.response_id,
                "citations": list(self.citations), "latency_ms": self.latency_ms}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AiResult:
        return cls(provider=data["provider"], api=data["api"], model=data["model"], text=data["text"],
                   usage=TokenUsage.from_dict(data["usage"]), status=data["status"],
                   response_id=data.get("response_id", ""), citations=tuple(data.get("citations", ())),
                   latency_ms=float(data.get("latency_ms", 0.0)))
