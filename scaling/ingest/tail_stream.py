"""Read ``wrangler tail --format=json`` output: JSON objects back to back, of any size.

Wrangler prints each event with ``JSON.stringify(obj, null, 2)``, so an event spans
many lines and events simply follow each other; other captures (``jq -c``, Logpush
files) have one event per line. `TailReader` handles both, from a file or a pipe,
reading 64 KiB at a time and decoding with `json.JSONDecoder.raw_decode` on a
buffer that only ever holds the event being parsed plus one chunk.

Anything that is not an event is skipped and reported with its byte offset and
line, never fatal: text between events (wrangler's "Connected to ..." banner), a
malformed or cut-off event, an event over ``max_event_bytes``. After a bad event
the reader resumes at the next ``{`` that starts a line, because top-level events
start in column 0 while the pretty-printer indents every nested object; that keeps
the inner objects of a broken event from being read as events of their own.
Commas and brackets between events are separators, so a JSON array of events reads too.

One hostile event costs only itself: one nested deeper than the decoder's recursion
limit, one holding ``NaN``/``Infinity`` (not JSON, and unstorable downstream), an
integer too long to convert, or bytes that are not UTF-8 is skipped and reported like any malformed event.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Final

__all__ = ["CHUNK_BYTES", "MAX_EVENT_BYTES", "WAITING", "RawEvent", "Skipped", "TailReader", "Waiting"]

CHUNK_BYTES = 64 * 1024
#: An event larger than this is skipped (with a note) instead of buffered.
MAX_EVENT_BYTES = 16 * 1024 * 1024
#: Characters shown from a skipped stretch of text.
PREVIEW_CHARS = 40

# Between events: JSON whitespace, a BOM, and the separators of a JSON array of events.
_BETWEEN = re.compile(r"[ \t\r\n\ufeff,\[\]]*")
# A parse error this close to the end of the buffer may just mean the event is not all here yet.
_NEAR_END = 8
# surrogateescape turns each byte that is not UTF-8 into one of these.
_NOT_UTF8 = re.compile("[\udc80-\udcff]")


class _NonFinite(ValueError):
    """``NaN``/``Infinity`` in an event: Python's decoder accepts them, JSON does not."""


def _refuse_constant(name: str) -> Any:
    raise _NonFinite(f"{name} is not a JSON value")


@dataclass(frozen=True, slots=True)
class RawEvent:
    """One decoded JSON object and where it started in the input.

    Attributes:
        data: the object as decoded (unknown fields kept).
        offset: byte offset of its opening brace.
        line: 1-based line of its opening brace.
        size: its length in characters.
    """

    data: dict[str, Any]
    offset: int
    line: int
    size: int


@dataclass(frozen=True, slots=True)
class Skipped:
    """A stretch of input that was not an event.

    Attributes:
        offset: byte offset where it starts.
        line: 1-based line where it starts.
        nbytes: how many bytes were skipped.
        reason: one line saying why, e.g. ``"Expecting ',' delimiter (line 57 column 5)"``.
    """

    offset: int
    line: int
    nbytes: int
    reason: str

    def describe(self) -> str:
        """``byte 1,204 line 55: <reason>``."""
        return f"byte {self.offset:,} line {self.line:,}: {self.reason}"


class Waiting:
    """Marker yielded just before the reader blocks for more input (time to flush pending work)."""

    _instance: Waiting | None = None

    def __new__(cls) -> Waiting:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "WAITING"


WAITING: Final = Waiting()


