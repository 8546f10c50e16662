"""``python -m scaling sandbox``: serve the simulated upstreams on a loopback port.

Point Headroom at it with ``HEADROOM_SANDBOX_URL=http://127.0.0.1:PORT`` (the
default is port 8765). ``--port 0`` picks a free port; the first line printed
names the URL either way.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import sys
from typing import NoReturn

from scaling.errors import ConfigurationError
from scaling.settings import UPSTREAMS, Settings

NAME = "sandbox"
HELP = "serve simulated Spotify, Last.fm, OpenAI, Perplexity and Songlink (limits and faults included)"
DEFAULT_PORT = 8765


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.error = _one_line_error  # type: ignore[method-assign]
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback only, see --allow-remote)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (0 picks a free one; default 8765)")
    parser.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host")
    parser.add_argument("--seed", type=int, default=0, help="seeds faults, data and the Last.fm population")
    parser.add_argument("--latency", default=None, help="latency per request, e.g. 0.15-0.4 (seconds) or 150-400ms")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered 502/503/504")
    parser.add_argument("--timeout-rate", type=float, default=0.0, help="share of requests that hang, then 504")
    parser.add_argument("--timeout-s", type=float, default=120.0, help="how long a hung request hangs (seconds)")
    parser.add_argument("--malformed-rate", type=float, default=0.0,
                        help="share of successes with a corrupted body (truncated, HTML, missing field)")
    parser.add_argument("--listeners", type=int, default=None, help="Last.fm population size (default 200)")
    parser.add_argument("--active-share", type=float, default=None,
                        help="share of listeners who scrobbled in the last 2 h (default 0.3)")
    parser.add_argument("--now-playing-share", type=float, default=None,
                        help="share of active listeners playing right now (default 0.25)")
    parser.add_argument("--lastfm-http200-share", type=float, default=None,
                        help="share of Last.fm error-29 answers sent with HTTP 200 instead of 429 (default 0.5)")
    for name, default in (("spotify", "180/30s"), ("lastfm", "5/1s"), ("openai", "500/60s"),
                          ("perplexity", "50/60s"), ("songlink", "10/60s")):
        parser.add_argument(f"--{name}-limit", default=None, metavar="N/WINDOW",
                            help=f"{name} requests per rolling window (default {default})")
    parser.add_argument("--openai-token-limit", default=None, metavar="N/WINDOW",
                        help="OpenAI tokens per rolling window (default 200000/60s)")
    parser.add_argument("--openai-token-quota", type=int, default=None,
                        help="billed OpenAI tokens before insufficient_quota (default unlimited)")
    parser.add_argument("--spotify-quota", default=None, metavar="N/WINDOW",
                        help="Spotify developer-account quota across all client ids (QUOTA_EXCEEDED)")
    parser.add_argument("--json", action="store_true", help="print the startup line as JSON")


def _one_line_error(message: str) -> NoReturn:
    """argparse's error, minus the usage block: one line naming what is wrong, exit 2."""
    print(f"error: sandbox: {message}", file=sys.stderr)
    raise SystemExit(2)


def _check_host(host: str, allow_remote: bool) -> None:
    if allow_remote:
        return
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        raise ConfigurationError(f"--host: cannot resolve {host!r}", variable="--host") from None
    if not all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos):
        raise ConfigurationError(f"--host: {host!r} is not a loopback address; the sandbox has no auth, "
                                 "so pass --allow-remote to serve it beyond this machine", variable="--host")


def _bind(host: str, port: int) -> socket.socket:
    if not 0 <= port <= 65535:
        raise ConfigurationError(f"--port: expected 0..65535, got {port}", variable="--port")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP (not 0) for asyncio to set TCP_NODELAY on accepted
    # connections; without it Nagle plus delayed ACKs add ~40 ms to every keep-alive call.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"--port: cannot listen on {host}:{port} ({exc.strerror}); try another --port",
                                 variable="--port") from None
    # Listening now (not when uvicorn starts) means a client that read our first line
    # can connect at once: it waits in the backlog instead of being refused.
    sock.listen(2048)
    return sock


def run(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from scaling.clock import SystemClock
    from scaling.sandbox import Sandbox, SandboxConfig

    config = SandboxConfig.from_options(
        seed=args.seed, latency=args.latency, error_rate=args.error_rate, timeout_rate=args.timeout_rate,
        timeout_s=args.timeout_s, malformed_rate=args.malformed_rate, listeners=args.listeners,
        active_share=args.active_share, now_playing_share=args.now_playing_share,
        lastfm_http200_share=args.lastfm_http200_share, spotify_limit=args.spotify_limit,
        spotify_quota=args.spotify_quota, lastfm_limit=args.lastfm_limit, openai_limit=args.openai_limit,
        openai_token_limit=args.openai_token_limit, openai_token_quota=args.openai_token_quota,
        perplexity_limit=args.perplexity_limit, songlink_limit=args.songlink_limit)
    _check_host(args.host, args.allow_remote)
    sock = _bind(args.host, args.port)
    port = sock.getsockname()[1]
    shown_host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{shown_host}:{port}"
    sandbox = Sandbox(config, SystemClock())
    limits = {name: str(config.upstream(name).requests) for name in UPSTREAMS}
    if args.json:
        print(json.dumps({"url": url, "seed": config.seed, "limits": limits,
                          "openai_tokens": str(config.openai.tokens), "listeners": config.lastfm.listeners}))
    else:
        print(f"sandbox listening on {url} (seed {config.seed})")
        print("limits   " + ", ".join(f"{k} {v}" for k, v in limits.items())
              + f", openai tokens {config.openai.tokens}")
        faults = config.spotify.faults
        print(f"faults   latency {faults.latency[0]:g}-{faults.latency[1]:g}s, 5xx {faults.error_rate:g}, "
              f"timeouts {faults.timeout_rate:g}, malformed {faults.malformed_rate:g}")
        if url != settings.sandbox_url:
            print(f"use it   HEADROOM_SANDBOX_URL={url}")
    sys.stdout.flush()
    server = uvicorn.Server(uvicorn.Config(sandbox.app, log_level="warning", access_log=False, lifespan="off"))
    server.run(sockets=[sock])
    return 0
