"""Fixtures of the outbox tests: a real SMTP sink (STARTTLS + AUTH) and settings pointing at it."""

from __future__ import annotations

import pytest

from core.settings import Settings, get_settings, reset_settings
from routing.outbox.transport import close_transports
from bench.smtp_sink import SmtpSink


@pytest.fixture
def sink(tmp_path):
    """An aiosmtpd sink on 127.0.0.1 that wants STARTTLS, then AUTH."""
    server = SmtpSink(tmp_path).start()
    yield server
    close_transports()
    server.stop()


@pytest.fixture
def outbound_env(sink, monkeypatch):
    """The TICKETPOST_* variables of an installation that answers through ``sink``."""
    env = {
        "TICKETPOST_OUTBOUND_URL": sink.url,
        "TICKETPOST_OUTBOUND_CA_FILE": str(sink.cert),
        "TICKETPOST_SUPPORT_ADDRESSES": "help@msp.example",
        "TICKETPOST_REPLY_FROM": "MSP Support <help@msp.example>",
        "TICKETPOST_OUTBOX_MIN_BACKOFF_S": "0",
        "TICKETPOST_OUTBOX_MAX_ATTEMPTS": "3",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def outbound_settings(outbound_env, database_url, monkeypatch) -> Settings:
    """The process settings of that installation, on the test's database."""
    monkeypatch.setenv("TICKETPOST_DATABASE_URL", database_url)
    reset_settings()
    return get_settings()
