"""The GraphQL datasets the collector pulls, as data: fields, filters, buckets (cloudflare.md §2).

Each `Field` says whether Cloudflare's docs name it (``documented``) or only
third-party code does; the schema probe keeps the unconfirmed ones only when the
account's ``availableFields`` lists them, and the run report says which were found.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DATASETS", "DatasetSpec", "Field", "build_query"]


@dataclass(frozen=True)
class Field:
    """One selected value: ``path`` as GraphQL nests it ("sum.requests"), stored as ``metric``."""

    path: str
    metric: str
    documented: bool = True

    @property
    def available_name(self) -> str:
        """How the settings node's ``availableFields`` spells it ("sum_requests")."""
        return self.path.replace(".", "_")


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset node.

    Attributes:
        name: the node ("workersInvocationsAdaptive").
        subject_filter: the filter key naming what is measured (script, database, namespace).
        time_dims: bucket dimensions in order of preference, each with its width in seconds.
        group_dim: a second dimension rows are split by ("status", "actionType"), or None.
        fields: the values selected.
        raw: a raw-row node (no sum/dimensions wrapper; cron runs).
        default_retention_s: how far back to catch up when the settings node does not say.
        needs: the subject kind: "script", "d1" or "kv".
    """

    name: str
    subject_filter: str
    time_dims: tuple[tuple[str, float], ...]
    group_dim: str | None
    fields: tuple[Field, ...]
    raw: bool = False
    default_retention_s: float = 31 * 86400
    needs: str = "script"


_FIVE = ("datetimeFiveMinutes", 300.0)
_HOUR = ("datetimeHour", 3600.0)
_DAY = ("date", 86400.0)

DATASETS: tuple[DatasetSpec, ...] = (
    DatasetSpec("workersInvocationsAdaptive", "scriptName", (_FIVE, _HOUR, _DAY), "status", (
        Field("sum.requests", "requests"), Field("sum.errors", "errors"), Field("sum.subrequests", "subrequests"),
        Field("sum.cpuTimeUs", "cpu_time_us_sum", documented=False),
        Field("quantiles.cpuTimeP50", "cpu_time_p50_us"), Field("quantiles.cpuTimeP99", "cpu_time_p99_us"),
        Field("quantiles.wallTimeP99", "wall_time_p99_us", documented=False),
    ), default_retention_s=90 * 86400),
    DatasetSpec("workersInvocationsScheduled", "scriptName", (("datetime", 0.0),), "cron", (
        Field("scheduledDatetime", "scheduled", documented=False), Field("status", "status", documented=False),
        Field("cpuTimeUs", "cpu_time_us", documented=False),
    ), raw=True, default_retention_s=90 * 86400),
    DatasetSpec("d1AnalyticsAdaptiveGroups", "databaseId", (_FIVE, _HOUR, _DAY), None, (
        Field("sum.readQueries", "read_queries"), Field("sum.writeQueries", "write_queries"),
        Field("sum.rowsRead", "rows_read"), Field("sum.rowsWritten", "rows_written"),
        Field("sum.queryBatchResponseBytes", "response_bytes"),
        Field("quantiles.queryBatchTimeMsP90", "query_time_p90_ms"),
        Field("quantiles.queryBatchTimeMsP99", "query_time_p99_ms", documented=False),
    ), needs="d1"),
    DatasetSpec("d1StorageAdaptiveGroups", "databaseId", (_DAY,), None, (
        Field("max.databaseSizeBytes", "database_size_bytes"),
    ), needs="d1"),
    DatasetSpec("kvOperationsAdaptiveGroups", "namespaceId", (_FIVE, _HOUR, _DAY), "actionType", (
        Field("sum.requests", "requests"), Field("quantiles.latencyMsP50", "latency_p50_ms"),
        Field("quantiles.latencyMsP99", "latency_p99_ms"),
    ), needs="kv"),
    DatasetSpec("kvStorageAdaptiveGroups", "namespaceId", (_DAY,), None, (
        Field("max.keyCount", "key_count"), Field("max.byteCount", "byte_count"),
    ), needs="kv"),
)


def _selection(paths: list[str]) -> str:
    """``["sum.a", "sum.b", "x"]`` -> ``sum { a b } x``."""
    groups: dict[str, list[str]] = {}
    flat: list[str] = []
    for path in paths:
        head, _, tail = path.partition(".")
        if tail:
            groups.setdefault(head, []).append(tail)
        else:
            flat.append(head)
    return " ".join([*(f"{g} {{ {' '.join(v)} }}" for g, v in groups.items()), *flat])


def build_query(spec: DatasetSpec, fields: tuple[Field, ...], time_dim: str) -> str:
    """The query for one page of ``spec``: variables ``$account``, ``$filter``, ``$limit``.

    Rows come ordered by (time bucket, group) ascending so the next page is the
    keyset filter on the last row (there are no cursors).
    """
    dims = [time_dim] + ([spec.group_dim] if spec.group_dim else [])
    order = ", ".join(f"{d}_ASC" for d in dims)
    if spec.raw:
        selection = _selection([*dims, *(f.path for f in fields)])
    else:
        selection = _selection([*(f.path for f in fields), *(f"dimensions.{d}" for d in dims)])
    filter_type = f"Account{spec.name[0].upper()}{spec.name[1:]}Filter_InputObject"
    return (f"query Pull($account: string!, $filter: {filter_type}, $limit: uint64!) {{ viewer {{ "
            f"accounts(filter: {{accountTag: $account}}) {{ "
            f"{spec.name}(limit: $limit, orderBy: [{order}], filter: $filter) {{ {selection} }} }} }} }}")
