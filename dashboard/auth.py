"""Who may see the dashboard: an optional password, and a warning when it is exposed without one.

The server binds to 127.0.0.1 by default (``.streamlit/config.toml``). Bound anywhere
else, anyone who can reach the port sees capacity and cost figures, so a password
from ``HEADROOM_DASHBOARD_PASSWORD`` gates every page, compared in constant time;
the secret itself is never rendered or stored in session state.

Wrong passwords are throttled (`LoginThrottle`): after `FREE_ATTEMPTS` failures a
session must wait, doubling each time up to `MAX_DELAY_S`, and across all sessions
at most `GLOBAL_FAILURES` per `GLOBAL_WINDOW_S` are accepted (opening a new session
per guess gains nothing). Attempts are refused while throttled, not slept on, so a
guesser holds no server thread.
"""

from __future__ import annotations

import hmac
import ipaddress
import threading
from collections import deque
from collections.abc import Callable

import streamlit as st

from scaling.clock import SystemClock
from scaling.settings import Secret

__all__ = ["LoginThrottle", "exposure_warning", "gate", "is_loopback", "password_matches"]

_SESSION_KEY = "headroom_authenticated"
_CLIENT_KEY = "headroom_login_client"
#: Wrong passwords a client may give before it has to wait.
FREE_ATTEMPTS = 5
#: The longest wait one client is given (the delay doubles per failure up to this).
MAX_DELAY_S = 300.0
#: Wrong passwords accepted from all clients together per window.
GLOBAL_FAILURES = 30
GLOBAL_WINDOW_S = 60.0


class LoginThrottle:
    """Wrong-password accounting per client plus a global cap (thread-safe: shared by all sessions).

    Args:
        clock: seconds, monotonic (injected so tests advance time instead of sleeping).
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, tuple[int, float]] = {}  # client -> (failures, earliest next attempt)
        self._recent: deque[float] = deque()  # times of recent failures, all clients

    def wait_s(self, client: str) -> float:
        """Seconds before ``client`` may try again (0: now)."""
        now = self._clock()
        with self._lock:
            while self._recent and self._recent[0] <= now - GLOBAL_WINDOW_S:
                self._recent.popleft()
            waits = [0.0]
            if len(self._recent) >= GLOBAL_FAILURES:
                waits.append(self._recent[0] + GLOBAL_WINDOW_S - now)
            _, earliest = self._failures.get(client, (0, now))
            waits.append(earliest - now)
            return max(waits)

    def failed(self, client: str) -> None:
        """Record a wrong password from ``client``."""
        now = self._clock()
        with self._lock:
            count = self._failures.get(client, (0, now))[0] + 1
            delay = 0.0 if count < FREE_ATTEMPTS else min(MAX_DELAY_S, 2.0 ** (count - FREE_ATTEMPTS))
            self._failures[client] = (count, now + delay)
            self._recent.append(now)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


@st.cache_resource
def _shared_throttle() -> LoginThrottle:
    return LoginThrottle(SystemClock().now)


def _client() -> str:
    """This browser session's key (a new session per guess still meets the global cap)."""
    if _CLIENT_KEY not in st.session_state:
        st.session_state[_CLIENT_KEY] = f"session-{id(st.session_state)}"
    return str(st.session_state[_CLIENT_KEY])


def password_matches(given: str, secret: Secret | None) -> bool:
    """True when no password is configured, or ``given`` equals it (constant-time)."""
    if secret is None:
        return True
    return hmac.compare_digest(given.encode("utf-8"), secret.reveal().encode("utf-8"))


def is_loopback(address: str | None) -> bool:
    """Whether a server bound to ``address`` is reachable only from this machine.

    An empty address means every interface (Streamlit's default when unset).
    """
    host = (address or "").strip().strip("[]")
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname: assume it resolves to something public


def exposure_warning(address: str | None, secret: Secret | None) -> str | None:
    """The banner text when the dashboard is reachable from elsewhere without a password."""
    if secret is not None or is_loopback(address):
        return None
    where = address or "every network interface"
    return (f"This dashboard is served on {where} without a password: anyone who can reach the port sees "
            "capacity and cost figures. Set HEADROOM_DASHBOARD_PASSWORD, or bind to 127.0.0.1 "
            "(`--server.address 127.0.0.1`).")


def gate(secret: Secret | None, throttle: LoginThrottle | None = None) -> bool:
    """Show a login form until the session has given the password; True once allowed in.

    Call before any page renders and stop the script when it returns False.
    """
    if secret is None or st.session_state.get(_SESSION_KEY):
        return True
    throttle = throttle or _shared_throttle()
    client = _client()
    st.title("Headroom")
    with st.form("login", clear_on_submit=True):
        given = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        wait = throttle.wait_s(client)
        if wait > 0:
            st.error(f"Too many wrong passwords: try again in {wait:.0f} s.")
            return False
        if password_matches(given, secret):
            throttle.succeeded(client)
            st.session_state[_SESSION_KEY] = True
            st.rerun()
        throttle.failed(client)
        st.error("Wrong password.")
    return False
