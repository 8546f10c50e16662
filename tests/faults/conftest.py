"""Servers this suite owns, so it can kill (SIGKILL), stop (SIGSTOP) and restart them
under load without touching the shared Redis and PostgreSQL other tests use."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.faults


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, up: bool, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if (s.connect_ex(("127.0.0.1", port)) == 0) == up:
                return
        time.sleep(0.02)
    raise RuntimeError(f"port {port} never became {'open' if up else 'closed'}")


class OwnRedis:
    """A redis-server without persistence: a restart comes back empty, as in the defect."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--daemonize", "no"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port, up=True)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        _wait_port(self.port, up=False)

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def cont(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed")
    server = OwnRedis()
    try:
        yield server
    finally:
        server.close()


def _pg_bin(name: str) -> str:
    for cand in [Path(f"/usr/local/bin/{name}"), *sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))]:
        if cand.exists():
            return str(cand)
    pytest.skip(f"PostgreSQL's {name} not installed")
    raise AssertionError("unreachable")


def _as_postgres(cmd: list[str]) -> list[str]:
    # initdb refuses to run as root; the suite runs as root in CI.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class OwnPostgres:
    """A throwaway cluster (initdb in a temp dir) on a free port."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.data = root / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
        subprocess.run(_as_postgres([_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                                     "--no-sync"]), check=True, capture_output=True)
        self.start()

    def start(self) -> None:
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data} -c fsync=off"
        subprocess.run(_as_postgres([_pg_bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-w", "-l",
                                     str(self.data / "log"), "start"]), check=True, capture_output=True)
        _wait_port(self.port, up=True)

    def pids(self) -> list[int]:
        try:
            main = int((self.data / "postmaster.pid").read_text().split()[0])
            children = Path(f"/proc/{main}/task/{main}/children").read_text().split()
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            return []
        return [*map(int, children), main]

    def kill(self) -> None:
        """SIGKILL every server process, as an OOM killer or a lost host would."""
        self.signal_all(signal.SIGKILL)
        _wait_port(self.port, up=False)
        # The killed postmaster may linger as a zombie nobody reaps (PID 1 in a container),
        # and PostgreSQL then refuses to start over its lock files: remove them, as an operator would.
        for lock in [self.data / "postmaster.pid", *self.data.glob(".s.PGSQL.*.lock")]:
            lock.unlink(missing_ok=True)

    def signal_all(self, sig: signal.Signals) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def close(self) -> None:
        self.signal_all(signal.SIGCONT)
        subprocess.run(_as_postgres([_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]),
                       check=False, capture_output=True)


@pytest.fixture(scope="session")
def own_postgres() -> Iterator[OwnPostgres]:
    # Not under pytest's basetemp: its parents are private to root, and postgres must traverse them.
    root = Path(tempfile.mkdtemp(prefix="headroom-pg-"))
    try:
        server = OwnPostgres(root)
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"could not start a private PostgreSQL: {exc.stderr!r}")
    try:
        yield server
    finally:
        server.close()
        shutil.rmtree(root, ignore_errors=True)
