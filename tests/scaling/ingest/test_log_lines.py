"""Log lines: each line the Worker prints about limits, cron timing and metrics becomes one typed fact."""

from __future__ import annotations

import pytest

from scaling.ingest.log_lines import (
    CooldownWait,
    CronTotal,
    DbSize,
    LocalLimit,
    Payload,
    RateLimitWarning,
    RetriesExhausted,
    Upstream429,
    join_message,
    parse_message,
)


@pytest.mark.parametrize(("line", "fact"), [
    ("[Spotify] 429 received, entering cooldown for 30s", Upstream429("spotify", 30.0)),
    ("[openai] 429 received, entering cooldown for 2500ms", Upstream429("openai", 2.5)),
    ("[Spotify] Rate limit warning: 125/150 requests in window", RateLimitWarning("spotify", 125, 150)),
    ("[anthropic] Rate limit warning: 41/50 requests in window", RateLimitWarning("anthropic", 41, 50)),
    ("[Spotify] Local rate limit reached (150/150), waiting 9000ms", LocalLimit("spotify", 150, 150)),
    ("[Spotify] Rate limit cooldown, waiting 4000ms (attempt 1/3)", CooldownWait("spotify", 4.0)),
    ("[Spotify] Max retries (2) exceeded for https://api.spotify.com/v1/albums/x", RetriesExhausted("spotify")),
    ("[CRON] Phase 1 complete in 4521ms. Total processing time: 6344ms", CronTotal(6.344)),
    ("[CRON] Database size: 12.5MB, 51234 total rows", DbSize(12.5, 51234)),
    ('[METRICS] {"userCount": 42, "cronDurationMs": 6344}',
     Payload("METRICS", {"userCount": 42, "cronDurationMs": 6344})),
    ('[DB_METRICS] {"totalRows": 5}', Payload("DB_METRICS", {"totalRows": 5})),
    ('[CACHE_METRICS] {"hits": 1}', Payload("CACHE_METRICS", {"hits": 1})),
    ("[RATE_LIMIT_WARNING] spotify at 80% capacity", Payload("RATE_LIMIT_WARNING", {"service": "spotify",
                                                                                     "utilisation": 0.8})),
    ("[Last.fm] 429 received, entering cooldown for 5s", Upstream429("lastfm", 5.0)),
])
def test_each_known_line_states_its_fact(line: str, fact: object) -> None:
    """The upstream app's and the plan's log wording parses to the fact with upstream names normalised."""
    assert parse_message(line) == fact


@pytest.mark.parametrize("line", [
    "polled 42 users",
    "[CRON] Starting user listens pre-warm for 42 users",
    "[Spotify] 429 retry 1/2 after 10000ms for https://api.spotify.com/v1/search",  # the 429 is counted once
    "[AICache] Hit ai:artistSummary:radiohead",
    "[METRICS] {not json}",
    "[METRICS] [1, 2]",
    "",
])
def test_other_lines_state_nothing(line: str) -> None:
    """Lines without a fact (including a retry line that repeats a counted 429, and broken JSON) give None."""
    assert parse_message(line) is None


def test_console_log_arguments_join_like_the_console() -> None:
    """console.log('[METRICS]', obj) arrives as a list; strings join with spaces and objects as JSON."""
    assert join_message(["[METRICS]", {"userCount": 3}]) == '[METRICS] {"userCount":3}'
    assert parse_message(join_message(["[METRICS]", '{"userCount":3}'])) == Payload("METRICS", {"userCount": 3})
    assert join_message("plain") == "plain" and join_message(None) == "null" and join_message([7]) == "7"
