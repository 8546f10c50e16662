"""The cloudflare collector against the sandbox's GraphQL and REST APIs, on both metrics backends."""

from __future__ import annotations

import dataclasses

import httpx
from sqlalchemy import Engine, func, select

from scaling.clock import VirtualClock
from scaling.cloudflare import CollectReport, collect, open_account
from scaling.metrics import models as m
from scaling.sandbox import Sandbox
from scaling.settings import RateSpec, Settings
from scaling.store import StateStore
from tests.scaling.cloudflare.conftest import TOKEN

U = m.CLOUDFLARE_USAGE
DATASETS = ("workersInvocationsAdaptive", "workersInvocationsScheduled", "d1AnalyticsAdaptiveGroups",
            "d1StorageAdaptiveGroups", "kvOperationsAdaptiveGroups", "kvStorageAdaptiveGroups")


def run(sandbox: Sandbox, store: StateStore, settings: Settings, engine: Engine, clock: VirtualClock,
        **overrides: object) -> CollectReport:
    """One collector run (a fresh set of clients: another replica, as far as the API can tell)."""
    if overrides:
        settings = dataclasses.replace(settings, **overrides)  # type: ignore[arg-type]

    async def go() -> CollectReport:
        async with httpx.AsyncClient(transport=sandbox.direct_transport(), base_url="http://sandbox") as http:
            return await collect(open_account(settings, store, http, clock=clock), engine, now=clock.now())

    return clock.run(go())


def requests_by_bucket(engine: Engine) -> dict[float, float]:
    with engine.connect() as conn:
        rows = conn.execute(select(U.c.ts, func.sum(U.c.value)).where(
            U.c.dataset == "workersInvocationsAdaptive", U.c.metric == "requests").group_by(U.c.ts)).all()
    return {float(ts): float(v) for ts, v in rows}


def usage_rows(engine: Engine, until: float = float("inf")) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(U).where(U.c.ts <= until)).scalar_one())


def test_first_run_collects_every_dataset_and_the_d1_database(sandbox: Sandbox, store: StateStore,
                                                             settings: Settings, engine: Engine,
                                                             clock: VirtualClock) -> None:
    """A token with both permissions collects all six datasets and D1's size and replication mode."""
    report = run(sandbox, store, settings, engine, clock)
    assert report.stopped is None, report.unavailable
    assert {d for d in DATASETS if report.rows.get(d, 0) > 0} == set(DATASETS), report.to_dict()
    assert report.d1[0]["read_replication"] == "disabled" and int(str(report.d1[0]["file_size_bytes"])) > 0
    assert "sum.cpuTimeUs" in report.unconfirmed_found["workersInvocationsAdaptive"]
    assert "datetimeFiveMinutes" in report.unconfirmed_found["workersInvocationsAdaptive"]
    assert "quantiles.wallTimeP99" in report.unconfirmed_missing["workersInvocationsAdaptive"]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(m.CLOUDFLARE_CRON_RUNS)).scalar_one() > 500


def test_keyset_pagination_gets_the_same_rows_in_small_pages(sandbox: Sandbox, store: StateStore,
                                                            settings: Settings, engine: Engine,
                                                            clock: VirtualClock) -> None:
    """With 50-row pages the collector pages by keyset and stores exactly what one big page holds."""
    sandbox.cloudflare.sim.max_page_size = 50
    report = run(sandbox, store, settings, engine, clock)
    assert report.graphql_requests > 60  # 1,728 invocation rows alone take 35 pages
    paged = requests_by_bucket(engine)
    buckets = len(paged)
    assert buckets == 2 * 86400 / 300
    assert report.rows["workersInvocationsAdaptive"] == buckets * 3 * 6  # 3 statuses x 6 metrics


def test_error_under_http_200_is_a_failure_and_the_next_run_recovers(sandbox: Sandbox, store: StateStore,
                                                                    settings: Settings, engine: Engine,
                                                                    clock: VirtualClock) -> None:
    """An errors array under HTTP 200 stops nothing silently: the run reports it, the next run collects."""
    sandbox.cloudflare.canned.append((200, {"data": None, "errors": [
        {"message": "unable to execute query", "path": None, "extensions": {"timestamp": "x"}}]}))
    report = run(sandbox, store, settings, engine, clock)
    assert report.errors_under_200 == 1
    assert report.stopped is not None and "unable to execute query" in report.stopped
    assert usage_rows(engine) == 0
    assert run(sandbox, store, settings, engine, clock).rows.get("workersInvocationsAdaptive", 0) > 0


