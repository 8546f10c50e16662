"""Webhook delivery against a real local receiver: Slack and Discord fields, retries, refusals, outages."""

from __future__ import annotations

import socket

from collectors.webhook import DISCORD_MAX_CHARS, Webhook, chat_payload
from tests.collectors.receiver import receiver


def test_payload_serves_slack_and_discord() -> None:
    """One body: `text` for Slack, `content` for Discord, cut to Discord's 2,000 characters."""
    long = "x" * 2500
    body = chat_payload(long)
    assert body["text"] == long and len(body["content"]) == DISCORD_MAX_CHARS


def test_delivers_json_to_the_receiver() -> None:
    """A 200 answer is a delivery on the first attempt."""
    with receiver() as r:
        hook = Webhook(r.url)
        d = hook.send(chat_payload("spotify at 85%"))
        hook.close()
    assert (d.ok, d.status, d.attempts) == (True, 200, 1)
    assert r.bodies == [{"text": "spotify at 85%", "content": "spotify at 85%"}]


def test_retries_server_errors_and_429_then_delivers() -> None:
    """503 and 429 are retried (with backoff, zero in tests); the third attempt gets through."""
    with receiver() as r:
        r.statuses = [503, 429]
        d = Webhook(r.url).send(chat_payload("hi"))
    assert (d.ok, d.attempts) == (True, 3) and len(r.bodies) == 3


def test_a_4xx_is_final_and_not_retried() -> None:
    """A 404 (a deleted webhook) will not get better by resending: one attempt, not delivered."""
    with receiver() as r:
        r.statuses = [404]
        d = Webhook(r.url).send(chat_payload("hi"))
    assert (d.ok, d.status, d.attempts) == (False, 404, 1) and "refused" in (d.error or "")


def test_persistent_failure_gives_up_after_the_attempts() -> None:
    """Every attempt answered 500: not delivered, with the status in the reason, no exception."""
    with receiver() as r:
        r.statuses = [500, 500, 500, 500]
        d = Webhook(r.url).send(chat_payload("hi"))
    assert (d.ok, d.status, d.attempts) == (False, 500, 3)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_webhook_is_not_delivered_and_does_not_raise() -> None:
    """Nothing listening: every attempt fails to connect and the result says so."""
    d = Webhook(f"http://127.0.0.1:{_closed_port()}/hook").send(chat_payload("hi"))
    assert not d.ok and d.status is None and d.attempts == 3 and "unreachable" in (d.error or "")


def test_repr_does_not_show_the_secret_path() -> None:
    """A webhook URL is a credential: only the host appears in logs."""
    assert repr(Webhook("https://hooks.slack.com/services/T000/B000/XXXX")) == "Webhook('hooks.slack.com')"
