"""The IMAP poller against a real Dovecot: new mail, backlogs, outages, resets, flags, sizes."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from ingest.imap import ImapService
from ingest.imap_sync import TOO_LARGE_KEYWORD
from models import InboundMessage
from models.db import session_scope
from tests.ingest.imap_support import (
    add_mailbox,
    ago,
    eventually,
    imap_settings,
    inbound_count,
    mailbox_row,
    message,
    seed_client,
    stored_message_ids,
    ticket_count,
)

pytestmark = pytest.mark.dovecot


class Recorder:
    """A hand-over that remembers the ids it was given (and can be slowed down)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.ids: list[int] = []
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self, inbound_id: int) -> bool:
        if self.delay:
            threading.Event().wait(self.delay)
        with self._lock:
            self.ids.append(inbound_id)
        return True


@pytest.fixture
def services():
    """Start ImapServices with ``services(settings, engine, hand_over)``; all stopped at the end."""
    started: list[ImapService] = []

    def start(settings, engine, hand_over=None) -> ImapService:
        service = ImapService(engine=engine, settings=settings, hand_over=hand_over or Recorder())
        started.append(service)
        return service.start()

    yield start
    late = [name for service in started for name in service.stop(15)]
    assert not late, f"pollers did not stop: {late}"


def routing_hand_over(engine, settings):
    from routing.pipeline import route_inbound

    return lambda inbound_id: route_inbound(inbound_id, engine=engine, settings=settings)


def test_a_message_arriving_under_idle_is_stored_and_routed_to_a_ticket(
    dovecot, engine, database_url, services
):
    settings = imap_settings(database_url, dovecot, imap_sweep_interval_s=600)
    seed_client(engine)
    mailbox_id = add_mailbox(engine, dovecot)
    service = services(settings, engine, routing_hand_over(engine, settings))
    eventually(lambda: mailbox_row(engine, mailbox_id).last_success_at, what="first pass")
    poller = service.pollers[mailbox_id]
    passes_before = poller.passes

    dovecot.append([message(1, subject="Mail server down")])

    eventually(lambda: ticket_count(engine) == 1, what="a ticket")
    with session_scope(engine) as session:
        inbound = session.scalars(select(InboundMessage)).one()
        assert inbound.source == "imap:support"
        assert inbound.outcome == "ticket_created"
    # one pass, woken by IDLE: the sweep is 10 minutes away
    eventually(lambda: poller.passes == passes_before + 1, what="the pass to finish")
    assert all(b"\\Seen" in flags for flags in dovecot.flags().values())


def test_idle_is_renewed_without_a_new_pass_and_still_reports_mail(
    dovecot, sqlite_engine, sqlite_url, services
):
    settings = imap_settings(sqlite_url, dovecot, imap_idle_renew_s=0.3, imap_sweep_interval_s=600)
    mailbox_id = add_mailbox(sqlite_engine, dovecot)
    service = services(settings, sqlite_engine)
    poller = eventually(lambda: service.pollers.get(mailbox_id), what="a poller")

    eventually(lambda: poller.idles >= 4, what="IDLE renewed several times")
    assert poller.passes == 1  # renewing IDLE is not a sweep

    dovecot.append([message(1)])
    eventually(lambda: inbound_count(sqlite_engine) == 1, what="mail reported after renewals")


def test_mail_arriving_during_a_pass_is_not_left_for_the_sweep(
    dovecot, sqlite_engine, sqlite_url, services
):
    settings = imap_settings(sqlite_url, dovecot, imap_sweep_interval_s=600)
    mailbox_id = add_mailbox(sqlite_engine, dovecot)
    appended = []

    def hand_over_and_deliver_more(inbound_id):
        if not appended:  # while the pass is still flagging the first message
            appended.append(inbound_id)
            dovecot.append([message(2, subject="arrived mid-pass")])
        return True

    services(settings, sqlite_engine, hand_over_and_deliver_more)
    eventually(lambda: mailbox_row(sqlite_engine, mailbox_id).last_success_at, what="first pass")
    dovecot.append([message(1)])

    eventually(lambda: inbound_count(sqlite_engine) == 2, what="the mid-pass message")


