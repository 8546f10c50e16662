"""Demo data: deterministic, realistic in shape, and refilled rather than duplicated."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import Engine, text

from scaling.appdb.demo import NotADemoDatabase, fill_demo_data, generate
from scaling.appdb.models import TABLES

from .conftest import NOW

DAY = 86_400


def test_same_seed_and_now_give_the_same_rows() -> None:
    """Generation is a pure function of users, seed, now and days."""
    assert generate(users=40, seed=7, now=NOW) == generate(users=40, seed=7, now=NOW)
    assert generate(users=40, seed=7, now=NOW) != generate(users=40, seed=8, now=NOW)


def test_users_look_like_the_sandbox_population() -> None:
    """About 70% have a listenerNNNN Last.fm name; some use Spotify; sign-ups grow toward now."""
    users = generate(users=300, seed=1, now=NOW)["users"]
    lastfm = [u["lastfm_username"] for u in users if u["lastfm_username"]]
    assert 0.6 < len(lastfm) / len(users) < 0.8
    assert all(re.fullmatch(r"listener\d{4}", name) for name in lastfm)
    assert 0.2 < sum(u["spotify_connected"] for u in users) / len(users) < 0.4
    joined = sorted(u["created_at"] for u in users)
    first_half = sum(1 for c in joined if c < _d1(NOW - 90 * DAY))
    assert first_half < len(users) / 3  # growth: most sign-ups in the second half


def test_rows_span_the_period_and_sessions_mix_formats() -> None:
    """Every timestamp lies in the last 180 days; sessions come in both formats, some expired, some live."""
    data = generate(users=200, seed=2, now=NOW, days=180)
    lo, hi = _d1(NOW - 180 * DAY), _d1(NOW)
    for table, column in (("searches", "searched_at"), ("recent_searches", "searched_at"),
                          ("api_usage_log", "created_at"), ("users", "created_at")):
        values = [r[column] for r in data[table]]
        assert values and lo <= min(values) and max(values) < hi, table
    expires = [s["expires_at"] for s in data["sessions"]]
    iso = [e for e in expires if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e)]
    d1 = [e for e in expires if re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", e)]
    assert iso and d1 and len(iso) + len(d1) == len(expires)
    expired = [e for e in expires if e.replace("T", " ").rstrip("Z") < _d1(NOW)]
    assert 0 < len(expired) < len(expires)
    # One /api row per request, many per page view: far more usage rows than searches.
    assert len(data["api_usage_log"]) > 10 * len(data["searches"])


def test_fill_twice_replaces_instead_of_duplicating(engine: Engine) -> None:
    """A rerun with the same seed leaves exactly the generated rows, once."""
    first = fill_demo_data(engine, users=30, seed=5, now=NOW)
    second = fill_demo_data(engine, users=30, seed=5, now=NOW)
    assert second.rows == first.rows
    assert second.cleared == {t: first.rows[t] for t in reversed(TABLES)}
    expected = generate(users=30, seed=5, now=NOW)
    with engine.connect() as conn:
        counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in TABLES}
        ids = sorted(conn.execute(text("SELECT id FROM sessions")).scalars())
    assert counts == {t: len(expected[t]) for t in TABLES}
    assert ids == sorted(s["id"] for s in expected["sessions"])


def test_app_inserts_after_demo_data_get_fresh_ids(engine: Engine) -> None:
    """The usage log's id sequence continues after the demo rows (explicit ids moved it on PostgreSQL)."""
    report = fill_demo_data(engine, users=10, seed=1, now=NOW)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO api_usage_log (endpoint) VALUES ('/api/v1/album')"))
        newest = conn.execute(text("SELECT max(id) FROM api_usage_log")).scalar()
    assert newest == report.rows["api_usage_log"] + 1


def test_refuses_a_database_with_real_users(engine: Engine) -> None:
    """A user without a demo e-mail stops the refill, and nothing is deleted."""
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, email) VALUES ('rian', 'rian@example.com')"))
    with pytest.raises(NotADemoDatabase, match="holds 1 user"):
        fill_demo_data(engine, users=5, seed=1, now=NOW)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id FROM users")).scalars().all() == ["rian"]


def test_bad_sizes_are_refused() -> None:
    """Zero users or days is a clear ValueError."""
    with pytest.raises(ValueError, match="users and days must be >= 1"):
        generate(users=0, seed=1, now=NOW)


def _d1(epoch: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))
