"""Helpers of the IMAP tests: settings for a private Dovecot, mailboxes, messages, waiting."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, select

from admin_api.services.mailboxes import create_mailbox
from models import Client, ClientDomain, InboundMessage, Mailbox, Ticket
from models.db import session_scope
from core.settings import Settings

SECRET_KEY = "test-secret-key-for-imap-passwords"


def imap_settings(database_url: str, dovecot, **overrides) -> Settings:
    """Settings that make a poller quick to react against the test's Dovecot."""
    values = dict(
        database_url=database_url,
        secret_key=SECRET_KEY,
        imap_ca_file=str(dovecot.cert_path),
        imap_backoff_initial_s=0.1,
        imap_backoff_max_s=0.5,
        imap_reload_interval_s=0.3,
        imap_sweep_interval_s=30.0,
        imap_idle_renew_s=60.0,
        imap_timeout_s=10.0,
        imap_batch_size=50,
    )
    values.update(overrides)
    return Settings(**values)


def add_mailbox(engine, dovecot, *, name: str = "support", security: str = "none",
                **fields) -> int:
    """Create a mailbox for the test Dovecot's user through the admin service; return its id."""
    port = dovecot.ssl_port if security == "ssl" else dovecot.port
    with session_scope(engine) as session:
        mailbox = create_mailbox(
            session,
            name=name,
            host=dovecot.host,
            port=port,
            security=security,
            username=dovecot.user,
            password=dovecot.password,
            secret_key=SECRET_KEY,
            **fields,
        )
        session.flush()
        return mailbox.id


def seed_client(engine, *, name: str = "Acme", domain: str = "acme.example") -> int:
    """A client owning ``domain`` so that its mail opens tickets."""
    with session_scope(engine) as session:
        client = Client(name=name)
        session.add(client)
        session.flush()
        session.add(ClientDomain(client_id=client.id, domain=domain))
        return client.id


def message(
    n: int,
    *,
    sender: str | None = None,
    subject: str | None = None,
    body: str = "The printer on floor 2 is broken again.",
    message_id: str | None = None,
    size: int = 0,
) -> bytes:
    """A small, unique support e-mail from a client's user (``size`` pads the body)."""
    message_id = message_id or f"<{n}.{uuid.uuid4().hex}@acme.example>"
    sender = sender or f"user{n}@acme.example"  # one sender each: the per-sender rate limit
    text = body + "\r\n"
    if size:
        text += ("x" * 76 + "\r\n") * max(1, size // 78)
    return (
        f"From: User {n} <{sender}>\r\n"
        f"To: support@msp.example\r\n"
        f"Subject: {subject or f'Problem number {n}'}\r\n"
        f"Message-ID: {message_id}\r\n"
        f"Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n"
        f"\r\n{text}"
    ).encode()


def eventually(check: Callable[[], object], *, timeout: float = 30.0, every: float = 0.05,
               what: str = "condition"):
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} (last value {value!r})")
        time.sleep(every)


def inbound_count(engine, source: str | None = "imap:support") -> int:
    with session_scope(engine) as session:
        query = select(func.count(InboundMessage.id))
        if source is not None:
            query = query.where(InboundMessage.source == source)
        return session.scalar(query)


def stored_message_ids(engine, source: str = "imap:support") -> list[str]:
    """The Message-ID header of every stored message (from the raw bytes), in id order."""
    from routing.mailparse import header_message_id

    with session_scope(engine) as session:
        raws = session.scalars(
            select(InboundMessage.raw).where(InboundMessage.source == source)
            .order_by(InboundMessage.id)
        ).all()
    return [header_message_id(bytes(raw)) for raw in raws]


def ticket_count(engine) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count(Ticket.id)))


def mailbox_row(engine, mailbox_id: int) -> Mailbox:
    with session_scope(engine) as session:
        return session.get(Mailbox, mailbox_id)


def ago(**delta) -> datetime:
    from datetime import timedelta, timezone

    return datetime.now(timezone.utc) - timedelta(**delta)
