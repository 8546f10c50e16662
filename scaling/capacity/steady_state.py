"""Steady state: what the caches hold after months of traffic, so a simulated day costs what a real one will.

A new deployment starts empty; a running one has months of cached album pages and AI
summaries (TTL 30-180 days). Warming is **analytical**: for a TTL cache refilled on
a miss, under Poisson requests at rate λ to one item with TTL τ, the item is
cached at a random moment with probability

    P(hit) = λτ / (1 + λτ)

(a renewal cycle is τ cached plus an idle gap of mean 1/λ). Each item's λ comes
from the page-view model: the catalogue's Zipf popularity for albums
(`scaling.capacity.pageviews`), the share of views that ask for a summary, a
search or a profile, and each family's TTL (`scaling.cache.families`). A seeded
draw then decides which items are cached at the start, and the simulator fills
exactly those through the real service layer before the measured period (their
upstream calls and costs are not counted). The prewarm's per-user entries start
with ages spread evenly up to the staleness target, as a design that meets the
target keeps them.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from scaling.cache.families import DEFAULT_FAMILIES, Family
from scaling.prewarm import ENTRY_KEY, ENTRY_TTL_S, Listen
from scaling.sandbox.catalog import Catalog
from scaling.sandbox.population import Population
from scaling.store import StateStore

__all__ = ["Demand", "expected_hit_rate", "hit_probability", "pick_warm", "seed_prewarm_entries"]


@dataclass(frozen=True, slots=True)
class Demand:
    """Requests for one cached item: family, key (what the page asks with) and rate per second."""

    family: str
    key: str
    rate_per_s: float


def hit_probability(rate_per_s: float, ttl_s: float | None) -> float:
    """P(cached) for an item asked at ``rate_per_s`` with TTL ``ttl_s`` (None: never expires)."""
    if rate_per_s <= 0:
        return 0.0
    if ttl_s is None:
        return 1.0
    x = rate_per_s * ttl_s
    return x / (1.0 + x)


def _ttl(family: str, families: Mapping[str, Family]) -> float | None:
    fam = families[family]
    return fam.ttl_s if fam.cached else 0.0


def expected_hit_rate(demands: Iterable[Demand], families: Mapping[str, Family] = DEFAULT_FAMILIES
                      ) -> dict[str, float]:
    """Each family's steady-state hit rate: its items' P(hit) weighted by their request rates."""
    num: dict[str, float] = {}
    den: dict[str, float] = {}
    for d in demands:
        p = hit_probability(d.rate_per_s, _ttl(d.family, families))
        num[d.family] = num.get(d.family, 0.0) + d.rate_per_s * p
        den[d.family] = den.get(d.family, 0.0) + d.rate_per_s
    return {f: num[f] / den[f] for f in den if den[f] > 0}


def pick_warm(demands: Iterable[Demand], rng: random.Random,
              families: Mapping[str, Family] = DEFAULT_FAMILIES) -> list[Demand]:
    """The items cached at a random moment of the steady state (each with its own P(hit))."""
    return [d for d in demands if rng.random() < hit_probability(d.rate_per_s, _ttl(d.family, families))]


def seed_prewarm_entries(store: StateStore, names: Sequence[str], population: Population, catalog: Catalog, *,
                         now: float, max_age_s: float, rng: random.Random, active_age_s: float = 300.0) -> int:
    """Write each listener's latest listen as the prewarm would have, fetched up to ``max_age_s`` ago.

    Returns how many entries were written (listeners the sandbox knows).
    """
    written = 0
    for name in names:
        listener = population.find(name)
        if listener is None:
            continue
        # An active listener's entry is as fresh as the last run; the others' ages spread up to the target.
        fetched = now - rng.uniform(0.0, active_age_s if listener.active else max_age_s)
        played = listener.last_played(fetched)
        artist = album = track = image = album_id = None
        n = listener.scrobbles(fetched)
        if n:
            play = population.play(listener, n - 1)
            core = catalog.album(play.album_id)
            if core is not None:
                artist, album, album_id = core.artist_name, core.name, core.id
                track, image = core.tracks[play.track_number - 1][0], core.images()[1]["url"]
        entry = Listen(name, artist, album, track, image, played, False, fetched, album_id)
        store.set(ENTRY_KEY.format(username=name), entry.to_json(), now=now, ttl=ENTRY_TTL_S)
        written += 1
    return written
