"""Crafted ``wrangler tail`` captures: one bad event is skipped and reported on its own, every good event is
still stored, and there is never a traceback (file and live pipe, SQLite and PostgreSQL metrics DBs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scaling.cli import main
from tests.hostile.conftest import ROOT, run_cli

pytestmark = pytest.mark.hostile


def event(n: int, message: str = "ok") -> bytes:
    """One well-formed fetch event, numbered so each is distinct."""
    return json.dumps({"outcome": "ok", "scriptName": "listentomore", "exceptions": [],
                       "logs": [{"message": [message], "level": "log", "timestamp": 1767225600000 + n}],
                       "eventTimestamp": 1767225600000 + n,
                       "event": {"request": {"url": f"https://listentomore.com/{n}", "method": "GET"}},
                       "wallTime": 10, "cpuTime": 1}).encode() + b"\n"


HOSTILE = {
    "nesting 5,000 deep": b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"\n",
    "NaN": b'{"outcome": "ok", "wallTime": NaN, "eventTimestamp": 1767225600000}\n',
    "Infinity": b'{"outcome": "ok", "cpuTime": -Infinity, "eventTimestamp": 1767225600000}\n',
    "invalid UTF-8": b'{"outcome": "ok", "scriptName": "\xff\xfe", "eventTimestamp": 1767225600000}\n',
    "a number with 5,000 digits": b'{"outcome": "ok", "wallTime": ' + b"9" * 5000 + b', "eventTimestamp": 1}\n',
}
#: Odd shapes the mapper reads with defaults: stored, not skipped, and never fatal.
ODD = {
    "logs that are not a list": b'{"outcome": "ok", "logs": "nope", "eventTimestamp": 1767225600000}\n',
    "fields of the wrong type": b'{"outcome": {"a": [1, {"b": null}]}, "event": 7, "eventTimestamp": "x"}\n',
}


@pytest.mark.parametrize("name", list(HOSTILE) + list(ODD))
def test_one_bad_event_is_skipped_and_the_others_are_stored(name: str, db_url: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Events before and after a hostile one are stored; the hostile one is a skip with its line, exit 0."""
    capture = tmp_path / "tail.ndjson"
    capture.write_bytes(event(1) + {**HOSTILE, **ODD}[name] + event(2))
    code = main(["ingest", "wrangler-tail", str(capture), "--db", db_url, "--json"])
    out, err = capsys.readouterr()
    assert err == "" and code == 0
    report = json.loads(out)
    stored = 2 if name in HOSTILE else 3
    assert report["events"] == stored and report["written"]["events"] == stored
    if name in HOSTILE:
        assert report["skipped"] == 1 and report["skipped_details"][0]["line"] == 2


def test_a_10_mb_log_line_is_stored_in_bounded_memory(tmp_path: Path) -> None:
    """An event carrying one 10 MB log line is ingested with the others; peak RSS grows by less than 150 MiB."""
    capture = tmp_path / "tail.ndjson"
    capture.write_bytes(event(1) + event(2, "x" * 10_000_000) + event(3))
    run = run_cli("ingest", "wrangler-tail", str(capture), "--db", f"sqlite:///{tmp_path}/m.db", "--json")
    assert run.code == 0 and "Traceback" not in run.err, run.err
    assert run.json()["events"] == 3
    print(f"\n[hostile] {__name__.rsplit('.', 1)[-1]}: peak RSS {run.peak_mib:.0f} MiB, "
          f"{run.growth_mib:.0f} MiB over the CLI's own startup peak")
    assert run.growth_mib < 150, f"peak RSS grew by {run.growth_mib:.0f} MiB"


def test_a_live_pipe_keeps_going_past_hostile_events(tmp_path: Path) -> None:
    """`wrangler tail | python -m scaling ingest wrangler-tail -` survives every hostile event in one stream."""
    hostile = [*HOSTILE.values(), *ODD.values()]
    # A good event after each hostile one, so each skip is its own stretch.
    stream = event(1) + b"".join(bad + event(10 + i) for i, bad in enumerate(hostile))
    proc = subprocess.run([sys.executable, "-m", "scaling", "ingest", "wrangler-tail", "-", "--db",
                           f"sqlite:///{tmp_path}/m.db", "--json"], cwd=ROOT, input=stream, capture_output=True,
                          timeout=120, check=False)
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["written"]["events"] == 1 + len(hostile) + len(ODD) and report["skipped"] == len(HOSTILE)
