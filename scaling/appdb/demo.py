"""Demo data for the app DB: a growing user base and the rows its use leaves behind.

`generate` is pure: for one seed and one ``now`` it returns the same rows every
time. `fill_demo_data` **clears and refills** the six app tables in one
transaction, so a rerun never duplicates anything; it refuses to touch a DB that
holds users it did not make (demo users have ``@demo.invalid`` e-mail addresses).

The shape follows upstream (`reference/upstream.md` §1): ~70% of users have a
Last.fm name (``listener0001``…, the sandbox's population), sign-ups grow over the
period, sessions last 30 days and are written as JS ISO strings except some in
D1's ``YYYY-MM-DD HH:MM:SS``, each page view makes a burst of ``/api`` requests
(one ``api_usage_log`` row each), and album searches feed ``recent_searches``.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, func, or_, select, text
from sqlalchemy.schema import AddConstraint, DropConstraint

from scaling.appdb.engine import translate_errors
from scaling.appdb.models import ApiKey, ApiUsageLog, RecentSearch, Search, Session, User, metadata
from scaling.errors import ScalingError

__all__ = ["DEMO_EMAIL_DOMAIN", "DemoReport", "NotADemoDatabase", "fill_demo_data", "generate"]

DEMO_EMAIL_DOMAIN = "demo.invalid"
SESSION_TTL_S = 30 * 86_400
DAY_S = 86_400

_ARTISTS = (
    ("Radiohead", "In Rainbows"), ("Björk", "Homogenic"), ("Kendrick Lamar", "To Pimp a Butterfly"),
    ("Fleetwood Mac", "Rumours"), ("Boards of Canada", "Music Has the Right to Children"),
    ("Joni Mitchell", "Blue"), ("Burial", "Untrue"), ("Frank Ocean", "Blonde"), ("Portishead", "Dummy"),
    ("Talk Talk", "Spirit of Eden"), ("Sade", "Love Deluxe"), ("Aphex Twin", "Selected Ambient Works 85-92"),
    ("Little Simz", "Sometimes I Might Be Introvert"), ("Big Thief", "Dragon New Mountain"),
    ("Caribou", "Swim"), ("Nick Drake", "Pink Moon"), ("Slowdive", "Souvlaki"), ("Arca", "KiCk i"),
)
#: What a page view asks of the Worker's own /api, with relative weights.
_ENDPOINTS = (
    ("/api/internal/user-listens", 10), ("/api/internal/album-art", 8), ("/api/internal/streaming-links", 6),
    ("/api/internal/artist-sentence", 4), ("/api/internal/album-summary", 3), ("/api/internal/genre-summary", 1),
    ("/api/internal/recommendations", 2), ("/api/v1/album", 2), ("/api/v1/artist", 1), ("/api/v1/search", 1),
)
_STATUSES = ((200, 955), (404, 20), (429, 10), (500, 8), (503, 7))
_AGENTS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
)
# Weighted choices as flat pools: one rng.choice per row instead of rng.choices' setup.
_ENDPOINT_POOL = tuple(e for e, w in _ENDPOINTS for _ in range(w))
_STATUS_POOL = tuple(s for s, w in _STATUSES for _ in range(w))
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Insert order: parents before children (the reverse is the delete order).
_MODELS = (User, Session, Search, RecentSearch, ApiKey, ApiUsageLog)


class NotADemoDatabase(ScalingError):
    """The app DB holds users demo-data did not create; refilling would destroy them.

    Attributes:
        real_users: how many such users there are.
    """

    def __init__(self, real_users: int) -> None:
        super().__init__(f"the app DB holds {real_users} user(s) not created by demo-data; "
                         "refusing to clear it (use an empty or demo-only database)")
        self.real_users = real_users


@dataclass(frozen=True, slots=True)
class DemoReport:
    """What `fill_demo_data` wrote.

    Attributes:
        rows: rows inserted per table.
        cleared: rows removed first (the previous demo data), per table.
    """

    users: int
    seed: int
    days: int
    now: float
    rows: dict[str, int]
    cleared: dict[str, int]
    duration_s: float

    def as_dict(self) -> dict[str, Any]:
        return {"users": self.users, "seed": self.seed, "days": self.days, "now": self.now,
                "rows": dict(self.rows), "total_rows": sum(self.rows.values()), "cleared": dict(self.cleared),
                "duration_s": self.duration_s}


def fill_demo_data(engine: Engine, *, users: int, now: float, seed: int = 0, days: int = 180,
                   clock: Callable[[], float] = time.perf_counter) -> DemoReport:
    """Replace the app tables' contents with demo data, in one transaction.

    Args:
        engine: the (migrated) app DB.
        users: how many users to create.
        now: epoch seconds the data ends at; everything is dated before it.
        seed: the random seed; the same seed and ``now`` give the same rows.
        days: how far back the data reaches.
        clock: measures the duration.

    Raises:
        NotADemoDatabase: the DB holds users this function did not create.
        ValueError: ``users`` or ``days`` < 1.
        StoreError: the database cannot be reached.
    """
    start = clock()
    data = generate(users=users, seed=seed, now=now, days=days)
    with translate_errors(engine, "write demo data to the app DB"), engine.begin() as conn:
        real = conn.execute(select(func.count()).select_from(User).where(
            or_(User.email.is_(None), User.email.not_like(f"%@{DEMO_EMAIL_DOMAIN}")))).scalar_one()
        if real:
            raise NotADemoDatabase(int(real))
        cleared = {}
        for model in reversed(_MODELS):
            if conn.dialect.name == "postgresql":
                cleared[model.__tablename__] = conn.execute(select(func.count()).select_from(model)).scalar_one()
            else:
                cleared[model.__tablename__] = conn.execute(delete(model)).rowcount
        if conn.dialect.name == "postgresql":
            # TRUNCATE leaves no dead rows behind for the bulk load to wade through.
            conn.execute(text("TRUNCATE " + ", ".join(m.__tablename__ for m in _MODELS)))
        tables = [metadata.tables[model.__tablename__] for model in _MODELS]
        # PostgreSQL checks a foreign key per row with a row lock on the parent, which
        # dominates a bulk load; like pg_restore, add the keys back after the data (one
        # validating join each). The transaction makes this invisible to other sessions.
        postgres = conn.dialect.name == "postgresql"
        foreign_keys = [fk for t in tables for fk in t.foreign_key_constraints] if postgres else []
        for fk in foreign_keys:
            conn.execute(DropConstraint(fk))
        for table in tables:
            _bulk_insert(conn, table, data[table.name])
        for fk in foreign_keys:
            conn.execute(AddConstraint(fk))
        if conn.dialect.name == "postgresql":
            # Ids were given explicitly, so move the sequence past them for the app's own inserts.
            conn.execute(text("SELECT setval(pg_get_serial_sequence('api_usage_log', 'id'), "
                              "GREATEST((SELECT max(id) FROM api_usage_log), 1))"))
    return DemoReport(users=users, seed=seed, days=days, now=now,
                      rows={name: len(rows) for name, rows in data.items()},
                      cleared=cleared, duration_s=clock() - start)


def _bulk_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert through the driver: COPY on PostgreSQL, executemany on SQLite.

    SQLAlchemy's per-row parameter handling costs more than the database does at a
    few hundred thousand rows, so the rows go to the driver as plain tuples.
    """
    if not rows:
        return
    columns = [c.name for c in table.columns]
    tuples = [tuple(row[c] for c in columns) for row in rows]
    quote = conn.dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in columns)
    raw: Any = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        with raw.cursor() as cur, cur.copy(f"COPY {quote(table.name)} ({names}) FROM STDIN") as copy:
            for row in tuples:
                copy.write_row(row)
    else:
        cur = raw.cursor()
        try:
            cur.executemany(f"INSERT INTO {quote(table.name)} ({names}) VALUES ({', '.join('?' * len(columns))})",
                            tuples)
        finally:
            cur.close()


