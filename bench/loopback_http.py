"""Starting and stopping a threaded HTTP server on loopback, for the stand-in servers of bench and tests.

``serve(Handler, port)`` binds 127.0.0.1 (port 0: a free one, read back from
``server.server_address[1]``) and serves in a daemon thread; ``close(server)`` stops it.
``running(server)`` is the body of a pytest fixture for an object with ``start()``/``stop()``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar

T = TypeVar("T")


def serve(handler: type[BaseHTTPRequestHandler], port: int = 0) -> ThreadingHTTPServer:
    """A ``ThreadingHTTPServer`` on 127.0.0.1:``port`` serving ``handler`` in a daemon thread."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def close(server: ThreadingHTTPServer | None) -> None:
    """Stop serving and release the socket (nothing when ``server`` is None)."""
    if server is not None:
        server.shutdown()
        server.server_close()


def running(server: T) -> Iterator[T]:
    """Yield ``server`` started; stop it afterwards (``yield from running(X())`` in a fixture)."""
    started = server.start()  # type: ignore[attr-defined]
    try:
        yield started
    finally:
        server.stop()  # type: ignore[attr-defined]
