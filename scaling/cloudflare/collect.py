"""One collector run against a Cloudflare account: discover, probe, pull, store, report.

Each (dataset, subject) is pulled from its watermark minus an overlap (late data
is re-read and corrected by upsert) to now, or, after downtime, from as far back
as the node's ``notOlderThan`` allows. A budget error stops GraphQL for the run
(every replica then waits out the shared cooldown); other failures cost only
their dataset, whose watermark stays put so the next run catches up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from sqlalchemy import Engine

from scaling.circuit_breaker import CircuitBreaker
from scaling.clock import Clock
from scaling.cloudflare import storage
from scaling.cloudflare.errors import CloudflareError, Problem
from scaling.cloudflare.graphql import GraphQLClient
from scaling.cloudflare.pull import NodePlan, probe, pull
from scaling.cloudflare.rest import RestClient
from scaling.errors import CircuitOpen, ConfigurationError, RateLimited
from scaling.fetch import Fetcher
from scaling.rate_limit import RateLimiter
from scaling.settings import Settings
from scaling.store import StateStore

__all__ = ["CloudflareAccount", "CollectReport", "collect", "open_account"]

#: Re-read this much before the watermark each run: adaptive datasets fill in late.
OVERLAP_S = 3600.0
#: A dataset never pulled starts this far back (then catches up run by run within retention).
FIRST_PULL_S = 2 * 86400.0
_PERMISSION = {"script": "Workers Scripts Read", "d1": "D1 Read", "kv": "Workers KV Storage Read"}
_LIST_PATH = {"script": "/workers/scripts", "d1": "/d1/database", "kv": "/storage/kv/namespaces"}
_ID_KEY = {"script": "id", "d1": "uuid", "kv": "id"}


@dataclass
class CloudflareAccount:
    """The clients and ids for one account."""

    account_id: str
    gql: GraphQLClient
    rest: RestClient
    subjects: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class CollectReport:
    """What a run collected and what it could not (the job's JSON report)."""

    rows: dict[str, int] = field(default_factory=dict)
    windows: dict[str, list[float]] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    unconfirmed_found: dict[str, list[str]] = field(default_factory=dict)
    unconfirmed_missing: dict[str, list[str]] = field(default_factory=dict)
    d1: list[dict[str, object]] = field(default_factory=list)
    stopped: str | None = None
    graphql_requests: int = 0
    errors_under_200: int = 0

    def to_dict(self) -> dict[str, object]:
        return {"rows": self.rows, "windows": self.windows, "unavailable": self.unavailable,
                "unconfirmed_found": self.unconfirmed_found, "unconfirmed_missing": self.unconfirmed_missing,
                "d1": self.d1, "stopped": self.stopped, "graphql_requests": self.graphql_requests,
                "errors_under_200": self.errors_under_200}


def open_account(settings: Settings, store: StateStore, http: httpx.AsyncClient, *, clock: Clock) -> CloudflareAccount:
    """Clients for the configured account on the shared limiters and breakers.

    Raises:
        ConfigurationError: the token or account id is not set.
    """
    token, account = settings.cloudflare_api_token, settings.cloudflare_account_id
    if token is None or not account:
        raise ConfigurationError("set CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID to collect from Cloudflare",
                                 variable="CLOUDFLARE_API_TOKEN")
    gql_up, rest_up = settings.upstream("cloudflare"), settings.upstream("cloudflare_rest")
    gql = GraphQLClient(http, gql_up.base_url, token, RateLimiter.from_settings(store, settings, "cloudflare",
                                                                                clock=clock),
                        breaker=CircuitBreaker(store, "cloudflare", clock=clock), clock=clock,
                        timeout_s=gql_up.timeout)
    fetcher = Fetcher(http, "cloudflare_rest", RateLimiter.from_settings(store, settings, "cloudflare_rest",
                                                                          clock=clock),
                      breaker=CircuitBreaker(store, "cloudflare_rest", clock=clock), clock=clock,
                      timeout_s=rest_up.timeout, budget_s=20.0)
    subjects = {k: [v] for k, v in (("script", settings.cloudflare_script_name),
                                    ("d1", settings.cloudflare_d1_database_id),
                                    ("kv", settings.cloudflare_kv_namespace_id)) if v}
    return CloudflareAccount(account, gql, RestClient(fetcher, rest_up.base_url, token), subjects)


async def _discover(acct: CloudflareAccount, report: CollectReport) -> None:
    for kind in ("script", "d1", "kv"):
        if kind in acct.subjects:
            continue
        try:
            result = await acct.rest.get(f"/accounts/{acct.account_id}{_LIST_PATH[kind]}",
                                         endpoint=f"/accounts/:id{_LIST_PATH[kind]}", permission=_PERMISSION[kind])
        except CloudflareError as exc:
            report.unavailable[f"discover:{kind}"] = str(exc)
            if exc.problem in (Problem.THROTTLED, Problem.AUTH):
                return
            continue
        except RateLimited as exc:
            report.unavailable[f"discover:{kind}"] = f"Cloudflare REST in its 5-minute block: {exc}"
            return
        ids = [str(item[_ID_KEY[kind]]) for item in result if isinstance(item, dict) and _ID_KEY[kind] in item] \
            if isinstance(result, list) else []
        acct.subjects[kind] = ids[:10]


async def _pull_graphql(acct: CloudflareAccount, engine: Engine, report: CollectReport, now: float) -> None:
    try:
        found = await probe(acct.gql, acct.account_id)
    except (CloudflareError, RateLimited, CircuitOpen) as exc:
        report.stopped = f"schema probe: {exc}"
        return
    for name in found.missing_datasets:
        report.unavailable[name] = "not in this account's GraphQL schema"
    for name in found.disabled_datasets:
        report.unavailable[name] = "disabled for this account (settings node)"
    for plan in found.plans.values():
        report.unconfirmed_found[plan.spec.name] = list(plan.unconfirmed_found)
        report.unconfirmed_missing[plan.spec.name] = list(plan.unconfirmed_missing)
        if not acct.subjects.get(plan.spec.needs):
            report.unavailable.setdefault(plan.spec.name, f"no {plan.spec.needs} id configured or discovered")
            continue
        for subject in acct.subjects[plan.spec.needs]:
            if not await _pull_one(acct, engine, report, plan, subject, now):
                return


async def _pull_one(acct: CloudflareAccount, engine: Engine, report: CollectReport, plan: NodePlan, subject: str,
                    now: float) -> bool:
    """Pull one (dataset, subject); False when GraphQL must stop for this run."""
    name = plan.spec.name
    mark = storage.read_watermark(engine, name, subject)
    start = now - FIRST_PULL_S if mark is None else mark - max(OVERLAP_S, plan.bucket_s)
    start = max(start, now - plan.not_older_than_s + 60.0)
    if plan.bucket_s:
        start = start // plan.bucket_s * plan.bucket_s
    try:
        rows = await pull(acct.gql, acct.account_id, plan, subject, start, now, now=now)
    except RateLimited as exc:
        report.stopped = f"GraphQL budget in cooldown: {exc}"
        return False
    except CircuitOpen as exc:
        report.stopped = str(exc)
        return False
    except CloudflareError as exc:
        report.unavailable[name] = str(exc)
        if exc.problem in (Problem.BUDGET, Problem.AUTH):
            report.stopped = str(exc)
            return False
        return True
    if plan.spec.raw:
        written = storage.write_cron_runs(engine, subject, rows, now=now)
    else:
        written = storage.write_usage(engine, name, subject, plan.bucket_s, rows, now=now)
    storage.write_watermark(engine, name, subject, now, now=now)
    report.rows[name] = report.rows.get(name, 0) + written
    report.windows[name] = [start, now]
    return True


async def _pull_d1_info(acct: CloudflareAccount, engine: Engine, report: CollectReport, now: float) -> None:
    for db in acct.subjects.get("d1", []):
        try:
            result = await acct.rest.get(f"/accounts/{acct.account_id}/d1/database/{db}",
                                         endpoint="/accounts/:id/d1/database/:db", permission="D1 Read")
        except CloudflareError as exc:
            report.unavailable["d1_database"] = str(exc)
            return
        except RateLimited as exc:
            report.unavailable["d1_database"] = f"Cloudflare REST in its 5-minute block: {exc}"
            return
        if not isinstance(result, dict):
            report.unavailable["d1_database"] = "GET d1/database answered no result object"
            return
        rr = result.get("read_replication")
        size = result.get("file_size")
        file_size = int(size) if isinstance(size, (int, float)) else None
        info = storage.D1Database(db, str(result.get("name", "")), file_size,
                                  str(rr.get("mode")) if isinstance(rr, dict) and rr.get("mode") else None,
                                  str(result["running_in_region"]) if result.get("running_in_region") else None)
        storage.write_d1_database(engine, info, now=now)
        report.d1.append({"database_id": db, "name": info.name, "file_size_bytes": info.file_size_bytes,
                          "read_replication": info.read_replication_mode})


async def collect(acct: CloudflareAccount, engine: Engine, *, now: float) -> CollectReport:
    """One run: discover ids (REST), probe and pull every dataset (GraphQL), D1 database info (REST)."""
    report = CollectReport()
    await _discover(acct, report)
    await _pull_graphql(acct, engine, report, now)
    await _pull_d1_info(acct, engine, report, now)
    report.graphql_requests = acct.gql.stats.requests
    report.errors_under_200 = acct.gql.stats.errors_under_200
    return report
