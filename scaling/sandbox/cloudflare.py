"""Simulated Cloudflare account: the GraphQL Analytics endpoint and the REST v4 calls the collector makes.

Numbers come from the sandbox's listener population (requests per 5 minutes grow
with its size), so Worker requests, cron CPU, D1 rows, KV operations and the
database's size move together. The newest 10 minutes are still filling in
(values grow until a bucket is 10 minutes old), as real adaptive datasets do, so
re-pulling corrects them.

Faithful to reference/cloudflare.md: errors as ``{"data": null, "errors": [...]}``
(budget errors under HTTP 200, code ``budget``), "too expensive" as 429, node
limits as 400, 401 for an unknown token, 403 (v4 envelope, code 10000) for a
token without D1 Read (tokens starting ``cf-no-d1``); GraphQL 300 queries / 5 min
per token; REST 1,200 / 5 min, after which every call is blocked for 5 minutes
(429 + ``retry-after``); keyset filters (``_gt``/``_geq``/``_lt``/``_leq``, AND/OR),
no cursors. Queries are parsed with graphql-core.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graphql import FieldNode, GraphQLError, OperationDefinitionNode, parse, value_from_ast_untyped
from starlette.requests import Request

from scaling.sandbox.answer import Answer, Endpoint, bearer, key_label, read_json
from scaling.sandbox.population import Population
from scaling.sandbox.window import SlidingLog
from scaling.settings import RateSpec

__all__ = ["CloudflareSim", "CloudflareUpstream"]

_FIVE = 300.0


@dataclass
class CloudflareSim:
    """The simulated account's ids, limits and node settings (mutable: tests adjust them)."""

    account_id: str = "sandbox-account"
    script_name: str = "listentomore"
    database_id: str = "d1-sandbox-0001"
    namespace_id: str = "kv-sandbox-0001"
    graphql_limit: RateSpec = field(default_factory=lambda: RateSpec.checked(300, 300.0))
    rest_limit: RateSpec = field(default_factory=lambda: RateSpec.checked(1200, 300.0))
    rest_block_s: float = 300.0
    max_duration_s: float = 3 * 86400.0
    not_older_than_s: float = 31 * 86400.0
    max_page_size: int = 10000
    #: A window (seconds) longer than this answers "too expensive" (None: never).
    expensive_over_s: float | None = None
    #: Datasets this account's schema has (drop one to simulate an unknown node).
    datasets: tuple[str, ...] = ("workersInvocationsAdaptive", "workersInvocationsScheduled",
                                 "d1AnalyticsAdaptiveGroups", "d1StorageAdaptiveGroups",
                                 "kvOperationsAdaptiveGroups", "kvStorageAdaptiveGroups")
    read_replication: str = "disabled"


# What the simulated schema answers (third-party-only fields it lacks: wallTimeP99, queryBatchTimeMsP99).
_AVAILABLE = {
    "workersInvocationsAdaptive": ["sum_requests", "sum_errors", "sum_subrequests", "sum_cpuTimeUs",
                                   "quantiles_cpuTimeP50", "quantiles_cpuTimeP99", "dimensions_datetimeFiveMinutes",
                                   "dimensions_datetimeHour", "dimensions_date", "dimensions_status",
                                   "dimensions_scriptName"],
    "workersInvocationsScheduled": ["datetime", "scheduledDatetime", "cron", "status", "cpuTimeUs", "scriptName"],
    "d1AnalyticsAdaptiveGroups": ["sum_readQueries", "sum_writeQueries", "sum_rowsRead", "sum_rowsWritten",
                                  "sum_queryBatchResponseBytes", "quantiles_queryBatchTimeMsP90",
                                  "dimensions_datetimeFiveMinutes", "dimensions_datetimeHour", "dimensions_date",
                                  "dimensions_databaseId"],
    "d1StorageAdaptiveGroups": ["max_databaseSizeBytes", "dimensions_date", "dimensions_databaseId"],
    "kvOperationsAdaptiveGroups": ["sum_requests", "quantiles_latencyMsP50", "quantiles_latencyMsP99",
                                   "dimensions_datetimeFiveMinutes", "dimensions_date", "dimensions_actionType"],
    "kvStorageAdaptiveGroups": ["max_keyCount", "max_byteCount", "dimensions_date"],
}
_SUBJECT = {"workersInvocationsAdaptive": "scriptName", "workersInvocationsScheduled": "scriptName",
            "d1AnalyticsAdaptiveGroups": "databaseId", "d1StorageAdaptiveGroups": "databaseId",
            "kvOperationsAdaptiveGroups": "namespaceId", "kvStorageAdaptiveGroups": "namespaceId"}