def test_mail_that_arrives_just_before_idle_begins_is_noticed(
    dovecot, sqlite_engine, sqlite_url, services, monkeypatch
):
    from imapclient import IMAPClient

    original_idle = IMAPClient.idle
    delivered = []

    def idle_after_a_delivery(client):
        if not delivered:
            delivered.append(True)
            dovecot.append([message(1)])
            time.sleep(0.6)  # past Dovecot's notify delay: it sends the news with "+ idling"
        return original_idle(client)

    monkeypatch.setattr(IMAPClient, "idle", idle_after_a_delivery)
    settings = imap_settings(sqlite_url, dovecot, imap_sweep_interval_s=600)
    add_mailbox(sqlite_engine, dovecot)
    services(settings, sqlite_engine)

    eventually(lambda: inbound_count(sqlite_engine) == 1, what="the message, well before a sweep")


@pytest.mark.slow
def test_a_backlog_of_500_is_ingested_exactly_once(dovecot, pg_engine, pg_url, services):
    settings = imap_settings(pg_url, dovecot, imap_batch_size=100)
    mailbox_id = add_mailbox(pg_engine, dovecot, since=ago(hours=1))
    backlog = [message(n) for n in range(500)]
    dovecot.append(backlog)

    recorder = Recorder()
    services(settings, pg_engine, recorder)

    eventually(lambda: mailbox_row(pg_engine, mailbox_id).acked_uid == 500, what="500 acked")
    ids = stored_message_ids(pg_engine)
    assert len(ids) == 500 and len(set(ids)) == 500
    assert sorted(recorder.ids) == sorted(set(recorder.ids)) and len(recorder.ids) == 500
    assert all(b"\\Seen" in flags for flags in dovecot.flags().values())


def test_a_message_already_flagged_seen_is_still_ingested(dovecot, engine, database_url, services):
    settings = imap_settings(database_url, dovecot)
    mailbox_id = add_mailbox(engine, dovecot)
    services(settings, engine)
    eventually(lambda: mailbox_row(engine, mailbox_id).last_success_at, what="first pass")

    dovecot.append([message(1, subject="read by a colleague already")], flags=[b"\\Seen"])

    eventually(lambda: inbound_count(engine) == 1, what="the seen message stored")


@pytest.mark.slow
def test_dovecot_restarted_mid_run_loses_nothing_and_duplicates_nothing(
    dovecot, pg_engine, pg_url, services
):
    settings = imap_settings(pg_url, dovecot, imap_batch_size=10)
    mailbox_id = add_mailbox(pg_engine, dovecot, since=ago(hours=1))
    dovecot.append([message(n) for n in range(150)])
    services(settings, pg_engine, Recorder(delay=0.01))  # ~0.1 s per batch: restart lands mid-run

    eventually(lambda: inbound_count(pg_engine) >= 20, what="ingest under way")
    dovecot.restart()
    dovecot.append([message(n) for n in range(150, 200)])

    eventually(lambda: mailbox_row(pg_engine, mailbox_id).acked_uid == 200, timeout=60,
               what="all 200 acked")
    ids = stored_message_ids(pg_engine)
    assert len(ids) == 200 and len(set(ids)) == 200
    assert all(b"\\Seen" in flags for flags in dovecot.flags().values())
    row = mailbox_row(pg_engine, mailbox_id)
    assert row.last_error is not None  # the outage is on record …
    assert row.consecutive_failures == 0  # … and over
    assert row.last_success_at > row.last_error_at


