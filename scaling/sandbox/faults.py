"""Seeded fault injection: latency, 5xx, hangs and corrupted bodies.

Each upstream draws from its own `random.Random`, seeded from the sandbox seed and
the upstream's name, and every request takes the same number of draws whether or
not a fault fires, so changing one rate does not reshuffle the others.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from scaling.sandbox.config import Faults

__all__ = ["Draw", "FaultInjector", "corrupt", "gateway_page"]

_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


@dataclass(frozen=True, slots=True)
class Draw:
    """The faults one request gets.

    Attributes:
        latency: seconds to wait before the request is seen.
        kind: None, ``"5xx"``, ``"timeout"`` or ``"malformed"``.
        status: the 5xx status for kind ``"5xx"``.
        malformed: the corruption for kind ``"malformed"``.
        pick: a number in [0, 1) that chooses what a corruption removes or cuts.
    """

    latency: float
    kind: str | None = None
    status: int = 503
    malformed: str = "truncated"
    pick: float = 0.0


class FaultInjector:
    """Draws faults for one upstream.

    Args:
        faults: the rates and ranges.
        seed: the sandbox seed.
        upstream: the upstream's name (each gets an independent stream).
    """

    def __init__(self, faults: Faults, seed: int, upstream: str) -> None:
        self.faults = faults
        self._seed = f"{seed}:{upstream}:faults"
        self._rng = random.Random(self._seed)

    def reset(self) -> None:
        self._rng = random.Random(self._seed)

    def draw(self) -> Draw:
        f, r = self.faults, self._rng
        lo, hi = f.latency
        latency = r.uniform(lo, hi) if hi > 0 else 0.0
        roll, which, pick = r.random(), r.random(), r.random()
        if roll < f.error_rate:
            return Draw(latency, "5xx", status=f.error_statuses[int(which * len(f.error_statuses))], pick=pick)
        roll -= f.error_rate
        if roll < f.timeout_rate:
            return Draw(latency, "timeout", status=504, pick=pick)
        roll -= f.timeout_rate
        if roll < f.malformed_rate:
            kinds = f.malformed_kinds
            return Draw(latency, "malformed", malformed=kinds[int(which * len(kinds))], pick=pick)
        return Draw(latency)


def gateway_page(status: int) -> bytes:
    """The HTML page a load balancer sends for a 5xx: not JSON, as in real outages."""
    reason = _REASONS.get(status, "Server Error")
    return (f"<html><head><title>{status} {reason}</title></head><body><center><h1>{status} {reason}</h1>"
            "</center><hr><center>nginx</center></body></html>").encode()


def corrupt(body: Any, encoded: bytes, kind: str, pick: float) -> tuple[bytes, str]:
    """A corrupted version of a JSON body and the content type to send it with.

    Args:
        body: the JSON value.
        encoded: its serialised bytes.
        kind: ``truncated`` (cut mid-document), ``content_type`` (an HTML page with a
            200), or ``missing_fields`` (one documented field removed).
        pick: chooses the cut point or the field.
    """
    if kind == "truncated":
        cut = max(1, min(len(encoded) - 1, int(len(encoded) * (0.2 + 0.6 * pick))))
        return encoded[:cut], "application/json"
    if kind == "content_type":
        return ((b"<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
                 b"<body>Checking your browser before accessing the API.</body></html>"), "text/html; charset=utf-8")
    return json.dumps(_drop_field(body, pick), separators=(",", ":")).encode(), "application/json"


def _drop_field(body: Any, pick: float) -> Any:
    """A copy of ``body`` without one key: descend through single-key wrappers
    (``{"recenttracks": {...}}``) so the removal hits a field a client reads."""
    if not isinstance(body, dict) or not body:
        return body
    if len(body) == 1:
        (key, value), = body.items()
        inner = _drop_field(value, pick) if isinstance(value, dict) and len(value) > 1 else None
        return {key: inner} if inner is not None else {}
    keys = sorted(body)
    victim = keys[int(pick * len(keys))]
    return {k: v for k, v in body.items() if k != victim}
