"""The Last.fm population: deterministic timelines, exact active share, plausible now-playing share."""

from __future__ import annotations

from scaling.clock import VIRTUAL_EPOCH
from scaling.sandbox.catalog import Catalog
from scaling.sandbox.population import Population


def _population(**kwargs: float) -> Population:
    return Population(5, 500, VIRTUAL_EPOCH, Catalog(5, 300), **kwargs)  # type: ignore[arg-type]


def test_names_are_zero_padded_and_lookup_is_case_insensitive() -> None:
    """Listeners are listener0001..; lookups ignore case and reject names outside the population."""
    pop = _population()
    assert pop.names()[:2] == ["listener0001", "listener0002"] and len(pop.names()) == 500
    assert pop.find("LISTENER0042") is not None and pop.find("listener0501") is None
    assert pop.find("listener42") is None and pop.find("someone") is None


def test_active_share_holds_at_any_time() -> None:
    """Exactly 30% of listeners listened in the last 2 h, now and a simulated day later."""
    pop = _population(active_share=0.3)
    for t in (VIRTUAL_EPOCH, VIRTUAL_EPOCH + 3 * 3600 + 17, VIRTUAL_EPOCH + 86_400):
        assert sum(pop.is_active(n, t) for n in pop.names()) == 150


def test_now_playing_share_is_roughly_as_configured() -> None:
    """About a quarter of active listeners are playing at a given moment, and nobody inactive is."""
    pop = _population(active_share=0.5, now_playing_share=0.25)
    listeners = [pop.find(n) for n in pop.names()]
    playing = [x for x in listeners if x is not None and x.playing(VIRTUAL_EPOCH) is not None]
    assert all(x.active for x in playing)
    assert 0.15 * 250 <= len(playing) <= 0.35 * 250


def test_scrobble_count_grows_only_for_active_listeners() -> None:
    """An active listener's scrobbles grow over an hour; an inactive one's history is frozen."""
    pop = _population(active_share=0.5)
    listeners = [pop.find(n) for n in pop.names()]
    active = next(x for x in listeners if x is not None and x.active)
    inactive = next(x for x in listeners if x is not None and not x.active)
    assert active.scrobbles(VIRTUAL_EPOCH + 3600) > active.scrobbles(VIRTUAL_EPOCH)
    assert inactive.scrobbles(VIRTUAL_EPOCH + 3600) == inactive.scrobbles(VIRTUAL_EPOCH) > 0
    last = inactive.last_played(VIRTUAL_EPOCH)
    assert last is not None and VIRTUAL_EPOCH - last > 7200


def test_same_seed_same_population() -> None:
    """Two populations from one seed and anchor play the same thing at the same time."""
    a, b = _population(), _population()
    la, lb = a.find("listener0100"), b.find("listener0100")
    assert la == lb and la is not None
    assert a.recent(la, VIRTUAL_EPOCH, limit=5, page=1) == b.recent(lb, VIRTUAL_EPOCH, limit=5, page=1)
