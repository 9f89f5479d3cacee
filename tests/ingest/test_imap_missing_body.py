"""A UID whose FETCH comes back without a body (issue 15 item 13), against a real Dovecot.

Between the poller and Dovecot sits a plain TCP relay that can (a) answer one FETCH for a UID
without its ``BODY[]``, as a server does when it cannot produce the message just then, or (b) let
another client expunge a message just before the poller's ``BODY.PEEK[]`` FETCH reaches Dovecot.
The poller's IMAP session, Dovecot's answers and the database are all real.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
from collections.abc import Callable

import pytest
from imapclient import IMAPClient
from sqlalchemy import select

from ingest.imap_sync import MailboxConfig, sync_pass
from models import InboundMessage, Mailbox
from models.db import session_scope
from tests.ingest.imap_support import add_mailbox, ago, mailbox_row, message

pytestmark = pytest.mark.dovecot

_FETCH_WITH_BODY = re.compile(rb"^\* (\d+) FETCH \(UID (\d+) BODY\[\] \{(\d+)\}\r\n$")
_LITERAL = re.compile(rb"\{(\d+)\}\r\n$")


class Relay:
    """A TCP relay to an IMAP server that can drop ``BODY[]`` from answers or act before FETCH."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.no_body_once: set[int] = set()  # UIDs answered once without BODY[]
        self.before_body_fetch: Callable[[], None] | None = None  # run once, before the FETCH
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._to_server, args=(client, server), daemon=True).start()
            threading.Thread(target=self._to_client, args=(server, client), daemon=True).start()

    def _to_server(self, client: socket.socket, server: socket.socket) -> None:
        reader = client.makefile("rb")
        while line := reader.readline():
            if b"BODY.PEEK[]" in line and self.before_body_fetch is not None:
                action, self.before_body_fetch = self.before_body_fetch, None
                action()
            server.sendall(line)
        server.close()

    def _to_client(self, server: socket.socket, client: socket.socket) -> None:
        reader = server.makefile("rb")
        while line := reader.readline():
            fetch = _FETCH_WITH_BODY.match(line)
            if fetch and int(fetch[2]) in self.no_body_once:
                self.no_body_once.discard(int(fetch[2]))
                reader.read(int(fetch[3]))  # the message
                reader.readline()  # ")" CRLF
                client.sendall(b"* %s FETCH (UID %s)\r\n" % (fetch[1], fetch[2]))
                continue
            client.sendall(line)
            literal = _LITERAL.search(line)
            if literal:
                client.sendall(reader.read(int(literal[1])))
        client.close()


@pytest.fixture
def relay(dovecot):
    relay = Relay(dovecot.port)
    yield relay
    relay.close()


def one_pass(engine, relay, dovecot, mailbox_id):
    """One sync pass of the mailbox through the relay; the ids handed over come back too."""
    with session_scope(engine) as session:
        config = MailboxConfig.of(session.get(Mailbox, mailbox_id))
    client = IMAPClient("127.0.0.1", port=relay.port, ssl=False, timeout=10)
    client.login(dovecot.user, dovecot.password)
    try:
        handed = []
        result = sync_pass(client, engine=engine, config=config, max_bytes=10_000_000,
                           batch_size=50, hand_over=handed.append)
        return result, handed
    finally:
        client.logout()


def stored_subjects(engine) -> list[str]:
    with session_scope(engine) as session:
        raws = session.scalars(select(InboundMessage.raw).order_by(InboundMessage.id)).all()
    return [re.search(rb"Subject: (.*)\r\n", raw)[1].decode() for raw in raws]


def test_a_message_sent_without_its_body_is_fetched_again_not_passed_over(
    dovecot, relay, engine, caplog
):
    mailbox_id = add_mailbox(engine, dovecot, since=ago(hours=1))
    dovecot.append([message(n) for n in (1, 2, 3)])
    relay.no_body_once = {2}  # Dovecot sends it; the poller receives "* 2 FETCH (UID 2)"

    with caplog.at_level(logging.WARNING, logger="ingest.imap_sync"):
        result, _ = one_pass(engine, relay, dovecot, mailbox_id)
    row = mailbox_row(engine, mailbox_id)
    assert row.last_uid == 1, "the checkpoint stays below the message to fetch again"
    assert "sent no body" in caplog.text
    assert "UID 2" in row.last_error
    assert result.retry == [2]
    assert stored_subjects(engine) == ["Problem number 1"]
    assert b"\\Seen" not in dovecot.flags()[2]

    result, handed = one_pass(engine, relay, dovecot, mailbox_id)  # the next round
    assert result.retry == [] and len(handed) == 2
    assert stored_subjects(engine) == ["Problem number 1", "Problem number 2", "Problem number 3"]
    assert mailbox_row(engine, mailbox_id).last_uid == 3
    assert all(b"\\Seen" in flags for flags in dovecot.flags().values())


def test_a_message_expunged_between_search_and_fetch_is_skipped_and_logged(
    dovecot, relay, engine, caplog
):
    mailbox_id = add_mailbox(engine, dovecot, since=ago(hours=1))
    dovecot.append([message(n) for n in (1, 2, 3)])

    def someone_deletes_uid_2():
        other = dovecot.client()
        other.select_folder("INBOX")
        other.add_flags([2], [b"\\Deleted"])
        other.uid_expunge([2])
        other.logout()

    relay.before_body_fetch = someone_deletes_uid_2
    with caplog.at_level(logging.INFO, logger="ingest.imap_sync"):
        result, _ = one_pass(engine, relay, dovecot, mailbox_id)
    assert relay.before_body_fetch is None, "the expunge happened between SEARCH and FETCH"
    assert "expunged before they were downloaded" in caplog.text
    assert result.expunged == [2] and result.retry == []
    assert stored_subjects(engine) == ["Problem number 1", "Problem number 3"]
    assert mailbox_row(engine, mailbox_id).last_uid == 3, "only the expunged UID is passed over"
