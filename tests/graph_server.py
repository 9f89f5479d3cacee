"""The pytest fixture of graph server (registered in tests/conftest.py); the server lives in bench/graph_server.py."""

from __future__ import annotations

import pytest

from bench import loopback_http
from bench.graph_server import GraphServer  # noqa: F401 - re-exported for the tests


@pytest.fixture
def graph_server():
    """A started local Graph server, stopped afterwards."""
    yield from loopback_http.running(GraphServer())
