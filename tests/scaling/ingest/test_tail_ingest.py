"""Ingesting tail captures into the metrics DB: rows by source, nothing twice, live flushing, late data visible."""

from __future__ import annotations

import io
import json
import threading
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from scaling.clock import VirtualClock
from scaling.errors import StoreError
from scaling.ingest.ledger import LedgerWriter
from scaling.ingest.tail_ingest import TailSummary, ingest_tail
from scaling.ingest.tail_metrics import TailMapper
from scaling.ingest.tail_stream import RawEvent, TailReader
from scaling.metrics import models as m
from scaling.metrics import queries as q
from scaling.metrics.retention import roll_up
from scaling.metrics.rollups import WORKER
from tests.scaling.ingest.conftest import LINES, PRETTY, writer_for

T0 = 1_767_225_600.0


def ingest(engine: Engine, data: bytes, *, source: str = "worker", clock: VirtualClock | None = None,
           **kwargs: Any) -> TailSummary:
    mapper = TailMapper(source=source, clock=clock or VirtualClock())
    return ingest_tail(io.BytesIO(data), mapper=mapper, writer=writer_for(engine, source), **kwargs)


def count(engine: Engine, table: Any, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def rows(engine: Engine, table: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table).order_by(*table.primary_key.columns))]


def test_a_capture_lands_in_the_metrics_tables_labelled_worker(metrics_engine: Engine) -> None:
    """Invocations, cron runs, 429s, user counts, table and cache stats are written with source 'worker'."""
    summary = ingest(metrics_engine, PRETTY.read_bytes())
    counts = (summary.events, summary.skipped, summary.cron_runs, summary.upstream_429, summary.warnings)
    assert counts == (7, 4, 3, 1, 1)
    assert dict(summary.by_type) == {"scheduled": 3, "fetch": 3, "alarm": 1}
    events = rows(metrics_engine, m.WORKER_EVENTS)
    assert sorted(e["outcome"] for e in events) == ["exceededCpu", "exception", "ok", "ok", "ok", "ok",
                                                    "responseStreamDisconnected"]
    runs = rows(metrics_engine, m.JOB_RUNS)
    assert [(r["job"], r["outcome"], r["duration_s"]) for r in runs] == [
        ("worker-cron:listentomore:*/5 * * * *", "ok", 6.421),
        ("worker-cron:listentomore:*/5 * * * *", "failed", 30.05),
        ("worker-cron:listentomore:*/5 * * * *", "ok", 7.1)]
    assert json.loads(runs[0]["report"])["METRICS"]["activeUserCount"] == 17
    headroom = rows(metrics_engine, m.HEADROOM_SAMPLES)
    assert [(h["upstream"], h["used"], h["upstream_429"]) for h in headroom] == [("spotify", 125, 0), ("spotify", 0, 1)]
    assert [(u["total"], u["active"]) for u in rows(metrics_engine, m.USER_COUNTS)] == [(42, 17)]
    assert count(metrics_engine, m.DB_STATS) == 3 and count(metrics_engine, m.CACHE_STATS) == 1
    for table in (m.WORKER_EVENTS, m.JOB_RUNS, m.HEADROOM_SAMPLES, m.USER_COUNTS, m.DB_STATS, m.CACHE_STATS):
        assert {r["source"] for r in rows(metrics_engine, table)} == {"worker"}, table.name
    assert summary.written.total_rows == 7 + 3 + 2 + 1 + 3 + 1


def test_re_ingesting_adds_nothing_whatever_the_layout(metrics_engine: Engine) -> None:
    """The same file again, or its events re-printed one per line, add no rows and count as duplicates."""
    first = ingest(metrics_engine, PRETTY.read_bytes())
    again = ingest(metrics_engine, PRETTY.read_bytes())
    compact = b"\n".join(json.dumps(item.data).encode() for item in TailReader(io.BytesIO(PRETTY.read_bytes()))
                         if isinstance(item, RawEvent))
    relaid = ingest(metrics_engine, compact)
    assert first.written.total_rows == 17
    assert again.written.total_rows == relaid.written.total_rows == 0
    assert again.written.duplicates == relaid.written.duplicates == 7
    assert count(metrics_engine, m.WORKER_EVENTS) == 7 and count(metrics_engine, m.INGESTED_EVENTS) == 7
    assert "wrote 0 metric rows (7 duplicates)" in again.text()


def test_each_source_is_its_own_series(sqlite_metrics: Engine) -> None:
    """One capture ingested under two --source names is stored once per source, side by side."""
    ingest(sqlite_metrics, LINES.read_bytes(), source="worker")
    ingest(sqlite_metrics, LINES.read_bytes(), source="worker-staging")
    assert count(sqlite_metrics, m.WORKER_EVENTS, m.WORKER_EVENTS.c.source == "worker") == 6
    assert count(sqlite_metrics, m.WORKER_EVENTS, m.WORKER_EVENTS.c.source == "worker-staging") == 6


def test_the_summary_line_reads_like_the_issue_asks(sqlite_metrics: Engine) -> None:
    """Events by type, skips with the first position, cron runs, 429s, warnings, rows written and unknown fields."""
    text = ingest(sqlite_metrics, LINES.read_bytes()).text()
    assert text == (
        "ingested 6 events (fetch 4, alarm 1, scheduled 1); skipped 3 malformed (byte 878 line 3: not JSON: "
        "'this line is garbage:', then Expecting property name enclosed in double quotes at line 3 column 24; "
        "+2 more); 1 cron runs, 1 upstream 429s, 1 rate-limit warnings, 1 exceptions; outcomes other than ok: "
        "exception 1, someFutureOutcome 1; wrote 10 metric rows (0 duplicates). "
        "Fields nothing stores yet: brandNewField (1).")


