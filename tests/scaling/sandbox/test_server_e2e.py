"""The real server: ``python -m scaling sandbox`` on a loopback port, one real HTTP call per upstream."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server() -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "scaling", "sandbox", "--port", str(port), "--seed", "3"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in first, first + (proc.stderr.read() if proc.poll() is not None else "")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=10)  # reaps it and closes its pipes
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


@pytest.mark.e2e
def test_real_server_answers_every_upstream(server: str) -> None:
    """Over real HTTP the server answers Spotify, Last.fm, OpenAI, Perplexity and Songlink, and counts them."""
    with httpx.Client(base_url=server, timeout=10) as http:
        token = http.post("/api/token", auth=("cid", "sec"), data={"grant_type": "client_credentials"}).json()
        album = http.get("/v1/albums/4aawyAB9vmqN3uQ7FjRGTy",
                         headers={"Authorization": f"Bearer {token['access_token']}"})
        assert album.status_code == 200 and album.json()["id"] == "4aawyAB9vmqN3uQ7FjRGTy"
        recent = http.get("/2.0/", params={"method": "user.getrecenttracks", "user": "listener0001",
                                           "api_key": "k", "format": "json", "limit": 1})
        assert recent.status_code == 200 and recent.json()["recenttracks"]["track"]
        chat = http.post("/v1/chat/completions", headers={"Authorization": "Bearer sk-x"},
                         json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
        assert chat.status_code == 200 and chat.json()["usage"]["total_tokens"] > 0
        assert "x-ratelimit-remaining-requests" in chat.headers
        pplx = http.post("/chat/completions", headers={"Authorization": "Bearer p"},
                         json={"model": "sonar", "messages": [{"role": "user", "content": "hi"}]})
        assert pplx.status_code == 200 and pplx.json()["citations"]
        links = http.get("/v1-alpha.1/links", params={"url": "https://open.spotify.com/album/4aawyAB9vmqN3uQ7FjRGTy"})
        assert links.status_code == 200 and links.headers["x-ratelimit-remaining"] == "9"
        stats = http.get("/_sandbox/stats", params={"served": 0}).json()["upstreams"]
        assert {up: stats[up]["total"]["ok"] for up in stats} == {"spotify": 2, "lastfm": 1, "openai": 1,
                                                                   "perplexity": 1, "songlink": 1}


@pytest.mark.e2e
def test_non_loopback_host_is_refused() -> None:
    """Serving on 0.0.0.0 without --allow-remote exits 2 with one error line."""
    proc = subprocess.run([sys.executable, "-m", "scaling", "sandbox", "--host", "0.0.0.0", "--port", "0"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--allow-remote" in proc.stderr
