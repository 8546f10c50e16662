"""D1 dump reading: statements split safely while streaming, SQLite literals read exactly, nothing executed."""

from __future__ import annotations

import io

import pytest

from scaling.ingest.d1_sql import DumpSyntaxError, iter_statements, parse_statement
from tests.scaling.ingest.conftest import DUMP

TRICKY = (b"PRAGMA defer_foreign_keys=TRUE;\n"
          b"INSERT INTO \"t\" VALUES('a;b','it''s',\"x;y\");  -- a comment; with a semicolon\n"
          b"/* block; comment */ INSERT INTO t VALUES(1);\n"
          b"/* the trigger */ CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  UPDATE t SET a = 1;\n  DELETE FROM u;\nEND;\n"
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


def test_sqlite_literals_become_python_values() -> None:
    """Strings, doubled quotes, blobs, NULL, signed and real numbers, and .dump's replace()/char()/unistr() read exactly."""
    stmt = parse_statement(
        "INSERT INTO \"main\".\"users\"(\"id\",[b],`c`,d,e,f,g,h,i,j) VALUES('O''Brien',X'00ff',NULL,-42,+1.5e3,"
        "0x1F,replace('a\\nb','\\n',char(10)),char(72,105),unistr('caf\\u00e9 \\\\'),TRUE);")
    assert (stmt.kind, stmt.table) == ("INSERT", "users")
    assert stmt.columns == ["id", "b", "c", "d", "e", "f", "g", "h", "i", "j"]
    assert stmt.rows == [["O'Brien", b"\x00\xff", None, -42, 1500.0, 31, "a\nb", "Hi", "café \\", 1]]


def test_multi_row_inserts_and_conflict_clauses() -> None:
    """VALUES (...), (...) gives several rows; INSERT OR REPLACE / REPLACE INTO are inserts too."""
    stmt = parse_statement("INSERT OR REPLACE INTO t VALUES (1,'a'), (2,'b');")
    assert stmt.rows == [[1, "a"], [2, "b"]] and stmt.conflict == "REPLACE"
    assert parse_statement("REPLACE INTO t VALUES(1);").conflict == "REPLACE"


@pytest.mark.parametrize(("sql", "kind", "table", "name"), [
    ("PRAGMA defer_foreign_keys=TRUE;", "PRAGMA", None, "defer_foreign_keys"),
    ("CREATE TABLE IF NOT EXISTS \"users\" (id TEXT PRIMARY KEY, email TEXT UNIQUE, "
     "CHECK (length(id) > 0), FOREIGN KEY (id) REFERENCES x(id));", "CREATE TABLE", "users", None),
    ("CREATE UNIQUE INDEX idx_users_username ON users(username);", "CREATE UNIQUE INDEX", "users", "idx_users_username"),
    ("CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;", "CREATE TRIGGER", None, "tr"),
    ("DELETE FROM sessions WHERE 1;", "DELETE FROM", "sessions", None),
    ("DROP TABLE IF EXISTS searches;", "DROP TABLE", "searches", None),
    ("UPDATE users SET a = 1;", "UPDATE", "users", None),
    ("BEGIN TRANSACTION;", "BEGIN", None, None),
])
def test_other_statements_are_classified_for_the_report(sql: str, kind: str, table: str | None,
                                                        name: str | None) -> None:
    """Statements that are never executed still say what they are and which table they touch."""
    stmt = parse_statement(sql)
    assert (stmt.kind, stmt.table, stmt.name) == (kind, table, name)


def test_create_table_lists_columns_but_not_constraints() -> None:
    """A CREATE TABLE gives the dump's column order, skipping table constraints and nested parentheses."""
    stmt = parse_statement("CREATE TABLE t (id TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))), "
                           "\"tier\" TEXT CHECK (tier IN ('a', 'b')), n INTEGER, UNIQUE (n, tier), "
                           "CONSTRAINT fk FOREIGN KEY (n) REFERENCES u(id));")
    assert stmt.columns == ["id", "tier", "n"]


@pytest.mark.parametrize("sql", [
    "INSERT INTO t VALUES(1, 2",
    "INSERT INTO t VALUES(random());",
    "INSERT INTO t SELECT * FROM u;",
    "INSERT INTO t(a, b) VALUES(1);",
    "INSERT INTO t VALUES(1) ON CONFLICT DO NOTHING;",
    "INSERT INTO t VALUES(X'0g');",
    "INSERT INTO t VALUES(-'a');",
])
def test_inserts_this_reader_cannot_follow_are_errors_not_guesses(sql: str) -> None:
    """Unclosed values, functions beyond .dump's, SELECTs, count mismatches and bad blobs raise DumpSyntaxError."""
    with pytest.raises(DumpSyntaxError):
        parse_statement(sql)
