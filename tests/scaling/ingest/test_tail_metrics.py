"""TailMapper: each tail event becomes a Worker invocation row, cron runs, and the metrics its log lines carry."""

from __future__ import annotations

import json
from typing import Any

import pytest

from scaling.clock import VirtualClock
from scaling.ingest.tail_metrics import NotATailEvent, TailMapper, event_key, event_type
from scaling.metrics.records import CacheStats, HeadroomSample, TableStats, UserCounts

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in ms


def log(message: Any, ms: int = T0 + 500) -> dict[str, Any]:
    return {"message": message if isinstance(message, list) else [message], "level": "log", "timestamp": ms}


def scheduled(outcome: str = "ok", logs: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {"outcome": outcome, "scriptName": "listentomore", "exceptions": [], "logs": logs or [],
            "eventTimestamp": T0 + 40, "event": {"cron": "*/5 * * * *", "scheduledTime": T0}, **extra}


def fetch(logs: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {"outcome": "ok", "exceptions": [], "logs": logs or [], "eventTimestamp": T0 + 10_000,
            "event": {"request": {"url": "https://listentomore.com/", "method": "GET", "headers": {}, "cf": {}}},
            **extra}


@pytest.mark.parametrize(("ev", "kind"), [
    ({"cron": "0 * * * *", "scheduledTime": T0}, "scheduled"),
    ({"request": {"url": "https://x/"}}, "fetch"),
    ({"scheduledTime": "2026-01-01T00:00:40.000Z"}, "alarm"),
    ({"queue": "jobs", "batchSize": 3}, "queue"),
    ({"rpcMethod": "getUser"}, "rpc"),
    ({"mailFrom": "a@b", "rcptTo": "c@d", "rawSize": 10}, "email"),
    ({"consumedEvents": []}, "tail"),
    ({"somethingNew": 1}, "unknown"),
    (None, "unknown"),
])
def test_event_type_follows_the_shape_of_event(ev: Any, kind: str) -> None:
    """The event's shape names its type; an alarm is told from a cron by the missing cron field."""
    assert event_type({"outcome": "ok", "event": ev}) == kind


def test_a_cron_event_yields_its_invocation_and_its_run(mapper: TailMapper) -> None:
    """A scheduled event gives cron, scheduled time, outcome, wall and CPU time, and a run timed by wallTime."""
    mapped = mapper.map(scheduled(wallTime=6421, cpuTime=38))
    ev, run = mapped.event, mapped.run
    assert (ev.event_type, ev.outcome, ev.cron, ev.wall_ms, ev.cpu_ms, ev.ts, ev.source) == (
        "scheduled", "ok", "*/5 * * * *", 6421.0, 38.0, (T0 + 40) / 1000, "worker")
    assert run is not None and run.job == "worker-cron:listentomore:*/5 * * * *"
    assert (run.scheduled_at, run.started_at, run.duration_s, run.outcome) == (T0 / 1000, (T0 + 40) / 1000, 6.421, "ok")


def test_without_wall_time_the_cron_lines_time_the_run(mapper: TailMapper) -> None:
    """No wallTime: the [CRON] total is the duration, else [METRICS] cronDurationMs; the row's wall time follows."""
    by_cron = mapper.map(scheduled(logs=[log("[CRON] Total processing time: 7100ms"),
                                         log('[METRICS] {"cronDurationMs": 9000}')]))
    assert by_cron.run is not None and by_cron.run.duration_s == 7.1 and by_cron.event.wall_ms == 7100.0
    by_metrics = mapper.map(scheduled(logs=[log(["[METRICS]", '{"cronDurationMs": 9000}'])]))
    assert by_metrics.run is not None and by_metrics.run.duration_s == 9.0
    assert mapper.map(scheduled()).run.duration_s is None  # type: ignore[union-attr]


def test_a_failed_cron_run_says_why(mapper: TailMapper) -> None:
    """Any outcome but ok fails the run, with the first exception (or the outcome) as its error."""
    boom = mapper.map(scheduled("exception", exceptions=[{"name": "TypeError", "message": "x is undefined",
                                                          "timestamp": T0 + 900}]))
    assert boom.run is not None and (boom.run.outcome, boom.run.error) == ("failed", "TypeError: x is undefined")
    assert boom.event.exceptions == 1
    cpu = mapper.map(scheduled("exceededCpu"))
    assert cpu.run is not None and cpu.run.error == "outcome exceededCpu"


def test_unknown_outcomes_and_fields_are_kept_not_fatal(mapper: TailMapper) -> None:
    """An outcome outside the documented set is stored as reported; unknown top-level fields are listed."""
    mapped = mapper.map(fetch(outcome="responseStreamDisconnected", brandNew={"x": 1}, wallTime=2, truncated=False))
    assert mapped.event.outcome == "responseStreamDisconnected"
    assert mapped.unknown_fields == ("brandNew",)
    assert mapper.map({"event": {"request": {}}}).event.outcome == "unknown"


def test_an_object_that_is_not_a_tail_event_is_refused(mapper: TailMapper) -> None:
    """A JSON object with no outcome, event or eventTimestamp raises NotATailEvent (the ingester skips it)."""
    with pytest.raises(NotATailEvent):
        mapper.map({"colo": "AMS", "country": "NL"})


def test_events_without_a_timestamp_are_stamped_by_the_clock(clock: VirtualClock) -> None:
    """An event with no eventTimestamp gets the clock's time; an alarm falls back to its ISO scheduledTime."""
    mapper = TailMapper(clock=clock)
    assert mapper.map({"outcome": "ok", "event": {"request": {}}}).event.ts == clock.now()
    alarm = mapper.map({"outcome": "ok", "event": {"scheduledTime": "2026-01-01T00:00:40.000Z"}})
    assert alarm.event.ts == T0 / 1000 + 40


def test_429s_and_warnings_become_headroom_samples_per_upstream(mapper: TailMapper) -> None:
    """A warning is a snapshot at its count; a 429 starts a cooldown with the count reset, as the Worker does."""
    mapped = mapper.map(fetch(logs=[
        log("[Spotify] Rate limit warning: 125/150 requests in window", T0 + 100),
        log("[Spotify] 429 received, entering cooldown for 30s", T0 + 200),
        log("[Spotify] Rate limit cooldown, waiting 4000ms (attempt 1/3)", T0 + 300),
        log("[Spotify] Max retries (2) exceeded", T0 + 400),
        log("[openai] 429 received, entering cooldown for 5s", T0 + 500),
    ]))
    samples = [s for s in mapped.samples if isinstance(s, HeadroomSample)]
    got = [(s.upstream, s.used, s.limit, s.upstream_429, s.in_cooldown, s.throttled, s.wait_seconds, s.rejected, s.ts)
           for s in samples]
    assert got == [
        ("spotify", 125.0, 150.0, 0, False, 0, 0.0, 0, (T0 + 100) / 1000),
        ("spotify", 0.0, 150.0, 1, True, 1, 4.0, 1, (T0 + 200) / 1000),
        ("openai", 0.0, 150.0, 1, True, 0, 0.0, 0, (T0 + 500) / 1000),
    ]
    assert samples[1].cooldown_until == pytest.approx((T0 + 200) / 1000 + 30)
    assert (mapped.upstream_429, mapped.warnings) == (2, 1)
    assert all(s.source == "worker" for s in samples)


def test_a_limit_named_by_a_warning_is_used_for_later_429s(mapper: TailMapper) -> None:
    """An upstream whose limit only a warning line states gets that limit on its later 429 samples."""
    mapper.map(fetch(logs=[log("[anthropic] Rate limit warning: 41/50 requests in window")]))
    [sample] = mapper.map(fetch(logs=[log("[anthropic] 429 received, entering cooldown for 5s")])).samples
    assert isinstance(sample, HeadroomSample) and sample.limit == 50.0


def test_metrics_payload_gives_user_counts_and_a_run_report(mapper: TailMapper) -> None:
    """[METRICS] userCount/activeUserCount become a UserCounts row; the whole payload goes into the run's report."""
    payload = {"userCount": 42, "activeUserCount": 17, "cronDurationMs": 6344, "phase1DurationMs": 4521,
               "lastfmErrors": 1, "spotifyErrors": 0}
    mapped = mapper.map(scheduled(logs=[log(["[METRICS]", json.dumps(payload)], T0 + 6400)], wallTime=6400))
    [counts] = [s for s in mapped.samples if isinstance(s, UserCounts)]
    assert (counts.total, counts.with_lastfm, counts.active, counts.ts) == (42, 42, 17, (T0 + 6400) / 1000)
    assert mapped.run is not None and mapped.run.report["METRICS"] == payload  # type: ignore[index]


def test_db_metrics_in_both_formats_become_table_stats(mapper: TailMapper) -> None:
    """The plan's flat counts and Headroom's per-table format both map to TableStats, one row per table."""
    plan = mapper.map(scheduled(logs=[
        log("[CRON] Database size: 12.5MB, 51234 total rows"),
        log('[DB_METRICS] {"totalRows": 51234, "sessionCount": 880, "searchCount": 40012, "sessionDeletedCount": 12}'),
    ]))
    got = sorted((s.table_name, s.rows, s.bytes) for s in plan.samples if isinstance(s, TableStats))
    assert got == [("*", 51234, 13_107_200), ("searches", 40012, None), ("sessions", 880, None)]
    own = mapper.map(fetch(logs=[log('[DB_METRICS] {"totalRows": 10, "totalBytes": 4096, '
                                     '"tables": {"users": {"rows": 7, "bytes": 1024}}}')]))
    assert sorted((s.table_name, s.rows, s.bytes) for s in own.samples) == [("*", 10, 4096), ("users", 7, 1024)]


def test_cache_metrics_become_cache_stats(mapper: TailMapper) -> None:
    """Per-family cache figures (Headroom's format, a bare family map, or flat totals) become CacheStats."""
    for line, expected in [
        ('{"families": {"spotify:album": {"hits": 90, "misses": 10, "keys": 5000}}}', ("spotify:album", 90, 10, 5000)),
        ('{"ai:artistSummary": {"hits": 3, "misses": 1}}', ("ai:artistSummary", 3, 1, 0)),
        ('{"hits": 5, "misses": 5, "keys": 12}', ("*", 5, 5, 12)),
    ]:
        [stats] = mapper.map(fetch(logs=[log(f"[CACHE_METRICS] {line}")])).samples
        assert isinstance(stats, CacheStats) and (stats.family, stats.hits, stats.misses, stats.keys) == expected


def test_bad_values_in_a_payload_drop_that_record_with_a_note(mapper: TailMapper) -> None:
    """A negative or non-numeric count does not abort the event: the record is dropped and the note says why."""
    mapped = mapper.map(fetch(logs=[log('[METRICS] {"userCount": -3}'), log('[DB_METRICS] {"totalRows": "many"}'),
                                    log('[CACHE_METRICS] {"families": {"x": {"hits": -1}}}')]))
    assert mapped.samples == ()
    assert len(mapped.notes) == 3 and "userCount" in mapped.notes[0] and "'many'" in mapped.notes[1]


def test_the_key_ignores_formatting_and_identifies_a_cron_run_by_its_slot(mapper: TailMapper) -> None:
    """Pretty and compact copies of an event share a key; two captures of one cron slot share it even if logs differ."""
    ev = fetch(wallTime=5)
    assert event_key(json.loads(json.dumps(ev, indent=2))) == event_key(json.loads(json.dumps(ev)))
    assert event_key(ev) != event_key(fetch(wallTime=6))
    assert event_key(scheduled(wallTime=1)) == event_key(scheduled(logs=[log("extra")], truncated=True))
    assert event_key(scheduled()) != event_key({**scheduled(), "scriptName": "other-worker"})


def test_source_labels_every_record(clock: VirtualClock) -> None:
    """--source NAME goes on the invocation, the run and every sample."""
    mapped = TailMapper(source="worker-staging", clock=clock).map(scheduled(logs=[
        log('[METRICS] {"userCount": 1}'), log("[Spotify] 429 received, entering cooldown for 5s")]))
    assert mapped.event.source == mapped.run.source == "worker-staging"  # type: ignore[union-attr]
    assert {s.source for s in mapped.samples} == {"worker-staging"}
