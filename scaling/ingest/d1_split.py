"""Split a ``wrangler d1 export`` dump (SQLite SQL) into statements as it streams.

Splitting is byte-wise: every SQL delimiter is ASCII, and UTF-8 never puts ASCII bytes
inside a multi-byte character. Semicolons inside ``'strings'``, ``"identifiers"``,
comments and ``CREATE TRIGGER ... BEGIN ... END`` bodies do not end a statement: a
trigger ends at the ``;`` after the ``END`` that closes its ``BEGIN``, counting the
``CASE ... END`` pairs inside it. A trigger with no ``END`` ends at the first ``;``
after which no trigger-body statement follows (or at the end of the file) and is
marked with a ``problem``, so it cannot swallow the rest of the dump.
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
# Quotes and comments (skipped whole) or one of the words that open and close a trigger's blocks.
_TRIGGER_SCAN = re.compile(rb"'[^']*(?:''[^']*)*'|\"[^\"]*(?:\"\"[^\"]*)*\"|`[^`]*`|\[[^\]]*\]|--[^\n]*"
                           rb"|/\*.*?(?:\*/|\Z)|(?<![\w$.])(BEGIN|CASE|END)(?![\w$])", re.IGNORECASE | re.DOTALL)
# What may follow a ';' inside a trigger body: another body statement, or its END.
_BODY_NEXT = re.compile(rb"(?:INSERT|UPDATE|DELETE|SELECT|REPLACE|WITH|VALUES|END)(?![\w$])", re.IGNORECASE)
# Whitespace, comments and a UTF-8 byte-order mark before a statement belong to no statement.
_LEADING = re.compile(rb"(?:\xef\xbb\xbf|\s+|--[^\n]*(?:\n|\Z)|/\*.*?(?:\*/|\Z))*", re.DOTALL)


class DumpSyntaxError(ValueError):
    """A statement this reader cannot interpret (reported, never executed)."""


@dataclass(frozen=True, slots=True)
class RawStatement:
    """One statement's text and where it starts (byte offset, 1-based line).

    ``problem`` says why the statement is malformed (e.g. a trigger with no ``END``);
    such a statement must be reported, never loaded.
    """

    text: bytes
    offset: int
    line: int
    problem: str | None = None


@dataclass(slots=True)
class _Trigger:
    """Where a ``CREATE TRIGGER`` statement is: before ``BEGIN``, in its body, or past its ``END``."""

    begun: bool = False
    depth: int = 0  # open CASE blocks
    ended: bool = False
    scanned: int = 0  # buffer index up to which words were read
    body_statements: int = 0

    def feed(self, buf: bytes, stop: int) -> None:
        for m in _TRIGGER_SCAN.finditer(buf, self.scanned, stop):
            word = m.group(1)
            if word is None or self.ended:
                continue
            word = word.upper()
            if word == b"CASE":
                self.depth += 1
            elif word == b"BEGIN":
                self.begun = self.begun or self.depth == 0
            elif self.depth:
                self.depth -= 1
            elif self.begun:
                self.ended = True
        self.scanned = stop

    def unterminated(self) -> str:
        what = "has no END" if self.begun else "has no BEGIN ... END"
        read = self.body_statements + 1
        return (f"CREATE TRIGGER {what}; not executed, with the {read:,} statement{'s' if read > 1 else ''} "
                "read as its body (up to the first that cannot be in a trigger)")


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
    trigger: _Trigger | None = None  # set once the current statement is known to be a trigger

    def fill(want: int) -> None:
        nonlocal buf, base_offset, base_line, stmt, pos, eof, remaining
        base_line += buf.count(b"\n", 0, stmt)
        base_offset += stmt
        if trigger is not None:
            trigger.scanned -= stmt
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

    def emit(end: int, problem: str | None = None) -> RawStatement | None:
        text = buf[stmt:end]
        lead = _LEADING.match(text).end()  # type: ignore[union-attr]  # the pattern matches empty
        stripped = text[lead:]
        if not stripped.strip(b"; \t\r\n"):
            return None
        return RawStatement(stripped.rstrip(), base_offset + stmt + lead,
                            base_line + buf.count(b"\n", 0, stmt + lead), problem)

    while True:
        if len(buf) - stmt > max_statement_bytes:
            raise DumpSyntaxError(f"statement at byte {base_offset + stmt:,} is longer than "
                                  f"{max_statement_bytes:,} bytes")
        match = _SPECIAL.search(buf, pos)
        if match is None:
            if eof:
                lead = _LEADING.match(buf, stmt).end()  # type: ignore[union-attr]
                if trigger is None and _TRIGGER.match(buf, lead):
                    trigger = _Trigger(scanned=lead)
                if trigger is not None:
                    trigger.feed(buf, len(buf))
                found = emit(len(buf), None if trigger is None or trigger.ended else trigger.unterminated())
                if found is not None:
                    yield found
                return
            pos = max(pos, len(buf) - 1)  # a '-' or '/' at the very end may start a comment
            fill(max(chunk_bytes, len(buf) - stmt))
            continue
        token, at = match.group(), match.start()
        if token == b";":
            problem = None
            if trigger is None:
                lead = _LEADING.match(buf, stmt).end()  # type: ignore[union-attr]
                if _TRIGGER.match(buf, lead):
                    trigger = _Trigger(scanned=lead)
            if trigger is not None:
                trigger.feed(buf, at)
                if not trigger.ended:
                    after = _LEADING.match(buf, match.end()).end()  # type: ignore[union-attr]
                    if after >= len(buf) - 16 and not eof:  # the next word may not be here yet
                        pos = at
                        fill(max(chunk_bytes, len(buf) - stmt))
                        continue
                    if trigger.begun and _BODY_NEXT.match(buf, after):
                        trigger.body_statements += 1
                        pos = match.end()
                        continue
                    problem = trigger.unterminated()
            found = emit(match.end(), problem)
            stmt = pos = match.end()
            trigger = None
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
