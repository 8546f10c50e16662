"""Alert delivery to a chat webhook: one JSON body that Slack and Discord both accept.

Slack's incoming webhooks read ``text``; Discord's read ``content`` (at most 2,000
characters); each ignores the other's field. A POST is retried with exponential
backoff and jitter (stamina) on connection errors, timeouts, 429 (honouring a
short ``Retry-After``) and 5xx; any other 4xx is final, since resending the same
body cannot fix it. Nothing here raises: the result says whether it went out.

`deliver_pending` sends the notices of alert episodes (`collectors.alerts`) not yet
delivered, oldest first, and marks each delivered for the state it described.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import stamina
from sqlalchemy import Engine, and_, or_, select, update

from collectors.alerts import duration_text
from scaling.clock import Clock, SystemClock
from scaling.metrics import models as m
from scaling.metrics.records import DEFAULT_SOURCE
from scaling.retry_after import parse_retry_after

__all__ = ["DISCORD_MAX_CHARS", "Delivery", "Notifier", "Webhook", "chat_payload", "deliver_pending", "notice_text"]

log = logging.getLogger("headroom.alerts")

DISCORD_MAX_CHARS = 2000
#: The longest Retry-After honoured between attempts; longer ones wait for the next alerts run.
MAX_RETRY_AFTER_S = 10.0
#: Undelivered notices older than this are given up on.
DELIVERY_MAX_AGE_S = 86400.0


@dataclass(frozen=True, slots=True)
class Delivery:
    """How one notification went.

    Attributes:
        ok: the webhook answered 2xx.
        status: the last HTTP status (None if no answer came).
        attempts: POSTs made.
        error: why it did not go out (None when ok).
    """

    ok: bool
    status: int | None
    attempts: int
    error: str | None = None


def chat_payload(text: str) -> dict[str, str]:
    """The JSON body: ``text`` for Slack, ``content`` (cut to Discord's limit) for Discord."""
    content = text if len(text) <= DISCORD_MAX_CHARS else text[:DISCORD_MAX_CHARS - 1] + "…"
    return {"text": text, "content": content}


class _RetryableStatus(Exception):
    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


def _retry_on(exc: Exception) -> bool | float:
    if isinstance(exc, _RetryableStatus):
        if exc.retry_after is not None and 0 <= exc.retry_after <= MAX_RETRY_AFTER_S:
            return exc.retry_after
        return True
    return isinstance(exc, httpx.TransportError)


class Webhook:
    """POSTs notifications to one webhook URL.

    Args:
        url: the Slack or Discord webhook (http or https).
        client: the HTTP client (default: one of our own, closed by `close`).
        attempts: POSTs per notification at most.
        timeout_s: per POST.
        total_s: all attempts of one notification together, waits included.
        wait_initial_s, wait_max_s: the backoff's first and largest wait.
        clock: the process's clock (reads an HTTP-date Retry-After against it).
    """

    def __init__(self, url: str, *, client: httpx.Client | None = None, attempts: int = 4, timeout_s: float = 5.0,
                 total_s: float = 20.0, wait_initial_s: float = 0.5, wait_max_s: float = 5.0,
                 clock: Clock | None = None) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.url = url
        self._own_client = client is None
        self._client = client or httpx.Client(timeout=httpx.Timeout(timeout_s), follow_redirects=False)
        self.attempts = attempts
        self.total_s = total_s
        self.wait_initial_s = wait_initial_s
        self.wait_max_s = wait_max_s
        self.clock: Clock = clock or SystemClock()

    def send(self, payload: Mapping[str, Any]) -> Delivery:
        """POST ``payload`` as JSON, retrying transient failures; never raises."""
        tries = 0
        status: int | None = None
        try:
            for attempt in stamina.retry_context(on=_retry_on, attempts=self.attempts, timeout=self.total_s,
                                                 wait_initial=self.wait_initial_s, wait_max=self.wait_max_s):
                with attempt:
                    tries += 1
                    response = self._client.post(self.url, json=dict(payload))
                    status = response.status_code
                    if status == 429 or status >= 500:
                        raise _RetryableStatus(status, parse_retry_after(response.headers.get("retry-after"),
                                                                                 now=self.clock.now()))
            if status is not None and not 200 <= status < 300:
                return Delivery(False, status, tries, f"the webhook refused it: HTTP {status}")
            return Delivery(True, status, tries)
        except _RetryableStatus as exc:
            return Delivery(False, exc.status, tries, f"the webhook kept failing: HTTP {exc.status}")
        except httpx.HTTPError as exc:
            return Delivery(False, status, tries, f"the webhook is unreachable: {type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001 - a notifier must not take the alerts job down
            log.warning("alert webhook: unexpected error: %s", exc)
            return Delivery(False, status, tries, f"{type(exc).__name__}: {exc}")

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    def __repr__(self) -> str:
        # Webhook URLs are credentials (anyone holding one can post): show the host only.
        return f"Webhook({httpx.URL(self.url).host!r})"


class Notifier(Protocol):
    """Sends one chat notification (`collectors.webhook.Webhook` is one)."""

    def send(self, payload: Mapping[str, Any]) -> Delivery: ...


def notice_text(row: Any) -> str:
    """The chat message for an alert row's current state."""
    if row.state == "firing":
        icon = ":rotating_light:" if row.severity == "critical" else ":warning:"
        return f"{icon} [{row.severity.upper()}] {row.rule}: {row.message}"
    lasted = duration_text(max(0.0, (row.resolved_at or row.started_at) - row.started_at))
    return f":white_check_mark: [RESOLVED] {row.rule}: {row.message} (lasted {lasted})"


def deliver_pending(engine: Engine, notifier: Notifier | None, *, now: float, source: str = DEFAULT_SOURCE,
                    max_age_s: float = DELIVERY_MAX_AGE_S, limit: int = 20) -> dict[str, Any]:
    """Send the notices not yet delivered, oldest first; stop at the first failure (retried next run).

    Returns:
        ``sent``, ``failed``, ``waiting`` counts and the last ``error``.
    """
    a = m.ALERT_EVENTS
    recent = or_(a.c.started_at >= now - max_age_s, a.c.resolved_at >= now - max_age_s)
    with engine.connect() as conn:
        rows = conn.execute(select(a).where(a.c.delivered.is_(False), a.c.source == source, recent)
                            .order_by(a.c.id).limit(limit)).all()
    if notifier is None:
        return {"sent": 0, "failed": 0, "waiting": len(rows), "error": "no webhook configured" if rows else None}
    sent = 0
    for row in rows:
        delivery = notifier.send(chat_payload(notice_text(row)))
        if not delivery.ok:
            log.warning("alert %s/%s: notice not delivered after %d attempt(s): %s", row.rule, row.subject,
                        delivery.attempts, delivery.error)
            return {"sent": sent, "failed": 1, "waiting": len(rows) - sent, "error": delivery.error}
        with engine.begin() as conn:
            # Only for the state the notice described: a resolution in between needs its own.
            conn.execute(update(a).where(and_(a.c.id == row.id, a.c.state == row.state)).values(delivered=True))
        sent += 1
    return {"sent": sent, "failed": 0, "waiting": 0, "error": None}
