"""Who may see the dashboard: an optional password, and a warning when it is exposed without one.

The server binds to 127.0.0.1 by default (``.streamlit/config.toml``). Bound anywhere
else, anyone who can reach the port sees capacity and cost figures, so a password
from ``HEADROOM_DASHBOARD_PASSWORD`` gates every page, compared in constant time;
the secret itself is never rendered or stored in session state.
"""

from __future__ import annotations

import hmac
import ipaddress

import streamlit as st

from scaling.settings import Secret

__all__ = ["exposure_warning", "gate", "is_loopback", "password_matches"]

_SESSION_KEY = "headroom_authenticated"


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


def gate(secret: Secret | None) -> bool:
    """Show a login form until the session has given the password; True once allowed in.

    Call before any page renders and stop the script when it returns False.
    """
    if secret is None or st.session_state.get(_SESSION_KEY):
        return True
    st.title("Headroom")
    with st.form("login", clear_on_submit=True):
        given = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        if password_matches(given, secret):
            st.session_state[_SESSION_KEY] = True
            st.rerun()
        st.error("Wrong password.")
    return False