def generate(*, users: int, seed: int, now: float, days: int = 180) -> dict[str, list[dict[str, Any]]]:
    """The demo rows per table, deterministic for (users, seed, now, days).

    Raises:
        ValueError: ``users`` or ``days`` < 1.
    """
    if users < 1 or days < 1:
        raise ValueError(f"users and days must be >= 1, got users={users}, days={days}")
    rng = random.Random(f"headroom-demo:{seed}")
    start = now - days * DAY_S
    out: dict[str, list[dict[str, Any]]] = {m.__tablename__: [] for m in _MODELS}
    internal_key = _api_key(rng, user_id=None, name="internal", tier="premium", created=start)
    out["api_keys"].append(internal_key)
    key_use: dict[str, list[float]] = {internal_key["id"]: []}

    # Exponential growth: sign-ups per day rise about e^3 (20x) over the period.
    growth = 3.0
    signups = sorted(start + days * DAY_S * math.log1p(rng.random() * math.expm1(growth)) / growth
                     for _ in range(users))
    for i, joined in enumerate(signups, start=1):
        has_lastfm = rng.random() < 0.7
        username = f"listener{i:04d}" if has_lastfm else f"user{i:04d}"
        user = {
            "id": username, "email": f"{username}@{DEMO_EMAIL_DOMAIN}",
            "lastfm_username": username if has_lastfm else None,
            "discogs_username": f"{username}-discogs" if rng.random() < 0.15 else None,
            "spotify_connected": 1 if rng.random() < 0.3 else 0,
            "created_at": _d1(joined), "updated_at": _d1(joined), "username": username,
            "lastfm_session_key": _hex(rng, 32) if has_lastfm else None,
            "display_name": username.capitalize(), "avatar_url": None, "bio": None,
            "profile_visibility": "public" if rng.random() < 0.9 else "private",
            "last_login_at": None, "login_count": 0,
        }
        out["users"].append(user)
        own_key = None
        if rng.random() < 0.1:
            own_key = _api_key(rng, user_id=username, name="Default",
                               tier="premium" if rng.random() < 0.2 else "standard", created=joined)
            out["api_keys"].append(own_key)
            key_use[own_key["id"]] = []
        _simulate_user(rng, out, user, joined, now, internal_key["id"], own_key, key_use)

    for key in out["api_keys"]:
        used = key_use[key["id"]]
        key["request_count"] = len(used)
        key["last_used_at"] = _d1(max(used)) if used else None
    for n, row in enumerate(sorted(out["api_usage_log"], key=lambda r: (r["created_at"], r["endpoint"])), start=1):
        row["id"] = n
    out["api_usage_log"].sort(key=lambda r: r["id"])
    return out


