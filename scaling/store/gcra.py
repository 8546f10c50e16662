"""The limiter's atomic step: GCRA with reservations, several rates at once, and a
shared cooldown. Pure functions over a small state; every store runs them under its
own lock or transaction, and Redis runs the same logic as a Lua script
(``lua/gcra.lua``, on a hash of the same fields), which the store contract tests
hold to this module.

Why GCRA with reservations: one timestamp per rate (the theoretical arrival time,
TAT) is O(1) state, and an admitted caller is handed the exact instant it may send,
so waiting callers never poll. A rate of ``limit`` per ``window`` with burst ``B``
gets an emission interval ``T = window / (limit - B + 1)``; a token bucket of
capacity B filling every T then admits at most ``B + window / T - 1 = limit`` units
in any rolling window ``(t - window, t]``, which is how Spotify counts.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace

__all__ = ["GcraDecision", "GcraRate", "GcraSnapshot", "GcraState", "acquire", "cooldown", "decode", "encode",
           "refund", "snapshot"]


@dataclass(frozen=True, slots=True)
class GcraRate:
    """One rate a call is charged against.

    Attributes:
        interval: emission interval T in seconds per unit.
        capacity: burst B in units (a call's cost may not exceed it).
        cost: units this call takes (1 for a request, tokens for a TPM limit).
        window: the rolling window the rate protects (for stats and key lifetime).
        limit: units allowed per window (for stats).
    """

    interval: float
    capacity: float
    cost: float
    window: float
    limit: float


@dataclass(frozen=True, slots=True)
class GcraDecision:
    """What an acquire decided.

    Attributes:
        admitted: the call holds a slot and may send at ``send_at``.
        wait: seconds from now until ``send_at`` (or until it could be admitted, when refused).
        send_at: the epoch second the slot starts.
        cooldown_until: the shared 429 cooldown in force (0 if none).
        used: units of the first rate used in the current rolling window, this call included.
    """

    admitted: bool
    wait: float
    send_at: float
    cooldown_until: float
    used: float = 0.0


@dataclass(frozen=True, slots=True)
class GcraSnapshot:
    """Headroom of one limiter key, for collectors.

    Attributes:
        used: estimated units of the first rate used in the last window.
        backlog: seconds of reservations queued ahead of a new caller.
        cooldown_until: the 429 cooldown's end (0 if none).
        throttled: calls that had to wait; wait_seconds: their total wait.
        rejected: calls refused because the wait exceeded their budget.
        upstream_429: 429s reported to this limiter.
    """

    used: float
    backlog: float
    cooldown_until: float
    throttled: int
    wait_seconds: float
    rejected: int
    upstream_429: int


@dataclass(slots=True)
class GcraState:
    """One limiter key's state; the steps below update it in place.

    Serialised as JSON under these short field names (what every SQL and memory store
    has always held; Redis keeps the same fields in a hash, ``t1..tN`` for ``tat``).

    Attributes:
        tat: theoretical arrival time per rate.
        cd: the shared 429 cooldown's end (0 if none).
        ws, wc, pc: stats buckets: this bucket's start, its count, the previous bucket's count.
        thr, wt, rej, n429: calls that waited, their total wait, refusals, 429s recorded.
    """

    tat: list[float] = field(default_factory=list)
    cd: float = 0.0
    ws: float = 0.0
    wc: float = 0.0
    pc: float = 0.0
    thr: int = 0
    wt: float = 0.0
    rej: int = 0
    n429: int = 0

    def copy(self) -> GcraState:
        return replace(self, tat=list(self.tat))


_FIELDS = {f.name for f in fields(GcraState)}


def decode(raw: bytes | None) -> GcraState:
    if not raw:
        return GcraState()
    data = json.loads(raw)
    if not isinstance(data, dict):
        return GcraState()
    known = {k: v for k, v in data.items() if k in _FIELDS}
    state = GcraState(**known)
    state.tat = [float(t) for t in state.tat]
    return state


def encode(state: GcraState) -> bytes:
    return json.dumps(asdict(state), separators=(",", ":")).encode()


def _roll(state: GcraState, t: float, window: float) -> None:
    """Keep two aligned stats buckets (this window and the last) for `used`. Calls are
    counted in the bucket of their slot, not of the moment they reserved it, so a
    queue of reservations does not read as a burst; buckets only ever move forward."""
    bucket = t - (t % window)
    if bucket > state.ws:
        state.pc = state.wc if bucket - state.ws == window else 0.0
        state.wc = 0.0
        state.ws = bucket


def acquire(state: GcraState, rates: list[GcraRate], now: float, max_wait: float) -> GcraDecision:
    """Reserve the earliest slot that satisfies every rate and the cooldown, if it
    starts within ``max_wait``; otherwise change nothing but the refusal count."""
    tats: list[float] = list(state.tat) + [0.0] * (len(rates) - len(state.tat))
    send_at = max(now, float(state.cd))
    for tat, rate in zip(tats, rates):
        send_at = max(send_at, max(tat, now) + (rate.cost - rate.capacity) * rate.interval)
    wait = send_at - now
    if wait > max_wait:
        state.rej += 1
        return GcraDecision(False, wait, send_at, float(state.cd))
    state.tat = [max(tat, send_at) + rate.cost * rate.interval for tat, rate in zip(tats, rates)]
    _roll(state, send_at, rates[0].window)
    state.wc += rates[0].cost
    if wait > 0:
        state.thr += 1
        state.wt += wait
    return GcraDecision(True, wait, send_at, float(state.cd), _used(state, send_at, rates[0].window))


def _used(state: GcraState, now: float, window: float) -> float:
    """Sliding estimate over two aligned buckets: last bucket's count weighted by overlap."""
    if now < state.ws:
        # Reservations already fill a later bucket; "now" sits in the one before it.
        return float(state.pc)
    return float(state.pc * max(0.0, 1.0 - (now - state.ws) / window) + state.wc)


def refund(state: GcraState, units: list[float], rates: list[GcraRate], now: float) -> None:
    """Give back units reserved but not used (e.g. max_tokens beyond actual usage);
    a negative amount charges units used beyond the reservation."""
    tats = list(state.tat)
    for i, (amount, rate) in enumerate(zip(units, rates)):
        if i < len(tats) and amount > 0:
            tats[i] = max(tats[i] - amount * rate.interval, now)
        elif i < len(tats) and amount < 0:
            tats[i] = max(tats[i], now) - amount * rate.interval
    state.tat = tats


def cooldown(state: GcraState, until: float, *, throttle: bool = True) -> None:
    """Record an upstream 429: nobody sends before ``until``, and pacing restarts
    from there rather than bursting the moment the ban lifts. ``throttle=False`` holds
    sends the same way without counting a 429 (a ban re-seeded after a store restart,
    or a handover between stores: the upstream said nothing new)."""
    state.cd = max(float(state.cd), until)
    state.tat = [max(t, until) for t in state.tat]
    if throttle:
        state.n429 += 1


def snapshot(state: GcraState, now: float, window: float) -> GcraSnapshot:
    _roll(state, now, window)
    used = _used(state, now, window)
    tats = state.tat or [0.0]
    cd = float(state.cd) if state.cd > now else 0.0
    return GcraSnapshot(used=used, backlog=max(0.0, max(tats) - now), cooldown_until=cd,
                        throttled=int(state.thr), wait_seconds=float(state.wt), rejected=int(state.rej),
                        upstream_429=int(state.n429))


def expiry(state: GcraState, rates_window: float, now: float) -> float:
    """When the key may be forgotten: after every reservation and the cooldown have
    passed, plus a window for the stats. Never a fixed TTL that forgets a long ban."""
    latest = max([now, float(state.cd), *state.tat])
    return latest + 2 * rates_window