class LivePipe(io.RawIOBase):
    """Delivers one event per read and records how many were stored by then."""

    def __init__(self, pieces: list[bytes], engine: Engine) -> None:
        self.pieces, self.engine, self.stored_at_read = list(pieces), engine, []

    def readable(self) -> bool:
        return True

    def read1(self, n: int = -1) -> bytes:
        self.stored_at_read.append(count(self.engine, m.WORKER_EVENTS))
        return self.pieces.pop(0) if self.pieces else b""


def _fetch(n: int) -> bytes:
    return json.dumps({"outcome": "ok", "eventTimestamp": T0 * 1000 + n, "event": {"request": {"url": f"/{n}"}}},
                      indent=2).encode() + b"\n"


def test_a_live_pipe_stores_each_event_before_waiting_for_the_next(sqlite_metrics: Engine) -> None:
    """With live=True, an event is in the metrics DB before the reader blocks for more input."""
    pipe = LivePipe([_fetch(n) for n in range(3)], sqlite_metrics)
    summary = ingest_tail(pipe, mapper=TailMapper(clock=VirtualClock()),  # type: ignore[arg-type]
                          writer=LedgerWriter(sqlite_metrics, source="worker"), live=True)
    assert pipe.stored_at_read == [0, 1, 2, 3] and summary.events == 3


def test_ctrl_c_stores_what_was_read_and_says_so(sqlite_metrics: Engine) -> None:
    """KeyboardInterrupt while waiting on the pipe ends the ingest cleanly, keeping every event read."""

    class Interrupted(io.RawIOBase):
        reads = 0

        def readable(self) -> bool:
            return True

        def read1(self, n: int = -1) -> bytes:
            self.reads += 1
            if self.reads > 2:
                raise KeyboardInterrupt
            return _fetch(self.reads)

    summary = ingest_tail(Interrupted(), mapper=TailMapper(clock=VirtualClock()),  # type: ignore[arg-type]
                          writer=LedgerWriter(sqlite_metrics, source="worker"))
    assert summary.interrupted and summary.events == 2 and count(sqlite_metrics, m.WORKER_EVENTS) == 2
    assert summary.text().endswith("Stopped by Ctrl-C after writing what was read.")


def test_an_older_capture_shows_up_in_already_rolled_up_hours(metrics_engine: Engine) -> None:
    """Events ingested after their hour was rolled up move the watermark back, so the next roll-up counts them."""
    ingest(metrics_engine, _fetch(0))
    roll_up(metrics_engine, WORKER, "worker", until=T0 + 3 * 3600)
    late = b"".join(_fetch(n) for n in range(1, 4))
    summary = ingest(metrics_engine, late)
    assert summary.written.rewound == {"worker_events"}
    with metrics_engine.connect() as conn:
        assert conn.execute(select(m.ROLLUP_STATE.c.rolled_until)
                            .where(m.ROLLUP_STATE.c.table_name == "worker_events")).scalar_one() == T0
    roll_up(metrics_engine, WORKER, "worker", until=T0 + 3 * 3600)
    series = q.worker_series(metrics_engine, T0, T0 + 3 * 3600, source="worker", bucket_s=3600)
    assert int(series["events"].sum()) == 4


def test_concurrent_ingests_of_one_capture_store_it_once(metrics_engine: Engine) -> None:
    """Four ingesters fed the same capture at once leave exactly one copy of each event."""
    data = b"".join(_fetch(n) for n in range(300))
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def worker() -> None:
        try:
            start.wait()
            ingest(metrics_engine, data, batch_events=50)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert count(metrics_engine, m.WORKER_EVENTS) == 300 and count(metrics_engine, m.INGESTED_EVENTS) == 300


def test_an_unmigrated_metrics_db_is_one_store_error(tmp_path: Any) -> None:
    """Writing into a database without the schema fails with a StoreError naming the fix."""
    from scaling.metrics.db import open_metrics_db

    engine = open_metrics_db(f"sqlite:///{tmp_path}/blank.db")
    try:
        with pytest.raises(StoreError, match="migrate"):
            ingest(engine, _fetch(1))
    finally:
        engine.dispose()


def test_events_older_than_raw_retention_are_flagged(sqlite_metrics: Engine) -> None:
    """Rows before the pruned watermark are stored but the summary warns the hourly views will miss them."""
    ingest(sqlite_metrics, _fetch(0))
    with sqlite_metrics.begin() as conn:
        conn.execute(m.ROLLUP_STATE.insert().values(table_name="worker_events", source="worker",
                                                    rolled_until=T0 + 7200, pruned_before=T0 + 3600))
    summary = ingest(sqlite_metrics, _fetch(1))
    assert summary.written.below_retention == 1 and "predate raw retention" in summary.text()


def test_dropped_payload_values_are_mentioned(sqlite_metrics: Engine) -> None:
    """A [METRICS] line with a bad count still ingests the event, and the summary says a value was dropped."""
    bad = json.dumps({"outcome": "ok", "eventTimestamp": T0 * 1000, "event": {"request": {}},
                      "logs": [{"message": ['[METRICS] {"userCount": -1}'], "timestamp": T0 * 1000}]}).encode()
    summary = ingest(sqlite_metrics, bad)
    assert summary.events == 1 and count(sqlite_metrics, m.USER_COUNTS) == 0
    assert ("1 payload values dropped (e.g. [METRICS] userCount must be a non-negative integer, got -1)"
            in summary.text())
