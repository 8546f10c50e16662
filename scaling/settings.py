"""Settings: one frozen object built from the environment (and an optional ``.env``).

No other module reads ``os.environ``. Every value is validated here, so a bad
variable stops the program with one line naming it, before anything runs.
Secrets are wrapped in `Secret`, whose repr and str never show the value.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit

from scaling.errors import ConfigurationError

__all__ = ["PLATFORM_UPSTREAMS", "UPSTREAMS", "RateSpec", "Secret", "Settings", "UpstreamSettings", "redact_url"]

UPSTREAMS: tuple[str, ...] = ("spotify", "lastfm", "openai", "perplexity", "songlink")

#: Where each upstream really lives; paths are appended by the clients.
REAL_BASE_URLS = {
    "spotify": "https://api.spotify.com",
    "lastfm": "https://ws.audioscrobbler.com",
    "openai": "https://api.openai.com",
    "perplexity": "https://api.perplexity.ai",
    "songlink": "https://api.song.link",
}
REAL_SPOTIFY_ACCOUNTS_URL = "https://accounts.spotify.com"

#: The production platform's own APIs (reference/cloudflare.md): GraphQL analytics and REST v4.
#: Not in UPSTREAMS: the app never calls them, only the `cloudflare` collector does.
PLATFORM_UPSTREAMS: tuple[str, ...] = ("cloudflare", "cloudflare_rest")
REAL_CLOUDFLARE_URL = "https://api.cloudflare.com/client/v4"
# 300 GraphQL queries / 5 min per token; REST 1,200 / 5 min per token (cloudflare.md §1.2, §3).
_PLATFORM_LIMITS = {"cloudflare": "300/300s", "cloudflare_rest": "1200/300s"}

# The plan's conservative limits (SCALING_PLAN.md 1.1, 1.2, 2.1); Songlink documents ~10/min keyless.
_DEFAULT_LIMITS = {
    "spotify": "120/60s",
    "lastfm": "4/1s",
    "openai": "60/60s",
    "perplexity": "30/60s",
    "songlink": "10/60s",
}
_DEFAULT_TOKEN_LIMITS = {"openai": "90000/60s"}
_DEFAULT_TIMEOUTS = {"spotify": 10.0, "lastfm": 10.0, "openai": 30.0, "perplexity": 30.0, "songlink": 10.0}
# Spotify and Last.fm ban abusers, AI costs money: when the state store is down they
# stop (fail closed). Songlink is a nicety: it may run on a per-process share.
_DEFAULT_OUTAGE = {"spotify": "closed", "lastfm": "closed", "openai": "closed", "perplexity": "closed",
                   "songlink": "open"}
_DEFAULT_BUDGETS_USD = {"openai": 50.0, "perplexity": 20.0}

_STORE_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg", "postgres", "redis", "rediss", "memory")
_DB_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg", "postgres")

#: Largest value any numeric setting accepts (beyond this float maths and datetime arithmetic fail).
MAX_NUMBER = 1e12
#: Longest period (seconds) for intervals, windows and deadlines: 30 days.
MAX_PERIOD_S = 30 * 86400.0
#: Longest retention: 100 years (timedelta and SQL date arithmetic overflow long before 3,000,000 days).
MAX_RETENTION_DAYS = 36_500

_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d*\.?\d*)\s*"
                      r"(s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hour|hours)\s*$")
_UNIT_SECONDS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "mins": 60,
                 "minute": 60, "minutes": 60, "h": 3600, "hour": 3600, "hours": 3600}


class Secret:
    """A credential that never prints itself.

    ``str()``, ``repr()`` and f-strings show ``'***'``; use `reveal` at the one place
    the value goes on the wire.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        return (Secret, (self._value,))


