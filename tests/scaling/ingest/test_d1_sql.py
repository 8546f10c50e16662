"""D1 statements: SQLite literals read exactly, statements classified for the report, nothing executed."""

from __future__ import annotations

import pytest

from scaling.ingest.d1_sql import DumpSyntaxError, parse_statement


def test_sqlite_literals_become_python_values() -> None:
    """Strings, doubled quotes, blobs, NULL, signed and real numbers, and .dump's replace()/char()/unistr() read
    exactly."""
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
    (("CREATE TABLE IF NOT EXISTS \"users\" (id TEXT PRIMARY KEY, email TEXT UNIQUE, "
      "CHECK (length(id) > 0), FOREIGN KEY (id) REFERENCES x(id));"), "CREATE TABLE", "users", None),
    ("CREATE UNIQUE INDEX idx_users_username ON users(username);", "CREATE UNIQUE INDEX", "users",
     "idx_users_username"),
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


def test_numbers_sqlite_cannot_store_exactly_are_marked_not_guessed() -> None:
    """Beyond 64 bits (or a double), a literal becomes OutOfRange; -2**63 and 2**63-1 stay exact integers."""
    stmt = parse_statement("INSERT INTO t VALUES(9223372036854775807, -9223372036854775808, 9223372036854775808, "
                           + "1" * 5000 + ", 1e999, 0xFFFFFFFFFFFFFFFF);")
    assert stmt.rows[0][:2] == [2**63 - 1, -(2**63)]
    assert [type(v).__name__ for v in stmt.rows[0][2:5]] == ["OutOfRange"] * 3
    assert stmt.rows[0][5] == -1  # SQLite reads 64-bit hex literals as two's complement


def test_rows_stream_one_at_a_time_and_a_late_error_still_raises() -> None:
    """stream_insert reads the head at once and each row on demand; a malformed last row raises when reached."""
    from scaling.ingest.d1_sql import stream_insert

    head = stream_insert(b"INSERT INTO t(a) VALUES (1), (2), (random());")
    assert (head.table, head.columns) == ("t", ["a"])
    assert next(head.rows) == [1] and next(head.rows) == [2]
    with pytest.raises(DumpSyntaxError, match="random"):
        next(head.rows)
