"""Last.fm listeners: a deterministic population whose listening follows the clock.

Every listener has a timeline fixed by the seed and the sandbox's start time
(the *anchor*): a cycle of ``C`` seconds in which ``m`` tracks of ``d`` seconds
play back to back, then a pause. A track scrobbles when it ends, with its start
as its date; while it plays it is the now-playing entry.

*Active* listeners (exactly ``round(active_share * size)`` of them) keep cycling,
and since every cycle is shorter than 2 h minus one track, they always scrobbled
within the last 2 h. The others stopped between 2 h and 60 days before the anchor
(or never scrobbled at all: ``empty_share``). Every query is O(1) in the history.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from scaling.sandbox.catalog import Catalog, stable_int, unit

__all__ = ["Listener", "Play", "Population"]

ACTIVE_WINDOW_S = 7200.0
_FAVOURITES = 30


@dataclass(frozen=True, slots=True)
class Play:
    """One play: the album, the track number on it, and when it started."""

    album_id: str
    track_number: int
    started: float
    now_playing: bool = False


@dataclass(frozen=True, slots=True)
class Listener:
    """One listener's fixed timeline.

    Attributes:
        name: the Last.fm user name, e.g. ``listener0042``.
        index: 1-based position in the population.
        active: keeps listening (always scrobbled within the last 2 h).
        origin: epoch second of the first play (the registration date is a little earlier).
        stop: epoch second after which nothing plays (``inf`` for active listeners).
        cycle: seconds per listening cycle.
        tracks_per_cycle: tracks played back to back at the start of each cycle.
        track_s: seconds per track.
    """

    name: str
    index: int
    active: bool
    origin: float
    stop: float
    cycle: float
    tracks_per_cycle: int
    track_s: float

    @property
    def registered(self) -> float:
        return self.origin - 86_400.0

    def scrobbles(self, now: float) -> int:
        """How many plays have finished (scrobbled) by ``now``."""
        latest_start = min(now - self.track_s, self.stop - self.track_s)
        if latest_start < self.origin or self.tracks_per_cycle == 0:
            return 0
        x = latest_start - self.origin
        c = math.floor(x / self.cycle)
        j = min(self.tracks_per_cycle - 1, math.floor((x - c * self.cycle) / self.track_s))
        return c * self.tracks_per_cycle + j + 1

    def start_of(self, play_index: int) -> float:
        c, j = divmod(play_index, self.tracks_per_cycle)
        return self.origin + c * self.cycle + j * self.track_s

    def playing(self, now: float) -> int | None:
        """The index of the play in progress at ``now``, if any."""
        if not self.active or now < self.origin or self.tracks_per_cycle == 0:
            return None
        c = math.floor((now - self.origin) / self.cycle)
        j = math.floor((now - self.origin - c * self.cycle) / self.track_s)
        return c * self.tracks_per_cycle + j if j < self.tracks_per_cycle else None

    def last_played(self, now: float) -> float | None:
        """Start time of the newest scrobble by ``now`` (None if there is none)."""
        n = self.scrobbles(now)
        return self.start_of(n - 1) if n else None


class Population:
    """The listeners, and what each played when.

    Args:
        seed: fixes every listener's timeline and taste.
        size: how many listeners (names ``listener0001`` ...).
        anchor: epoch second the population is built around (the sandbox's start).
        catalog: the albums listeners play.
        active_share: exact share of listeners who keep listening.
        now_playing_share: expected share of active listeners playing at any moment.
        empty_share: share of inactive listeners with no scrobbles at all.
    """

    def __init__(self, seed: int, size: int, anchor: float, catalog: Catalog, *, active_share: float = 0.3,
                 now_playing_share: float = 0.25, empty_share: float = 0.0) -> None:
        self.seed = seed
        self.size = size
        self.anchor = anchor
        self.catalog = catalog
        self.active_share = active_share
        self.now_playing_share = now_playing_share
        self.empty_share = empty_share
        self._width = max(4, len(str(size)))
        order = list(range(1, size + 1))
        random.Random(f"{seed}:active").shuffle(order)
        self._active = frozenset(order[: round(active_share * size)])
        self._cache: dict[int, Listener] = {}
        # Recent-tracks calls ask for the same few newest plays run after run; each costs
        # several digests, so plays are memoised (bounded; a play is a function of its key).
        self._plays: dict[tuple[int, int, bool], Play] = {}

    def name(self, index: int) -> str:
        return f"listener{index:0{self._width}d}"

    def names(self) -> list[str]:
        """Every listener name, in order."""
        return [self.name(i) for i in range(1, self.size + 1)]

    def find(self, name: str) -> Listener | None:
        """The listener called ``name`` (case-insensitive, as Last.fm), or None."""
        lowered = name.strip().lower()
        digits = lowered.removeprefix("listener")
        if digits == lowered or not digits.isdigit() or len(digits) != self._width:
            return None
        index = int(digits)
        return self.listener(index) if 1 <= index <= self.size else None

    def listener(self, index: int) -> Listener:
        cached = self._cache.get(index)
        if cached is None:
            cached = self._cache[index] = self._build(index)
        return cached

    def _build(self, index: int) -> Listener:
        s = self.seed
        active = index in self._active
        track_s = 180.0 + stable_int(s, index, "track_s") % 101  # 3:00 to 4:40
        # A cycle of 60 to 110 minutes: the pause after the last track is then always
        # shorter than the 2 h that makes a listener "active".
        cycle = 3600.0 + unit(s, index, "cycle") * 3000.0
        if self.now_playing_share > 0:
            per_cycle = max(1, round(self.now_playing_share * cycle / track_s))
            per_cycle = min(per_cycle, int(cycle // track_s))
        else:
            per_cycle = 1
        origin = self.anchor - 86_400.0 * (30 + stable_int(s, index, "age") % 1500) - unit(s, index, "phase") * cycle
        if active:
            stop = math.inf
        elif unit(s, index, "empty") < self.empty_share:
            stop = origin  # never played anything
        else:
            # Stopped between 2 h (plus a track, so even the last scrobble is older) and 60 days ago.
            history = self.anchor - origin - ACTIVE_WINDOW_S
            stop = self.anchor - ACTIVE_WINDOW_S - 2 * track_s - unit(s, index, "stop") * min(60 * 86_400.0,
                                                                                          0.9 * history)
        return Listener(self.name(index), index, active, origin, stop, cycle, per_cycle, track_s)

    def is_active(self, name: str, now: float, window: float = ACTIVE_WINDOW_S) -> bool:
        """Whether ``name`` played anything in the ``window`` seconds before ``now``."""
        listener = self.find(name)
        if listener is None:
            return False
        if self.now_playing_share > 0 and listener.playing(now) is not None:
            return True
        last = listener.last_played(now)
        return last is not None and now - last < window

    def play(self, listener: Listener, play_index: int, *, now_playing: bool = False) -> Play:
        """What ``listener`` played as their ``play_index``-th play (0-based)."""
        key = (listener.index, play_index, now_playing)
        known = self._plays.get(key)
        if known is not None and known.started == listener.start_of(play_index):
            return known
        if len(self._plays) >= 200_000:
            self._plays.clear()
        made = self._plays[key] = self._play(listener, play_index, now_playing)
        return made

    def _play(self, listener: Listener, play_index: int, now_playing: bool) -> Play:
        s = self.seed
        favourite = stable_int(s, listener.index, "taste", stable_int(s, listener.index, play_index) % _FAVOURITES)
        album_id = self.catalog.id_at(favourite)
        core = self.catalog.album(album_id)
        count = len(core.tracks) if core else 1
        number = 1 + stable_int(s, listener.index, play_index, "track") % count
        return Play(album_id, number, listener.start_of(play_index), now_playing)

    def recent(self, listener: Listener, now: float, *, limit: int, page: int) -> tuple[Play | None, list[Play], int]:
        """Last.fm's recent tracks: the now-playing play, a page of scrobbles newest first, and the total."""
        total = listener.scrobbles(now)
        playing = listener.playing(now) if self.now_playing_share > 0 else None
        current = self.play(listener, playing, now_playing=True) if playing is not None else None
        first = (page - 1) * limit
        indexes = range(total - 1 - first, max(-1, total - 1 - first - limit), -1)
        return current, [self.play(listener, i) for i in indexes], total
