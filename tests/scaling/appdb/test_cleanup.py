"""Batched cleanup: what goes, what stays, both timestamp formats, crashes and dry runs."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, event, text

from scaling.appdb.cleanup import BatchInfo, Retention, run_cleanup
from scaling.appdb.engine import make_engine
from scaling.clock import VirtualClock
from scaling.settings import Settings

from .conftest import NOW

DAY = 86_400


def d1(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def iso(epoch: float) -> str:
    ms = round(epoch * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def add_sessions(engine: Engine, expires: dict[str, str | None]) -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id) VALUES ('u') ON CONFLICT DO NOTHING"))
        conn.execute(text("INSERT INTO sessions (id, user_id, token_hash, expires_at) VALUES (:id, 'u', :id, :e)"),
                     [{"id": k, "e": v} for k, v in expires.items()])


def add_searches(engine: Engine, when: dict[str, str | None]) -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id) VALUES ('u') ON CONFLICT DO NOTHING"))
        conn.execute(text("INSERT INTO searches (id, user_id, search_type, query, searched_at) "
                          "VALUES (:id, 'u', 'album', 'q', :t)"), [{"id": k, "t": v} for k, v in when.items()])


def add_recent(engine: Engine, when: dict[str, str | None]) -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO recent_searches (id, spotify_id, album_name, artist_name, searched_at) "
                          "VALUES (:id, 's', 'a', 'b', :t)"), [{"id": k, "t": v} for k, v in when.items()])


def add_usage(engine: Engine, when: dict[int, str | None]) -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO api_usage_log (id, endpoint, created_at) VALUES (:id, '/api/x', :t)"),
                     [{"id": k, "t": v} for k, v in when.items()])


def ids(engine: Engine, table: str) -> set[object]:
    with engine.connect() as conn:
        return set(conn.execute(text(f"SELECT id FROM {table}")).scalars())


def boundary_rows(cutoff: float) -> tuple[dict[str, str], set[str]]:
    """Rows around a cutoff in both formats, and the ids that must survive."""
    rows = {
        "old-d1": d1(cutoff - 40 * DAY), "old-iso": iso(cutoff - 40 * DAY),
        "day-d1": d1(cutoff - DAY), "sec-d1": d1(cutoff - 1), "ms-iso": iso(cutoff - 0.001),
        "at-d1": d1(cutoff), "at-iso": iso(cutoff), "after-iso": iso(cutoff + 0.001), "after-d1": d1(cutoff + 1),
        "new-d1": d1(cutoff + 10 * DAY),
    }
    return rows, {"at-d1", "at-iso", "after-iso", "after-d1", "new-d1"}


def quiet(**kw: object) -> dict[str, object]:
    """Keyword arguments that keep a test off the real clock."""
    vc = VirtualClock()
    return {"clock": vc.now, "sleep": vc.advance, **kw}


def test_old_rows_of_every_table_go_and_rows_inside_retention_stay(engine: Engine) -> None:
    """Each table loses exactly its rows before the cutoff, whichever format they are in."""
    r = Retention()
    cutoffs = {"sessions": NOW, "searches": NOW - r.searches_days * DAY,
               "recent_searches": NOW - r.recent_searches_days * DAY, "api_usage_log": NOW - r.usage_log_days * DAY}
    keep: dict[str, set[object]] = {}
    for table, add in (("sessions", add_sessions), ("searches", add_searches), ("recent_searches", add_recent)):
        rows, keep[table] = boundary_rows(cutoffs[table])
        add(engine, rows)
    rows, kept = boundary_rows(cutoffs["api_usage_log"])
    numbered = dict(enumerate(rows.values(), start=1))
    add_usage(engine, numbered)
    keep["api_usage_log"] = {n for n, k in zip(numbered, rows) if k in kept}

    report = run_cleanup(engine, now=NOW, retention=r, **quiet())

    for table, expected in keep.items():
        assert ids(engine, table) == expected, table
    assert report.deleted == {"sessions": 5, "searches": 5, "recent_searches": 5, "api_usage_log": 5}
    assert ids(engine, "users") == {"u"}


def test_expired_sessions_go_in_one_run_in_both_formats(engine: Engine) -> None:
    """ISO and D1 expiry times compare on one timeline to the millisecond, including the 'T' vs ' ' case."""
    now = NOW + 0.5  # 2026-01-02 12:00:00.500 UTC
    add_sessions(engine, {
        # Same day, hours ago, ISO: raw text says '…T03' > '… 12', so upstream's query keeps it.
        "iso-9h-ago": "2026-01-02T03:00:00.000Z",
        "iso-late-yesterday": "2026-01-01T23:59:59.000Z",
        "iso-just-expired": "2026-01-02T12:00:00.499Z",
        "iso-expires-now": "2026-01-02T12:00:00.500Z",
        "iso-live": "2026-01-02T12:00:00.501Z",
        "d1-expired": "2026-01-02 11:59:59",
        "d1-this-second": "2026-01-02 12:00:00",
        "d1-live": "2026-01-02 12:00:01",
        "iso-tomorrow": "2026-01-03T00:00:00.000Z",
        "no-millis-expired": "2026-01-02T12:00:00Z",
        "trailing-zeros-live": "2026-01-02T12:00:00.5000Z",
    })
    with engine.connect() as conn:
        naive = conn.execute(text("SELECT count(*) FROM sessions WHERE expires_at < :n"), {"n": d1(now)}).scalar()

    report = run_cleanup(engine, now=now, **quiet())

    assert ids(engine, "sessions") == {"iso-expires-now", "iso-live", "d1-live", "iso-tomorrow",
                                       "trailing-zeros-live"}
    assert report.deleted["sessions"] == 6
    assert naive == 2  # the upstream comparison would have missed four of them


def test_values_that_are_not_timestamps_are_never_deleted(engine: Engine) -> None:
    """NULL, empty and non-date text survive, even though some sort before any cutoff."""
    add_searches(engine, {"null": None, "empty": "", "slashes": "1/2/2020", "word": "yesterday",
                          "old": "2020-01-01 00:00:00"})
    run_cleanup(engine, now=NOW, **quiet())
    assert ids(engine, "searches") == {"null", "empty", "slashes", "word"}


@pytest.mark.parametrize(("crash_after", "committed"), [(1, 10), (3, 22)])
def test_crash_mid_run_then_rerun_leaves_exactly_the_right_rows(engine: Engine, crash_after: int,
                                                                 committed: int) -> None:
    """A failure after some committed batches keeps them; a rerun finishes and never touches kept rows."""
    add_sessions(engine, {f"old{i}": iso(NOW - 3600 - i) for i in range(12)}
                 | {f"live{i}": iso(NOW + 60) for i in range(3)})
    add_searches(engine, {f"old{i}": d1(NOW - 100 * DAY - i) for i in range(25)} | {"new": d1(NOW - DAY)})
    add_usage(engine, {i: d1(NOW - 31 * DAY - i) for i in range(1, 96)} | {i: d1(NOW - DAY) for i in range(96, 116)})
    seen: list[BatchInfo] = []

    def crash(info: BatchInfo) -> None:
        seen.append(info)
        if len(seen) == crash_after:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        run_cleanup(engine, now=NOW, batch_size=10, on_batch=crash, **quiet())
    # Batches before the crash stay committed: sessions 10 (+2, then searches 10).
    assert sum(b.deleted for b in seen) == committed
    assert len(ids(engine, "sessions")) + len(ids(engine, "searches")) == 15 + 26 - committed

    report = run_cleanup(engine, now=NOW, batch_size=10, **quiet())

    assert ids(engine, "sessions") == {"live0", "live1", "live2"}
    assert ids(engine, "searches") == {"new"}
    assert ids(engine, "api_usage_log") == set(range(96, 116))
    assert report.total_deleted == 12 + 25 + 95 - committed
    again = run_cleanup(engine, now=NOW, batch_size=10, **quiet())
    assert again.total_deleted == 0


def test_dry_run_counts_and_deletes_nothing(engine: Engine) -> None:
    """--dry-run reports what a real run then deletes, and leaves every row in place."""
    add_sessions(engine, {"gone": iso(NOW - 60), "live": iso(NOW + 60)})
    add_usage(engine, {1: d1(NOW - 40 * DAY), 2: d1(NOW - 40 * DAY), 3: d1(NOW)})
    dry = run_cleanup(engine, now=NOW, dry_run=True, **quiet())
    assert dry.dry_run and dry.batches == 0
    assert ids(engine, "sessions") == {"gone", "live"} and ids(engine, "api_usage_log") == {1, 2, 3}
    real = run_cleanup(engine, now=NOW, **quiet())
    assert dry.deleted == real.deleted == {"sessions": 1, "searches": 0, "recent_searches": 0, "api_usage_log": 2}


def test_every_batch_is_bounded_by_batch_size(engine: Engine) -> None:
    """No transaction deletes more than --batch-size rows."""
    add_usage(engine, {i: d1(NOW - 40 * DAY) for i in range(1, 51)})
    seen: list[BatchInfo] = []
    report = run_cleanup(engine, now=NOW, batch_size=7, on_batch=seen.append, **quiet())
    usage = [b for b in seen if b.table == "api_usage_log"]
    assert max(b.deleted for b in usage) == 7 and all(b.limit <= 7 for b in usage)
    assert report.deleted["api_usage_log"] == 50 and len(usage) == 8


def test_slow_batches_shrink_and_fast_ones_grow(engine: Engine) -> None:
    """The batch size halves while batches exceed the target time and doubles while they are quick."""
    add_usage(engine, {i: d1(NOW - 40 * DAY) for i in range(1, 1201)})
    ticks = iter(range(10_000))
    slow: list[BatchInfo] = []
    # Every clock reading is 0.3 s after the previous one: each batch "takes" 0.3 s.
    report = run_cleanup(engine, now=NOW, batch_size=2000, clock=lambda: 0.3 * next(ticks), sleep=lambda s: None,
                         on_batch=slow.append)
    assert [b.limit for b in slow if b.table == "api_usage_log"][:6] == [500, 250, 125, 62, 50, 50]
    assert report.longest_batch_s == pytest.approx(0.3)

    add_usage(engine, {i: d1(NOW - 40 * DAY) for i in range(2001, 6001)})
    fast: list[BatchInfo] = []
    run_cleanup(engine, now=NOW, batch_size=2000, on_batch=fast.append, **quiet())
    assert [b.limit for b in fast if b.table == "api_usage_log"] == [500, 1000, 2000, 2000]


def test_the_app_can_write_between_batches(engine: Engine, db_url: str) -> None:
    """Each batch commits on its own, so another connection writes without waiting between batches."""
    add_usage(engine, {i: d1(NOW - 40 * DAY) for i in range(1, 31)})
    app = make_engine(db_url)
    if app.dialect.name == "sqlite":
        # No busy wait for the "app": a held write lock fails its insert at once.
        event.listen(app, "connect", lambda dbapi, _rec: dbapi.execute("PRAGMA busy_timeout = 0"))
    else:
        event.listen(app, "connect", lambda dbapi, _rec: dbapi.execute("SET lock_timeout = 1"))
    writes: list[int] = []

    def app_writes(info: BatchInfo) -> None:
        with app.begin() as conn:
            conn.execute(text("INSERT INTO recent_searches (spotify_id, album_name, artist_name) "
                              "VALUES ('s', 'a', 'b')"))
        if info.table == "api_usage_log":
            writes.append(info.deleted)

    try:
        run_cleanup(engine, now=NOW, batch_size=10, on_batch=app_writes, **quiet())
    finally:
        app.dispose()
    assert writes == [10, 10, 10, 0]
    assert len(ids(engine, "recent_searches")) == 3 + len(writes)  # one write after every batch


def test_pauses_between_batches_use_the_injected_sleep(engine: Engine) -> None:
    """The pause between batches goes through the injected sleep, so tests never wait for real."""
    add_usage(engine, {i: d1(NOW - 40 * DAY) for i in range(1, 26)})
    clock = VirtualClock()
    report = run_cleanup(engine, now=NOW, batch_size=10, pause_s=0.25, clock=clock.now, sleep=clock.advance)
    # Batches of 10, 10, 5: a pause after each full batch; duration is measured on the same clock.
    assert report.duration_s == pytest.approx(0.5)


def test_report_and_db_metrics_log_line(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    """The report serialises to JSON, carries stats after the run, and one [DB_METRICS] line is logged."""
    add_usage(engine, {1: d1(NOW - 40 * DAY), 2: d1(NOW)})
    with caplog.at_level(logging.INFO, logger="scaling.appdb.cleanup"):
        report = run_cleanup(engine, now=NOW, **quiet())
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("[DB_METRICS] ")]
    assert len(lines) == 1
    payload = json.loads(lines[0].removeprefix("[DB_METRICS] "))
    assert payload["deleted"]["api_usage_log"] == 1 and payload["rows"]["api_usage_log"] == 1
    as_dict = json.loads(json.dumps(report.as_dict()))
    assert as_dict["stats"]["rows"]["api_usage_log"] == 1
    assert as_dict["started_at"] == NOW and as_dict["cutoffs"]["sessions"] == "2026-01-02 12:00:00"


def test_retention_comes_from_settings(engine: Engine) -> None:
    """HEADROOM_RETENTION_* days decide the cutoffs."""
    retention = Retention.from_settings(Settings.defaults(retention_searches_days=10))
    assert retention == Retention(searches_days=10, recent_searches_days=30, usage_log_days=30)
    add_searches(engine, {"eleven": d1(NOW - 11 * DAY), "nine": d1(NOW - 9 * DAY)})
    run_cleanup(engine, now=NOW, retention=retention, **quiet())
    assert ids(engine, "searches") == {"nine"}


@pytest.mark.parametrize("bad", [0, -3, True])
def test_nonsense_retention_and_batch_sizes_are_refused(bad: int) -> None:
    """Zero, negative or boolean sizes raise a ValueError naming the parameter."""
    with pytest.raises(ValueError, match="searches_days"):
        Retention(searches_days=bad)


@pytest.fixture
def sqlite_engine(tmp_path: object) -> Iterator[Engine]:
    from scaling.appdb.migrate import upgrade

    url = f"sqlite:///{tmp_path}/a.db"
    upgrade(url)
    eng = make_engine(url)
    yield eng
    eng.dispose()


@pytest.mark.sqlite
def test_batch_size_must_be_positive(sqlite_engine: Engine) -> None:
    """A zero batch size is refused before anything is deleted."""
    with pytest.raises(ValueError, match="batch_size"):
        run_cleanup(sqlite_engine, now=NOW, batch_size=0)
