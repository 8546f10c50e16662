"""Key families: the reference's TTLs, AI tasks per task, and overrides."""

from __future__ import annotations

import pytest

from scaling.cache import AI_TASK_TTL_DAYS, DEFAULT_FAMILIES, Family, ai_family, parse_overrides, with_overrides
from scaling.cache.families import check_prefix_free, parse_duration
from scaling.errors import ConfigurationError

DAY = 86400.0


@pytest.mark.parametrize(("family", "ttl"), [
    ("spotify:token", 55 * 60.0),
    ("spotify:album:v2", 30 * DAY),
    ("spotify:search", 30 * DAY),
    ("lastfm:userInfo", 30 * DAY),
    ("lastfm:topalbums", 3600.0),
    ("songlink", 30 * DAY),
    ("user-listens:v2", 420.0),
    ("widget:recent", 7 * DAY),
    ("user-recommendations", 6 * 3600.0),
    ("insights-refresh", 300.0),
    ("random-facts", None),
])
def test_families_carry_the_reference_ttls(family: str, ttl: float | None) -> None:
    """Each family's TTL is the one upstream.md §2 lists for its keys."""
    assert DEFAULT_FAMILIES[family].ttl_s == ttl and DEFAULT_FAMILIES[family].cached


@pytest.mark.parametrize(("task", "days"), [("artistSummary", 180), ("albumDetail", 120), ("genreSummary", 180),
                                            ("artistSentence", 180), ("albumRecommendations", 30),
                                            ("userInsightsSummary", 1), ("userInsightsRecommendations", 1)])
def test_ai_task_families_use_the_per_task_ttl(task: str, days: int) -> None:
    """AI answers are cached 180/120/30/1 days by task, as in upstream.md §5."""
    assert DEFAULT_FAMILIES[ai_family(task)].ttl_s == days * DAY


@pytest.mark.parametrize("task", ["listenAi", "playlistCoverPrompt"])
def test_ttl_zero_tasks_are_not_cached(task: str) -> None:
    """Tasks with TTL 0 in the reference pass straight through the cache."""
    assert AI_TASK_TTL_DAYS[task] == 0 and not DEFAULT_FAMILIES[ai_family(task)].cached


def test_only_musicbrainz_caches_misses() -> None:
    """Negative caching exists only where the reference stores `__null__`."""
    assert [f.name for f in DEFAULT_FAMILIES.values() if f.negative_ttl_s] == ["musicbrainz"]


def test_overrides_change_ttl_turn_caching_off_and_set_budgets() -> None:
    """A parsed override string changes TTLs, 0 disables a family and budgets can be set per family."""
    fams = with_overrides(DEFAULT_FAMILIES, parse_overrides("spotify:album:v2=7d, ai:listenAi=1h, songlink=0"),
                          max_bytes={"spotify:search": 1000})
    assert fams["spotify:album:v2"].ttl_s == 7 * DAY
    assert fams["ai:listenAi"].cached and fams["ai:listenAi"].ttl_s == 3600
    assert not fams["songlink"].cached
    assert fams["spotify:search"].max_bytes == 1000
    assert DEFAULT_FAMILIES["spotify:album:v2"].ttl_s == 30 * DAY  # the defaults are untouched


@pytest.mark.parametrize("text", ["spotify:album:v2=soon", "=5m", "nope"])
def test_bad_override_text_names_the_problem(text: str) -> None:
    """A malformed override is a one-line configuration error."""
    with pytest.raises(ConfigurationError):
        parse_overrides(text)


def test_override_of_unknown_family_is_refused() -> None:
    """Overriding a family that does not exist is an error naming it, not a silent no-op."""
    with pytest.raises(ConfigurationError, match="spotify:albums"):
        with_overrides(DEFAULT_FAMILIES, {"spotify:albums": 60.0})


def test_durations_parse_every_unit() -> None:
    """Durations accept plain seconds, ms, s, m, h and d."""
    assert [parse_duration(t) for t in ("420", "500ms", "30s", "5m", "6h", "30d")] == \
        [420, 0.5, 30, 300, 21600, 30 * DAY]


def test_family_names_must_not_overlap() -> None:
    """A family whose name prefixes another's keys would corrupt its stats, so it is refused."""
    with pytest.raises(ConfigurationError, match="overlap"):
        check_prefix_free([Family("a", 10.0), Family("a:b", 10.0)])
    with pytest.raises(ConfigurationError):
        Family("bad name", 10.0)
