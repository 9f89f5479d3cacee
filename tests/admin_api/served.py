"""The admin API served by a real uvicorn on 127.0.0.1 (a thread of the test process).

Tests that are about what goes over the wire (body limits, concurrency, truncated transfers)
use this instead of the in-process TestClient.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from core.settings import Settings
from models.db import make_engine
from tests.conftest import free_port


@contextmanager
def serve(app) -> Iterator[str]:
    """Run ``app`` under uvicorn on a free port until the block ends; yields the base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            if not thread.is_alive():
                raise RuntimeError("uvicorn exited before it started")
            time.sleep(0.05)
        else:
            raise RuntimeError("uvicorn did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@contextmanager
def admin_http(database_url: str, *, token: str, timeout: float = 30) -> Iterator[httpx.Client]:
    """The admin API on ``database_url`` (``token`` its admin token) served by uvicorn, and an
    httpx client that sends that token."""
    from admin_api.app import create_app

    engine = make_engine(database_url)
    app = create_app(engine=engine, settings=Settings(database_url=database_url, admin_token=token))
    try:
        with serve(app) as base, httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        ) as client:
            yield client
    finally:
        engine.dispose()
