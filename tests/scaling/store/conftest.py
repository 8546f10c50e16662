"""A `store` fixture that runs each contract test on every backend, over real connections."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scaling.store import StateStore, open_store

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite", marks=pytest.mark.sqlite),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
]
SHARED_BACKENDS = BACKENDS[1:]


def store_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    if kind == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path, namespace: str) -> Iterator[StateStore]:
    s = open_store(store_url(request.param, request, tmp_path), namespace)
    try:
        yield s
    finally:
        s.clear()
        s.close()


@pytest.fixture(params=SHARED_BACKENDS)
def shared_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of a store that several processes can share."""
    return store_url(request.param, request, tmp_path)
