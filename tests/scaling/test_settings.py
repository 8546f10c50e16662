"""Settings validation: every bad value is one ConfigurationError naming its variable, never a later crash."""

from __future__ import annotations

import pytest

from scaling.errors import ConfigurationError
from scaling.settings import Settings, redact_url


def load(**env: str) -> Settings:
    return Settings.from_env(env, dotenv_path=None)


@pytest.mark.parametrize("variable", ["HEADROOM_STATE_URL", "HEADROOM_METRICS_DB_URL", "HEADROOM_APP_DB_URL",
                                      "HEADROOM_SANDBOX_URL", "HEADROOM_LASTFM_BASE_URL",
                                      "HEADROOM_ALERT_WEBHOOK_URL"])
def test_a_non_numeric_port_in_any_url_names_the_variable(variable: str) -> None:
    """`host:notaport` is refused when settings load, naming the variable, not with a traceback later."""
    scheme = {"HEADROOM_STATE_URL": "redis", "HEADROOM_METRICS_DB_URL": "postgresql",
              "HEADROOM_APP_DB_URL": "postgresql"}.get(variable, "http")
    with pytest.raises(ConfigurationError, match=f"^{variable}: not a valid URL \\(Port could not be cast"):
        load(**{variable: f"{scheme}://127.0.0.1:notaport/0"})


@pytest.mark.parametrize(("variable", "value"), [
    ("HEADROOM_RETENTION_SEARCHES_DAYS", "3000000"),
    ("HEADROOM_RETENTION_SEARCHES_DAYS", "1e23"),
    ("HEADROOM_RETENTION_USAGE_LOG_DAYS", "9" * 5000),
    ("HEADROOM_HEADROOM_INTERVAL_S", "1e23"),
    ("HEADROOM_PREWARM_INTERVAL_S", "inf"),
    ("HEADROOM_CRON_DEADLINE_S", "99999999"),
    ("HEADROOM_LASTFM_TIMEOUT_S", "1e9"),
])
def test_numeric_settings_are_range_checked(variable: str, value: str) -> None:
    """Values that would pass a type check but overflow dates or timers later are refused up front."""
    with pytest.raises(ConfigurationError, match=f"^{variable}: "):
        load(**{variable: value})


def test_the_largest_sane_values_still_load() -> None:
    """The maxima are generous: a century of retention and a 30-day interval are accepted."""
    s = load(HEADROOM_RETENTION_SEARCHES_DAYS="36500", HEADROOM_RETENTION_INTERVAL_S="2592000")
    assert s.retention_searches_days == 36500 and s.collector_intervals["retention"] == 2592000.0


@pytest.mark.parametrize("url", ["postgresql://", "postgresql:///headroom", "postgres://user@/db"])
def test_a_postgresql_url_without_a_host_is_refused(url: str) -> None:
    """Without a host libpq would use the local socket and a database named after the OS user: refuse it."""
    with pytest.raises(ConfigurationError, match=r"^HEADROOM_STATE_URL: a PostgreSQL URL needs a host"):
        load(HEADROOM_STATE_URL=url)
    assert load(HEADROOM_STATE_URL="postgresql:///db?host=/run/postgresql").state_url.endswith("postgresql")


def test_a_bad_webhook_url_is_shown_without_its_token_path() -> None:
    """An alert webhook URL with a bad scheme or port is echoed as scheme://host/… only."""
    for url in ("ftp://hooks.example.com/services/T000/B000/SECRETTOKEN",
                "https://hooks.example.com:x/services/T000/B000/SECRETTOKEN?key=SECRETKEY"):
        with pytest.raises(ConfigurationError) as err:
            load(HEADROOM_ALERT_WEBHOOK_URL=url)
        assert "SECRET" not in str(err.value) and "hooks.example.com/…" in str(err.value)
    assert redact_url("https://user:pw@h.example/p?api_key=k") == "https://h.example/…"


def test_a_whitespace_only_dashboard_password_is_a_configuration_error() -> None:
    """Spaces as HEADROOM_DASHBOARD_PASSWORD must not silently turn the gate off; empty still means unset."""
    with pytest.raises(ConfigurationError, match=r"^HEADROOM_DASHBOARD_PASSWORD is set but blank"):
        load(HEADROOM_DASHBOARD_PASSWORD="  \t ")
    assert load(HEADROOM_DASHBOARD_PASSWORD="").dashboard_password is None
