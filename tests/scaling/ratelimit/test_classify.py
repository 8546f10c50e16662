"""Every kind of answer the upstreams give is classified the way it must be acted on."""

from __future__ import annotations

import json

import httpx
import pytest

from scaling.classify import Outcome, classify

NOW = 1_767_225_600.0


def resp(status: int, body: object = None, headers: dict[str, str] | None = None, raw: bytes | None = None
         ) -> httpx.Response:
    content = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    return httpx.Response(status, content=content, headers=headers or {})


@pytest.mark.parametrize(("upstream", "response", "outcome"), [
    ("spotify", resp(200, {"id": "x"}), Outcome.OK),
    ("spotify", resp(429, {"error": {"status": 429, "message": "API rate limit exceeded"}}, {"Retry-After": "7"}),
     Outcome.THROTTLED),
    ("spotify", resp(429, {"error": {"status": 429, "message": "quota", "reason": "QUOTA_EXCEEDED"}}), Outcome.QUOTA),
    ("spotify", resp(404, {"error": {"status": 404, "message": "non existing id"}}), Outcome.PERMANENT),
    ("spotify", resp(401, {"error": {"status": 401, "message": "bad token"}}), Outcome.PERMANENT),
    ("spotify", resp(502, raw=b"<html>bad gateway</html>"), Outcome.TRANSIENT),
    ("spotify", resp(503), Outcome.TRANSIENT),
    ("spotify", resp(504), Outcome.TRANSIENT),
    ("spotify", resp(200, raw=b'{"id": "trunc'), Outcome.MALFORMED),
    ("spotify", resp(200, raw=b""), Outcome.MALFORMED),
    ("lastfm", resp(200, {"error": 29, "message": "Rate limit exceeded"}), Outcome.THROTTLED),
    ("lastfm", resp(429, {"error": 29, "message": "Rate limit exceeded"}), Outcome.THROTTLED),
    ("lastfm", resp(200, {"error": 6, "message": "User not found"}), Outcome.PERMANENT),
    ("lastfm", resp(403, {"error": 10, "message": "Invalid API key"}), Outcome.PERMANENT),
    ("lastfm", resp(200, {"error": 26, "message": "Suspended API key"}), Outcome.PERMANENT),
    ("lastfm", resp(200, {"error": 16, "message": "temporarily unavailable"}), Outcome.TRANSIENT),
    ("lastfm", resp(200, {"error": 11, "message": "Service Offline"}), Outcome.TRANSIENT),
    ("lastfm", resp(200, {"error": "x", "message": "?"}), Outcome.MALFORMED),
    ("lastfm", resp(200, {"recenttracks": {"track": []}}), Outcome.OK),
    ("openai", resp(429, {"error": {"message": "slow", "type": "requests", "code": "rate_limit_exceeded"}},
                    {"retry-after-ms": "1500"}), Outcome.THROTTLED),
    ("openai", resp(429, {"error": {"message": "pay up", "type": "insufficient_quota", "code": "insufficient_quota"}}),
     Outcome.QUOTA),
    ("openai", resp(400, {"error": {"message": "bad", "code": None}}), Outcome.PERMANENT),
    ("perplexity", resp(429, {"error": {"message": "rate limited"}}), Outcome.THROTTLED),
    ("songlink", resp(429, raw=b"Too Many Requests"), Outcome.THROTTLED),
])
def test_each_answer_type(upstream: str, response: httpx.Response, outcome: Outcome) -> None:
    """Status, body and headers together decide the outcome, per upstream."""
    assert classify(upstream, response, now=NOW).outcome is outcome


def test_throttled_answer_carries_the_parsed_wait() -> None:
    """A 429's Retry-After (or retry-after-ms) travels with the classification."""
    a = classify("openai", resp(429, {"error": {"code": "rate_limit_exceeded"}}, {"retry-after-ms": "1500"}), now=NOW)
    assert a.retry_after == 1.5
    b = classify("spotify", resp(429, {}, {"Retry-After": "Thu, 01 Jan 2026 00:01:00 GMT"}), now=NOW)
    assert b.retry_after == 60.0


def test_lastfm_error_under_http_200_is_not_ok() -> None:
    """The upstream app read an error body under 200 as "no track"; here it is an error."""
    a = classify("lastfm", resp(200, {"error": 29, "message": "Rate limit exceeded"}), now=NOW)
    assert a.outcome is Outcome.THROTTLED and "29" in a.detail
