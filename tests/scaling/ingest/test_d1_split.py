"""D1 dump splitting: statements split safely while streaming, with positions to seek back to."""

from __future__ import annotations

import io

import pytest

from scaling.ingest.d1_split import DumpSyntaxError, iter_statements
from tests.scaling.ingest.conftest import DUMP

TRICKY = (b"PRAGMA defer_foreign_keys=TRUE;\n"
          b"INSERT INTO \"t\" VALUES('a;b','it''s',\"x;y\");  -- a comment; with a semicolon\n"
          b"/* block; comment */ INSERT INTO t VALUES(1);\n"
          b"/* the trigger */ CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n"
          b"  UPDATE t SET a = 1;\n  DELETE FROM u;\nEND;\n"
          b"INSERT INTO [odd;name] VALUES('\xc3\xb3;');\n"
          b"INSERT INTO t VALUES('unterminated")


def split(data: bytes, chunk: int = 1 << 20) -> list[tuple[bytes, int, int]]:
    return [(s.text, s.offset, s.line) for s in iter_statements(io.BytesIO(data), chunk_bytes=chunk)]


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 64, 1 << 20])
def test_semicolons_in_strings_comments_and_triggers_do_not_split(chunk: int) -> None:
    """Quotes (doubled quotes too), comments and trigger bodies keep their semicolons, at any read size.

    Comments between statements belong to neither of them.
    """
    texts = [t for t, _, _ in split(TRICKY, chunk)]
    assert texts == [
        b"PRAGMA defer_foreign_keys=TRUE;",
        b"INSERT INTO \"t\" VALUES('a;b','it''s',\"x;y\");",
        b"INSERT INTO t VALUES(1);",
        b"CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  UPDATE t SET a = 1;\n  DELETE FROM u;\nEND;",
        b"INSERT INTO [odd;name] VALUES('\xc3\xb3;');",
        b"INSERT INTO t VALUES('unterminated",
    ]


def test_statements_carry_byte_offsets_and_lines() -> None:
    """Each statement knows where it starts, so problems can name a line and ranges can be re-read by seeking."""
    found = split(TRICKY)
    assert [(offset, line) for _, offset, line in found][:2] == [(0, 1), (32, 2)]
    assert [line for _, _, line in found] == [1, 2, 3, 4, 8, 9]
    data = DUMP.read_bytes()
    for text, offset, _ in split(data):
        assert data[offset:offset + len(text)] == text


def test_a_range_can_be_read_on_its_own() -> None:
    """Seeking to a statement boundary and stopping at another reads just those statements."""
    found = list(iter_statements(io.BytesIO(TRICKY)))
    start, stop = found[1].offset, found[2].offset + len(found[2].text)
    again = list(iter_statements(io.BytesIO(TRICKY), start=start, stop=stop, line=found[1].line))
    assert [(s.text, s.offset, s.line) for s in again] == [(s.text, s.offset, s.line) for s in found[1:3]]


def test_an_overlong_statement_is_refused_not_buffered() -> None:
    """A statement beyond the size limit raises instead of growing the buffer without bound."""
    with pytest.raises(DumpSyntaxError, match="longer than"):
        list(iter_statements(io.BytesIO(b"INSERT INTO t VALUES('" + b"x" * 5000 + b"');"), chunk_bytes=512,
                             max_statement_bytes=1024))