@dataclass(frozen=True, slots=True)
class RateSpec:
    """A limit of ``limit`` units per rolling ``window`` seconds, with ``burst`` admitted at once.

    Parsed from strings like ``120/60s``, ``4/1s``, ``90000/1m``, ``30/min``.
    """

    limit: int
    window: float
    burst: int = 1

    @classmethod
    def parse(cls, text: str, *, variable: str = "rate", burst: int = 1) -> RateSpec:
        m = _RATE_RE.match(text or "")
        if not m:
            raise ConfigurationError(
                f"{variable}: expected '<count>/<window>' such as '120/60s' or '4/1s', got {text!r}",
                variable=variable)
        count, amount, unit = m.groups()
        window = (float(amount) if amount else 1.0) * _UNIT_SECONDS[unit]
        return cls.checked(int(count), window, burst, variable=variable)

    @classmethod
    def checked(cls, limit: int, window: float, burst: int = 1, *, variable: str = "rate") -> RateSpec:
        if limit <= 0:
            raise ConfigurationError(f"{variable}: the limit must be a positive count, got {limit}", variable=variable)
        if not (window > 0 and math.isfinite(window)):
            raise ConfigurationError(f"{variable}: the window must be positive seconds, got {window}",
                                     variable=variable)
        if not 1 <= burst <= limit:
            raise ConfigurationError(f"{variable}: burst must be between 1 and the limit ({limit}), got {burst}",
                                     variable=variable)
        return cls(limit, window, burst)

    @property
    def per_second(self) -> float:
        return self.limit / self.window

    def __str__(self) -> str:
        w = f"{self.window:g}s"
        return f"{self.limit}/{w}" + (f" burst {self.burst}" if self.burst > 1 else "")


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    """How to reach one upstream and how hard to push it."""

    name: str
    base_url: str
    requests: RateSpec
    tokens: RateSpec | None = None
    timeout: float = 10.0
    outage_policy: str = "closed"  # "closed" or "open"
    sandbox: bool = True
    #: Spotify only: the accounts host for the token call.
    accounts_url: str | None = None
    monthly_budget_usd: float | None = None

    def __repr__(self) -> str:
        return (f"UpstreamSettings(name={self.name!r}, base_url={self.base_url!r}, requests={self.requests}, "
                f"tokens={self.tokens}, sandbox={self.sandbox})")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything Headroom is configured with. Build it with `from_env` or directly in tests."""

    data_dir: Path = Path("data")
    app_db_url: str = "sqlite:///data/app.db"
    state_url: str = "sqlite:///data/state.db"
    metrics_db_url: str = "sqlite:///data/metrics.db"
    state_namespace: str = "headroom"
    sandbox_url: str = "http://127.0.0.1:8765"
    upstreams: Mapping[str, UpstreamSettings] = field(default_factory=dict)
    spotify_client_id: Secret | None = None
    spotify_client_secret: Secret | None = None
    lastfm_api_key: Secret | None = None
    openai_api_key: Secret | None = None
    perplexity_api_key: Secret | None = None
    cron_deadline_s: float = 30.0
    prewarm_interval_s: float = 300.0
    prewarm_active_window_s: float = 7200.0
    prewarm_max_staleness_s: float = 4500.0
    retention_searches_days: int = 90
    retention_recent_searches_days: int = 30
    retention_usage_log_days: int = 30
    db_limit_bytes: int = 10 * 1024**3
    dashboard_password: Secret | None = None
    alert_webhook_url: str | None = None
    prometheus_port: int = 0
    collector_intervals: Mapping[str, float] = field(default_factory=dict)
    cloudflare_api_token: Secret | None = None
    cloudflare_account_id: str | None = None
    cloudflare_script_name: str | None = None  # None: discovered (the account's only Worker)
    cloudflare_d1_database_id: str | None = None
    cloudflare_kv_namespace_id: str | None = None
    platform_monthly_budget_usd: float | None = 25.0
    #: The design and cron-time model the collectors' daily capacity search runs (`scaling.capacity`).
    capacity_design: str = "headroom"
    capacity_time_model: str = "documented"

    def upstream(self, name: str) -> UpstreamSettings:
        if not self.upstreams:
            return _default_upstreams(self.sandbox_url, {})[name]
        return self.upstreams[name]

    @classmethod
    def defaults(cls, **overrides: object) -> Settings:
        """Settings as with an empty environment, with keyword overrides (for tests)."""
        base = cls.from_env({}, dotenv_path=None)
        values = {f.name: getattr(base, f.name) for f in fields(cls)}
        values.update(overrides)
        # Overrides are keyword values of the right fields; mypy cannot see that through a dict.
        return cls(**values)  # type: ignore[arg-type, unused-ignore]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, dotenv_path: str | Path | None = ".env") -> Settings:
        """Read and validate every ``HEADROOM_*`` variable and API key.

        Args:
            environ: the variables to read; ``os.environ`` by default.
            dotenv_path: a ``.env`` file whose values apply where ``environ`` has none.

        Raises:
            ConfigurationError: naming the first bad variable.
        """
        env: dict[str, str] = {}
        if dotenv_path is not None and Path(dotenv_path).is_file():
            from dotenv import dotenv_values

            env.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
        env.update(os.environ if environ is None else environ)
        r = _Reader(env)

        data_dir = Path(r.text("HEADROOM_DATA_DIR", "data"))
        secrets = {
            "spotify_client_id": r.secret("SPOTIFY_CLIENT_ID"),
            "spotify_client_secret": r.secret("SPOTIFY_CLIENT_SECRET"),
            "lastfm_api_key": r.secret("LASTFM_API_KEY"),
            "openai_api_key": r.secret("OPENAI_API_KEY"),
            "perplexity_api_key": r.secret("PERPLEXITY_API_KEY"),
        }
        has_key = {
            "spotify": secrets["spotify_client_id"] is not None and secrets["spotify_client_secret"] is not None,
            "lastfm": secrets["lastfm_api_key"] is not None,
            "openai": secrets["openai_api_key"] is not None,
            "perplexity": secrets["perplexity_api_key"] is not None,
            "songlink": False,
        }
        sandbox_url = r.url("HEADROOM_SANDBOX_URL", "http://127.0.0.1:8765", ("http", "https"))
        upstreams = {}
        for name in UPSTREAMS:
            up = name.upper()
            real = has_key[name] or r.flag(f"HEADROOM_{up}_REAL", False)
            base = r.url(f"HEADROOM_{up}_BASE_URL", REAL_BASE_URLS[name] if real else sandbox_url, ("http", "https"))
            burst = r.integer(f"HEADROOM_{up}_BURST", 1, minimum=1)
            requests = RateSpec.parse(r.text(f"HEADROOM_{up}_LIMIT", _DEFAULT_LIMITS[name]),
                                      variable=f"HEADROOM_{up}_LIMIT", burst=burst)
            tok_default = _DEFAULT_TOKEN_LIMITS.get(name, "")
            tok_text = r.text(f"HEADROOM_{up}_TOKEN_LIMIT", tok_default)
            tokens = RateSpec.parse(tok_text, variable=f"HEADROOM_{up}_TOKEN_LIMIT") if tok_text else None
            policy = r.choice(f"HEADROOM_{up}_OUTAGE_POLICY", _DEFAULT_OUTAGE[name], ("closed", "open"))
            budget_default = _DEFAULT_BUDGETS_USD.get(name)
            budget = r.number(f"HEADROOM_{up}_MONTHLY_BUDGET_USD", budget_default, minimum=0.0)
            accounts = None
            if name == "spotify":
                accounts = r.url("HEADROOM_SPOTIFY_ACCOUNTS_URL",
                                 REAL_SPOTIFY_ACCOUNTS_URL if real else base, ("http", "https"))
            upstreams[name] = UpstreamSettings(
                name=name, base_url=base.rstrip("/"), requests=requests, tokens=tokens,
                timeout=r.number(f"HEADROOM_{up}_TIMEOUT_S", _DEFAULT_TIMEOUTS[name], minimum=0.001,
                                 maximum=3600.0) or 10.0,
                outage_policy=policy, sandbox=not real and base.rstrip("/") == sandbox_url.rstrip("/"),
                accounts_url=accounts.rstrip("/") if accounts else None, monthly_budget_usd=budget)

        intervals = {}
        for job, default in (("prewarm", 300.0), ("cleanup", 3600.0), ("headroom", 60.0), ("db_stats", 900.0),
                             ("cache_stats", 900.0), ("cost_rollup", 3600.0), ("retention", 86400.0),
                             ("alerts", 60.0), ("cloudflare", 300.0), ("capacity", 86400.0)):
            intervals[job] = r.number(f"HEADROOM_{job.upper()}_INTERVAL_S", default, minimum=1.0,
                                      maximum=MAX_PERIOD_S) or default

        cf = _cloudflare(r, sandbox_url, upstreams)
        return cls(
            data_dir=data_dir,
            app_db_url=r.url("HEADROOM_APP_DB_URL", f"sqlite:///{data_dir}/app.db", _DB_SCHEMES),
            state_url=r.url("HEADROOM_STATE_URL", f"sqlite:///{data_dir}/state.db", _STORE_SCHEMES),
            metrics_db_url=r.url("HEADROOM_METRICS_DB_URL", f"sqlite:///{data_dir}/metrics.db", _DB_SCHEMES),
            state_namespace=r.text("HEADROOM_STATE_NAMESPACE", "headroom"),
            sandbox_url=sandbox_url.rstrip("/"),
            upstreams=upstreams,
            cron_deadline_s=r.number("HEADROOM_CRON_DEADLINE_S", 30.0, minimum=1.0, maximum=MAX_PERIOD_S) or 30.0,
            prewarm_interval_s=intervals["prewarm"],
            prewarm_active_window_s=r.number("HEADROOM_PREWARM_ACTIVE_WINDOW_S", 7200.0, minimum=1.0,
                                             maximum=MAX_PERIOD_S) or 7200.0,
            prewarm_max_staleness_s=r.number("HEADROOM_PREWARM_MAX_STALENESS_S", 4500.0, minimum=1.0,
                                             maximum=MAX_PERIOD_S) or 4500.0,
            retention_searches_days=r.integer("HEADROOM_RETENTION_SEARCHES_DAYS", 90, minimum=1,
                                              maximum=MAX_RETENTION_DAYS),
            retention_recent_searches_days=r.integer("HEADROOM_RETENTION_RECENT_SEARCHES_DAYS", 30, minimum=1,
                                                     maximum=MAX_RETENTION_DAYS),
            retention_usage_log_days=r.integer("HEADROOM_RETENTION_USAGE_LOG_DAYS", 30, minimum=1,
                                               maximum=MAX_RETENTION_DAYS),
            db_limit_bytes=r.integer("HEADROOM_DB_LIMIT_BYTES", 10 * 1024**3, minimum=1, maximum=2**53),
            dashboard_password=r.secret("HEADROOM_DASHBOARD_PASSWORD"),
            alert_webhook_url=r.optional_url("HEADROOM_ALERT_WEBHOOK_URL", ("http", "https")),
            prometheus_port=r.integer("HEADROOM_PROMETHEUS_PORT", 0, minimum=0, maximum=65535),
            collector_intervals=intervals,
            cloudflare_api_token=cf.token, cloudflare_account_id=cf.account_id,
            cloudflare_script_name=cf.script_name, cloudflare_d1_database_id=cf.d1_database_id,
            cloudflare_kv_namespace_id=cf.kv_namespace_id, platform_monthly_budget_usd=cf.monthly_budget_usd,
            capacity_design=r.choice("HEADROOM_CAPACITY_DESIGN", "headroom",
                                     ("headroom", "cron5m", "cron1m", "queues", "upstream")),
            capacity_time_model=r.choice("HEADROOM_CAPACITY_TIME_MODEL", "documented", ("plan", "documented")),
            **secrets,
        )


@dataclass(frozen=True, slots=True)
class _CloudflareValues:
    token: Secret | None
    account_id: str | None
    script_name: str | None
    d1_database_id: str | None
    kv_namespace_id: str | None
    monthly_budget_usd: float | None


def _cloudflare(r: _Reader, sandbox_url: str, upstreams: dict[str, UpstreamSettings]) -> _CloudflareValues:
    """The Cloudflare account settings; adds its two upstreams (real with a token, else the sandbox)."""
    token = r.secret("CLOUDFLARE_API_TOKEN")
    default = REAL_CLOUDFLARE_URL if token else f"{sandbox_url.rstrip('/')}/client/v4"
    base = r.url("HEADROOM_CLOUDFLARE_BASE_URL", default, ("http", "https")).rstrip("/")
    for name in PLATFORM_UPSTREAMS:
        up = name.upper()
        requests = RateSpec.parse(r.text(f"HEADROOM_{up}_LIMIT", _PLATFORM_LIMITS[name]),
                                  variable=f"HEADROOM_{up}_LIMIT")
        upstreams[name] = UpstreamSettings(
            name=name, base_url=base, requests=requests,
            timeout=r.number(f"HEADROOM_{up}_TIMEOUT_S", 30.0, minimum=0.001) or 30.0,
            outage_policy=r.choice(f"HEADROOM_{up}_OUTAGE_POLICY", "closed", ("closed", "open")),
            sandbox=base != REAL_CLOUDFLARE_URL)
    return _CloudflareValues(
        token=token, account_id=r.text("CLOUDFLARE_ACCOUNT_ID", "") or None,
        script_name=r.text("HEADROOM_CLOUDFLARE_SCRIPT_NAME", "") or None,
        d1_database_id=r.text("HEADROOM_CLOUDFLARE_D1_DATABASE_ID", "") or None,
        kv_namespace_id=r.text("HEADROOM_CLOUDFLARE_KV_NAMESPACE_ID", "") or None,
        monthly_budget_usd=r.number("HEADROOM_PLATFORM_MONTHLY_BUDGET_USD", 25.0, minimum=0.0))


def _default_upstreams(sandbox_url: str, _: Mapping[str, str]) -> dict[str, UpstreamSettings]:
    return dict(Settings.from_env({"HEADROOM_SANDBOX_URL": sandbox_url}, dotenv_path=None).upstreams)


class _Reader:
    """Typed reads of environment variables; each failure names its variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def _raw(self, name: str) -> str | None:
        value = self._env.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def text(self, name: str, default: str) -> str:
        return self._raw(name) or default

    def secret(self, name: str) -> Secret | None:
        value = self._raw(name)
        if value is None and self._env.get(name):
            # Whitespace only: a password of spaces must not silently mean "no password, gate off".
            raise ConfigurationError(f"{name} is set but blank (only whitespace); unset it or give a value",
                                     variable=name)
        return Secret(value) if value else None

    def flag(self, name: str, default: bool) -> bool:
        value = self._raw(name)
        if value is None:
            return default
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigurationError(f"{name}: expected true or false, got {value!r}", variable=name)

    def choice(self, name: str, default: str, options: tuple[str, ...]) -> str:
        value = (self._raw(name) or default).lower()
        if value not in options:
            raise ConfigurationError(f"{name}: expected one of {', '.join(options)}, got {value!r}", variable=name)
        return value

    def integer(self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = 2**53) -> int:
        value = self._raw(name)
        if value is None:
            return default
        try:
            if len(value) > 40:  # no setting needs more digits; int() of 4,300+ digits raises differently
                raise ValueError(value)
            n = int(value)
        except ValueError:
            raise ConfigurationError(f"{name}: expected a whole number, got {value[:40]!r}", variable=name) from None
        if minimum is not None and n < minimum:
            raise ConfigurationError(f"{name}: must be at least {minimum}, got {n}", variable=name)
        if maximum is not None and n > maximum:
            raise ConfigurationError(f"{name}: must be at most {maximum}, got {n}", variable=name)
        return n

    def number(self, name: str, default: float | None, *, minimum: float | None = None,
               maximum: float = MAX_NUMBER) -> float | None:
        value = self._raw(name)
        if value is None:
            return default
        try:
            x = float(value)
        except ValueError:
            raise ConfigurationError(f"{name}: expected a number, got {value!r}", variable=name) from None
        if not math.isfinite(x) or (minimum is not None and x < minimum) or x > maximum:
            low = f"at least {minimum:g} and " if minimum is not None else ""
            raise ConfigurationError(f"{name}: must be a finite number {low}at most {maximum:g}, got {value!r}",
                                     variable=name)
        return x

    def url(self, name: str, default: str, schemes: tuple[str, ...]) -> str:
        value = self._raw(name) or default
        _check_url(name, value, schemes)
        return value

    def optional_url(self, name: str, schemes: tuple[str, ...]) -> str | None:
        value = self._raw(name)
        if value is not None:
            _check_url(name, value, schemes)
        return value


