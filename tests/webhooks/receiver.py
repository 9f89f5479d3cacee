"""A real HTTP server on 127.0.0.1 that receives webhook deliveries, for the tests.

Each path can be told how to answer: a list of status codes used one per request (the last one
repeats), or ``hang`` (hold the request until :meth:`Receiver.release`, or the client gives up).
Every request is kept with its headers, body and arrival time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from bench import loopback_http
from tests.conftest import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    port: int = 0
    requests: list[Received] = field(default_factory=list)
    answers: dict[str, list[int]] = field(default_factory=dict)
    hanging: set[str] = field(default_factory=set)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    _release: threading.Event = field(default_factory=threading.Event)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                got = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time())
                with receiver.arrived:
                    receiver.requests.append(got)
                    receiver.arrived.notify_all()
                if self.path in receiver.hanging:
                    receiver._release.wait(60)
                    self.close_connection = True
                    return
                plan = receiver.answers.get(self.path) or [200]
                code = plan.pop(0) if len(plan) > 1 else plan[0]
                text = b"ok" if code < 300 else b"not now"
                self.send_response(code)
                self.send_header("content-length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

        self.port = self.port or free_port()
        self._server = loopback_http.serve(Handler, self.port)
        return self

    def release(self) -> None:
        self._release.set()

    def stop(self) -> None:
        self.release()
        loopback_http.close(self._server)

    def at(self, path: str) -> list[Received]:
        with self.arrived:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 30.0) -> list[Received]:
        """The first ``count`` requests to ``path``; fails the test after ``timeout``."""
        end = time.monotonic() + timeout
        with self.arrived:
            while True:
                got = [r for r in self.requests if r.path == path]
                if len(got) >= count:
                    return got
                left = end - time.monotonic()
                assert left > 0, f"{len(got)} of {count} deliveries to {path} arrived within {timeout}s"
                self.arrived.wait(left)
