"""Schema probe and dataset pulls: windows within the node's limits, keyset pages, halving.

The probe reads the account's ``settings`` node once per run: which datasets
exist (a node the schema lacks is dropped and named, not fatal), each node's
``maxDuration``/``notOlderThan``/``maxPageSize`` and ``availableFields``, so
unconfirmed fields are asked for only where the account has them.

A pull walks ``[start, end)`` in windows no longer than ``maxDuration``; each
window is paged by keyset (ordered by bucket then group, next page filtered on
the last row's values, never a cursor). A "too expensive" or "time range too
large" answer splits the window in halves, down to one bucket.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from scaling.cloudflare.datasets import DATASETS, DatasetSpec, Field, build_query
from scaling.cloudflare.errors import CloudflareError, Problem
from scaling.cloudflare.graphql import GraphQLClient, JsonObject

__all__ = ["NodePlan", "Probe", "PulledRow", "probe", "pull"]

_SPLITTABLE = (Problem.TOO_EXPENSIVE, Problem.RANGE_TOO_LARGE)
MAX_PAGES = 200  # a runaway keyset loop costs at most this many of the 300 queries


@dataclass(frozen=True)
class NodePlan:
    """What the probe learned about one dataset and what will be asked of it."""

    spec: DatasetSpec
    fields: tuple[Field, ...]
    time_dim: str
    bucket_s: float
    max_duration_s: float
    not_older_than_s: float
    page_size: int
    unconfirmed_found: tuple[str, ...]
    unconfirmed_missing: tuple[str, ...]


@dataclass
class Probe:
    plans: dict[str, NodePlan] = field(default_factory=dict)
    missing_datasets: list[str] = field(default_factory=list)
    disabled_datasets: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PulledRow:
    """One value: for grouped datasets a (bucket, group, metric); for cron runs one run."""

    ts: float
    dimension: str
    metric: str
    value: float | str | None


def _settings_query(names: Sequence[str]) -> str:
    nodes = " ".join(f"{n} {{ enabled maxDuration maxPageSize notOlderThan availableFields }}" for n in names)
    return ("query Probe($account: string!) { viewer { accounts(filter: {accountTag: $account}) { settings { "
            f"{nodes} }} }} }} }}")


async def probe(gql: GraphQLClient, account: str, specs: Sequence[DatasetSpec] = DATASETS) -> Probe:
    """Read the ``settings`` node for ``specs``; datasets the schema lacks are dropped and reported."""
    result = Probe()
    names = [s.name for s in specs]
    while names:
        try:
            data = await gql.query(_settings_query(names), {"account": account})
            break
        except CloudflareError as exc:
            if exc.problem is not Problem.UNKNOWN_FIELD:
                raise
            named = [n for n in names if any(n in m for m in exc.messages)]
            if not named:
                raise
            result.missing_datasets += named
            names = [n for n in names if n not in named]
    else:
        return result
    settings = _dig(data, "viewer", "accounts", 0, "settings")
    if not isinstance(settings, dict):
        raise CloudflareError("Cloudflare GraphQL: the settings node answered no account", problem=Problem.MALFORMED,
                              upstream="cloudflare", endpoint="/graphql")
    for spec in specs:
        node = settings.get(spec.name)
        if spec.name not in names:
            continue
        if not isinstance(node, dict):
            result.missing_datasets.append(spec.name)
        elif node.get("enabled") is False:
            result.disabled_datasets.append(spec.name)
        else:
            result.plans[spec.name] = _plan(spec, node)
    return result


def _plan(spec: DatasetSpec, node: JsonObject) -> NodePlan:
    raw_available = node.get("availableFields")
    available = {str(a) for a in raw_available} if isinstance(raw_available, list) else None

    def has(name: str, documented: bool) -> bool:
        return name in available if available is not None else documented

    fields = tuple(f for f in spec.fields if has(f.available_name, f.documented))
    prefix = "" if spec.raw else "dimensions_"
    time_dim, bucket = next(((d, b) for d, b in spec.time_dims if has(prefix + d, True)), spec.time_dims[-1])
    unconfirmed = [f for f in spec.fields if not f.documented]
    extra = [d for d, _ in spec.time_dims[:-1]]
    found = [f.path for f in unconfirmed if f in fields] + ([time_dim] if time_dim in extra else [])
    missing = [f.path for f in unconfirmed if f not in fields]
    if spec.raw and available is None:
        found = [f.path for f in unconfirmed]  # the node itself answered: its fields exist
    return NodePlan(spec, fields, time_dim, bucket,
                    max_duration_s=_num(node.get("maxDuration"), 86400.0),
                    not_older_than_s=min(_num(node.get("notOlderThan"), spec.default_retention_s),
                                         spec.default_retention_s),
                    page_size=int(min(_num(node.get("maxPageSize"), 10000.0), 10000.0)),
                    unconfirmed_found=tuple(found), unconfirmed_missing=tuple(missing))


def _num(value: object, default: float) -> float:
    return float(value) if isinstance(value, (int, float)) and value > 0 else default


async def pull(gql: GraphQLClient, account: str, plan: NodePlan, subject: str, start: float, end: float,
               *, now: float) -> list[PulledRow]:
    """Every row of ``plan``'s dataset for ``subject`` in ``[start, end)`` (epoch seconds).

    ``start`` is clamped to the node's ``notOlderThan``. Raises `CloudflareError` for
    what halving cannot fix (budget, auth, a one-bucket window still too expensive).
    """
    start = max(start, now - plan.not_older_than_s + 60.0)
    rows: list[PulledRow] = []
    window = max(plan.max_duration_s, plan.bucket_s or 300.0)
    t = start
    while t < end:
        rows += await _window(gql, account, plan, subject, t, min(end, t + window))
        t += window
    return rows


async def _window(gql: GraphQLClient, account: str, plan: NodePlan, subject: str, start: float,
                  end: float) -> list[PulledRow]:
    try:
        return await _pages(gql, account, plan, subject, start, end)
    except CloudflareError as exc:
        smallest = max(plan.bucket_s, 300.0)
        if exc.problem not in _SPLITTABLE or end - start <= smallest:
            raise
    mid = start + (end - start) / 2
    if plan.bucket_s:
        mid = start + max(plan.bucket_s, (mid - start) // plan.bucket_s * plan.bucket_s)
    return (await _window(gql, account, plan, subject, start, mid)
            + await _window(gql, account, plan, subject, mid, end))


def _time_filter(plan: NodePlan, start: float, end: float) -> JsonObject:
    d = plan.time_dim
    if d == "date":
        return {"date_geq": _day(start), "date_leq": _day(end - 1)}
    return {f"{d}_geq": _iso(start), f"{d}_lt": _iso(end)}


async def _pages(gql: GraphQLClient, account: str, plan: NodePlan, subject: str, start: float,
                 end: float) -> list[PulledRow]:
    spec = plan.spec
    query = build_query(spec, plan.fields, plan.time_dim)
    base: JsonObject = {spec.subject_filter: subject, **_time_filter(plan, start, end)}
    rows: list[PulledRow] = []
    keyset: JsonObject | None = None
    for _ in range(MAX_PAGES):
        flt: JsonObject = base if keyset is None else {"AND": [base, keyset]}
        data = await gql.query(query, {"account": account, "filter": flt, "limit": plan.page_size})
        page = _dig(data, "viewer", "accounts", 0, spec.name)
        if not isinstance(page, list):
            raise CloudflareError(f"Cloudflare GraphQL: {spec.name} answered no list", problem=Problem.MALFORMED,
                                  upstream="cloudflare", endpoint="/graphql")
        last: tuple[object, object] | None = None
        for item in page:
            if isinstance(item, dict):
                parsed, key = _parse(plan, item)
                rows += parsed
                last = key
        if len(page) < plan.page_size or last is None:
            return rows
        keyset = _keyset(plan, last)
    raise CloudflareError(f"Cloudflare GraphQL: {spec.name} still paging after {MAX_PAGES} pages",
                          problem=Problem.OTHER, upstream="cloudflare", endpoint="/graphql")


def _keyset(plan: NodePlan, last: tuple[object, object]) -> JsonObject:
    """Rows after ``last`` in (bucket, group) order."""
    d, g = plan.time_dim, plan.spec.group_dim
    if g is None:
        return {f"{d}_gt": last[0]}
    return {"OR": [{f"{d}_gt": last[0]}, {d: last[0], f"{g}_gt": last[1]}]}


def _parse(plan: NodePlan, item: JsonObject) -> tuple[list[PulledRow], tuple[object, object]]:
    spec = plan.spec
    dims = item if spec.raw else item.get("dimensions")
    if not isinstance(dims, dict):
        raise CloudflareError(f"Cloudflare GraphQL: {spec.name} row without dimensions", problem=Problem.MALFORMED,
                              upstream="cloudflare", endpoint="/graphql")
    bucket_raw = dims.get(plan.time_dim)
    group_raw = dims.get(spec.group_dim) if spec.group_dim else ""
    ts = _epoch(bucket_raw)
    group = "" if group_raw is None else str(group_raw)
    out: list[PulledRow] = []
    for f in plan.fields:
        value = _dig(item, *f.path.split("."))
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            continue
        out.append(PulledRow(ts, group, f.metric, value))
    return out, (bucket_raw, group_raw)


def _dig(value: object, *path: str | int) -> object:
    for step in path:
        if isinstance(step, int):
            value = value[step] if isinstance(value, list) and len(value) > step else None
        else:
            value = value.get(step) if isinstance(value, dict) else None
    return value


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _day(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).date().isoformat()


def _epoch(value: object) -> float:
    text = str(value)
    try:
        if len(text) == 10:
            return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise CloudflareError(f"Cloudflare GraphQL: bad time value {text[:40]!r}", problem=Problem.MALFORMED,
                              upstream="cloudflare", endpoint="/graphql") from None
