"""``python -m scaling prewarm`` against an upstream nothing listens on: a clear "cannot reach",
exit 3, and the breaker in the shared state store left as the collectors had it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from scaling.appdb.migrate import upgrade
from scaling.cli import main
from scaling.store import open_store

pytestmark = pytest.mark.sqlite


def _closed_port() -> int:
    with socket.socket() as s:  # bound then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_prewarm_against_a_stopped_upstream_exits_3_and_leaves_the_breaker_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    app_url, state_url = f"sqlite:///{tmp_path}/app.db", f"sqlite:///{tmp_path}/state.db"
    upgrade(app_url)
    base = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.chdir(tmp_path)
    for var, value in {"HEADROOM_APP_DB_URL": app_url, "HEADROOM_STATE_URL": state_url,
                       "HEADROOM_METRICS_DB_URL": f"sqlite:///{tmp_path}/metrics.db",
                       "HEADROOM_SANDBOX_URL": base}.items():
        monkeypatch.setenv(var, value)
    store = open_store(state_url)
    before = store.keys("breaker:", now=0.0)

    assert main(["prewarm", "--deadline", "5"]) == 3
    err = capsys.readouterr().err
    assert f"cannot reach lastfm at {base} (" in err and "refused" in err.lower()
    assert store.keys("breaker:", now=0.0) == before == []
