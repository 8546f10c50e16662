"""A deterministic music catalogue: albums, artists and tracks derived from ids.

Any Spotify-looking id names an album whose every field is a function of the id
(hash-seeded), so the same id answers the same way in every run. A seeded list of
``size`` ids forms the *catalogue* that Last.fm listeners play and search finds,
so an album seen in a recent-tracks answer can be searched and fetched.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = ["AlbumCore", "Catalog", "spotify_id", "stable_int", "unit"]

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ADJECTIVES = ("Velvet", "Silent", "Golden", "Broken", "Electric", "Hollow", "Crimson", "Distant", "Paper", "Neon",
              "Quiet", "Wild", "Faded", "Northern", "Glass", "Midnight", "Burning", "Blue", "Lonely", "Secret",
              "Sunday", "Heavy", "Tender", "Restless", "Frozen", "Bright", "Last", "Open", "Slow", "Radiant",
              "Wandering", "Static", "Pale", "Vivid", "Endless", "Gentle", "Copper", "Iron", "Silver", "Young")
NOUNS = ("Harbor", "Signal", "Garden", "River", "Machine", "Mirror", "Echo", "Horizon", "Window", "Season",
         "Forest", "Engine", "Ocean", "Letter", "Animal", "Parade", "Satellite", "Island", "Ghost", "Summer",
         "Highway", "Kingdom", "Lantern", "Desert", "Weather", "Telephone", "Orchard", "Canyon", "Circus", "Comet",
         "Avenue", "Pilot", "Ritual", "Shadow", "Thunder", "Valley", "Wave", "Youth", "Heart", "Station")
FIRST = ("Ada", "Ben", "Clara", "Dev", "Elena", "Finn", "Grace", "Hugo", "Iris", "Jonas", "Kira", "Leo", "Maya",
         "Nils", "Olive", "Paz", "Quinn", "Rosa", "Sam", "Tess", "Uma", "Viktor", "Wren", "Yara", "Zeke")
LAST = ("Adler", "Brooks", "Castillo", "Dahl", "Ellis", "Fontaine", "Garcia", "Hart", "Ibsen", "Jansen", "Kowalski",
        "Lund", "Moreau", "Novak", "Okafor", "Pereira", "Quist", "Reyes", "Sato", "Tanaka", "Ueda", "Vance", "Wolfe")
GENRES = ("indie rock", "dream pop", "post-punk", "shoegaze", "jazz", "ambient", "hip hop", "neo soul", "folk",
          "synthpop", "techno", "alt country", "singer-songwriter", "krautrock", "math rock", "bossa nova")
LABELS = ("Sub Pop", "Matador", "4AD", "Warp", "Domino", "Rough Trade", "Merge", "Jagjaguwar", "XL Recordings",
          "Secretly Canadian", "Blue Note", "Ninja Tune", "Dead Oceans", "Partisan", "Independent")
ARTIST_POOL = 1500


def _digest(*parts: object) -> bytes:
    return hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=16).digest()


def stable_int(*parts: object) -> int:
    """A 64-bit integer that depends only on ``parts`` (not on PYTHONHASHSEED)."""
    return int.from_bytes(_digest(*parts)[:8], "big")


def unit(*parts: object) -> float:
    """A number in [0, 1) that depends only on ``parts``."""
    return stable_int(*parts) / 2**64


def spotify_id(*parts: object) -> str:
    """A 22-character base62 id, like Spotify's, derived from ``parts``."""
    n = int.from_bytes(_digest(*parts), "big")
    out = []
    for _ in range(22):
        n, r = divmod(n, 62)
        out.append(_B62[r])
    return "".join(out)


@lru_cache(maxsize=65_536)
def _track_id(album_id: str, number: int) -> str:
    # Every album answer lists its tracks' ids: a digest each, for the same albums again and again.
    return spotify_id("track", album_id, number)


def _pick(options: tuple[str, ...], *parts: object) -> str:
    return options[stable_int(*parts) % len(options)]


def _title(*parts: object) -> str:
    style = stable_int(*parts, "style") % 4
    adj, noun, noun2 = _pick(ADJECTIVES, *parts, "a"), _pick(NOUNS, *parts, "n"), _pick(NOUNS, *parts, "m")
    return (f"{adj} {noun}", f"{noun} of the {noun2}", f"The {adj} {noun}s", f"{noun} {noun2}")[style]