_TIME_DIMS = {"datetimeFiveMinutes": 300.0, "datetimeHour": 3600.0, "date": 86400.0, "datetime": 300.0}
_STATUS_SHARE = (("success", 0.97), ("clientDisconnected", 0.02), ("scriptThrewException", 0.01))
_KV_SHARE = (("read", 1.5), ("write", 0.05), ("delete", 0.01), ("list", 0.002))


class _Reject(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class CloudflareUpstream:
    """The simulated account (state: quota windows, REST blocks, canned next answers)."""

    def __init__(self, sim: CloudflareSim, seed: int, population: Population) -> None:
        self.sim = sim
        self.seed = seed
        self.population = population
        self.reset()

    def reset(self) -> None:
        self.gql_windows: dict[str, SlidingLog] = {}
        self.rest_windows: dict[str, SlidingLog] = {}
        self.rest_blocked_until: dict[str, float] = {}
        #: Answers to give before any real one (tests: an error under 200, a 503 ...): (status, body).
        self.canned: list[tuple[int, dict[str, Any]]] = []
        self.queries = 0
        self.rest_requests = 0

    def endpoints(self) -> list[Endpoint]:
        base = "/client/v4/accounts/{account}"
        return [Endpoint("cloudflare", "POST", "/client/v4/graphql", "graphql", self.graphql),
                Endpoint("cloudflare", "GET", base + "/workers/scripts", "workers/scripts", self.rest),
                Endpoint("cloudflare", "GET", base + "/d1/database", "d1/database", self.rest),
                Endpoint("cloudflare", "GET", base + "/d1/database/{db}", "d1/database/:id", self.rest),
                Endpoint("cloudflare", "GET", base + "/storage/kv/namespaces", "kv/namespaces", self.rest)]

    # -- simulated usage ------------------------------------------------------------------

    def _requests(self, t: float) -> float:
        """Worker requests in the 5-minute bucket starting at ``t``: active users x a daily wave."""
        active = self.population.size * self.population.active_share
        hour = (t % 86400) / 3600
        wave = 1 + 0.5 * math.sin((hour - 8) / 24 * 2 * math.pi)
        noise = int.from_bytes(hashlib.blake2b(f"{self.seed}:{int(t)}".encode(), digest_size=2).digest()) / 65535
        return round(active * 2.0 * wave * (0.9 + 0.2 * noise))

    def _filled(self, t: float, width: float, now: float) -> float:
        """How much of a bucket's data has arrived: a bucket is complete 10 minutes after it ends."""
        return min(1.0, max(0.0, (now - t) / (width + 600)))

    def _size_bytes(self, t: float) -> float:
        days = max(0.0, (t - self.population.anchor) / 86400) + 30
        return 40e6 + self.population.size * 150e3 * days / 30

    def _rows(self, node: str, t0: float, t1: float, dim: str, now: float) -> list[dict[str, Any]]:
        width = _TIME_DIMS[dim]
        rows: list[dict[str, Any]] = []
        t = t0 // width * width
        while t < min(t1, now):
            if node == "workersInvocationsScheduled":
                rows.append(self._cron_row(t))
                t += width
                continue
            subs = [s * _FIVE + t for s in range(int(width // _FIVE))] or [t]
            reqs = sum(self._requests(s) * self._filled(s, _FIVE, now) for s in subs if s < now)
            rows += self._group_rows(node, t, dim, reqs)
            t += width
        return rows

    def _cron_row(self, t: float) -> dict[str, Any]:
        return {"datetime": _iso(t + 0.5), "scheduledDatetime": _iso(t), "cron": "*/5 * * * *", "status": "success",
                "cpuTimeUs": 120_000 + self.population.size * 300, "scriptName": self.sim.script_name}

    def _group_rows(self, node: str, t: float, dim: str, reqs: float) -> list[dict[str, Any]]:
        stamp = _day(t) if dim == "date" else _iso(t)
        base = {dim: stamp}
        if node == "workersInvocationsAdaptive":
            return [{**base, "status": status, "scriptName": self.sim.script_name,
                     "requests": round(reqs * share), "errors": round(reqs * share) if status != "success" else 0,
                     "subrequests": round(reqs * share * 4), "cpuTimeUs": round(reqs * share * 3500),
                     "cpuTimeP50": 2500.0, "cpuTimeP99": 18000.0} for status, share in _STATUS_SHARE]
        if node == "d1AnalyticsAdaptiveGroups":
            reads, writes = round(reqs * 3), round(reqs * 0.3)
            return [{**base, "databaseId": self.sim.database_id, "readQueries": reads, "writeQueries": writes,
                     "rowsRead": reads * 40, "rowsWritten": writes * 2, "queryBatchResponseBytes": reads * 900,
                     "queryBatchTimeMsP90": 4.2}]
        if node == "d1StorageAdaptiveGroups":
            return [{**base, "databaseId": self.sim.database_id, "databaseSizeBytes": round(self._size_bytes(t))}]
        if node == "kvOperationsAdaptiveGroups":
            return [{**base, "actionType": action, "namespaceId": self.sim.namespace_id, "requests": round(reqs * k),
                     "latencyMsP50": 3.0, "latencyMsP99": 25.0} for action, k in _KV_SHARE]
        keys = self.population.size * 20
        return [{**base, "namespaceId": self.sim.namespace_id, "keyCount": keys, "byteCount": keys * 2048}]

    # -- GraphQL ------------------------------------------------------------------------------

    async def graphql(self, request: Request, now: float) -> Answer:
        token = bearer(request)
        if not token or not token.startswith("cf-"):
            return Answer(401, _gql_error("Unauthorized", now), key=None)
        label = key_label(token)
        if self.canned:
            status, body = self.canned.pop(0)
            return Answer(status, body, key=label)
        window = self.gql_windows.setdefault(token, SlidingLog(self.sim.graphql_limit))
        if not window.admit(now).admitted:
            # Budget errors have been seen under HTTP 200 (cloudflare.md §1.3): the client must read the body.
            return Answer(200, _gql_error(f"Account {self.sim.account_id} has exceeded its rate limit. Please try "
                                          "again after 5 minutes.", now, "budget"), key=label)
        self.queries += 1
        payload = await read_json(request)
        try:
            data = self._execute(payload if payload is not None else {}, now)
        except _Reject as exc:
            return Answer(exc.status, _gql_error(exc.message, now, exc.code), key=label)
        return Answer(200, {"data": data, "errors": None}, key=label)

    def _execute(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        try:
            doc = parse(str(body.get("query", "")))
        except GraphQLError as exc:
            raise _Reject(400, f"error parsing args: {exc.message}") from None
        raw_vars = body.get("variables")
        variables: dict[str, Any] = raw_vars if isinstance(raw_vars, dict) else {}
        op = next((d for d in doc.definitions if isinstance(d, OperationDefinitionNode)), None)
        viewer = _child(op.selection_set.selections if op else (), "viewer")
        accounts = _child(viewer.selection_set.selections if viewer and viewer.selection_set else (), "accounts")
        if accounts is None or accounts.selection_set is None:
            raise _Reject(400, "object field must have selections")
        args = _args(accounts, variables)
        tag = (args.get("filter") or {}).get("accountTag")
        if tag != self.sim.account_id:
            raise _Reject(403, "not authorized for that account")
        out: dict[str, Any] = {}
        for node in accounts.selection_set.selections:
            if not isinstance(node, FieldNode):
                continue
            name = node.name.value
            if name == "settings":
                out[name] = self._settings(node)
            elif name in self.sim.datasets:
                out[name] = self._dataset(node, variables, now)
            else:
                raise _Reject(400, f'unknown field "{name}"')
        return {"viewer": {"accounts": [out]}}

    def _settings(self, node: FieldNode) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for child in node.selection_set.selections if node.selection_set else ():
            if not isinstance(child, FieldNode):
                continue
            if child.name.value not in self.sim.datasets:
                raise _Reject(400, f'unknown field "{child.name.value}"')
            node_settings = {"enabled": True, "maxDuration": self.sim.max_duration_s,
                             "maxPageSize": self.sim.max_page_size, "notOlderThan": self.sim.not_older_than_s,
                             "maxNumberOfFields": 30, "availableFields": _AVAILABLE[child.name.value]}
            out[child.name.value] = _select(child, node_settings)
        return out

    def _dataset(self, node: FieldNode, variables: dict[str, Any], now: float) -> list[dict[str, Any]]:
        name = node.name.value
        args = _args(node, variables)
        limit = int(args.get("limit") or 0)
        if not 0 < limit <= self.sim.max_page_size:
            raise _Reject(400, f"limit must be positive number and not greater than {self.sim.max_page_size}")
        flt = args.get("filter") or {}
        order = [str(o) for o in (args.get("orderBy") or [])]
        dim = next((o.rsplit("_", 1)[0] for o in order if o.rsplit("_", 1)[0] in _TIME_DIMS), "datetime")
        t0, t1 = _time_bounds(flt, dim, now)
        if t0 < now - self.sim.not_older_than_s:
            raise _Reject(400, f"cannot request data older than {self.sim.not_older_than_s:.0f}s")
        if t1 - t0 > self.sim.max_duration_s:
            raise _Reject(400, f"query time range is too large, max {self.sim.max_duration_s:.0f}s")
        if self.sim.expensive_over_s is not None and t1 - t0 > self.sim.expensive_over_s:
            raise _Reject(429, "query consumed excessive resources, please try running smaller queries")
        rows = [r for r in self._rows(name, t0, t1, dim, now) if _matches(r, flt)]
        for key in reversed(order):
            column, _, direction = key.rpartition("_")
            rows.sort(key=_sort_key(column), reverse=direction == "DESC")
        return [_select(node, r) for r in rows[:limit]]

    # -- REST ------------------------------------------------------------------------------------

    async def rest(self, request: Request, now: float) -> Answer:
        self.rest_requests += 1
        token = bearer(request)
        if not token or not token.startswith("cf-"):
            return Answer(401, _envelope(None, [(10000, "Authentication error")]))
        label = key_label(token)
        blocked = self.rest_blocked_until.get(token, 0.0)
        if blocked > now:
            return Answer(429, _envelope(None, [(971, "Please wait and consider throttling your request speed")]),
                          {"retry-after": str(math.ceil(blocked - now))}, key=label)
        window = self.rest_windows.setdefault(token, SlidingLog(self.sim.rest_limit))
        verdict = window.admit(now)
        if not verdict.admitted:
            self.rest_blocked_until[token] = now + self.sim.rest_block_s
            return Answer(429, _envelope(None, [(971, "Please wait and consider throttling your request speed")]),
                          {"retry-after": str(math.ceil(self.sim.rest_block_s))}, key=label)
        headers = {"ratelimit": f'"default";r={verdict.remaining};t={math.ceil(window.retry_after(now))}',
                   "ratelimit-policy": f'"default";q={self.sim.rest_limit.limit};w={self.sim.rest_limit.window:g}'}
        if request.path_params.get("account") != self.sim.account_id:
            return Answer(403, _envelope(None, [(10000, "Authentication error")]), headers, key=label)
        path = request.url.path
        if "/d1/" in path and token.startswith("cf-no-d1"):
            return Answer(403, _envelope(None, [(10000, "Authentication error")]), headers, key=label)
        return Answer(200, _envelope(self._rest_result(path, request.path_params.get("db"), now)), headers, key=label)

    def _rest_result(self, path: str, db: str | None, now: float) -> Any:
        if path.endswith("/workers/scripts"):
            return [{"id": self.sim.script_name}]
        if path.endswith("/storage/kv/namespaces"):
            return [{"id": self.sim.namespace_id, "title": "CACHE"}]
        if db is None:
            return [{"uuid": self.sim.database_id, "name": "listentomore"}]
        return {"uuid": db, "name": "listentomore", "created_at": "2025-06-01T00:00:00.000Z", "version": "production",
                "num_tables": 6, "file_size": round(self._size_bytes(now)), "running_in_region": "WEUR",
                "read_replication": {"mode": self.sim.read_replication}}


def _gql_error(message: str, now: float, code: str | None = None) -> dict[str, Any]:
    ext: dict[str, Any] = {"timestamp": _iso(now)}
    if code:
        ext["code"] = code
    return {"data": None, "errors": [{"message": message, "path": None, "extensions": ext}]}


def _envelope(result: Any, errors: list[tuple[int, str]] | None = None) -> dict[str, Any]:
    return {"result": result, "success": not errors, "errors": [{"code": c, "message": m} for c, m in errors or []],
            "messages": []}


def _child(selections: Any, name: str) -> FieldNode | None:
    return next((s for s in selections if isinstance(s, FieldNode) and s.name.value == name), None)


def _args(node: FieldNode, variables: dict[str, Any]) -> dict[str, Any]:
    return {a.name.value: value_from_ast_untyped(a.value, variables) for a in node.arguments or ()}


def _sort_key(column: str) -> Callable[[dict[str, Any]], str]:
    return lambda row: str(row.get(column, ""))


def _select(node: FieldNode, row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in node.selection_set.selections if node.selection_set else ():
        if not isinstance(child, FieldNode):
            continue
        name = child.name.value
        if child.selection_set is not None:
            out[name] = {g.name.value: row.get(g.name.value) for g in child.selection_set.selections
                         if isinstance(g, FieldNode)}
        else:
            out[name] = row.get(name)
    return out


_OPS: dict[str, Callable[[str, str], bool]] = {
    "gt": lambda a, b: a > b, "geq": lambda a, b: a >= b, "lt": lambda a, b: a < b, "leq": lambda a, b: a <= b,
    "neq": lambda a, b: a != b}


def _matches(row: dict[str, Any], flt: Any) -> bool:
    if not isinstance(flt, dict):
        return True
    for key, want in flt.items():
        if key == "AND":
            if not all(_matches(row, f) for f in want or []):
                return False
            continue
        if key == "OR":
            if not any(_matches(row, f) for f in want or []):
                return False
            continue
        column, _, op = key.rpartition("_")
        if op in _OPS and column:
            if not _OPS[op](str(row.get(column, "")), str(want)):
                return False
        elif str(row.get(key, "")) != str(want):
            return False
    return True


def _time_bounds(flt: Any, dim: str, now: float) -> tuple[float, float]:
    """The [start, end) the filter's top-level (or AND-ed) time bounds ask for."""
    lo, hi = None, None
    parts = [flt] + [f for f in (flt.get("AND") or []) if isinstance(f, dict)] if isinstance(flt, dict) else []
    for part in parts:
        for key, value in part.items():
            column, _, op = key.rpartition("_")
            if column != dim:
                continue
            t = _epoch(str(value))
            if op in ("geq", "gt"):
                lo = t if lo is None else max(lo, t)
            elif op == "lt":
                hi = t if hi is None else min(hi, t)
            elif op == "leq":
                end = t + (86400 if dim == "date" else 1)
                hi = end if hi is None else min(hi, end)
    if lo is None:
        raise _Reject(400, f"a time filter on {dim} is required")
    return lo, hi if hi is not None else now


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _day(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).date().isoformat()


def _epoch(text: str) -> float:
    try:
        if len(text) == 10:
            return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise _Reject(400, f"error parsing args: bad time {text[:40]!r}") from None