def test_folder_deleted_and_recreated_with_new_uidvalidity_creates_no_duplicate_ticket(
    dovecot, engine, database_url, services
):
    # a deleted folder raises no IDLE event: the periodic UID sweep is what notices the new one
    settings = imap_settings(database_url, dovecot, imap_sweep_interval_s=1.0)
    seed_client(engine)
    first = [message(n) for n in range(3)]
    dovecot.append([], folder="Support")
    mailbox_id = add_mailbox(engine, dovecot, folder="Support")
    services(settings, engine, routing_hand_over(engine, settings))
    eventually(lambda: mailbox_row(engine, mailbox_id).last_success_at, what="first pass")
    dovecot.append(first, folder="Support")
    eventually(lambda: ticket_count(engine) == 3, what="three tickets")
    old_uidvalidity = mailbox_row(engine, mailbox_id).uidvalidity

    client = dovecot.client()
    client.delete_folder("Support")
    client.create_folder("Support")
    client.logout()
    dovecot.append(first + [message(99, subject="really new")], folder="Support")

    eventually(lambda: ticket_count(engine) == 4, what="the one new ticket")
    eventually(lambda: mailbox_row(engine, mailbox_id).acked_uid == 4, what="re-read acked")
    row = mailbox_row(engine, mailbox_id)
    assert row.uidvalidity != old_uidvalidity
    assert inbound_count(engine) == 4
    assert ticket_count(engine) == 4
    assert all(b"\\Seen" in flags for flags in dovecot.flags("Support").values())


def test_a_new_mailbox_starts_with_mail_arriving_after_it_is_added(
    dovecot, engine, database_url, services
):
    settings = imap_settings(database_url, dovecot)
    dovecot.append([message(n, subject="years old") for n in range(5)], msg_time=ago(days=400))
    mailbox_id = add_mailbox(engine, dovecot)  # since defaults to now
    services(settings, engine)
    eventually(lambda: mailbox_row(engine, mailbox_id).last_success_at, what="first pass")

    dovecot.append([message(10, subject="fresh")])

    eventually(lambda: inbound_count(engine) == 1, what="the fresh message")
    with session_scope(engine) as session:
        assert b"fresh" in session.scalars(select(InboundMessage.raw)).one()
    unseen_old = [uid for uid, flags in dovecot.flags().items() if b"\\Seen" not in flags]
    assert len(unseen_old) == 5  # old mail is left alone, not even flagged


def test_since_backfills_mail_from_that_date_on(dovecot, engine, database_url, services):
    settings = imap_settings(database_url, dovecot)
    dovecot.append([message(1, subject="too old")], msg_time=ago(days=30))
    dovecot.append([message(2, subject="within range")], msg_time=ago(days=2))
    mailbox_id = add_mailbox(engine, dovecot, since=ago(days=7))
    services(settings, engine)

    eventually(lambda: mailbox_row(engine, mailbox_id).last_uid == 2, what="backfill done")
    with session_scope(engine) as session:
        raws = session.scalars(select(InboundMessage.raw)).all()
    assert len(raws) == 1 and b"within range" in raws[0]


def test_an_oversized_message_is_recorded_not_downloaded_and_not_fetched_again(
    dovecot, engine, database_url, services
):
    settings = imap_settings(database_url, dovecot, smtp_max_message_bytes=20_000)
    mailbox_id = add_mailbox(engine, dovecot, since=ago(hours=1))
    dovecot.append([message(1, subject="huge attachment", size=50_000), message(2)])
    recorder = Recorder()
    service = services(settings, engine, recorder)

    eventually(lambda: mailbox_row(engine, mailbox_id).acked_uid == 2, what="both handled")
    with session_scope(engine) as session:
        by_size = select(InboundMessage).order_by(InboundMessage.size.desc())
        stub, normal = session.scalars(by_size).all()
        assert stub.raw == b"" and stub.size > 50_000
        assert (stub.status, stub.outcome) == ("failed", "failed")
        assert "over the limit" in stub.reason and stub.subject == "huge attachment"
        assert stub.sender_email == "user1@acme.example"
        assert recorder.ids == [normal.id]
    flags = dovecot.flags()
    assert TOO_LARGE_KEYWORD.encode() in flags[1] and b"\\Seen" not in flags[1]

    # even a full re-read (checkpoint forgotten) does not fetch it again
    service.stop(10)
    with session_scope(engine) as session:
        from models import Mailbox

        row = session.get(Mailbox, mailbox_id)
        row.uidvalidity = row.last_uid = None
    services(settings, engine)
    eventually(lambda: mailbox_row(engine, mailbox_id).last_uid == 2, what="re-read")
    assert inbound_count(engine) == 2


