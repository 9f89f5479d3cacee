"""Fixtures of the operations tests: a fresh metrics event store, cleaned Redis namespaces."""

from __future__ import annotations

import pytest

from core.telemetry import reset_event_store


@pytest.fixture(autouse=True)
def _fresh_event_store():
    """Every test counts events from zero (the in-process store lives as long as the process)."""
    reset_event_store()
    yield
    reset_event_store()


@pytest.fixture
def redis_ns(redis_url, redis_namespace):
    """A private Redis key namespace, deleted after the test (never FLUSHALL)."""
    import redis

    yield redis_namespace
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{redis_namespace}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
