"""SMTP replies by code and open sessions, over real SMTP; the rate limit counted as it bites."""

from __future__ import annotations

import smtplib

import pytest

from ingest.smtp import SmtpServer
from models.db import make_engine
from routing.pipeline import route_inbound
from tests.conftest import free_port
from tests.ops.helpers import message, store, wait_until
from core.telemetry import get_event_store
from core.settings import Settings


def counted() -> dict:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in get_event_store().collect()
        for s in family.samples
    }


def replies(code: str) -> float:
    return counted().get(("ticketpost_smtp_replies_total", (("code", code),)), 0)


def sessions() -> float:
    return counted()[("ticketpost_smtp_sessions_active", ())]


@pytest.fixture
def smtp_server():
    """Start an SMTP listener on a free port with ``settings``; stopped at the end."""
    started: list[SmtpServer] = []

    def start(settings: Settings, engine=None) -> int:
        port = free_port()
        server = SmtpServer(settings=settings, engine=engine, host="127.0.0.1", port=port)
        server.start()
        started.append(server)
        return port

    yield start
    for server in started:
        server.stop(5)


def test_replies_by_code_and_open_sessions_follow_a_real_smtp_conversation(
    smtp_server, sqlite_url, sqlite_engine
):
    settings = Settings(database_url=sqlite_url, support_addresses=["help@msp.example"])
    port = smtp_server(settings, sqlite_engine)
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        wait_until(lambda: sessions() == 1, what="one open session")
        smtp.sendmail("ann@acme.example", ["help@msp.example"], message("ann@acme.example", "a"))
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail("ann@acme.example", ["sales@msp.example"], b"Subject: x\r\n\r\nx")
    wait_until(lambda: sessions() == 0, what="the session closed")
    wait_until(lambda: replies("250") == 1 and replies("550") == 1, what="250 and 550 counted")


def test_a_database_outage_shows_as_451_replies(smtp_server):
    dead_database = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/gone"
    port = smtp_server(Settings(database_url=dead_database), make_engine(dead_database))
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            smtp.sendmail(
                "ann@acme.example", ["help@msp.example"], message("ann@acme.example", "a")
            )
    assert refused.value.smtp_code == 451
    wait_until(lambda: replies("451") == 1, what="451 counted")
    assert replies("250") == 0


def test_mail_over_the_rate_limit_is_counted_as_rate_limited(sqlite_url, sqlite_engine):
    settings = Settings(database_url=sqlite_url, rate_limit_per_hour=2)
    outcomes = [
        route_inbound(
            store(sqlite_engine, "storm@nowhere.example", f"alert {n}"),
            engine=sqlite_engine,
            settings=settings,
        ).outcome
        for n in range(4)
    ]
    assert outcomes == ["triaged", "triaged", "ignored_loop", "ignored_loop"]
    assert counted()[("ticketpost_rate_limited_messages_total", ())] == 2
