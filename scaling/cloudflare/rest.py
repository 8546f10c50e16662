"""The REST v4 client: GET through Headroom's fetch wrapper, the envelope checked.

Calls go through `scaling.fetch.Fetcher` on the ``cloudflare_rest`` upstream
(1,200 / 5 min). Going over that blocks every call for 5 minutes with a 429 and
``retry-after``; the fetch wrapper turns it into the limiter's shared cooldown, so
every collector replica stops sending until it ends, and fails fast instead of
queueing into it. An envelope with ``success: false`` is a failure even under
HTTP 200.
"""

from __future__ import annotations

from collections.abc import Mapping

from scaling.cloudflare.errors import CloudflareError, Problem
from scaling.errors import PermanentError, Throttled, TransientError, UpstreamError
from scaling.fetch import Fetcher
from scaling.settings import Secret

__all__ = ["RestClient"]


class RestClient:
    """``GET {base_url}{path}`` returning the envelope's ``result``.

    Args:
        fetcher: a `Fetcher` for the ``cloudflare_rest`` upstream.
        base_url: ``https://api.cloudflare.com/client/v4`` or the sandbox's.
        token: the API token.
        budget_s: the longest a call may take, waits included.
    """

    def __init__(self, fetcher: Fetcher, base_url: str, token: Secret, *, budget_s: float = 20.0) -> None:
        self.fetcher = fetcher
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.budget_s = budget_s

    async def get(self, path: str, *, params: Mapping[str, str] | None = None, endpoint: str = "",
                  permission: str = "") -> object:
        """The ``result`` of a successful envelope.

        Args:
            path: e.g. ``/accounts/{id}/d1/database/{db}``.
            params: query parameters.
            endpoint: a secret-free name for errors (ids replaced).
            permission: the token permission the endpoint needs, named in a 403's message.

        Raises:
            CloudflareError: FORBIDDEN (naming ``permission``), AUTH, THROTTLED (the 5-minute
                block), TRANSIENT, MALFORMED or OTHER.
            RateLimited: the shared cooldown (another replica's 429) outlasts the budget.
        """
        name = endpoint or path
        headers = {"Authorization": f"Bearer {self._token.reveal()}"}
        try:
            result = await self.fetcher.request("GET", self.base_url + path, endpoint=name, params=dict(params or {}),
                                                headers=headers, budget_s=self.budget_s)
        except Throttled as exc:
            raise CloudflareError(f"Cloudflare REST blocked ({exc}); every replica waits {exc.retry_after:.0f}s",
                                  problem=Problem.THROTTLED, upstream="cloudflare_rest", endpoint=name,
                                  status=429) from None
        except PermanentError as exc:
            raise _permanent(exc, name, permission) from None
        except TransientError as exc:
            raise CloudflareError(str(exc), problem=Problem.TRANSIENT, upstream="cloudflare_rest", endpoint=name,
                                  status=exc.status) from None
        except UpstreamError as exc:
            raise CloudflareError(str(exc), problem=Problem.OTHER, upstream="cloudflare_rest", endpoint=name,
                                  status=exc.status) from None
        body = result.body
        if not isinstance(body, dict) or "success" not in body:
            raise CloudflareError(f"Cloudflare REST {name}: not a v4 envelope", problem=Problem.MALFORMED,
                                  upstream="cloudflare_rest", endpoint=name, status=result.status)
        if body.get("success") is not True:
            messages = _messages(body)
            forbidden = any(word in m.lower() for m in messages
                            for word in ("authentication", "permission", "not authorized"))
            problem = Problem.FORBIDDEN if forbidden else Problem.OTHER
            raise CloudflareError(_forbidden_text(name, permission) if forbidden
                                  else f"Cloudflare REST {name}: {'; '.join(messages)[:300] or 'success: false'}",
                                  problem=problem, upstream="cloudflare_rest", endpoint=name, status=result.status,
                                  messages=messages, permission=permission if forbidden else None)
        return body.get("result")


def _permanent(exc: PermanentError, name: str, permission: str) -> CloudflareError:
    if exc.status == 401:
        return CloudflareError(f"Cloudflare rejected the API token ({name}): check CLOUDFLARE_API_TOKEN",
                               problem=Problem.AUTH, upstream="cloudflare_rest", endpoint=name, status=401)
    if exc.status == 403:
        return CloudflareError(_forbidden_text(name, permission), problem=Problem.FORBIDDEN,
                               upstream="cloudflare_rest", endpoint=name, status=403, permission=permission or None)
    return CloudflareError(str(exc), problem=Problem.OTHER, upstream="cloudflare_rest", endpoint=name,
                           status=exc.status)


def _forbidden_text(name: str, permission: str) -> str:
    need = f"the \"{permission}\" permission" if permission else "a permission"
    return f"the Cloudflare API token lacks {need} ({name}); add it to the token to collect this"


def _messages(body: dict[str, object]) -> list[str]:
    errors = body.get("errors")
    if not isinstance(errors, list):
        return []
    return [f"{e.get('code', '')} {e.get('message', '')}".strip() if isinstance(e, dict) else str(e) for e in errors]
