"""A single-flight leader's outcome, as followers in other processes read it.

When the leader stores a value, followers simply find it. When it stores nothing
(the fetch failed, found nothing, or the family is not cached) it leaves a short
note under ``cachedone:…:{flight}`` so that the followers of *that* flight get the
same answer (the same error class, message, upstream and status) instead of each
calling the upstream again. Later lookups do not read notes: that would be
negative caching.
"""

from __future__ import annotations

import json
from typing import Any

from scaling import errors

__all__ = ["describe_error", "encode_outcome", "rebuild_error"]

_UPSTREAM_ERRORS: dict[str, type[errors.UpstreamError]] = {
    cls.__name__: cls for cls in (errors.UpstreamError, errors.Throttled, errors.QuotaExhausted,
                                  errors.TransientError, errors.PermanentError, errors.MalformedResponse)
}


def describe_error(exc: BaseException) -> dict[str, Any]:
    """A JSON-able description of an error a fetch raised."""
    desc: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, errors.UpstreamError):
        # The message already carries "upstream endpoint: "; keep the bare reason to rebuild it.
        prefix = f"{exc.upstream} {exc.endpoint}".strip() + ": "
        reason = str(exc)[len(prefix):] if str(exc).startswith(prefix) else str(exc)
        desc |= {"message": reason, "upstream": exc.upstream, "endpoint": exc.endpoint, "status": exc.status}
        if isinstance(exc, errors.Throttled):
            desc["retry_after"] = exc.retry_after
    elif isinstance(exc, errors.RateLimited):
        desc |= {"key": exc.key, "retry_after": exc.retry_after, "cooldown": exc.cooldown}
    elif isinstance(exc, errors.CircuitOpen):
        desc |= {"upstream": exc.upstream, "retry_after": exc.retry_after}
    return desc


def rebuild_error(desc: dict[str, Any]) -> BaseException | None:
    """The error a description stands for, or None if it cannot be rebuilt faithfully."""
    kind = desc.get("type")
    try:
        if kind in _UPSTREAM_ERRORS:
            cls = _UPSTREAM_ERRORS[kind]
            common = {"upstream": desc["upstream"], "endpoint": desc.get("endpoint", ""), "status": desc.get("status")}
            if cls is errors.Throttled:
                return errors.Throttled(desc["message"], retry_after=desc.get("retry_after"), **common)
            return cls(desc["message"], **common)
        if kind == "RateLimited":
            return errors.RateLimited(desc["key"], float(desc["retry_after"]), cooldown=bool(desc.get("cooldown")))
        if kind == "CircuitOpen":
            return errors.CircuitOpen(desc["upstream"], float(desc["retry_after"]))
    except (KeyError, TypeError, ValueError):
        return None
    return None


def encode_outcome(*, value: Any = None, error: BaseException | None = None) -> bytes:
    if error is not None:
        return json.dumps({"error": describe_error(error)}).encode()
    return json.dumps({"value": value}, separators=(",", ":")).encode()