def artist_name(index: int) -> str:
    style = stable_int("artist", index, "style") % 3
    if style == 0:
        return f"{_pick(FIRST, 'artist', index, 'f')} {_pick(LAST, 'artist', index, 'l')}"
    if style == 1:
        return f"The {_pick(ADJECTIVES, 'artist', index, 'a')} {_pick(NOUNS, 'artist', index, 'n')}s"
    return f"{_pick(NOUNS, 'artist', index, 'n')} {_pick(NOUNS, 'artist', index, 'm')}"


@dataclass(frozen=True, slots=True)
class ArtistRef:
    id: str
    name: str

    def simple(self) -> dict[str, Any]:
        return {"external_urls": {"spotify": f"https://open.spotify.com/artist/{self.id}"},
                "href": f"https://api.spotify.com/v1/artists/{self.id}", "id": self.id, "name": self.name,
                "type": "artist", "uri": f"spotify:artist:{self.id}"}


@dataclass(frozen=True, slots=True)
class AlbumCore:
    """Everything that defines one album; the JSON shapes are built from it."""

    id: str
    name: str
    artists: tuple[ArtistRef, ...]
    album_type: str
    release_date: str
    label: str
    popularity: int
    genres: tuple[str, ...]
    image_hex: str
    tracks: tuple[tuple[str, int, str | None], ...]  # (name, duration_ms, preview_url)
    upc: str

    @property
    def artist_name(self) -> str:
        return self.artists[0].name

    def images(self) -> list[dict[str, Any]]:
        base = "https://i.scdn.co/image/"
        return [{"url": f"{base}ab67616d0000b273{self.image_hex}", "height": 640, "width": 640},
                {"url": f"{base}ab67616d00001e02{self.image_hex}", "height": 300, "width": 300},
                {"url": f"{base}ab67616d00004851{self.image_hex}", "height": 64, "width": 64}]

    def simple(self) -> dict[str, Any]:
        """The simplified album object (search results, track.album)."""
        return {"album_type": self.album_type, "total_tracks": len(self.tracks),
                "external_urls": {"spotify": f"https://open.spotify.com/album/{self.id}"},
                "href": f"https://api.spotify.com/v1/albums/{self.id}", "id": self.id, "images": self.images(),
                "name": self.name, "release_date": self.release_date, "release_date_precision": "day",
                "type": "album", "uri": f"spotify:album:{self.id}", "artists": [a.simple() for a in self.artists]}

    def track(self, number: int) -> dict[str, Any]:
        """Track ``number`` (1-based) as a simplified track object."""
        name, duration, preview = self.tracks[number - 1]
        tid = _track_id(self.id, number)
        return {"artists": [a.simple() for a in self.artists], "disc_number": 1, "duration_ms": duration,
                "explicit": False, "external_urls": {"spotify": f"https://open.spotify.com/track/{tid}"},
                "href": f"https://api.spotify.com/v1/tracks/{tid}", "id": tid, "is_local": False, "name": name,
                "preview_url": preview, "track_number": number, "type": "track", "uri": f"spotify:track:{tid}"}

    def full(self) -> dict[str, Any]:
        """The full album object of ``GET /v1/albums/{id}``."""
        out = self.simple()
        items = [self.track(n) for n in range(1, len(self.tracks) + 1)]
        year = self.release_date[:4]
        out.update({
            "tracks": {"href": f"https://api.spotify.com/v1/albums/{self.id}/tracks?offset=0&limit=50",
                       "items": items, "limit": 50, "next": None, "offset": 0, "previous": None,
                       "total": len(items)},
            "copyrights": [{"text": f"\u00a9 {year} {self.label}", "type": "C"},
                           {"text": f"\u2117 {year} {self.label}", "type": "P"}],
            "external_ids": {"upc": self.upc}, "genres": list(self.genres), "label": self.label,
            "popularity": self.popularity})
        return out


