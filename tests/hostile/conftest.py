"""Hostile-input fixtures: the ingest tests' databases on both backends, and a helper that runs a
command in a child process and reports its exit code, output and peak memory."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.scaling.ingest.conftest import app_engine, db_url, metrics_engine  # noqa: F401 - shared fixtures

ROOT = Path(__file__).resolve().parents[2]

# Runs the CLI in this child and prints its peak RSS (ru_maxrss, KiB on Linux) and the RSS before main().
_PROBE = """
import resource, sys
from scaling.cli import main
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else 2
sys.stdout.flush()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"\\n@@rss {before} {peak}", file=sys.stderr)
sys.exit(code)
"""


@dataclass(frozen=True)
class Run:
    """A finished CLI run: exit code, stdout, stderr (without the probe line) and memory in MiB."""

    code: int
    out: str
    err: str
    base_mib: float
    peak_mib: float

    @property
    def growth_mib(self) -> float:
        return self.peak_mib - self.base_mib

    def json(self) -> dict[str, object]:
        loaded = json.loads(self.out)
        assert isinstance(loaded, dict)
        return loaded


def run_cli(*args: str, env: dict[str, str] | None = None, stdin: bytes | None = None, timeout: float = 240) -> Run:
    """Run ``python -m scaling ARGS`` in a child process, measuring its peak RSS."""
    proc = subprocess.run([sys.executable, "-c", _PROBE, *args], cwd=ROOT, capture_output=True, input=stdin,
                          env=env, timeout=timeout, check=False)
    err = proc.stderr.decode("utf-8", "replace")
    body, _, probe = err.rpartition("@@rss ")
    before, peak = (int(x) for x in probe.split()) if probe else (0, 0)
    return Run(proc.returncode, proc.stdout.decode("utf-8", "replace"), body.rstrip("\n"), before / 1024, peak / 1024)
