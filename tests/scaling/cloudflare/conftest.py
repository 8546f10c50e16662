"""Fixtures: a sandbox (with its simulated Cloudflare account) on a virtual clock, a shared state
store, a migrated metrics DB on SQLite and PostgreSQL, and settings pointing at the sandbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scaling.clock import VirtualClock
from scaling.sandbox import Sandbox
from scaling.sandbox.config import SandboxConfig
from scaling.settings import Settings
from scaling.store import StateStore, open_store
from tests.scaling.metrics.conftest import (  # noqa: F401 - shared metrics-DB fixtures
    _pg_migrated,
    _sqlite_template,
    engine,
    metrics_url,
)

TOKEN = "cf-test-token"


@pytest.fixture
def sandbox(clock: VirtualClock) -> Sandbox:
    return Sandbox(SandboxConfig(), clock)


@pytest.fixture
def store() -> Iterator[StateStore]:
    s = open_store("memory://", "cloudflare-test")
    yield s
    s.close()


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env({"CLOUDFLARE_API_TOKEN": TOKEN, "CLOUDFLARE_ACCOUNT_ID": "sandbox-account",
                              "HEADROOM_CLOUDFLARE_BASE_URL": "http://sandbox/client/v4"}, dotenv_path=None)