def test_processed_mail_is_moved_to_the_processed_folder(dovecot, engine, database_url, services):
    settings = imap_settings(database_url, dovecot)
    mailbox_id = add_mailbox(engine, dovecot, processed_folder="Processed", since=ago(hours=1))
    dovecot.append([message(n) for n in range(3)])
    services(settings, engine)

    eventually(lambda: mailbox_row(engine, mailbox_id).acked_uid == 3, what="three acked")
    assert dovecot.uids("INBOX") == []
    assert len(dovecot.uids("Processed")) == 3
    assert inbound_count(engine) == 3


@pytest.mark.parametrize("security", ["ssl", "starttls", "none"])
def test_each_connection_security_takes_mail_in(dovecot, sqlite_engine, sqlite_url, services,
                                                 security):
    settings = imap_settings(sqlite_url, dovecot)
    mailbox_id = add_mailbox(sqlite_engine, dovecot, security=security, since=ago(hours=1))
    dovecot.append([message(1)])
    services(settings, sqlite_engine)
    eventually(lambda: mailbox_row(sqlite_engine, mailbox_id).acked_uid == 1, what="acked")
    assert inbound_count(sqlite_engine) == 1


def test_an_untrusted_certificate_is_refused_and_shown_in_the_health_fields(
    dovecot, sqlite_engine, sqlite_url, services
):
    settings = imap_settings(sqlite_url, dovecot, imap_ca_file=None)
    mailbox_id = add_mailbox(sqlite_engine, dovecot, security="ssl")
    services(settings, sqlite_engine)
    row = eventually(
        lambda: (r := mailbox_row(sqlite_engine, mailbox_id)).consecutive_failures >= 2 and r,
        what="failures recorded",
    )
    assert "CERTIFICATE_VERIFY_FAILED" in row.last_error
    assert row.last_success_at is None


def test_an_unreachable_server_is_retried_until_it_answers(
    dovecot, sqlite_engine, sqlite_url, services
):
    settings = imap_settings(sqlite_url, dovecot)
    dovecot.stop()
    mailbox_id = add_mailbox(sqlite_engine, dovecot, since=ago(hours=1))
    services(settings, sqlite_engine)
    row = eventually(
        lambda: (r := mailbox_row(sqlite_engine, mailbox_id)).consecutive_failures >= 3 and r,
        what="three failures",
    )
    assert "refused" in row.last_error.lower()

    dovecot.start()
    dovecot.append([message(1)])

    eventually(lambda: inbound_count(sqlite_engine) == 1, what="mail after the outage")
    row = mailbox_row(sqlite_engine, mailbox_id)
    assert row.consecutive_failures == 0 and row.last_success_at > row.last_error_at


def test_without_the_secret_key_the_poller_reports_it_cannot_read_the_password(
    dovecot, sqlite_engine, sqlite_url, services
):
    mailbox_id = add_mailbox(sqlite_engine, dovecot)
    services(imap_settings(sqlite_url, dovecot, secret_key=None), sqlite_engine)
    row = eventually(
        lambda: (r := mailbox_row(sqlite_engine, mailbox_id)).last_error and r,
        what="an error",
    )
    assert "TICKETPOST_SECRET_KEY" in row.last_error


def test_mailboxes_added_or_disabled_while_running_are_followed(
    dovecot, sqlite_engine, sqlite_url, services
):
    settings = imap_settings(sqlite_url, dovecot)
    service = services(settings, sqlite_engine)
    assert service.pollers == {}

    mailbox_id = add_mailbox(sqlite_engine, dovecot)
    eventually(lambda: mailbox_id in service.pollers, what="a poller for the new mailbox")
    eventually(lambda: mailbox_row(sqlite_engine, mailbox_id).last_success_at, what="a pass")

    with session_scope(sqlite_engine) as session:
        from admin_api.services.mailboxes import update_mailbox

        update_mailbox(session, mailbox_id=mailbox_id, changes={"enabled": False})
    eventually(lambda: mailbox_id not in service.pollers, what="the poller stopped")
