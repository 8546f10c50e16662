"""Credentials never reach the output: a verbose prewarm against the sandbox with a Last.fm key set logs every
request (httpx's INFO line) with the key masked, and redaction covers the usual secret parameters."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scaling.redaction import RedactingFilter, redact
from tests.hostile.conftest import ROOT

pytestmark = pytest.mark.hostile

FAKE_KEY = "fakeLastfmKey0123456789SECRET"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def sandbox() -> Iterator[str]:
    """The sandbox on a free loopback port, stopped afterwards."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "scaling", "sandbox", "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert f"127.0.0.1:{port}" in first, first
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_verbose_prewarm_never_prints_the_lastfm_key(sandbox: str, tmp_path: Path) -> None:
    """`prewarm -v` with LASTFM_API_KEY set logs its requests, each with api_key=***, and the key nowhere."""
    env = {**os.environ, "HEADROOM_DATA_DIR": str(tmp_path), "HEADROOM_SANDBOX_URL": sandbox,
           "LASTFM_API_KEY": FAKE_KEY, "HEADROOM_LASTFM_BASE_URL": sandbox}
    for args in (["migrate"], ["demo-data", "--users", "5"]):
        subprocess.run([sys.executable, "-m", "scaling", *args], cwd=ROOT, env=env, check=True, capture_output=True,
                       timeout=120)
    proc = subprocess.run([sys.executable, "-m", "scaling", "-v", "prewarm", "--deadline", "30"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    output = proc.stdout + proc.stderr
    assert "HTTP Request: GET" in output and "api_key=***" in output, output[-2000:]
    assert FAKE_KEY not in output


@pytest.mark.parametrize(("text", "shown"), [
    ("GET https://ws.audioscrobbler.com/2.0/?method=user.getrecenttracks&api_key=abc123&format=json",
     "GET https://ws.audioscrobbler.com/2.0/?method=user.getrecenttracks&api_key=***&format=json"),
    ("POST https://h/x?client_secret=s3cr3t&token=t0k", "POST https://h/x?client_secret=***&token=***"),
    ("redis://user:hunter2@127.0.0.1:6379/0", "redis://user:***@127.0.0.1:6379/0"),
    ("nothing secret here: a=b", "nothing secret here: a=b"),
])
def test_secret_query_parameters_and_url_passwords_are_masked(text: str, shown: str) -> None:
    """api_key, token, client_secret and a URL's password are replaced by ***; other text is unchanged."""
    assert redact(text) == shown


def test_the_filter_masks_a_record_built_from_arguments() -> None:
    """A record whose URL arrives as a %s argument (as httpx logs it) is masked after formatting."""
    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, "HTTP Request: %s %s", ("GET", "https://h/?api_key=K"),
                               None)
    assert RedactingFilter().filter(record) and record.getMessage() == "HTTP Request: GET https://h/?api_key=***"
