"""Per-mailbox metrics follow real IMAP pollers against a private Dovecot: last success,
consecutive failures of a mailbox whose password is wrong, and the backlog not yet routed."""

from __future__ import annotations

import pytest

from admin_api.services.mailboxes import create_mailbox
from ingest.imap import ImapService
from models.db import session_scope
from routing.pipeline import route_inbound
from tests.ingest.dovecot import dovecot  # noqa: F401 - fixture
from tests.ingest.imap_support import SECRET_KEY, add_mailbox, imap_settings, message
from tests.ops.helpers import Scrape, wait_until
from admin_api.metrics import render_metrics

pytestmark = pytest.mark.dovecot


def test_mailbox_health_and_backlog_on_metrics(dovecot, sqlite_engine, sqlite_url):
    settings = imap_settings(sqlite_url, dovecot)
    add_mailbox(sqlite_engine, dovecot, name="support")
    with session_scope(sqlite_engine) as session:
        create_mailbox(
            session,
            name="broken",
            host=dovecot.host,
            port=dovecot.port,
            security="none",
            username=dovecot.user,
            password="not-the-password",
            secret_key=SECRET_KEY,
        )
    dovecot.append([message(n) for n in range(3)])
    handed_over: list[int] = []  # no routing yet: stored messages wait
    service = ImapService(engine=sqlite_engine, settings=settings, hand_over=handed_over.append)
    service.start()

    def scrape() -> Scrape:
        return Scrape(render_metrics(engine=sqlite_engine, settings=settings).decode())

    try:
        first = wait_until(
            lambda: (
                (s := scrape()).value("ticketpost_mailbox_backlog", mailbox="support") == 3
                and s.value("ticketpost_mailbox_consecutive_failures", mailbox="broken") >= 1
                and s
            ),
            what="3 stored messages and a failing mailbox",
        )
        assert (
            first.value("ticketpost_mailbox_last_success_timestamp_seconds", mailbox="support") > 0
        )
        assert first.value("ticketpost_mailbox_consecutive_failures", mailbox="support") == 0
        assert first.value("ticketpost_mailbox_enabled", mailbox="broken") == 1
        assert (
            first.value("ticketpost_mailbox_last_success_timestamp_seconds", mailbox="broken")
            is None
        )
        assert (
            first.value(
                "ticketpost_inbound_messages",
                source="imap:support",
                status="received",
                outcome="none",
            )
            == 3
        )
        failures = first.value("ticketpost_mailbox_consecutive_failures", mailbox="broken")
        wait_until(
            lambda: (
                scrape().value("ticketpost_mailbox_consecutive_failures", mailbox="broken")
                > failures
            ),
            what="the broken mailbox's failures to keep counting",
        )
    finally:
        service.stop(15)

    for inbound_id in handed_over:
        route_inbound(inbound_id, engine=sqlite_engine, settings=settings)
    routed = scrape()
    assert routed.value("ticketpost_mailbox_backlog", mailbox="support") == 0
    assert routed.value("ticketpost_unrouted_messages") == 0
