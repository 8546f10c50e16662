"""The migrate, demo-data and cleanup commands, run through ``python -m scaling``'s main."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from scaling.appdb.engine import make_engine
from scaling.cli import main


@pytest.fixture
def app_db(db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Point the CLI's settings at this test's app DB (and a throwaway metrics DB)."""
    monkeypatch.setenv("HEADROOM_APP_DB_URL", db_url)
    monkeypatch.setenv("HEADROOM_METRICS_DB_URL", f"sqlite:///{tmp_path}/metrics.db")
    monkeypatch.chdir(tmp_path)  # no stray .env is read
    return db_url


def test_migrate_twice_says_nothing_to_do(app_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The first run applies 0001 and 0002, the second reports it is already at head."""
    assert main(["migrate", "--target", "app"]) == 0
    assert "applied 0001, 0002; now at 0002" in capsys.readouterr().out
    assert main(["migrate", "--target", "app"]) == 0
    assert "already at head (0002), nothing to do" in capsys.readouterr().out


def test_migrate_all_json(app_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints one object with the app DB's applied revisions and a metrics entry."""
    assert main(["migrate", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["app"]["applied"] == ["0001", "0002"] and out["app"]["revision"] == "0002"
    assert "metrics" in out


def test_demo_data_then_cleanup(app_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    """demo-data fills the DB; cleanup --dry-run counts without deleting; cleanup then deletes that many."""
    assert main(["migrate", "--target", "app"]) == 0
    assert main(["demo-data", "--users", "15", "--seed", "3", "--json"]) == 0
    filled = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert filled["rows"]["users"] == 15
    assert main(["cleanup", "--dry-run", "--json"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["dry_run"] and dry["total_deleted"] > 0
    assert dry["stats"]["total_rows"] == filled["total_rows"]
    assert main(["cleanup", "--batch-size", "100"]) == 0
    out = capsys.readouterr().out
    assert f"deleted {dry['total_deleted']:,} rows" in out


def test_commands_refuse_an_unmigrated_db(app_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    """cleanup and demo-data on an empty DB exit 1 and say to run migrate."""
    assert main(["cleanup"]) == 1
    assert "run `python -m scaling migrate` first" in capsys.readouterr().err
    assert main(["demo-data", "--users", "3"]) == 1


def test_demo_data_refuses_real_users(app_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    """demo-data exits 1 with one line when the DB holds users it did not create."""
    assert main(["migrate", "--target", "app"]) == 0
    engine = make_engine(app_db)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, email) VALUES ('rian', 'rian@example.com')"))
    engine.dispose()
    assert main(["demo-data", "--users", "3"]) == 1
    assert "refusing to clear it" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["cleanup", "--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
    (["cleanup", "--batch-size", "many"], "argument --batch-size: expected a whole number, got 'many'"),
    (["demo-data"], "the following arguments are required: --users"),
    (["demo-data", "--users", "-5"], "argument --users: must be at least 1, got -5"),
    (["migrate", "--target", "everything"], "argument --target: invalid choice: 'everything'"),
])
def test_wrong_arguments_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Bad arguments exit 2 with argparse's one-line reason."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.postgres
@pytest.mark.parametrize("argv", [["migrate", "--target", "app"], ["cleanup"], ["demo-data", "--users", "2"]])
def test_unreachable_database_exits_3(argv: list[str], monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A PostgreSQL server that refuses connections gives exit 3 and one error line."""
    monkeypatch.setenv("HEADROOM_APP_DB_URL", "postgresql://postgres@127.0.0.1:1/app")
    assert main(argv) == 3
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: store unavailable: cannot ") and "127.0.0.1:1" in err
    assert "\n" not in err


@pytest.mark.sqlite
def test_unusable_sqlite_path_exits_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A SQLite path under a regular file cannot be created: exit 3, one line."""
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("HEADROOM_APP_DB_URL", f"sqlite:///{tmp_path}/file/app.db")
    assert main(["migrate", "--target", "app"]) == 3
    assert "cannot create the directory" in capsys.readouterr().err
