"""Keep credentials out of log output: a logging filter that masks secret query parameters.

Libraries log request URLs (httpx at INFO: ``HTTP Request: GET https://…?api_key=…``),
and Last.fm takes its key as a query parameter, so ``-v`` would print it. The filter is
installed on the root logger's handlers wherever logging is configured (`install`), so
every record that reaches a handler is masked, whichever logger emitted it.
"""

from __future__ import annotations

import logging
import re

__all__ = ["SECRET_PARAMS", "RedactingFilter", "install", "redact"]

#: Query parameters whose values are credentials.
SECRET_PARAMS = ("api_key", "apikey", "key", "token", "access_token", "refresh_token", "secret", "client_secret",
                 "password", "sig", "signature", "session_key", "sk", "code")
_PARAM = re.compile(r"([?&;](?:" + "|".join(SECRET_PARAMS) + r")=)[^&;\s\"'#]+", re.IGNORECASE)
#: Basic-auth credentials in a URL (``scheme://user:password@host``).
_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@/\s]+@", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with secret query parameter values and URL passwords replaced by ``***``."""
    if "=" in text:
        text = _PARAM.sub(r"\1***", text)
    if "@" in text:
        text = _USERINFO.sub(r"\1***@", text)
    return text


class RedactingFilter(logging.Filter):
    """Masks secrets in each record's formatted message (and drops its args, now merged in)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record: leave it to the handler's own error path
            return True
        masked = redact(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        return True


def install(logger: logging.Logger | None = None) -> None:
    """Add the filter to every handler of ``logger`` (default: the root logger), once each."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
