"""Readiness evidence from the collected Cloudflare data: D1 size, replication, KV and the platform bill."""

from __future__ import annotations

import httpx
from sqlalchemy import Engine

from scaling.capacity.evidence import Evidence
from scaling.capacity.readiness import assess
from scaling.clock import VirtualClock
from scaling.cloudflare import collect, open_account
from scaling.cloudflare.evidence import cloudflare_evidence
from scaling.sandbox import Sandbox
from scaling.settings import Settings
from scaling.store import StateStore


def test_readiness_items_cite_the_production_account(sandbox: Sandbox, store: StateStore, settings: Settings,
                                                     engine: Engine, clock: VirtualClock) -> None:
    """4.2 says replication is disabled and the primary serves every query; 1.3, 3.3 and 4.3 cite D1, KV, $."""
    assert cloudflare_evidence(engine, clock.now()) is None

    async def go() -> None:
        async with httpx.AsyncClient(transport=sandbox.direct_transport()) as http:
            await collect(open_account(settings, store, http, clock=clock), engine, now=clock.now())

    clock.run(go())
    cf = cloudflare_evidence(engine, clock.now())
    assert cf is not None and cf.d1_bytes and cf.kv_reads_24h > 0 and cf.platform_mtd_usd >= 5.0
    readiness = assess(Evidence(now=clock.now(), source="collectors", cache_hits=8, cache_misses=2, cache_age_s=60.0,
                                cloudflare=cf), settings=settings)
    assert "read replication: disabled; 100% of queries served by the primary" in readiness.item("4.2").evidence
    assert "production KV" in readiness.item("3.3").evidence
    assert "platform $" in readiness.item("4.3").evidence
