"""Loading a D1 export: app-schema rows upserted parents first, everything else reported and never executed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select, text

from scaling.appdb.models import ApiUsageLog, Session, User
from scaling.ingest.d1_export import load_d1_export
from tests.scaling.ingest.conftest import DUMP


def table_rows(engine: Engine, model: Any) -> list[dict[str, Any]]:
    table = model.__table__
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table).order_by(*table.primary_key.columns))]


def test_app_rows_load_with_values_intact(app_engine: Engine) -> None:
    """Users, sessions, keys and usage rows load; quotes, semicolons, newlines and accents survive exactly."""
    report = load_d1_export(DUMP, app_engine)
    assert {name: (t.loaded, t.new) for name, t in report.tables.items()} == {
        "users": (3, 3), "api_keys": (1, 1), "sessions": (2, 2), "api_usage_log": (2, 2)}
    users = {u["id"]: u for u in table_rows(app_engine, User)}
    assert users["alice"]["display_name"] == "Alice O'Brien"
    assert users["alice"]["bio"] == "Listens to Sigur Rós; mostly vinyl"
    assert users["bob"]["bio"] == "line one\nline two -- not a comment"
    assert users["bob"]["login_count"] == 3  # '3' in an INTEGER column is stored as SQLite would: a number
    assert users["carol"]["email"] is None and users["alice"]["spotify_connected"] == 1
    usage = table_rows(app_engine, ApiUsageLog)
    assert [(u["id"], u["endpoint"], u["status_code"], u["response_time_ms"]) for u in usage] == [
        (41, "/api/v1/album", 200, 120), (42, "/api/v1/search?q=a;b", 429, 3)]


def test_children_before_parents_in_the_dump_still_load(app_engine: Engine) -> None:
    """The dump lists sessions before users; loading goes parents first, so foreign keys hold on both backends."""
    load_d1_export(DUMP, app_engine)
    assert [s["id"] for s in table_rows(app_engine, Session)] == ["s1", "s2"]


def test_rows_the_app_db_refuses_are_reported_and_skipped_alone(app_engine: Engine) -> None:
    """An orphan session and a non-numeric integer are refused with reasons; every other row still loads."""
    report = load_d1_export(DUMP, app_engine)
    assert report.tables["sessions"].refused == 1 and report.tables["api_usage_log"].refused == 1
    assert any("sessions row (id='s3') refused" in p for p in report.problems)
    assert any("api_usage_log.response_time_ms: 'fast' is not an integer" in p for p in report.problems)
    assert "line 70" in next(p for p in report.problems if "'fast'" in p)


def test_everything_outside_the_app_schema_is_reported_not_executed(app_engine: Engine) -> None:
    """D1's bookkeeping tables, other tables, the trigger, DELETE and DROP are listed with counts and left alone."""
    report = load_d1_export(DUMP, app_engine)
    assert dict(report.not_executed) == {
        "PRAGMA defer_foreign_keys": 1, "CREATE TABLE d1_migrations": 1, "INSERT INTO d1_migrations": 2,
        "CREATE TABLE _cf_KV": 1, "INSERT INTO _cf_KV": 1, "CREATE TABLE sqlite_sequence": 1,
        "INSERT INTO sqlite_sequence": 2, "CREATE TABLE discogs_collection": 1, "INSERT INTO discogs_collection": 1,
        "CREATE TRIGGER users_touch": 1, "DELETE FROM sessions": 1, "DROP TABLE searches": 1}
    assert report.schema_statements == 5  # the app tables' CREATE TABLE/INDEX are left to the migrations
    with app_engine.connect() as conn:
        names = set(conn.dialect.get_table_names(conn))
        assert "d1_migrations" not in names and "discogs_collection" not in names
        assert conn.execute(text("SELECT count(*) FROM sessions WHERE expires_at < '2025-12-02'")).scalar() == 1
    assert dict(report.tables["users"].dropped_columns) == {"legacy_flag": 3}
    assert "columns not in the app schema, dropped: users.legacy_flag" in report.text()


def test_loading_again_converges_instead_of_duplicating(app_engine: Engine) -> None:
    """A second load of the same dump finds every row present: no new rows, values unchanged."""
    load_d1_export(DUMP, app_engine)
    before = table_rows(app_engine, User)
    again = load_d1_export(DUMP, app_engine)
    assert sum(t.new for t in again.tables.values()) == 0 and again.loaded == 8
    assert table_rows(app_engine, User) == before


def test_a_newer_export_updates_rows_in_place(app_engine: Engine, tmp_path: Path) -> None:
    """Rows are upserted on the primary key, so a later export's values replace the earlier ones."""
    load_d1_export(DUMP, app_engine)
    newer = tmp_path / "newer.sql"
    newer.write_text(DUMP.read_text().replace("'2026-01-01 10:00:00',12,0)", "'2026-02-01 10:00:00',13,0)"))
    report = load_d1_export(newer, app_engine)
    alice = next(u for u in table_rows(app_engine, User) if u["id"] == "alice")
    assert (alice["last_login_at"], alice["login_count"]) == ("2026-02-01 10:00:00", 13)
    assert report.tables["users"].new == 0


def test_a_dry_run_counts_exactly_and_changes_nothing(app_engine: Engine) -> None:
    """--dry-run reports what a load would do, then rolls back."""
    report = load_d1_export(DUMP, app_engine, dry_run=True)
    assert report.tables["users"].new == 3 and report.text().startswith("read 29 statements; would load 8 rows")
    assert table_rows(app_engine, User) == []


def test_the_app_keeps_inserting_after_a_load(app_engine: Engine) -> None:
    """Explicit ids do not leave the id sequence behind: the app's next usage row gets a fresh id."""
    load_d1_export(DUMP, app_engine)
    with app_engine.begin() as conn:
        new_id = conn.execute(insert(ApiUsageLog.__table__).values(endpoint="/x").returning(
            ApiUsageLog.__table__.c.id)).scalar_one()
    assert new_id == 43  # SQLite's AUTOINCREMENT and PostgreSQL's sequence both continue after the dump's 42


def test_a_dump_with_a_broken_statement_reports_its_line(app_engine: Engine, tmp_path: Path) -> None:
    """An INSERT the reader cannot follow is named with its line and not executed; the rest loads."""
    dump = tmp_path / "broken.sql"
    dump.write_text("INSERT INTO users(id, email) VALUES('u1', 'a@x');\n"
                    "INSERT INTO users(id, email) VALUES('u2', lower('B@X'));\n"
                    "INSERT INTO users(id, email) VALUES('u3', 'c@x');\n")
    report = load_d1_export(dump, app_engine)
    assert report.tables["users"].loaded == 2
    assert report.problems == ["line 2: INSERT INTO users not loaded: function lower() in a value is not loaded"]