def _simulate_user(rng: random.Random, out: dict[str, list[dict[str, Any]]], user: dict[str, Any], joined: float,
                   now: float, internal_key: str, own_key: dict[str, Any] | None,
                   key_use: dict[str, list[float]]) -> None:
    """Walk one user's days from sign-up to now: logins, page views, searches."""
    activity = rng.betavariate(1.2, 4.0)  # the share of days this user shows up
    ip = f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    agent = rng.choice(_AGENTS)
    session_until = -math.inf
    t = joined
    first = True
    while t < now:
        if first or rng.random() < activity:
            visit = min(now - 1, t + (rng.random() * DAY_S * 0.9 if not first else 0.0))
            if visit >= session_until or rng.random() < 0.03:  # logged out, or a second device
                session_until = visit + SESSION_TTL_S
                out["sessions"].append(_session(rng, user["id"], visit, ip, agent))
                user["login_count"] += 1
                user["last_login_at"] = user["updated_at"] = _d1(visit)
            out["sessions"][-1]["last_active_at"] = _d1(visit)
            for _ in range(rng.randint(1, 4)):
                view = min(now - 1, visit + rng.random() * 1800)
                for _ in range(rng.randint(6, 18)):
                    at = min(now - 1, view + rng.random() * 3)
                    out["api_usage_log"].append(_usage(rng, internal_key, at, ip, agent))
                    key_use[internal_key].append(at)
            if own_key is not None and rng.random() < 0.5:
                for _ in range(rng.randint(1, 20)):
                    at = min(now - 1, visit + rng.random() * 3600)
                    out["api_usage_log"].append(_usage(rng, own_key["id"], at, ip, "ltm-client/1.0"))
                    key_use[own_key["id"]].append(at)
            if rng.random() < 0.5:
                for _ in range(rng.randint(1, 3)):
                    _search(rng, out, user["id"], min(now - 1, visit + rng.random() * 1800))
        first = False
        t += DAY_S


