"""Headroom's error tree.

    ScalingError
    ├── ConfigurationError      a setting or CLI argument is wrong; names the variable
    ├── StoreError              the state store (SQLite, PostgreSQL, Redis) failed
    ├── RateLimited             a limiter could not admit the call within its wait budget
    ├── CircuitOpen             the upstream's breaker is open
    └── UpstreamError           an upstream answered badly
        ├── Throttled           429 / Last.fm error 29, after retries
        ├── QuotaExhausted      OpenAI insufficient_quota, Spotify QUOTA_EXCEEDED: never retried
        ├── TransientError      502/503/504, timeouts, connection errors
        ├── PermanentError      other 4xx, Last.fm errors 6/10/26
        └── MalformedResponse   a body that is not what the API documents

Driver errors (redis, psycopg, sqlite3, httpx) are translated at the boundary with
``raise ... from exc`` so callers catch one tree.
"""

from __future__ import annotations

__all__ = [
    "CircuitOpen",
    "ConfigurationError",
    "MalformedResponse",
    "PermanentError",
    "QuotaExhausted",
    "RateLimited",
    "ScalingError",
    "StoreError",
    "Throttled",
    "TransientError",
    "UpstreamError",
]


class ScalingError(Exception):
    """Base of every error Headroom raises on purpose."""


class ConfigurationError(ScalingError):
    """A setting is missing or malformed.

    Attributes:
        variable: the environment variable or option at fault, if known.
    """

    def __init__(self, message: str, *, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


class StoreError(ScalingError):
    """The state store could not complete an operation.

    Attributes:
        backend: "sqlite", "postgresql", "redis" or "memory".
        original: the driver's exception.
    """

    def __init__(self, message: str, *, backend: str, original: BaseException | None = None) -> None:
        super().__init__(message)
        self.backend = backend
        self.original = original


class RateLimited(ScalingError):
    """A limiter would have to wait longer than the caller's budget.

    Attributes:
        key: the limiter key.
        retry_after: seconds until the call could be admitted.
        cooldown: True when an upstream 429 cooldown is the cause.
    """

    def __init__(self, key: str, retry_after: float, *, cooldown: bool = False) -> None:
        why = "in upstream cooldown" if cooldown else "over its rate"
        super().__init__(f"{key} is {why}; retry in {retry_after:.2f}s")
        self.key = key
        self.retry_after = retry_after
        self.cooldown = cooldown


class CircuitOpen(ScalingError):
    """The breaker for an upstream is open; the call was not made.

    Attributes:
        upstream: the breaker's name.
        retry_after: seconds until a probe is allowed.
    """

    def __init__(self, upstream: str, retry_after: float) -> None:
        super().__init__(f"circuit for {upstream} is open; probe in {retry_after:.1f}s")
        self.upstream = upstream
        self.retry_after = retry_after


class UpstreamError(ScalingError):
    """An upstream call failed.

    Attributes:
        upstream: "spotify", "lastfm", "openai", "perplexity" or "songlink".
        endpoint: the path called, without query string or secrets.
        status: the HTTP status, if there was a response.
    """

    def __init__(self, message: str, *, upstream: str, endpoint: str = "", status: int | None = None) -> None:
        where = f"{upstream} {endpoint}".strip()
        super().__init__(f"{where}: {message}")
        self.upstream = upstream
        self.endpoint = endpoint
        self.status = status


class Throttled(UpstreamError):
    """The upstream said slow down (429, Last.fm 29) and retries ran out.

    Attributes:
        retry_after: the parsed Retry-After in seconds, if any.
    """

    def __init__(self, message: str, *, upstream: str, endpoint: str = "", status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message, upstream=upstream, endpoint=endpoint, status=status)
        self.retry_after = retry_after


class QuotaExhausted(UpstreamError):
    """The account is out of quota or money; retrying cannot help."""


class TransientError(UpstreamError):
    """A failure that may pass: 5xx, timeouts, connection resets."""


class PermanentError(UpstreamError):
    """A failure that will not pass by retrying: bad request, bad key, suspended."""


class MalformedResponse(UpstreamError):
    """The body is not what the upstream documents (bad JSON, missing fields, truncated)."""