def redact_url(value: str) -> str:
    """``scheme://host/…``: enough to recognise a URL in a message, without its credentials,
    path or query (a webhook's token is its path; an API key may be a query parameter)."""
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
    except ValueError:
        return "(not a URL)"
    rest = "/…" if (parts.path not in ("", "/") or parts.query or parts.fragment) else ""
    return f"{parts.scheme}://{host}{rest}" if parts.scheme else "(not a URL)"


def _check_url(name: str, value: str, schemes: tuple[str, ...]) -> None:
    shown = redact_url(value)  # never echo a password, token path or key in a message
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - parsing the port is the check: a non-numeric one raises here, not later
    except ValueError as exc:
        raise ConfigurationError(f"{name}: not a valid URL ({str(exc).split(':')[0]}): {shown}",
                                 variable=name) from None
    if parts.scheme not in schemes:
        raise ConfigurationError(
            f"{name}: unsupported scheme {parts.scheme or '(none)'!r} in {shown}; expected one of "
            f"{', '.join(s + '://' for s in schemes)}", variable=name)
    if parts.scheme in ("http", "https") and not parts.hostname:
        raise ConfigurationError(f"{name}: {shown} has no host", variable=name)
    if parts.scheme.startswith("postgres") and not (parts.hostname or "host=" in parts.query):
        # libpq would silently use the local socket and a database named after the OS user.
        raise ConfigurationError(f"{name}: a PostgreSQL URL needs a host, e.g. postgresql://user@127.0.0.1:5432/db "
                                 "(for a local socket say so: postgresql:///db?host=/run/postgresql)", variable=name)
