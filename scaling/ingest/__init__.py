"""Bring the production Worker's own telemetry into Headroom.

``wrangler tail --format=json`` output becomes metric rows labelled ``source="worker"``
(`ingest_tail`); a ``wrangler d1 export`` dump becomes app-DB rows (`load_d1_export`).
"""

from __future__ import annotations

from scaling.ingest.d1_export import D1Report, load_d1_export
from scaling.ingest.ledger import LedgerWriter, WriteResult
from scaling.ingest.tail_ingest import TailSummary, ingest_tail
from scaling.ingest.tail_metrics import MappedEvent, NotATailEvent, TailMapper
from scaling.ingest.tail_stream import RawEvent, Skipped, TailReader

__all__ = [
    "D1Report", "LedgerWriter", "MappedEvent", "NotATailEvent", "RawEvent", "Skipped", "TailMapper", "TailReader",
    "TailSummary", "WriteResult", "ingest_tail", "load_d1_export",
]
