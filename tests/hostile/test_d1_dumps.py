"""Crafted D1 dumps: each ends in a per-statement report and a meaningful exit code, never a traceback, and
no statement reported as not executed leaves a row in an app table (SQLite and PostgreSQL app DBs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from scaling.cli import main
from tests.hostile.conftest import run_cli

pytestmark = pytest.mark.hostile


def load(dump: bytes, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any, set[str]]:
    """Load ``dump`` with the CLI (--json): exit code, report, and the ids now in ``users``."""
    path = tmp_path / "dump.sql"
    path.write_bytes(dump)
    code = main(["ingest", "d1-export", str(path), "--db", db_url, "--json"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and err == "", err
    import json

    report = json.loads(out)
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            ids = {str(r[0]) for r in conn.execute(text("SELECT id FROM users"))}
    finally:
        engine.dispose()
    return code, report, ids


def test_an_insert_into_another_table_between_user_inserts_is_not_loaded_as_users(
        db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`INSERT INTO _cf_KV` sandwiched between INSERTs into users is reported not executed and lands nowhere."""
    code, report, ids = load(b"INSERT INTO users(id, email) VALUES('u1', 'a@x');\n"
                             b"INSERT INTO \"_cf_KV\" VALUES('kv-row', X'6b');\n"
                             b"INSERT INTO users(id, email) VALUES('u2', 'b@x');\n", db_url, tmp_path, capsys)
    assert ids == {"u1", "u2"}
    assert report["not_executed"] == {"INSERT INTO _cf_KV": 1} and code == 0


