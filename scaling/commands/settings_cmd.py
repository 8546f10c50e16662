"""``python -m scaling settings``: show the effective configuration, secrets masked."""

from __future__ import annotations

import argparse

from scaling.commands._output import print_json
from scaling.settings import Settings

NAME = "settings"
HELP = "show the effective configuration (API keys are shown only as set/unset)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def describe(settings: Settings) -> dict[str, object]:
    """The configuration as plain data, with every secret reduced to set/unset."""
    ups = {}
    for name, up in settings.upstreams.items():
        ups[name] = {"base_url": up.base_url, "limit": str(up.requests),
                     "token_limit": str(up.tokens) if up.tokens else None, "timeout_s": up.timeout,
                     "outage_policy": up.outage_policy, "sandbox": up.sandbox}
    keys = {k: getattr(settings, k) is not None for k in (
        "spotify_client_id", "spotify_client_secret", "lastfm_api_key", "openai_api_key", "perplexity_api_key",
        "dashboard_password")}
    return {"app_db_url": _mask_url(settings.app_db_url), "state_url": _mask_url(settings.state_url),
            "metrics_db_url": _mask_url(settings.metrics_db_url), "sandbox_url": settings.sandbox_url,
            "upstreams": ups, "keys_set": keys, "cron_deadline_s": settings.cron_deadline_s}


def _mask_url(url: str) -> str:
    """Hide a password embedded in a store URL."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url


def run(args: argparse.Namespace, settings: Settings) -> int:
    info = describe(settings)
    if args.json:
        print_json(info)
        return 0
    for key in ("app_db_url", "state_url", "metrics_db_url", "sandbox_url"):
        print(f"{key:16} {info[key]}")
    for name, up in info["upstreams"].items():  # type: ignore[attr-defined]
        print(f"{name:16} {up['base_url']}  limit {up['limit']}"
              + (f", tokens {up['token_limit']}" if up["token_limit"] else "")
              + ("  (sandbox)" if up["sandbox"] else ""))
    print("keys set        " + ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in info["keys_set"].items()))  # type: ignore[attr-defined]
    return 0
