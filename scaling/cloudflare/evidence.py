"""What the readiness rules read from the collected Cloudflare data (items 1.3, 2.3, 3.3, 4.2, 4.3)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from scaling.cloudflare.usage import d1_facts, platform_month
from scaling.metrics import models as m
from scaling.metrics.db import translate_errors

__all__ = ["CloudflareEvidence", "cloudflare_evidence"]

DAY = 86400.0
D1_MAX_BYTES = 10 * 1000**3


@dataclass(frozen=True)
class CloudflareEvidence:
    """The production account as of ``now``: freshness, D1, KV and the platform bill."""

    age_s: float
    d1_bytes: int | None
    d1_share: float | None
    read_replication: str | None
    d1_rows_read_24h: float
    d1_rows_written_24h: float
    kv_reads_24h: float
    kv_writes_24h: float
    platform_mtd_usd: float
    platform_projected_usd: float

    def replication_text(self) -> str:
        """4.2 in words: replication off means every query is served by the primary."""
        if self.read_replication == "disabled":
            return "read replication: disabled; 100% of queries served by the primary"
        if self.read_replication == "auto":
            return ("read replication: auto; replicas serve reads only through the Sessions API "
                    "(share served by replicas not visible in the analytics)")
        return "read replication: unknown (D1 Read permission needed for GET d1/database)"


def cloudflare_evidence(engine: Engine, now: float) -> CloudflareEvidence | None:
    """None when the collector has stored nothing from Cloudflare by ``now``."""
    u = m.CLOUDFLARE_USAGE
    with translate_errors(engine, "read cloudflare_usage"), engine.connect() as conn:
        newest = conn.execute(select(func.max(u.c.pulled_at)).where(u.c.source == "cloudflare",
                                                                   u.c.pulled_at <= now)).scalar()
        if newest is None:
            return None
        kv = dict(conn.execute(select(u.c.dimension, func.sum(u.c.value)).where(
            u.c.source == "cloudflare", u.c.dataset == "kvOperationsAdaptiveGroups", u.c.metric == "requests",
            u.c.ts >= now - DAY, u.c.ts < now).group_by(u.c.dimension)).all())
    dbs = d1_facts(engine, now)
    size = sum(d.file_size_bytes or 0 for d in dbs) if dbs else None
    largest = max((d.file_size_bytes or 0 for d in dbs), default=None)
    month = platform_month(engine, now)
    return CloudflareEvidence(
        age_s=now - float(newest), d1_bytes=size, d1_share=None if largest is None else largest / D1_MAX_BYTES,
        read_replication=dbs[0].read_replication_mode if dbs else None,
        d1_rows_read_24h=sum(d.rows_read_24h for d in dbs), d1_rows_written_24h=sum(d.rows_written_24h for d in dbs),
        kv_reads_24h=float(kv.get("read") or 0), kv_writes_24h=float(kv.get("write") or 0),
        platform_mtd_usd=month.month_to_date.total_usd, platform_projected_usd=month.projected.total_usd)
