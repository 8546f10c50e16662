"""What an upstream's answer means, before anyone decides whether to retry.

Each upstream signals trouble its own way: Spotify with 429 + Retry-After (and a
``QUOTA_EXCEEDED`` reason for a spent quota), Last.fm with an ``error`` code in the
body, sometimes under HTTP 200, OpenAI with ``rate_limit_exceeded`` vs
``insufficient_quota``. `classify` reads status, headers and body once and returns
an `Answer` the fetch wrapper, breaker and limiter act on.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

import httpx

from scaling.retry_after import retry_after_from_headers

__all__ = ["Answer", "Outcome", "classify"]


class Outcome(enum.Enum):
    OK = "ok"
    THROTTLED = "throttled"  # slow down: 429, Last.fm 29; retry after the cooldown
    QUOTA = "quota"  # out of quota or money: never retried
    TRANSIENT = "transient"  # 5xx, Last.fm 11/16, timeouts: retry with backoff
    PERMANENT = "permanent"  # other 4xx, Last.fm 6/10/26: retrying cannot help
    MALFORMED = "malformed"  # a body that is not what the API documents


@dataclass(frozen=True, slots=True)
class Answer:
    """A classified answer.

    Attributes:
        outcome: what it means.
        status: the HTTP status.
        body: the parsed JSON body (None if not JSON).
        retry_after: seconds the upstream asked us to wait, if it said.
        detail: a short human reason ("Last.fm error 29: Rate limit exceeded").
    """

    outcome: Outcome
    status: int
    body: Any
    retry_after: float | None
    detail: str


_LASTFM_THROTTLED = {29}
_LASTFM_TRANSIENT = {8, 11, 16}  # operation failed, service offline, temporarily unavailable
_TRANSIENT_STATUS = {408, 425, 500, 502, 503, 504}


def classify(upstream: str, response: httpx.Response, *, now: float) -> Answer:
    """Classify one HTTP answer from ``upstream``.

    Args:
        upstream: "spotify", "lastfm", "openai", "perplexity" or "songlink".
        response: the httpx response (body already read).
        now: epoch seconds, for HTTP-date Retry-After values.
    """
    status = response.status_code
    retry_after = retry_after_from_headers(response.headers, now=now)
    body, parse_error = _json(response)
    if upstream == "lastfm" and isinstance(body, dict) and "error" in body:
        return _lastfm_error(status, body, retry_after)
    if status == 429:
        code = _error_code(body)
        if code in ("insufficient_quota", "QUOTA_EXCEEDED") or _reason(body) == "QUOTA_EXCEEDED":
            return Answer(Outcome.QUOTA, status, body, retry_after, f"{upstream} quota exhausted ({code or 'quota'})")
        return Answer(Outcome.THROTTLED, status, body, retry_after, f"{upstream} 429 {_message(body)}".strip())
    if status in _TRANSIENT_STATUS:
        return Answer(Outcome.TRANSIENT, status, body, retry_after, f"{upstream} HTTP {status}")
    if status >= 400:
        return Answer(Outcome.PERMANENT, status, body, None, f"{upstream} HTTP {status} {_message(body)}".strip())
    if parse_error is not None:
        return Answer(Outcome.MALFORMED, status, None, None, f"{upstream} sent a body that is not JSON: {parse_error}")
    return Answer(Outcome.OK, status, body, None, "ok")


def _json(response: httpx.Response) -> tuple[Any, str | None]:
    if not response.content:
        return None, "empty body"
    try:
        return json.loads(response.content), None
    except (ValueError, UnicodeDecodeError) as exc:
        return None, str(exc)[:120]


def _lastfm_error(status: int, body: dict[str, Any], retry_after: float | None) -> Answer:
    try:
        code = int(body["error"])
    except (TypeError, ValueError):
        return Answer(Outcome.MALFORMED, status, body, None, f"Last.fm error field is not a code: {body['error']!r}")
    detail = f"Last.fm error {code}: {str(body.get('message', ''))[:200]}"
    if code in _LASTFM_THROTTLED:
        return Answer(Outcome.THROTTLED, status, body, retry_after, detail)
    if code in _LASTFM_TRANSIENT:
        return Answer(Outcome.TRANSIENT, status, body, retry_after, detail)
    return Answer(Outcome.PERMANENT, status, body, None, detail)


def _error_obj(body: Any) -> dict[str, Any]:
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _error_code(body: Any) -> str | None:
    code = _error_obj(body).get("code")
    return str(code) if code is not None else None


def _reason(body: Any) -> str | None:
    err = _error_obj(body)
    reason = err.get("reason") or (body.get("reason") if isinstance(body, dict) else None)
    return str(reason) if reason else None


def _message(body: Any) -> str:
    msg = _error_obj(body).get("message")
    if msg is None and isinstance(body, dict):
        msg = body.get("message") or (body.get("error") if isinstance(body.get("error"), str) else None)
    return str(msg)[:200] if msg else ""
