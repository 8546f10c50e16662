"""Cache key families: what each kind of cached value is called and how long it lives.

The TTLs are the upstream app's (``reference/upstream.md`` §2 and the AI task table
in §5). A family's stored keys are ``cache:{family}:{key}``; the key templates in
`Family.template` document what the reference put after the prefix.

Override TTLs and byte budgets with `with_overrides` (or parse a
``"spotify:album:v2=7d,ai:listenAi=0"`` string with `parse_overrides`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from scaling.errors import ConfigurationError

__all__ = [
    "AI_TASK_TTL_DAYS",
    "DEFAULT_FAMILIES",
    "DEFAULT_MAX_BYTES",
    "Family",
    "ai_family",
    "parse_duration",
    "parse_overrides",
    "with_overrides",
]

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
#: Each family's byte budget unless configured: past it, the least recently used keys go.
DEFAULT_MAX_BYTES = 128 * 1024 * 1024

#: AI task -> TTL in days; 0 means the answer is never cached, None means no expiry.
AI_TASK_TTL_DAYS: Mapping[str, float | None] = {
    "artistSummary": 180,
    "albumDetail": 120,
    "genreSummary": 180,
    "artistSentence": 180,
    "albumRecommendations": 30,
    "listenAi": 0,
    "randomFact": 0,  # facts go to the `random-facts:pool` family instead
    "playlistCoverPrompt": 0,
    "userInsightsSummary": 1,
    "userInsightsRecommendations": 1,
}

_NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")


@dataclass(frozen=True, slots=True)
class Family:
    """One key family.

    Attributes:
        name: the prefix, e.g. ``spotify:album:v2``.
        ttl_s: seconds a value lives; None keeps it until evicted or deleted.
        cached: False makes lookups pass straight through (the reference's "TTL 0").
        negative_ttl_s: when set, a fetch that finds nothing (returns None) is
            stored as ``null`` this long; otherwise "not found" is never cached.
        max_bytes: the family's byte budget; None is unbounded.
        template: the reference's key shape after the prefix (documentation only).
    """

    name: str
    ttl_s: float | None
    cached: bool = True
    negative_ttl_s: float | None = None
    max_bytes: int | None = DEFAULT_MAX_BYTES
    template: str = "{key}"

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ConfigurationError(f"cache family name {self.name!r}: use 1-80 of A-Z a-z 0-9 _ . : -",
                                     variable="cache family")
        for attr in ("ttl_s", "negative_ttl_s"):
            value = getattr(self, attr)
            if value is not None and not value > 0:
                raise ConfigurationError(f"cache family {self.name}: {attr} must be positive seconds or None, "
                                         f"got {value!r}", variable=self.name)
        if self.max_bytes is not None and self.max_bytes < 1:
            raise ConfigurationError(f"cache family {self.name}: max_bytes must be positive, got {self.max_bytes}",
                                     variable=self.name)


def ai_family(task: str) -> str:
    """The family name of an AI task's answers (``ai:{task}``)."""
    return f"ai:{task}"


def _ai_families() -> list[Family]:
    out = []
    for task, days in AI_TASK_TTL_DAYS.items():
        if days == 0:
            out.append(Family(ai_family(task), None, cached=False, template="{params joined by ':'}"))
        else:
            out.append(Family(ai_family(task), None if days is None else days * DAY,
                              template="{params, lower-cased and trimmed, joined by ':'}"))
    return out


def _defaults() -> dict[str, Family]:
    fams = [
        # Spotify tokens live as long as Spotify says minus a minute; this is the ceiling.
        Family("spotify:token", 55 * MINUTE, template="{short hash of client id}"),
        Family("spotify:album:v2", 30 * DAY, template="{album id}"),
        Family("spotify:artist", 30 * DAY, template="{artist id}[:albums:{limit}|:related]"),
        Family("spotify:search", 30 * DAY, template="{type}:{query}"),
        Family("lastfm:artistDetail", 30 * DAY, template="{artist}[:user:{user}]"),
        Family("lastfm:artistTopAlbums", 30 * DAY, template="{artist}"),
        Family("lastfm:userInfo", 30 * DAY, template="{user}"),
        Family("lastfm:topalbums", HOUR, template="{user}:{period}:{limit}"),
        Family("lastfm:topartists", HOUR, template="{user}:{period}:{limit}"),
        Family("lastfm:lovedtracks", HOUR, template="{user}:{limit}"),
        Family("songlink", 30 * DAY, template="{url}"),
        Family("streaming-links", 30 * DAY, template="{track|album}:{id}"),
        # The only family the reference caches misses for (stored as "__null__").
        Family("musicbrainz", 30 * DAY, negative_ttl_s=30 * DAY, template="{release|recording}:{query}"),
        Family("user-listens:v2", 420.0, template="recent"),
        Family("user-listen:individual", 2 * HOUR, template="{lastfm user}"),
        Family("widget:recent", 7 * DAY, template="{lastfm user}"),
        Family("user-recommendations", 6 * HOUR, template="{user}"),
        Family("insights-refresh", 5 * MINUTE, template="{user}"),
        Family("random-facts", None, template="pool"),
        *_ai_families(),
    ]
    return {f.name: f for f in fams}


DEFAULT_FAMILIES: Mapping[str, Family] = _defaults()

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": MINUTE, "min": MINUTE, "h": HOUR, "d": DAY, None: 1.0}


def parse_duration(text: str, *, variable: str = "duration") -> float:
    """Seconds from ``"420"``, ``"420s"``, ``"5m"``, ``"6h"``, ``"30d"``.

    Raises:
        ConfigurationError: naming ``variable``.
    """
    m = _DURATION_RE.match(text)
    if not m:
        raise ConfigurationError(f"{variable}: expected a duration such as 420s, 5m, 6h or 30d, got {text!r}",
                                 variable=variable)
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_overrides(text: str, *, variable: str = "cache TTL overrides") -> dict[str, float | None]:
    """``"spotify:album:v2=7d,ai:listenAi=0,random-facts=none"`` -> {family: seconds | 0 | None}.

    ``0`` turns caching off for the family; ``none`` keeps values without expiry.
    """
    out: dict[str, float | None] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.rpartition("=")
        if not sep or not name.strip():
            raise ConfigurationError(f"{variable}: expected family=duration, got {part!r}", variable=variable)
        v = value.strip().lower()
        out[name.strip()] = None if v in ("none", "forever") else parse_duration(v, variable=f"{variable} {name}")
    return out


def with_overrides(families: Mapping[str, Family], ttl: Mapping[str, float | None] | None = None,
                   max_bytes: Mapping[str, int | None] | None = None) -> dict[str, Family]:
    """A copy of ``families`` with some TTLs (seconds; 0 = not cached; None = no expiry) and budgets changed.

    Raises:
        ConfigurationError: an override names an unknown family.
    """
    out = dict(families)
    for name in set(ttl or {}) | set(max_bytes or {}):
        if name not in out:
            raise ConfigurationError(f"cache override names unknown family {name!r}; known: "
                                     f"{', '.join(sorted(out))}", variable=name)
    for name, seconds in (ttl or {}).items():
        if seconds == 0:
            out[name] = dataclasses.replace(out[name], cached=False)
        else:
            out[name] = dataclasses.replace(out[name], ttl_s=seconds, cached=True)
    for name, budget in (max_bytes or {}).items():
        out[name] = dataclasses.replace(out[name], max_bytes=budget)
    return out


def check_prefix_free(families: Iterable[Family]) -> None:
    """Refuse families where one name plus ``:`` starts another (their keys would mix in scans)."""
    names = sorted(f.name for f in families)
    for a in names:
        for b in names:
            if a != b and b.startswith(a + ":"):
                raise ConfigurationError(f"cache families {a!r} and {b!r} overlap: {b!r} keys would be "
                                         f"counted as {a!r} keys", variable=b)
