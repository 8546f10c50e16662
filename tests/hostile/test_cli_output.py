"""Machine-readable output and quiet edges of the command line: --json on every command (one strict JSON object,
no Infinity/NaN), a closed pipe ends quietly, and read-only commands never create a missing database."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scaling.cli import build_parser, main
from scaling.commands._output import to_json
from tests.hostile.conftest import ROOT

pytestmark = pytest.mark.hostile


Leaf = tuple[tuple[str, ...], argparse.ArgumentParser]


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[Leaf]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [(path, parser)]
    return [leaf for name, p in subs[0].choices.items() for leaf in _leaves(p, (*path, name))]


def test_every_command_accepts_json() -> None:
    """Each leaf command of `python -m scaling` (report costs and ingest's kinds included) takes --json."""
    parser, _ = build_parser()
    leaves = _leaves(parser)
    assert len(leaves) >= 12
    missing = [" ".join(path) for path, p in leaves if "--json" not in p._option_string_actions]
    assert missing == []


def test_json_output_never_holds_infinity_or_nan() -> None:
    """Non-finite floats anywhere in a report become null, so strict JSON readers accept the output."""
    text = to_json({"rate": float("inf"), "rows": [{"x": float("nan"), "y": -float("inf")}], "ok": 1.5})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in output")) == {
        "rate": None, "rows": [{"x": None, "y": None}], "ok": 1.5}


def test_output_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`python -m scaling settings | head -0`: no BrokenPipe traceback, exit 141 as for SIGPIPE."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the command writes a byte
    try:
        proc = subprocess.run([sys.executable, "-m", "scaling", "settings"], cwd=ROOT, stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=60, check=False,
                              env={**os.environ, "HEADROOM_DATA_DIR": str(tmp_path)})
    finally:
        os.close(write)
    assert proc.stderr == "" and proc.returncode == 141


@pytest.mark.parametrize("argv", [["readiness"], ["readiness", "--json"], ["report", "costs"],
                                  ["report", "costs", "--json"]])
def test_read_only_commands_do_not_create_a_missing_database(argv: list[str], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """readiness and report against a data dir that does not exist: one error line, exit 3, nothing created."""
    data = tmp_path / "nowhere"
    monkeypatch.setenv("HEADROOM_DATA_DIR", str(data))
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"error: no metrics DB at {data}/metrics.db — run `python -m scaling migrate`")
    assert not data.exists()


def test_report_costs_json_prints_one_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """`report costs --json` (the flag the README promises) prints the report as one JSON document."""
    monkeypatch.setenv("HEADROOM_DATA_DIR", str(tmp_path))
    assert main(["migrate"]) == 0
    capsys.readouterr()
    assert main(["report", "costs", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["report"] == "costs" and report["rows"] == []
