"""TailReader: pretty-printed or line-delimited events, any read size, garbage and damage skipped with positions."""

from __future__ import annotations

import io
import json
import tracemalloc
from typing import Any

import pytest

from scaling.ingest.tail_stream import WAITING, RawEvent, Skipped, TailReader
from tests.scaling.ingest.conftest import LINES, PRETTY


def read_all(data: bytes, **kwargs: Any) -> tuple[list[RawEvent], list[Skipped]]:
    events: list[RawEvent] = []
    skipped: list[Skipped] = []
    for item in TailReader(io.BytesIO(data), **kwargs):
        if isinstance(item, RawEvent):
            events.append(item)
        elif isinstance(item, Skipped):
            skipped.append(item)
    return events, skipped


def event(n: int, **extra: Any) -> dict[str, Any]:
    return {"outcome": "ok", "eventTimestamp": 1_767_225_600_000 + n, "logs": [], "exceptions": [],
            "event": {"request": {"url": f"https://x/{n}"}}, **extra}


def test_pretty_capture_yields_each_event_and_skips_the_damage_with_positions() -> None:
    """wrangler's multi-line output decodes event by event; banner, broken event, stray text and cut-off end are
    skipped."""
    events, skipped = read_all(PRETTY.read_bytes())
    assert [e.line for e in events] == [3, 46, 107, 131, 150, 163, 184]
    assert [e.data["outcome"] for e in events] == ["ok", "ok", "exception", "responseStreamDisconnected", "ok",
                                                 "exceededCpu", "ok"]
    assert [(s.line, s.offset) for s in skipped] == [(1, 0), (93, 2195), (130, 3024), (225, 5050)]
    assert skipped[0].reason.startswith("not JSON: 'Successfully created tail")
    assert skipped[1].reason == "Expecting ',' delimiter at line 96 column 3"
    assert skipped[3].reason == "input ends inside an event (truncated)"
    assert skipped[3].nbytes == len(PRETTY.read_bytes()) - 5050
    assert skipped[1].describe() == "byte 2,195 line 93: Expecting ',' delimiter at line 96 column 3"


def test_line_delimited_capture_reads_the_same_way() -> None:
    """One event per line (jq -c, Logpush) works too; a garbage line counts as one skip, not two."""
    events, skipped = read_all(LINES.read_bytes())
    assert [e.line for e in events] == [1, 2, 4, 6, 7, 8]
    assert [s.line for s in skipped] == [3, 5, 9]
    assert skipped[0].reason.startswith("not JSON: 'this line is garbage:', then Expecting property name")
    assert skipped[2].reason == "input ends inside an event (truncated)"


@pytest.mark.parametrize("chunk", [1, 2, 7, 64, 4096])
def test_the_read_size_never_changes_what_is_decoded(chunk: int) -> None:
    """Events, skips, offsets and reasons are identical whether input arrives a byte or 64 KiB at a time."""
    for path in (PRETTY, LINES):
        data = path.read_bytes()
        assert read_all(data, chunk_bytes=chunk) == read_all(data)


def test_events_back_to_back_without_whitespace_or_in_a_json_array() -> None:
    """`}{` with nothing between, and a JSON array of events, both decode without skips."""
    glued = b"".join(json.dumps(event(n)).encode() for n in range(3))
    events, skipped = read_all(glued, chunk_bytes=5)
    assert [e.data["eventTimestamp"] % 1000 for e in events] == [0, 1, 2] and skipped == []
    events, skipped = read_all(json.dumps([event(n) for n in range(3)], indent=2).encode(), chunk_bytes=5)
    assert len(events) == 3 and skipped == []


def test_a_broken_pretty_event_does_not_leak_its_nested_objects_as_events() -> None:
    """After a bad event the reader resumes at the next column-0 brace, not at an indented inner object."""
    broken = b'{\n  "outcome": "ok"\n  "event": {\n    "request": {\n      "url": "x"\n    }\n  }\n}\n'
    good = json.dumps(event(1), indent=2).encode()
    events, skipped = read_all(broken + good)
    assert [e.data["eventTimestamp"] for e in events] == [event(1)["eventTimestamp"]]
    assert len(skipped) == 1 and skipped[0].line == 1 and skipped[0].nbytes == len(broken)


def test_offsets_count_bytes_when_text_is_not_ascii() -> None:
    """Non-ASCII text and invalid UTF-8 before an event shift its byte offset by bytes, not characters."""
    junk = "Verbunden mit Sigur Rós ✓\n".encode() + b"\xff\xfe broken bytes\n"
    events, skipped = read_all(junk + json.dumps(event(1)).encode(), chunk_bytes=3)
    assert events[0].offset == len(junk) and events[0].line == 3
    assert skipped[0].offset == 0 and skipped[0].nbytes == len(junk)


def test_an_oversized_event_is_skipped_with_a_note_in_bounded_memory() -> None:
    """An event over the size limit is skipped (and says so) without being buffered; the next one still reads."""
    huge = json.dumps(event(1, logs=[{"message": ["x" * 1000]}] * 8000)).encode()  # ~8 MB
    data = huge + b"\n" + json.dumps(event(2)).encode()
    tracemalloc.start()
    try:
        events, skipped = read_all(data, max_event_bytes=256 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [e.data["eventTimestamp"] % 1000 for e in events] == [2]
    assert len(skipped) == 1 and skipped[0].nbytes == len(huge) + 1
    assert skipped[0].reason == "event larger than 262,144 bytes skipped"
    assert peak < 3 * 1024 * 1024, f"peak {peak:,} bytes while skipping an {len(huge):,}-byte event"


def test_megabytes_of_garbage_are_skipped_in_bounded_memory() -> None:
    """A long run of non-JSON text is dropped as it is read, counted as one skip."""
    garbage = b"log line without braces\n" * 400_000  # ~9.6 MB
    data = garbage + json.dumps(event(1)).encode()
    tracemalloc.start()
    try:
        events, skipped = read_all(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(events) == 1 and len(skipped) == 1 and skipped[0].nbytes == len(garbage)
    assert peak < 2 * 1024 * 1024


class Pipe(io.RawIOBase):
    """A live pipe: each read returns the next piece as it 'arrives', recording the order of reads."""

    def __init__(self, pieces: list[bytes], log: list[str]) -> None:
        self.pieces, self.log = list(pieces), log

    def readable(self) -> bool:
        return True

    def read1(self, n: int = -1) -> bytes:
        self.log.append("read")
        return self.pieces.pop(0) if self.pieces else b""


def test_each_event_is_handed_over_before_the_reader_waits_for_more_input() -> None:
    """On a pipe, an event is yielded (then WAITING) before the next read, so a live consumer sees it at once."""
    log: list[str] = []
    pieces = [json.dumps(event(n), indent=2).encode() + b"\n" for n in range(3)]
    for item in TailReader(Pipe(pieces, log)):  # type: ignore[arg-type]
        log.append("WAITING" if item is WAITING else type(item).__name__)
    assert log == ["WAITING", "read"] + ["RawEvent", "WAITING", "read"] * 3


def test_a_stream_of_nothing_but_whitespace_has_no_events_and_no_skips() -> None:
    """Blank input is not an error."""
    assert read_all(b"\n \r\n\t") == ([], [])
