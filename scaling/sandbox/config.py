"""What the sandbox simulates: limits, faults and data knobs, per upstream.

`SandboxConfig` holds one `UpstreamSim` subclass per upstream (`SpotifySim`,
`LastfmSim`, `OpenAISim`, `PerplexitySim`, `SongLinkSim`), each with its request
limit and its `Faults`. Everything is frozen; derive variants with `with_upstream`
or `dataclasses.replace`. Defaults follow ``reference/upstream.md`` and
``reference/anchors-ratelimit.md`` §3, not the app's conservative limits, because
the sandbox plays the upstream.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scaling.errors import ConfigurationError
from scaling.settings import UPSTREAMS, RateSpec

__all__ = [
    "Faults",
    "LastfmSim",
    "OpenAISim",
    "PerplexitySim",
    "SandboxConfig",
    "SongLinkSim",
    "SpotifySim",
    "UpstreamSim",
    "parse_latency",
]

MALFORMED_KINDS: tuple[str, ...] = ("truncated", "content_type", "missing_fields")
_LATENCY_RE = re.compile(r"^\s*(\d*\.?\d+)\s*(?:-\s*(\d*\.?\d+)\s*)?(ms|s)?\s*$")


def _check_share(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        raise ConfigurationError(f"{name}: expected a share between 0 and 1, got {value!r}", variable=name)


@dataclass(frozen=True, slots=True)
class Faults:
    """Seeded fault injection for one upstream; every rate is a probability per request.

    Attributes:
        latency: (min, max) seconds, drawn uniformly and slept on the injected clock
            *before* the request is admitted, so it also shifts when the limit sees it.
        error_rate: share of requests answered with a 5xx from ``error_statuses``.
        error_statuses: the 5xx statuses to pick from.
        timeout_rate: share of requests that hang ``timeout_s`` and then get a 504.
        timeout_s: how long a hung request hangs.
        malformed_rate: share of successful answers whose body is corrupted.
        malformed_kinds: corruptions to pick from: ``truncated`` JSON, wrong
            ``content_type`` (an HTML page with status 200), ``missing_fields``.
    """

    latency: tuple[float, float] = (0.0, 0.0)
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (502, 503, 504)
    timeout_rate: float = 0.0
    timeout_s: float = 120.0
    malformed_rate: float = 0.0
    malformed_kinds: tuple[str, ...] = MALFORMED_KINDS

    def __post_init__(self) -> None:
        lo, hi = self.latency
        if not (0 <= lo <= hi and math.isfinite(hi)):
            raise ConfigurationError(f"latency: expected 0 <= min <= max seconds, got {self.latency}",
                                     variable="latency")
        for name in ("error_rate", "timeout_rate", "malformed_rate"):
            _check_share(name, getattr(self, name))
        if self.error_rate + self.timeout_rate + self.malformed_rate > 1.0:
            raise ConfigurationError("faults: error_rate + timeout_rate + malformed_rate must not exceed 1",
                                     variable="error_rate")
        if not self.error_statuses or any(not 500 <= s <= 599 for s in self.error_statuses):
            raise ConfigurationError(f"error_statuses: expected 5xx codes, got {self.error_statuses}",
                                     variable="error_statuses")
        if not (self.timeout_s >= 0 and math.isfinite(self.timeout_s)):
            raise ConfigurationError(f"timeout_s: expected seconds >= 0, got {self.timeout_s}", variable="timeout_s")
        bad = [k for k in self.malformed_kinds if k not in MALFORMED_KINDS]
        if bad or not self.malformed_kinds:
            raise ConfigurationError(
                f"malformed_kinds: expected some of {', '.join(MALFORMED_KINDS)}, got {bad or '()'}",
                variable="malformed_kinds")


@dataclass(frozen=True, slots=True)
class UpstreamSim:
    """One simulated upstream: its request limit over a rolling window, and its faults.

    Attributes:
        requests: admitted requests per rolling window, per client key (Spotify
            client id, Last.fm api_key, OpenAI/Perplexity API key, Songlink caller IP).
        faults: what goes wrong on purpose.
        api_keys: the keys (or Spotify client ids) accepted; None accepts any non-empty one.
    """

    requests: RateSpec = RateSpec(10, 60.0)
    faults: Faults = Faults()
    api_keys: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class SpotifySim(UpstreamSim):
    """Spotify Web API plus the accounts token endpoint.

    Attributes:
        clients: client_id -> client_secret accepted by ``/api/token``; None accepts
            any non-empty pair.
        ban_factor: each call made during a 429 cooldown multiplies the remaining
            ban by this (1.0 disables escalation).
        ban_cap_s: the longest ban, in seconds.
        quota: an optional second rolling limit shared by every client id (the
            developer-account quota); exceeding it answers ``"reason":"QUOTA_EXCEEDED"``.
        search_max_limit: the largest ``limit`` search accepts (10 in dev mode).
        unknown_share: share of album ids (by hash) that do not exist, besides ids
            starting with ``unknown``.
        batch_albums: whether ``GET /v1/albums?ids=`` is available (dev-mode apps lost it).
        token_ttl_s: ``expires_in`` of issued tokens.
        catalog_size: albums that Last.fm listeners play and search can find.
    """

    requests: RateSpec = RateSpec(180, 30.0)
    clients: Mapping[str, str] | None = None
    ban_factor: float = 2.0
    ban_cap_s: float = 43_200.0
    quota: RateSpec | None = None
    search_max_limit: int = 10
    unknown_share: float = 0.0
    batch_albums: bool = True
    token_ttl_s: int = 3600
    catalog_size: int = 2000


@dataclass(frozen=True, slots=True)
class LastfmSim(UpstreamSim):
    """Last.fm ``/2.0/`` with a deterministic population of listeners.

    Attributes:
        listeners: population size; names are ``listener0001`` ... (zero-padded to 4+ digits).
        active_share: exact share of listeners who scrobbled in the last 2 h, at any time.
        now_playing_share: expected share of *active* listeners with a now-playing track.
        empty_share: share of inactive listeners who never scrobbled anything.
        throttle_http200_share: probability that an error-29 answer comes with HTTP 200
            instead of 429.
    """

    requests: RateSpec = RateSpec(5, 1.0)
    listeners: int = 200
    active_share: float = 0.3
    now_playing_share: float = 0.25
    empty_share: float = 0.0
    throttle_http200_share: float = 0.5


@dataclass(frozen=True, slots=True)
class OpenAISim(UpstreamSim):
    """OpenAI ``/v1/chat/completions`` and ``/v1/responses``.

    Attributes:
        tokens: tokens per rolling window per key; a request costs its prompt
            estimate plus its max output tokens, debited up front.
        token_quota: billed tokens (sum of ``usage.total_tokens``) after which every
            call gets ``insufficient_quota``; None is unlimited.
        default_max_output_tokens: the reservation when a request sets no maximum.
        cache_min_tokens: prompts shorter than this are never cached (OpenAI: 1024).
        cache_increment: cached tokens grow in steps of this above the minimum (128).
        cache_ttl_s: a prompt stays cached this long after its last use.
        web_search_context_tokens: input tokens added per web search (search results).
    """

    requests: RateSpec = RateSpec(500, 60.0)
    tokens: RateSpec = RateSpec(200_000, 60.0)
    token_quota: int | None = None
    default_max_output_tokens: int = 4096
    cache_min_tokens: int = 1024
    cache_increment: int = 128
    cache_ttl_s: float = 600.0
    web_search_context_tokens: int = 0


@dataclass(frozen=True, slots=True)
class PerplexitySim(UpstreamSim):
    """Perplexity ``/chat/completions`` (Sonar): chat usage plus ``citations``."""

    requests: RateSpec = RateSpec(50, 60.0)


@dataclass(frozen=True, slots=True)
class SongLinkSim(UpstreamSim):
    """Songlink/Odesli ``/v1-alpha.1/links``, limited per caller IP (or ``key`` param)."""

    requests: RateSpec = RateSpec(10, 60.0)


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """The whole sandbox: a seed plus one simulation per upstream.

    Attributes:
        seed: seeds every random draw (faults, Last.fm's 200-vs-429, population, catalog).
        served_log: answers kept per endpoint in ``stats().served`` (counters stay exact).
    """

    seed: int = 0
    spotify: SpotifySim = field(default_factory=SpotifySim)
    lastfm: LastfmSim = field(default_factory=LastfmSim)
    openai: OpenAISim = field(default_factory=OpenAISim)
    perplexity: PerplexitySim = field(default_factory=PerplexitySim)
    songlink: SongLinkSim = field(default_factory=SongLinkSim)
    served_log: int = 200_000

    def upstream(self, name: str) -> UpstreamSim:
        """The simulation of upstream ``name`` (one of `scaling.settings.UPSTREAMS`)."""
        if name not in UPSTREAMS:
            raise ConfigurationError(f"unknown upstream {name!r}; expected one of {', '.join(UPSTREAMS)}",
                                     variable="upstream")
        sim: UpstreamSim = getattr(self, name)
        return sim

    def with_upstream(self, name: str, **changes: Any) -> SandboxConfig:
        """A copy with some fields of one upstream replaced.

        Example: ``config.with_upstream("spotify", requests=RateSpec(10, 30.0), faults=Faults(error_rate=0.1))``.

        Raises:
            ConfigurationError: for an unknown upstream or field.
        """
        sim = self.upstream(name)
        known = {f.name for f in dataclasses.fields(sim)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigurationError(f"{name}: unknown setting(s) {', '.join(unknown)}", variable=unknown[0])
        changed: dict[str, Any] = {name: dataclasses.replace(sim, **changes)}
        return dataclasses.replace(self, **changed)

    def with_faults(self, faults: Faults, *, upstreams: tuple[str, ...] = UPSTREAMS) -> SandboxConfig:
        """A copy with ``faults`` on each of ``upstreams`` (all by default)."""
        config = self
        for name in upstreams:
            config = config.with_upstream(name, faults=faults)
        return config

    @classmethod
    def from_options(
        cls,
        *,
        seed: int = 0,
        latency: str | tuple[float, float] | None = None,
        error_rate: float = 0.0,
        timeout_rate: float = 0.0,
        timeout_s: float = 120.0,
        malformed_rate: float = 0.0,
        listeners: int | None = None,
        active_share: float | None = None,
        now_playing_share: float | None = None,
        lastfm_http200_share: float | None = None,
        spotify_limit: str | None = None,
        spotify_quota: str | None = None,
        lastfm_limit: str | None = None,
        openai_limit: str | None = None,
        openai_token_limit: str | None = None,
        openai_token_quota: int | None = None,
        perplexity_limit: str | None = None,
        songlink_limit: str | None = None,
    ) -> SandboxConfig:
        """Build a config from flat, CLI-style options; faults apply to every upstream.

        Limits are strings such as ``"180/30s"`` (see `RateSpec.parse`); ``latency`` is
        ``"0.15-0.4"`` seconds, ``"150-400ms"``, a single number, or a (min, max) pair.

        Raises:
            ConfigurationError: naming the first bad option.
        """
        faults = _faults(latency, error_rate, timeout_rate, timeout_s, malformed_rate)
        config = cls(seed=seed).with_faults(faults)
        config = _with_limits(config, {"spotify": ("--spotify-limit", spotify_limit),
                                       "lastfm": ("--lastfm-limit", lastfm_limit),
                                       "openai": ("--openai-limit", openai_limit),
                                       "perplexity": ("--perplexity-limit", perplexity_limit),
                                       "songlink": ("--songlink-limit", songlink_limit)})
        tokens = _rate(openai_token_limit, "--openai-token-limit")
        if tokens is not None:
            config = config.with_upstream("openai", tokens=tokens)
        if openai_token_quota is not None:
            if openai_token_quota < 0:
                raise ConfigurationError(f"--openai-token-quota: must be >= 0, got {openai_token_quota}",
                                         variable="--openai-token-quota")
            config = config.with_upstream("openai", token_quota=openai_token_quota)
        quota = _rate(spotify_quota, "--spotify-quota")
        if quota is not None:
            config = config.with_upstream("spotify", quota=quota)
        lastfm = _lastfm_options(listeners, (("active_share", "--active-share", active_share),
                                             ("now_playing_share", "--now-playing-share", now_playing_share),
                                             ("throttle_http200_share", "--lastfm-http200-share",
                                              lastfm_http200_share)))
        return config.with_upstream("lastfm", **lastfm) if lastfm else config


def _faults(latency: str | tuple[float, float] | None, error_rate: float, timeout_rate: float, timeout_s: float,
            malformed_rate: float) -> Faults:
    lat = parse_latency(latency) if isinstance(latency, str) else (latency or (0.0, 0.0))
    for option, value in (("--error-rate", error_rate), ("--timeout-rate", timeout_rate),
                          ("--malformed-rate", malformed_rate)):
        _check_share(option, value)
    if not (timeout_s >= 0 and math.isfinite(timeout_s)):
        raise ConfigurationError(f"--timeout-s: expected seconds >= 0, got {timeout_s}", variable="--timeout-s")
    return Faults(latency=lat, error_rate=error_rate, timeout_rate=timeout_rate, timeout_s=timeout_s,
                  malformed_rate=malformed_rate)


def _rate(text: str | None, option: str) -> RateSpec | None:
    return None if text is None else RateSpec.parse(text, variable=option)


def _with_limits(config: SandboxConfig, limits: dict[str, tuple[str, str | None]]) -> SandboxConfig:
    """``config`` with each upstream's request limit replaced where an option gives one."""
    for name, (option, text) in limits.items():
        spec = _rate(text, option)
        if spec is not None:
            config = config.with_upstream(name, requests=spec)
    return config


def _lastfm_options(listeners: int | None,
                    shares: tuple[tuple[str, str, float | None], ...]) -> dict[str, int | float]:
    lastfm: dict[str, int | float] = {}
    if listeners is not None:
        if not 1 <= listeners <= 1_000_000:
            raise ConfigurationError(f"--listeners: expected 1..1000000, got {listeners}", variable="--listeners")
        lastfm["listeners"] = listeners
    for key, option, share in shares:
        if share is not None:
            _check_share(option, share)
            lastfm[key] = share
    return lastfm


def parse_latency(text: str) -> tuple[float, float]:
    """Parse ``"0.15-0.4"`` / ``"150-400ms"`` / ``"0.2"`` into (min, max) seconds.

    Raises:
        ConfigurationError: if the text is not a range of non-negative numbers, min <= max.
    """
    m = _LATENCY_RE.match(text or "")
    if not m:
        raise ConfigurationError(f"--latency: expected seconds like '0.15-0.4', '150-400ms' or '0.2', got {text!r}",
                                 variable="--latency")
    lo_text, hi_text, unit = m.groups()
    scale = 0.001 if unit == "ms" else 1.0
    lo = float(lo_text) * scale
    hi = float(hi_text) * scale if hi_text else lo
    if hi < lo:
        raise ConfigurationError(f"--latency: min must not exceed max, got {text!r}", variable="--latency")
    return (lo, hi)
