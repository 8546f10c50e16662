"""A real webhook receiver on 127.0.0.1 for delivery tests: records bodies, answers scripted statuses."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """What the receiver got, and what it answers next (200 once the script runs out)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.headers: dict[str, str] = {}
        self.url = ""

    @property
    def texts(self) -> list[str]:
        return [b["text"] for b in self.bodies]


@contextmanager
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # http.server's naming
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            state.bodies.append(json.loads(body))
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            for k, v in state.headers.items():
                self.send_header(k, v)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}/hooks/abc"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