def test_case_end_inside_a_trigger_body_does_not_end_the_trigger(
        db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A trigger whose body has `CASE … END;` stays one statement; its inner INSERT is never loaded."""
    code, report, ids = load(
        b"CREATE TRIGGER t1 AFTER INSERT ON users BEGIN\n"
        b"  UPDATE users SET bio = CASE WHEN NEW.bio IS NULL THEN 'x' ELSE 'end;' END;\n"
        b"  INSERT INTO users(id) VALUES('from-trigger');\n"
        b"END;\n"
        b"INSERT INTO users(id) VALUES('ok');\n", db_url, tmp_path, capsys)
    assert ids == {"ok"}
    assert report["not_executed"] == {"CREATE TRIGGER t1": 1} and code == 0


def test_a_trigger_without_end_does_not_swallow_the_rest_of_the_file(
        db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A CREATE TRIGGER with no END is reported with its line, its body is not loaded, later statements load, exit 1."""
    code, report, ids = load(
        b"INSERT INTO users(id) VALUES('before');\n"
        b"CREATE TRIGGER t2 AFTER INSERT ON users BEGIN\n"
        b"  INSERT INTO users(id) VALUES('trigger-body');\n"
        b"CREATE INDEX i ON users(id);\n"
        b"INSERT INTO users(id) VALUES('after');\n"
        b"CREATE TRIGGER t3 AFTER INSERT ON users BEGIN INSERT INTO users(id) VALUES('at-eof');", db_url,
        tmp_path, capsys)
    assert ids == {"before", "after"}
    assert report["not_executed"]["malformed statement"] == 2 and code == 1
    assert report["problems"][0].startswith("line 2: CREATE TRIGGER has no END")
    assert report["problems"][1].startswith("line 6: CREATE TRIGGER has no END")


def test_numbers_beyond_64_bits_refuse_their_row_not_the_load(
        db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """2**63, a 5,000-digit integer (as a number and as text) and 1e999 are refused row by row; the rest loads.

    (The in-range rows stay within 32 bits because PostgreSQL's INTEGER is 32-bit: it would refuse larger ones
    per row too, see the unit test for SQLite's full 64-bit range.)
    """
    huge = b"7" * 5000
    code, report, ids = load(
        b"INSERT INTO users(id, login_count) VALUES('ok', 2147483647);\n"
        b"INSERT INTO users(id, login_count) VALUES('min', -2147483648);\n"
        b"INSERT INTO users(id, login_count) VALUES('over', 9223372036854775808);\n"
        b"INSERT INTO users(id, login_count) VALUES('digits', " + huge + b");\n"
        b"INSERT INTO users(id, login_count) VALUES('as-text', '" + huge + b"');\n"
        b"INSERT INTO users(id, bio) VALUES('text-col', " + huge + b");\n"
        b"INSERT INTO users(id, login_count) VALUES('inf', 1e999);\n", db_url, tmp_path, capsys)
    assert ids == {"ok", "min"}
    assert report["tables"]["users"]["refused"] == 5 and code == 1
    assert "line 3: users.login_count: a 19-digit number outside SQLite's 64-bit" in report["problems"][0]
    assert all("row skipped" in p for p in report["problems"])


@pytest.mark.parametrize(("dump", "problem"), [
    (b"INSERT INTO users(id) VALUES('nul')\x00;", "unexpected character b'\\x00'"),
    (b"INSERT INTO users(id) VALUES('bad-utf8-\xff');", "text that is not UTF-8"),
    (b"INSERT INTO users(id) VALUES('unterminated", "unexpected character b\"'\""),
    (b"INSERT INTO users(id, bio) VALUES('deep', " + b"replace(" * 5000 + b"'a','b','c'" + b")" * 5000 + b");",
     "function calls nested more than 32 deep"),
    (b"INSERT INTO users VALUES(" + b",".join([b"1"] * 100_000) + b");", "100000 values for 15 columns"),
])
def test_unreadable_inserts_are_reported_and_load_nothing(
        dump: bytes, problem: str, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """NUL bytes, invalid UTF-8, an unterminated string, 5,000 nested calls and a 100k-value row: reported, exit 1."""
    code, report, ids = load(b"INSERT INTO users(id) VALUES('fine');\n" + dump, db_url, tmp_path, capsys)
    assert ids == {"fine"} and code == 1
    assert report["problem_count"] == 1 and problem in report["problems"][0]
    assert report["problems"][0].startswith("line 2: ")


def test_a_bom_and_crlf_line_ends_are_read_as_whitespace(
        db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A UTF-8 byte-order mark before the first statement and Windows line ends do not cost a statement."""
    code, report, ids = load(b"\xef\xbb\xbfINSERT INTO users(id) VALUES('bom');\r\n"
                             b"INSERT INTO users(id, bio) VALUES('crlf', 'a\r\nb');\r\n", db_url, tmp_path, capsys)
    assert ids == {"bom", "crlf"} and code == 0 and report["problems"] == []


def test_a_long_insert_with_a_bad_last_row_loads_none_of_its_rows(
        db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A multi-row INSERT bigger than the streaming threshold is checked whole: a bad last row refuses it all."""
    rows = b",".join(b"('u%d')" % i for i in range(200_000))
    code, report, ids = load(b"INSERT INTO users(id) VALUES" + rows + b",(random());\n"
                             b"INSERT INTO users(id) VALUES('next');\n", db_url, tmp_path, capsys)
    assert len(rows) > 1 << 20
    assert ids == {"next"} and code == 1
    assert "function random() in a value is not loaded" in report["problems"][0]


def test_a_10_mb_multi_row_insert_loads_in_bounded_memory(tmp_path: Path) -> None:
    """A 10 MB single INSERT of 100k users loads with peak RSS growth under 120 MiB (it was ~44x the statement)."""
    rows = b",".join(b"('user-%06d','u%06d@example.com','%s')" % (i, i, b"x" * 60) for i in range(100_000))
    dump = tmp_path / "big.sql"
    dump.write_bytes(b"INSERT INTO users(id, email, bio) VALUES" + rows + b";\n")
    assert dump.stat().st_size > 10_000_000
    run = run_cli("ingest", "d1-export", str(dump), "--db", f"sqlite:///{tmp_path}/app.db", "--json")
    assert run.code == 0, run.err
    assert run.json()["rows_loaded"] == 100_000 and "Traceback" not in run.err
    print(f"\n[hostile] {__name__.rsplit('.', 1)[-1]}: peak RSS {run.peak_mib:.0f} MiB, "
          f"{run.growth_mib:.0f} MiB over the CLI's own startup peak")
    assert run.growth_mib < 120, f"peak RSS grew by {run.growth_mib:.0f} MiB"