class Catalog:
    """Albums by id, and the seeded catalogue of ids that listeners play and search finds.

    Args:
        seed: picks which ids make up the catalogue.
        size: how many albums the catalogue holds.
        unknown_share: share of ids (by hash) that do not exist.
    """

    def __init__(self, seed: int, size: int = 2000, unknown_share: float = 0.0) -> None:
        self.seed = seed
        self.size = max(1, size)
        self.unknown_share = unknown_share
        # Albums first seen in a search for words no catalogue album matches: their
        # name and artist come from the query, so a later GET agrees with the search.
        self._named: dict[str, tuple[str, str]] = {}
        self._cache: dict[str, AlbumCore] = {}
        self._hashed_exists: dict[str, bool] = {}  # memo of the hash test (a digest per lookup otherwise)

    def _core(self, album_id: str) -> AlbumCore:
        core = self._cache.get(album_id)
        if core is None:
            if len(self._cache) >= 50_000:  # bound memory under id-spraying load tests
                self._cache.clear()
            core = self._cache[album_id] = self._build(album_id)
        return core

    def exists(self, album_id: str) -> bool:
        if album_id.lower().startswith("unknown") or album_id in self._named:
            return not album_id.lower().startswith("unknown")
        known = self._hashed_exists.get(album_id)
        if known is None:
            if len(self._hashed_exists) >= 50_000:
                self._hashed_exists.clear()
            known = self._hashed_exists[album_id] = unit("exists", album_id) >= self.unknown_share
        return known

    def album(self, album_id: str) -> AlbumCore | None:
        """The album with this id, or None if it does not exist."""
        return self._core(album_id) if self.exists(album_id) else None

    @property
    def ids(self) -> list[str]:
        """The catalogue's album ids, in seeded order (all of them exist)."""
        return list(self._index().ids)

    def id_at(self, n: int) -> str:
        """The catalogue id at position ``n`` modulo the catalogue's size."""
        ids = self._index().ids
        return ids[n % len(ids)]

    def _rows(self) -> tuple[tuple[str, str, str, str], ...]:
        return _catalog_rows(self.seed, self.size, self.unknown_share)

    def _index(self) -> _SearchIndex:
        return _search_index(self.seed, self.size, self.unknown_share)

    def search(self, query: str) -> list[AlbumCore]:
        """Catalogue albums matching a Spotify query (``artist:"X" album:"Y"`` filters or free words).

        A query no catalogue album matches yields one album named after the query
        (so lookups of arbitrary titles still find something, as Spotify's fuzzy
        search does), except queries starting with ``unknown``, which find nothing.
        """
        fields, words = _parse_query(query)
        if (not fields and not words) or query.strip().lower().startswith("unknown"):
            return []
        found = [self._core(i) for i in self._index().matching(query, fields, words)]
        if found:
            return found
        name = fields.get("album") or " ".join(w.title() for w in words) or "Untitled"
        artist = fields.get("artist") or artist_name(stable_int("q-artist", query) % ARTIST_POOL)
        album_id = spotify_id("search", query.strip().lower())
        if album_id not in self._named:
            self._named[album_id] = (name, artist)
            self._cache.pop(album_id, None)
        core = self.album(album_id)
        return [core] if core else []

    def _build(self, album_id: str) -> AlbumCore:
        h = album_id
        if album_id in self._named:
            name, artist = self._named[album_id]
            artists: tuple[ArtistRef, ...] = (ArtistRef(spotify_id("artist-name", artist.lower()), artist),)
        else:
            name, artists = _name_artists(album_id)
        kind_roll = unit(h, "type")
        album_type = "album" if kind_roll < 0.7 else ("single" if kind_roll < 0.9 else "compilation")
        low, high = {"album": (7, 16), "single": (1, 4), "compilation": (14, 24)}[album_type]
        count = low + stable_int(h, "count") % (high - low + 1)
        tracks = tuple(
            (_title("track", h, n), 120_000 + stable_int(h, n, "ms") % 300_000,
             f"https://p.scdn.co/mp3-preview/{stable_int(h, n, 'pv'):016x}" if unit(h, n, "preview") < 0.2 else None)
            for n in range(1, count + 1))
        date = _release_date(h)
        genres = () if unit(h, "genres") < 0.7 else tuple(sorted({_pick(GENRES, h, "g1"), _pick(GENRES, h, "g2")}))
        return AlbumCore(
            id=album_id, name=name, artists=artists, album_type=album_type, release_date=date,
            label=_pick(LABELS, h, "label"), popularity=stable_int(h, "pop") % 101, genres=genres,
            image_hex=f"{stable_int(h, 'img'):016x}{stable_int(h, 'img2') % 16**8:08x}", tracks=tracks,
            upc=f"{stable_int(h, 'upc') % 10**12:012d}")


def _name_artists(album_id: str) -> tuple[str, tuple[ArtistRef, ...]]:
    lead = stable_int(album_id, "artist") % ARTIST_POOL
    artists: tuple[ArtistRef, ...] = (ArtistRef(spotify_id("artist", lead), artist_name(lead)),)
    if unit(album_id, "feat") < 0.1:
        other = stable_int(album_id, "artist2") % ARTIST_POOL
        if other != lead:
            artists += (ArtistRef(spotify_id("artist", other), artist_name(other)),)
    return _title("album", album_id), artists