class TailReader:
    """Iterate over the events of a byte stream: `RawEvent`, `Skipped` or `WAITING`.

    Args:
        stream: a binary file or pipe (``sys.stdin.buffer``); ``read1`` is used when
            available so a live pipe yields each event as soon as it arrives.
        chunk_bytes: bytes asked for per read.
        max_event_bytes: events larger than this are skipped, keeping memory bounded.

    Attributes:
        bytes_read: bytes consumed so far.
    """

    def __init__(self, stream: BinaryIO, *, chunk_bytes: int = CHUNK_BYTES,
                 max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        if chunk_bytes <= 0 or max_event_bytes <= 0:
            raise ValueError("chunk_bytes and max_event_bytes must be positive")
        self._read = getattr(stream, "read1", None) or stream.read
        self._chunk = chunk_bytes
        self._max = max_event_bytes
        # surrogateescape keeps invalid UTF-8 bytes one char each, so byte offsets stay exact.
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self._decode = json.JSONDecoder(parse_constant=_refuse_constant).raw_decode
        self._buf = ""
        self._eof = False
        # Position bookkeeping: buffer index _mark sits at byte _mark_offset, line _mark_line.
        self._mark = 0
        self._mark_offset = 0
        self._mark_line = 1
        self._mark_column = 1
        self.bytes_read = 0

    # --- positions ---------------------------------------------------------------------

    def _locate(self, pos: int) -> tuple[int, int]:
        """Byte offset and line of buffer index ``pos`` (which must not be before the mark)."""
        buf, mark = self._buf, self._mark
        if pos != mark:
            if buf.isascii():  # O(1) in CPython: the common case costs no encoding
                self._mark_offset += pos - mark
            else:
                self._mark_offset += len(buf[mark:pos].encode("utf-8", "surrogateescape"))
            self._mark_line, self._mark_column = self._line_column(pos)
            self._mark = pos
        return self._mark_offset, self._mark_line

    def _line_column(self, pos: int) -> tuple[int, int]:
        """Line and column (in characters) of buffer index ``pos``, without moving the mark."""
        newlines = self._buf.count("\n", self._mark, pos)
        if not newlines:
            return self._mark_line, self._mark_column + pos - self._mark
        return self._mark_line + newlines, pos - self._buf.rfind("\n", self._mark, pos)

    def _span_bytes(self, start: int, end: int) -> int:
        piece = self._buf[start:end]
        return len(piece) if piece.isascii() else len(piece.encode("utf-8", "surrogateescape"))

    def _fill(self, keep_from: int, want: int) -> None:
        """Drop the buffer before ``keep_from`` and append up to ``want`` more bytes."""
        self._locate(keep_from)
        self._buf = self._buf[keep_from:]
        self._mark = 0
        data = self._read(max(want, 1))
        if data:
            self.bytes_read += len(data)
            self._buf += self._decoder.decode(data)
        else:
            self._eof = True
            self._buf += self._decoder.decode(b"", final=True)

    # --- the loop ------------------------------------------------------------------------

    def __iter__(self) -> Iterator[RawEvent | Skipped | Waiting]:
        held: Skipped | None = None  # a skip that the next one may continue
        for item in self._items():
            if isinstance(item, Skipped):
                if held is not None and held.offset + held.nbytes == item.offset:
                    # Text running into a broken event ("garbage {not json") is one bad stretch.
                    held = Skipped(held.offset, held.line, held.nbytes + item.nbytes,
                                   f"{held.reason}, then {item.reason}")
                else:
                    if held is not None:
                        yield held
                    held = item
                continue
            if held is not None and item is not WAITING:
                yield held
                held = None
            yield item
        if held is not None:
            yield held

    def _items(self) -> Iterator[RawEvent | Skipped | Waiting]:
        pos = 0
        between = _BETWEEN.match
        decode = self._decode
        while True:
            pos = between(self._buf, pos).end()  # type: ignore[union-attr]  # the pattern matches empty
            if pos >= len(self._buf):
                if self._eof:
                    return
                yield WAITING
                self._fill(pos, self._chunk)
                pos = 0
                continue
            if self._buf[pos] != "{":
                yield from self._skip_text(pos)
                pos = self._mark
                continue
            try:
                obj, end = decode(self._buf, pos)
            except RecursionError:
                yield from self._skip_event(pos, "event nested too deeply to decode")
                pos = self._mark
                continue
            except json.JSONDecodeError as err:
                if not self._eof and (err.pos >= len(self._buf) - _NEAR_END or err.msg.startswith("Unterminated")):
                    pending = len(self._buf) - pos
                    if pending > self._max:
                        yield from self._skip_event(pos, f"event larger than {self._max:,} bytes skipped")
                        pos = self._mark
                        continue
                    yield WAITING
                    # Ask for as much again as is pending, so a huge event is re-parsed O(log n) times.
                    self._fill(pos, max(self._chunk, pending))
                    pos = 0
                    continue
                yield from self._skip_event(pos, self._reason(err, pos))
                pos = self._mark
                continue
            except _NonFinite as exc:
                yield from self._skip_event(pos, f"{exc} (NaN and Infinity are not JSON)")
                pos = self._mark
                continue
            except ValueError as exc:  # e.g. an integer of more than 4,300 digits
                yield from self._skip_event(pos, f"undecodable value: {str(exc).split(';')[0]}")
                pos = self._mark
                continue
            offset, line = self._locate(pos)
            if end - pos > self._max:
                yield Skipped(offset, line, self._span_bytes(pos, end),
                              f"event larger than {self._max:,} bytes skipped")
            elif isinstance(obj, dict):
                bad = _NOT_UTF8.search(self._buf, pos, end)
                if bad is not None:
                    at = self._span_bytes(pos, bad.start())
                    yield Skipped(offset, line, self._span_bytes(pos, end),
                                  f"event has bytes that are not UTF-8 (at byte {offset + at:,})")
                else:
                    yield RawEvent(obj, offset, line, end - pos)
            pos = end

    def _reason(self, err: json.JSONDecodeError, start: int) -> str:
        if self._eof and (err.pos >= len(self._buf.rstrip()) - 1 or err.msg.startswith("Unterminated")):
            return "input ends inside an event (truncated)"
        self._locate(start)
        line, column = self._line_column(err.pos)
        return f"{err.msg} at line {line:,} column {column:,}"

    def _skip_text(self, pos: int) -> Iterator[Skipped]:
        """Skip non-JSON text up to the next ``{`` (anywhere), reading on as needed."""
        offset, line = self._locate(pos)
        preview = ""
        skipped = 0
        while True:
            found = self._buf.find("{", pos)
            stop = found if found >= 0 else len(self._buf)
            if len(preview) < PREVIEW_CHARS and "\n" not in preview:
                preview += self._buf[pos:min(stop, pos + PREVIEW_CHARS - len(preview))]
            skipped += self._span_bytes(pos, stop)
            if found >= 0 or self._eof:
                self._locate(stop)
                break
            self._fill(stop, self._chunk)  # garbage is dropped as we go: memory stays bounded
            pos = 0
        yield Skipped(offset, line, skipped, f"not JSON: {preview.split(chr(10), 1)[0].strip()!r}")

    def _skip_event(self, pos: int, reason: str) -> Iterator[Skipped]:
        """Skip a bad event: resume at the next ``{`` that starts a line after ``pos``."""
        offset, line = self._locate(pos)
        skipped = 0
        search = pos + 1
        while True:
            found = self._buf.find("\n{", search)
            if found >= 0 or self._eof:
                stop = found + 1 if found >= 0 else len(self._buf)
                skipped += self._span_bytes(pos, stop)
                self._locate(stop)
                break
            # Keep the last character: it may be the newline of a "\n{" split across reads.
            keep = max(pos, len(self._buf) - 1)
            skipped += self._span_bytes(pos, keep)
            self._fill(keep, self._chunk)
            pos, search = 0, 0
        yield Skipped(offset, line, skipped, reason)
