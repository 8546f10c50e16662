"""Split a ``wrangler d1 export`` dump (SQLite SQL) into statements as it streams.

Splitting is byte-wise: every SQL delimiter is ASCII, and UTF-8 never puts ASCII bytes
inside a multi-byte character. Semicolons inside ``'strings'``, ``"identifiers"``,
comments and ``CREATE TRIGGER ... BEGIN ... END`` bodies do not end a statement.
Each statement keeps its byte offset and line, so a later pass can seek straight
back to it. `scaling.ingest.d1_sql` reads a statement's meaning; nothing here
executes SQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

__all__ = ["DumpSyntaxError", "RawStatement", "iter_statements"]

CHUNK_BYTES = 1024 * 1024
#: D1 rows are at most 2 MB; a statement this big is not from a D1 export.
MAX_STATEMENT_BYTES = 64 * 1024 * 1024

_SPECIAL = re.compile(rb"['\";`\[]|--|/\*")
_CLOSERS = {b"'": b"'", b'"': b'"', b"`": b"`", b"[": b"]"}
_TRIGGER = re.compile(rb"\s*CREATE\s+(?:TEMP(?:ORARY)?\s+)?TRIGGER\b", re.IGNORECASE)
_ENDS_WITH_END = re.compile(rb"\bEND\s*$", re.IGNORECASE)
# Whitespace and comments before a statement belong to no statement.
_LEADING = re.compile(rb"(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?(?:\*/|\Z))*", re.DOTALL)


class DumpSyntaxError(ValueError):
    """A statement this reader cannot interpret (reported, never executed)."""


@dataclass(frozen=True, slots=True)
class RawStatement:
    """One statement's text and where it starts (byte offset, 1-based line)."""

    text: bytes
    offset: int
    line: int


def iter_statements(stream: BinaryIO, *, start: int = 0, stop: int | None = None, line: int = 1,
                    chunk_bytes: int = CHUNK_BYTES, max_statement_bytes: int = MAX_STATEMENT_BYTES,
                    ) -> Iterator[RawStatement]:
    """Statements of a SQL dump, streaming, with bounded memory.

    Args:
        stream: the dump, opened in binary mode (seekable when ``start`` is not 0).
        start: byte offset to begin at (a statement boundary); ``line`` is its line number.
            A seekable stream is positioned there first, wherever an earlier pass left it.
        stop: byte offset to end at (a statement boundary), or None for the end of the file.
        chunk_bytes: bytes per read.
        max_statement_bytes: a longer statement raises `DumpSyntaxError`.

    Raises:
        DumpSyntaxError: a statement exceeds ``max_statement_bytes``.
    """
    if start or stream.seekable():
        stream.seek(start)
    remaining = None if stop is None else stop - start
    buf = b""
    base_offset, base_line = start, line  # offset and line of buf[0]
    stmt = 0  # where the current statement starts in buf
    pos = 0
    eof = False

    def fill(want: int) -> None:
        nonlocal buf, base_offset, base_line, stmt, pos, eof, remaining
        base_line += buf.count(b"\n", 0, stmt)
        base_offset += stmt
        buf, pos = buf[stmt:], pos - stmt
        stmt = 0
        if remaining is not None:
            want = min(want, remaining)
        data = stream.read(want) if want > 0 else b""
        if remaining is not None:
            remaining -= len(data)
        if not data:
            eof = True
        buf += data

    def emit(end: int) -> RawStatement | None:
        text = buf[stmt:end]
        lead = _LEADING.match(text).end()  # type: ignore[union-attr]  # the pattern matches empty
        stripped = text[lead:]
        if not stripped.strip(b"; \t\r\n"):
            return None
        return RawStatement(stripped.rstrip(), base_offset + stmt + lead,
                            base_line + buf.count(b"\n", 0, stmt + lead))

    while True:
        if len(buf) - stmt > max_statement_bytes:
            raise DumpSyntaxError(f"statement at byte {base_offset + stmt:,} is longer than "
                                  f"{max_statement_bytes:,} bytes")
        match = _SPECIAL.search(buf, pos)
        if match is None:
            if eof:
                found = emit(len(buf))
                if found is not None:
                    yield found
                return
            pos = max(pos, len(buf) - 1)  # a '-' or '/' at the very end may start a comment
            fill(max(chunk_bytes, len(buf) - stmt))
            continue
        token, at = match.group(), match.start()
        if token == b";":
            lead = _LEADING.match(buf, stmt).end()  # type: ignore[union-attr]
            if _TRIGGER.match(buf, lead) and not _ENDS_WITH_END.search(buf, lead, at):
                pos = match.end()
                continue
            found = emit(match.end())
            stmt = pos = match.end()
            if found is not None:
                yield found
            continue
        end = _close(buf, token, match.end(), eof)
        if end is None:  # the quote or comment runs past the buffer: read on and look again
            pos = at
            fill(max(chunk_bytes, len(buf) - stmt))
            continue
        pos = end


def _close(buf: bytes, token: bytes, start: int, eof: bool) -> int | None:
    """Index just after the quote or comment opened by ``token``; None if it may continue past ``buf``."""
    if token == b"--":
        k = buf.find(b"\n", start)
        return (k + 1 if k >= 0 else len(buf)) if k >= 0 or eof else None
    if token == b"/*":
        k = buf.find(b"*/", start)
        return (k + 2 if k >= 0 else len(buf)) if k >= 0 or eof else None
    closer = _CLOSERS[token]
    j = start
    while True:
        k = buf.find(closer, j)
        if k < 0:
            return len(buf) if eof else None
        if token == b"[":
            return k + 1
        if k + 1 == len(buf) and not eof:
            return None  # a doubled quote may straddle the read
        if buf[k + 1:k + 2] == closer:
            j = k + 2
            continue
        return k + 1
