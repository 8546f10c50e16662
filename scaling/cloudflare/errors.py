"""What went wrong talking to Cloudflare, classified once (reference/cloudflare.md §1.3, §3).

GraphQL reports most failures as ``errors`` in the body, often under HTTP 200, and
one HTTP 429 can mean "budget spent, wait 5 minutes" or "this query is too
expensive, ask for less": the collector reacts differently to each, so the client
turns every failure into a `CloudflareError` with a `Problem`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from scaling.errors import UpstreamError

__all__ = ["CloudflareError", "Problem", "classify_messages"]


class Problem(enum.Enum):
    BUDGET = "budget"                # quota spent: stop GraphQL for this run, everyone waits 5 min
    TOO_EXPENSIVE = "too_expensive"  # "consumed excessive resources": smaller window
    TOO_MANY_NODES = "too_many_nodes"
    RANGE_TOO_LARGE = "range_too_large"  # a node limit: split the window
    TOO_OLD = "too_old"              # a node limit: start later
    NODE_LIMIT = "node_limit"        # page size or field count over the node's limit
    UNKNOWN_FIELD = "unknown_field"  # the schema lacks a field or dataset we asked for
    AUTH = "auth"                    # 401: the token is rejected
    FORBIDDEN = "forbidden"          # 403: the token lacks a permission
    MALFORMED = "malformed"          # our query or their body is not what the API documents
    TRANSIENT = "transient"          # 5xx, 503 "too many queries in progress", timeouts
    THROTTLED = "throttled"          # REST 429: the 5-minute block
    OTHER = "other"


class CloudflareError(UpstreamError):
    """A Cloudflare call failed.

    Attributes:
        problem: what kind of failure (decides retry, split or stop).
        messages: the API's own error messages (no secrets; they name fields and limits).
        permission: for FORBIDDEN, the token permission that is missing, if known.
    """

    def __init__(self, message: str, *, problem: Problem, upstream: str, endpoint: str = "",
                 status: int | None = None, messages: Sequence[str] = (), permission: str | None = None) -> None:
        super().__init__(message, upstream=upstream, endpoint=endpoint, status=status)
        self.problem = problem
        self.messages = tuple(messages)
        self.permission = permission


# Message prefixes from the errors page; matched case-insensitively, first match wins.
_PATTERNS: tuple[tuple[str, Problem], ...] = (
    ("rate limiter budget depleted", Problem.BUDGET),
    ("has exceeded its rate limit", Problem.BUDGET),
    ("query consumed excessive resources", Problem.TOO_EXPENSIVE),
    ("queries too many nodes", Problem.TOO_MANY_NODES),
    ("query time range is too large", Problem.RANGE_TOO_LARGE),
    ("cannot request data older than", Problem.TOO_OLD),
    ("limit must be positive number", Problem.NODE_LIMIT),
    ("number of fields can't be more than", Problem.NODE_LIMIT),
    ("unknown field", Problem.UNKNOWN_FIELD),
    ("cannot query field", Problem.UNKNOWN_FIELD),
    ("error parsing args", Problem.MALFORMED),
    ("scalar fields must have no selections", Problem.MALFORMED),
    ("object field must have selections", Problem.MALFORMED),
    ("not authorized for that account", Problem.FORBIDDEN),
    ("does not have access to the path", Problem.FORBIDDEN),
    ("unauthorized", Problem.AUTH),
    ("unable to execute query", Problem.TRANSIENT),
    ("too many queries in progress", Problem.TRANSIENT),
    ("internal server error", Problem.TRANSIENT),
)


def classify_messages(status: int, messages: Sequence[str], codes: Sequence[str] = ()) -> Problem:
    """The problem a GraphQL answer reports, from its status, error messages and extension codes."""
    if "budget" in codes:
        return Problem.BUDGET
    for message in messages:
        low = message.lower()
        for prefix, problem in _PATTERNS:
            if prefix in low:
                return problem
    if status == 401:
        return Problem.AUTH
    if status == 403:
        return Problem.FORBIDDEN
    if status >= 500:
        return Problem.TRANSIENT
    if status == 429:
        return Problem.BUDGET
    return Problem.OTHER
