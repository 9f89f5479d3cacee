"""The pytest fixture of dovecot (registered in tests/conftest.py); the server lives in bench/dovecot.py."""

from __future__ import annotations

import pytest

from bench.dovecot import Dovecot, DovecotUnavailable  # noqa: F401 - re-exported for the tests


@pytest.fixture
def dovecot():
    """A started private Dovecot for this test, destroyed afterwards (skip/fail when missing)."""
    from tests.conftest import service_missing

    try:
        server = Dovecot.create()
        server.start()
    except (DovecotUnavailable, OSError) as exc:
        service_missing("Dovecot", str(exc))
    try:
        yield server
    finally:
        server.destroy()