def _session(rng: random.Random, user_id: str, at: float, ip: str, agent: str) -> dict[str, Any]:
    token = uuid.UUID(int=rng.getrandbits(128), version=4)
    expires = at + SESSION_TTL_S
    # The app writes JS ISO strings; some rows carry D1's format (older code, manual fixes).
    expires_text = _iso(expires) if rng.random() < 0.8 else _d1(expires)
    return {"id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "user_id": user_id,
            "token_hash": hashlib.sha256(str(token).encode()).hexdigest(), "user_agent": agent, "ip_address": ip,
            "created_at": _d1(at), "expires_at": expires_text, "last_active_at": _d1(at)}


def _search(rng: random.Random, out: dict[str, list[dict[str, Any]]], user_id: str, at: float) -> None:
    artist, album = rng.choice(_ARTISTS)
    is_album = rng.random() < 0.7
    result_id = "".join(rng.choice(_BASE62) for _ in range(22))
    out["searches"].append({
        "id": _hex(rng, 32), "user_id": user_id, "search_type": "album" if is_album else "artist",
        "query": f"{artist} {album}" if is_album else artist, "result_id": result_id,
        "result_name": album if is_album else artist, "result_artist": artist, "searched_at": _d1(at)})
    if is_album:
        out["recent_searches"].append({
            "id": _hex(rng, 32), "spotify_id": result_id, "album_name": album, "artist_name": artist,
            "image_url": f"https://i.scdn.co/image/ab67616d0000b273{_hex(rng, 24)}", "searched_at": _d1(at)})


def _usage(rng: random.Random, key_id: str, at: float, ip: str, agent: str) -> dict[str, Any]:
    # This runs for every usage row (hundreds of thousands), hence the flat pools.
    r = rng.random
    return {"id": None, "api_key_id": key_id, "endpoint": _ENDPOINT_POOL[int(r() * len(_ENDPOINT_POOL))],
            "method": "GET", "status_code": _STATUS_POOL[int(r() * len(_STATUS_POOL))], "ip_address": ip,
            "user_agent": agent,
            "response_time_ms": int(math.exp(4.5 + 0.8 * rng.gauss())), "created_at": _d1(at)}


def _api_key(rng: random.Random, *, user_id: str | None, name: str, tier: str, created: float) -> dict[str, Any]:
    key = "ltm_" + _hex(rng, 32)
    return {"id": _hex(rng, 32), "user_id": user_id, "key_hash": hashlib.sha256(key.encode()).hexdigest(),
            "key_prefix": key[:8], "name": name, "tier": tier, "scopes": '["read"]', "rate_limit_rpm": None,
            "request_count": 0, "last_used_at": None, "created_at": _d1(created), "expires_at": None,
            "revoked_at": None}


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(digits * 4):0{digits}x}"


def _d1(epoch: float) -> str:
    """D1's ``datetime('now')`` format."""
    return _d1_second(int(epoch // 1))


@functools.lru_cache(maxsize=8192)
def _d1_second(second: int) -> str:
    # A page view's burst of /api rows shares a few seconds; formatting each once is a big saving.
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))


def _iso(epoch: float) -> str:
    """JavaScript's ``Date.prototype.toISOString()``."""
    ms = round(epoch * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"
