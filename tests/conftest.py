"""Shared fixtures: clean environment, a virtual clock, and one throwaway database or
namespace per test session on each real server (so parallel runs never collide)."""

from __future__ import annotations

import multiprocessing
import os
import uuid
from collections.abc import Iterator

import pytest

from scaling.clock import VirtualClock

PG_SERVER = os.environ.get("HEADROOM_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS_SERVER = os.environ.get("HEADROOM_TEST_REDIS", "redis://127.0.0.1:6379/0")

_OUR_PREFIXES = ("HEADROOM_", "SPOTIFY_", "LASTFM_", "OPENAI_", "PERPLEXITY_", "CLOUDFLARE_")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with none of our variables set, whatever the shell has."""
    for name in list(os.environ):
        if name.startswith(_OUR_PREFIXES):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def no_stray_processes() -> Iterator[None]:
    """Kills any multiprocessing child a test left running and fails that test.

    multiprocessing joins non-daemon children at interpreter exit, so one hung worker would keep
    pytest alive after its summary until CI's own timeout (it did, once)."""
    yield
    strays = multiprocessing.active_children()
    for proc in strays:
        proc.kill()
        proc.join(5)
    if strays:
        pytest.fail(f"{len(strays)} child process(es) still running after the test; killed", pytrace=False)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    import psycopg

    name = f"headroom_t_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        admin = psycopg.connect(f"{PG_SERVER}/test", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {PG_SERVER} is not reachable: {exc}", pytrace=False)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with psycopg.connect(f"{PG_SERVER}/test", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis server; tests isolate themselves by key namespace."""
    import redis

    try:
        redis.Redis.from_url(REDIS_SERVER, socket_connect_timeout=5).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {REDIS_SERVER} is not reachable: {exc}", pytrace=False)
    return REDIS_SERVER


@pytest.fixture
def namespace() -> str:
    """A key namespace unique to this test."""
    return f"t{uuid.uuid4().hex[:10]}"
