"""Alert delivery to a chat webhook: one JSON body that Slack and Discord both accept.

Slack's incoming webhooks read ``text``; Discord's read ``content`` (at most 2,000
characters); each ignores the other's field. A POST is retried with exponential
backoff and jitter (stamina) on connection errors, timeouts, 429 (honouring a
short ``Retry-After``) and 5xx; any other 4xx is final, since resending the same
body cannot fix it. Nothing here raises: the result says whether it went out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import stamina

from scaling.retry_after import parse_retry_after

__all__ = ["DISCORD_MAX_CHARS", "Delivery", "Webhook", "chat_payload"]

log = logging.getLogger("headroom.alerts")

DISCORD_MAX_CHARS = 2000
#: The longest Retry-After honoured between attempts; longer ones wait for the next alerts run.
MAX_RETRY_AFTER_S = 10.0


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
    """

    def __init__(self, url: str, *, client: httpx.Client | None = None, attempts: int = 4, timeout_s: float = 5.0,
                 total_s: float = 20.0, wait_initial_s: float = 0.5, wait_max_s: float = 5.0) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.url = url
        self._own_client = client is None
        self._client = client or httpx.Client(timeout=httpx.Timeout(timeout_s), follow_redirects=False)
        self.attempts = attempts
        self.total_s = total_s
        self.wait_initial_s = wait_initial_s
        self.wait_max_s = wait_max_s

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
                                                                                 now=time.time()))
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
