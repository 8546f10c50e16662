"""Counters of what the sandbox served, per upstream and endpoint.

`StatsRecorder` is the sandbox's mutable tally; `SandboxStats` is the frozen
snapshot tests and load tests read (``sandbox.stats()``), also served as JSON by
``GET /_sandbox/stats``.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EndpointStats", "Outcome", "SandboxStats", "Served", "StatsRecorder"]


class Outcome(enum.StrEnum):
    """How one answer is counted."""

    OK = "ok"
    RATE_LIMITED = "rate_limited"  # 429s, and Last.fm error 29 whatever its HTTP status
    QUOTA = "quota"  # OpenAI insufficient_quota, Spotify QUOTA_EXCEEDED
    CLIENT_ERROR = "client_error"  # other 4xx and in-body errors (bad key, unknown user)
    SERVER_ERROR = "server_error"  # injected 5xx and timeouts
    MALFORMED = "malformed"  # a 2xx with a corrupted body


@dataclass(frozen=True, slots=True)
class Served:
    """One answer: when it was decided (after latency), its status and outcome.

    Attributes:
        time: clock time at which the sandbox decided (the time a limit saw the request).
        status: HTTP status sent.
        outcome: how it counts.
        key: the client key the limit was kept under, if any (never a secret: Spotify
            client ids, and for API keys only their first 8 characters).
        fault: the injected fault, if any: ``"5xx"``, ``"timeout"`` or a malformed kind.
    """

    time: float
    status: int
    outcome: Outcome
    key: str | None = None
    fault: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"time": self.time, "status": self.status, "outcome": self.outcome.value, "key": self.key,
                "fault": self.fault}


@dataclass(frozen=True, slots=True)
class EndpointStats:
    """Totals for one endpoint (or summed over several).

    Attributes:
        requests: requests received.
        ok: genuine successes.
        rate_limited: rate-limit answers (429s and Last.fm error 29 served with 200).
        quota: quota-exhausted answers.
        client_errors: other 4xx and in-body errors.
        server_errors: 5xx answers (all injected, including timeouts' 504).
        faults: injected faults of any kind (5xx, timeouts, malformed bodies).
        served: every answer in order.
    """

    requests: int = 0
    ok: int = 0
    rate_limited: int = 0
    quota: int = 0
    client_errors: int = 0
    server_errors: int = 0
    faults: int = 0
    served: tuple[Served, ...] = ()

    @classmethod
    def of(cls, served: Iterable[Served]) -> EndpointStats:
        """Totals computed from a list of answers."""
        items = tuple(sorted(served, key=lambda s: s.time))
        return cls.merge([cls._count(items)], items)

    @staticmethod
    def _count(items: Iterable[Served]) -> EndpointStats:
        count = dict.fromkeys(Outcome, 0)
        n = server = faults = 0
        for s in items:
            n += 1
            count[s.outcome] += 1
            server += s.status >= 500
            faults += s.fault is not None
        return EndpointStats(n, count[Outcome.OK], count[Outcome.RATE_LIMITED], count[Outcome.QUOTA],
                             count[Outcome.CLIENT_ERROR], server, faults)

    @classmethod
    def merge(cls, parts: Iterable[EndpointStats], served: tuple[Served, ...] | None = None) -> EndpointStats:
        """Counters summed over ``parts``; ``served`` merged by time unless given."""
        parts = list(parts)
        if served is None:
            served = tuple(sorted((s for p in parts for s in p.served), key=lambda s: s.time))
        return cls(requests=sum(p.requests for p in parts), ok=sum(p.ok for p in parts),
                   rate_limited=sum(p.rate_limited for p in parts), quota=sum(p.quota for p in parts),
                   client_errors=sum(p.client_errors for p in parts),
                   server_errors=sum(p.server_errors for p in parts), faults=sum(p.faults for p in parts),
                   served=served)

    def statuses(self) -> list[int]:
        return [s.status for s in self.served]

    def to_dict(self, *, with_served: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"requests": self.requests, "ok": self.ok, "rate_limited": self.rate_limited,
                               "quota": self.quota, "client_errors": self.client_errors,
                               "server_errors": self.server_errors, "faults": self.faults}
        if with_served:
            out["served"] = [s.to_dict() for s in self.served]
        return out


@dataclass(frozen=True, slots=True)
class SandboxStats:
    """A snapshot of every counter, keyed by (upstream, endpoint).

    Endpoint names: spotify ``token``, ``album``, ``albums``, ``search``; lastfm the
    ``method`` (``user.getrecenttracks``, ``user.getinfo``, or ``invalid``); openai
    ``chat.completions``, ``responses``; perplexity ``chat.completions``; songlink ``links``.
    """

    endpoints: Mapping[tuple[str, str], EndpointStats] = field(default_factory=dict)

    def endpoint(self, upstream: str, endpoint: str) -> EndpointStats:
        """Totals for one endpoint (all zero if it was never called)."""
        return self.endpoints.get((upstream, endpoint), EndpointStats())

    def upstream(self, upstream: str) -> EndpointStats:
        """Totals over every endpoint of one upstream, ``served`` merged by time."""
        return EndpointStats.merge(e for (u, _), e in self.endpoints.items() if u == upstream)

    def total(self) -> EndpointStats:
        return EndpointStats.merge(self.endpoints.values())

    def to_dict(self, *, with_served: bool = True) -> dict[str, Any]:
        """``{upstream: {"total": {...}, "endpoints": {endpoint: {...}}}}``, JSON-ready."""
        out: dict[str, Any] = {}
        for (up, ep), stats in sorted(self.endpoints.items()):
            entry = out.setdefault(up, {"endpoints": {}})
            entry["endpoints"][ep] = stats.to_dict(with_served=with_served)
        for up in out:
            out[up]["total"] = self.upstream(up).to_dict(with_served=False)
        return out


class StatsRecorder:
    """The mutable tally behind `SandboxStats`.

    Args:
        served_log: answers kept per endpoint in ``served`` (the oldest are dropped
            beyond it, so a long soak cannot exhaust memory); counters stay exact.
    """

    def __init__(self, served_log: int = 200_000) -> None:
        self._served_log = served_log
        self._served: dict[tuple[str, str], deque[Served]] = {}
        self._counts: dict[tuple[str, str], list[int]] = {}

    def record(self, upstream: str, endpoint: str, served: Served) -> None:
        key = (upstream, endpoint)
        log = self._served.get(key)
        if log is None:
            log = self._served[key] = deque(maxlen=self._served_log)
            self._counts[key] = [0] * 7
        log.append(served)
        c = self._counts[key]
        c[0] += 1
        slot = _SLOT.get(served.outcome)
        if slot is not None:
            c[slot] += 1
        c[5] += served.status >= 500
        c[6] += served.fault is not None

    def snapshot(self) -> SandboxStats:
        out = {}
        for key, log in self._served.items():
            n, ok, limited, quota, client, server, faults = self._counts[key]
            out[key] = EndpointStats(n, ok, limited, quota, client, server, faults, tuple(log))
        return SandboxStats(out)

    def clear(self) -> None:
        self._served.clear()
        self._counts.clear()


# Where each outcome is counted in a StatsRecorder row; malformed and server errors
# have no slot of their own (columns 5 and 6 count 5xx statuses and faults).
_SLOT = {Outcome.OK: 1, Outcome.RATE_LIMITED: 2, Outcome.QUOTA: 3, Outcome.CLIENT_ERROR: 4}
