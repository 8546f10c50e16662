"""``wrangler tail`` output in, metric rows out: the reader, the mapper and the ledger wired together.

Events are written in batches; a live pipe (``wrangler tail --format=json | ...``)
also flushes whenever the reader is about to wait for more input, so an event is in
the metrics DB as soon as it arrived, not when a batch fills. Ctrl-C ends a live
ingest cleanly: what was read is written, then the summary prints.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from scaling.ingest.ledger import LedgerWriter, WriteResult
from scaling.ingest.tail_metrics import MappedEvent, NotATailEvent, TailMapper
from scaling.ingest.tail_stream import WAITING, RawEvent, Skipped, TailReader

__all__ = ["TailSummary", "ingest_tail"]

log = logging.getLogger(__name__)

#: Events per transaction when reading a file.
BATCH_EVENTS = 2000
#: Skipped stretches described one by one; beyond this they are only counted.
MAX_DETAILS = 20


@dataclass
class TailSummary:
    """What an ingest read and wrote."""

    events: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    by_outcome: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    skipped_bytes: int = 0
    skipped_details: list[Skipped] = field(default_factory=list)
    cron_runs: int = 0
    exceptions: int = 0
    upstream_429: int = 0
    warnings: int = 0
    unknown_fields: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)
    written: WriteResult = field(default_factory=WriteResult)
    bytes_read: int = 0
    interrupted: bool = False

    def skip(self, item: Skipped) -> None:
        self.skipped += 1
        self.skipped_bytes += item.nbytes
        if len(self.skipped_details) < MAX_DETAILS:
            self.skipped_details.append(item)

    def count(self, mapped: MappedEvent) -> None:
        self.events += 1
        self.by_type[mapped.event.event_type] += 1
        self.by_outcome[mapped.event.outcome] += 1
        if mapped.run is not None:
            self.cron_runs += 1
        self.exceptions += mapped.event.exceptions
        self.upstream_429 += mapped.upstream_429
        self.warnings += mapped.warnings
        if mapped.unknown_fields:  # Counter.update is costly even when empty, and this runs per event
            self.unknown_fields.update(mapped.unknown_fields)
        if mapped.notes:
            self.notes.update(mapped.notes)

    def text(self) -> str:
        """The one-paragraph summary the CLI prints."""
        types = ", ".join(f"{k} {v:,}" for k, v in sorted(self.by_type.items(), key=lambda kv: (-kv[1], kv[0])))
        parts = [f"ingested {self.events:,} events" + (f" ({types})" if types else "")]
        if self.skipped:
            first = self.skipped_details[0].describe() if self.skipped_details else ""
            more = f"; +{self.skipped - 1:,} more" if self.skipped > 1 else ""
            parts.append(f"skipped {self.skipped:,} malformed ({first}{more})")
        else:
            parts.append("skipped 0 malformed")
        odd = {k: v for k, v in self.by_outcome.items() if k != "ok"}
        outcomes = ", ".join(f"{k} {v:,}" for k, v in sorted(odd.items(), key=lambda kv: (-kv[1], kv[0])))
        parts.append(f"{self.cron_runs:,} cron runs, {self.upstream_429:,} upstream 429s, "
                     f"{self.warnings:,} rate-limit warnings, {self.exceptions:,} exceptions"
                     + (f"; outcomes other than ok: {outcomes}" if outcomes else ""))
        w = self.written
        dupes = w.duplicates + w.duplicate_runs
        parts.append(f"wrote {w.total_rows:,} metric rows ({dupes:,} duplicates)")
        text = "; ".join(parts)
        if self.unknown_fields:
            seen = sorted(self.unknown_fields.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
            text += ". Fields nothing stores yet: " + ", ".join(f"{k} ({v:,})" for k, v in seen)
        if self.notes:
            first, _ = self.notes.most_common(1)[0]
            text += f". {sum(self.notes.values()):,} payload values dropped (e.g. {first})"
        if w.rewound:
            text += f". Older than the hourly roll-ups: {', '.join(sorted(w.rewound))} will be re-rolled"
        if w.below_retention:
            text += f". {w.below_retention:,} events predate raw retention and are missing from hourly views"
        if self.interrupted:
            text += ". Stopped by Ctrl-C after writing what was read"
        return text + "."

    def as_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready (``--json``)."""
        w = self.written
        return {
            "events": self.events, "by_type": dict(self.by_type), "by_outcome": dict(self.by_outcome),
            "skipped": self.skipped, "skipped_bytes": self.skipped_bytes,
            "skipped_details": [{"offset": s.offset, "line": s.line, "bytes": s.nbytes, "reason": s.reason}
                                for s in self.skipped_details],
            "cron_runs": self.cron_runs, "exceptions": self.exceptions, "upstream_429": self.upstream_429,
            "rate_limit_warnings": self.warnings, "unknown_fields": dict(self.unknown_fields),
            "notes": dict(self.notes), "bytes_read": self.bytes_read, "interrupted": self.interrupted,
            "written": {"events": w.events, "rows": w.total_rows, "rows_by_table": dict(w.rows),
                        "duplicate_events": w.duplicates, "duplicate_runs": w.duplicate_runs,
                        "rollups_rewound": sorted(w.rewound), "below_retention": w.below_retention},
        }


def ingest_tail(stream: BinaryIO, *, mapper: TailMapper, writer: LedgerWriter, live: bool = False,
                batch_events: int = BATCH_EVENTS, reader: TailReader | None = None) -> TailSummary:
    """Read every event from ``stream`` and store its metrics.

    Args:
        stream: binary input (a file, or ``sys.stdin.buffer``).
        mapper: turns events into records (its ``source`` labels the rows).
        writer: stores them, each event once.
        live: flush whenever the input goes quiet (a pipe from ``wrangler tail``).
        batch_events: events per transaction otherwise.
        reader: a configured `TailReader` over ``stream`` (default: one with standard limits).

    Returns:
        The counts; malformed input is in ``skipped``, never raised.

    Raises:
        StoreError: the metrics DB failed; everything flushed before that is stored.
    """
    summary = TailSummary()
    pending: list[MappedEvent] = []
    reader = reader or TailReader(stream)

    def flush() -> None:
        if pending:
            result = writer.write(pending)
            summary.written.add(result)
            log.info("stored %d new events (%d duplicates)", result.events, result.duplicates)
            pending.clear()

    try:
        for item in reader:
            if item is WAITING:
                if live:
                    flush()
                continue
            if isinstance(item, Skipped):
                summary.skip(item)
                continue
            assert isinstance(item, RawEvent)
            try:
                mapped = mapper.map(item.data)
            except NotATailEvent as exc:
                summary.skip(Skipped(item.offset, item.line, item.size, str(exc)))
                continue
            except (TypeError, ValueError, AttributeError, KeyError, RecursionError) as exc:
                # A shape the mapper does not expect costs this event, not the stream.
                summary.skip(Skipped(item.offset, item.line, item.size,
                                     f"event not understood: {type(exc).__name__}: {str(exc)[:120]}"))
                continue
            summary.count(mapped)
            pending.append(mapped)
            if len(pending) >= batch_events:
                flush()
    except KeyboardInterrupt:
        summary.interrupted = True
    summary.bytes_read = reader.bytes_read
    flush()
    return summary