def _release_date(album_id: str) -> str:
    year = 1965 + int(unit(album_id, "year") ** 0.5 * 61)  # skewed towards recent years
    return f"{year:04d}-{1 + stable_int(album_id, 'm') % 12:02d}-{1 + stable_int(album_id, 'd') % 28:02d}"


@lru_cache(maxsize=8)
def _catalog_rows(seed: int, size: int, unknown_share: float) -> tuple[tuple[str, str, str, str], ...]:
    """(id, name, artists, release date) of the catalogue, names lower-cased for matching."""
    rows: list[tuple[str, str, str, str]] = []
    k = 0
    while len(rows) < size:
        album_id = spotify_id("catalog", seed, k)
        k += 1
        if album_id.lower().startswith("unknown") or unit("exists", album_id) < unknown_share:
            continue
        name, artists = _name_artists(album_id)
        rows.append((album_id, name.lower(), " ".join(a.name.lower() for a in artists), _release_date(album_id)))
    return tuple(rows)


_FIELD_RE = re.compile(r'(\w+):(?:"([^"]*)"|(\S+))')


def _parse_query(query: str) -> tuple[dict[str, str], list[str]]:
    fields = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
              for m in _FIELD_RE.finditer(query)}
    rest = _FIELD_RE.sub(" ", query)
    return fields, [w.lower() for w in rest.split() if w]


def _matches(name: str, artists: str, date: str, fields: dict[str, str], words: list[str]) -> bool:
    if "album" in fields and fields["album"].lower() not in name:
        return False
    if "artist" in fields and fields["artist"].lower() not in artists:
        return False
    if "year" in fields and not date.startswith(fields["year"]):
        return False
    haystack = f"{name} {artists}"
    return all(w in haystack for w in words)


class _SearchIndex:
    """The catalogue rows with their text joined, so a query scans three strings with
    ``str.find`` instead of every row in Python; answers exactly as `_matches` over
    every row, in row order. Matching ids are memoised per query (bounded)."""

    _SEP = "\x00"  # in no name or artist, so a match never spans two rows
    _MEMO = 20_000

    def __init__(self, rows: tuple[tuple[str, str, str, str], ...]) -> None:
        self.rows = rows
        self.ids = tuple(row[0] for row in rows)
        self._blobs = {key: self._join([pick(row) for row in rows])
                       for key, pick in (("album", lambda r: r[1]), ("artist", lambda r: r[2]),
                                         ("words", lambda r: f"{r[1]} {r[2]}"))}
        self._memo: dict[str, tuple[str, ...]] = {}

    def _join(self, texts: list[str]) -> tuple[str, list[int]]:
        starts, at = [], 0
        for text in texts:
            starts.append(at)
            at += len(text) + 1
        return self._SEP.join(texts), starts

    def _containing(self, key: str, term: str) -> list[int] | None:
        """Rows whose ``key`` text contains ``term``; None when the term cannot be indexed."""
        if not term:
            return None
        if self._SEP in term:
            return []
        blob, starts = self._blobs[key]
        out: list[int] = []
        at = blob.find(term)
        while at != -1:
            row = bisect.bisect_right(starts, at) - 1
            out.append(row)
            nxt = starts[row + 1] if row + 1 < len(starts) else len(blob)
            at = blob.find(term, nxt)
        return out

    def matching(self, query: str, fields: dict[str, str], words: list[str]) -> tuple[str, ...]:
        """Ids of the rows `_matches` accepts for this parsed query, in row order."""
        hit = self._memo.get(query)
        if hit is not None:
            return hit
        candidates = None
        if "album" in fields:
            candidates = self._containing("album", fields["album"].lower())
        elif "artist" in fields:
            candidates = self._containing("artist", fields["artist"].lower())
        elif words:
            candidates = self._containing("words", words[0])
        rows = self.rows if candidates is None else [self.rows[i] for i in candidates]
        found = tuple(i for i, name, artists, date in rows if _matches(name, artists, date, fields, words))
        if len(self._memo) >= self._MEMO:
            self._memo.clear()
        self._memo[query] = found
        return found


@lru_cache(maxsize=8)
def _search_index(seed: int, size: int, unknown_share: float) -> _SearchIndex:
    return _SearchIndex(_catalog_rows(seed, size, unknown_share))