def test_budget_error_stops_graphql_for_every_replica_until_the_window_passes(
        sandbox: Sandbox, store: StateStore, settings: Settings, engine: Engine, clock: VirtualClock) -> None:
    """A budget error (HTTP 200, code budget) starts the shared 5-minute cooldown; no replica queries in it."""
    sandbox.cloudflare.sim.graphql_limit = RateSpec.checked(3, 300.0)
    first = run(sandbox, store, settings, engine, clock)
    assert first.stopped is not None and "budget" in first.stopped
    sent = sandbox.cloudflare.queries
    clock.run(clock.sleep(60))
    second = run(sandbox, store, settings, engine, clock)
    assert second.stopped is not None and sandbox.cloudflare.queries == sent
    sandbox.cloudflare.sim.graphql_limit = RateSpec.checked(300, 300.0)
    sandbox.cloudflare.gql_windows.clear()
    clock.run(clock.sleep(300))
    assert run(sandbox, store, settings, engine, clock).stopped is None


def test_too_expensive_query_is_split_into_smaller_windows(sandbox: Sandbox, store: StateStore,
                                                          settings: Settings, engine: Engine,
                                                          clock: VirtualClock) -> None:
    """Windows over 6 hours are "too expensive": the collector halves them and still gets every bucket."""
    sandbox.cloudflare.sim.expensive_over_s = 6 * 3600.0
    report = run(sandbox, store, settings, engine, clock)
    assert report.stopped is None and "workersInvocationsAdaptive" not in report.unavailable
    assert len(requests_by_bucket(engine)) == 2 * 86400 / 300
    assert report.graphql_requests >= 1 + 6 * 8


def test_rest_block_is_honoured_by_every_replica(sandbox: Sandbox, store: StateStore, settings: Settings,
                                                 engine: Engine, clock: VirtualClock) -> None:
    """After one replica's REST 429, the others send no REST call until the 5-minute block ends."""
    sandbox.cloudflare.sim.rest_limit = RateSpec.checked(4, 300.0)
    first = run(sandbox, store, settings, engine, clock)  # 3 list calls + the D1 GET
    assert first.d1 and "d1_database" not in first.unavailable
    second = run(sandbox, store, settings, engine, clock)
    assert "blocked" in second.unavailable["discover:script"]
    sent = sandbox.cloudflare.rest_requests
    third = run(sandbox, store, settings, engine, clock)
    assert sandbox.cloudflare.rest_requests == sent  # the shared cooldown held this replica back
    assert "discover:script" in third.unavailable
    clock.run(clock.sleep(301))
    assert run(sandbox, store, settings, engine, clock).d1


def test_catch_up_after_two_days_down_leaves_no_gap(sandbox: Sandbox, store: StateStore, settings: Settings,
                                                   engine: Engine, clock: VirtualClock) -> None:
    """A run two days after the last one pulls everything in between: every 5-minute bucket, once."""
    run(sandbox, store, settings, engine, clock)
    first_newest = max(requests_by_bucket(engine))
    clock.run(clock.sleep(2 * 86400))
    report = run(sandbox, store, settings, engine, clock)
    assert report.stopped is None
    buckets = requests_by_bucket(engine)
    assert max(buckets) >= first_newest + 2 * 86400 and min(buckets) <= first_newest - 2 * 86400 + 300
    assert sorted(buckets) == [min(buckets) + 300 * i for i in range(len(buckets))]


def test_re_pulls_are_idempotent_and_late_data_is_corrected(sandbox: Sandbox, store: StateStore,
                                                           settings: Settings, engine: Engine,
                                                           clock: VirtualClock) -> None:
    """Re-pulling the overlap adds no row; the newest bucket, still filling in, is updated in place."""
    run(sandbox, store, settings, engine, clock)
    before = requests_by_bucket(engine)
    newest = max(before)
    rows_before = usage_rows(engine, newest)
    clock.run(clock.sleep(60))
    run(sandbox, store, settings, engine, clock)
    after = requests_by_bucket(engine)
    assert usage_rows(engine, newest) == rows_before  # same buckets, no duplicates
    assert {t: v for t, v in after.items() if t < newest - 600} == {t: v for t, v in before.items()
                                                                     if t < newest - 600}
    assert after[newest] > before[newest]  # late data corrected


def test_token_without_d1_read_names_the_permission_and_collects_the_rest(
        sandbox: Sandbox, store: StateStore, settings: Settings, engine: Engine, clock: VirtualClock) -> None:
    """A token lacking D1 Read gets a message naming it; Workers and KV are still collected."""
    from scaling.settings import Secret

    report = run(sandbox, store, settings, engine, clock, cloudflare_api_token=Secret("cf-no-d1-token"),
                 cloudflare_d1_database_id="d1-sandbox-0001")
    assert "D1 Read" in report.unavailable["d1_database"]
    assert report.rows["workersInvocationsAdaptive"] > 0 and report.rows["kvOperationsAdaptiveGroups"] > 0
    assert report.rows["d1AnalyticsAdaptiveGroups"] > 0  # analytics need Account Analytics Read only
    assert TOKEN not in str(report.to_dict())
